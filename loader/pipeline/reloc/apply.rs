//! The one relocation switch: each DT_RELA and DT_JMPREL entry by its
//! class in the relocation table (`base::relocs`), never by raw number.

use goblin::elf::dynamic::DF_STATIC_TLS;
use goblin::elf::sym as st;
use goblin::elf64::reloc::Rela;

use super::resolve::{Def, Target, Tls};
use super::{Context, Deferred, Pass, RelocStats, Slot};
use crate::base::error::{Error, RelocFault};
use crate::base::relocs::{self, split_info, Class, RelocType, Width};
use crate::process::tls;

/// One relocation as the switch sees it.
#[derive(Clone, Copy)]
pub(super) struct Reloc {
    /// Its type's row in the table.
    pub(super) kind: &'static RelocType,
    /// The symbol index.
    symi: usize,
    /// r_offset.
    pub(super) off: u64,
    /// r_addend.
    pub(super) addend: i64,
}

impl Pass<'_> {
    /// One DT_RELA entry, or a DT_JMPREL one bound now. The common case
    /// ahead of the switch: an R_X86_64_64, GLOB_DAT or JUMP_SLOT naming a
    /// symbol, looked up here if this is its first reference (the lookup,
    /// and its error, [`Pass::apply`] would make), whose definition is not
    /// an ifunc and whose target lies in the range the last one did: the
    /// word is written here ([`Pass::write_word`]). Anything else, and
    /// every error but the lookup's, is the switch's. (Through the switch,
    /// a symbol's first reference cost about 140 instructions more:
    /// callgrind, the README's ten Python imports.) Inlined into the
    /// relocation loops: a call per entry cost another 30 instructions.
    #[inline(always)]
    pub(super) fn bind(
        &mut self,
        rela: &Rela,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<(), Error> {
        let (symi, t) = split_info(rela.r_info);
        if symi != 0
            && matches!(
                t,
                relocs::r::R64 | relocs::r::GLOB_DAT | relocs::r::JUMP_SLOT
            )
        {
            if let Some(&i) = self.cache.get(symi) {
                let at = match i {
                    0 => self.look_up(symi, t, rela.r_offset, cx, stats)?,
                    i => i as usize - 1,
                };
                if self.write_word(rela, at, stats) {
                    return Ok(());
                }
            }
        }
        self.apply(rela, cx, stats)
    }

    /// [`Pass::bind`]'s write: the word for definition `at` of `defs`,
    /// if it is one (not a weak reference nobody defines, not an ifunc)
    /// and the target lies in the range the last one did (true).
    #[inline]
    fn write_word(&self, rela: &Rela, at: usize, stats: &mut RelocStats) -> bool {
        let Some(def) = self.defs.get(at).and_then(Option::as_ref) else {
            return false;
        };
        if def.kind == st::STT_GNU_IFUNC {
            return false;
        }
        let addr = self.bias.wrapping_add(rela.r_offset as usize);
        let Some(slot) = Slot::within(self.hot.get(), addr, 8) else {
            return false;
        };
        slot.write64((def.value as u64).wrapping_add(rela.r_addend as u64));
        stats.symbolic += 1;
        true
    }

    /// Applies one relocation.
    pub(super) fn apply(
        &mut self,
        rela: &Rela,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<(), Error> {
        let (symi, t) = split_info(rela.r_info);
        let Some(kind) = relocs::lookup(t).filter(|k| k.supported || k.class == Class::Copy) else {
            return Err(self.err(t, rela.r_offset, RelocFault::UnsupportedType));
        };
        let rel = Reloc {
            kind,
            symi,
            off: rela.r_offset,
            addend: rela.r_addend,
        };
        match kind.class {
            Class::None => Ok(()),
            Class::Relative => {
                let p = self.slot(&rel)?;
                p.write64((self.bias as u64).wrapping_add(rel.addend as u64));
                stats.relative += 1;
                Ok(())
            }
            Class::IRelative => {
                let slot = self.slot(&rel)?;
                let resolver = self.bias.wrapping_add(rel.addend as usize);
                self.check_code(t, rel.off, resolver)?;
                self.deferred.push(Deferred {
                    slot,
                    resolver,
                    addend: 0,
                });
                Ok(())
            }
            Class::Copy => Err(self.err(t, rel.off, RelocFault::Copy)),
            Class::JumpSlot if self.in_jmprel && self.lazy_slot(rel.off, cx)? => Ok(()),
            _ => {
                stats.symbolic += 1;
                let def = self.resolve(symi, t, rel.off, cx, stats)?;
                let def = match def {
                    Some(d) if kind.class == Class::TlsTpOffset => {
                        match self.initial_exec_elsewhere(&rel, d, cx)? {
                            Some(d) => Some(d),
                            // Held back: written after the definer's pass.
                            None => return Ok(()),
                        }
                    }
                    d => d,
                };
                self.symbolic(&rel, def)
            }
        }
    }

    /// The relocation's slot, checked for its width.
    pub(super) fn slot(&self, rel: &Reloc) -> Result<Slot, Error> {
        self.target(rel.kind.number, rel.off, rel.kind.width.bytes())
    }

    /// A relocation naming a symbol, whose definition is `def` (None: a
    /// weak reference nobody defines, whose value is 0).
    fn symbolic(&mut self, rel: &Reloc, def: Option<Def>) -> Result<(), Error> {
        let d = def.unwrap_or(Def {
            value: 0,
            size: 0,
            kind: st::STT_NOTYPE,
            tls: Tls::None,
            own: false,
            origin: super::resolve::Origin::nowhere(),
        });
        let (s, a) = (d.value, rel.addend);
        let p = self.slot(rel)?;
        match (rel.kind.class, rel.kind.width) {
            (Class::Absolute | Class::GlobDat | Class::JumpSlot, Width::W64) => {
                match d.target(false) {
                    Target::Later(resolver) => self.deferred.push(Deferred {
                        slot: p,
                        resolver,
                        addend: a,
                    }),
                    Target::Now(v) => p.write64((v as u64).wrapping_add(a as u64)),
                }
            }
            (Class::PcRelative, Width::W64) => {
                p.write64(
                    (s as u64)
                        .wrapping_add(a as u64)
                        .wrapping_sub(p.addr() as u64),
                );
            }
            (Class::PcRelative, _) => {
                let v = (s as i64).wrapping_add(a).wrapping_sub(p.addr() as i64);
                self.write32_checked(rel, p, v)?;
            }
            (Class::Absolute, _) => {
                let v = (s as i64).wrapping_add(a);
                self.write32_checked(rel, p, v)?;
            }
            (Class::Size, Width::W64) => p.write64(d.size.wrapping_add(a as u64)),
            (Class::Size, _) => p.write32(d.size.wrapping_add(a as u64) as u32),
            _ => self.tls(rel, p, &d)?,
        }
        Ok(())
    }

    /// A 32-bit field holding `v`, checked to fit (signed or unsigned, as
    /// the table says).
    fn write32_checked(&self, rel: &Reloc, p: Slot, v: i64) -> Result<(), Error> {
        let fits = if rel.kind.signed {
            i32::try_from(v).map(|v| v as u32).ok()
        } else {
            u32::try_from(v as u64).ok()
        };
        let v = fits.ok_or_else(|| {
            self.err(
                rel.kind.number,
                rel.off,
                RelocFault::Overflow32 { value: v },
            )
        })?;
        p.write32(v);
        Ok(())
    }

    /// The TLS classes. A reference to the object's own block, while that
    /// block is still minld's, waits for [`Pass::finish_tls`]: whether the
    /// block moves to glibc's static TLS is known at the end of the pass.
    fn tls(&mut self, rel: &Reloc, p: Slot, d: &Def) -> Result<(), Error> {
        let own = self.obj.tls.as_ref().map(tls::Module::id);
        if matches!(d.tls, Tls::Minld { modid: Some(m) } if Some(m) == own) {
            self.pending_tls.push((*rel, p, *d));
            return Ok(());
        }
        self.tls_now(rel, p, d)
    }

    /// The TLS classes, the block's place known.
    pub(super) fn tls_now(&self, rel: &Reloc, p: Slot, d: &Def) -> Result<(), Error> {
        let (s, a) = (d.value, rel.addend);
        match (rel.kind.class, d.tls) {
            (
                Class::TlsTpOffset,
                Tls::Host {
                    offset: Some(o), ..
                },
            ) => {
                p.write64((o as i64).wrapping_add(s as i64).wrapping_add(a) as u64);
            }
            (Class::TlsTpOffset, Tls::Host { offset: None, .. }) => {
                return Err(self.err(rel.kind.number, rel.off, RelocFault::NoStaticTlsBlock))
            }
            (Class::TlsTpOffset, Tls::Minld { modid }) => return Err(self.initial_exec(rel, modid)),
            (Class::TlsModule, Tls::Host { modid, .. } | Tls::Minld { modid: Some(modid) }) => {
                p.write64(modid as u64);
            }
            (Class::TlsOffset, Tls::Host { .. } | Tls::Minld { modid: Some(_) }) => {
                p.write64((s as u64).wrapping_add(a as u64));
            }
            (Class::TlsDesc, Tls::Host { .. } | Tls::Minld { modid: Some(_) }) => {
                self.tlsdesc(p, d.tls, (s as u64).wrapping_add(a as u64) as usize);
            }
            (Class::TlsTpOffset | Class::TlsModule | Class::TlsOffset | Class::TlsDesc, _) => {
                return Err(self.not_tls(rel))
            }
            _ => return Err(self.err(rel.kind.number, rel.off, RelocFault::UnsupportedType)),
        }
        Ok(())
    }

    /// A TLS descriptor (two words: the resolver the code calls, and its
    /// argument) for `offset` in the block `tls` places.
    fn tlsdesc(&self, p: Slot, tls: Tls, offset: usize) {
        let (resolver, arg) = match tls {
            Tls::Host {
                offset: Some(o), ..
            } => (tls::tlsdesc_static(), (o as usize).wrapping_add(offset)),
            Tls::Host { modid, .. } | Tls::Minld { modid: Some(modid) } => {
                let index = Box::new(tls::TlsIndex {
                    module: modid,
                    offset,
                });
                let at = &*index as *const tls::TlsIndex as usize;
                self.obj
                    .tlsdesc
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(index);
                (tls::tlsdesc_dynamic(), at)
            }
            Tls::Minld { modid: None } | Tls::None => return,
        };
        let (first, second) = p.words();
        first.write64(resolver as u64);
        second.write64(arg as u64);
    }

    /// The name of symbol `symi` for a TLS message.
    fn symbol_name(&self, symi: usize) -> String {
        self.obj
            .symbols
            .sym(symi)
            .and_then(|s| {
                self.obj
                    .symbols
                    .name(&s)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "the object's own TLS block".to_string())
    }

    /// Initial-exec TLS against a block that cannot be placed in static
    /// TLS. `modid` is the defining module's (None: it has no PT_TLS); the
    /// error names the defining library when it is this object itself.
    fn initial_exec(&self, rel: &Reloc, modid: Option<usize>) -> Error {
        let own = self.obj.tls.as_ref().map(tls::Module::id);
        self.err(
            rel.kind.number,
            rel.off,
            RelocFault::InitialExec {
                symbol: self.symbol_name(rel.symi),
                defined_by: (modid.is_some() && modid == own).then(|| self.obj.path.clone()),
                static_tls: self.obj.dynamic.flags & DF_STATIC_TLS != 0,
            },
        )
    }

    /// A TLS relocation against a symbol outside every TLS block.
    fn not_tls(&self, rel: &Reloc) -> Error {
        self.err(
            rel.kind.number,
            rel.off,
            RelocFault::NotTls {
                symbol: self.symbol_name(rel.symi),
            },
        )
    }

    /// Lazy binding of a JUMP_SLOT (see `lazy`): the word points at its PLT
    /// code (its value in the file, plus the bias) until the first call.
    /// Returns false where the slot must be bound now: not lazy, no
    /// DT_PLTGOT, or the slot inside RELRO (made read-only after loading).
    fn lazy_slot(&mut self, off: u64, cx: &Context<'_>) -> Result<bool, Error> {
        let Some(got) = self.obj.dynamic.pltgot.filter(|_| cx.lazy) else {
            return Ok(false);
        };
        let t = relocs::r::JUMP_SLOT;
        let p = self.target(t, off, 8)?;
        // `GOT[1]` and `GOT[2]` are usually in RELRO (written now, before
        // it is made read-only); the slots themselves must stay writable.
        if self.in_relro(p.addr()) {
            return Ok(false);
        }
        let Some(header) = Slot::in_object(self.obj, got + 8, 16) else {
            return Ok(false);
        };
        let stub = self.bias.wrapping_add(p.read64() as usize);
        self.check_code(t, off, stub)?;
        p.write64(stub as u64);
        if !self.lazy_used {
            self.lazy_used = true;
            let (got1, got2) = header.words();
            got1.write64(self.obj as *const crate::model::object::Object as u64);
            got2.write64(super::lazy::trampoline() as u64);
        }
        Ok(true)
    }

    /// Whether `addr` lies in the pages `protect_relro` makes read-only.
    fn in_relro(&self, addr: usize) -> bool {
        self.obj
            .image
            .phdr(goblin::elf::program_header::PT_GNU_RELRO)
            .is_some_and(|r| {
                let page = crate::os::sys::page_size();
                let lo = self.obj.image.bias.at(r.p_vaddr) & !(page - 1);
                let hi = self.obj.image.bias.at(r.p_vaddr + r.p_memsz) & !(page - 1);
                addr >= lo && addr < hi
            })
    }
}
