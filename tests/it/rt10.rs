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
