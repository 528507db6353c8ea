//! Formatting of system-call arguments exactly as strace 6 prints them, so a
//! line of minld's trace can be found verbatim in strace's output.

use nix::errno::Errno;

/// strace's default string limit (`-s 32`).
const STRING_LIMIT: usize = 32;

/// Quotes bytes the way strace's `string_quote` does: C escapes for the usual
/// control characters, printable ASCII as is, everything else in octal (three
/// digits when the next byte is an octal digit, so the escape stays unambiguous).
fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x0c => s.push_str("\\f"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x0b => s.push_str("\\v"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                s.push('\\');
                let next_is_octal = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if next_is_octal {
                    s.push((b'0' + (c >> 6)) as char);
                    s.push((b'0' + ((c >> 3) & 7)) as char);
                } else if c >> 3 != 0 {
                    if c >> 6 != 0 {
                        s.push((b'0' + (c >> 6)) as char);
                    }
                    s.push((b'0' + ((c >> 3) & 7)) as char);
                }
                s.push((b'0' + (c & 7)) as char);
            }
        }
    }
    s.push('"');
    s
}

/// A path argument: quoted in full.
pub(crate) fn quote_path(path: &[u8]) -> String {
    quote(path)
}

/// A data buffer: the first 32 bytes quoted, then `...` when there was more.
pub(crate) fn quote_buffer(data: &[u8]) -> String {
    if data.len() > STRING_LIMIT {
        format!("{}...", quote(&data[..STRING_LIMIT]))
    } else {
        quote(data)
    }
}

/// A pointer argument: `NULL` or hex.
pub(crate) fn pointer(addr: usize) -> String {
    if addr == 0 {
        "NULL".to_string()
    } else {
        format!("{addr:#x}")
    }
}

/// A file offset: `0` or hex.
pub(crate) fn offset(off: u64) -> String {
    if off == 0 {
        "0".to_string()
    } else {
        format!("{off:#x}")
    }
}

/// Memory protections: `PROT_READ|PROT_EXEC`, or `PROT_NONE`.
pub(crate) fn prot(prot: i32) -> String {
    let names = [
        (libc::PROT_READ, "PROT_READ"),
        (libc::PROT_WRITE, "PROT_WRITE"),
        (libc::PROT_EXEC, "PROT_EXEC"),
    ];
    flags(prot, &names, "PROT_NONE")
}

/// mmap flags: the mapping type first, then the other flags by bit value.
pub(crate) fn map_flags(f: i32) -> String {
    let names = [
        (libc::MAP_SHARED, "MAP_SHARED"),
        (libc::MAP_PRIVATE, "MAP_PRIVATE"),
        (libc::MAP_FIXED, "MAP_FIXED"),
        (libc::MAP_ANONYMOUS, "MAP_ANONYMOUS"),
        (libc::MAP_32BIT, "MAP_32BIT"),
        (libc::MAP_GROWSDOWN, "MAP_GROWSDOWN"),
        (libc::MAP_DENYWRITE, "MAP_DENYWRITE"),
        (libc::MAP_EXECUTABLE, "MAP_EXECUTABLE"),
        (libc::MAP_LOCKED, "MAP_LOCKED"),
        (libc::MAP_NORESERVE, "MAP_NORESERVE"),
        (libc::MAP_POPULATE, "MAP_POPULATE"),
        (libc::MAP_NONBLOCK, "MAP_NONBLOCK"),
        (libc::MAP_STACK, "MAP_STACK"),
        (libc::MAP_HUGETLB, "MAP_HUGETLB"),
        (libc::MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
    ];
    flags(f, &names, "0")
}

fn flags(value: i32, names: &[(i32, &str)], none: &str) -> String {
    let mut out = Vec::new();
    let mut rest = value;
    for &(bit, name) in names {
        if value & bit == bit && bit != 0 {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        none.to_string()
    } else {
        out.join("|")
    }
}

/// st_mode: `S_IFREG|0644`.
pub(crate) fn mode(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFREG => "S_IFREG",
        libc::S_IFDIR => "S_IFDIR",
        libc::S_IFLNK => "S_IFLNK",
        libc::S_IFCHR => "S_IFCHR",
        libc::S_IFBLK => "S_IFBLK",
        libc::S_IFIFO => "S_IFIFO",
        libc::S_IFSOCK => "S_IFSOCK",
        _ => "0",
    };
    let mut s = kind.to_string();
    for (bit, name) in [
        (libc::S_ISUID, "S_ISUID"),
        (libc::S_ISGID, "S_ISGID"),
        (libc::S_ISVTX, "S_ISVTX"),
    ] {
        if mode & bit != 0 {
            s.push('|');
            s.push_str(name);
        }
    }
    // strace prints the permission bits with `%#03o`: a leading 0, at least
    // three digits in all (0, 044, 0644).
    let perm = mode & 0o777;
    let digits = format!("0{perm:o}");
    s.push('|');
    s.push_str(&format!("{digits:0>3}"));
    s
}

/// The errno's symbolic name, e.g. `ENOENT`.
pub(crate) fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_an_elf_header_like_strace() {
        let hdr = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00 and more";
        assert_eq!(
            quote_buffer(hdr),
            r#""\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0\0\0\0\0\0\0\0\0"..."#
        );
    }

    #[test]
    fn octal_escape_before_a_digit_takes_three_digits() {
        assert_eq!(quote(b"\x01" as &[u8]), r#""\1""#);
        assert_eq!(quote(b"\x017"), r#""\0017""#);
        assert_eq!(quote(b"\xff8"), r#""\3778""#);
        assert_eq!(quote(b"a\"b\\\n"), r#""a\"b\\\n""#);
    }

    #[test]
    fn flags_print_in_strace_order() {
        assert_eq!(
            map_flags(libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_DENYWRITE),
            "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
        );
        assert_eq!(prot(0), "PROT_NONE");
        assert_eq!(
            prot(libc::PROT_READ | libc::PROT_EXEC),
            "PROT_READ|PROT_EXEC"
        );
        assert_eq!(mode(libc::S_IFREG | 0o644), "S_IFREG|0644");
        assert_eq!(mode(libc::S_IFREG | 0o44), "S_IFREG|044");
        assert_eq!(mode(libc::S_IFREG | 0o4), "S_IFREG|004");
        assert_eq!(mode(libc::S_IFREG), "S_IFREG|000");
        assert_eq!(pointer(0), "NULL");
        assert_eq!(offset(0x3000), "0x3000");
    }
}
