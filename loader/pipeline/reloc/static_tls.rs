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
    ///
    /// An image holding ifunc slots (an IRELATIVE in `.tdata`) is not
    /// relocated until they are filled: with [`Resolvers::AfterPass`] their
    /// resolvers run now (the object is relocated, as glibc runs an
    /// IRELATIVE during the object's relocation); with
    /// [`Resolvers::AtRun`] the image waits in `cx.images`, and with it
    /// its placement and the references to the block
    /// ([`TlsWaiting::after_ifuncs`]).
    pub(super) fn finish_tls(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        if self.image_slots().next().is_some() {
            match cx.resolvers {
                Resolvers::AfterPass => self.fill_image_slots()?,
                Resolvers::AtRun => {
                    let ie = self.pending_tls.iter().any(|(r, _, _)| is_ie(r));
                    let own = if ie {
                        std::mem::take(&mut self.pending_tls)
                    } else {
                        Vec::new()
                    };
                    cx.images.push(HeldImage {
                        obj: self.obj as *const Object as usize,
                        own,
                    });
                }
                Resolvers::Never => {}
            }
        }
        let scope = cx.scope;
        self.place_pending(|| glibc_dl(scope), cx.trace)
    }

    /// Applies the references to the object's own block kept in
    /// `pending_tls`, placing it in static TLS first if one is
    /// initial-exec; `dl` gives glibc's dl functions, `trace` whether the
    /// load is traced.
    fn place_pending(
        &mut self,
        dl: impl FnOnce() -> tls::GlibcDl,
        trace: bool,
    ) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending_tls);
        let placed = match pending.iter().find(|(rel, _, _)| is_ie(rel)) {
            Some((rel, _, _)) => Some(
                place_static(self.obj, &dl(), trace)
                    .map_err(|f| self.err(rel.kind.number, rel.off, f))?,
            ),
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

    /// The ifunc slots of the object (`deferred`) that lie in its TLS
    /// initialisation image (PT_TLS's file part), by index.
    fn image_slots(&self) -> impl Iterator<Item = usize> + '_ {
        let image = self
            .obj
            .image
            .phdr(goblin::elf::program_header::PT_TLS)
            .map(|t| {
                let lo = self.bias.wrapping_add(t.p_vaddr as usize);
                (lo, lo.saturating_add(t.p_filesz as usize))
            });
        self.deferred.iter().enumerate().filter_map(move |(i, d)| {
            let (lo, hi) = image?;
            let (a, len) = (d.slot.addr(), d.slot.len);
            (a < hi && a.saturating_add(len) > lo).then_some(i)
        })
    }

    /// Runs the resolvers of the ifunc slots in the object's TLS image now
    /// (the pass is over but for its TLS references) and fills them; the
    /// other slots stay for `apply_deferred`.
    fn fill_image_slots(&mut self) -> Result<(), Error> {
        let inside: Vec<usize> = self.image_slots().collect();
        let mut now = Vec::with_capacity(inside.len());
        for i in inside.into_iter().rev() {
            now.push(self.deferred.remove(i));
        }
        now.reverse();
        {
            let _phase = crate::os::phases::enter(crate::os::phases::Phase::Init);
            super::apply_deferred(self.obj, &now, true)?;
        }
        if self.obj.dynamic.textrel() {
            // `apply_deferred` gave the text its protections back; the
            // pass's last words (its TLS references) may still lie there.
            self.obj.image.reprotect_for_textrel(libc::PROT_WRITE)?;
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
    /// pass is done, as glibc postpones initialising such a block. So is a
    /// reference to a block whose image waits for its ifunc slots
    /// (`cx.images`, a prepared load): [`TlsWaiting::after_ifuncs`]
    /// writes it.
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
        let owner: Option<&Object> = scope.iter().find_map(|s| match s {
            ScopeRef::Minld(o) if o.tls.as_ref().map(tls::Module::id) == Some(m) => Some(*o),
            _ => None,
        });
        let Some(o) = owner.filter(|o| !std::ptr::eq(*o, self.obj)) else {
            // The object's own block waits for the end of its pass.
            return Ok(Some(d));
        };
        let addr = o as *const Object as usize;
        let waits = later.iter().any(|l| std::ptr::eq(Arc::as_ptr(l), o))
            || cx.images.iter().any(|i| i.is(o));
        if waits {
            cx.held.push(HeldTls {
                slot: self.slot(rel)?,
                value: (d.value as i64).wrapping_add(rel.addend),
                owner: addr,
                referrer: self.obj as *const Object as usize,
                path: self.obj.path.clone(),
                kind: rel.kind.number,
                off: rel.off,
            });
            return Ok(None);
        }
        let tls = place_static(o, &glibc_dl(cx.scope), cx.trace)
            .map_err(|fault| self.err(rel.kind.number, rel.off, fault))?;
        Ok(Some(Def { tls, ..d }))
    }
}

/// Whether `rel` is an initial-exec reference (TPOFF64).
fn is_ie(rel: &Reloc) -> bool {
    rel.kind.class == Class::TlsTpOffset
}

/// When the ifunc resolvers of a load's objects run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolvers {
    /// After each object's pass (`Loader::open`).
    AfterPass,
    /// When the prepared load runs (`Loader::prepare`, `Prepared::run`).
    AtRun,
    /// Never (`Loader::link`: the slots point at a function that aborts).
    Never,
}

/// A TLS image of a prepared load holding ifunc slots, not relocated
/// before its resolvers run (`Pass::finish_tls`): its block goes to static
/// TLS only then, and references to it wait.
pub(crate) struct HeldImage {
    /// The object, compared by address only.
    obj: usize,
    /// The object's references to its own block, if one of them is
    /// initial-exec (else they were applied, to minld's block).
    own: Vec<(Reloc, Slot, Def)>,
}

impl HeldImage {
    /// Whether this is `o`'s image.
    pub(super) fn is(&self, o: &Object) -> bool {
        self.obj == o as *const Object as usize
    }
}

/// What a prepared load's static TLS waits for: TLS images whose ifunc
/// slots are not filled yet and the initial-exec references to their
/// blocks ([`TlsWaiting::after_ifuncs`] once they are).
pub(crate) struct TlsWaiting {
    /// References to blocks not placed yet.
    held: Vec<HeldTls>,
    /// The images waiting for their ifunc slots.
    images: Vec<HeldImage>,
    /// glibc's dl functions, as the load's scope defines them.
    dl: tls::GlibcDl,
    /// The load is traced.
    trace: bool,
}

impl TlsWaiting {
    /// What a relocation left waiting (`held`, `images`), with the
    /// load's `scope` and `trace`; None if nothing waits.
    pub(crate) fn new(
        held: Vec<HeldTls>,
        images: Vec<HeldImage>,
        scope: &[ScopeRef<'_>],
        trace: bool,
    ) -> Option<TlsWaiting> {
        (!held.is_empty() || !images.is_empty()).then(|| TlsWaiting {
            held,
            images,
            dl: glibc_dl(scope),
            trace,
        })
    }

    /// Once `o`'s ifunc slots are filled: if its image waited, places its
    /// block (if initial-exec references it), applies its own references
    /// and writes those held back. The referring objects' RELRO must
    /// still be writable.
    pub(crate) fn after_ifuncs(&mut self, o: &Object) -> Result<(), Error> {
        let Some(at) = self.images.iter().position(|i| i.is(o)) else {
            return Ok(());
        };
        let image = self.images.remove(at);
        let sys = (self.dl, self.trace);
        if !image.own.is_empty() {
            let mut pass = Pass::new(o, Vec::new());
            pass.pending_tls = image.own;
            pass.place_pending(|| sys.0, sys.1)?;
        }
        place_held(o, &mut self.held, &sys)
    }
}

/// An initial-exec reference to the block of an object the load has not
/// relocated yet, or whose image waits for its ifunc slots, held back
/// until it is ready (`Pass::initial_exec_elsewhere`).
pub(crate) struct HeldTls {
    /// The TPOFF64 word, in the referring object (still writable: that
    /// object's ifunc slots and RELRO wait for the word, see
    /// [`waits_for_held`]).
    slot: Slot,
    /// The variable's offset in the block plus the addend.
    value: i64,
    /// The object whose block it is, compared by address only.
    owner: usize,
    /// The referring object, compared by address only.
    referrer: usize,
    /// The referring object's path, for an error.
    path: PathBuf,
    /// The relocation's type, for an error.
    kind: u32,
    /// Its r_offset, for an error.
    off: u64,
}

/// Once `done`'s image is relocated (its pass over, and the ifunc slots
/// in it filled): places its block in glibc's static TLS, from that
/// image, if references to it were held back, and writes them; they leave
/// `held`. `sys`: glibc's dl functions and whether the load is traced.
pub(crate) fn place_held(
    done: &Object,
    held: &mut Vec<HeldTls>,
    sys: &(tls::GlibcDl, bool),
) -> Result<(), Error> {
    if !held_for(done, held) {
        return Ok(());
    }
    let addr = done as *const Object as usize;
    let mut placed = None;
    for h in held.iter() {
        if h.owner != addr {
            continue;
        }
        let tls = match placed {
            Some(t) => t,
            None => *placed.insert(place_static(done, &sys.0, sys.1).map_err(|fault| {
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
    held.retain(|h| h.owner != addr);
    Ok(())
}

/// Whether references to `o`'s block are held back.
pub(super) fn held_for(o: &Object, held: &[HeldTls]) -> bool {
    let addr = o as *const Object as usize;
    held.iter().any(|h| h.owner == addr)
}

/// Whether words of `o` are still held back: its ifunc resolvers and RELRO
/// wait for them (the words may lie in RELRO, or in text it relocates).
pub(crate) fn waits_for_held(o: &Object, held: &[HeldTls]) -> bool {
    let addr = o as *const Object as usize;
    held.iter().any(|h| h.referrer == addr)
}

/// Places the TLS block of `o` in glibc's static TLS (asking `dl`);
/// where it is.
fn place_static(o: &Object, dl: &tls::GlibcDl, trace: bool) -> Result<Tls, RelocFault> {
    let Some(module) = o.tls.as_ref() else {
        return Ok(Tls::Minld { modid: None });
    };
    let (size, align) = o
        .image
        .phdr(goblin::elf::program_header::PT_TLS)
        .map_or((0, 0), |t| (t.p_memsz, t.p_align));
    let sys = crate::os::sys::Sys { trace };
    let block = module
        .make_static(&o.soname, sys, dl)
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
pub(super) fn glibc_dl(scope: &[ScopeRef<'_>]) -> tls::GlibcDl {
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
