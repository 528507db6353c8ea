//! Stage 4 of a load: the load set. From the root (a linker script is
//! followed to its members), every DT_NEEDED entry breadth-first, as glibc's
//! `_dl_map_object_deps` does: each resolves to one of glibc's objects, to
//! an object of this load or an earlier one, or to a file found, checked
//! and mapped now. Then (`order`) the versions each object requires are
//! checked against the dependencies that provide them, and the new objects
//! put in the order they are relocated and initialised (dependencies
//! first).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

use goblin::elf::program_header as ph;

use crate::base::error::Error;
use crate::elf::dynamic::DF_1_PIE;
use crate::model::object::{live, Dep, Object};
use crate::model::registry::Registry;
use crate::os::debug::{self, Category};
use crate::os::phases::{self, Phase};
use crate::os::sys::{FileStat, Sys};
use crate::pipeline::map;
use crate::pipeline::object;
use crate::pipeline::options::Options;
use crate::pipeline::search::{self, Found, Opened, Requester};
use crate::pipeline::validate;
use crate::process::host::{self, GLIBC_FAMILY};

/// The root of a load, opened: the file and, for a linker script, the
/// members after the first (loaded as the root's dependencies) and its
/// AS_NEEDED members.
pub(crate) struct Root {
    /// The file, or an object minld has (`search::loaded_by_soname`).
    opened: Result<Opened, Arc<Object>>,
    extra: Vec<String>,
    as_needed: Vec<String>,
}

/// The objects of a load, root first, in the order their DT_NEEDED
/// entries brought them in.
pub(crate) struct Gathered {
    /// Each object, and whether this load mapped it.
    pub(crate) list: Vec<(Arc<Object>, bool)>,
    /// The breadth-first lookup scope, root first.
    pub(crate) scope: Vec<Dep>,
    /// Beside `list`: the index of the object whose DT_NEEDED entry
    /// brought each in, and the entry (None for the root and for linker
    /// script members).
    pub(crate) needed_by: Vec<Option<(usize, String)>>,
    /// A linker script's AS_NEEDED members.
    pub(crate) as_needed: Vec<String>,
}

impl Gathered {
    /// The objects this load mapped.
    pub(crate) fn new_objects(&self) -> Vec<Arc<Object>> {
        self.list
            .iter()
            .filter(|(_, n)| *n)
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// Each object with the object and the DT_NEEDED entry that brought it
    /// in, for the policy's report.
    pub(crate) fn with_requesters(&self) -> Vec<(&Object, Option<(&Path, &str)>)> {
        self.list
            .iter()
            .zip(&self.needed_by)
            .map(|((o, _), by)| {
                let by = by.as_ref();
                (
                    &**o,
                    by.map(|(p, n)| (self.list[*p].0.path.as_path(), n.as_str())),
                )
            })
            .collect()
    }
}

/// A name that is one of glibc's own libraries: the host's copy, never a
/// second one.
pub(crate) fn host_glibc(reg: &Registry, name: &str) -> Result<Option<Dep>, Error> {
    let Some(target) = host::glibc_target(name) else {
        return Ok(None);
    };
    let h = reg
        .host
        .by_soname(target)
        .ok_or_else(|| Error::NotFound {
            name: name.to_string(),
            needed_by: crate::base::error::Requester::Caller,
            confined: false,
            tried: vec![],
        })?
        .clone();
    Ok(Some(Dep::Host(h, None)))
}

/// The object the load is made for (`Loader::caller`), as the search asks
/// for it.
fn caller_of(opts: &Options) -> Option<Requester<'_>> {
    opts.caller.as_deref().map(|c| Requester {
        path: &c.path,
        rpath: c.rpath.as_deref(),
        runpath: c.runpath.as_deref(),
        inherited: &c.inherited,
        nodeflib: c.nodeflib,
    })
}

/// With `Loader::reuse_loaded`: the copy glibc already has of the file
/// `name` finds, if it has one (the file is found, opened and identified
/// by `fstat` as for a load, then compared with glibc's objects). When
/// glibc has none, the file opened to ask is handed back for
/// [`open_root`], so the load does not search and open it a second time
/// (`None`: nothing was opened: the option is off, or `name` is a linker
/// script).
pub(crate) fn loaded_by_glibc(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    name: &str,
) -> Result<Result<Dep, Option<Opened>>, Error> {
    if !opts.reuse_loaded {
        return Ok(Err(None));
    }
    let caller = caller_of(opts);
    let Found::Elf(opened) = find(sys, opts, name, caller.as_ref())? else {
        return Ok(Err(None));
    };
    let st = sys
        .fstat(
            &opened.fd,
            "size and identity (device, inode) of the file, compared with glibc's objects",
        )
        .map_err(|e| Error::io(&opened.path, "fstat", e))?;
    Ok(match reg.host.loaded_from(sys, (st.dev, st.ino)) {
        Some((h, pin)) => Ok(Dep::Host(h, pin.map(Arc::new))),
        // Validation uses this fstat rather than making another.
        None => Err(Some(Opened {
            stat: Some(st),
            ..opened
        })),
    })
}

/// Finds and opens the root (a bare name that is a loaded soname: that object;
/// `asked`: the file [`loaded_by_glibc`] opened already);
/// a linker script is followed to its first member, the others its dependencies.
pub(crate) fn open_root(
    sys: &Sys,
    reg: &Registry,
    opts: &Options,
    name: &str,
    asked: Option<Opened>,
) -> Result<Root, Error> {
    if let Some(o) = search::loaded_by_soname(reg, opts.namespace_id(), opts.run_code, name) {
        let (opened, extra, as_needed) = (Err(o), Vec::new(), Vec::new());
        return Ok(Root {
            opened,
            extra,
            as_needed,
        });
    }
    if let Some(opened) = asked {
        return Ok(Root {
            opened: Ok(opened),
            extra: Vec::new(),
            as_needed: Vec::new(),
        });
    }
    let caller = caller_of(opts);
    let (path, members) = match find(sys, opts, name, caller.as_ref())? {
        Found::Elf(opened) => {
            return Ok(Root {
                opened: Ok(opened),
                extra: Vec::new(),
                as_needed: Vec::new(),
            })
        }
        Found::Script { path, members } => (path, members),
    };
    let mut plain = members
        .iter()
        .filter(|m| !m.as_needed)
        .map(|m| m.name.clone());
    let first = plain.next().unwrap_or_default();
    let extra: Vec<String> = plain.collect();
    let as_needed = members
        .iter()
        .filter(|m| m.as_needed)
        .map(|m| m.name.clone())
        .collect();
    debug::print_if(Category::Libs, || {
        format!("{}: linker script, following it to {first}", path.display())
    });
    let requester = Requester {
        path: &path,
        rpath: None,
        runpath: None,
        inherited: &[],
        nodeflib: search::nodeflib(sys, caller.as_ref()),
    };
    match find(sys, opts, &first, Some(&requester))? {
        Found::Elf(opened) => Ok(Root {
            opened: Ok(opened),
            extra,
            as_needed,
        }),
        Found::Script { path: inner, .. } => Err(Error::BadScript {
            path,
            fault: crate::base::error::ScriptFault::NestedScript { member: inner },
        }),
    }
}

/// Maps the root and walks every DT_NEEDED entry breadth-first.
pub(crate) fn gather(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    root: Root,
) -> Result<Gathered, Error> {
    let Root {
        opened,
        extra,
        as_needed,
    } = root;
    let first = match opened {
        Ok(opened) => object_for(sys, reg, opened, opts)?,
        Err(loaded) => (loaded, false),
    };
    walk(sys, reg, opts, first, extra, as_needed)
}

/// Walks every DT_NEEDED entry breadth-first from the root object `first`
/// (with a linker script's `extra` members and its `as_needed` ones).
pub(crate) fn walk(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    first: (Arc<Object>, bool),
    extra: Vec<String>,
    as_needed: Vec<String>,
) -> Result<Gathered, Error> {
    let mut cx = Walk {
        sys,
        reg,
        opts,
        extra,
    };
    let mut g = Gathered {
        scope: vec![Dep::Minld(first.0.clone())],
        list: vec![first],
        needed_by: vec![None],
        as_needed,
    };
    let mut i = 0;
    while i < g.list.len() {
        let (obj, new) = (g.list[i].0.clone(), g.list[i].1);
        if new {
            let _ = obj.inherited.set(inherited(&g, i));
            let deps = cx.needed(&obj, &mut g, i)?;
            let _ = obj.deps.set(deps);
        } else {
            known(&obj, &mut g, i);
        }
        i += 1;
    }
    Ok(g)
}

/// The DT_RPATHs the object at `i` of the list inherits: those of the
/// object whose DT_NEEDED brought it in (the root, for a linker script's
/// members), then that one's own inherited list. The root of an open
/// inherits none: glibc uses the caller's RPATHs to find the root itself
/// and then forgets it (a dlopen'ed object has no loader), so the root's
/// dependencies are not searched in the caller's RPATHs.
fn inherited(g: &Gathered, i: usize) -> Vec<(PathBuf, String)> {
    /// An object's own RPATH as an inherited entry: none with a RUNPATH,
    /// which makes glibc ignore its RPATH.
    fn own(path: &Path, rpath: Option<&str>, runpath: Option<&str>) -> Option<(PathBuf, String)> {
        rpath
            .filter(|_| runpath.is_none())
            .map(|rp| (path.to_path_buf(), rp.to_string()))
    }
    if i == 0 {
        return Vec::new();
    }
    let parent = g.needed_by.get(i).cloned().flatten().map_or(0, |(p, _)| p);
    let p = &g.list[parent].0;
    own(
        &p.path,
        p.dynamic.rpath.as_deref(),
        p.dynamic.runpath.as_deref(),
    )
    .into_iter()
    .chain(p.inherited.get().into_iter().flatten().cloned())
    .collect()
}

/// An object loaded before: its dependencies are known; they join the
/// scope, and minld's among them the list.
fn known(obj: &Object, g: &mut Gathered, i: usize) {
    for d in obj.deps() {
        if !g.scope.iter().any(|s| s.path() == d.path()) {
            g.scope.push(d.clone());
        }
        if let Dep::Minld(o) = d {
            if !g.list.iter().any(|(l, _)| Arc::ptr_eq(l, o)) {
                g.list.push((o.clone(), false));
                g.needed_by.push(Some((i, o.soname.clone())));
            }
        }
    }
}

/// What the walk over DT_NEEDED entries works with.
struct Walk<'a> {
    sys: &'a Sys,
    reg: &'a mut Registry,
    opts: &'a Options,
    /// A linker script's members after the first: the root's dependencies.
    extra: Vec<String>,
}

impl Walk<'_> {
    /// Resolves the DT_NEEDED entries of a new object (at `i`; the root's
    /// include a script's members), adding what they bring to the list and
    /// the scope; its dependencies, in order.
    fn needed(&mut self, obj: &Arc<Object>, g: &mut Gathered, i: usize) -> Result<Vec<Dep>, Error> {
        let mut names: Vec<String> = obj.dynamic.needed.clone();
        if i == 0 {
            names.extend(self.extra.iter().cloned());
        }
        let mut deps: Vec<Dep> = Vec::new();
        for n in names {
            let dep = dependency(self.sys, self.reg, self.opts, obj, &n, &mut g.list, i)?;
            let script_member = i == 0 && self.extra.contains(&n);
            g.needed_by
                .resize(g.list.len(), (!script_member).then(|| (i, n.clone())));
            let same = |d: &Dep| d.path() == dep.path();
            if !deps.iter().any(same) {
                if !g.scope.iter().any(same) {
                    g.scope.push(dep.clone());
                }
                deps.push(dep);
            }
        }
        Ok(deps)
    }
}

/// Finds a name: in a namespace only in its permitted directories (glibc's
/// libm and libmvec excepted), else by the full search.
fn find(
    sys: &Sys,
    opts: &Options,
    name: &str,
    requester: Option<&Requester<'_>>,
) -> Result<Found, Error> {
    let _phase = phases::enter(Phase::Search);
    match &opts.namespace {
        // Only beside the host's libc: never a file the plugin points at.
        Some(_) if GLIBC_FAMILY.contains(&name) => {
            search::find_confined(sys, name, None, &[host::glibc_family_dir()])
        }
        Some(ns) => search::find_confined(sys, name, requester, &ns.permitted),
        None => search::find(sys, name, requester, &opts.search_paths),
    }
}

/// Resolves one DT_NEEDED entry of `obj` (at `index` in `list`).
fn dependency(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    obj: &Arc<Object>,
    n: &str,
    list: &mut Vec<(Arc<Object>, bool)>,
    index: usize,
) -> Result<Dep, Error> {
    if let Some(target) = host::glibc_target(n) {
        if let Some(h) = reg.host.by_soname(target) {
            return Ok(Dep::Host(h.clone(), None));
        }
    }
    let base = n.rsplit('/').next().unwrap_or(n);
    // glibc's libm and libmvec are the host's in a namespace too, and an
    // object of the load stands for them only if it is the real file.
    let glibc_family = opts.namespace.is_some() && GLIBC_FAMILY.contains(&base);
    let named = |o: &Object| {
        o.soname == base && (!glibc_family || host::is_glibc_family(o.dev_ino.0, o.dev_ino.1))
    };
    if let Some(pos) = list.iter().position(|(o, _)| named(o)) {
        let o = &list[pos].0;
        return Ok(if pos > index {
            Dep::Minld(o.clone())
        } else {
            Dep::Back(Arc::downgrade(o))
        });
    }
    if opts.reuse_host || glibc_family {
        if let Some(h) = reg.host.by_soname(base) {
            return Ok(Dep::Host(h.clone(), None));
        }
        if let Some((h, pin)) = reg.host.dependency(base) {
            return Ok(Dep::Host(h, Some(Arc::new(pin))));
        }
    }
    if let Some(o) = reg
        .by_file
        .values()
        .filter_map(Weak::upgrade)
        .find(|o| named(o) && o.namespace == opts.namespace_id())
    {
        list.push((o.clone(), false));
        return Ok(Dep::Minld(o));
    }
    let requester = Requester {
        path: &obj.path,
        rpath: obj.dynamic.rpath.as_deref(),
        runpath: obj.dynamic.runpath.as_deref(),
        inherited: obj.inherited.get().map_or(&[], Vec::as_slice),
        nodeflib: obj.dynamic.nodeflib(),
    };
    let opened = match find(sys, opts, n, Some(&requester))? {
        Found::Elf(o) => o,
        Found::Script { path, .. } => {
            return Err(Error::BadScript {
                path,
                fault: crate::base::error::ScriptFault::Dependency {
                    needed: n.to_string(),
                    of: obj.path.clone(),
                },
            })
        }
    };
    let entry = object_for(sys, reg, opened, opts)?;
    // The same file under another name, already in this load.
    if let Some(pos) = list.iter().position(|(o, _)| Arc::ptr_eq(o, &entry.0)) {
        let o = &list[pos].0;
        return Ok(if pos > index {
            Dep::Minld(o.clone())
        } else {
            Dep::Back(Arc::downgrade(o))
        });
    }
    let dep = Dep::Minld(entry.0.clone());
    list.push(entry);
    Ok(dep)
}

/// The object for an open file: one minld already has (same device and
/// inode), or a new mapping. Its code may run unless `Loader::link`; only
/// then are its unwind tables handed to the unwinder. Under a policy an
/// executable stack is left to the policy's report (see `check_policy`).
pub(crate) fn object_for(
    sys: &Sys,
    reg: &Registry,
    opened: Opened,
    opts: &Options,
) -> Result<(Arc<Object>, bool), Error> {
    let namespace = opts.namespace_id();
    let Opened {
        fd,
        path,
        first,
        stat,
    } = opened;
    let headers = {
        let _phase = phases::enter(Phase::Validate);
        validate::read_headers(sys, &fd, &path, &first, stat, opts.policy.is_some())?
    };
    let (key, stat) = ((headers.stat.dev, headers.stat.ino), headers.stat);
    if let Some(o) = reg
        .by_file
        .get(&(namespace, key.0, key.1))
        .and_then(Weak::upgrade)
    {
        debug::print_if(Category::Libs, || {
            format!("{}: already loaded by minld, reused", path.display())
        });
        return Ok((o, false));
    }
    let map_phase = phases::enter(Phase::Map);
    let mapped = map::map_and_read_dynamic(sys, &fd, &headers, &path)?;
    drop(fd);
    drop(map_phase);
    object_from(mapped, path, stat, opts)
}

/// The object for a mapped image whose headers (`stat`: its identity) were
/// read from `path`: its tables read, its TLS module registered.
pub(crate) fn object_from(
    mut mapped: map::Mapped,
    path: PathBuf,
    stat: FileStat,
    opts: &Options,
) -> Result<(Arc<Object>, bool), Error> {
    let (trusted, namespace) = (opts.run_code, opts.namespace_id());
    let key = (stat.dev, stat.ino);
    let _phase = phases::enter(Phase::Tables);
    if mapped.dynamic().flags_1 & DF_1_PIE != 0 {
        return Err(Error::Executable {
            path,
            reason: crate::base::error::ExecutableKind::Pie,
        });
    }
    let needs = mapped.read_verneeds()?;
    // SAFETY: the image goes into the Object beside the tables that point
    // into it; Object's Drop unmaps it last, once nothing uses them.
    let map::Parts {
        image,
        dynamic: d,
        symbols,
        build_id,
    } = unsafe { mapped.into_parts() }?;
    let need_by_index = object::by_index(&needs);
    let tls = object::tls_module(&path, &image)?;
    let eh_frame_hdr = image
        .phdr(ph::PT_GNU_EH_FRAME)
        .map(|e| image.bias.at(e.p_vaddr))
        .filter(|&a| trusted && image.readable(a, 12))
        .unwrap_or(0);
    let soname = d.soname.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    debug::print_if(Category::Libs, || {
        format!(
            "{}: mapped at {:#x} (soname {soname})",
            path.display(),
            image.bias.0
        )
    });
    let (start, end) = (image.start, image.start + image.len);
    let object = Arc::new(Object {
        path,
        soname,
        dev_ino: key,
        stat,
        build_id,
        namespace,
        image: std::mem::ManuallyDrop::new(image),
        dynamic: d,
        symbols,
        needs,
        need_by_index,
        deps: OnceLock::new(),
        initialized: Default::default(),
        tls,
        tlsdesc: Default::default(),
        eh_frame_hdr,
        unwind: OnceLock::new(),
        debugger: OnceLock::new(),
        lazy_scope: OnceLock::new(),
        global_deps: OnceLock::new(),
        inherited: OnceLock::new(),
    });
    live::insert(start, end, eh_frame_hdr, namespace, Arc::downgrade(&object));
    Ok((object, true))
}
