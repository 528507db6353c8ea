//! `/proc/self/smaps` read for [`crate::pages`]: the VMAs overlapping a
//! range, with their protections and the numbers the kernel gives.

/// The `/proc/self/smaps` numbers of one VMA (in kB, as the kernel gives
/// them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vma {
    /// Its first address.
    pub start: usize,
    /// The address after its last.
    pub end: usize,
    /// Resident: present in this process's page table.
    pub rss_kb: u64,
    /// Proportional: each resident page divided by the number of
    /// processes mapping it.
    pub pss_kb: u64,
    /// Resident, mapped by other processes too, not written.
    pub shared_clean_kb: u64,
    /// Resident, mapped by other processes too, written.
    pub shared_dirty_kb: u64,
    /// Resident, mapped here only, not written.
    pub private_clean_kb: u64,
    /// Resident, mapped here only, written (copies on write, `.bss`).
    pub private_dirty_kb: u64,
    /// Swapped out.
    pub swap_kb: u64,
    /// Anonymous pages resident (the zero page not counted).
    pub anonymous_kb: u64,
    /// The inode of the mapped file; 0 for anonymous memory.
    pub inode: u64,
}

/// The VMAs of `/proc/self/smaps` that overlap `lo..hi`, with their
/// protections.
pub(crate) fn parse_smaps(text: &str, lo: usize, hi: usize) -> Vec<(Vma, String)> {
    let mut out: Vec<(Vma, String)> = Vec::new();
    let mut current: Option<(Vma, String)> = None;
    for line in text.lines() {
        if let Some((vma, perms)) = header(line) {
            if let Some(c) = current.take() {
                out.push(c);
            }
            if vma.start < hi && vma.end > lo {
                current = Some((vma, perms));
            }
            continue;
        }
        let Some((v, _)) = current.as_mut() else {
            continue;
        };
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = rest
            .trim()
            .strip_suffix("kB")
            .and_then(|n| n.trim().parse::<u64>().ok())
        else {
            continue;
        };
        match key {
            "Rss" => v.rss_kb = kb,
            "Pss" => v.pss_kb = kb,
            "Shared_Clean" => v.shared_clean_kb = kb,
            "Shared_Dirty" => v.shared_dirty_kb = kb,
            "Private_Clean" => v.private_clean_kb = kb,
            "Private_Dirty" => v.private_dirty_kb = kb,
            "Swap" => v.swap_kb = kb,
            "Anonymous" => v.anonymous_kb = kb,
            _ => {}
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

/// A VMA's header line of smaps (`start-end perms offset dev inode path`),
/// or None for a field line.
fn header(line: &str) -> Option<(Vma, String)> {
    let mut f = line.split_ascii_whitespace();
    let (s, e) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    if perms.len() != 4 || !perms.bytes().all(|b| b"rwxps-".contains(&b)) {
        return None;
    }
    let inode = f.nth(2)?.parse().ok()?;
    let vma = Vma {
        start: usize::from_str_radix(s, 16).ok()?,
        end: usize::from_str_radix(e, 16).ok()?,
        inode,
        ..Vma::default()
    };
    Some((vma, perms.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_fields_of_overlapping_vmas_only() {
        let text = "\
1000-3000 r-xp 00000000 fe:00 12 /lib/x.so
Rss:                   8 kB
Pss:                   4 kB
Private_Dirty:         0 kB
VmFlags: rd ex
3000-4000 rw-p 00002000 fe:00 12 /lib/x.so
Rss:                   4 kB
Private_Dirty:         4 kB
9000-a000 rw-p 00000000 00:00 0
Rss:                   4 kB
";
        let v = parse_smaps(text, 0x2000, 0x4000);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].0.start, v[0].0.rss_kb, v[0].0.pss_kb), (0x1000, 8, 4));
        assert_eq!(v[0].1, "r-xp");
        assert_eq!((v[1].0.private_dirty_kb, v[1].1.as_str()), (4, "rw-p"));
    }
}
