//! Criterion bench of the guard on a realistic OLTP mix: mostly SELECTs and point writes that
//! are allowed, some writes the policy inspects, a few refusals. Reported per statement; the
//! statements-per-second figure is printed at the end of the run. `cold_literal_writes`: an
//! OLTP write mix whose every text is new (literal values): parsed whole, by shape, judged by
//! the guard offline (`blastwall check`'s path), and judged as the live proxy judges it
//! (`judge_live`: a session on a database, names resolved by the catalog's answers).
//! `tpcb_simple_live`: pgbench's tpcb-like transaction with literal values (`-M simple`) under
//! the pgbench bench's policy, as the live proxy judges it. Times are the CPU time of the
//! measuring thread (one core's work).

use blastwall::catalog::Question;
use blastwall::guard::{Guard, SessionInfo, Verdict};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, Criterion, Throughput};

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

/// pgbench's tpcb-like transaction with literal values, each statement its own Query message
/// (what `pgbench -M simple -b tpcb-like` sends).
fn tpcb_simple(transactions: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(transactions * 7);
    for i in 0..transactions {
        let (aid, tid, bid, delta) =
            (1 + i * 7919 % 1_000_000, 1 + i % 100, 1 + i % 10, (i * 31 % 10_000) as i64 - 5000);
        out.extend([
            "BEGIN;".to_string(),
            format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"),
            format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
            format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};"),
            format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid};"),
            format!(
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP);"
            ),
            "END;".to_string(),
        ]);
    }
    out
}

/// A session of the live proxy: on a database, so that every write's name is resolved as the
/// server resolves it. The catalog's questions get the answers a server gives for plain tables
/// (no views, rules, triggers or inheritance children), as the proxy asks them: once, then
/// again when the answers expire.
struct Live<'g> {
    guard: &'g Guard,
    info: SessionInfo,
}

impl<'g> Live<'g> {
    fn new(guard: &'g Guard) -> Self {
        let mut info = SessionInfo::new("app", "bench");
        info.database = "bench".into();
        Live { guard, info }
    }

    /// What the session does with a Query's text: judged, and judged again once the catalog
    /// answered.
    fn judge(&mut self, sql: &[u8]) -> Verdict {
        for _ in 0..4 {
            match self.guard.judge_sql(sql, &mut self.info) {
                Verdict::Resolve(questions) => self.answer(&questions),
                v => {
                    // The transaction status the server's ReadyForQuery reports.
                    match sql.get(..3) {
                        Some(b"BEG") => self.info.in_transaction = true,
                        Some(b"END" | b"COM" | b"ROL") => self.info.in_transaction = false,
                        _ => {}
                    }
                    return v;
                }
            }
        }
        panic!("still asking the catalog about {}", String::from_utf8_lossy(sql))
    }

    fn answer(&mut self, questions: &[Question]) {
        let policy = self.guard.policy();
        let (catalog, db) = (&self.guard.catalog, "bench");
        let text = |v: &dyn ToString| Some(v.to_string());
        let oid = |name: &str| {
            let i = policy.tables.iter().position(|t| t.name == name);
            i.map_or(30_000 + name.len() as u32, |i| 20_000 + i as u32)
        };
        for q in questions {
            let rows: Vec<Vec<Option<String>>> = match q {
                Question::Indirect(name) => {
                    catalog.learn(db, name, false);
                    continue;
                }
                Question::Columns { schema, table } => {
                    let t =
                        policy.tables.iter().find(|t| &t.schema == schema && &t.name == table).expect("a policy table");
                    let rows: Vec<_> =
                        t.protected_columns.iter().enumerate().map(|(i, c)| vec![text(c), text(&(i + 1))]).collect();
                    catalog.learn_columns(db, schema, table, &t.protected_columns, &rows);
                    continue;
                }
                Question::SequenceOwner(seq) => {
                    catalog.learn_owners(db, seq, &[]);
                    continue;
                }
                // pgbench sets no sequence by OID.
                Question::RelationOfOid(_) => {
                    catalog.learn_lookup(db, q, Some(&[]));
                    continue;
                }
                // No registry of other sessions in the bench.
                Question::Prepared(_) => continue,
                Question::Minted { schema, table } => {
                    catalog.learn_minted(db, schema, table, &[]);
                    continue;
                }
                // pgbench's database has no user functions, so nothing calls one unseen.
                Question::HiddenCallers => {
                    catalog.learn_hidden_callers(db, Some(&[]), &mut blastwall::catalog::OwnTemp::None);
                    continue;
                }
                // … and no temporary objects.
                Question::Taint => {
                    self.info.taint.learn(Some(&[]), false);
                    continue;
                }
                Question::Identities => policy
                    .tables
                    .iter()
                    .enumerate()
                    .map(|(i, t)| vec![text(&"t"), text(&i), text(&oid(&t.name)), text(&t.name)])
                    .collect(),
                Question::Relations(keys) => keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let written = k.rsplit('\u{2}').next().unwrap_or(k);
                        let name = written.rsplit("\".\"").next().unwrap_or(written).trim_matches('"');
                        vec![text(&(i + 1)), text(&oid(name)), None, None, text(&"public"), text(&name)]
                    })
                    .collect(),
                Question::Constraint { .. } => Vec::new(),
            };
            blastwall::names::learn(q, Some(&rows), &mut self.info.names, catalog, db, &policy);
        }
    }
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
    // The same texts as the live proxy judges them (a session on a database).
    g.bench_function("judge_live_1000_statements", |b| {
        let mut live = Live::new(&guard);
        b.iter(|| {
            for _ in 0..1000 {
                next = (next + 1) % writes.len();
                black_box(live.judge(black_box(writes[next].as_bytes())));
            }
        })
    });
    g.finish();
    // pgbench's tpcb-like `-M simple` under the pgbench bench's policy, on the live path.
    let pgbench = pgbench_policy();
    let tpcb_guard = Guard::new(pgbench, None);
    let tpcb = tpcb_simple(30_000);
    let mut g = c.benchmark_group("tpcb_simple_live");
    g.throughput(Throughput::Elements(100));
    let mut next = 0usize;
    g.bench_function("judge_100_transactions", |b| {
        let mut live = Live::new(&tpcb_guard);
        b.iter(|| {
            for _ in 0..700 {
                next = (next + 1) % tpcb.len();
                black_box(live.judge(black_box(tpcb[next].as_bytes())));
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

/// The pgbench bench's policy (`benches/pgbench/policy.toml`).
fn pgbench_policy() -> blastwall::policy::Policy {
    blastwall::policy::file::compile(&[(
        std::path::Path::new("benches/pgbench/policy.toml"),
        include_str!("pgbench/policy.toml"),
    )])
    .expect("the pgbench policy")
}

/// The tpcb-like `-M simple` transactions judged on the live path, for callgrind: `n`
/// transactions after a warm-up of 100 (the catalog's questions asked and answered), the
/// measured ones in [`profile_tpcb`] alone.
fn profile(n: usize) {
    let pgbench = pgbench_policy();
    let guard = Guard::new(pgbench, None);
    let tpcb = tpcb_simple(n + 100);
    let mut live = Live::new(&guard);
    let (warm, measured) = tpcb.split_at(700);
    for sql in warm {
        black_box(live.judge(sql.as_bytes()));
    }
    profile_tpcb(&mut live, measured);
}

/// What callgrind counts (`--toggle-collect='*profile_tpcb*'`).
#[inline(never)]
fn profile_tpcb(live: &mut Live<'_>, texts: &[String]) {
    for sql in texts {
        black_box(live.judge(black_box(sql.as_bytes())));
    }
}

/// Run where the proxy's event loops run: on a thread with the parser's deep stack, which
/// parses in place. (Elsewhere every parse is handed to a parsing thread, whose CPU the
/// measuring thread's clock would not see.)
///
/// `BLASTWALL_PROFILE_TPCB=N`: no criterion run; [`profile`] instead, as in
///   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_tpcb*' \
///     target/release/deps/analyze-HASH
/// (instructions per transaction: the total over N).
fn main() {
    let profiled = std::env::var("BLASTWALL_PROFILE_TPCB").ok().and_then(|n| n.parse::<usize>().ok());
    std::thread::Builder::new()
        .stack_size(blastwall::analyze::deep::STACK)
        .spawn(move || {
            blastwall::analyze::deep::mark_deep_stack();
            if let Some(n) = profiled {
                return profile(n);
            }
            benches();
            Criterion::default().configure_from_args().final_summary();
        })
        .expect("the bench thread")
        .join()
        .expect("the bench ran");
}
