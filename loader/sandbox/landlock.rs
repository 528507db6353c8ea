//! Landlock, through raw system calls. Each `restrict` adds a layer; layers
//! only ever narrow what the process may do.
//!
//! The runner adds two: before loading, only reading (and mapping
//! executable) files beneath a few directories (the plugin's, the system
//! library directories, /etc/ld.so.cache): the loader needs them, and the
//! plugin's constructors run then; after loading, nothing:
//! every file-system access right is "handled" and no rule grants any, TCP
//! bind/connect likewise (ABI 4+), and the process may neither reach
//! abstract unix sockets nor signal processes outside its domain (ABI 6+).
//! Landlock governs *acquiring* access (open, mkdir, connect...): it does
//! not touch descriptors already open, which is why the runner closes
//! everything but stdio before loading.

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

// Access rights by the ABI version that introduced them.
const FS_ABI1: u64 = (1 << 13) - 1; // EXECUTE .. MAKE_SYM
const FS_REFER: u64 = 1 << 13; // ABI 2
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
const FS_READ_FILE: u64 = (1 << 0) | (1 << 2); // EXECUTE | READ_FILE
const FS_READ: u64 = FS_READ_FILE | (1 << 3); // and READ_DIR (directories only)
const NET_ALL: u64 = 0b11; // BIND_TCP | CONNECT_TCP, ABI 4
const SCOPE_ALL: u64 = 0b11; // ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The kernel's Landlock ABI version; 0 when Landlock is absent or off
/// (ENOSYS: not built; EOPNOTSUPP: built but not in the `lsm=` list).
pub fn abi() -> u32 {
    // SAFETY: the documented version query: NULL attr, size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        0
    } else {
        v as u32
    }
}

/// Everything this ABI version can handle.
fn handled(abi: u32) -> RulesetAttr {
    let mut fs = FS_ABI1;
    if abi >= 2 {
        fs |= FS_REFER;
    }
    if abi >= 3 {
        fs |= FS_TRUNCATE;
    }
    if abi >= 5 {
        fs |= FS_IOCTL_DEV;
    }
    RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: if abi >= 4 { NET_ALL } else { 0 },
        scoped: if abi >= 6 { SCOPE_ALL } else { 0 },
    }
}

/// Adds a layer: every right this kernel knows is denied, except reading
/// and executing what lies beneath `readable` (paths that do not exist are
/// skipped). Returns the ABI used, 0 if Landlock is unavailable (then
/// nothing is done). Requires no_new_privs.
pub fn restrict(readable: &[&std::path::Path]) -> std::io::Result<u32> {
    let abi = abi();
    if abi == 0 {
        return Ok(0);
    }
    let attr = handled(abi);
    // Older kernels reject a larger struct only if the extra bytes are not
    // zero; give the size that matches the fields this ABI knows anyway.
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => 24,
    };
    // SAFETY: attr outlives the call; size is within it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = fd as i32;
    let result = (|| {
        for path in readable {
            let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a NUL-terminated path.
            let at = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if at < 0 {
                continue;
            }
            // A rule on a file may name only rights that apply to files.
            let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
            let allowed_access = if is_dir { FS_READ } else { FS_READ_FILE };
            let rule = PathBeneathAttr {
                allowed_access,
                parent_fd: at,
            };
            // SAFETY: rule outlives the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    fd,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0,
                )
            };
            // SAFETY: our descriptor.
            unsafe { libc::close(at) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: fd is the ruleset just built.
        if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(abi)
    })();
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    result
}
