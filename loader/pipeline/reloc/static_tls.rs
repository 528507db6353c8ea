//! Initial-exec TLS of minld's objects: placing a block in glibc's static
//! TLS (`process::tls::Module::make_static`) while relocating, and the
//! references that then address it. (See `docs/design.md`, "Initial-exec
//! TLS in glibc's surplus".)

use super::apply::Reloc;
use super::resolve::{Def, Tls};
use super::{Context, Pass, Slot};
use crate::base::error::{Error, RelocFault};
use crate::base::relocs::{Class, RelocKind};
use crate::elf::hash::NameHash;
use crate::elf::symbols::Want;
use crate::model::object::{Object, ScopeRef};
use crate::process::tls;
use std::path::PathBuf;
use std::sync::Arc;

impl Pass<'_> {
    /// The references to the object's own TLS block, kept by `Pass::tls`:
    /// if one of them is initial-exec (TPOFF64), the block is placed in
    /// glibc's static TLS now, its image relocated (glibc copies it into
    /// every thread), and all of them address it there; otherwise they
    /// address minld's block as usual.
    pub(super) fn finish_tls(&mut self, cx: &Context<'_>) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending_tls);
        let first = pending
            .iter()
            .find(|(rel, _, _)| rel.kind.class == Class::TlsTpOffset);
        let placed = match first {
            Some((rel, _, _)) => Some(self.place_own(rel, cx)?),
            None => None,
        };
        for (rel, p, mut d) in pending {
            if let Some(t) = placed {
                d.tls = t;
            }
            self.tls_now(&rel, p, &d)?;
        }
        Ok(())
    }

    /// An initial-exec reference (`rel`, a TPOFF64) to the block of
    /// another of minld's objects, `d` its definition: that block is placed
    /// in glibc's static TLS now if it is not there yet (and no thread has
    /// a block of it from minld), as glibc does for a module it loaded.
    /// Other definitions are returned as they are.
    ///
    /// If the block's object is one this load relocates later (it needs
    /// this one, which is relocated first), its TLS image is not relocated
    /// yet, and glibc would initialise every thread from it: the reference
    /// is held back in `cx.held` (None returned, nothing written), and
    /// [`place_held`] places the block and writes it once that object's
    /// pass is done, as glibc postpones initialising such a block.
    pub(super) fn initial_exec_elsewhere(
        &self,
        rel: &Reloc,
        d: Def,
        cx: &mut Context<'_>,
    ) -> Result<Option<Def>, Error> {
        let Tls::Minld { modid: Some(m) } = d.tls else {
            return Ok(Some(d));
        };
        let (scope, later) = (cx.scope, cx.later);
        let owner = scope.iter().find_map(|s| match s {
            ScopeRef::Minld(o) if o.tls.as_ref().map(tls::Module::id) == Some(m) => Some(*o),
            _ => None,
        });
        let Some(o) = owner.filter(|o| !std::ptr::eq(*o, self.obj)) else {
            // The object's own block waits for the end of its pass.
            return Ok(Some(d));
        };
        if let Some(later) = later.iter().find(|l| std::ptr::eq(Arc::as_ptr(l), o)) {
            cx.held.push(HeldTls {
                slot: self.slot(rel)?,
                value: (d.value as i64).wrapping_add(rel.addend),
                owner: later.clone(),
                referrer: self.obj as *const Object,
                path: self.obj.path.clone(),
                kind: rel.kind.number,
                off: rel.off,
            });
            return Ok(None);
        }
        let tls = place_static(o, cx.scope, cx.trace)
            .map_err(|fault| self.err(rel.kind.number, rel.off, fault))?;
        Ok(Some(Def { tls, ..d }))
    }

    /// Places the object's own TLS block (at the end of its pass) in
    /// glibc's static TLS for relocation `rel`; where it is.
    fn place_own(&self, rel: &Reloc, cx: &Context<'_>) -> Result<Tls, Error> {
        place_static(self.obj, cx.scope, cx.trace)
            .map_err(|f| self.err(rel.kind.number, rel.off, f))
    }
}

/// An initial-exec reference to the block of an object the load has not
/// relocated yet, held back until it has (`Pass::initial_exec_elsewhere`).
pub(crate) struct HeldTls {
    /// The TPOFF64 word, in the referring object (still writable: that
    /// object's ifunc slots and RELRO wait for the word, see
    /// [`waits_for_held`]).
    slot: Slot,
    /// The variable's offset in the block plus the addend.
    value: i64,
    /// The object whose block it is.
    owner: Arc<Object>,
    /// The referring object, compared by address only.
    referrer: *const Object,
    /// The referring object's path, for an error.
    path: PathBuf,
    /// The relocation's type, for an error.
    kind: u32,
    /// Its r_offset, for an error.
    off: u64,
}

/// Once `done`'s pass is over: places its block in glibc's static TLS,
/// from its relocated image, if references to it were held back, and
/// writes them; they leave `held`. `scope` and `trace` as in the pass.
pub(crate) fn place_held(
    done: &Object,
    held: &mut Vec<HeldTls>,
    scope: &[ScopeRef<'_>],
    trace: bool,
) -> Result<(), Error> {
    if !held
        .iter()
        .any(|h| std::ptr::eq(Arc::as_ptr(&h.owner), done))
    {
        return Ok(());
    }
    let mut placed = None;
    for h in held.iter() {
        if !std::ptr::eq(Arc::as_ptr(&h.owner), done) {
            continue;
        }
        let tls = match placed {
            Some(t) => t,
            None => *placed.insert(place_static(done, scope, trace).map_err(|fault| {
                Error::Relocation {
                    path: h.path.clone(),
                    kind: RelocKind(h.kind),
                    offset: h.off,
                    fault,
                }
            })?),
        };
        if let Tls::Host {
            offset: Some(o), ..
        } = tls
        {
            h.slot.write64((o as i64).wrapping_add(h.value) as u64);
        }
    }
    held.retain(|h| !std::ptr::eq(Arc::as_ptr(&h.owner), done));
    Ok(())
}

/// Whether words of `o` are still held back: its ifunc resolvers and RELRO
/// wait for them (the words may lie in RELRO, or in text it relocates).
pub(crate) fn waits_for_held(o: &Object, held: &[HeldTls]) -> bool {
    held.iter().any(|h| std::ptr::eq(h.referrer, o))
}

/// Places the TLS block of `o` in glibc's static TLS; where it is.
fn place_static(o: &Object, scope: &[ScopeRef<'_>], trace: bool) -> Result<Tls, RelocFault> {
    let Some(module) = o.tls.as_ref() else {
        return Ok(Tls::Minld { modid: None });
    };
    let (size, align) = o
        .image
        .phdr(goblin::elf::program_header::PT_TLS)
        .map_or((0, 0), |t| (t.p_memsz, t.p_align));
    let sys = crate::os::sys::Sys { trace };
    let block = module
        .make_static(&o.soname, sys, &glibc_dl(scope))
        .map_err(|e| match e {
            tls::StaticTlsError::Full { glibc } => RelocFault::StaticTlsFull { size, align, glibc },
            tls::StaticTlsError::Failed { what } => RelocFault::StaticTls { size, align, what },
            tls::StaticTlsError::Sandboxed => RelocFault::StaticTlsSandboxed,
            tls::StaticTlsError::InUse => RelocFault::StaticTls {
                size,
                align,
                what: format!(
                    "the block of {} is already allocated per thread (its code used it \
                     before), and such a block cannot move",
                    o.path.display()
                ),
            },
        })?;
    Ok(Tls::Host {
        modid: block.modid,
        offset: Some(block.offset),
    })
}

/// glibc's dl functions as libc.so.6 in the scope defines them (its
/// default versions), so that a `dlopen` a preloaded library interposes is
/// not the one asked to reserve static TLS.
fn glibc_dl(scope: &[ScopeRef<'_>]) -> tls::GlibcDl {
    let libc = scope
        .iter()
        .find(|m| matches!(m, ScopeRef::Host(_)) && m.soname() == "libc.so.6");
    tls::GlibcDl::new(|name| {
        let found = libc.and_then(|m| {
            let (_, sym) = m.symbols().lookup(
                name.as_bytes(),
                NameHash::new(name.as_bytes()),
                Want::Default,
            )?;
            (sym.st_value != 0).then(|| m.bias().wrapping_add(sym.st_value as usize))
        });
        match found {
            Some(at) => log::debug!("static TLS: glibc's {name} at {at:#x}, from libc.so.6"),
            None => log::debug!(
                "static TLS: {name} not found in libc.so.6 of the scope; minld's own binding used"
            ),
        }
        found
    })
}
