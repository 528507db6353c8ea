//! file_io's output: the table and the JSON document, from the rows
//! `file_io.rs` measured (a submodule of it: it uses its types).

use std::fmt::Write as _;

use super::{Args, Row, PAGE};
use crate::json::quote;

/// The machine, for the record: CPU model and count, kernel, load average.
pub fn host() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{model}, {cpus} CPUs, Linux {}, load average {} at the start",
        kernel.trim(),
        load.join(" ")
    )
}

/// The rows as one JSON document.
pub fn print_json(a: &Args, host: &str, rows: &[Row]) {
    let mut out = format!(
        "{{\"host\": {}, \"page_size\": {PAGE}, \"buffer\": {}, \"accesses\": {}, \"repeat\": {}, \"samples\": {}, \"runs\": [",
        quote(host), a.buffer, a.accesses, a.repeat, a.samples
    );
    for (i, r) in rows.iter().enumerate() {
        let c = &r.m.calls;
        let cached = r
            .cached_pct
            .map_or("null".to_string(), |p| format!("{p:.1}"));
        let _ = write!(
            out,
            "{}\n  {{\"file\": {}, \"size\": {}, \"generated\": {}, \"cache\": \"{}\", \"prepared\": {}, \
             \"cached_pct_before\": {cached}, \"method\": \"{}\", \"pattern\": \"{}\", \"time_us\": {:.1}, \
             \"minflt\": {}, \"majflt\": {}, \"rss_growth_kb\": {}, \"bytes\": {}, \"checksum\": {}, \
             \"syscalls\": {{\"open\": {}, \"fstat\": {}, \"read\": {}, \"pread\": {}, \"mmap\": {}, \
             \"munmap\": {}, \"close\": {}, \"total\": {}}}}}",
            if i == 0 { "" } else { "," },
            quote(&r.file.to_string_lossy()),
            r.size,
            r.generated,
            r.cache,
            quote(&r.prepared),
            r.method,
            r.pattern,
            r.m.time_us,
            r.m.minflt,
            r.m.majflt,
            r.m.rss_growth_kb,
            r.m.bytes,
            r.m.checksum,
            c.open,
            c.fstat,
            c.read,
            c.pread,
            c.mmap,
            c.munmap,
            c.close,
            c.total()
        );
    }
    out.push_str("\n]}");
    println!("{out}");
}

/// The rows as a table, a block per file and cache state.
pub fn print_table(a: &Args, host: &str, rows: &[Row]) {
    println!("{host}");
    println!(
        "read() buffer {} bytes; random: {} accesses of {PAGE} bytes, repeated {} times; median of {} samples",
        a.buffer, a.accesses, a.repeat, a.samples
    );
    let mut last = None;
    for r in rows {
        if last != Some((&r.file, r.cache)) {
            println!(
                "\n{} ({} bytes{}), {} cache ({}; {} in the page cache before)",
                r.file.display(),
                r.size,
                if r.generated { ", generated" } else { "" },
                r.cache,
                r.prepared,
                r.cached_pct.map_or("-".to_string(), |p| format!("{p:.0}%"))
            );
            println!(
                "  {:<6} {:<10} {:>11} {:>9} {:>8} {:>8} {:>9} {:>10}",
                "method", "pattern", "time µs", "MB/s", "minflt", "majflt", "syscalls", "RSS +KiB"
            );
            last = Some((&r.file, r.cache));
        }
        let mbs = r.m.bytes as f64 / r.m.time_us.max(0.001);
        println!(
            "  {:<6} {:<10} {:>11.1} {:>9.0} {:>8} {:>8} {:>9} {:>10}",
            r.method,
            r.pattern,
            r.m.time_us,
            mbs,
            r.m.minflt,
            r.m.majflt,
            r.m.calls.total(),
            r.m.rss_growth_kb
        );
    }
}
