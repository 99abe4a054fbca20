//! Structure-aware fuzzing on the stable toolchain: proptest generators that build
//! valid-looking input (frames with plausible lengths split at random read points, startup
//! packets of every kind, message bodies, directives, psql scripts, statements), and check
//! every decoder against a plain reference decoding written here, not against itself.
//!
//! Modules:
//! - `frames`:  the framer — frontend and backend streams, inspected and pass-through
//!   messages interleaved, split anywhere, corrupted at the end; lossless, bounded, in order.
//! - `startup`: opening packets (protocol 3.0/3.2/other, SSL/GSSENC/cancel codes, parameter
//!   lists with duplicates) against a reference parser that keeps the last duplicate.
//! - `views`:   every message view of `wire::messages`, `rebind` included, against reference
//!   encodings of the same generated values.
//! - `text`:    the override directive, the psql script chunker and the analyzer.
//!
//! Every generator has a test that samples it and asserts it reaches deep states (past the
//! header, a parsed StartupMessage of each version, a Bind with parameters, …), so the
//! properties cannot pass by never getting past the first byte.
//!
//! `cargo test --test fuzz` runs a bounded number of cases (seconds); `scripts/fuzz` runs more
//! (`BLASTWALL_FUZZ_CASES`). Failures are kept in `tests/fuzz/proptest-regressions/` and
//! re-run first; bugs found are also written out as explicit tests.

mod frames;
mod startup;
mod text;
mod views;

use proptest::test_runner::{Config, FileFailurePersistence};

/// Cases per property: `BLASTWALL_FUZZ_CASES`, else `default` (the bounded CI run).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("BLASTWALL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

/// Draws `n` values from a strategy (for the generators' own depth tests).
pub fn sample<S: proptest::strategy::Strategy>(s: &S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n).map(|_| s.new_tree(&mut runner).expect("a value").current()).collect()
}
