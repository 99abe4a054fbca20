//! Red-team pass 10's findings, each reproduced as its attacker sent it and checked on the
//! server directly: `SET UNLOGGED` of a policy table (M1), writes a server-side connection runs
//! in another backend (`dblink`, H1), and two-phase commit in a session with a temporary
//! table (M2).

use crate::harness::*;

/// The persistence of `rel` as the server has it (`p` logged, `u` unlogged), asked directly.
async fn persistence(db: &str, rel: &str) -> String {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let sql = format!("SELECT relpersistence::text FROM pg_class WHERE oid = '{rel}'::regclass");
    c.query_one(&sql, &[]).await.unwrap().get(0)
}

/// M1: an unlogged table is emptied by crash recovery and on every replica: `SET UNLOGGED` of a
/// policy table (and an unlogged child or partition of one) is refused like a truncation; the
/// same of a table no policy names runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_unlogged_of_a_policy_table_is_refused() {
    let db = incident_db();
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for sql in [
        "ALTER TABLE web_messages SET UNLOGGED",
        "ALTER TABLE IF EXISTS public.web_messages SET UNLOGGED",
        "ALTER TABLE web_messages ADD COLUMN note text, SET UNLOGGED",
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        let m = refused_by(&e, "unlogged");
        assert!(m.contains("public.web_messages"), "{m}");
    }
    assert_eq!(persistence(&db, "public.web_messages").await, "p");
    let e = c
        .batch_execute("CREATE UNLOGGED TABLE wm_more () INHERITS (web_messages)")
        .await
        .expect_err("an unlogged child");
    refused_by(&e, "unlogged");
    assert_eq!(count(&db, "SELECT count(*) FROM pg_class WHERE relname = 'wm_more'").await, 0);
    // A table no policy names may be made unlogged.
    c.batch_execute("CREATE TABLE scratch (v int); ALTER TABLE scratch SET UNLOGGED").await.unwrap();
    assert_eq!(persistence(&db, "public.scratch").await, "u");
    proxy.stop().await;
}

/// A database with the incident's schema and `dblink`, and the connection string that makes
/// the server connect to itself as `app` (dblink asks a password of a non-superuser).
fn dblink_db() -> (String, String) {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE EXTENSION dblink");
    let loopback = format!("host=127.0.0.1 port={} dbname={db} user=app password={APP_PW}", pg().server.port);
    (db, loopback)
}

/// H1: `dblink_exec` runs its SQL in a backend the server opened to itself: the pre-check's
/// counters (the client's backend) see nothing and that backend commits on its own. Calls of
/// dblink's functions — direct, through a view, a function wrapping one, a row source — are
/// refused as unverifiable; the rows stay on the server. Built-ins still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dblink_writes_in_another_session_are_refused() {
    let (db, loopback) = dblink_db();
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    owner
        .batch_execute(&format!(
            "SET ROLE app; \
             CREATE VIEW wipe AS SELECT dblink_exec('{loopback}', 'DELETE FROM web_messages') AS r; \
             CREATE FUNCTION quiet() RETURNS text LANGUAGE plpgsql AS \
               $$BEGIN RETURN dblink_exec('{loopback}', 'DELETE FROM chat_sessions'); END$$;"
        ))
        .await
        .unwrap();
    let before = snapshot(&owner).await;
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let users = "'DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100'";
    for sql in [
        format!("SELECT dblink_exec('{loopback}', {users})"),
        format!("SELECT public.dblink_exec('{loopback}', 'DELETE FROM users')"),
        format!("SELECT * FROM dblink('{loopback}', 'DELETE FROM users RETURNING id') AS t(id bigint)"),
        format!("SELECT dblink_connect('x', '{loopback}'), dblink_send_query('x', 'DELETE FROM users')"),
        "SELECT * FROM wipe".to_string(),
        "SELECT quiet()".to_string(),
    ] {
        let e = c.simple_query(&sql).await.expect_err(&sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains("(dblink.") && m.contains("in another session"), "{sql}: {m}");
        // The extended protocol is judged the same.
        let e = c.query(&sql, &[]).await.expect_err(&sql);
        refused_by(&e, "unverifiable");
    }
    // Nothing was deleted, by this session or another.
    assert_eq!(snapshot(&owner).await, before);
    // Well-known built-ins are not calls of code blastwall cannot see.
    c.simple_query("SELECT upper('x'), now()").await.unwrap();
    proxy.stop().await;
}
