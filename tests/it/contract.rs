//! The contract rules (anomaly, budget, explicit-id) through the interface the pre-check calls,
//! against the real server: each write runs on one connection inside a transaction, as the
//! pre-check runs it — counters before and after, the contract's SQL in the same transaction,
//! then COMMIT or ROLLBACK by its verdict — and the data is checked on another connection.

use crate::harness::{admin_sql, direct, fresh_db, pg, APP_PW};
use blastwall::catalog::{minted_answer, minted_query, Catalog, Mint};
use blastwall::contract::{self, explicit_id_findings, Counted, Request};
use blastwall::policy::{file, Decision, Mode, Policy, SessionView};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};

fn policy(text: &str) -> Policy {
    file::compile(&[(Path::new("contract.toml"), text)]).unwrap()
}

fn who() -> SessionView<'static> {
    SessionView::offline("app", "", None)
}

/// Rows as the pre-check's `Answer` holds them, or the server's error message.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let msgs =
        c.simple_query(sql).await.map_err(|e| e.as_db_error().map_or(e.to_string(), |d| d.message().to_string()))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

type Counters = HashMap<(String, String, u32), (u64, u64)>;

async fn counters(c: &Client) -> Counters {
    rows(c, "SELECT schemaname, relname, relid::text, n_tup_del::text, n_tup_upd::text FROM pg_catalog.pg_stat_xact_user_tables")
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let g = |i: usize| r[i].clone().unwrap();
            ((g(0), g(1), g(2).parse().unwrap()), (g(3).parse().unwrap(), g(4).parse().unwrap()))
        })
        .collect()
}

/// One counted write as the pre-check runs it; `pause` holds the transaction open between the
/// contract's SQL and the commit (the pre-check's round trip), so that races are real.
async fn write(
    c: &Client,
    sql: &str,
    target: &str,
    (p, cat, db): (&Policy, &Catalog, &str),
    override_rows: Option<u64>,
    pause: Duration,
    how: How,
) -> Decision {
    c.batch_execute("BEGIN").await.unwrap();
    let before = counters(c).await;
    c.batch_execute(sql).await.unwrap();
    let after = counters(c).await;
    let counts: Vec<Counted> = after
        .iter()
        .filter_map(|((s, n, oid), (d, u))| {
            let (d0, u0) = before.get(&(s.clone(), n.clone(), *oid)).copied().unwrap_or((0, 0));
            let c = Counted { schema: s.clone(), name: n.clone(), oid: Some(*oid), deleted: d - d0, updated: u - u0 };
            (c.deleted + c.updated > 0).then_some(c)
        })
        .collect();
    let target = blastwall::analyze::parse_qualified(target).unwrap();
    let fp = contract::fingerprint(sql);
    let req = Request {
        counts: &counts,
        target: Some(&target),
        verb: sql.split_whitespace().next().unwrap(),
        fingerprint: &fp,
        statement: sql,
        override_rows,
        who: who(),
        policy: p,
        state_ready: cat.state_ready(db, &p.state.schema),
    };
    let Some(check) = contract::prepare(&req) else {
        c.batch_execute("COMMIT").await.unwrap();
        return Decision::default();
    };
    if how == How::WithKeep {
        // The keep sent behind the contract's SQL, in the same Query: kept unless it stops it.
        let answer = rows(c, &format!("{}; COMMIT", check.sql())).await;
        let (r, err) = match &answer {
            Ok(r) => (r.clone(), None),
            Err(e) => (Vec::new(), Some(e.as_str())),
        };
        let d = check.judge(&r, err);
        cat.learn_state_ready(db, check.schema(), check.judged_ready(err));
        assert_eq!(check.keep_failed(&r, err), None);
        if matches!(d.mode(), Some(Mode::Enforce | Mode::DryRun)) {
            assert!(err.is_some(), "a stop aborts the transaction: {d:?}");
            c.batch_execute("ROLLBACK").await.unwrap();
        } else {
            assert!(err.is_none(), "{err:?}");
        }
        return d;
    }
    let answer = rows(c, check.sql()).await;
    let (r, err) = match &answer {
        Ok(r) => (r.clone(), None),
        Err(e) => (Vec::new(), Some(e.as_str())),
    };
    let d = check.judge(&r, err);
    cat.learn_state_ready(db, check.schema(), check.judged_ready(err));
    tokio::time::sleep(pause).await;
    let keep = !matches!(d.mode(), Some(Mode::Enforce | Mode::DryRun));
    c.batch_execute(if keep { "COMMIT" } else { "ROLLBACK" }).await.unwrap();
    d
}

/// How the pre-check sends the contract's SQL: alone (then COMMIT or ROLLBACK by the verdict),
/// or with the keep behind it in one Query (no extra round trip when the write is kept).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum How {
    Alone,
    WithKeep,
}

async fn count(db: &str, sql: &str) -> i64 {
    direct("app", APP_PW, db).await.query_one(sql, &[]).await.unwrap().get(0)
}

const NIGHTLY: &str = "[[table]]\nname = \"users\"\nanomaly = true\nanomaly_min_runs = 5\n";

async fn nightly_db() -> (String, Client) {
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE TABLE users (id bigserial PRIMARY KEY, night int NOT NULL); \
         INSERT INTO users (night) SELECT n FROM generate_series(1, 5) n, generate_series(1, 3); \
         INSERT INTO users (night) SELECT 6 FROM generate_series(1, 900);",
    )
    .await
    .unwrap();
    (db, c)
}

#[tokio::test]
async fn history_builds_then_an_anomaly_is_refused_and_survives_a_restart() {
    const HOW: How = How::WithKeep;
    let (db, c) = nightly_db().await;
    let p = policy(NIGHTLY);
    let cat = Catalog::default();
    // A cleanup that found nothing is history too.
    let d = write(&c, "DELETE FROM users WHERE night = 0", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "{d:?}");
    for night in 1..=5 {
        let sql = format!("DELETE FROM users WHERE night = {night}");
        let d = write(&c, &sql, "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
        assert!(d.findings.is_empty(), "night {night}: {d:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 900);
    // A blastwall restart: a new connection, nothing remembered in the process.
    drop(c);
    let c = direct("app", APP_PW, &db).await;
    let cat = Catalog::default();
    let d = write(&c, "DELETE FROM users WHERE night = 6", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert_eq!(d.mode(), Some(Mode::Enforce), "{d:?}");
    let f = &d.findings[0];
    assert_eq!(f.rule, "anomaly");
    assert_eq!(
        f.why,
        "deleted 900 rows of public.users; this statement usually deletes 3 (median of 6 runs), and 900 is more than 10 × 3"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 900, "refused, so rolled back");
    // In warn mode it is kept, with the finding.
    let warn = policy(&format!("[defaults]\nmode = \"warn\"\n{NIGHTLY}"));
    let d =
        write(&c, "DELETE FROM users WHERE night = 6", "users", (&warn, &cat, &db), None, Duration::ZERO, HOW).await;
    assert_eq!((d.findings[0].rule, d.mode()), ("anomaly", Some(Mode::Warn)));
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0, "kept in warn mode");
    // An override with its expected count waives it; one that expects fewer does not.
    c.batch_execute("INSERT INTO users (night) SELECT 7 FROM generate_series(1, 900)").await.unwrap();
    let d =
        write(&c, "DELETE FROM users WHERE night = 7", "users", (&p, &cat, &db), Some(899), Duration::ZERO, HOW).await;
    assert_eq!(d.findings[0].rule, "anomaly", "{d:?}");
    let d =
        write(&c, "DELETE FROM users WHERE night = 7", "users", (&p, &cat, &db), Some(900), Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "{d:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn cascades_are_history_of_their_own_table() {
    const HOW: How = How::Alone;
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, night int); \
         CREATE TABLE sessions (id serial, user_id int REFERENCES users ON DELETE CASCADE); \
         INSERT INTO users SELECT n, n FROM generate_series(1, 7) n; \
         INSERT INTO sessions (user_id) SELECT n FROM generate_series(1, 6) n; \
         INSERT INTO sessions (user_id) SELECT 7 FROM generate_series(1, 500);",
    )
    .await
    .unwrap();
    let p = policy("[defaults]\nanomaly = true\nanomaly_min_runs = 5\n");
    let cat = Catalog::default();
    for n in 1..=6 {
        let d = write(
            &c,
            &format!("DELETE FROM users WHERE id = {n}"),
            "users",
            (&p, &cat, &db),
            None,
            Duration::ZERO,
            HOW,
        )
        .await;
        assert!(d.findings.is_empty(), "{d:?}");
    }
    let d = write(&c, "DELETE FROM users WHERE id = 7", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert_eq!(d.findings.len(), 1, "{d:?}");
    assert!(d.findings[0].why.starts_with("deleted 500 rows of public.sessions"), "{d:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM sessions").await, 500);
}

#[tokio::test]
async fn point_deletes_stop_at_the_budget_across_two_connections() {
    const HOW: How = How::WithKeep;
    let db = fresh_db("contract");
    let setup = direct("app", APP_PW, &db).await;
    setup
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 50);")
        .await
        .unwrap();
    let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 20\nbudget_window = \"1h\"\n");
    let cat = Catalog::default();
    let (a, b) = (direct("app", APP_PW, &db).await, direct("app", APP_PW, &db).await);
    let run = |c: Client, parity: i32| {
        let (p, cat, db) = (p.clone(), &cat, db.clone());
        async move {
            let mut refused = 0;
            for id in (1..=50).filter(|i| i % 2 == parity) {
                let sql = format!("DELETE FROM users WHERE id = {id}");
                let d = write(&c, &sql, "users", (&p, cat, &db), None, Duration::from_millis(3), HOW).await;
                if d.mode() == Some(Mode::Enforce) {
                    assert_eq!(d.findings[0].rule, "budget", "{d:?}");
                    refused += 1;
                }
            }
            refused
        }
    };
    let (ra, rb) = tokio::join!(run(a, 0), run(b, 1));
    assert_eq!(ra + rb, 30, "50 attempts, 20 kept");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 30, "exactly the budget was deleted");
    assert_eq!(count(&db, "SELECT sum(rows)::int8 FROM blastwall.budget_spent").await, 20);
    // The message says what is left.
    let c = direct("app", APP_PW, &db).await;
    let d = write(&c, "DELETE FROM users WHERE id > 45", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings[0].why.contains("20 already deleted in the last 1h (0 left)"), "{d:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 30);
}

#[tokio::test]
async fn without_access_to_the_state_it_fails_closed() {
    const HOW: How = How::Alone;
    let db = fresh_db("contract");
    // As a DBA would: `blastwall init-state | psql`, without grants first.
    admin_sql(pg(), &db, &contract::state::init_script("blastwall", &[]));
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute("CREATE TABLE users (id int); INSERT INTO users SELECT generate_series(1, 5);").await.unwrap();
    let p = policy(
        "[state]\ncreate = false\n[[table]]\nname = \"users\"\nbudget_delete_rows = 20\nbudget_window = \"1h\"\n",
    );
    let probe = rows(&c, &contract::state::probe_sql("blastwall")).await.unwrap();
    assert_eq!(probe[0][0].as_deref(), Some("no USAGE on schema blastwall"));
    let cat = Catalog::default();
    crate::harness::captured_logs();
    let d = write(&c, "DELETE FROM users WHERE id = 1", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert_eq!((d.findings[0].rule, d.mode()), ("contract-state", Some(Mode::Enforce)), "{d:?}");
    assert!(d.findings[0].why.contains("permission denied for schema blastwall"), "{d:?}");
    // The operator is told once, in the log, which database's state cannot be used.
    let said = crate::harness::captured_logs();
    let line = said.lines().find(|l| l.contains("state schema cannot be used") && l.contains(&db));
    assert!(line.is_some(), "no log line about the unusable state in {db}:\n{said}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 5);
    admin_sql(pg(), &db, &contract::state::init_script("blastwall", &["app".to_string()]));
    assert_eq!(rows(&c, &contract::state::probe_sql("blastwall")).await.unwrap()[0][0].as_deref(), Some("true"));
    let d = write(&c, "DELETE FROM users WHERE id = 1", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "{d:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 4);
}

#[tokio::test]
async fn the_session_search_path_cannot_change_the_contract_sql() {
    const HOW: How = How::WithKeep;
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE TABLE a (id int); CREATE TABLE b (id serial, name text); \
         INSERT INTO a SELECT generate_series(1, 10); INSERT INTO b (name) SELECT 'x' FROM generate_series(1, 10); \
         CREATE SCHEMA evil; \
         CREATE FUNCTION evil.yes(oid, oid) RETURNS bool LANGUAGE sql AS 'SELECT true'; \
         CREATE OPERATOR evil.= (leftarg = oid, rightarg = oid, function = evil.yes); \
         CREATE FUNCTION evil.yes2(text, text) RETURNS bool LANGUAGE sql AS 'SELECT true'; \
         CREATE OPERATOR evil.= (leftarg = text, rightarg = text, function = evil.yes2); \
         CREATE FUNCTION evil.yes3(int2, int2) RETURNS bool LANGUAGE sql AS 'SELECT true'; \
         CREATE OPERATOR evil.= (leftarg = int2, rightarg = int2, function = evil.yes3); \
         CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$; \
         CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE sql AS $$SELECT 'a'::regclass$$;",
    )
    .await
    .unwrap();
    let p = policy(
        "[[table]]\nname = \"a\"\nbudget_delete_rows = 5\nbudget_window = \"1h\"\n\
         [[table]]\nname = \"b\"\nbudget_delete_rows = 5\nbudget_window = \"1h\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\n",
    );
    let cat = Catalog::default();
    let d = write(&c, "DELETE FROM a WHERE id <= 5", "a", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "{d:?}");
    // With the client's operators and functions first, b's budget is still b's alone.
    c.batch_execute("SET search_path = evil, pg_catalog, public").await.unwrap();
    let d =
        write(&c, "DELETE FROM public.b WHERE id = 1", "public.b", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "b's budget must not see a's spend: {d:?}");
    let d =
        write(&c, "DELETE FROM public.b WHERE id > 5", "public.b", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert_eq!(d.findings.len(), 1, "1 + 5 rows is over b's 5: {d:?}");
    // The catalog question reads the same.
    let cols = minted_answer(&rows(&c, &minted_query("public", "b", None)).await.unwrap());
    assert_eq!(
        cols.iter().map(|c| (c.name.as_str(), c.mint)).collect::<Vec<_>>(),
        [("id", Mint::SequenceDefault), ("name", Mint::None)]
    );
}

#[tokio::test]
async fn explicit_ids_into_minted_columns_are_found() {
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE TABLE u_serial (id serial PRIMARY KEY, name text); \
         CREATE TABLE u_ident (id int GENERATED BY DEFAULT AS IDENTITY, name text); \
         CREATE TABLE u_always (id int GENERATED ALWAYS AS IDENTITY, name text); \
         CREATE SEQUENCE ids; CREATE TABLE u_nextval (name text, id bigint DEFAULT nextval('ids')); \
         CREATE TABLE u_plain (id int, name text);",
    )
    .await
    .unwrap();
    let mut text = String::new();
    for t in ["u_serial", "u_ident", "u_always", "u_nextval", "u_plain"] {
        text.push_str(&format!(
            "[[table]]\nname = \"{t}\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\n"
        ));
    }
    let p = policy(&text);
    let cat = Catalog::default();
    for t in ["u_serial", "u_ident", "u_always", "u_nextval", "u_plain"] {
        cat.learn_minted(&db, "public", t, &rows(&c, &minted_query("public", t, None)).await.unwrap());
    }
    let found = |sql: &str| {
        let ins = contract::inserts(sql);
        let cols = |s: &str, t: &str| cat.minted_of(&db, s, t);
        explicit_id_findings(&ins, &cols, sql, who(), &p).findings.len()
    };
    for (sql, n) in [
        ("INSERT INTO u_serial (id, name) VALUES (-91111101, 'test')", 1),
        ("INSERT INTO u_serial VALUES (-91111101, 'test')", 1),
        ("INSERT INTO u_ident (id, name) VALUES (7, 'test')", 1),
        ("INSERT INTO u_always (id, name) OVERRIDING SYSTEM VALUE VALUES (7, 'test')", 1),
        ("INSERT INTO u_ident (id, name) OVERRIDING USER VALUE VALUES (7, 'test')", 0),
        ("INSERT INTO u_nextval (name, id) VALUES ('test', 7)", 1),
        ("INSERT INTO u_nextval VALUES ('test')", 0),
        ("INSERT INTO u_nextval SELECT name, id FROM u_plain", 1),
        ("INSERT INTO u_serial (id, name) SELECT id, name FROM u_plain ON CONFLICT (id) DO NOTHING", 1),
        ("COPY u_ident FROM STDIN", 1),
        ("INSERT INTO u_serial (name) VALUES ('real')", 0),
        ("INSERT INTO u_serial (id, name) VALUES (DEFAULT, 'real')", 0),
        ("INSERT INTO u_ident (name) VALUES ('real')", 0),
        ("INSERT INTO u_plain (id, name) VALUES (7, 'not minted')", 0),
    ] {
        assert_eq!(found(sql), n, "{sql}");
    }
    // What the rule lets through the server accepts, sequence-minted.
    c.batch_execute("INSERT INTO u_serial (name) VALUES ('real'); INSERT INTO u_nextval VALUES ('real')")
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT id::int8 FROM u_serial").await, 1);
}

#[tokio::test]
async fn two_writers_racing_for_the_last_row_of_a_budget_cannot_both_win() {
    const HOW: How = How::Alone;
    let db = fresh_db("contract");
    let setup = direct("app", APP_PW, &db).await;
    setup
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 30);")
        .await
        .unwrap();
    let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 20\nbudget_window = \"1h\"\n");
    let cat = Catalog::default();
    let d =
        write(&setup, "DELETE FROM users WHERE id <= 19", "users", (&p, &cat, &db), None, Duration::ZERO, HOW).await;
    assert!(d.findings.is_empty(), "{d:?}");
    // Both hold their transaction open after their verdict, as the pre-check's round trip does:
    // without the budget's row lock, each would see one row left and keep its delete.
    let (a, b) = (direct("app", APP_PW, &db).await, direct("app", APP_PW, &db).await);
    let pause = Duration::from_millis(300);
    let (da, dbb) = tokio::join!(
        write(&a, "DELETE FROM users WHERE id = 20", "users", (&p, &cat, &db), None, pause, HOW),
        write(&b, "DELETE FROM users WHERE id = 21", "users", (&p, &cat, &db), None, pause, HOW),
    );
    let refused = [&da, &dbb].iter().filter(|d| d.mode() == Some(Mode::Enforce)).count();
    assert_eq!(refused, 1, "{da:?} {dbb:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 10, "exactly 20 rows deleted");
}

/// README's explicit-id example: its policy, its table, its two inserts, as the README says.
#[tokio::test]
async fn the_readme_explicit_id_example_runs() {
    const README: &str = include_str!("../../README.md");
    let section = &README[README.find("### `explicit-id`").unwrap()..];
    let block = |fence: &str| {
        let start = section.find(fence).unwrap() + fence.len();
        section[start..start + section[start..].find("```").unwrap()].to_string()
    };
    let p = policy(&block("```toml\n"));
    let sql = block("```sql\n");
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    let mut lines = sql.lines();
    c.batch_execute(lines.next().unwrap()).await.unwrap();
    let cols = minted_answer(&rows(&c, &minted_query("public", "accounts", None)).await.unwrap());
    for line in lines {
        let (stmt, comment) = line.split_once("--").unwrap();
        let n =
            explicit_id_findings(&contract::inserts(stmt), &|_, _| Some(cols.clone()), stmt, who(), &p).findings.len();
        assert_eq!(n, usize::from(comment.contains("refused: explicit-id")), "{line}");
        // Offline, `blastwall check` sees the same where the column list shows it.
        assert_eq!(contract::explicit_id_offline(stmt, who(), &p).findings.len(), n, "{line}");
    }
}

/// A table the counts name but the server no longer finds by that name (renamed meanwhile, and
/// no OID given): its budget cannot be taken, so the write is not kept.
#[tokio::test]
async fn a_budgeted_table_not_found_by_its_name_fails_closed() {
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 20\nbudget_window = \"1h\"\n");
    let counts = [Counted { schema: "public".into(), name: "users".into(), oid: None, deleted: 1, updated: 0 }];
    let req = Request {
        counts: &counts,
        target: None,
        verb: "DELETE",
        fingerprint: "f",
        statement: "DELETE FROM users WHERE id = 1",
        override_rows: None,
        who: who(),
        policy: &p,
        state_ready: false,
    };
    let check = contract::prepare(&req).unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    let err = rows(&c, &format!("{}; COMMIT", check.sql())).await.unwrap_err();
    let d = check.judge(&[], Some(&err));
    assert_eq!((d.findings[0].rule, d.mode()), ("contract-state", Some(Mode::Enforce)), "{d:?}");
    assert!(d.findings[0].why.contains("cannot find public.users by its name"), "{d:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
}

/// What the contract costs a kept write, riding behind its keep: 2,000 point deletes with and
/// without it (budget and anomaly on), the same two round trips each. Run by hand:
/// `cargo test --release --test it contract::cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement run by hand (see above), not a check"]
async fn cost() {
    let db = fresh_db("contract");
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute("CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 4001);")
        .await
        .unwrap();
    let p =
        policy("[[table]]\nname = \"users\"\nanomaly = true\nbudget_delete_rows = 100000\nbudget_window = \"1h\"\n");
    let counts =
        |oid| [Counted { schema: "public".into(), name: "users".into(), oid: Some(oid), deleted: 1, updated: 0 }];
    let oid: i64 = c.query_one("SELECT 'users'::regclass::oid::int8", &[]).await.unwrap().get(0);
    let counts = counts(oid as u32);
    let fp = contract::fingerprint("DELETE FROM users WHERE id = 1");
    let req = Request {
        counts: &counts,
        target: None,
        verb: "DELETE",
        fingerprint: &fp,
        statement: "DELETE FROM users WHERE id = 1",
        override_rows: None,
        who: who(),
        policy: &p,
        state_ready: false,
    };
    // Create the state first (with a real write: a run records at most what was changed).
    c.batch_execute(&format!(
        "BEGIN; DELETE FROM users WHERE id = 4001; {}; COMMIT",
        contract::prepare(&req).unwrap().sql()
    ))
    .await
    .unwrap();
    let ready = Request { state_ready: true, ..req };
    let check = contract::prepare(&ready).unwrap();
    let n = 2000;
    let mut times = Vec::new();
    for (label, with) in [("without", false), ("with", true), ("without", false), ("with", true)] {
        let start = std::time::Instant::now();
        for i in 0..n / 2 {
            let id = if with { 2001 + i } else { 1 + i } + if times.len() >= 2 { n / 2 } else { 0 };
            c.batch_execute(&format!("BEGIN; DELETE FROM users WHERE id = {id}")).await.unwrap();
            let keep = if with { format!("{}; COMMIT", check.sql()) } else { "COMMIT".to_string() };
            c.batch_execute(&keep).await.unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / (n / 2) as f64;
        println!("{label} the contract: {per:.0} µs per counted write");
        times.push(per);
    }
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);
    if std::env::var("CONTRACT_EXPLAIN").is_ok() {
        let main = &check.sql()[check.sql().find("WITH item").unwrap()..];
        c.batch_execute("BEGIN").await.unwrap();
        for r in rows(&c, &format!("EXPLAIN (ANALYZE, BUFFERS) {main}")).await.unwrap() {
            println!("{}", r[0].as_deref().unwrap_or(""));
        }
        c.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// In a client's REPEATABLE READ block (the pre-check's savepoint), a snapshot older than
/// another writer's spend cannot see that spend; taking the budget's lock then fails with a
/// serialization error, and the write is refused rather than overspending.
#[tokio::test]
async fn a_stale_snapshot_cannot_overspend_a_budget() {
    let db = fresh_db("contract");
    let setup = direct("app", APP_PW, &db).await;
    setup
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 30);")
        .await
        .unwrap();
    let p = policy("[[table]]\nname = \"users\"\nbudget_delete_rows = 20\nbudget_window = \"1h\"\n");
    let cat = Catalog::default();
    let d =
        write(&setup, "DELETE FROM users WHERE id <= 5", "users", (&p, &cat, &db), None, Duration::ZERO, How::Alone)
            .await;
    assert!(d.findings.is_empty(), "{d:?}");
    let a = direct("app", APP_PW, &db).await;
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM users").await.unwrap();
    // Another writer spends the rest of the budget after a's snapshot.
    let d =
        write(&setup, "DELETE FROM users WHERE id <= 20", "users", (&p, &cat, &db), None, Duration::ZERO, How::Alone)
            .await;
    assert!(d.findings.is_empty(), "{d:?}");
    a.batch_execute("SAVEPOINT blastwall_verify; DELETE FROM users WHERE id = 30").await.unwrap();
    let oid: i64 = a.query_one("SELECT 'users'::regclass::oid::int8", &[]).await.unwrap().get(0);
    let counts =
        [Counted { schema: "public".into(), name: "users".into(), oid: Some(oid as u32), deleted: 1, updated: 0 }];
    let req = Request {
        counts: &counts,
        target: None,
        verb: "DELETE",
        fingerprint: "f",
        statement: "DELETE FROM users WHERE id = 30",
        override_rows: None,
        who: who(),
        policy: &p,
        state_ready: true,
    };
    let check = contract::prepare(&req).unwrap();
    let err = rows(&a, &format!("{}; RELEASE SAVEPOINT blastwall_verify", check.sql())).await.unwrap_err();
    let d = check.judge(&[], Some(&err));
    assert_eq!((d.findings[0].rule, d.mode()), ("contract-state", Some(Mode::Enforce)), "{d:?}");
    assert!(err.contains("could not serialize"), "{err}");
    a.batch_execute("ROLLBACK TO SAVEPOINT blastwall_verify; RELEASE SAVEPOINT blastwall_verify; COMMIT")
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 10, "20 deleted, the 21st refused");
}
