//! The link cache (`Loader::cache`, `MINLD_CACHE`): what a load worked
//! out, kept for the next process that loads the same library.
//!
//! After a load that went the normal way, minld records its lookup scope
//! as identities, in the order relocation searched it: the host's objects
//! by their build-id notes, minld's by build-id and file (device, inode,
//! size, mtime and ctime to the nanosecond). It records too, for each
//! object it relocated, the symbols its relocations bound, each as (scope
//! position, `st_value`), never an address, and DT_RELA's leading run of
//! RELATIVE relocations as RELR words. The next load of the library
//! searches, opens, validates and maps everything as usual; then, if the
//! record's scope is the load's scope file for file, and each object's
//! symbol and relocation counts are the ones recorded, relocation takes
//! its bindings from the record instead of looking anything up, and the
//! RELR words instead of DT_RELA's run. Anything else means the normal
//! way, and `MINLD_DEBUG=libs` says which check failed. An entry that is
//! proven but does not fit its object (`Pass::fits`) sends that object
//! the normal way and the record is removed.
//!
//! What stays per process: ifunc resolvers (their answer depends on the
//! CPU), TLS module ids, the namespace's STB_GNU_UNIQUE table (a recorded
//! unique binding is looked up in it again), minld's interposed
//! functions, init and fini.
//!
//! The files: `format` is the layout and its parser, `record` writes a
//! record from a load, `store` is the directory on disk.

pub(crate) mod format;
mod record;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use format::{Ident, ObjectEntry, Record};

use crate::model::object::{Object, ScopeRef};
use crate::os::debug::{self, Category};
use crate::os::sys::{FileStat, Sys};
use crate::pipeline::options::Options;
use crate::pipeline::reloc::Resolved;

/// The link cache of one load: its directory.
pub(crate) struct Cache {
    /// The directory records are kept in.
    dir: PathBuf,
    /// The calls' tracer.
    sys: Sys,
}

/// A record proven to describe this load: relocation takes its bindings
/// and RELR words from it.
pub(crate) struct Proven {
    /// The record, mapped.
    map: store::Mapped,
    /// Its file.
    path: PathBuf,
    /// Removes it, if an object found it did not fit.
    sys: Sys,
    /// Some object found its entry did not fit (`Proven::misfit`).
    misfit: std::cell::Cell<bool>,
}

impl Proven {
    /// Object `i` of the relocation order.
    pub(crate) fn object(&self, i: usize) -> ObjectEntry<'_> {
        Record::already_checked(self.map.bytes()).object(i)
    }

    /// Object `obj`'s entry did not fit it (`why`): it was relocated the
    /// normal way, and the record is removed once the load is done with
    /// it, so that the next load writes a good one.
    pub(crate) fn misfit(&self, obj: &std::path::Path, why: &str) {
        debug::print_if(Category::Libs, || {
            format!(
                "link cache: {}: does not fit {}: {why}; that object the normal way, the record removed",
                self.path.display(),
                obj.display()
            )
        });
        self.misfit.set(true);
    }
}

impl Drop for Proven {
    fn drop(&mut self) {
        if self.misfit.get() {
            store::remove(&self.sys, &self.path);
        }
    }
}

/// A file's identity as a record holds it.
fn ident(st: &FileStat) -> Ident {
    Ident {
        dev: st.dev,
        ino: st.ino,
        size: st.size,
        mtime: st.mtime,
        ctime: st.ctime,
    }
}

/// What scope member `m` is recognised by: its build-id note's hash (0:
/// none) and its file's identity. minld's objects have both (their fstat
/// came with opening them); a host object is recognised by its build-id
/// alone (no system call), and one without a build-id cannot be (the
/// file at its path now need not be the one glibc mapped): None.
fn member_ident(m: ScopeRef<'_>) -> Option<(u64, Ident)> {
    match m {
        ScopeRef::Minld(o) => Some((o.build_id, ident(&o.stat))),
        ScopeRef::Host(h) if h.build_id != 0 => Some((h.build_id, Ident::default())),
        ScopeRef::Host(_) => None,
    }
}

/// A minld object of the scope that was not opened by a path (copied from
/// bytes, mapped from a caller's descriptor): it has no identity a record
/// could be proven against in another process, so the load neither uses
/// nor writes one.
fn without_path<'a>(members: &[ScopeRef<'a>]) -> Option<&'a Object> {
    members.iter().find_map(|m| match m {
        ScopeRef::Minld(o) if !o.image.source.by_path() => Some(*o),
        _ => None,
    })
}

impl Cache {
    /// The cache of a load with these options: None when it is off, or
    /// when the load is one it cannot prove (a namespace's rules or a
    /// policy decide bindings a record does not hold; a load that links
    /// only or defers its code is not the process's).
    pub(crate) fn of(opts: &Options) -> Option<Cache> {
        let dir = opts.cache.clone()?;
        let provable =
            opts.run_code && !opts.defer_init && opts.namespace.is_none() && opts.policy.is_none();
        provable.then_some(Cache {
            dir,
            sys: Sys { trace: opts.trace },
        })
    }

    /// The record's path for `root`: in the directory, its file name and a
    /// hash of its path, of how it is bound, of the host's objects (their
    /// build-ids, in scope order) and of the paths of the objects the load
    /// relocates, so that two programs, a program with and without
    /// LD_PRELOAD, or a load that maps a dependency and one that finds it
    /// already loaded keep records of their own instead of replacing each
    /// other's; a file replaced at the same path replaces its record.
    fn record_path<'a>(
        &self,
        root: &Object,
        members: &[ScopeRef<'_>],
        relocated: impl Iterator<Item = &'a Object>,
        bound_now: bool,
    ) -> Option<PathBuf> {
        let mut key = root.path.as_os_str().as_encoded_bytes().to_vec();
        key.push(u8::from(bound_now));
        for m in members {
            if let ScopeRef::Host(h) = m {
                key.extend(h.build_id.to_le_bytes());
            }
        }
        for o in relocated {
            key.push(0);
            key.extend(o.path.as_os_str().as_encoded_bytes());
        }
        let file = root
            .path
            .file_name()?
            .to_string_lossy()
            .replace(['/', '\0'], "_");
        let name = format!("{file}-{:016x}.minld", format::checksum(&key));
        Some(self.dir.join(name))
    }

    /// Says what happened to the cache for this load (`MINLD_DEBUG=libs`).
    fn say(&self, what: std::fmt::Arguments<'_>) {
        debug::print_if(Category::Libs, || format!("link cache: {what}"));
    }

    /// The record for this load of `root`, if there is one and it is
    /// proven: the scope (`members`) the same files in the same order, and
    /// each of `order`'s objects the one recorded.
    pub(crate) fn find(
        &self,
        root: &Object,
        members: &[ScopeRef<'_>],
        order: &[Arc<Object>],
        bound_now: bool,
    ) -> Option<Proven> {
        if let Some(o) = without_path(members) {
            self.say(format_args!(
                "{}: not opened by a path (bytes or a descriptor), nothing to prove a record against; not used",
                o.path.display()
            ));
            return None;
        }
        let path = self.record_path(root, members, order.iter().map(|o| &**o), bound_now)?;
        if let Err(why) = store::check_dir(&self.sys, &self.dir) {
            log::warn!("{why}; the link cache is not used");
            self.say(format_args!("{why}; not used"));
            return None;
        }
        let map = match store::read(&self.sys, &path) {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.say(format_args!("{}: no record yet", path.display()));
                return None;
            }
            Err(why) => {
                self.say(format_args!("{why}; not used"));
                return None;
            }
        };
        let checked = Record::parse(map.bytes())
            .map_err(|e| e.to_string())
            .and_then(|r| prove(&r, members, order, bound_now));
        match checked {
            Ok(()) => {
                self.say(format_args!(
                    "{}: proven, bindings taken from it",
                    path.display()
                ));
                Some(Proven {
                    map,
                    path,
                    sys: self.sys,
                    misfit: std::cell::Cell::new(false),
                })
            }
            Err(why) => {
                self.say(format_args!("{}: {why}; the normal way", path.display()));
                None
            }
        }
    }

    /// Records a load of `root` that went the normal way; a failure only
    /// means the next load goes the normal way too.
    pub(crate) fn save(
        &self,
        root: &Object,
        members: &[ScopeRef<'_>],
        order: &[(Arc<Object>, Resolved)],
        bound_now: bool,
    ) {
        if without_path(members).is_some() {
            return; // find said why
        }
        let relocated = order.iter().map(|(o, _)| &**o);
        let Some(path) = self.record_path(root, members, relocated, bound_now) else {
            return;
        };
        let idents: Option<Vec<(u64, Ident)>> = members.iter().map(|&m| member_ident(m)).collect();
        let saved = store::check_dir(&self.sys, &self.dir)
            .and_then(|()| {
                idents.ok_or_else(|| "a host object has no build-id to recognise it by".to_string())
            })
            .and_then(|idents| record::build(&self.sys, members, &idents, order, bound_now))
            .and_then(|bytes| store::write(&self.sys, &path, &bytes).map(|()| bytes.len()));
        match saved {
            Ok(n) => self.say(format_args!("{}: recorded ({n} bytes)", path.display())),
            Err(why) => self.say(format_args!("{}: not recorded: {why}", path.display())),
        }
        // The writers killed between their write and their rename left
        // temporary files nothing else removes.
        if store::check_dir(&self.sys, &self.dir).is_ok() {
            for removed in store::prune(&self.sys, &self.dir) {
                self.say(format_args!("{removed}"));
            }
        }
    }
}

/// The checks that make a record this load's: how it binds, the scope
/// file for file, and each object's counts.
fn prove(
    r: &Record<'_>,
    members: &[ScopeRef<'_>],
    order: &[Arc<Object>],
    bound_now: bool,
) -> Result<(), String> {
    if (r.flags() & format::BOUND_NOW != 0) != bound_now {
        return Err("recorded for the other binding mode".into());
    }
    if r.members() as usize != members.len() {
        return Err(format!(
            "the scope has {} members, the record {}",
            members.len(),
            r.members()
        ));
    }
    for (i, &m) in members.iter().enumerate() {
        let rec = r.member(i);
        let now = member_ident(m);
        if now != Some((rec.build_id, rec.id)) || rec.minld != matches!(m, ScopeRef::Minld(_)) {
            let now = now.map_or_else(
                || "a host object without a build-id, which cannot be recognised".to_string(),
                |(b, id)| format!("build-id {b:#x}, {id}"),
            );
            return Err(format!(
                "scope member {i} ({}) is not the file recorded: now {now}, recorded build-id {:#x}, {}",
                m.path().display(),
                rec.build_id,
                rec.id
            ));
        }
    }
    if r.objects() != order.len() {
        return Err(format!(
            "{} objects to relocate, the record has {}",
            order.len(),
            r.objects()
        ));
    }
    for (i, o) in order.iter().enumerate() {
        prove_object(&r.object(i), o, members)?;
    }
    Ok(())
}

/// Object `o` is the one recorded at its place in the relocation order.
fn prove_object(e: &ObjectEntry<'_>, o: &Object, members: &[ScopeRef<'_>]) -> Result<(), String> {
    let at = members.get(e.member() as usize);
    if !matches!(at, Some(ScopeRef::Minld(x)) if std::ptr::eq(*x, o)) {
        return Err(format!(
            "{} is not at scope position {}",
            o.path.display(),
            e.member()
        ));
    }
    let counts = (
        o.symbols.len() as u64,
        o.dynamic.rela.len() as u64,
        o.dynamic.jmprel.len() as u64,
    );
    if counts != (e.symbols(), e.rela_len(), e.jmprel_len()) {
        return Err(format!(
            "{}: symbols, DT_RELA and DT_JMPREL counts {counts:?}, recorded ({}, {}, {})",
            o.path.display(),
            e.symbols(),
            e.rela_len(),
            e.jmprel_len()
        ));
    }
    if (0..e.binding_count()).any(|k| e.binding(k).symi as u64 >= counts.0) {
        return Err(format!(
            "{}: a binding names a symbol outside its table",
            o.path.display()
        ));
    }
    Ok(())
}

/// Checks a link record's structure as minld does before using one.
pub(crate) fn check(bytes: &[u8]) -> Result<(), format::RecordError> {
    Record::parse(bytes).map(|_| ())
}
