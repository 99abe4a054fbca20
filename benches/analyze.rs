//! Criterion bench of the guard on a realistic OLTP mix: mostly SELECTs and point writes that
//! are allowed, some writes the policy inspects, a few refusals. Reported per statement; the
//! statements-per-second figure is printed at the end of the run. `cold_literal_writes`: an
//! OLTP write mix whose every text is new (literal values): parsed whole, by shape, and
//! judged by the guard. Times are the CPU time of the measuring thread (one core's work).

use blastwall::guard::{Guard, SessionInfo};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// The CPU time of the measuring thread: what a statement costs one core, whatever else the
/// machine runs at the same time.
struct ThreadCpu(WallTime);

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

/// (statement, how many of every 100 statements look like it)
const MIX: &[(&str, usize)] = &[
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", 40),
    ("SELECT u.id, u.plan, s.plan FROM users u JOIN subscriptions s ON s.user_id = u.id WHERE u.id = $1", 20),
    ("BEGIN", 5),
    ("COMMIT", 5),
    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", 10),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", 8),
    ("UPDATE users SET plan = $2 WHERE id = $1", 5),
    ("DELETE FROM chat_sessions WHERE id = $1", 4),
    ("INSERT INTO users (id, auth_source) VALUES ($1, 'oauth') ON CONFLICT (id) DO NOTHING", 2),
    ("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100", 1),
];

/// An OLTP write mix with literal values (pgbench's tpcb-like `-M simple`, an application's
/// point writes and upserts): every text is new, so nothing is served from a cache.
fn literal_writes(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (aid, tid, bid, delta) =
            (1 + i * 7919 % 1_000_000, 1 + i % 100, 1 + i % 10, (i * 31 % 10_000) as i64 - 5000);
        out.push(match i % 8 {
            0 => format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"),
            1 => format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
            2 => format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};"),
            3 => format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid};"),
            4 => format!(
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP);"
            ),
            5 => format!("UPDATE users SET plan = 'pro', updated_at = now() WHERE id = {aid}"),
            6 => format!("DELETE FROM chat_sessions WHERE id = {aid} AND user_id = {tid}"),
            _ => format!(
                "INSERT INTO users (id, auth_source, email) VALUES ({aid}, 'oauth', 'u{aid}@example.com') ON CONFLICT (id) DO NOTHING"
            ),
        });
    }
    out
}

fn expanded() -> Vec<&'static str> {
    MIX.iter().flat_map(|(s, n)| std::iter::repeat_n(*s, *n)).collect()
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let guard = Guard::new(blastwall::demo::incident_policy().expect("policy"), None);
    let mix = expanded();
    let mut g = c.benchmark_group("guard");
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function("oltp_mix_100_statements", |b| {
        let mut info = SessionInfo::new("app", "bench");
        b.iter(|| {
            for s in &mix {
                black_box(guard.judge_sql(black_box(s.as_bytes()), &mut info));
            }
        })
    });
    // Every statement parsed afresh (what a stream of never-repeated texts costs).
    g.bench_function("oltp_mix_100_statements_uncached", |b| {
        b.iter(|| {
            for s in &mix {
                black_box(blastwall::analyze::analyze(black_box(s), Default::default()));
            }
        })
    });
    g.finish();
    // Cold analysis: texts never seen before (literal values), 1,000 per iteration.
    let writes = literal_writes(200_000);
    let mut g = c.benchmark_group("cold_literal_writes");
    g.throughput(Throughput::Elements(1000));
    let mut next = 0usize;
    g.bench_function("analyze_1000_statements", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                next = (next + 1) % writes.len();
                black_box(blastwall::analyze::analyze(black_box(&writes[next]), Default::default()));
            }
        })
    });
    // The same texts by shape: each text is new, its shape was seen before.
    let shapes = blastwall::analyze::Shapes::default();
    g.bench_function("analyze_by_shape_1000_statements", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                next = (next + 1) % writes.len();
                black_box(shapes.analyze(black_box(&writes[next]), Default::default()));
            }
        })
    });
    // The same texts through the guard (analysis by shape, the text cache, policy decision).
    g.bench_function("judge_1000_statements", |b| {
        let mut info = SessionInfo::new("app", "bench");
        b.iter(|| {
            for _ in 0..1000 {
                next = (next + 1) % writes.len();
                black_box(guard.judge_sql(black_box(writes[next].as_bytes()), &mut info));
            }
        })
    });
    g.finish();
    let mut g = c.benchmark_group("guard_single");
    for (name, sql) in
        [("select_point", MIX[0].0), ("update_point_protected", MIX[6].0), ("delete_range_refused", MIX[9].0)]
    {
        g.bench_function(name, |b| {
            let mut info = SessionInfo::new("app", "bench");
            b.iter(|| black_box(guard.judge_sql(black_box(sql.as_bytes()), &mut info)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu(WallTime));
    targets = bench
}
criterion_main!(benches);
