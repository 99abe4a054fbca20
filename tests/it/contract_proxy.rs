//! The contract rules (anomaly, budget, explicit-id) through blastwall: writes go through
//! in-process proxies (two at once, and a new one after a stop, each with its own guard and
//! catalog, as two blastwall processes have), and the data and blastwall's state are checked
//! directly on the server.

use crate::harness::{
    base_config, bind_execute, connect, direct, fresh_db, msg, parse, pg, proxy_with, psql, replies, startup, APP_PW,
};
use blastwall::policy::{file::compile, Policy};
use std::path::Path;
use tokio::io::AsyncWriteExt;

fn policy(text: &str) -> Policy {
    compile(&[(Path::new("contract.toml"), text)]).unwrap()
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

fn message(e: tokio_postgres::Error) -> String {
    e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())
}

/// A fresh database with `accounts` (id, x) holding ids 1..=rows, and the app's direct client.
async fn accounts_db(prefix: &str, rows: i32) -> (String, tokio_postgres::Client) {
    let db = fresh_db(prefix);
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(&format!(
        "CREATE TABLE accounts (id int PRIMARY KEY, x int); \
         INSERT INTO accounts SELECT g, g FROM generate_series(1, {rows}) g"
    ))
    .await
    .unwrap();
    (db, d)
}

const ANOMALY: &str = r#"
[defaults]
anomaly = true
anomaly_min_runs = 3

[[role]]
name = "migrator"
may_override = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drifted_cleanup_is_refused_after_a_restart_and_kept_only_when_overridden() {
    let db = fresh_db("anomaly");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE users (id serial PRIMARY KEY, night int NOT NULL); \
         INSERT INTO users (night) SELECT n FROM generate_series(1, 5) n, generate_series(1, 3); \
         INSERT INTO users (night) SELECT 6 FROM generate_series(1, 200); \
         GRANT ALL ON users TO migrator",
    )
    .await
    .unwrap();
    // The nightly cleanup, three nights, through a first blastwall.
    let first = proxy_with(base_config(), policy(ANOMALY)).await;
    let via = connect(first.port(), "app", APP_PW, &db).await;
    for night in 1..=3 {
        let n = via.execute("DELETE FROM users WHERE night = $1", &[&night]).await.unwrap();
        assert_eq!(n, 3);
    }
    drop(via);
    first.stop().await;
    assert_eq!(count(&d, "SELECT count(*) FROM blastwall.runs").await, 3, "the runs are kept in the database");

    // Restarted: the history is the database's, not the process's.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config();
    let audit_path = crate::harness::audit_to(&mut cfg, &dir);
    let second = proxy_with(cfg, policy(ANOMALY)).await;
    let via = connect(second.port(), "app", APP_PW, &db).await;
    let e = message(via.execute("DELETE FROM users WHERE night = $1", &[&6]).await.unwrap_err());
    assert!(e.contains("deleted 200 rows of public.users; this statement usually deletes 3 (median of 3 runs)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE night = 6").await, 200, "rolled back");
    assert_eq!(count(&d, "SELECT count(*) FROM blastwall.runs").await, 3, "a refused run is not history");
    // The same text as a simple Query is the same statement (its fingerprint).
    let e = message(via.simple_query("DELETE FROM users WHERE night = 6").await.unwrap_err());
    assert!(e.contains("usually deletes 3"), "{e}");
    // The usual run still passes.
    assert_eq!(via.execute("DELETE FROM users WHERE night = $1", &[&4]).await.unwrap(), 3);

    // Dry run: reported, nothing changed, nothing recorded.
    let (ok, _, err) = psql(
        second.port(),
        "app",
        APP_PW,
        &db,
        &["-c", "SET blastwall.mode = 'dry-run'", "-c", "DELETE FROM users WHERE night = 6"],
        None,
    );
    assert!(ok, "{err}");
    assert!(err.contains("dry-run of DELETE: would delete 200 rows") && err.contains("usually deletes 3"), "{err}");
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE night = 6").await, 200);
    assert_eq!(count(&d, "SELECT count(*) FROM blastwall.runs").await, 4);

    // The audit trail and the metrics name the rule.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused: Vec<_> = events.iter().filter(|e| e["rule"] == "anomaly").collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert_eq!((refused[0]["decision"].as_str(), refused[0]["mode"].as_str()), (Some("refused"), Some("enforce")));
    assert_eq!(refused[0]["counts"][0]["deleted"], 200);
    let metrics = String::from_utf8(second.shared.metrics.render()).unwrap();
    assert!(
        metrics.contains("blastwall_decisions_total{mode=\"enforce\",outcome=\"refused\",rule=\"anomaly\"} 2"),
        "{metrics}"
    );

    // The override waives it, with its count; a role without may_override cannot.
    let over = "/* blastwall: allow rows<=200 reason=\"drift accepted\" */ DELETE FROM users WHERE night = 6";
    via.simple_query(over).await.unwrap_err();
    drop(via);
    second.stop().await;
    // A role that may use the state but not create schemas (no CREATE on the database), first
    // to write after a restart.
    d.batch_execute(
        "GRANT USAGE ON SCHEMA blastwall TO migrator; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA blastwall TO migrator",
    )
    .await
    .unwrap();
    let third = proxy_with(base_config(), policy(ANOMALY)).await;
    let mig = connect(third.port(), "migrator", APP_PW, &db).await;
    let small = "/* blastwall: allow rows<=100 reason=\"too few\" */ DELETE FROM users WHERE night = 6";
    mig.simple_query(small).await.unwrap_err();
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE night = 6").await, 200);
    mig.simple_query(over).await.unwrap();
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE night = 6").await, 0);
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_warn_mode_the_drifted_cleanup_is_kept_with_a_warning() {
    let db = fresh_db("anomaly_warn");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE users (id serial PRIMARY KEY, night int NOT NULL); \
         INSERT INTO users (night) SELECT n FROM generate_series(1, 3) n, generate_series(1, 2); \
         INSERT INTO users (night) SELECT 9 FROM generate_series(1, 50)",
    )
    .await
    .unwrap();
    let mut p = policy(ANOMALY);
    p.mode = blastwall::policy::Mode::Warn;
    let proxy = proxy_with(base_config(), p).await;
    let script: String = (1..=3).chain([9]).map(|n| format!("DELETE FROM users WHERE night = {n};\n")).collect();
    let (ok, out, err) = psql(proxy.port(), "app", APP_PW, &db, &["-v", "ON_ERROR_STOP=1"], Some(&script));
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("WARNING") && err.contains("deleted 50 rows of public.users; this statement usually deletes 2"),
        "{err}"
    );
    assert_eq!(count(&d, "SELECT count(*) FROM users").await, 0, "kept");
    proxy.stop().await;
}

const BUDGET: &str = r#"
[[table]]
name = "public.accounts"
protected_columns = ["id"]
budget_delete_rows = 25
budget_window = "1h"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_deletes_stop_at_the_budget_across_two_blastwalls_and_a_restart() {
    let (db, d) = accounts_db("budget", 100).await;
    // Two blastwalls (each its own guard and catalog) in front of one database, at once.
    let a = proxy_with(base_config(), policy(BUDGET)).await;
    let b = proxy_with(base_config(), policy(BUDGET)).await;
    // Both connected before either deletes, so that their loops overlap; and each deletes its
    // first five before either goes on, so that both spend whatever the scheduler does next
    // (the race for the remaining fifteen is left to it).
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let started = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let loop_on = |port: u16, ids: std::ops::RangeInclusive<i32>, extended: bool| {
        let (db, ready, started) = (db.clone(), ready.clone(), started.clone());
        tokio::spawn(async move {
            let c = connect(port, "app", APP_PW, &db).await;
            ready.wait().await;
            let mut kept = 0;
            for (n, id) in ids.enumerate() {
                if n == 5 {
                    started.wait().await;
                }
                let r = if extended {
                    c.execute("DELETE FROM accounts WHERE id = $1", &[&id]).await.map(|_| ())
                } else {
                    c.simple_query(&format!("DELETE FROM accounts WHERE id = {id}")).await.map(|_| ())
                };
                match r {
                    Ok(()) => kept += 1,
                    Err(e) => assert!(message(e).contains("over its budget of 25 rows deleted per 1h")),
                }
            }
            kept
        })
    };
    let (ka, kb) = tokio::join!(loop_on(a.port(), 1..=40, true), loop_on(b.port(), 41..=80, false));
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(ka + kb, 25, "a: {ka}, b: {kb}");
    assert!(ka >= 5 && kb >= 5, "both spent: a {ka}, b {kb}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75, "exactly the budget was deleted");
    a.stop().await;
    // A new blastwall finds the budget spent.
    let c = proxy_with(base_config(), policy(BUDGET)).await;
    let via = connect(c.port(), "app", APP_PW, &db).await;
    let e = message(via.simple_query("DELETE FROM accounts WHERE id = 95").await.unwrap_err());
    assert!(e.contains("25 already deleted in the last 1h (0 left)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    // Inside the client's own transaction (blastwall's savepoint): refused the same way.
    via.batch_execute("BEGIN").await.unwrap();
    let e = message(via.simple_query("DELETE FROM accounts WHERE id = 95").await.unwrap_err());
    assert!(e.contains("over its budget"), "{e}");
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    // Updates have no budget here.
    via.simple_query("UPDATE accounts SET x = 0 WHERE id = 95").await.unwrap();
    // Pipelined deletes (two Executes before a Sync) cannot go around it.
    d.batch_execute(
        "GRANT ALL ON accounts TO trust_user; GRANT USAGE ON SCHEMA blastwall TO trust_user; \
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA blastwall TO trust_user",
    )
    .await
    .unwrap();
    let mut raw = startup(c.port(), "trust_user", &db).await;
    let r = pipelined(&mut raw, &[96, 97]).await;
    assert!(r.errors.contains("over its budget of 25 rows deleted per 1h"), "{r:?}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    b.stop().await;
    c.stop().await;
}

/// Point deletes as one extended-protocol batch: Parse, Bind, Execute each, one Sync.
async fn pipelined(raw: &mut tokio::net::TcpStream, ids: &[i32]) -> crate::harness::Replies {
    let mut batch = Vec::new();
    for id in ids {
        batch.extend(parse("", &format!("DELETE FROM accounts WHERE id = {id}")));
        batch.extend(bind_execute(""));
    }
    batch.extend(msg(b'S', &[]));
    raw.write_all(&batch).await.unwrap();
    replies(raw).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_deletes_spend_the_budget_and_a_refused_batch_spends_nothing() {
    let db = fresh_db("budget_batch");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, x int);          INSERT INTO accounts SELECT g, g FROM generate_series(1, 20) g; GRANT ALL ON accounts TO trust_user",
    )
    .await
    .unwrap();
    let p = policy(&BUDGET.replace("budget_delete_rows = 25", "budget_delete_rows = 3"));
    let proxy = proxy_with(base_config(), p).await;
    // Set up the state first (trust_user may not create a schema).
    connect(proxy.port(), "app", APP_PW, &db).await.simple_query("DELETE FROM accounts WHERE id = 20").await.unwrap();
    d.batch_execute(
        "GRANT USAGE ON SCHEMA blastwall TO trust_user; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA blastwall TO trust_user",
    )
    .await
    .unwrap();
    let mut raw = startup(proxy.port(), "trust_user", &db).await;
    // Three with 2 left: the third is refused, and the batch (one implicit transaction) is
    // rolled back with what the first two spent.
    let r = pipelined(&mut raw, &[1, 2, 3]).await;
    assert!(r.errors.contains("3 already deleted in the last 1h (0 left)"), "{r:?}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 19);
    let r = pipelined(&mut raw, &[4, 5]).await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 17);
    let r = pipelined(&mut raw, &[6]).await;
    assert!(r.errors.contains("3 already deleted"), "{r:?}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 17);
    proxy.stop().await;
}

const EXPLICIT: &str = r#"
[[table]]
name = "public.serials"
protected_columns = ["id"]
forbid = ["explicit_id"]

[[table]]
name = "public.idents"
protected_columns = ["id"]
forbid = ["explicit_id"]

[[table]]
name = "public.defaults"
protected_columns = ["id"]
forbid = ["explicit_id"]

[[table]]
name = "public.plain"
protected_columns = ["id"]
forbid = ["explicit_id"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_ids_into_minted_columns_are_refused_minted_ones_pass() {
    let db = fresh_db("explicit");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE serials (id bigserial PRIMARY KEY, name text); \
         CREATE TABLE idents (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text); \
         CREATE SEQUENCE dseq; CREATE TABLE defaults (id bigint DEFAULT nextval('dseq') PRIMARY KEY, name text); \
         CREATE TABLE plain (id int PRIMARY KEY, name text)",
    )
    .await
    .unwrap();
    let proxy = proxy_with(base_config(), policy(EXPLICIT)).await;
    let via = connect(proxy.port(), "app", APP_PW, &db).await;
    for refused in [
        "INSERT INTO serials (id, name) VALUES (-91111101, 'test')",
        "INSERT INTO serials VALUES (5, 'x')",
        "INSERT INTO idents (id, name) OVERRIDING SYSTEM VALUE VALUES (7, 'x')",
        "INSERT INTO defaults (id, name) VALUES (8, 'x')",
        "INSERT INTO defaults (id, name) SELECT 9, 'x'",
    ] {
        let e = message(via.simple_query(refused).await.unwrap_err());
        assert!(e.contains("which a sequence mints"), "{refused}: {e}");
    }
    let e = message(via.execute("INSERT INTO serials (id, name) VALUES ($1, $2)", &[&10i64, &"x"]).await.unwrap_err());
    assert!(e.contains("which a sequence mints"), "extended protocol: {e}");
    for allowed in [
        "INSERT INTO serials (name) VALUES ('a')",
        "INSERT INTO serials (id, name) VALUES (DEFAULT, 'b')",
        "INSERT INTO idents (name) VALUES ('a')",
        "INSERT INTO defaults (name) VALUES ('a')",
        "INSERT INTO plain (id, name) VALUES (1, 'not minted')",
    ] {
        via.simple_query(allowed).await.unwrap_or_else(|e| panic!("{allowed}: {e}"));
    }
    let rows = |t: &str| format!("SELECT count(*) FROM {t}");
    assert_eq!(count(&d, &rows("serials")).await, 2);
    assert_eq!(count(&d, "SELECT count(*) FROM serials WHERE id IN (-91111101, 5, 10)").await, 0);
    assert_eq!(count(&d, &rows("idents")).await, 1);
    assert_eq!(count(&d, &rows("defaults")).await, 1);
    assert_eq!(count(&d, &rows("plain")).await, 1);
    proxy.stop().await;

    // Offline, `blastwall check` sees what the text shows: a protected column named.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("seed.sql");
    std::fs::write(
        &script,
        "INSERT INTO serials (name) VALUES ('a');\nINSERT INTO serials (id, name) VALUES (-91111101, 'test');\n",
    )
    .unwrap();
    let guard = blastwall::guard::Guard::new(policy(EXPLICIT), None);
    let options = blastwall::check::Options { user: "app".into(), ..Default::default() };
    let out = blastwall::check::run(&guard, &[script], &options).unwrap();
    assert!(out.refused);
    assert_eq!(out.reports.iter().map(|r| (r.rule, r.line)).collect::<Vec<_>>(), vec![("explicit-id", 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_the_drifted_nightly_job_refused() {
    let db = crate::harness::incident_db();
    let d = direct("app", APP_PW, &db).await;
    let proxy = proxy_with(base_config(), blastwall::demo::demo_policy().unwrap()).await;
    let via = connect(proxy.port(), "app", APP_PW, &db).await;
    for n in 1..=3 {
        via.simple_query(&format!("DELETE FROM users WHERE email LIKE 'user{n}@%'")).await.unwrap();
    }
    let e = message(via.simple_query("DELETE FROM users WHERE email LIKE 'user%'").await.unwrap_err());
    assert!(e.contains("deleted 7 rows of public.users; this statement usually deletes 1 (median of 3 runs)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE email LIKE 'user%'").await, 7);
    proxy.stop().await;
}

/// `n` point deletes of `ids` on `port`, each its own statement: how many were kept.
async fn point_deletes(port: u16, db: &str, ids: std::ops::RangeInclusive<i32>) -> usize {
    let c = connect(port, "app", APP_PW, db).await;
    let mut kept = 0;
    for id in ids {
        match c.execute("DELETE FROM accounts WHERE id = $1", &[&id]).await {
            Ok(_) => kept += 1,
            Err(e) => {
                let m = message(e);
                assert!(m.contains("over its budget of 25 rows deleted per 1h"), "id {id}: {m}")
            }
        }
    }
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_blastwall_processes_racing_for_a_budget_keep_exactly_the_budget_and_a_third_finds_it_spent() {
    let (db, d) = accounts_db("race", 200).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contract.toml");
    std::fs::write(&file, BUDGET).unwrap();
    let policy = file.display().to_string();
    // Two processes of the built binary, each with its own guard, catalog and connections.
    let args = ["--policy", policy.as_str()];
    let (a, b) = tokio::join!(
        crate::ops::Blastwall::start("threads = 1\n", &args),
        crate::ops::Blastwall::start("threads = 1\n", &args)
    );
    // The state made by one first use before the race (a schema made while another
    // session's write runs refuses that write: `precheck::named`, fifty-sixth pass H1).
    assert_eq!(point_deletes(a.port, &db, 200..=200).await, 1);
    // Four clients, two on each process, deleting disjoint rows at once.
    let (k1, k2, k3, k4) = tokio::join!(
        point_deletes(a.port, &db, 1..=30),
        point_deletes(b.port, &db, 31..=60),
        point_deletes(a.port, &db, 61..=90),
        point_deletes(b.port, &db, 91..=120)
    );
    assert_eq!(k1 + k2 + k3 + k4, 24, "{k1} {k2} {k3} {k4}");
    // On the server itself: exactly the budget was deleted, and spent.
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 175, "exactly 25 rows deleted");
    let spent: i64 =
        crate::harness::admin_sql(pg(), &db, "SELECT sum(rows) FROM blastwall.budget_spent").trim().parse().unwrap();
    assert_eq!(spent, 25);
    a.stop().await;
    b.stop().await;
    // Both processes gone, a third started: the budget is still spent.
    let c = crate::ops::Blastwall::start("threads = 1\n", &args).await;
    let via = connect(c.port, "app", APP_PW, &db).await;
    let e = message(via.simple_query("DELETE FROM accounts WHERE id = 150").await.unwrap_err());
    assert!(e.contains("25 already deleted in the last 1h (0 left)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 175);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guarded_app_cannot_rewrite_the_state_directly_or_through_blastwall() {
    // A state a DBA created (`init-state --grant app`): the app may only call its functions.
    let (db, d) = accounts_db("ownstate", 100).await;
    crate::harness::admin_sql(pg(), &db, &blastwall::contract::state::init_script("blastwall", &["app".into()]));
    let p = proxy_with(base_config(), policy(BUDGET)).await;
    assert_eq!(point_deletes(p.port(), &db, 1..=30).await, 25);
    // Directly: no privilege on the tables; the functions only add.
    for sql in [
        "UPDATE blastwall.budget_spent SET rows = 0",
        "DELETE FROM blastwall.budget_spent",
        "TRUNCATE blastwall.budget_spent",
        "DELETE FROM blastwall.budget_lock",
        "INSERT INTO blastwall.runs VALUES (1, 'f', 'delete', 1000)",
        "DELETE FROM blastwall.runs",
    ] {
        let e = message(d.batch_execute(sql).await.unwrap_err());
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    let oid: String = crate::harness::admin_sql(pg(), &db, "SELECT 'accounts'::regclass::oid").trim().to_string();
    // A window of a second, and a negative spend: nothing a longer window needs is pruned.
    d.batch_execute(&format!(
        "SELECT * FROM blastwall.take_budget(ARRAY[{oid}]::oid[], ARRAY['delete'], ARRAY[1]::int8[], ARRAY[1]::float8[]); \
         SELECT * FROM blastwall.take_budget(ARRAY[{oid}]::oid[], ARRAY['delete'], ARRAY[-100]::int8[], ARRAY[3600]::float8[])"
    ))
    .await
    .unwrap();
    // A made-up run of rows this transaction did not delete.
    let e = message(
        d.batch_execute(&format!(
            "SELECT * FROM blastwall.record_run(ARRAY[{oid}]::oid[], ARRAY['delete'], ARRAY[1000]::int8[], 'f', ARRAY[20]::int8[])"
        ))
        .await
        .unwrap_err(),
    );
    assert!(e.contains("a run of 1000 rows, but this transaction changed 0"), "{e}");
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = message(via.simple_query("DELETE FROM accounts WHERE id = 99").await.unwrap_err());
    assert!(e.contains("26 already deleted in the last 1h (0 left)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    p.stop().await;

    // A state the app created itself on first use (it owns it): the guard is what stands
    // between it and a reset through blastwall.
    let (db, d) = accounts_db("ownstate2", 100).await;
    let p = proxy_with(base_config(), policy(BUDGET)).await;
    assert_eq!(point_deletes(p.port(), &db, 1..=30).await, 25);
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        "UPDATE blastwall.budget_spent SET rows = 0 WHERE rows > 0",
        "DELETE FROM blastwall.budget_spent WHERE rows > 0",
        "TRUNCATE blastwall.budget_spent",
        "INSERT INTO blastwall.budget_spent SELECT relid, kind, bucket, -25 FROM blastwall.budget_spent",
        "DROP SCHEMA blastwall CASCADE",
        "ALTER TABLE blastwall.budget_spent RENAME TO old",
        // Renaming the schema would leave the spend behind and start an empty state (red team).
        "ALTER SCHEMA blastwall RENAME TO bw_old",
        "ALTER SCHEMA \"blastwall\" OWNER TO app",
        "DELETE FROM \"blastwall\".runs WHERE rows > 0",
        "SELECT * FROM blastwall.record_run(ARRAY[1]::oid[], ARRAY['delete'], ARRAY[0]::int8[], 'f', ARRAY[1]::int8[])",
    ] {
        let e = message(via.simple_query(sql).await.unwrap_err());
        assert!(e.contains("writes to schema blastwall"), "{sql}: {e}");
    }
    assert_eq!(count(&d, "SELECT sum(rows)::int8 FROM blastwall.budget_spent").await, 25, "the spend is intact");
    let e = message(via.simple_query("DELETE FROM accounts WHERE id = 99").await.unwrap_err());
    assert!(e.contains("25 already deleted in the last 1h (0 left)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_take_what_the_counters_measured_and_truncate_is_refused() {
    let (db, d) = accounts_db("budgetall", 100).await;
    // Deleting from `requests` deletes budgeted `accounts` rows by a trigger; `purge()`
    // deletes them in a function body.
    d.batch_execute(
        "CREATE TABLE requests (id int PRIMARY KEY); \
         INSERT INTO requests SELECT g FROM generate_series(1, 100) g; \
         CREATE FUNCTION gone() RETURNS trigger LANGUAGE plpgsql AS \
           $$BEGIN DELETE FROM accounts WHERE id = OLD.id; RETURN OLD; END$$; \
         CREATE TRIGGER gone AFTER DELETE ON requests FOR EACH ROW EXECUTE FUNCTION gone(); \
         CREATE TABLE gone_log (id int); \
         CREATE RULE gone AS ON INSERT TO gone_log DO ALSO DELETE FROM accounts WHERE id = NEW.id; \
         CREATE FUNCTION purge(lo int, hi int) RETURNS int LANGUAGE sql AS \
           $$DELETE FROM accounts WHERE id BETWEEN lo AND hi RETURNING 1$$",
    )
    .await
    .unwrap();
    let p = proxy_with(base_config(), policy(&format!("{BUDGET}\n[opaque]\nfunctions = \"verify\"\n"))).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // 20 rows of accounts through the trigger: spent, as the counters measured them.
    via.simple_query("DELETE FROM requests WHERE id IN (SELECT g FROM generate_series(1, 20) g)").await.unwrap();
    assert_eq!(count(&d, "SELECT sum(rows)::int8 FROM blastwall.budget_spent").await, 20);
    // 10 more through the trigger would go past 25: refused, nothing of it kept.
    let e = message(via.simple_query("DELETE FROM requests WHERE id BETWEEN 21 AND 30").await.unwrap_err());
    assert!(e.contains("would delete 10 rows of public.accounts, over its budget of 25"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM requests").await, 80);
    // A function body (opaque functions verified): its 5 rows are spent, 6 more are refused.
    via.simple_query("SELECT purge(31, 35)").await.unwrap();
    let e = message(via.simple_query("SELECT purge(36, 41)").await.unwrap_err());
    assert!(e.contains("25 already deleted in the last 1h (0 left)"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    // An INSERT whose rule deletes rows of `accounts` (whose text rules the rule's action
    // escapes): refused before it runs (`unjudged-write`), nothing of it kept.
    let e = message(via.simple_query("INSERT INTO gone_log VALUES (50)").await.unwrap_err());
    assert!(e.contains("a rule fired by INSERT on gone_log (its own"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM gone_log").await, 0);
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    // TRUNCATE counts no row: refused on the budgeted table, and by CASCADE where it may reach it.
    for sql in ["TRUNCATE accounts", "TRUNCATE requests CASCADE"] {
        let e = message(via.simple_query(sql).await.unwrap_err());
        assert!(e.contains("TRUNCATE removes rows no budget can count"), "{sql}: {e}");
    }
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    assert_eq!(count(&d, "SELECT count(*) FROM requests").await, 80);
    via.simple_query("TRUNCATE requests").await.unwrap();
    p.stop().await;
}

const EXPLICIT_USERS: &str = r#"
[[table]]
name = "public.users"
protected_columns = ["id"]
forbid = ["explicit_id"]

[[table]]
name = "public.events"
protected_columns = ["id"]
forbid = ["explicit_id"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_ids_through_views_children_and_partitions_are_refused() {
    let db = fresh_db("explicitvia");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE users (id bigserial PRIMARY KEY, name text); \
         CREATE VIEW users_v AS SELECT name AS who, id AS uid FROM users; \
         CREATE VIEW users_vv AS SELECT * FROM users_v; \
         CREATE TABLE users_child (extra int) INHERITS (users); \
         CREATE TABLE events (id int GENERATED BY DEFAULT AS IDENTITY, night int NOT NULL, PRIMARY KEY (id, night)) \
           PARTITION BY RANGE (night); \
         CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100); \
         CREATE TABLE notes (id bigserial PRIMARY KEY, body text); \
         CREATE VIEW notes_v AS SELECT id, body FROM notes",
    )
    .await
    .unwrap();
    let proxy = proxy_with(base_config(), policy(EXPLICIT_USERS)).await;
    let via = connect(proxy.port(), "app", APP_PW, &db).await;
    for refused in [
        "INSERT INTO users_v (uid, who) VALUES (-91111101, 'test')",
        "INSERT INTO users_v VALUES ('test', -91111102)",
        "INSERT INTO users_vv (uid, who) VALUES (-91111103, 'test')",
        "INSERT INTO users_child (id, name, extra) VALUES (-91111104, 'test', 1)",
        "INSERT INTO events_1 (id, night) VALUES (-91111105, 1)",
        "INSERT INTO events_1 (id, night) OVERRIDING SYSTEM VALUE VALUES (-91111106, 1)",
        "INSERT INTO events_1 (id, night) OVERRIDING USER VALUE VALUES (-91111107, 1)",
        "COPY users_child (id, name) FROM STDIN",
    ] {
        let e = message(via.simple_query(refused).await.unwrap_err());
        assert!(e.contains("which stands for protected column id of public."), "{refused}: {e}");
    }
    for allowed in [
        "INSERT INTO users_v (who) VALUES ('a')",
        "INSERT INTO users_vv (who) VALUES ('b')",
        "INSERT INTO users_child (name, extra) VALUES ('c', 1)",
        "INSERT INTO events (night) VALUES (2)",
        "INSERT INTO events (id, night) OVERRIDING USER VALUE VALUES (-1, 3)",
        "INSERT INTO notes_v (id, body) VALUES (7, 'not protected')",
    ] {
        via.simple_query(allowed).await.unwrap_or_else(|e| panic!("{allowed}: {e}"));
    }
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE id < 0").await, 0, "no hand-made id reached users");
    assert_eq!(count(&d, "SELECT count(*) FROM users").await, 3);
    assert_eq!(count(&d, "SELECT count(*) FROM events WHERE id < 0").await, 0);
    assert_eq!(count(&d, "SELECT count(*) FROM events").await, 2);
    assert_eq!(count(&d, "SELECT count(*) FROM notes").await, 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_view_and_child_example_is_refused_through_blastwall() {
    const README: &str = include_str!("../../README.md");
    let section = &README[README.find("### `explicit-id`").unwrap()..];
    let blocks: Vec<&str> = section.split("```sql\n").skip(1).map(|b| &b[..b.find("```").unwrap()]).take(2).collect();
    let toml = section.split("```toml\n").nth(1).map(|b| &b[..b.find("```").unwrap()]).unwrap();
    let db = fresh_db("readmeview");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(blocks[0].lines().next().unwrap()).await.unwrap();
    let proxy = proxy_with(base_config(), policy(toml)).await;
    let via = connect(proxy.port(), "app", APP_PW, &db).await;
    for line in blocks[1].lines() {
        let (stmt, comment) = line.split_once("--").unwrap_or((line, ""));
        let r = via.simple_query(stmt).await;
        if comment.contains("refused: explicit-id") {
            let e = message(r.unwrap_err());
            assert!(e.contains("stands for protected column id of public.accounts"), "{line}: {e}");
        } else {
            r.unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_without_its_functions_is_completed_by_its_owner_on_first_use() {
    let (db, d) = accounts_db("upgrade", 100).await;
    let p = proxy_with(base_config(), policy(BUDGET)).await;
    assert_eq!(point_deletes(p.port(), &db, 1..=3).await, 3);
    p.stop().await;
    // As an older blastwall left it: the tables, no functions, no `win`.
    d.batch_execute(
        "DROP FUNCTION blastwall.take_budget(oid[], text[], int8[], float8[]); \
         DROP FUNCTION blastwall.record_run(oid[], text[], int8[], text, int8[]); \
         ALTER TABLE blastwall.budget_lock DROP COLUMN win",
    )
    .await
    .unwrap();
    let p = proxy_with(base_config(), policy(BUDGET)).await;
    assert_eq!(point_deletes(p.port(), &db, 4..=30).await, 22, "the spends before it still count");
    assert_eq!(count(&d, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'blastwall'::regnamespace").await, 2);
    assert_eq!(count(&d, "SELECT count(*) FROM accounts").await, 75);
    p.stop().await;
}
