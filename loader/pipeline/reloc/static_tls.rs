//! Initial-exec TLS of minld's objects: placing a block in glibc's static
//! TLS (`process::tls::Module::make_static`) while relocating, and the
//! references that then address it. (See `docs/design.md`, "Initial-exec
//! TLS in glibc's surplus".)

use super::apply::Reloc;
use super::resolve::{Def, Tls};
use super::{Context, Pass};
use crate::base::error::{Error, RelocFault};
use crate::base::relocs::Class;
use crate::elf::hash::NameHash;
use crate::elf::symbols::Want;
use crate::model::object::{Object, ScopeRef};
use crate::process::tls;

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
            Some((rel, _, _)) => Some(self.place_static(self.obj, rel, cx)?),
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
    pub(super) fn initial_exec_elsewhere(
        &self,
        rel: &Reloc,
        d: Def,
        cx: &Context<'_>,
    ) -> Result<Def, Error> {
        let Tls::Minld { modid: Some(m) } = d.tls else {
            return Ok(d);
        };
        let owner = cx.scope.iter().find_map(|s| match s {
            ScopeRef::Minld(o) if o.tls.as_ref().map(tls::Module::id) == Some(m) => Some(*o),
            _ => None,
        });
        match owner {
            // The object's own block waits for the end of its pass.
            Some(o) if !std::ptr::eq(o, self.obj) => Ok(Def {
                tls: self.place_static(o, rel, cx)?,
                ..d
            }),
            _ => Ok(d),
        }
    }

    /// Places the TLS block of `o` (this object or one it refers to) in
    /// glibc's static TLS for relocation `rel`; where it is.
    fn place_static(&self, o: &Object, rel: &Reloc, cx: &Context<'_>) -> Result<Tls, Error> {
        let Some(module) = o.tls.as_ref() else {
            return Ok(Tls::Minld { modid: None });
        };
        let (size, align) = o
            .image
            .phdr(goblin::elf::program_header::PT_TLS)
            .map_or((0, 0), |t| (t.p_memsz, t.p_align));
        let sys = crate::os::sys::Sys { trace: cx.trace };
        let block = module
            .make_static(&o.soname, sys, &glibc_dl(cx.scope))
            .map_err(|e| {
                let fault = match e {
                    tls::StaticTlsError::Full { glibc } => {
                        RelocFault::StaticTlsFull { size, align, glibc }
                    }
                    tls::StaticTlsError::Failed { what } => {
                        RelocFault::StaticTls { size, align, what }
                    }
                    tls::StaticTlsError::InUse => RelocFault::StaticTls {
                        size,
                        align,
                        what: format!(
                            "the block of {} is already allocated per thread (its code used it \
                             before), and such a block cannot move",
                            o.path.display()
                        ),
                    },
                };
                self.err(rel.kind.number, rel.off, fault)
            })?;
        Ok(Tls::Host {
            modid: block.modid,
            offset: Some(block.offset),
        })
    }
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
