//! Stage 7: run an object's init functions after relocation, with the
//! program's (argc, argv, envp) as glibc passes them. (Its fini functions
//! run when the object is dropped: `Object::run_fini`.)

use std::ffi::c_char;
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

use std::sync::Arc;

use crate::model::object::Object;
use crate::model::registry::Held;

static ARGC: AtomicIsize = AtomicIsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());
static ENVP: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// glibc calls the functions in a program's `.init_array` with
/// (argc, argv, envp) before `main` (Rust's std takes its arguments the same
/// way); minld keeps them to pass on to the libraries it initialises.
extern "C" fn capture_args(argc: i32, argv: *mut *mut c_char, envp: *mut *mut c_char) {
    ARGC.store(argc as isize, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
    ENVP.store(envp, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array.00098"]
static CAPTURE_ARGS: extern "C" fn(i32, *mut *mut c_char, *mut *mut c_char) = capture_args;

type InitFn = extern "C" fn(i32, *mut *mut c_char, *mut *mut c_char);

fn args() -> (i32, *mut *mut c_char, *mut *mut c_char) {
    let envp = ENVP.load(Ordering::Relaxed);
    let envp = if envp.is_null() {
        extern "C" {
            static mut environ: *mut *mut c_char;
        }
        // SAFETY: reading glibc's `environ` pointer (not writing it).
        unsafe { environ }
    } else {
        envp
    };
    (
        ARGC.load(Ordering::Relaxed) as i32,
        ARGV.load(Ordering::Relaxed),
        envp,
    )
}

/// The init functions of an object, checked to lie in its code: DT_INIT,
/// then DT_INIT_ARRAY in order. Entries 0 and -1 are skipped, as by glibc.
pub(crate) fn init_functions(obj: &Object) -> Result<Vec<usize>, crate::Error> {
    let d = &obj.dynamic;
    let mut out = Vec::new();
    let check = |addr: usize, what: &'static str| {
        if obj.in_code(addr) {
            Ok(addr)
        } else {
            Err(crate::Error::dynamic(
                &obj.path,
                what,
                addr as u64,
                crate::base::error::DynamicFault::NotInCode,
            ))
        }
    };
    if let Some(a) = d.init {
        out.push(check(a, "DT_INIT")?);
    }
    for a in d.init_array.iter() {
        if a != 0 && a != usize::MAX {
            out.push(check(a, "DT_INIT_ARRAY entry")?);
        }
    }
    Ok(out)
}

/// Runs the init functions of a load's objects, in order, each object's
/// once: one already initialised by a load nested in an earlier init
/// function (which needed it) is skipped. The registry is borrowed only
/// to claim each object, never while its functions run: they may open,
/// close and look up libraries through minld (on this thread, which
/// holds the loader lock; other threads wait).
pub(crate) fn run_all(
    held: &Held,
    name: &str,
    inits: &[(Arc<Object>, Vec<usize>)],
) -> Result<(), crate::Error> {
    if !inits.is_empty() {
        crate::model::object::at_exit();
    }
    for (o, fns) in inits {
        let claimed = held
            .registry(|| format!("open {name}: initialise {}", o.path.display()))?
            .claim_init(o);
        if claimed {
            o.mark_initialized();
            run_init(o, fns);
        }
    }
    Ok(())
}

/// Runs the object's init functions.
fn run_init(obj: &Object, functions: &[usize]) {
    let (argc, argv, envp) = args();
    for &f in functions {
        crate::os::debug::print_if(crate::os::debug::Category::Libs, || {
            format!("calling init: {} at {f:#x}", obj.path.display())
        });
        // SAFETY: `f` lies in the object's code (checked), the object is
        // relocated and its dependencies initialised; glibc calls init
        // functions with exactly these arguments.
        let func: InitFn = unsafe { std::mem::transmute::<usize, InitFn>(f) };
        func(argc, argv, envp);
    }
}
