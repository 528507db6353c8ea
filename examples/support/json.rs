//! The one JSON string writer of the examples' `--json` outputs
//! (`dlopen --pages --json`, `file_io --json`).

use std::fmt::Write as _;

/// `s` as a JSON string: quoted, with `"`, `\` and control characters
/// escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
