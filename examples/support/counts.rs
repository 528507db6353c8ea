//! What loadbench counts from files: a library's relocations and
//! DT_NEEDED entries, and the system calls of a load under strace. A
//! submodule of `loadbench.rs`.

use super::*;

/// Relocation entries of an ELF file and its DT_NEEDED count, from its
/// dynamic section.
pub(super) fn count_relocations(bytes: &[u8]) -> Result<(u64, usize), String> {
    use goblin::elf::dynamic::*;
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| e.to_string())?;
    let dynamic = elf.dynamic.as_ref().ok_or("no dynamic section")?;
    let get = |tag: u64| {
        dynamic
            .dyns
            .iter()
            .find(|d| d.d_tag == tag)
            .map(|d| d.d_val)
    };
    let per = |size: Option<u64>, ent: Option<u64>, default: u64| {
        size.map_or(0, |s| s / ent.filter(|&e| e != 0).unwrap_or(default))
    };
    let mut n = per(get(DT_RELASZ), get(DT_RELAENT), 24) + per(get(DT_RELSZ), get(DT_RELENT), 16);
    // PLT relocations, unless the linker counted them in DT_RELASZ.
    if let (Some(jmprel), Some(sz)) = (get(DT_JMPREL), get(DT_PLTRELSZ)) {
        let inside = match (get(DT_RELA), get(DT_RELASZ)) {
            (Some(rela), Some(relasz)) => jmprel >= rela && jmprel < rela + relasz,
            _ => false,
        };
        if !inside {
            let ent = if get(DT_PLTREL) == Some(DT_REL) {
                16
            } else {
                24
            };
            n += sz / ent;
        }
    }
    // DT_RELR (36), DT_RELRSZ (35): an address entry is one relocation, a
    // bitmap entry (lowest bit set) one per other set bit.
    const DT_RELR_: u64 = 36;
    const DT_RELRSZ_: u64 = 35;
    if let (Some(relr), Some(sz)) = (get(DT_RELR_), get(DT_RELRSZ_)) {
        let off = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == goblin::elf::program_header::PT_LOAD)
            .find(|ph| relr >= ph.p_vaddr && relr < ph.p_vaddr + ph.p_filesz)
            .map(|ph| (relr - ph.p_vaddr + ph.p_offset) as usize)
            .ok_or("DT_RELR outside the file")?;
        let table = bytes
            .get(off..off + sz as usize)
            .ok_or("DT_RELR table past the end of the file")?;
        for e in table.chunks_exact(8) {
            let e = u64::from_le_bytes(e.try_into().unwrap());
            n += if e & 1 == 0 {
                1
            } else {
                u64::from(e.count_ones() - 1)
            };
        }
    }
    Ok((n, elf.libraries.len()))
}

/// Counts the system calls between the markers of an strace -f -o file.
fn count_syscalls(trace: &str) -> Result<Syscalls, String> {
    let begin = format!("write(-1, \"{}\"", String::from_utf8_lossy(MARK_BEGIN));
    let end = format!("write(-1, \"{}\"", String::from_utf8_lossy(MARK_END));
    let mut s = Syscalls::default();
    let mut inside = false;
    let mut seen_end = false;
    for line in trace.lines() {
        // With -f each line starts with the thread id.
        let l = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if l.contains(&begin) {
            inside = true;
            continue;
        }
        if l.contains(&end) {
            seen_end = inside;
            break;
        }
        if !inside || l.starts_with("---") || l.starts_with("+++") || l.starts_with("<...") {
            continue; // signals, exits, and the second half of an interrupted call
        }
        let Some(name) = l.split('(').next().filter(|n| !n.is_empty()) else {
            continue;
        };
        s.total += 1;
        *s.by_kind.entry(name.to_string()).or_default() += 1;
    }
    if !seen_end {
        return Err("markers not found in strace's output".into());
    }
    Ok(s)
}

/// Whether strace runs here, or why not.
pub(super) fn strace_available() -> Result<(), String> {
    match Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`strace -V` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("strace not found ({e})")),
    }
}

/// One load of `path` under strace: its system calls between the markers.
pub(super) fn run_strace(
    exe: &Path,
    w: Which,
    m: Mode,
    path: &Path,
    n: usize,
) -> Result<Syscalls, String> {
    let out = std::env::temp_dir().join(format!(
        "loadbench-{}-{n}-{}.strace",
        std::process::id(),
        w.name()
    ));
    let mut cmd = scrubbed("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&out)
        .arg(exe)
        .args(load_args(w, m, path));
    let r = run_child(cmd).and_then(|_| {
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        count_syscalls(&text)
    });
    let _ = std::fs::remove_file(&out);
    r
}
