//! Helpers shared by the integration tests, one copy of each:
//!
//! - [`examples`]: the repository's examples, built for the tests to run;
//! - [`libs`]: the test libraries of `test-libs/` and opening them;
//! - [`process`]: what the test threads of one binary share (a lock, the
//!   descriptors, the mappings) and a test run in a fresh process;
//! - [`sandbox`]: the sandbox tests' plugins, inner hosts and runners.
//!
//! A test file says `mod common;` and imports what it uses.

// Every test binary that declares `mod common;` compiles all of it but
// uses only some helpers (the sandbox tests none of `libs`, the loader
// tests none of `sandbox`); without this, each binary would warn about
// every helper it does not call. Nothing else here is allowed.
#![allow(dead_code)]

pub mod examples;
pub mod libs;
pub mod process;
pub mod sandbox;
