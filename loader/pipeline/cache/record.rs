//! Writing a link record from a load that went the normal way: the scope's
//! identities, and for each object its bindings as (scope position,
//! `st_value`) and DT_RELA's leading RELATIVE run as RELR words.

use std::sync::Arc;

use goblin::elf::program_header as ph;

use super::format::{self, Ident, Writer, BINDING_SIZE, HEADER_SIZE, MEMBER_SIZE, OBJECT_SIZE};
use crate::base::relocs::r;
use crate::model::object::{Object, ScopeRef};
use crate::os::sys::Sys;
use crate::pipeline::reloc::resolve::{Def, Origin};
use crate::pipeline::reloc::Resolved;

/// Why a load cannot be recorded (it is loaded the normal way next time).
pub(crate) type NotRecorded = String;

/// A RELATIVE run as recorded: its length, its RELR words, its addends
/// where the file does not hold them, the span of addresses it writes.
type Run = (u64, Vec<u64>, Option<Vec<u64>>, (u64, u64));

/// One object's part of the record, before it is laid out.
struct Part {
    /// Its scope position.
    member: u32,
    /// Its symbol count, DT_RELA and DT_JMPREL lengths.
    counts: (u32, u64, u64),
    /// The RELATIVE run the RELR words replace.
    run: u64,
    /// The RELR words.
    relr: Vec<u64>,
    /// The lowest address the run writes and the end of the highest.
    span: (u64, u64),
    /// The run's addends, where the file does not hold them in place.
    addends: Option<Vec<u64>>,
    /// Its bindings, each as its 32 bytes.
    bindings: Vec<[u8; BINDING_SIZE]>,
}

/// The record of a load: `idents` are the scope members' build-id hashes
/// and file identities (in scope order), `order` the objects relocated with what their passes
/// resolved.
pub(crate) fn build(
    sys: &Sys,
    members: &[ScopeRef<'_>],
    idents: &[(u64, Ident)],
    order: &[(Arc<Object>, Resolved)],
    bound_now: bool,
) -> Result<Vec<u8>, NotRecorded> {
    let mut parts = Vec::with_capacity(order.len());
    for (o, resolved) in order {
        let member = members
            .iter()
            .position(|m| matches!(m, ScopeRef::Minld(x) if std::ptr::eq(*x, &**o)))
            .ok_or_else(|| format!("{} is not in its own scope", o.path.display()))?;
        let (run, relr, addends, span) = relative_run(sys, o)?;
        parts.push(Part {
            member: member as u32,
            counts: (
                o.symbols.len() as u32,
                o.dynamic.rela.len() as u64,
                o.dynamic.jmprel.len() as u64,
            ),
            run,
            relr,
            span,
            addends,
            bindings: bindings(o, member as u32, resolved)?,
        });
    }
    Ok(lay_out(members, idents, &parts, bound_now))
}

/// Each symbol the pass looked up, as (scope position, `st_value`).
fn bindings(
    o: &Object,
    itself: u32,
    resolved: &Resolved,
) -> Result<Vec<[u8; BINDING_SIZE]>, NotRecorded> {
    let mut out = Vec::with_capacity(resolved.defs.len());
    for (symi, &i) in resolved.cache.iter().enumerate() {
        if i == 0 {
            continue;
        }
        let def: Option<Def> = resolved.defs[i as usize - 1];
        let mut b = [0u8; BINDING_SIZE];
        b[..4].copy_from_slice(&(symi as u32).to_le_bytes());
        match def {
            None => b[4..8].copy_from_slice(&format::NOWHERE.to_le_bytes()),
            Some(d) => {
                let member = match d.origin.member {
                    Origin::ITSELF => itself,
                    Origin::NOWHERE => {
                        return Err(format!(
                            "{}: symbol {symi} is bound outside the scope",
                            o.path.display()
                        ))
                    }
                    m => m,
                };
                b[4..8].copy_from_slice(&member.to_le_bytes());
                b[8..16].copy_from_slice(&d.origin.st_value.to_le_bytes());
                b[16..24].copy_from_slice(&d.size.to_le_bytes());
                b[24] = d.kind;
                let unique = if d.origin.unique { format::UNIQUE } else { 0 };
                let interposed = if d.origin.interposed {
                    format::INTERPOSED
                } else {
                    0
                };
                b[25] = unique | interposed;
            }
        }
        out.push(b);
    }
    Ok(out)
}

/// DT_RELA's leading RELATIVE run as RELR words, with the addends when the
/// file does not hold each in place (read back from the file). A run that
/// RELR cannot express (an unaligned or repeated target, one outside the
/// writable segments) is left out: the run is then 0 and a cached load
/// applies it from DT_RELA.
fn relative_run(sys: &Sys, o: &Object) -> Result<Run, NotRecorded> {
    let rela = &o.dynamic.rela;
    let n = rela
        .iter()
        .take_while(|x| x.r_info == u64::from(r::RELATIVE))
        .count();
    let mut pairs: Vec<(u64, u64)> = rela
        .iter()
        .take(n)
        .map(|x| (x.r_offset, x.r_addend as u64))
        .collect();
    pairs.sort_unstable();
    let expressible =
        pairs.iter().all(|p| p.0 % 8 == 0) && pairs.windows(2).all(|w| w[0].0 != w[1].0);
    if n == 0 || !expressible {
        return Ok((0, Vec::new(), None, (0, 0)));
    }
    let Some(in_file) = file_words(sys, o, &pairs)? else {
        return Ok((0, Vec::new(), None, (0, 0)));
    };
    let in_place = pairs.iter().zip(&in_file).all(|(p, &w)| p.1 == w);
    let addends = (!in_place).then(|| pairs.iter().map(|p| p.1).collect());
    let addrs: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    let span = (addrs[0], addrs[addrs.len() - 1] + 8);
    Ok((n as u64, encode_relr(&addrs), addends, span))
}

/// The file's words at the virtual addresses of `pairs` (sorted), read
/// back from the file (checked to be the one mapped); None if one lies
/// outside every writable segment's file bytes and zero fill.
fn file_words(
    sys: &Sys,
    o: &Object,
    pairs: &[(u64, u64)],
) -> Result<Option<Vec<u64>>, NotRecorded> {
    let why = |what: &str| format!("{}: {what}", o.path.display());
    let c = std::ffi::CString::new(o.path.as_os_str().as_encoded_bytes())
        .map_err(|_| why("path holds a NUL byte"))?;
    let fd = sys
        .open(
            &c,
            "read the file's words under its RELATIVE relocations (link cache)",
        )
        .map_err(|e| why(&format!("reopened: {e}")))?;
    let st = sys
        .fstat(&fd, "")
        .map_err(|e| why(&format!("fstat: {e}")))?;
    let id = |s: &crate::os::sys::FileStat| (s.dev, s.ino, s.size, s.mtime, s.ctime);
    if id(&st) != id(&o.stat) {
        return Err(why("replaced or changed since it was mapped"));
    }
    let mut words = Vec::with_capacity(pairs.len());
    let mut segs = o
        .image
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD && p.p_flags & ph::PF_W != 0);
    let mut current: Option<(u64, u64, Vec<u8>)> = None; // vaddr, memsz, file bytes
    for &(addr, _) in pairs {
        if !current
            .as_ref()
            .is_some_and(|(v, m, _)| addr >= *v && addr + 8 <= v + m)
        {
            let Some(p) = segs
                .by_ref()
                .find(|p| addr >= p.p_vaddr && addr + 8 <= p.p_vaddr + p.p_memsz)
            else {
                return Ok(None);
            };
            let mut buf = vec![0u8; p.p_filesz as usize];
            let got = sys
                .pread(&fd, &mut buf, p.p_offset, "")
                .map_err(|e| why(&format!("pread: {e}")))?;
            if got < buf.len() {
                // Not the whole segment: its words cannot be vouched for
                // (a word past what was read is not the .bss's zero).
                return Ok(None);
            }
            current = Some((p.p_vaddr, p.p_memsz, buf));
        }
        let Some((v, _, buf)) = &current else {
            return Ok(None);
        };
        let at = (addr - v) as usize;
        let w = match buf.get(at..at + 8) {
            Some(s) => u64::from_le_bytes(s.try_into().unwrap_or([0; 8])),
            None if at >= buf.len() => 0,
            None => return Ok(None),
        };
        words.push(w);
    }
    Ok(Some(words))
}

/// Sorted, distinct, 8-aligned addresses as RELR: an address (even), then
/// bitmaps (odd) of the 63 words after it, as DT_RELR's decoder reads them.
pub(crate) fn encode_relr(addrs: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        out.push(addrs[i]);
        let mut base = addrs[i] + 8;
        i += 1;
        loop {
            let mut bitmap = 0u64;
            while i < addrs.len() && addrs[i] >= base && addrs[i] - base < 63 * 8 {
                bitmap |= 1 << ((addrs[i] - base) / 8);
                i += 1;
            }
            if bitmap == 0 {
                break;
            }
            out.push(bitmap << 1 | 1);
            base += 63 * 8;
        }
    }
    out
}

/// The record's bytes: header, scope table, object table, then each
/// object's RELR words, addends and bindings; the checksum last.
fn lay_out(
    members: &[ScopeRef<'_>],
    idents: &[(u64, Ident)],
    parts: &[Part],
    bound_now: bool,
) -> Vec<u8> {
    let mut w = Writer::default();
    w.out.extend_from_slice(format::MAGIC);
    w.u32(format::VERSION);
    w.u32(if bound_now { format::BOUND_NOW } else { 0 });
    w.u64(0); // length, patched below
    w.u64(0); // checksum, patched below
    w.u32(members.len() as u32);
    w.u32(parts.len() as u32);
    let scope_at = HEADER_SIZE as u64;
    let objects_at = scope_at + (MEMBER_SIZE * members.len()) as u64;
    w.u64(scope_at);
    w.u64(objects_at);
    w.u64(0);
    for (m, (build_id, id)) in members.iter().zip(idents) {
        w.u64(id.dev);
        w.u64(id.ino);
        w.u64(id.size);
        w.u64(id.mtime.0 as u64);
        w.u64(id.mtime.1 as u64);
        w.u64(id.ctime.0 as u64);
        w.u64(id.ctime.1 as u64);
        w.u32(u32::from(matches!(m, ScopeRef::Minld(_))));
        w.u32(0);
        w.u64(*build_id);
    }
    // The variable sections follow the object table.
    let mut at = objects_at + (OBJECT_SIZE * parts.len()) as u64;
    for p in parts {
        let relr_at = at;
        at += 8 * p.relr.len() as u64;
        let addends_at = p.addends.as_ref().map_or(0, |_| at);
        at += 8 * p.addends.as_ref().map_or(0, Vec::len) as u64;
        let bindings_at = at;
        at += (BINDING_SIZE * p.bindings.len()) as u64;
        w.u32(p.member);
        w.u32(p.counts.0);
        w.u64(p.counts.1);
        w.u64(p.counts.2);
        w.u64(p.run);
        w.u64(relr_at);
        w.u64(p.relr.len() as u64);
        w.u64(addends_at);
        w.u64(bindings_at);
        w.u64(p.bindings.len() as u64);
        w.u64(0);
        w.u64(p.span.0);
        w.u64(p.span.1);
    }
    for p in parts {
        p.relr.iter().for_each(|&x| w.u64(x));
        p.addends.iter().flatten().for_each(|&x| w.u64(x));
        p.bindings.iter().for_each(|b| w.out.extend_from_slice(b));
    }
    let len = w.len();
    w.patch_u64(16, len);
    format::reseal(&mut w.out);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The addresses DT_RELR's decoding yields.
    fn decode(words: &[u64]) -> Vec<u64> {
        crate::pipeline::reloc::relative::relr_addresses(words.iter().copied()).collect()
    }

    #[test]
    fn relr_round_trips() {
        let cases: Vec<Vec<u64>> = vec![
            vec![0x1000],
            (0..200).map(|i| 0x2000 + 8 * i).collect(),
            vec![
                0x1000,
                0x1008,
                0x1010 + 62 * 8,
                0x1010 + 63 * 8,
                0x9000,
                0x9000 + 8 * 200,
            ],
            (0..1000).map(|i| 0x4000 + 24 * i).collect(),
        ];
        for addrs in cases {
            assert_eq!(decode(&encode_relr(&addrs)), addrs);
        }
    }

    #[test]
    fn dense_runs_take_one_word_per_63() {
        let addrs: Vec<u64> = (0..640).map(|i| 0x2000 + 8 * i).collect();
        assert_eq!(encode_relr(&addrs).len(), 1 + 639usize.div_ceil(63));
    }
}
