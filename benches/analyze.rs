//! Criterion bench of the guard on a realistic OLTP mix: mostly SELECTs and point writes that
//! are allowed, some writes the policy inspects, a few refusals. Reported per statement; the
//! statements-per-second figure is printed at the end of the run.

use blastwall::guard::{Guard, SessionInfo};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

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

fn expanded() -> Vec<&'static str> {
    MIX.iter().flat_map(|(s, n)| std::iter::repeat_n(*s, *n)).collect()
}

fn bench(c: &mut Criterion) {
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

criterion_group!(benches, bench);
criterion_main!(benches);
