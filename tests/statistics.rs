//! `MINLD_DEBUG=statistics`: a load's time and page faults, phase by phase.
//! `MINLD_DEBUG` is read once per process, so the load runs in a fresh
//! process of this test binary with the variable set, and its stderr is
//! read here.

mod common;

use common::process::rerun;

/// Set in the child process that makes the load.
const CHILD: &str = "MINLD_TEST_STATISTICS_CHILD";

const PHASES: [&str; 10] = [
    "host objects",
    "search",
    "read and validate",
    "map",
    "symbol tables",
    "symbol lookup",
    "relocation",
    "ifuncs and init",
    "link cache",
    "other",
];

/// The number before `unit` in `line`.
fn number_before(line: &str, unit: &str) -> f64 {
    let head = &line[..line
        .find(unit)
        .unwrap_or_else(|| panic!("no {unit} in {line}"))];
    let word = head.split_whitespace().last().unwrap();
    word.parse()
        .unwrap_or_else(|_| panic!("{word:?} in {line}"))
}

#[test]
fn a_load_is_split_into_phases_that_add_up() {
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: the system's libz; nothing of it is called.
        let lib = unsafe { minld::Library::open("libz.so.1") }.unwrap();
        drop(lib);
        return;
    }
    let out = rerun("a_load_is_split_into_phases_that_add_up")
        .env(CHILD, "1")
        .env("MINLD_DEBUG", "statistics")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.contains("libz.so.1: 1 new object(s)"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let total = number_before(lines[head], "µs in all");
    let faults = number_before(lines[head], "page faults:");
    assert!(total > 0.0, "{}", lines[head]);
    let (mut time_sum, mut fault_sum) = (0.0, 0.0);
    for (i, name) in PHASES.iter().enumerate() {
        let line = lines[head + 1 + i];
        assert!(line.contains(name), "phase {name} expected in {line:?}");
        let t = number_before(line, "µs");
        assert!(t >= 0.0, "{line}");
        time_sum += t;
        if !line.contains("counted with relocation") {
            fault_sum += number_before(line, "page faults");
        }
    }
    // Each phase is printed to 0.1 µs: the sum may differ by the rounding.
    assert!(
        (time_sum - total).abs() <= 0.05 * PHASES.len() as f64 + 0.05,
        "phases add up to {time_sum} µs, not {total}:\n{stderr}"
    );
    assert_eq!(fault_sum, faults, "{stderr}");
    // libz is relocated: that phase took time.
    assert!(number_before(lines[head + 7], "µs") > 0.0, "{stderr}");
}
