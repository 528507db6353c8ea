//! Stage 1 of a load: from a name to an open file, searching as ld.so does.
//!
//! A name with a slash is a path. Otherwise the directories are, in order:
//! the requester's DT_RPATH (only when it has no DT_RUNPATH),
//! LD_LIBRARY_PATH, the requester's DT_RUNPATH, the loader's own search
//! paths, /etc/ld.so.cache, then the system directories. `$ORIGIN`, `$LIB`
//! and `$PLATFORM` are expanded as glibc expands them on x86-64 Debian.

pub(crate) mod ldcache;
pub(crate) mod script;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::base::error::{Error, HeaderFault, Requester as ErrorRequester};
use crate::os::debug::{self, Category};
use crate::os::sys::{Fd, FileStat, Sys};
use crate::pipeline::validate::FIRST_READ;

/// glibc's system directories on Debian's x86-64 (multiarch first).
pub(crate) const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// What `$LIB` expands to in Debian's glibc.
const DST_LIB: &str = "lib/x86_64-linux-gnu";

/// The largest linker script minld reads.
const MAX_SCRIPT: usize = 64 * 1024;

/// A bare name (no slash) that is the DT_SONAME of an object minld has
/// loaded in the load's namespace: that object, found without a search, as
/// glibc's dlopen matches a name against the sonames of the objects it has
/// before it looks for a file. `namespace` is the load's; a load whose
/// code does not run (`run_code` false: it links only) maps its own.
pub(crate) fn loaded_by_soname(
    reg: &crate::model::registry::Registry,
    namespace: u64,
    run_code: bool,
    name: &str,
) -> Option<std::sync::Arc<crate::model::object::Object>> {
    if name.contains('/') || !run_code {
        return None;
    }
    let ns = namespace;
    let o = reg
        .by_file
        .values()
        .filter_map(std::sync::Weak::upgrade)
        .find(|o| o.soname == name && o.namespace == ns)?;
    debug::print_if(Category::Libs, || {
        format!(
            "{name}: the soname of {}, loaded by minld already",
            o.path.display()
        )
    });
    Some(o)
}

/// An open ELF candidate with the bytes read from its start.
pub(crate) struct Opened {
    /// The open file.
    pub(crate) fd: Fd,
    /// The path it was opened by.
    pub(crate) path: PathBuf,
    /// Its first bytes (up to [`FIRST_READ`]).
    pub(crate) first: Vec<u8>,
    /// Its `fstat`, when made already (a caller's descriptor is checked
    /// before it is read); None: validation makes it.
    pub(crate) stat: Option<FileStat>,
}

/// What a name led to.
pub(crate) enum Found {
    /// An ELF file (or a file validation will refuse).
    Elf(Opened),
    /// A GNU ld script and the files it names.
    Script {
        /// The script.
        path: PathBuf,
        /// Its members, in order.
        members: Vec<script::Member>,
    },
}

/// Who is asking, for RPATH, RUNPATH and $ORIGIN.
pub(crate) struct Requester<'a> {
    /// The path it was opened by ($ORIGIN's directory).
    pub(crate) path: &'a Path,
    /// Its DT_RPATH.
    pub(crate) rpath: Option<&'a str>,
    /// Its DT_RUNPATH.
    pub(crate) runpath: Option<&'a str>,
    /// The DT_RPATHs it inherits: of the object that loaded it, of that
    /// one's loader, and so on (each with the path of the object it is
    /// from, for `$ORIGIN`), as glibc follows `l_loader`. Searched after
    /// its own RPATH, only when it has no DT_RUNPATH.
    pub(crate) inherited: &'a [(PathBuf, String)],
    /// Its DF_1_NODEFLIB: its names are not searched in the system
    /// directories, nor found through `/etc/ld.so.cache` in them.
    pub(crate) nodeflib: bool,
}

/// Whether a search on behalf of `requester` leaves out the system
/// directories (its DF_1_NODEFLIB; with no requester, the program's).
pub(crate) fn nodeflib(sys: &Sys, requester: Option<&Requester<'_>>) -> bool {
    requester.map_or_else(
        || crate::process::program::program(sys).nodeflib,
        |r| r.nodeflib,
    )
}

/// The DT_RPATH lists a search on behalf of `requester` goes through
/// before `LD_LIBRARY_PATH`, each with the path whose directory is its
/// `$ORIGIN` and whether it is the requester's own: none when it has a
/// DT_RUNPATH; else its own RPATH, those it inherits from its chain of
/// loaders, then the program's (also with no requester), each list once.
fn rpath_lists<'a>(
    sys: &Sys,
    requester: Option<&'a Requester<'a>>,
) -> Vec<(&'a Path, &'a str, bool)> {
    let mut lists: Vec<(&Path, &str, bool)> = Vec::new();
    if let Some(r) = requester {
        if r.runpath.is_some() {
            return lists;
        }
        if let Some(rp) = r.rpath {
            lists.push((r.path, rp, true));
        }
        lists.extend(
            r.inherited
                .iter()
                .map(|(p, rp)| (p.as_path(), rp.as_str(), false)),
        );
    }
    if let Some((p, rp)) = &crate::process::program::program(sys).rpath {
        if !lists.iter().any(|&(q, r, _)| q == p && r == rp) {
            lists.push((p.as_path(), rp.as_str(), false));
        }
    }
    lists
}

/// What `$PLATFORM` expands to: AT_PLATFORM, else `x86_64`.
fn platform() -> String {
    // SAFETY: getauxval has no memory effects; AT_PLATFORM, when present,
    // points at a NUL-terminated string the kernel placed on the stack that
    // lives for the whole process.
    let p = unsafe { libc::getauxval(libc::AT_PLATFORM) } as *const libc::c_char;
    if p.is_null() {
        return "x86_64".to_string();
    }
    // SAFETY: as above: a valid C string for the life of the process.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Expands the dynamic string tokens of one path element.
pub(crate) fn expand(element: &str, origin: Option<&Path>) -> Option<String> {
    let mut out = String::new();
    let mut rest = element;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (token, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}')?;
            (&inner[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match token {
            "ORIGIN" => out.push_str(&origin?.to_string_lossy()),
            "LIB" => out.push_str(DST_LIB),
            "PLATFORM" => out.push_str(&platform()),
            _ => return None, // glibc drops elements with unknown tokens
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Some(out)
}

/// $ORIGIN of an object: the directory of the path it was opened by (made
/// absolute), as glibc computes it: symbolic links are not resolved, so an
/// object reached through a link in another directory has that directory.
fn origin_of(path: &Path) -> Option<PathBuf> {
    // A name without a directory is not a path an object was opened by
    // (a file found by a search always has one): an object given as bytes
    // (`Loader::open_bytes`) has no $ORIGIN, and an element using it is
    // dropped, as glibc drops it for an object whose origin is unknown.
    if path.parent().is_none_or(|p| p.as_os_str().is_empty()) {
        return None;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    abs.parent().map(Path::to_path_buf)
}

/// The directories of a `:`-separated list, tokens expanded (an empty
/// element is the current directory; one with an unknown token is dropped).
fn split_dirs(list: &str, origin: Option<&Path>) -> Vec<PathBuf> {
    list.split(':')
        .filter_map(|e| {
            let e = if e.is_empty() { "." } else { e };
            expand(e, origin).map(PathBuf::from)
        })
        .collect()
}

/// /etc/ld.so.cache, read once.
fn ld_cache(sys: &Sys) -> &'static crate::pipeline::search::ldcache::LdCache {
    static CACHE: OnceLock<crate::pipeline::search::ldcache::LdCache> = OnceLock::new();
    CACHE.get_or_init(|| crate::pipeline::search::ldcache::load(sys))
}

/// Who asks, for [`Error::NotFound`]: the requester's path, or the caller.
fn requester_of(requester: Option<&Requester<'_>>) -> ErrorRequester {
    requester.map_or(ErrorRequester::Caller, |r| {
        ErrorRequester::Library(r.path.to_path_buf())
    })
}

/// Like [`find`], for a namespace: only inside the `permitted` directories
/// (a path name must lie in one; RPATH and RUNPATH entries count only when
/// they do; no LD_LIBRARY_PATH, ld.so.cache or system directories).
pub(crate) fn find_confined(
    sys: &Sys,
    name: &str,
    requester: Option<&Requester<'_>>,
    permitted: &[PathBuf],
) -> Result<Found, Error> {
    let needed_by = requester_of(requester);
    let origin = requester.and_then(|r| origin_of(r.path));
    // Compared on real paths: `..` and symbolic links cannot lead out.
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let permitted: Vec<PathBuf> = permitted.iter().map(|d| real(d)).collect();
    let inside = |p: &Path| {
        let p = real(p);
        permitted.iter().any(|d| p.starts_with(d))
    };
    let mut tried = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if name.contains('/') {
        if let Some(p) = expand(name, origin.as_deref()).map(PathBuf::from) {
            if inside(&p) {
                if let Some(f) = try_open(sys, &p, &mut tried, false)? {
                    return Ok(f);
                }
            } else {
                tried.push(p);
            }
        }
    } else {
        let runpath = requester.and_then(|r| r.runpath.map(|rp| (r.path, rp)));
        for (path, list) in rpath_lists(sys, requester)
            .into_iter()
            .map(|(p, rp, _)| (p, rp))
            .chain(runpath)
        {
            let origin = origin_of(path);
            dirs.extend(
                split_dirs(list, origin.as_deref())
                    .into_iter()
                    .filter(|d| inside(d)),
            );
        }
        dirs.extend(permitted.iter().cloned());
        for dir in &dirs {
            if let Some(f) = try_open(sys, &dir.join(name), &mut tried, true)? {
                return Ok(f);
            }
        }
    }
    Err(Error::NotFound {
        name: name.to_string(),
        needed_by,
        confined: true,
        tried,
    })
}

/// The directories a search for a bare name on behalf of `requester`
/// tries before `/etc/ld.so.cache` and [`SYSTEM_DIRS`], in order, each with
/// where it comes from: the requester's DT_RPATH, those of its chain of
/// loaders and the program's (only without a DT_RUNPATH, see
/// [`rpath_lists`]), `LD_LIBRARY_PATH`, its DT_RUNPATH, then `extra`
/// (`Loader::search_path`). Tokens are expanded; an empty element is the
/// current directory.
pub(crate) fn search_dirs(
    sys: &Sys,
    requester: Option<&Requester<'_>>,
    extra: &[PathBuf],
) -> Vec<(PathBuf, &'static str)> {
    let origin = requester.and_then(|r| origin_of(r.path));
    let mut dirs: Vec<(PathBuf, &'static str)> = Vec::new();
    for (path, rp, own) in rpath_lists(sys, requester) {
        let why = if own { "RPATH" } else { "inherited RPATH" };
        dirs.extend(
            split_dirs(rp, origin_of(path).as_deref())
                .into_iter()
                .map(|d| (d, why)),
        );
    }
    if let Some(lp) = std::env::var_os("LD_LIBRARY_PATH") {
        let lp = lp.to_string_lossy().into_owned();
        if !lp.is_empty() {
            dirs.extend(
                split_dirs(&lp, None)
                    .into_iter()
                    .map(|d| (d, "LD_LIBRARY_PATH")),
            );
        }
    }
    if let Some(rp) = requester.and_then(|r| r.runpath) {
        dirs.extend(
            split_dirs(rp, origin.as_deref())
                .into_iter()
                .map(|d| (d, "RUNPATH")),
        );
    }
    dirs.extend(extra.iter().map(|d| (d.clone(), "Loader::search_path")));
    dirs
}

/// Opens the library `name` asks for. `tried` collects every path tried.
pub(crate) fn find(
    sys: &Sys,
    name: &str,
    requester: Option<&Requester<'_>>,
    extra: &[PathBuf],
) -> Result<Found, Error> {
    let needed_by = requester_of(requester);
    let origin = requester.and_then(|r| origin_of(r.path));
    let mut tried = Vec::new();
    let not_found = |tried: Vec<PathBuf>| Error::NotFound {
        name: name.to_string(),
        needed_by: needed_by.clone(),
        confined: false,
        tried,
    };
    debug::print_if(Category::Libs, || {
        format!("find library={name}; searching (needed by {needed_by})")
    });

    if name.contains('/') {
        let path = PathBuf::from(
            expand(name, origin.as_deref()).ok_or_else(|| not_found(vec![name.into()]))?,
        );
        return match try_open(sys, &path, &mut tried, false)? {
            Some(f) => Ok(f),
            None => Err(not_found(tried)),
        };
    }

    let dirs = search_dirs(sys, requester, extra);
    for (dir, why) in &dirs {
        debug::print_if(Category::Libs, || {
            format!(" search path={} ({why})", dir.display())
        });
        if let Some(f) = try_open(sys, &dir.join(name), &mut tried, true)? {
            return Ok(f);
        }
    }
    let nodeflib = nodeflib(sys, requester);
    let system = |p: &Path| SYSTEM_DIRS.iter().any(|d| p.starts_with(d));
    if let Some(path) = ld_cache(sys)
        .lookup(name)
        .filter(|p| !(nodeflib && system(p)))
    {
        debug::print_if(Category::Libs, || {
            " search cache=/etc/ld.so.cache".to_string()
        });
        if let Some(f) = try_open(sys, &path, &mut tried, true)? {
            return Ok(f);
        }
    }
    for dir in SYSTEM_DIRS.iter().filter(|_| !nodeflib) {
        debug::print_if(Category::Libs, || {
            format!(" search path={dir} (system search path)")
        });
        if let Some(f) = try_open(sys, &Path::new(dir).join(name), &mut tried, true)? {
            return Ok(f);
        }
    }
    Err(not_found(tried))
}

/// Whether an `open` failing with `e` means "no such file" rather than an
/// error to report. A path the caller gave is missing only on ENOENT (any
/// other errno is reported with the file, as glibc's `dlopen` reports
/// `Not a directory` or `Permission denied`). While searching, a
/// candidate whose directory cannot be reached (ENOTDIR, ELOOP) or read
/// (EACCES) is skipped and the search goes on, as glibc's goes on past a
/// directory that does not exist; a name too long (ENAMETOOLONG) or a
/// failure of the process (EMFILE, ENOMEM, EIO…) is still an error.
fn not_there(e: nix::errno::Errno, searching: bool) -> bool {
    use nix::errno::Errno;
    match e {
        Errno::ENOENT => true,
        Errno::ENOTDIR | Errno::EACCES | Errno::ELOOP => searching,
        _ => false,
    }
}

/// Opens one candidate: Ok(None) when it does not exist or, while
/// `searching`, is an ELF file for another machine or class (ld.so skips
/// those and keeps searching; a path given by the caller is validated and
/// refused with the value found instead).
fn try_open(
    sys: &Sys,
    path: &Path,
    tried: &mut Vec<PathBuf>,
    searching: bool,
) -> Result<Option<Found>, Error> {
    debug::print_if(Category::Libs, || {
        format!("  trying file={}", path.display())
    });
    tried.push(path.to_path_buf());
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| {
        Error::header(
            path,
            "path",
            e.nul_position() as u64,
            HeaderFault::NulInPath,
        )
    })?;
    let fd = match sys.open(&c, "") {
        Ok(fd) => fd,
        Err(e) if not_there(e, searching) => return Ok(None),
        Err(e) => return Err(Error::io(path, "open", e)),
    };
    let mut first = vec![0u8; FIRST_READ];
    let n = sys
        .read(
            &fd,
            &mut first,
            "ELF header and program headers (or a linker script)",
        )
        .map_err(|e| Error::io(path, "read", e))?;
    first.truncate(n);
    if searching && first.starts_with(b"\x7fELF") {
        // Another class or machine: skipped when searching, as by ld.so.
        let class_ok = first.get(4) == Some(&2);
        let machine_ok = first.get(18..20) == Some(&[62, 0][..]);
        if !(class_ok && machine_ok) {
            log::debug!(
                "{}: skipped, ELF for another class or machine",
                path.display()
            );
            return Ok(None);
        }
    }
    if first.starts_with(b"\x7fELF") {
        return Ok(Some(Found::Elf(Opened {
            fd,
            path: path.to_path_buf(),
            first,
            stat: None,
        })));
    }
    if script::looks_like_script(&first) {
        let mut text = first;
        while text.len() < MAX_SCRIPT {
            let mut more = vec![0u8; FIRST_READ];
            let m = sys
                .read(&fd, &mut more, "rest of the linker script")
                .map_err(|e| Error::io(path, "read", e))?;
            if m == 0 {
                break;
            }
            text.extend_from_slice(&more[..m]);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let members = script::parse(&text).map_err(|fault| Error::BadScript {
            path: path.to_path_buf(),
            fault,
        })?;
        return Ok(Some(Found::Script {
            path: path.to_path_buf(),
            members,
        }));
    }
    // Not ELF, not a script: let validation name the bad magic.
    Ok(Some(Found::Elf(Opened {
        fd,
        path: path.to_path_buf(),
        first,
        stat: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_dynamic_string_tokens() {
        let o = Path::new("/opt/app/lib");
        assert_eq!(
            expand("$ORIGIN/../plugins", Some(o)).unwrap(),
            "/opt/app/lib/../plugins"
        );
        assert_eq!(expand("${ORIGIN}/x", Some(o)).unwrap(), "/opt/app/lib/x");
        assert_eq!(
            expand("/usr/$LIB", None).unwrap(),
            "/usr/lib/x86_64-linux-gnu"
        );
        assert!(expand("/opt/$PLATFORM", None)
            .unwrap()
            .starts_with("/opt/x86_64"));
        assert_eq!(expand("$UNKNOWN/x", Some(o)), None);
        assert_eq!(expand("$ORIGIN", None), None);
    }
}
