//! A pass fed from a proven link record (`pipeline::cache`): the symbols
//! its relocations name are bound from the record's (scope position,
//! `st_value`) pairs instead of being looked up, and DT_RELA's leading
//! RELATIVE run is applied from the record's RELR words, so neither the
//! run's entries nor any symbol table is read.

use super::resolve::{self, Def};
use super::{Context, Pass, RelocStats};
use crate::base::error::{Error, RelocFault};
use crate::base::relocs::r;
use crate::pipeline::cache::format::{Binding, ObjectEntry, INTERPOSED, NOWHERE, UNIQUE};

/// Above this many RELATIVE relocations the writable pages are faulted in
/// with one system call first (as the normal path does).
const BIG_RUN: u64 = 32 * 1024;

impl Pass<'_> {
    /// Fills the per-symbol cache from the record's bindings: a later
    /// relocation naming one of these symbols looks nothing up.
    pub(super) fn prefill(&mut self, e: &ObjectEntry<'_>, cx: &mut Context<'_>) {
        for k in 0..e.binding_count() {
            let b = e.binding(k);
            let symi = b.symi as usize;
            if symi == 0 || symi >= self.cache.len() {
                continue;
            }
            let def = (b.member != NOWHERE).then(|| self.recorded_def(&b, cx));
            self.defs.push(def);
            self.cache[symi] = u32::try_from(self.defs.len()).unwrap_or(0);
        }
    }

    /// The definition a binding gives in this process: the member's bias
    /// (or TLS placement) now, then the unique and interposition rules
    /// again where the record says they decided.
    fn recorded_def(&self, b: &Binding, cx: &mut Context<'_>) -> Def {
        let Some(&m) = cx.scope.get(b.member as usize) else {
            // Proven: every member position lies in the scope.
            return Def::function(0);
        };
        let mut def = Def::in_member(m, b.member, b.st_value, b.st_size, b.kind);
        if b.flags & (UNIQUE | INTERPOSED) != 0 {
            let name = self
                .obj
                .symbols
                .sym(b.symi as usize)
                .and_then(|s| self.obj.symbols.name(&s))
                .unwrap_or_default();
            if b.flags & UNIQUE != 0 {
                def.value = resolve::unique(cx.uniques, name, def.value);
                def.origin.unique = true;
            }
            if b.flags & INTERPOSED != 0 {
                if let Some(ours) = resolve::interposed(cx.rules.is_some(), name, def.value) {
                    def.value = ours;
                    def.origin.interposed = true;
                }
            }
        }
        def
    }

    /// One RELATIVE relocation at virtual address `at`: the bias plus
    /// `addend`, or plus the word in place (the file's) without one.
    #[inline]
    fn recorded_relative(&self, at: u64, addend: Option<u64>) -> Result<(), Error> {
        let slot = self.target(r::RELATIVE, at, 8)?;
        let a = addend.unwrap_or_else(|| slot.read64());
        slot.write64(a.wrapping_add(self.bias as u64));
        Ok(())
    }

    /// DT_RELA's leading RELATIVE run, from the record's RELR words: each
    /// address checked like any relocation's target, its value the bias
    /// plus the word the file holds there (or the recorded addend).
    pub(super) fn recorded_run(
        &mut self,
        e: &ObjectEntry<'_>,
        stats: &mut RelocStats,
    ) -> Result<(), Error> {
        let n = e.run();
        if n >= BIG_RUN {
            let ranges = self.writable.clone();
            let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
            let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
            let bias = self.bias;
            self.populate(
                lo.wrapping_sub(bias) as u64,
                hi.wrapping_sub(bias) as u64,
                n as usize,
                &ranges,
            );
        }
        let addends = e.addends();
        let mut k = 0usize;
        let mut next: u64 = 0;
        for word in e.relr() {
            if word & 1 == 0 {
                self.recorded_relative(word, addends.as_ref().map(|a| a(k)))?;
                k += 1;
                next = word.wrapping_add(8);
            } else {
                let (mut bits, mut at) = (word >> 1, next);
                while bits != 0 {
                    if bits & 1 != 0 {
                        self.recorded_relative(at, addends.as_ref().map(|a| a(k)))?;
                        k += 1;
                    }
                    bits >>= 1;
                    at = at.wrapping_add(8);
                }
                next = next.wrapping_add(63 * 8);
            }
        }
        if k as u64 != n {
            return Err(self.err(
                r::RELATIVE,
                0,
                RelocFault::RecordedRun {
                    recorded: n,
                    found: k as u64,
                },
            ));
        }
        stats.relative += k;
        Ok(())
    }
}
