//! Landlock, through raw system calls. Each `restrict` adds a layer; layers
//! only ever narrow what the process may do.
//!
//! The runner adds two. While minld links the plugin: reading (and mapping
//! executable) files beneath a few directories (the plugin's, the system
//! library directories, /etc/ld.so.cache), plus what the host granted.
//! Before the plugin's first instruction: only what the host granted. In
//! both every file-system access right is "handled" and only the rules
//! grant any; TCP bind/connect likewise (ABI 4+), and the process may
//! neither reach abstract unix sockets nor signal processes outside its
//! domain (ABI 6+). Layers stack: an access must pass every layer, which
//! is why the first also carries the grants.
//! Landlock governs *acquiring* access (open, mkdir, connect...): it does
//! not touch descriptors already open, which is why the runner closes
//! everything but stdio before loading.

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version.
const CREATE_RULESET_VERSION: u32 = 1;
/// `LANDLOCK_RULE_PATH_BENEATH`: a rule on a directory or file.
const RULE_PATH_BENEATH: u32 = 1;

// Access rights by the ABI version that introduced them.
/// Every file-system right of ABI 1.
const FS_ABI1: u64 = (1 << 13) - 1; // EXECUTE .. MAKE_SYM
/// `LANDLOCK_ACCESS_FS_REFER`.
const FS_REFER: u64 = 1 << 13; // ABI 2
/// `LANDLOCK_ACCESS_FS_TRUNCATE`.
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
/// `LANDLOCK_ACCESS_FS_IOCTL_DEV`.
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
/// `LANDLOCK_ACCESS_FS_EXECUTE`.
const FS_EXECUTE: u64 = 1 << 0;
/// `LANDLOCK_ACCESS_FS_WRITE_FILE`.
const FS_WRITE_FILE: u64 = 1 << 1;
/// `LANDLOCK_ACCESS_FS_READ_FILE`.
const FS_READ_FILE: u64 = 1 << 2;
/// `LANDLOCK_ACCESS_FS_READ_DIR`.
const FS_READ_DIR: u64 = 1 << 3;
/// `LANDLOCK_ACCESS_FS_MAKE_CHAR`, `_MAKE_SOCK`, `_MAKE_FIFO`,
/// `_MAKE_BLOCK` and `_MAKE_SYM`: making a device, socket, FIFO or link,
/// which no call a plugin may make needs (mknod, symlink and bind are
/// forbidden; renameat2's RENAME_WHITEOUT, a device, is refused).
const FS_MAKE_SPECIAL: u64 = (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Rights that apply to a file (a rule on a file may name no others).
const FS_FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE;
/// Every network right (handled, so none is granted).
const NET_ALL: u64 = 0b11; // BIND_TCP | CONNECT_TCP, ABI 4
/// Every scope (handled, so the runner reaches outside none).
const SCOPE_ALL: u64 = 0b11; // ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6

/// `struct landlock_ruleset_attr`.
#[repr(C)]
struct RulesetAttr {
    /// File-system rights the ruleset handles (denied unless a rule grants
    /// them).
    handled_access_fs: u64,
    /// Network rights it handles.
    handled_access_net: u64,
    /// IPC scopes it restricts.
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed, as the kernel's).
#[repr(C, packed)]
struct PathBeneathAttr {
    /// The rights granted beneath the path.
    allowed_access: u64,
    /// An `O_PATH` descriptor of the path.
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

/// What a rule grants beneath a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read and map executable: the libraries minld links.
    ReadExec,
    /// Read files, list directories.
    Read,
    /// Also write, truncate, create and remove files and directories.
    ReadWrite,
}

impl Access {
    /// The rights this access grants, of those the kernel's ABI `abi` knows.
    fn rights(self, abi: u32) -> u64 {
        let read = FS_READ_FILE | FS_READ_DIR;
        match self {
            Access::ReadExec => read | FS_EXECUTE,
            Access::Read => read,
            // Every right this ABI handles but EXECUTE: writing, making
            // (files and directories only) and removing entries beneath
            // the path.
            Access::ReadWrite => {
                handled(abi).handled_access_fs & !(FS_EXECUTE | FS_IOCTL_DEV | FS_MAKE_SPECIAL)
            }
        }
    }
}

/// Adds a layer: every right this kernel knows is denied, except what
/// `rules` grant beneath their paths (paths that do not exist are
/// skipped). Returns the ABI used. Fails when Landlock is unavailable
/// (the caller decides whether that is allowed). Requires no_new_privs.
pub fn restrict(rules: &[(&std::path::Path, Access)]) -> std::io::Result<u32> {
    let abi = abi();
    if abi == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
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
        for &(path, access) in rules {
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
            let mut allowed_access = access.rights(abi) & attr.handled_access_fs;
            if !is_dir {
                allowed_access &= FS_FILE_RIGHTS;
            }
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
