//! Row limits, measured on the client's own session: the statement runs inside a savepoint,
//! the per-table counters say what it changed (cascades included), and it is kept or undone.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

/// Users: 3 deletes at most; web_messages: 12 (each user has 2 sessions × 3 messages = 6).
const LIMITS: &str = r#"
[defaults]
mode = "enforce"

[[table]]
name = "public.users"
protected_columns = ["id"]
max_delete_rows = 3
max_update_rows = 2

[[table]]
name = "public.web_messages"
max_delete_rows = 12

[[role]]
name = "migrator"
may_override = true
"#;

async fn limited_proxy(mode: Option<&str>) -> Proxy {
    let mut policy = compile(&[(Path::new("limits.toml"), LIMITS)]).unwrap();
    if let Some(m) = mode {
        policy.mode = m.parse().unwrap();
    }
    proxy_with(base_config(), policy).await
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_at_the_boundary_with_cascades_counted() {
    let db = incident_db();
    let p = limited_proxy(None).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // Exactly at the limits: 2 users, 2 subscriptions, 4 sessions, 12 messages.
    let n = via.execute("DELETE FROM users WHERE id IN (-91111101, -91111102)", &[]).await.unwrap();
    assert_eq!(n, 2, "the client gets the statement's real result");
    assert_eq!(count(&via, "SELECT count(*) FROM users").await, 58);
    // One user more: 3 users is within its limit, but 18 cascaded messages are not.
    let before = snapshot(&via).await;
    let err = via.simple_query("DELETE FROM users WHERE id IN (-91111103, -91111104, -91111105)").await.unwrap_err();
    let e = err.as_db_error().unwrap();
    assert_eq!(e.code().code(), "42501");
    assert!(
        e.message().contains("would delete 3 rows from public.users")
            && e.message().contains("18 from public.web_messages")
            && e.message().contains("18 deleted in public.web_messages is over its limit of 12"),
        "{}",
        e.message()
    );
    assert!(e.detail().unwrap().contains("rule row-limit"), "{:?}", e.detail());
    assert_eq!(snapshot(&via).await, before, "rolled back: nothing changed");
    // The attribute cleanup of the incident's 8 remaining test users is over the users limit.
    let err = via.simple_query("DELETE FROM users WHERE auth_source = 'test'").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("would delete 8 rows from public.users"), "{err:?}");
    assert_eq!(snapshot(&via).await, before);
    // Updates are limited too (2), through the extended protocol with parameters.
    let err = via.execute("UPDATE users SET plan = $1 WHERE auth_source = $2", &[&"x", &"oauth"]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    let n = via.execute("UPDATE users SET plan = $1 WHERE id = $2", &[&"x", &-91111106i64]).await.unwrap();
    assert_eq!(n, 1);
    // Prepared once, executed many times.
    let stmt = via.prepare("DELETE FROM users WHERE id = $1").await.unwrap();
    for id in [-91111107i64, -91111108] {
        assert_eq!(via.execute(&stmt, &[&id]).await.unwrap(), 1);
    }
    // RETURNING rows arrive after the verdict.
    let rows = via.query("DELETE FROM users WHERE id = -91111109 RETURNING id", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), -91111109);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_inside_transactions_behave_like_server_errors() {
    let db = incident_db();
    let p = limited_proxy(None).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    via.batch_execute("BEGIN").await.unwrap();
    assert_eq!(via.execute("DELETE FROM users WHERE id = -91111101", &[]).await.unwrap(), 1);
    let err = via.simple_query("DELETE FROM users WHERE auth_source = 'test'").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    let aborted = via.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(aborted.code().unwrap().code(), "25P02", "the refusal aborts the block");
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(snapshot(&via).await, before);
    // A kept write inside a block commits with it.
    via.batch_execute("BEGIN").await.unwrap();
    assert_eq!(via.execute("DELETE FROM users WHERE id = -91111101", &[]).await.unwrap(), 1);
    via.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&via, "SELECT count(*) FROM users").await, 59);
    // BEGIN and a counted write in one message: run statement by statement, counted, kept.
    via.simple_query("BEGIN; DELETE FROM users WHERE id = -91111102; COMMIT").await.unwrap();
    assert_eq!(count(&via, "SELECT count(*) FROM users").await, 58);
    // Over its limit there: refused, and the block it opened is failed, as by a server error.
    let err = via.simple_query("BEGIN; DELETE FROM users WHERE auth_source = 'test'; COMMIT").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&via, "SELECT count(*) FROM users").await, 58);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_search_path_and_temp_tables_resolve_as_the_server_does() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE SCHEMA shadow AUTHORIZATION app");
    let p = limited_proxy(None).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    // An updatable view over users writes to users.
    via.batch_execute("CREATE VIEW test_people AS SELECT * FROM users WHERE auth_source = 'test'").await.unwrap();
    let err = via.simple_query("DELETE FROM test_people WHERE plan = 'free'").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("from public.users"), "{err:?}");
    // search_path makes `people` mean the view; the counters still name public.users.
    via.batch_execute("SET search_path = shadow, public; CREATE VIEW shadow.people AS SELECT * FROM public.users")
        .await
        .unwrap();
    let err = via.simple_query("DELETE FROM people WHERE auth_source = 'test'").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    assert_eq!(snapshot(&via).await, before);
    // An UPDATE through the view changes rows of users, which has an update limit (2).
    let err = via.simple_query("UPDATE people SET plan = 'x' WHERE auth_source = 'oauth'").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("would update 10 rows in public.users"), "{err:?}");
    assert_eq!(snapshot(&via).await, before);
    // A view created a moment ago is known at once (DDL through blastwall drops what the
    // catalog said), and a plain table of another name is not counted at all.
    via.batch_execute(
        "CREATE TABLE notes (id int, body text); INSERT INTO notes SELECT g, 'n' FROM generate_series(1, 10) g",
    )
    .await
    .unwrap();
    assert_eq!(via.execute("UPDATE notes SET body = 'm'", &[]).await.unwrap_err().code().unwrap().code(), "42501");
    assert_eq!(via.execute("UPDATE notes SET body = 'm' WHERE id > 0", &[]).await.unwrap(), 10);
    via.batch_execute("DROP TABLE notes; CREATE VIEW notes AS SELECT * FROM public.users").await.unwrap();
    let err = via.execute("UPDATE notes SET plan = 'm' WHERE id < 0", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    via.batch_execute("DROP VIEW notes").await.unwrap();
    // A temporary table named users is not public.users: deleting from it is allowed.
    via.batch_execute("CREATE TEMP TABLE users (id bigint, auth_source text); INSERT INTO users SELECT g, 'test' FROM generate_series(1, 50) g").await.unwrap();
    let n = via.execute("DELETE FROM users WHERE auth_source = 'test'", &[]).await.unwrap();
    assert_eq!(n, 50);
    via.batch_execute("RESET search_path; DISCARD TEMP").await.unwrap();
    assert_eq!(snapshot(&via).await, before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_exact_counts_and_changes_nothing() {
    let db = incident_db();
    let p = limited_proxy(Some("dry-run")).await;
    let via_psql = |sql: &str| psql(p.port(), "app", APP_PW, &db, &["-c", sql], None);
    let c = direct("app", APP_PW, &db).await;
    let before = snapshot(&c).await;
    let (ok, out, err) = via_psql("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100");
    assert!(ok, "{err}");
    assert!(out.contains("DELETE 0"), "the command tag cannot be taken for a real delete: {out}");
    assert!(
        err.contains("NOTICE:  blastwall: dry-run of DELETE: would delete 20 rows from public.users, 40 from public.chat_sessions, 20 from public.subscriptions, 120 from public.web_messages; rolled back, nothing changed"),
        "{err}"
    );
    assert!(err.contains("range predicate (BETWEEN) on protected column id"), "{err}");
    assert_eq!(snapshot(&c).await, before);
    // Within every limit, a dry run is still rolled back.
    let (ok, out, err) = via_psql("DELETE FROM users WHERE id = -91111101");
    assert!(ok && out.contains("DELETE 0") && err.contains("would delete 1 row from public.users"), "{out} {err}");
    assert_eq!(snapshot(&c).await, before);
    let (ok, out, err) = via_psql("DELETE FROM users WHERE auth_source = 'test' RETURNING id");
    assert!(ok, "{err}");
    assert!(!out.contains("-9111"), "no rows are shown: {out}");
    assert_eq!(snapshot(&c).await, before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_counts_rows_that_appear_meanwhile() {
    let db = incident_db();
    let p = limited_proxy(None).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let other = direct("app", APP_PW, &db).await;
    // Three test users: within the limit of 3 … until another session adds one more.
    via.batch_execute(
        "DELETE FROM users WHERE id IN (-91111101, -91111102, -91111103, -91111104, -91111105, -91111106, -91111107)",
    )
    .await
    .unwrap_err();
    for id in [-91111101i64, -91111102, -91111103, -91111104, -91111105, -91111106, -91111107] {
        via.execute("DELETE FROM users WHERE id = $1", &[&id]).await.unwrap();
    }
    assert_eq!(count(&via, "SELECT count(*) FROM users WHERE auth_source = 'test'").await, 3);
    other.execute("INSERT INTO users (id, auth_source) VALUES (-91111150, 'test')", &[]).await.unwrap();
    let err = via.simple_query("DELETE FROM users WHERE auth_source = 'test'").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("would delete 4 rows from public.users"), "{err:?}");
    assert_eq!(count(&other, "SELECT count(*) FROM users WHERE auth_source = 'test'").await, 4);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_can_ask_for_dry_run_but_never_for_less() {
    let db = incident_db();
    let p = limited_proxy(None).await;
    let script = "SET blastwall.mode = 'dry-run';\nDELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;\nSHOW blastwall.mode;\n";
    let (ok, out, err) = psql(p.port(), "app", APP_PW, &db, &["-v", "ON_ERROR_STOP=1", "-f", "-"], Some(script));
    assert!(ok, "{err}");
    assert!(out.contains("DELETE 0") && out.contains("dry-run"), "{out}");
    assert!(err.contains("would delete 20 rows from public.users"), "{err}");
    let c = direct("app", APP_PW, &db).await;
    assert_eq!(count(&c, "SELECT count(*) FROM users").await, 60);
    for loosen in ["SET blastwall.mode = 'enforce'", "RESET blastwall.mode", "SET blastwall.mode = 'off'"] {
        let script = format!("SET blastwall.mode = 'dry-run';\n{loosen};\n");
        let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-v", "ON_ERROR_STOP=1", "-f", "-"], Some(&script));
        assert!(!ok && err.contains("blastwall.mode"), "{loosen}: {err}");
    }
    // From the policy's enforce, a session may ask for enforce (no change) or dry-run.
    let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-c", "SET blastwall.mode = 'enforce'"], None);
    assert!(ok, "{err}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_is_explicit_noisy_and_bounded() {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO migrator");
    let p = limited_proxy(None).await;
    let cleanup = "DELETE FROM users WHERE auth_source = 'test'";
    let run = |user: &str, sql: &str| psql(p.port(), user, APP_PW, &db, &["-c", sql], None);
    let c = direct("app", APP_PW, &db).await;
    let before = snapshot(&c).await;
    // A role without may_override gets the normal refusal.
    let (ok, _, err) = run("app", &format!("/* blastwall: allow rows<=100 reason=\"ticket 4711\" */ {cleanup}"));
    assert!(!ok && err.contains("rule row-limit"), "{err}");
    // The stated count is an assertion: 10 users cascade to 100 rows in all, more than 20.
    let (ok, _, err) = run("migrator", &format!("/* blastwall: allow rows<=20 reason=\"ticket 4711\" */ {cleanup}"));
    assert!(!ok && err.contains("100 rows in all, more than the 20 the override allows"), "{err}");
    assert_eq!(snapshot(&c).await, before);
    // Not in a string, not for a second statement.
    let (ok, _, err) =
        run("migrator", &format!("{cleanup} AND email <> '/* blastwall: allow rows<=100 reason=\"x\" */'"));
    assert!(!ok && err.contains("rule row-limit"), "{err}");
    let (ok, _, err) = run("migrator", &format!("/* blastwall: allow rows<=100 reason=\"x\" */ SELECT 1; {cleanup}"));
    assert!(!ok && err.contains("one statement only"), "{err}");
    assert_eq!(snapshot(&c).await, before);
    // The range delete of the incident, with its real size stated, by a role allowed to.
    let (ok, out, err) = run("migrator", "/* blastwall: allow rows<=200 reason=\"ticket 4711\" */ DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101");
    assert!(ok, "{err}");
    assert!(out.contains("DELETE 10"), "{out}");
    assert_eq!(count(&c, "SELECT count(*) FROM users WHERE auth_source = 'test'").await, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_and_do_blocks_can_be_run_in_verify_mode() {
    let db = incident_db();
    let policy_text = format!("{LIMITS}\n[opaque]\ndo = \"verify\"\nfunctions = \"verify\"\n");
    let policy = compile(&[(Path::new("verify.toml"), policy_text.as_str())]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE FUNCTION wipe_tests() RETURNS void LANGUAGE sql AS $$ DELETE FROM users WHERE auth_source = 'test' $$",
    )
    .await
    .unwrap();
    let before = snapshot(&c).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // The parser cannot see the DELETE inside the function; the counters can.
    let err = via.simple_query("SELECT wipe_tests()").await.unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("10 deleted in public.users is over its limit of 3"),
        "{err:?}"
    );
    let err = via.simple_query("DO $$ BEGIN DELETE FROM users WHERE auth_source = 'test'; END $$").await.unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("10 deleted in public.users is over its limit of 3"),
        "{err:?}"
    );
    assert_eq!(snapshot(&c).await, before);
    // Within the limits, they run.
    via.batch_execute("DO $$ BEGIN DELETE FROM users WHERE id = -91111101; END $$").await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM users").await, 59);
    assert_eq!(via.query("SELECT lower('A')", &[]).await.unwrap().len(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_over_its_limit_by_the_estimate_it_never_runs() {
    let db = incident_db();
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY); INSERT INTO big SELECT generate_series(1, 10000); ANALYZE big;
         CREATE SEQUENCE big_rows_touched;
         CREATE FUNCTION count_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('big_rows_touched'); RETURN OLD; END $$;
         CREATE TRIGGER touch BEFORE DELETE ON big FOR EACH ROW EXECUTE FUNCTION count_touch();",
    )
    .await
    .unwrap();
    let policy_text = format!("{LIMITS}\n[[table]]\nname = \"big\"\nmax_delete_rows = 5\n");
    let policy = compile(&[(Path::new("big.toml"), policy_text.as_str())]).unwrap();
    let mut cfg = base_config();
    cfg.precheck_timeout = Some(std::time::Duration::from_millis(300));
    let p = proxy_with(cfg, policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let err = via.simple_query("DELETE FROM big WHERE id > 0").await.unwrap_err();
    let m = err.as_db_error().unwrap().message().to_string();
    assert!(m.contains("the planner estimates 10000 rows in public.big, far over its limit of 5; not run"), "{m}");
    // The extended protocol: EXPLAINed with the client's own (binary) parameter values.
    let err = via.execute("DELETE FROM big WHERE id > $1", &[&0i32]).await.unwrap_err();
    let m = err.as_db_error().unwrap().message().to_string();
    assert!(m.contains("the planner estimates 10000 rows in public.big"), "{m}");
    // The client's own unnamed statement is not disturbed by the estimate's statement.
    let stmt = via.prepare("DELETE FROM big WHERE id = $1").await.unwrap();
    assert_eq!(via.execute(&stmt, &[&10_000i32]).await.unwrap(), 1);
    // Sequences are not rolled back: the trigger never fired, so no row was touched.
    let touched: i64 = c.query_one("SELECT last_value FROM big_rows_touched", &[]).await.unwrap().get(0);
    let called: bool = c.query_one("SELECT is_called FROM big_rows_touched", &[]).await.unwrap().get(0);
    assert!(called && touched == 1, "one row touched: the point delete (last_value {touched}, called {called})");
    // Close to the limit by the estimate, it runs and is counted exactly.
    assert_eq!(via.execute("DELETE FROM big WHERE id <= 5", &[]).await.unwrap(), 5);
    // The pre-check's statement_timeout holds for statements it wraps.
    let err = via.simple_query("DELETE FROM big WHERE id = 6 AND pg_sleep(2) IS NOT NULL").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err:?}");
    assert_eq!(count(&c, "SELECT count(*) FROM big").await, 9994);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_table_keeps_its_limits() {
    let db = incident_db();
    let p = limited_proxy(None).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // A first counted write lets blastwall learn which table public.users is.
    assert_eq!(via.execute("DELETE FROM users WHERE id = -91111101", &[]).await.unwrap(), 1);
    via.batch_execute("ALTER TABLE users RENAME TO people").await.unwrap();
    let c = direct("app", APP_PW, &db).await;
    let before: i64 = c.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
    let err = via.simple_query("DELETE FROM people WHERE auth_source = 'test'").await.unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("9 deleted in public.users is over its limit of 3"),
        "{err:?}"
    );
    let after: i64 = c.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
    assert_eq!(before, after);
    // A renamed protected column stays protected: blastwall follows it by attnum.
    via.batch_execute("ALTER TABLE people RENAME TO users; ALTER TABLE users RENAME COLUMN id TO uid").await.unwrap();
    let err = via.simple_query("DELETE FROM users WHERE uid BETWEEN -91111200 AND -91111100").await.unwrap_err();
    let m = err.as_db_error().unwrap().message().to_string();
    assert!(m.contains("range predicate (BETWEEN) on protected column uid (id in the policy, renamed since)"), "{m}");
    assert_eq!(via.execute("DELETE FROM users WHERE uid = -91111102", &[]).await.unwrap(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_owned_by_protected_columns_are_found_in_the_catalog() {
    let db = incident_db();
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute("ALTER SEQUENCE web_user_id_seq OWNED BY users.id; CREATE SEQUENCE other_seq").await.unwrap();
    let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nforbid = [\"setval\"]\n";
    let p = proxy_with(base_config(), compile(&[(Path::new("owned.toml"), text)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let err = via.simple_query("SELECT setval('web_user_id_seq', 91111101)").await.unwrap_err();
    let m = err.as_db_error().unwrap().message().to_string();
    assert!(m.contains("owned by protected column id"), "{m}");
    let last: i64 = c.query_one("SELECT last_value FROM web_user_id_seq", &[]).await.unwrap().get(0);
    assert_ne!(last, 91111101);
    via.simple_query("SELECT setval('other_seq', 5)").await.unwrap();
    p.stop().await;
}

/// Crash recovery puts an unlogged sequence back to where it stood at `SET UNLOGGED` (fifth
/// adversarial pass): making a protected sequence unlogged is refused by its text, and through
/// a function (which the text does not show) by the identity check, which reads persistence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_sequence_cannot_be_made_unlogged() {
    let db = incident_db();
    let su = direct("postgres", SUPERUSER_PW, &db).await;
    su.batch_execute(
        "CREATE FUNCTION public.unlog() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS \
           $$ BEGIN ALTER SEQUENCE public.web_user_id_seq SET UNLOGGED; RETURN 1; END $$",
    )
    .await
    .unwrap();
    let p = proxy().await;
    let owner = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    let app = connect(p.port(), "app", APP_PW, &db).await;
    for (c, sql) in [
        (&owner, "ALTER SEQUENCE web_user_id_seq SET UNLOGGED"),
        (&owner, "ALTER TABLE web_user_id_seq SET UNLOGGED"),
        (&app, "SELECT public.unlog()"),
    ] {
        let e = c.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert!(m.starts_with("blastwall: refused"), "{sql}: {m}");
        let kind: i8 = su
            .query_one("SELECT relpersistence FROM pg_class WHERE oid = 'web_user_id_seq'::regclass", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(kind as u8, b'p', "{sql}: made unlogged");
    }
    p.stop().await;
}

/// The pre-check is invisible in a psql session with a count-everything policy: notices of
/// cascaded rows' triggers, RETURNING rows, the server's own errors (MERGE … RETURNING is a
/// syntax error on PostgreSQL 15), EXPLAIN ANALYZE of WHERE CURRENT OF inside a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_statement_in_psql_is_invisible() {
    let policy = format!("{}\n[opaque]\nexplain_analyze = \"allow\"\n", crate::batches::COUNT_ALL);
    let proxy = crate::batches::proxy_for(&policy).await;
    let script = "\
BEGIN;
DELETE FROM parent WHERE id IN (21, 22);
MERGE INTO parent p USING (SELECT 23 AS id) s ON p.id = s.id WHEN MATCHED THEN UPDATE SET v = 1 RETURNING p.id;
SELECT 1;
ROLLBACK;
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM parent WHERE id = 30 FOR UPDATE;
FETCH c;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) UPDATE parent SET v = 2 WHERE CURRENT OF c;
SELECT v FROM parent WHERE id = 30;
COMMIT;
DELETE FROM child WHERE id IN (1, 2) RETURNING id;
UPDATE parent SET v = v + 1 WHERE id < 5 RETURNING id, v;
";
    let (d1, d2) = (crate::batches::db(), crate::batches::db());
    let direct = psql(pg().server.port, "trust_user", "", &d1, &["-f", "-"], Some(script));
    let via = psql(proxy.port(), "trust_user", "", &d2, &["-f", "-"], Some(script));
    assert_eq!(via, direct, "through blastwall (left) and direct (right)");
    proxy.stop().await;
}
