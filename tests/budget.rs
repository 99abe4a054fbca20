//! The parse budget's estimate is an upper bound of what analysis really allocates: every
//! allocation of this test binary is counted, and for statement shapes chosen to be expensive
//! per byte (and generated mixes of tokens), the peak heap while a text is analyzed stays
//! under `budget::estimate`. A separate binary, so that the counting allocator sees only this.

use blastwall::analyze::{self, budget};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The peak heap (bytes above what was in use before) while `sql` is analyzed.
fn peak_of(sql: &str) -> usize {
    let before = NOW.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    std::hint::black_box(analyze::analyze(sql, Default::default()));
    PEAK.load(Ordering::Relaxed).saturating_sub(before)
}

fn check(sql: &str) {
    let peak = peak_of(sql);
    let estimate = budget::estimate(sql, true);
    assert!(peak <= estimate, "{} bytes: analysis took {peak}, estimated {estimate}: {:.200}", sql.len(), sql);
}

/// The C parser's allocations (PostgreSQL memory contexts, protobuf-c) are not seen by a Rust
/// allocator; they are smaller than the decoded tree (a node there is tens of bytes, a prost
/// node about 600), so the margin below covers them: the estimate must hold with room for the
/// C side (measured by RSS: `blastwall check` on these shapes).
#[test]
fn the_estimate_bounds_what_expensive_shapes_and_generated_statements_allocate() {
    let n = 5_000;
    let list = |item: &str, sep: &str| vec![item; n].join(sep);
    let shapes = [
        format!("SELECT {} FROM t", list("a", ",")),
        format!("SELECT {} FROM t", list("a.b.c", ",")),
        format!("DELETE FROM t WHERE id = 1 AND {}", list("plan = 'x'", " AND ")),
        format!("DELETE FROM t WHERE {}", list("a", " AND ")),
        format!("DELETE FROM t WHERE id IN ({})", list("1", ",")),
        format!("DELETE FROM t WHERE {}", list("a IN (1)", " OR ")),
        format!("INSERT INTO t (a, b) VALUES {}", list("(1,'x')", ",")),
        format!("SELECT ARRAY[{}]", list("1", ",")),
        format!("SELECT {}", list("$1", ",")),
        format!("SELECT CASE {} END", list("WHEN a THEN 1", " ")),
        format!("UPDATE t SET a = f({}) WHERE id = 1", list("a::int", ",")),
        format!("SELECT {} FROM t", list("f(a)", ",")),
        format!("SELECT {} FROM t", list("t.*", ",")),
        format!("SELECT 1 FROM {}", list("t", ",")),
        format!("SELECT {}", list("NULL", ",")),
        format!("SELECT {}", list("-1", ",")),
        format!("SELECT {}", list("a[1]", ",")),
        format!("SELECT {}", list("ROW(a)", ",")),
        format!("SELECT {}", list("a IS NULL", ",")),
        format!("SELECT {}", list("(SELECT 1)", ",")),
        format!("WITH {} SELECT 1", (0..n).map(|i| format!("c{i} AS (SELECT 1)")).collect::<Vec<_>>().join(",")),
    ];
    for s in &shapes {
        check(s);
    }
    generated_statements();
}

/// Generated target lists and predicates from expensive pieces: the estimate holds. (In the
/// same test as the shapes: tests running beside each other would count each other's heap.)
fn generated_statements() {
    let item = prop::sample::select(vec![
        "a",
        "a.b",
        "1",
        "'x'",
        "$1",
        "f(a)",
        "a::int",
        "NULL",
        "a = 1",
        "a IN (1, 2)",
        "-a",
        "a[1]",
        "ROW(a, b)",
        "(a)",
        "a IS NULL",
        "NOT a",
        "a BETWEEN 1 AND 2",
        "ARRAY[a]",
        "t.*",
        "E'\\\\x'",
    ]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    runner
        .run(&(prop::collection::vec(item, 1..2000), any::<bool>()), |(items, delete)| {
            let sql = if delete {
                let each: Vec<String> = items.iter().map(|i| format!("({i}) IS NOT NULL")).collect();
                format!("DELETE FROM t WHERE {}", each.join(" AND "))
            } else {
                format!("SELECT {} FROM t", items.join(", "))
            };
            check(&sql);
            Ok(())
        })
        .unwrap();
}
