//! loadbench's output: the markdown tables and the JSON document, from the
//! samples `loadbench.rs` gathered (a submodule of it: it uses its types).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{
    kb, loader_index, median, median_i, median_u, smaps, thousands, us, LibResult, Lookup, Mode,
    Opts, Samples, Syscalls, Which, LOOKUP_BATCHES, LOOKUP_CALLS, LOOKUP_HIT, LOOKUP_LIB,
    LOOKUP_MISS,
};

/// `a / b` with two decimals, or a dash.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

/// The load table of mode `mi` (and with `--smaps` its table by kind of
/// memory); failures go to `footnotes`.
pub(super) fn load_table(
    out: &mut String,
    footnotes: &mut Vec<String>,
    opts: &Opts,
    mi: usize,
    mode: Mode,
    libs: &[LibResult],
) {
    let _ = writeln!(out, "## Load, {}\n", mode.title());
    let _ = writeln!(
        out,
        "| library | relocations | DT_NEEDED | objects glibc/minld | glibc µs | minld µs | minld/glibc | RSS glibc kB | RSS minld kB | minld cached µs | cached/glibc | RSS cached kB |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for lib in libs {
        let [m, g, c] = &lib.modes[mi];
        let (mm, gm, cm) = (median_u(&m.ns), median_u(&g.ns), median_u(&c.ns));
        let mut cell = |s: &Samples, who: &str, v: String| match &s.error {
            Some(e) => {
                footnotes.push(format!("{} ({}, {who}): {e}", lib.name, mode.name()));
                format!("failed [{}]", footnotes.len())
            }
            None => v,
        };
        let gtime = cell(g, "glibc", us(gm));
        let mtime = cell(m, "minld", us(mm));
        let ctime = cell(c, "minld cached", us(cm));
        let objects = |s: &Samples| {
            if s.error.is_some() {
                "—".to_string()
            } else {
                s.objects.len().to_string()
            }
        };
        if let Some(e) = &lib.parse_error {
            footnotes.push(format!("{}: counting relocations: {e}", lib.name));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            lib.name,
            lib.relocations.map_or("—".into(), thousands),
            lib.needed.map_or("—".into(), |n| n.to_string()),
            objects(g),
            objects(m),
            gtime,
            mtime,
            ratio(mm, gm),
            kb(median_i(&g.rss_kb)),
            kb(median_i(&m.rss_kb)),
            ctime,
            ratio(cm, gm),
            kb(median_i(&c.rss_kb)),
        );
    }
    out.push('\n');
    if opts.smaps {
        let rows: Vec<_> = libs
            .iter()
            .map(|l| {
                let [m, g, c] = &l.modes[mi];
                let rss = |s: &Samples| median_i(&s.rss_kb).unwrap_or(0.0);
                (
                    l.name.clone(),
                    [&m.smaps, &g.smaps, &c.smaps],
                    [rss(m), rss(g), rss(c)],
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "RSS growth by kind of memory ({} mode, kB, median of each kind over the runs; \
             from /proc/self/smaps before and after the loading call):\n",
            mode.name()
        );
        out.push_str(&smaps::table(&rows));
        out.push('\n');
    }
}

/// The notes under the load tables.
pub(super) fn notes(out: &mut String, libs: &[LibResult]) {
    let _ = writeln!(
        out,
        "Medians. relocations: DT_RELA + DT_JMPREL + DT_RELR entries, parsed from the file. \
         objects: shared objects newly mapped by the load, the library included \
         (libc and libgcc_s are the process's own for both loaders). RSS: VmRSS growth over the \
         loading call. minld cached: `cache(dir)` on a fresh private directory; the untimed \
         first load wrote the record, an untimed check under MINLD_DEBUG=libs saw it proven, \
         and every timed run found it and left it unchanged (a run that did not is refused)."
    );
    for l in libs {
        if let (Some(n), Some(d)) = (l.needed, l.minld_deps) {
            if n != d {
                let _ = writeln!(
                    out,
                    "Note: {}: DT_NEEDED {n}, Library::dependencies() {d}",
                    l.name
                );
            }
        }
    }
    out.push('\n');
}

/// The symbol lookup table: dlsym against `Library::get` and `Library::find`.
pub(super) fn lookup_table(out: &mut String, lookup: &[(Which, Lookup)]) {
    let _ = writeln!(
        out,
        "## Symbol lookup in {LOOKUP_LIB} (ns per call, median of {LOOKUP_BATCHES} batches of {LOOKUP_CALLS})\n"
    );
    let _ = writeln!(
        out,
        "| lookup | glibc dlsym | minld Library::get | minld/glibc | minld Library::find | find/glibc |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let get = |w: Which, key: &str| -> Option<f64> {
        lookup
            .iter()
            .find(|(x, _)| *x == w)
            .and_then(|(_, r)| r.as_ref().ok())
            .and_then(|m| m.get(key))
            .and_then(|v| median(v))
    };
    for (label, key) in [
        (format!("hit `{LOOKUP_HIT}`"), "hit"),
        (format!("miss `{LOOKUP_MISS}`"), "miss"),
    ] {
        let (g, m) = (get(Which::Glibc, key), get(Which::Minld, key));
        let fm = get(Which::Minld, &format!("find_{key}"));
        let f = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            f(g),
            f(m),
            ratio(m, g),
            f(fm),
            ratio(fm, g)
        );
    }
    for (w, r) in lookup {
        if let Err(e) = r {
            let _ = writeln!(out, "\n{} lookup failed: {e}", w.name());
        }
    }
    out.push('\n');
}

/// The system-call table, one row per library and loader.
pub(super) fn syscall_table(
    out: &mut String,
    footnotes: &mut Vec<String>,
    strace_mode: Mode,
    skipped: Option<&str>,
    libs: &[LibResult],
) {
    let _ = writeln!(
        out,
        "## System calls per load ({} mode, counted under strace between the markers)\n",
        strace_mode.name()
    );
    if let Some(reason) = skipped {
        let _ = writeln!(out, "No table: {reason}\n");
        return;
    }
    // The kinds seen, most frequent first; up to eight get a column.
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for lib in libs {
        for s in lib.syscalls.iter().flatten().flatten() {
            for (k, v) in &s.by_kind {
                *totals.entry(k).or_default() += v;
            }
        }
    }
    let mut kinds: Vec<(&str, u64)> = totals.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = kinds.iter().take(8).map(|k| k.0).collect();
    let has_other = kinds.len() > shown.len();
    let _ = write!(out, "| library | loader | total |");
    for k in &shown {
        let _ = write!(out, " {k} |");
    }
    if has_other {
        out.push_str(" other |");
    }
    out.push_str("\n|---|---|---:|");
    for _ in 0..shown.len() + usize::from(has_other) {
        out.push_str("---:|");
    }
    out.push('\n');
    for lib in libs {
        for w in [Which::Glibc, Which::Minld, Which::Cached] {
            let who = if w == Which::Cached {
                "minld cached"
            } else {
                w.name()
            };
            let _ = write!(out, "| {} | {who} |", lib.name);
            match &lib.syscalls[loader_index(w)] {
                Some(Ok(s)) => {
                    let _ = write!(out, " {} |", s.total);
                    let mut rest = s.total;
                    for k in &shown {
                        let n = s.by_kind.get(*k).copied().unwrap_or(0);
                        rest -= n;
                        let _ = write!(out, " {n} |");
                    }
                    if has_other {
                        let _ = write!(out, " {rest} |");
                    }
                }
                Some(Err(e)) => {
                    footnotes.push(format!("{} strace, {who}: {e}", lib.name));
                    let _ = write!(out, " failed [{}] |", footnotes.len());
                    out.push_str(&" — |".repeat(shown.len() + usize::from(has_other)));
                }
                None => out.push_str(&" — |".repeat(1 + shown.len() + usize::from(has_other))),
            }
            out.push('\n');
        }
    }
    if has_other {
        let other: Vec<String> = kinds[shown.len()..]
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "\nother, over all loads: {}", other.join(", "));
    }
    out.push('\n');
}

/// An array of numbers.
fn nums(v: &[f64]) -> J {
    J::Arr(v.iter().map(|&x| J::Num(x)).collect())
}

/// The lookup part of the JSON: per loader, each key's batches and median.
fn lookup_json(lookup: &[(Which, Lookup)]) -> J {
    J::Obj(
        lookup
            .iter()
            .map(|(w, r)| {
                let v = match r {
                    Ok(m) => {
                        let mut fields = Vec::new();
                        for (k, v) in m {
                            fields.push((format!("{k}_ns_per_call"), nums(v)));
                        }
                        for (k, v) in m {
                            fields.push((format!("median_{k}_ns"), J::opt_num(median(v))));
                        }
                        J::Obj(fields)
                    }
                    Err(e) => J::obj(vec![("error", J::Str(e.clone()))]),
                };
                (w.name().to_string(), v)
            })
            .collect(),
    )
}

/// One library's part of the JSON.
fn library_json(opts: &Opts, l: &LibResult) -> J {
    let int = |v: Option<usize>| v.map_or(J::Null, |n| J::Int(n as i64));
    J::obj(vec![
        ("name", J::Str(l.name.clone())),
        ("path", J::Str(l.path.display().to_string())),
        (
            "relocations",
            l.relocations.map_or(J::Null, |r| J::Int(r as i64)),
        ),
        ("dt_needed", int(l.needed)),
        ("minld_dependencies", int(l.minld_deps)),
        (
            "modes",
            J::Obj(
                opts.modes
                    .iter()
                    .zip(&l.modes)
                    .map(|(m, [mi, gl, ca])| {
                        (
                            m.name().to_string(),
                            J::obj(vec![
                                ("minld", samples_json(mi)),
                                ("glibc", samples_json(gl)),
                                ("cached", samples_json(ca)),
                            ]),
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "syscalls",
            J::obj(vec![
                ("minld", syscalls_json(&l.syscalls[0])),
                ("glibc", syscalls_json(&l.syscalls[1])),
                ("cached", syscalls_json(&l.syscalls[2])),
            ]),
        ),
    ])
}

/// The JSON document: every raw sample and every median.
pub(super) fn json(
    opts: &Opts,
    host: &str,
    libs: &[LibResult],
    lookup: &[(Which, Lookup)],
    strace_mode: Mode,
    strace_skipped: Option<String>,
) -> String {
    let doc = J::obj(vec![
        ("benchmark", J::Str("minld loadbench".into())),
        ("host", J::Str(host.to_string())),
        ("runs", J::Int(opts.runs as i64)),
        (
            "modes",
            J::Arr(opts.modes.iter().map(|m| J::Str(m.name().into())).collect()),
        ),
        (
            "libraries",
            J::Arr(libs.iter().map(|l| library_json(opts, l)).collect()),
        ),
        ("lookup", lookup_json(lookup)),
        ("syscalls_mode", J::Str(strace_mode.name().into())),
        ("syscalls_skipped", strace_skipped.map_or(J::Null, J::Str)),
    ]);
    let mut text = String::new();
    doc.write(&mut text, 0);
    text.push('\n');
    text
}

// A hand-written JSON value and printer (no serde in minld's dependencies).
/// A JSON value.
enum J {
    /// null.
    Null,
    /// A number (null unless finite).
    Num(f64),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, keys in order.
    Obj(Vec<(String, J)>),
}

impl J {
    /// A number or null.
    fn opt_num(v: Option<f64>) -> J {
        v.map_or(J::Null, J::Num)
    }
    /// An object from borrowed keys.
    fn obj(fields: Vec<(&str, J)>) -> J {
        J::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
    /// Prints the value, indented by `indent` levels.
    fn write(&self, out: &mut String, indent: usize) {
        let pad = |n: usize| "  ".repeat(n);
        match self {
            J::Null => out.push_str("null"),
            J::Num(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            J::Num(_) => out.push_str("null"),
            J::Int(v) => {
                let _ = write!(out, "{v}");
            }
            J::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            J::Arr(items) => {
                // Arrays of scalars on one line, others one item a line.
                let flat = items.iter().all(|i| !matches!(i, J::Arr(_) | J::Obj(_)));
                out.push('[');
                for (n, i) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                        if flat {
                            out.push(' ');
                        }
                    }
                    if !flat {
                        out.push('\n');
                        out.push_str(&pad(indent + 1));
                    }
                    i.write(out, indent + 1);
                }
                if !flat && !items.is_empty() {
                    out.push('\n');
                    out.push_str(&pad(indent));
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (n, (k, v)) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push('\n');
                    out.push_str(&pad(indent + 1));
                    J::Str(k.clone()).write(out, indent + 1);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                }
                if !fields.is_empty() {
                    out.push('\n');
                    out.push_str(&pad(indent));
                }
                out.push('}');
            }
        }
    }
}

/// One loader's samples as JSON.
fn samples_json(s: &Samples) -> J {
    J::obj(vec![
        (
            "ns",
            J::Arr(s.ns.iter().map(|&v| J::Int(v as i64)).collect()),
        ),
        (
            "rss_kb",
            J::Arr(s.rss_kb.iter().map(|&v| J::Int(v)).collect()),
        ),
        ("median_ns", J::opt_num(median_u(&s.ns))),
        ("median_rss_kb", J::opt_num(median_i(&s.rss_kb))),
        (
            "objects",
            J::Arr(s.objects.iter().map(|p| J::Str(p.clone())).collect()),
        ),
        ("error", s.error.clone().map_or(J::Null, J::Str)),
        (
            "smaps_kb",
            J::Obj(
                s.smaps
                    .iter()
                    .map(|(k, v)| (k.clone(), J::Arr(v.iter().map(|&x| J::Int(x)).collect())))
                    .collect(),
            ),
        ),
    ])
}

/// One load's system calls as JSON.
fn syscalls_json(s: &Option<Result<Syscalls, String>>) -> J {
    match s {
        None => J::Null,
        Some(Err(e)) => J::obj(vec![("error", J::Str(e.clone()))]),
        Some(Ok(s)) => J::obj(vec![
            ("total", J::Int(s.total as i64)),
            (
                "by_kind",
                J::Obj(
                    s.by_kind
                        .iter()
                        .map(|(k, v)| (k.clone(), J::Int(*v as i64)))
                        .collect(),
                ),
            ),
        ]),
    }
}
