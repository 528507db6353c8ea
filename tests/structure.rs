//! The loader's layout, checked: each folder of `loader/` uses only the
//! folders below it (README, "How it is built"), no two files import each
//! other in a circle, and no file is over 600 lines.
//!
//! References are read from the source text: `crate::a::b` paths (and
//! `crate::{a::b, c}` groups) outside comments, string literals and
//! `#[cfg(test)]` modules. A name re-exported by `lib.rs` counts as the
//! module it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: &[&str] = &[
    "base", "os", "elf", "process", "model", "pipeline", "api", "plugin",
];

/// What `lib.rs` re-exports (`pub use a::b::{X, Y};`), name by name,
/// with the module path it comes from.
fn root_exports() -> Vec<(String, Vec<String>)> {
    let lib = code(&std::fs::read_to_string(root().join("lib.rs")).unwrap());
    let mut out = Vec::new();
    for stmt in lib.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let body: String = stmt[at + 8..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let (base, names) = match body.split_once("::{") {
            Some((base, names)) => (base.to_string(), names.trim_end_matches('}').to_string()),
            None => match body.rsplit_once("::") {
                Some((base, name)) => (base.to_string(), name.to_string()),
                None => continue,
            },
        };
        let module: Vec<String> = base.split("::").map(str::to_string).collect();
        for n in names.split(',').filter(|n| !n.is_empty()) {
            // The name itself too: a re-exported module is its own file
            // (`target` takes the longest prefix that is one).
            let mut m = module.clone();
            m.push(n.to_string());
            out.push((n.to_string(), m));
        }
    }
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("loader")
}

/// A path as the repository names it (`loader/base/error.rs`).
fn rel(p: &Path) -> String {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    p.strip_prefix(top).unwrap_or(p).display().to_string()
}

/// Every `.rs` file under `dir`, by its module path (`pipeline::reloc`
/// for `pipeline/reloc/mod.rs`).
fn modules(dir: &Path, out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            modules(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root()).unwrap().with_extension("");
            let mut m: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib")) {
                m.pop();
            }
            out.insert(m, p);
        }
    }
}

/// The source without comments, string and char literals, and test modules.
fn code(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if b[i] == b'"' && !(i > 0 && b[i - 1] == b'\'') {
            let raw = i > 0 && b[i - 1] == b'r';
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' && !raw { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    match out.find("#[cfg(test)]\nmod ") {
        Some(t) => out[..t].to_string(),
        None => out,
    }
}

/// The module paths a file names through `crate::`.
fn references(src: &str) -> Vec<Vec<String>> {
    let mut refs = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                refs.push(path_of(item.trim()));
            }
        } else {
            refs.push(path_of(rest));
        }
    }
    refs
}

fn path_of(s: &str) -> Vec<String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end]
        .split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The module file a path lands in: its longest prefix that is one.
fn target(
    path: &[String],
    mods: &BTreeMap<Vec<String>, PathBuf>,
    exports: &[(String, Vec<String>)],
) -> Option<Vec<String>> {
    let mut path = path.to_vec();
    if let Some(first) = path.first() {
        if let Some((_, real)) = exports.iter().find(|(n, _)| n == first).cloned() {
            let mut p = real;
            p.extend(path.drain(1..));
            path = p;
        }
    }
    (1..=path.len())
        .rev()
        .map(|k| path[..k].to_vec())
        .find(|p| mods.contains_key(p))
}

/// Module paths and their files.
type Modules = BTreeMap<Vec<String>, PathBuf>;
/// Module paths and the modules each names.
type Edges = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// Edges between module files, leaving out a module and its own ancestors.
fn graph() -> (Modules, Edges) {
    let mut mods = BTreeMap::new();
    modules(&root(), &mut mods);
    let exports = root_exports();
    let mut edges: Edges = BTreeMap::new();
    for (m, p) in &mods {
        let src = code(&std::fs::read_to_string(p).unwrap());
        let set = edges.entry(m.clone()).or_default();
        for r in references(&src) {
            if let Some(t) = target(&r, &mods, &exports) {
                if !t.starts_with(m) && !m.starts_with(&t) {
                    set.insert(t);
                }
            }
        }
    }
    (mods, edges)
}

#[test]
fn each_folder_uses_only_the_folders_below_it() {
    let (mods, edges) = graph();
    let layer = |m: &[String]| m.first().and_then(|f| LAYERS.iter().position(|l| l == f));
    let mut up = Vec::new();
    for (m, ts) in &edges {
        let Some(mine) = layer(m) else { continue };
        for t in ts {
            if layer(t).is_some_and(|l| l > mine) {
                up.push(format!("{} uses {}", rel(&mods[m]), t.join("::")));
            }
        }
    }
    assert!(
        up.is_empty(),
        "references up the layers:\n{}",
        up.join("\n")
    );
    // Every file is in a layer (or is lib.rs).
    let outside: Vec<_> = mods
        .keys()
        .filter(|m| !m.is_empty() && layer(m).is_none())
        .collect();
    assert!(outside.is_empty(), "files outside the layers: {outside:?}");
}

#[test]
fn no_file_imports_itself_through_others() {
    let (mods, edges) = graph();
    // For each file, every file it reaches; a file that reaches itself is
    // on a cycle, through the files it names that reach it back.
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for t in edges.get(&n).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    stack.push(t.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<_, _> = mods.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut cycles = Vec::new();
    for (m, r) in &reaches {
        if r.contains(m) {
            let via: Vec<_> = edges[m]
                .iter()
                .filter(|t| reaches[*t].contains(m))
                .map(|t| rel(&mods[t]))
                .collect();
            cycles.push(format!("{} -> {}", rel(&mods[m]), via.join(", ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_file_is_over_600_lines() {
    let (mods, _) = graph();
    let long: Vec<_> = mods
        .values()
        .map(|p| (p, std::fs::read_to_string(p).unwrap().lines().count()))
        .filter(|&(_, n)| n > 600)
        .map(|(p, n)| format!("{}: {n} lines", rel(p)))
        .collect();
    assert!(
        long.is_empty(),
        "files over 600 lines:\n{}",
        long.join("\n")
    );
}

/// The checker itself: it sees a reference up, and none in comments.
#[test]
fn the_checker_reads_references() {
    let src = code("use crate::{base::error::Error, os::sys};\n// crate::api::x\nlet s = \"crate::plugin\";\nfn f() { crate::model::image::at(); }\n");
    let refs = references(&src);
    let flat: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(flat, ["base::error::Error", "os::sys", "model::image::at"]);
}
