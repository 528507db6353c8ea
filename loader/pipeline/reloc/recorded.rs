//! A pass fed from a proven link record (`pipeline::cache`): the symbols
//! its relocations name are bound from the record's (scope position,
//! `st_value`) pairs instead of being looked up, and DT_RELA's leading
//! RELATIVE run is applied from the record's RELR words, so neither the
//! run's entries nor any symbol table is read.

use super::relative::relr_addresses;
use super::resolve::{self, Def};
use super::{Context, Pass, RelocStats, Slot};
use crate::base::error::{Error, RelocFault};
use crate::base::relocs::r;
use crate::pipeline::cache::format::{Binding, ObjectEntry, INTERPOSED, NOWHERE, UNIQUE};

impl Pass<'_> {
    /// Whether a proven record's entry fits this object before anything is
    /// written from it: its RELATIVE run, if it has one, ends where
    /// DT_RELA's does (the entries on both sides of its end), and its RELR
    /// words name exactly the run's number of addresses, each inside the
    /// writable ranges. A misfit (a record damaged but checksummed anew,
    /// or written by a broken minld) sends the object the normal way; the
    /// reason is said.
    pub(super) fn fits(&self, e: &ObjectEntry<'_>) -> Result<(), String> {
        let rela = &self.obj.dynamic.rela;
        let run = e.run() as usize;
        let relative = |i: usize| rela.get(i).map(|r| r.r_info == u64::from(r::RELATIVE));
        // A run of 0 is one the recorder could not express as RELR: all
        // of DT_RELA goes through the switch.
        if run > 0 && (relative(run - 1) != Some(true) || relative(run) == Some(true)) {
            return Err(format!(
                "DT_RELA's RELATIVE run does not end at entry {run}"
            ));
        }
        let mut count = 0u64;
        for at in relr_addresses(e.relr()) {
            let p = self.bias.wrapping_add(at as usize);
            if !self
                .writable
                .iter()
                .any(|&r| Slot::within(r, p, 8).is_some())
            {
                return Err(format!("RELR names {at:#x}, outside the writable segments"));
            }
            count += 1;
        }
        if count != e.run() {
            return Err(format!("RELR names {count} addresses for a run of {run}"));
        }
        Ok(())
    }

    /// Fills the per-symbol cache from the record's bindings: a later
    /// relocation naming one of these symbols looks nothing up.
    pub(super) fn prefill(&mut self, e: &ObjectEntry<'_>, cx: &mut Context<'_>) {
        for k in 0..e.binding_count() {
            let b = e.binding(k);
            let symi = b.symi as usize;
            if symi == 0 || symi >= self.cache.len() {
                continue;
            }
            let def = if b.member == NOWHERE {
                None
            } else {
                // What the proof rules out (a member outside the scope, a
                // nameless symbol) leaves the symbol to a lookup.
                let Some(d) = self.recorded_def(&b, cx) else {
                    continue;
                };
                Some(d)
            };
            self.defs.push(def);
            self.cache[symi] = u32::try_from(self.defs.len()).unwrap_or(0);
        }
    }

    /// The definition a binding gives in this process: the member's bias
    /// (or TLS placement) now, then the unique and interposition rules
    /// again where the record says they decided. None for a member the
    /// scope does not have, or a symbol without a name to apply them to.
    fn recorded_def(&self, b: &Binding, cx: &mut Context<'_>) -> Option<Def> {
        let &m = cx.scope.get(b.member as usize)?;
        let mut def = Def::in_member(m, b.member, b.st_value, b.st_size, b.kind);
        if b.flags & (UNIQUE | INTERPOSED) != 0 {
            let name = self
                .obj
                .symbols
                .sym(b.symi as usize)
                .and_then(|s| self.obj.symbols.name(&s))?;
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
        Some(def)
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
        let (lo, hi) = e.span();
        if super::relative::worth_populating(n as usize, lo, hi) {
            let ranges = self.writable.clone();
            self.populate(lo, hi, n as usize, &ranges);
        }
        let addends = e.addends();
        let (bias, ranges) = (self.bias, &self.writable[..]);
        let mut hot = ranges.first().copied().unwrap_or((0, 0));
        let mut k = 0usize;
        // One address: checked against the last range that took one, then
        // the others; the value is the bias plus the addend (recorded, or
        // the word in place).
        let mut put = |at: u64| -> Option<()> {
            let p = bias.wrapping_add(at as usize);
            let slot = match Slot::within(hot, p, 8) {
                Some(s) => s,
                None => {
                    let (range, s) = ranges
                        .iter()
                        .find_map(|&r| Slot::within(r, p, 8).map(|s| (r, s)))?;
                    hot = range;
                    s
                }
            };
            let a = match &addends {
                Some(a) => a(k),
                None => slot.read64(),
            };
            slot.write64(a.wrapping_add(bias as u64));
            k += 1;
            Some(())
        };
        let mut bad = None;
        for at in relr_addresses(e.relr()) {
            if put(at).is_none() {
                bad = Some(at);
                break;
            }
        }
        if let Some(at) = bad {
            return Err(self.err(r::RELATIVE, at, RelocFault::TargetOutside { size: 8 }));
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
