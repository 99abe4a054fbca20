//! The analyzer's oracle is the server, not the analyzer: generated DELETE/UPDATE/MERGE
//! statements (tests/fuzz/sqlgen.rs) run through blastwall on a real PostgreSQL, each inside a
//! transaction that is rolled back, and what the server actually changed is compared with what
//! blastwall's verdict allowed:
//!
//! - `fz_r` (`id` protected, predicates on `id` and constants only): an allowed statement is a
//!   point write, so it changes at most as many rows as its `id` atoms name values — a WHERE
//!   that restricts nothing, a range or a join that got through changes more;
//! - `fz_p` (`id` protected, predicates also on the unprotected `k`, `s`): the same bound for
//!   every allowed statement that reads `id`;
//! - `fz_l` (no protected column, `max_delete_rows = 3`, `max_update_rows = 3`): an allowed
//!   statement, counted live by the pre-check, changes at most 3 rows;
//! - `fz_c` (limits 10, its cascading children `fz_cc` limited to 6 deletes): an allowed
//!   statement changes at most 10 rows of it and deletes at most 6 children — four parents
//!   cascade to eight, within the parent's own limit, so only counting the cascade refuses it;
//! - every table: a statement whose WHERE names no column (or that has none) never changes
//!   every row.
//!
//! Each statement goes as a simple Query or through the extended protocol as client libraries
//! send it (prepared, then executed). Rows changed are read on the server after the statement: deleted rows are gone, updated rows
//! carry the transaction's id in `xmin`. `BLASTWALL_ORACLE_CASES` sets the number of cases
//! (300 by default; `scripts/fuzz` runs more).

#[path = "../fuzz/sqlgen.rs"]
#[allow(dead_code)] // what the analyzer target reads and the oracle does not
mod sqlgen;

use crate::harness::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::cell::Cell;
use std::path::Path;

const ROWS: i64 = 20;
const LIMIT: i64 = 3;

const POLICY: &str = r#"
[[table]]
name = "public.fz_r"
protected_columns = ["id"]

[[table]]
name = "public.fz_p"
protected_columns = ["id"]

[[table]]
name = "public.fz_l"
max_delete_rows = 3
max_update_rows = 3

[[table]]
name = "public.fz_c"
max_delete_rows = 10
max_update_rows = 10

[[table]]
name = "public.fz_cc"
max_delete_rows = 6
"#;

/// Rows of `fz_cc`: two per row of `fz_c`, deleted with it (ON DELETE CASCADE).
const CHILDREN: i64 = 2 * ROWS;
const CHILD_LIMIT: i64 = 6;

#[derive(Default)]
struct Seen {
    allowed: Cell<usize>,
    refused: Cell<usize>,
    /// Allowed, and the server changed rows.
    changed: Cell<usize>,
    /// Refused by the row limit after counting.
    over_limit: Cell<usize>,
}

impl Seen {
    /// Stops the proxy, fails on the runner's failure, and says what the cases reached:
    /// (allowed, refused, allowed and changed rows, refused by the row limit).
    fn finish(
        &self,
        what: &str,
        rt: &tokio::runtime::Runtime,
        proxy: Proxy,
        result: Result<(), proptest::test_runner::TestError<impl std::fmt::Debug>>,
    ) -> (usize, usize, usize, usize) {
        rt.block_on(proxy.stop());
        if let Err(e) = result {
            panic!("{e}");
        }
        let out = (self.allowed.get(), self.refused.get(), self.changed.get(), self.over_limit.get());
        eprintln!("{what}: {} allowed ({} changed rows), {} refused ({} by the row limit)", out.0, out.2, out.1, out.3);
        out
    }
}

/// A row written by this transaction (an updated row carries its id in `xmin`).
const WRITTEN: &str = "xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::xid";

/// One number from the server.
async fn number(c: &tokio_postgres::Client, sql: &str) -> Result<i64, String> {
    let rows = c.simple_query(sql).await.map_err(|e| e.to_string())?;
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<i64>().ok()),
            _ => None,
        })
        .ok_or_else(|| format!("no number from {sql}"))
}

/// Runs one statement in a transaction that is rolled back: `Ok(Some(what each of `measures`
/// reads after it))` when blastwall let it through, `Ok(None)` when blastwall refused it; a
/// server error changes nothing (all zero). `extended`: sent as a client library prepares and
/// executes it (Parse, Describe, Sync, then Bind, Execute, Sync), else as a simple Query.
async fn run(
    c: &tokio_postgres::Client,
    sql: &str,
    extended: bool,
    measures: &[String],
    seen: &Seen,
) -> Result<Option<Vec<i64>>, String> {
    c.batch_execute("BEGIN").await.map_err(|e| e.to_string())?;
    let result = if extended { c.execute(sql, &[]).await.map(|_| ()) } else { c.simple_query(sql).await.map(|_| ()) };
    let out = match result {
        Err(e) => {
            let db = e.as_db_error().ok_or_else(|| format!("not a server error: {e}"))?;
            if db.message().starts_with("blastwall: refused") {
                if db.detail().is_some_and(|d| d.starts_with("rule row-limit")) {
                    seen.over_limit.set(seen.over_limit.get() + 1);
                }
                None
            } else {
                // The server's own error (a MERGE touching a row twice, …): nothing changed.
                Some(vec![0; measures.len()])
            }
        }
        Ok(()) => {
            let mut read = Vec::with_capacity(measures.len());
            for m in measures {
                read.push(number(c, m).await?);
            }
            Some(read)
        }
    };
    c.batch_execute("ROLLBACK").await.map_err(|e| e.to_string())?;
    match out {
        None => seen.refused.set(seen.refused.get() + 1),
        Some(ref read) => {
            seen.allowed.set(seen.allowed.get() + 1);
            if read.iter().any(|&n| n > 0) {
                seen.changed.set(seen.changed.get() + 1);
            }
        }
    }
    Ok(out)
}

/// The bounded run in `cargo test`: `default` cases from a fixed seed, so the same statements
/// run each time and the depth assertions cannot flake. With `BLASTWALL_ORACLE_CASES` (set by
/// `scripts/fuzz`): that many cases from a fresh random seed. Failures are kept beside this
/// file and re-run first either way.
fn runner(default: u32) -> TestRunner {
    let cases = std::env::var("BLASTWALL_ORACLE_CASES").ok().and_then(|v| v.parse().ok());
    let config = Config {
        cases: cases.unwrap_or(default),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    };
    match cases {
        Some(_) => TestRunner::new(config),
        None => {
            let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
            TestRunner::new_with_rng(config, rng)
        }
    }
}

#[test]
fn what_the_server_changes_never_exceeds_the_verdict() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = fresh_db("oracle");
    let mut setup = String::from("SET ROLE app;");
    for t in ["fz_r", "fz_p", "fz_l", "fz_c"] {
        setup.push_str(&format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, k int, s text); \
             INSERT INTO {t} SELECT g, g % 3, 'row ' || g FROM generate_series(1, {ROWS}) g;"
        ));
    }
    setup.push_str(
        "CREATE TABLE fz_cc (id bigserial PRIMARY KEY, parent bigint REFERENCES fz_c (id) ON DELETE CASCADE); \
         INSERT INTO fz_cc (parent) SELECT id FROM fz_c, generate_series(1, 2);",
    );
    admin_sql(pg(), &db, &setup);
    let policy = blastwall::policy::file::compile(&[
        (Path::new("policies/default.toml"), blastwall::policy::file::DEFAULT_POLICY),
        (Path::new("oracle.toml"), POLICY),
    ])
    .unwrap();
    let (proxy, client) = rt.block_on(async {
        let p = proxy_with(base_config(), policy).await;
        let c = connect(p.port(), "app", APP_PW, &db).await;
        // A generated statement that runs long ends as a server error (nothing changed).
        c.batch_execute("SET statement_timeout = '10s'").await.unwrap();
        (p, c)
    });
    let statement = prop_oneof![
        sqlgen::statement("fz_r", false).prop_map(|g| ("fz_r", g)),
        sqlgen::statement("fz_p", true).prop_map(|g| ("fz_p", g)),
        sqlgen::statement("fz_l", true).prop_map(|g| ("fz_l", g)),
        sqlgen::statement("fz_c", true).prop_map(|g| ("fz_c", g)),
    ];
    let strategy = (statement, any::<bool>());
    let seen = Seen::default();
    let result = runner(300).run(&strategy, |((table, g), extended)| {
        let measures = [
            format!("SELECT {ROWS} - count(*) FILTER (WHERE NOT ({WRITTEN})) FROM {table}"),
            format!("SELECT {CHILDREN} - count(*) FROM fz_cc"),
        ];
        let read = rt.block_on(run(&client, &g.sql, extended, &measures, &seen)).map_err(TestCaseError::fail)?;
        let Some(&[changed, children]) = read.as_deref() else { return Ok(()) };
        prop_assert!(
            children <= CHILD_LIMIT,
            "blastwall allowed a statement that cascaded to {} rows of fz_cc (at most {}): {}",
            children,
            CHILD_LIMIT,
            g.sql
        );
        let mut bound = match table {
            "fz_l" => LIMIT,
            "fz_c" => 10,
            "fz_r" => i64::try_from(g.id_literals).unwrap(),
            _ if g.mentions_id => i64::try_from(g.id_literals).unwrap(),
            _ => ROWS,
        };
        if !g.mentions_id && !g.mentions_other {
            // No WHERE, or one of constants only: it restricts nothing, so require_where must
            // have refused it; if it ran, it must not have changed every row.
            bound = bound.min(ROWS - 1);
        }
        prop_assert!(
            changed <= bound,
            "blastwall allowed a statement that changed {} rows of {} (at most {} allowed): {}",
            changed,
            table,
            bound,
            g.sql
        );
        Ok(())
    });
    let (allowed, refused, changed, over) = seen.finish("oracle", &rt, proxy, result);
    // The generator reaches both sides of every verdict, so the bound was really tested.
    let n = allowed + refused;
    assert!(allowed * 5 > n && refused * 5 > n, "allowed {allowed}, refused {refused}");
    assert!(changed * 10 > n, "only {changed} allowed statements changed rows");
    assert!(over > 0, "no statement was refused by the row limit after counting");
}

/// Found by the oracle: `= ANY (array)` on a protected column, where the array is computed (not
/// a parameter, not a literal whose length the text shows), was judged a point list of unknown
/// length and allowed, so a list of any length — past `max_in_list` — swept the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_arrays_are_not_point_lists() {
    let db = fresh_db("oracle_arrays");
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE TABLE fz_r (id bigint PRIMARY KEY, k int, s text); \
         INSERT INTO fz_r SELECT g, g % 3, 'row ' || g FROM generate_series(1, 20) g;",
    );
    let policy = blastwall::policy::file::compile(&[(Path::new("oracle.toml"), POLICY)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut allowed = Vec::new();
    for sql in [
        format!("DELETE FROM fz_r WHERE id = ANY (string_to_array('{}', ',')::bigint[])", ids.join(",")),
        "DELETE FROM fz_r WHERE id = ANY (ARRAY[1] || ARRAY[2, 3])".to_string(),
        "DELETE FROM fz_r WHERE id = ANY (array_fill(1::bigint, ARRAY[500]))".to_string(),
    ] {
        c.batch_execute("BEGIN").await.unwrap();
        let r = c.simple_query(&sql).await;
        c.batch_execute("ROLLBACK").await.unwrap();
        let err = r.err().map(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default());
        if !err.as_deref().is_some_and(|m| m.starts_with("blastwall: refused")) {
            allowed.push(sql);
        }
    }
    p.stop().await;
    assert!(allowed.is_empty(), "allowed:\n{}", allowed.join("\n"));
}

/// The incident's own schema and policy (policies/incident.toml: `users.id` protected, row
/// limits on users and on each table its deletes cascade to): what the server changed never
/// exceeds a limit, a point write never changes more rows than it names, and a WHERE of
/// constants never changes every user.
#[test]
fn the_incident_schema_never_changes_more_than_its_policy_allows() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = incident_db();
    let (proxy, client) = rt.block_on(async {
        let p = proxy().await;
        let c = connect(p.port(), "app", APP_PW, &db).await;
        // A generated statement that runs long ends as a server error (nothing changed).
        c.batch_execute("SET statement_timeout = '10s'").await.unwrap();
        (p, c)
    });
    let ids: Vec<i64> = (91_111_101..=91_111_120).map(|i: i64| -i).chain(1_000_001..=1_000_040).collect();
    let schema = sqlgen::Schema {
        table: "users",
        ids: Box::leak(ids.into_boxed_slice()),
        others: &[
            "auth_source = 'test'",
            "auth_source = 'oauth'",
            "auth_source <> 'telegram'",
            "plan = 'premium'",
            "plan IS NOT NULL",
            "email LIKE '%@example.com'",
        ],
        set: "plan = 'changed'",
    };
    // (what is read, its limit): users deleted, users updated, then cascaded deletes.
    let measures: [(String, i64); 5] = [
        ("SELECT 60 - count(*) FROM users".into(), 10),
        (format!("SELECT count(*) FILTER (WHERE {WRITTEN}) FROM users"), 50),
        ("SELECT 60 - count(*) FROM subscriptions".into(), 10),
        ("SELECT 120 - count(*) FROM chat_sessions".into(), 20),
        ("SELECT 360 - count(*) FROM web_messages".into(), 60),
    ];
    let queries: Vec<String> = measures.iter().map(|(q, _)| q.clone()).collect();
    let seen = Seen::default();
    let result = runner(200).run(&(sqlgen::statement_on(schema), any::<bool>()), |(g, extended)| {
        let read = rt.block_on(run(&client, &g.sql, extended, &queries, &seen)).map_err(TestCaseError::fail)?;
        let Some(read) = read else { return Ok(()) };
        for ((what, limit), n) in measures.iter().zip(&read) {
            prop_assert!(*n <= *limit, "{} read {} (limit {}) after: {}", what, n, limit, g.sql);
        }
        let users = read[0] + read[1];
        if g.mentions_id {
            prop_assert!(users <= i64::try_from(g.id_literals).unwrap(), "{} users changed: {}", users, g.sql);
        }
        if !g.mentions_id && !g.mentions_other {
            prop_assert!(users < 60, "every user changed: {}", g.sql);
        }
        Ok(())
    });
    let (allowed, refused, changed, over) = seen.finish("incident oracle", &rt, proxy, result);
    assert!(changed * 10 > allowed + refused && refused > 0 && over > 0, "{allowed} {changed} {refused} {over}");
}
