//! `dlopen --pages`: a snapshot of the loaded object's pages (from
//! `minld::pages`) printed as a table, as JSON, or drawn as an SVG with one
//! strip of cells per stage. A submodule of `dlopen.rs`.

use std::fmt::Write as _;

use minld::pages::{Mapping, PageState, Snapshot};

use crate::json::quote;

/// One moment of the load and what the kernel said then.
pub struct Stage {
    /// `mapped`, `loaded`, `called`, or `shared-minld`/`shared-glibc`.
    pub name: String,
    /// What the moment is, in words.
    pub what: String,
    /// The pages.
    pub snap: Snapshot,
    /// The object's load base then (section addresses are relative to it).
    pub base: usize,
}

/// `r-xp` as the JSON and the table print it: `r-x`.
fn prot3(p: &str) -> &str {
    p.get(..3).unwrap_or(p)
}

/// A mapping's name: `seg 2 file`, `hole`.
fn label(m: &Mapping) -> String {
    match m.segment {
        Some(i) => format!("seg {i} {}", m.part),
        None => m.part.to_string(),
    }
}

/// An smaps number of the mapping's own VMA, or `-` when the VMA is larger
/// than the mapping (its numbers are then not the mapping's alone).
fn kb(m: &Mapping, f: impl Fn(&minld::pages::Vma) -> u64) -> String {
    match m.vma {
        Some(v) if m.vma_is_exact() => f(&v).to_string(),
        _ => "-".to_string(),
    }
}

/// The table of one stage.
pub fn print_text(stage: &Stage) {
    println!(
        "stage {} ({}): {}",
        stage.name,
        stage.what,
        stage.snap.path.display()
    );
    println!(
        "  {:<11} {:<4} {:>14} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9}",
        "mapping",
        "prot",
        "start",
        "pages",
        "present",
        "cached",
        "private",
        "shared",
        "rss_kB",
        "pss_kB",
        "shared_kB",
        "pdirty_kB"
    );
    for m in &stage.snap.mappings {
        println!(
            "  {:<11} {:<4} {:>#14x} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9}",
            label(m),
            prot3(&m.prot),
            m.start,
            m.pages,
            m.present,
            m.cached,
            m.private,
            m.shared,
            kb(m, |v| v.rss_kb),
            kb(m, |v| v.pss_kb),
            kb(m, |v| v.shared_clean_kb + v.shared_dirty_kb),
            kb(m, |v| v.private_dirty_kb),
        );
    }
    let pages: usize = stage.snap.mappings.iter().map(|m| m.pages).sum();
    let present: usize = stage.snap.mappings.iter().map(|m| m.present).sum();
    println!(
        "  total: {present} of {pages} pages present ({:.1} %)",
        if pages == 0 {
            0.0
        } else {
            100.0 * present as f64 / pages as f64
        }
    );
}

/// `--sections`: the stage's pages counted by the ELF sections of the file
/// that lie in memory (a page holding the end of one section and the start
/// of the next counts for both).
pub fn print_sections(stage: &Stage) -> Result<(), String> {
    let path = &stage.snap.path;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let page = stage
        .snap
        .mappings
        .first()
        .map_or(4096, |m| (m.end() - m.start) / m.pages.max(1));
    println!("  by section ({}):", stage.name);
    println!(
        "    {:<20} {:>7} {:>7} {:>7} {:>7}",
        "section", "pages", "present", "private", "shared"
    );
    for sh in &elf.section_headers {
        if sh.sh_addr == 0 || sh.sh_flags & u64::from(goblin::elf::section_header::SHF_ALLOC) == 0 {
            continue;
        }
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("?");
        let lo = (stage.base + sh.sh_addr as usize) & !(page - 1);
        let hi = (stage.base + (sh.sh_addr + sh.sh_size.max(1)) as usize).next_multiple_of(page);
        let mut counts = [0usize; 4];
        for m in &stage.snap.mappings {
            for (i, st) in m.states.iter().enumerate() {
                let a = m.start + i * page;
                if a < lo || a >= hi {
                    continue;
                }
                counts[0] += 1;
                match st {
                    PageState::Private => counts[2] += 1,
                    PageState::Shared => counts[3] += 1,
                    _ => {}
                }
                if matches!(
                    st,
                    PageState::Clean
                        | PageState::Shared
                        | PageState::Private
                        | PageState::SharedCopy
                        | PageState::SharedAnon
                ) {
                    counts[1] += 1;
                }
            }
        }
        println!(
            "    {:<20} {:>7} {:>7} {:>7} {:>7}",
            name, counts[0], counts[1], counts[2], counts[3]
        );
    }
    Ok(())
}

/// An smaps number as JSON: null when the VMA is not the mapping's own.
fn kb_json(m: &Mapping, f: impl Fn(&minld::pages::Vma) -> u64) -> String {
    match m.vma {
        Some(v) if m.vma_is_exact() => f(&v).to_string(),
        _ => "null".to_string(),
    }
}

/// One mapping as a JSON object.
fn mapping_json(m: &Mapping) -> String {
    format!(
        "{{\"segment\": {}, \"part\": \"{}\", \"prot\": \"{}\", \"start\": \"{:#x}\", \"pages\": {}, \
         \"present\": {}, \"swapped\": {}, \"cached\": {}, \"private\": {}, \"shared\": {}, \
         \"shared_copy\": {}, \"private_dirty_kb\": {}, \"shared_kb\": {}, \"rss_kb\": {}, \"pss_kb\": {}}}",
        m.segment.map_or("null".to_string(), |i| i.to_string()),
        m.part,
        prot3(&m.prot),
        m.start,
        m.pages,
        m.present,
        m.swapped,
        m.cached,
        m.private,
        m.shared,
        m.shared_copy,
        kb_json(m, |v| v.private_dirty_kb),
        kb_json(m, |v| v.shared_clean_kb + v.shared_dirty_kb),
        kb_json(m, |v| v.rss_kb),
        kb_json(m, |v| v.pss_kb),
    )
}

/// The stages as the JSON.
pub fn json(library: &str, stages: &[Stage]) -> String {
    let mut out = format!("{{\"library\": {}, \"stages\": [", quote(library));
    for (i, s) in stages.iter().enumerate() {
        let maps: Vec<String> = s.snap.mappings.iter().map(mapping_json).collect();
        let _ = write!(
            out,
            "{}\n  {{\"stage\": {}, \"what\": {}, \"mappings\": [\n    {}]}}",
            if i == 0 { "" } else { "," },
            quote(&s.name),
            quote(&s.what),
            maps.join(",\n    ")
        );
    }
    out.push_str("]}\n");
    out
}

/// The fill colour of a page state, and its legend.
const STATES: [(PageState, &str, &str); 7] = [
    (PageState::Absent, "#eeeeee", "not present, not in memory"),
    (
        PageState::Cached,
        "#b9d3ee",
        "not present here, in the page cache (mincore)",
    ),
    (
        PageState::Clean,
        "#5b9bd5",
        "present, not written: a file page mapped once, or the zero page",
    ),
    (
        PageState::Shared,
        "#70ad47",
        "present, not written: a file page mapped more than once",
    ),
    (
        PageState::Private,
        "#e04040",
        "present, written, this process's own",
    ),
    (
        PageState::SharedCopy,
        "#f0a030",
        "present, written, shared copy on write with another process (fork)",
    ),
    (
        PageState::SharedAnon,
        "#a070c0",
        "present, anonymous, mapped twice: the zero page or a shared copy",
    ),
];

/// The colour of a state.
fn colour(s: PageState) -> &'static str {
    STATES
        .iter()
        .find(|(x, _, _)| *x == s)
        .map_or("#000000", |t| t.1)
}

/// Width of the grid of cells, in pixels.
const GRID: f64 = 960.0;
/// Height of a row of cells.
const ROW: f64 = 8.0;

/// The picture: for each stage a grid of cells (one per page, row after
/// row through the object's address range), a letter at the start of each
/// mapping, and a key naming the mappings with their protections.
pub fn svg(library: &str, stages: &[Stage]) -> String {
    let pages: usize = stages
        .first()
        .map_or(0, |s| s.snap.mappings.iter().map(|m| m.pages).sum());
    // At most ~48 rows per stage; a small object gets wide cells.
    let cols = pages.div_ceil(48).max(pages.min(64)).max(1);
    let cell = GRID / cols as f64;
    let rows = pages.div_ceil(cols);
    let keys = stages.first().map_or(0, |s| s.snap.mappings.len());
    let stage_h = 40.0 + rows as f64 * ROW + 16.0 * keys as f64 + 20.0;
    let height = 110.0 + stage_h * stages.len() as f64 + 20.0 * STATES.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
         font-family=\"monospace\" font-size=\"12\" xml:space=\"preserve\">\n\
         <rect width=\"{w}\" height=\"{height}\" fill=\"white\"/>\n\
         <text x=\"20\" y=\"20\" font-size=\"15\">{}</text>\n\
         <text x=\"20\" y=\"38\">one cell per page, {cols} pages a row, in address order; \
         read from /proc/self/pagemap, /proc/self/smaps and mincore</text>\n",
        escape(library),
        w = GRID + 40.0,
    );
    let mut y = 56.0;
    for s in stages {
        let _ = writeln!(
            out,
            "<text x=\"20\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}: {}</text>",
            y + 14.0,
            escape(&s.name),
            escape(&s.what)
        );
        y += 30.0;
        draw_cells(&mut out, &s.snap, cols, cell, y);
        y += rows as f64 * ROW + 10.0;
        draw_key(&mut out, &s.snap, y);
        y += 16.0 * s.snap.mappings.len() as f64 + 20.0;
    }
    for (i, (_, c, what)) in STATES.iter().enumerate() {
        let yy = y + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"20\" y=\"{yy}\" width=\"14\" height=\"14\" fill=\"{c}\" stroke=\"#888\"/>\
             <text x=\"42\" y=\"{}\">{}</text>",
            yy + 11.0,
            escape(what)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The cells of one stage, as runs of one state within a row, and a
/// letter and a dark line where each mapping starts.
fn draw_cells(out: &mut String, snap: &Snapshot, cols: usize, cell: f64, top: f64) {
    let mut index = 0usize;
    let mut last_label = f64::MIN;
    for (k, m) in snap.mappings.iter().enumerate() {
        let (row, col) = (index / cols, index % cols);
        let x = 20.0 + col as f64 * cell;
        let yy = top + row as f64 * ROW;
        let lx = if row == 0 { x.max(last_label + 9.0) } else { x };
        if row == 0 {
            last_label = lx;
            let _ = writeln!(
                out,
                "<text x=\"{lx}\" y=\"{}\" font-size=\"10\">{}</text>",
                top - 2.0,
                letter(k)
            );
        }
        let mut i = 0;
        while i < m.states.len() {
            let st = m.states[i];
            let at = index + i;
            let row_end = (at / cols + 1) * cols - index;
            let mut j = i + 1;
            while j < m.states.len() && j < row_end && m.states[j] == st {
                j += 1;
            }
            let _ = writeln!(
                out,
                "<rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{}\" fill=\"{}\"/>",
                20.0 + (at % cols) as f64 * cell,
                top + (at / cols) as f64 * ROW,
                (j - i) as f64 * cell,
                ROW - 1.0,
                colour(st)
            );
            i = j;
        }
        let _ = writeln!(
            out,
            "<rect x=\"{x:.2}\" y=\"{yy:.1}\" width=\"1.5\" height=\"{ROW}\" fill=\"black\"/>"
        );
        if row > 0 {
            let _ = writeln!(
                out,
                "<text x=\"{:.2}\" y=\"{:.1}\" font-size=\"9\">{}</text>",
                x + 2.0,
                yy + ROW - 1.0,
                letter(k)
            );
        }
        index += m.pages;
    }
}

/// The key of one stage: each mapping's letter, name, protections and
/// counts.
fn draw_key(out: &mut String, snap: &Snapshot, top: f64) {
    for (k, m) in snap.mappings.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"20\" y=\"{:.1}\">{} {:<11} {} {:>6} pages: {:>6} present, {:>5} private \
             dirty, {:>6} shared, {:>6} in memory; Rss {} kB, Pss {} kB</text>",
            top + 12.0 + 16.0 * k as f64,
            letter(k),
            label(m),
            escape(&m.prot),
            m.pages,
            m.present,
            m.private,
            m.shared,
            m.cached,
            kb(m, |v| v.rss_kb),
            kb(m, |v| v.pss_kb),
        );
    }
}

/// A mapping's letter in the picture: A, B, …
fn letter(k: usize) -> char {
    char::from(b'A' + (k % 26) as u8)
}

/// Text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
