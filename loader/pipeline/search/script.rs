//! GNU ld scripts standing in for a library (Debian's `libm.so`):
//! `GROUP ( /lib/x86_64-linux-gnu/libm.so.6 AS_NEEDED ( /lib/x86_64-linux-gnu/libmvec.so.1 ) )`.
//!
//! The static linker reads such a file as "link these instead". minld
//! follows it too: the first member not marked AS_NEEDED becomes the
//! library, other plain members are loaded as its dependencies, and
//! AS_NEEDED members are loaded only when a lookup needs them.
//!
//! (See `docs/design.md`, "GNU ld linker scripts (Debian's libm.so)".)

use crate::base::error::ScriptFault;

/// One file named by a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// A path, or a `-lname` turned into `libname.so`.
    pub(crate) name: String,
    /// Inside AS_NEEDED ( ... ): loaded only when a lookup needs it.
    pub(crate) as_needed: bool,
}

/// Whether the start of a file looks like a linker script rather than a
/// binary: printable text that opens with a comment or a command.
pub(crate) fn looks_like_script(first: &[u8]) -> bool {
    let text = first
        .iter()
        .all(|&b| b == b'\n' || b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b));
    let s = String::from_utf8_lossy(first);
    let s = s.trim_start();
    text && (s.starts_with("/*")
        || s.starts_with("GROUP")
        || s.starts_with("INPUT")
        || s.starts_with("OUTPUT_FORMAT"))
}

/// The words of a script, with `(`, `)` and `,` as words of their own and
/// comments left out.
fn tokens(text: &str) -> Result<Vec<String>, ScriptFault> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if text[i..].starts_with("/*") => {
                let end = text[i + 2..]
                    .find("*/")
                    .ok_or(ScriptFault::UnterminatedComment { at: i })?;
                let stop = i + 2 + end + 2;
                while chars.peek().is_some_and(|&(j, _)| j < stop) {
                    chars.next();
                }
            }
            '(' | ')' | ',' => out.push(c.to_string()),
            c if c.is_whitespace() => {}
            _ => {
                let mut word = String::from(c);
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_whitespace() || n == '(' || n == ')' || n == ',' {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    Ok(out)
}

/// Parses a script into the files its GROUP and INPUT commands name.
pub(crate) fn parse(text: &str) -> Result<Vec<Member>, ScriptFault> {
    let toks = tokens(text)?;
    let mut members = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let cmd = toks[i].as_str();
        if toks.get(i + 1).map(String::as_str) != Some("(") {
            return Err(ScriptFault::ExpectedParen {
                command: cmd.to_string(),
            });
        }
        // Find the matching parenthesis.
        let mut depth = 0;
        let mut j = i + 1;
        loop {
            match toks.get(j).map(String::as_str) {
                Some("(") => depth += 1,
                Some(")") => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(_) => {}
                None => {
                    return Err(ScriptFault::Unbalanced {
                        command: cmd.to_string(),
                    })
                }
            }
            j += 1;
        }
        if cmd == "GROUP" || cmd == "INPUT" {
            let mut as_needed = false;
            let mut k = i + 2;
            while k < j {
                match toks[k].as_str() {
                    "AS_NEEDED" => {
                        as_needed = true;
                        k += 1; // the "("
                    }
                    ")" => as_needed = false,
                    "," | "(" => {}
                    name => {
                        let name = match name.strip_prefix("-l") {
                            Some(l) => format!("lib{l}.so"),
                            None => name.to_string(),
                        };
                        members.push(Member { name, as_needed });
                    }
                }
                k += 1;
            }
        }
        i = j + 1;
    }
    if !members.iter().any(|m| !m.as_needed) {
        return Err(ScriptFault::NoLibrary);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debians_libm_script() {
        let text = "/* GNU ld script\n*/\nOUTPUT_FORMAT(elf64-x86-64)\nGROUP ( /lib/x86_64-linux-gnu/libm.so.6  AS_NEEDED ( /lib/x86_64-linux-gnu/libmvec.so.1 ) )\n";
        assert!(looks_like_script(text.as_bytes()));
        assert_eq!(
            parse(text).unwrap(),
            vec![
                Member {
                    name: "/lib/x86_64-linux-gnu/libm.so.6".into(),
                    as_needed: false
                },
                Member {
                    name: "/lib/x86_64-linux-gnu/libmvec.so.1".into(),
                    as_needed: true
                },
            ]
        );
    }

    #[test]
    fn input_with_dash_l_and_commas() {
        let m = parse("INPUT(-lfoo, libbar.so.2)").unwrap();
        assert_eq!(m[0].name, "libfoo.so");
        assert_eq!(m[1].name, "libbar.so.2");
    }

    #[test]
    fn rejects_broken_scripts() {
        assert_eq!(
            parse("GROUP ( libm.so.6"),
            Err(ScriptFault::Unbalanced {
                command: "GROUP".into()
            })
        );
        assert_eq!(
            parse("x /* open"),
            Err(ScriptFault::UnterminatedComment { at: 2 })
        );
        assert_eq!(
            parse("GROUP ( AS_NEEDED ( x.so ) )"),
            Err(ScriptFault::NoLibrary)
        );
        assert_eq!(
            parse("GROUP libm.so.6"),
            Err(ScriptFault::ExpectedParen {
                command: "GROUP".into()
            })
        );
        assert_eq!(
            ScriptFault::Unbalanced {
                command: "GROUP".into()
            }
            .to_string(),
            "unbalanced parentheses in `GROUP'"
        );
    }
}
