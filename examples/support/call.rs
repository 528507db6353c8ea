//! `dlopen LIB NAME:SIG X…`: calling a loaded function with the signature
//! the learner gives (`sqlite3_libversion:str()`, `abs:int(int)`,
//! `pow:f64(f64,f64)`), and `dlopen LIB NAME` with no signature: what the
//! symbol table says of NAME. A submodule of `dlopen.rs` (and included by
//! `tests/pages.rs` for its parser).

// Each user of this file uses a part of it.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};

/// A C type a signature can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `void` (a return type only).
    Void,
    /// `int`: 32 bits, signed.
    Int,
    /// `long`: 64 bits, signed.
    Long,
    /// `unsigned` / `uint`: 32 bits.
    Uint,
    /// `size_t` / `ulong`: 64 bits, unsigned.
    Ulong,
    /// `double` / `f64`.
    F64,
    /// `float` / `f32`.
    F32,
    /// `const char *`, NUL-terminated: printed as a string.
    Str,
    /// Any other pointer: printed as an address.
    Ptr,
}

impl Ty {
    /// The type a name in a signature means.
    fn parse(s: &str) -> Result<Ty, String> {
        Ok(match s.trim() {
            "void" => Ty::Void,
            "int" | "i32" => Ty::Int,
            "long" | "i64" => Ty::Long,
            "unsigned" | "uint" | "u32" => Ty::Uint,
            "ulong" | "size_t" | "u64" => Ty::Ulong,
            "f64" | "double" => Ty::F64,
            "f32" | "float" => Ty::F32,
            "str" | "char*" | "const char*" => Ty::Str,
            "ptr" | "void*" => Ty::Ptr,
            "..." => return Err("variadic functions cannot be called: the number and types of the arguments after `...` are not in the signature".into()),
            other => {
                return Err(format!(
                    "unknown type `{other}` (known: void int long uint ulong f64 f32 str ptr)"
                ))
            }
        })
    }

    /// Whether it travels in a vector register (SSE class).
    fn is_float(self) -> bool {
        matches!(self, Ty::F64 | Ty::F32)
    }
}

/// A function's signature: `ret(args)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The return type.
    pub ret: Ty,
    /// The argument types, in order.
    pub args: Vec<Ty>,
}

/// Integer arguments that travel in registers (rdi rsi rdx rcx r8 r9).
const INT_REGS: usize = 6;
/// Floating-point arguments that travel in registers (xmm0-xmm7).
const FLOAT_REGS: usize = 8;

/// `NAME:RET(ARG,…)` split into the name and its signature, or the name
/// alone (no `:`).
pub fn parse(spec: &str) -> Result<(String, Option<Signature>), String> {
    let Some((name, sig)) = spec.split_once(':') else {
        return Ok((spec.to_string(), None));
    };
    if name.is_empty() {
        return Err(format!("`{spec}`: no symbol name before `:`"));
    }
    let sig = sig.trim();
    let open = sig
        .find('(')
        .ok_or_else(|| format!("`{sig}`: a signature is RET(ARG,...), e.g. int(int)"))?;
    let inner = sig[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| format!("`{sig}`: the signature must end with `)`"))?;
    let ret = Ty::parse(&sig[..open])?;
    let args: Vec<Ty> = if inner.trim().is_empty() || inner.trim() == "void" {
        Vec::new()
    } else {
        inner.split(',').map(Ty::parse).collect::<Result<_, _>>()?
    };
    if args.contains(&Ty::Void) {
        return Err(format!("`{sig}`: `void` is not an argument type"));
    }
    let floats = args.iter().filter(|t| t.is_float()).count();
    let ints = args.len() - floats;
    if ints > INT_REGS || floats > FLOAT_REGS {
        return Err(format!(
            "`{sig}`: {ints} integer and {floats} floating-point arguments; only what fits in \
             registers can be called ({INT_REGS} and {FLOAT_REGS}): the rest would go on the stack"
        ));
    }
    Ok((name.to_string(), Some(Signature { ret, args })))
}

/// The argument registers of one call: the integer and the vector ones.
#[derive(Default)]
struct Regs {
    ints: [i64; INT_REGS],
    floats: [f64; FLOAT_REGS],
}

/// The function type every call is made through. On x86-64 (System V),
/// integer and pointer arguments go in rdi, rsi, … in their order and
/// floating-point ones in xmm0, xmm1, … in theirs, whatever their
/// interleaving: a function taking six integers and eight doubles puts
/// every register there, so any signature within those counts is called
/// exactly by passing its arguments in the right slots (a callee reads only
/// the registers it takes). An integer result comes back in rax, a
/// floating-point one in xmm0.
type IntFn =
    extern "C" fn(i64, i64, i64, i64, i64, i64, f64, f64, f64, f64, f64, f64, f64, f64) -> i64;
/// As [`IntFn`], for a result in xmm0.
type FloatFn =
    extern "C" fn(i64, i64, i64, i64, i64, i64, f64, f64, f64, f64, f64, f64, f64, f64) -> f64;

/// The registers for the learner's arguments, with the strings kept alive
/// while the call runs.
fn registers(sig: &Signature, args: &[String]) -> Result<(Regs, Vec<CString>), String> {
    if args.len() != sig.args.len() {
        return Err(format!(
            "the signature takes {} argument(s), {} given",
            sig.args.len(),
            args.len()
        ));
    }
    let (mut regs, mut keep) = (Regs::default(), Vec::new());
    let (mut i, mut f) = (0, 0);
    for (ty, a) in sig.args.iter().zip(args) {
        let bad = |e: &dyn std::fmt::Display| format!("argument `{a}` as {ty:?}: {e}");
        match ty {
            Ty::F64 => {
                regs.floats[f] = a.parse::<f64>().map_err(|e| bad(&e))?;
                f += 1;
            }
            Ty::F32 => {
                let x = a.parse::<f32>().map_err(|e| bad(&e))?;
                regs.floats[f] = f64::from_bits(u64::from(x.to_bits()));
                f += 1;
            }
            Ty::Str => {
                let c = CString::new(a.as_str()).map_err(|e| bad(&e))?;
                regs.ints[i] = c.as_ptr() as i64;
                keep.push(c);
                i += 1;
            }
            Ty::Int => {
                regs.ints[i] = i64::from(a.parse::<i32>().map_err(|e| bad(&e))?);
                i += 1;
            }
            Ty::Uint => {
                regs.ints[i] = i64::from(a.parse::<u32>().map_err(|e| bad(&e))?);
                i += 1;
            }
            Ty::Long => {
                regs.ints[i] = a.parse::<i64>().map_err(|e| bad(&e))?;
                i += 1;
            }
            Ty::Ulong | Ty::Ptr => {
                let v = match a.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).map_err(|e| bad(&e))?,
                    None => a.parse::<u64>().map_err(|e| bad(&e))?,
                };
                regs.ints[i] = v as i64;
                i += 1;
            }
            Ty::Void => return Err("`void` is not an argument type".into()),
        }
    }
    Ok((regs, keep))
}

/// Calls the function at `addr` with `sig` and the learner's arguments,
/// and renders its result.
///
/// # Safety
/// `addr` must be a function with exactly that signature.
pub unsafe fn invoke(addr: usize, sig: &Signature, args: &[String]) -> Result<String, String> {
    let (r, _keep) = registers(sig, args)?;
    let (i, f) = (r.ints, r.floats);
    if sig.ret.is_float() {
        // SAFETY: the caller promises the signature; FloatFn passes every
        // argument register (see IntFn).
        let func: FloatFn = unsafe { std::mem::transmute::<usize, FloatFn>(addr) };
        let v = func(
            i[0], i[1], i[2], i[3], i[4], i[5], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
        );
        return Ok(match sig.ret {
            Ty::F32 => f32::from_bits(v.to_bits() as u32).to_string(),
            _ => v.to_string(),
        });
    }
    // SAFETY: as above, for a result in rax.
    let func: IntFn = unsafe { std::mem::transmute::<usize, IntFn>(addr) };
    let v = func(
        i[0], i[1], i[2], i[3], i[4], i[5], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
    );
    Ok(match sig.ret {
        Ty::Void => "(void)".to_string(),
        Ty::Int => (v as i32).to_string(),
        Ty::Uint => (v as u32).to_string(),
        Ty::Long => v.to_string(),
        Ty::Ulong => (v as u64).to_string(),
        Ty::Ptr => format!("{:#x}", v as u64),
        Ty::Str if v == 0 => "NULL".to_string(),
        Ty::Str => {
            // SAFETY: the caller promises the function returns a
            // NUL-terminated string (or NULL, handled above).
            let s = unsafe { CStr::from_ptr(v as usize as *const c_char) };
            format!("{:?}", s.to_string_lossy())
        }
        Ty::F64 | Ty::F32 => unreachable!("handled above"),
    })
}

/// What the symbol table says of one symbol.
#[derive(Debug, Clone)]
pub struct SymInfo {
    /// STT_* as a name (`FUNC`, `OBJECT`, `GNU_IFUNC`, `TLS`, …).
    pub kind: String,
    /// STB_* as a name (`GLOBAL`, `WEAK`, `GNU_UNIQUE`).
    pub binding: String,
    /// st_size.
    pub size: u64,
    /// The version it is defined with (`@@` the default), if any.
    pub version: Option<String>,
    /// The object defining it.
    pub object: String,
    /// Its address in this process.
    pub addr: usize,
}

/// Where `addr` is: minld's objects by `minld::addr_info`, glibc's own by
/// its `dladdr`.
fn defining_object(addr: usize) -> Option<String> {
    if let Some(i) = minld::addr_info(addr) {
        return Some(i.path.display().to_string());
    }
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) };
    // SAFETY: a nonzero return means dladdr filled `info`.
    let info = unsafe { info.assume_init() };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string glibc keeps.
    Some(
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The entry of `name` in the dynamic symbol table of the file `object`:
/// the default version's definition.
pub fn describe(name: &str, addr: usize) -> Result<SymInfo, String> {
    use goblin::elf::sym;
    let object = defining_object(addr)
        .ok_or_else(|| format!("{addr:#x}: in no object minld or glibc knows"))?;
    let bytes = std::fs::read(&object).map_err(|e| format!("{object}: {e}"))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| format!("{object}: {e}"))?;
    let mut found = None;
    for (i, s) in elf.dynsyms.iter().enumerate() {
        if s.st_shndx == 0 || elf.dynstrtab.get_at(s.st_name) != Some(name) {
            continue;
        }
        let versym = elf.versym.as_ref().and_then(|v| v.get_at(i));
        if versym.as_ref().is_some_and(|v| v.is_hidden()) {
            continue;
        }
        // Index 0 is local, 1 the unversioned global (the file's base
        // definition, its soname, is not a version of the symbol).
        let version = versym.filter(|v| v.version() > 1).and_then(|v| {
            let ndx = v.version();
            elf.verdef
                .as_ref()?
                .iter()
                .find(|d| d.vd_ndx == ndx)
                .and_then(|d| {
                    let aux = d.iter().next()?;
                    elf.dynstrtab.get_at(aux.vda_name).map(str::to_string)
                })
        });
        found = Some(SymInfo {
            kind: sym::type_to_str(s.st_type()).to_string(),
            binding: sym::bind_to_str(s.st_bind()).to_string(),
            size: s.st_size,
            version,
            object: object.clone(),
            addr,
        });
        break;
    }
    found.ok_or_else(|| {
        format!("{name}: not a defined, default-version entry of {object}'s .dynsym")
    })
}

/// Why a symbol of this kind cannot be called, if it cannot.
pub fn refusal(info: &SymInfo) -> Option<String> {
    match info.kind.as_str() {
        "FUNC" | "GNU_IFUNC" | "NOTYPE" => None,
        "OBJECT" | "COMMON" => Some(format!(
            "it is data ({} bytes), not a function: calling it would execute its bytes",
            info.size
        )),
        "TLS" => Some("it is a thread-local variable, not a function".into()),
        other => Some(format!("its type is {other}, not a function")),
    }
}
