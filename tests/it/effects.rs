//! Effects the text does not show, counted and refused: a trigger on another table that
//! deletes protected rows, a rule that does, rows deleted through an inheritance child's
//! parent, and the paths where counting is impossible (`track_counts` off in the same message,
//! COPY FROM STDIN beside a write) failing closed. Every outcome is checked directly on the
//! server, not through blastwall.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

/// users: 3 deletes at most (its cascades are limited too: web_messages 12).
const LIMITS: &str = r#"
[defaults]
mode = "enforce"

[opaque]
functions = "allow"

[[table]]
name = "public.users"
protected_columns = ["id"]
max_delete_rows = 3
max_update_rows = 2

[[table]]
name = "public.web_messages"
max_delete_rows = 12

[[table]]
name = "public.archive"
max_delete_rows = 5

[[table]]
name = "public.events"
max_delete_rows = 5
"#;

async fn limited() -> Proxy {
    proxy_with(base_config(), compile(&[(Path::new("limits.toml"), LIMITS)]).unwrap()).await
}

async fn users(db: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0)
}

fn refused(e: &tokio_postgres::Error) -> String {
    let m = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(m.starts_with("blastwall: refused"), "{e:?}");
    m
}

/// A trigger on an unprotected table deletes users: the write that fires it is counted and
/// refused, and no user is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_that_deletes_protected_rows_is_counted_and_refused() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE jobs (id int PRIMARY KEY, done bool); INSERT INTO jobs VALUES (1, false); \
         CREATE FUNCTION purge() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN DELETE FROM users WHERE plan = 'premium'; RETURN NEW; END $$; \
         CREATE TRIGGER purge AFTER UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION purge(); \
         GRANT ALL ON jobs TO app;",
    );
    let before = users(&db).await;
    let p = limited().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = via.simple_query("UPDATE jobs SET done = true WHERE id = 1").await.unwrap_err();
    let m = refused(&e);
    assert!(m.contains("public.users"), "{m}");
    assert_eq!(users(&db).await, before, "the trigger's deletes were rolled back");
    p.stop().await;
}

/// A rule turns an UPDATE of an unprotected table into a DELETE of users: refused, data kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_deletes_protected_rows_is_counted_and_refused() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE flags (id int PRIMARY KEY, v int); INSERT INTO flags VALUES (1, 0); \
         CREATE RULE wipe AS ON UPDATE TO flags DO ALSO DELETE FROM users WHERE plan = 'premium'; \
         GRANT ALL ON flags TO app;",
    );
    let before = users(&db).await;
    let p = limited().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = via.simple_query("UPDATE flags SET v = 1 WHERE id = 1").await.unwrap_err();
    let m = refused(&e);
    assert!(m.contains("public.users"), "{m}");
    assert_eq!(users(&db).await, before, "the rule's deletes were rolled back");
    p.stop().await;
}

/// Rows of an inheritance child (or a partition) deleted through the policy table count
/// against the policy table's limit — with only per-table limits (the limited tables are read)
/// and with `[defaults]` limits (every table is read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_children_count_against_their_policy_table() {
    let with_defaults = LIMITS.replace("mode = \"enforce\"", "mode = \"enforce\"\nmax_delete_rows = 1000");
    for (name, policy) in [("per-table", LIMITS.to_string()), ("defaults", with_defaults)] {
        let db = fresh_db("effects_children");
        admin_sql(
            pg(),
            &db,
            "CREATE TABLE archive (id int, k int); \
             CREATE TABLE archive_2025 () INHERITS (archive); \
             CREATE TABLE archive_2026 () INHERITS (archive_2025); \
             INSERT INTO archive_2025 SELECT g, 1 FROM generate_series(1, 4) g; \
             INSERT INTO archive_2026 SELECT g, 1 FROM generate_series(5, 8) g; \
             CREATE TABLE events (id int, k int) PARTITION BY RANGE (id); \
             CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (5); \
             CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (5) TO (100); \
             INSERT INTO events SELECT g, 1 FROM generate_series(1, 8) g; \
             CREATE TABLE users (id int); ANALYZE; \
             GRANT ALL ON ALL TABLES IN SCHEMA public TO app;",
        );
        let p = proxy_with(base_config(), compile(&[(Path::new("limits.toml"), policy.as_str())]).unwrap()).await;
        let via = connect(p.port(), "app", APP_PW, &db).await;
        let c = direct("postgres", SUPERUSER_PW, &db).await;
        // 8 rows, 4 in a child and 4 in a grandchild (inheritance), or 4 in each partition:
        // each alone is within 5, the policy table is not.
        for table in ["archive", "events"] {
            let e = via.simple_query(&format!("DELETE FROM {table} WHERE k = 1")).await.unwrap_err();
            let m = refused(&e);
            assert!(m.contains(&format!("public.{table}")), "{name}: {m}");
            let n: i64 = c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
            assert_eq!(n, 8, "{name}: nothing was deleted from {table}");
            // Within the limit, through the children, is kept.
            via.simple_query(&format!("DELETE FROM {table} WHERE id <= 2 OR id = 8")).await.unwrap();
            let n: i64 = c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
            assert_eq!(n, 5, "{name}: {table}");
        }
        p.stop().await;
    }
}

/// `track_counts` switched off in the same message as a write: the write cannot be counted,
/// so it is refused, and nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_counts_off_fails_closed() {
    let db = incident_db();
    let before = users(&db).await;
    let p = limited().await;
    let via = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    for sql in [
        "SET track_counts = off; DELETE FROM users WHERE plan = 'premium'",
        "SELECT pg_catalog.set_config('track_counts', 'off', true); DELETE FROM users WHERE plan = 'premium'",
    ] {
        let e = via.simple_query(sql).await.unwrap_err();
        refused(&e);
        assert_eq!(users(&db).await, before, "{sql}");
    }
    // Off for the session, then a write of its own: refused as unverifiable.
    via.simple_query("SET track_counts = off").await.unwrap();
    let e = via.simple_query("DELETE FROM users WHERE plan = 'premium'").await.unwrap_err();
    let m = refused(&e);
    assert!(m.contains("track_counts"), "{m}");
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// COPY … FROM STDIN in the same message as a write to count: refused, the table unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_beside_a_write_fails_closed() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE TABLE staging (id int); GRANT ALL ON staging TO app;");
    let before = users(&db).await;
    let p = limited().await;
    let (ok, _out, err) = psql(
        p.port(),
        "app",
        APP_PW,
        &db,
        &["-c", "DELETE FROM users WHERE plan = 'premium' \\; COPY staging FROM STDIN"],
        Some("1\n2\n\\.\n"),
    );
    assert!(!ok || err.contains("blastwall: refused"), "{err}");
    assert!(err.contains("blastwall: refused"), "{err}");
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// Row limits apply per statement in a Query of several writes without BEGIN/COMMIT too (the
/// same as with them): four one-user DELETEs (4 users and 24 messages in all, over the limits
/// of 3 and 12) run, each within its limits; a Query whose second statement alone is over its
/// limit is refused whole, its first statement undone with it. Checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_apply_per_statement_in_a_query_of_several_writes() {
    let db = incident_db();
    let before = users(&db).await;
    let p = limited().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let four =
        (1..=4).map(|i| format!("DELETE FROM users WHERE id = {}", 1_000_000 + i)).collect::<Vec<_>>().join("; ");
    let r = via.simple_query(&four).await.unwrap_or_else(|e| panic!("{four}: {e:?}"));
    let done = r.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(1))).count();
    assert_eq!(done, 4, "{r:?}");
    assert_eq!(users(&db).await, before - 4);
    let e = via
        .simple_query(
            "DELETE FROM users WHERE id = 1000005; DELETE FROM users WHERE id IN (1000006, 1000007, 1000008, 1000009)",
        )
        .await
        .unwrap_err();
    let m = refused(&e);
    assert!(m.contains("4 rows") || m.contains("4 deleted"), "{m}");
    assert_eq!(users(&db).await, before - 4, "the first statement is undone with the refused one");
    // The session goes on.
    via.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}
