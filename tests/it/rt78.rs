//! Seventy-eighth adversarial pass H1, as `app` through blastwall in enforce mode with the
//! shipped policies (the creep budget lowered to 5,000 steps per hour); every position read
//! on the server directly. Moves left by writes that were not kept — a block rolled back, a
//! dry run — were neither put back (each within the slack of 1,000) nor spent from the creep
//! budget: `BEGIN; INSERT` of 1,000 users`; ROLLBACK`, again and again, moved the sequence
//! 100,000 steps in 8 s, and 100 dry runs of 999 users 99,900.
//!
//! H2: a value taken ahead after a block's own writes moved the sequence beyond the slack
//! lay under where the block's ROLLBACK put it back: 2,001 below an id another session had
//! used, and signups failed on duplicate keys.

use crate::creep::{position, proxy_with_creep};
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_blocks_spend_their_steps_and_past_the_budget_are_put_back_whole() {
    let db = incident_db();
    let p = proxy_with_creep(5000).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let users = count(&db, "SELECT count(*) FROM users").await;
    let start = position(&db).await;
    for i in 0..8 {
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute("INSERT INTO users (auth_source) SELECT 'x' FROM generate_series(1, 1000)")
            .await
            .unwrap_or_else(|e| panic!("block {i}: {e:?}"));
        via.batch_execute("ROLLBACK").await.unwrap();
        // The put-back runs at the session's next quiet point.
        via.simple_query("SELECT 1").await.unwrap();
    }
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, users, "no row kept");
    assert_eq!(position(&db).await, start + 5000, "five blocks' steps spent; the rest put back whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_keeps_none_of_its_steps() {
    let db = incident_db();
    let p = proxy_with_creep(5000).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    via.batch_execute("SET blastwall.mode = 'dry-run'").await.unwrap();
    for _ in 0..3 {
        let _ = via.simple_query("INSERT INTO users (auth_source) SELECT 'x' FROM generate_series(1, 999)").await;
    }
    assert_eq!(position(&db).await, start, "put back whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_taken_ahead_above_a_blocks_own_moves_is_refused_and_never_handed_out_again() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    // Within the slack, a rollback puts nothing back: taking an id ahead is safe.
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'x' FROM generate_series(1, 10)").await.unwrap();
    let id: i64 = via.query_one("SELECT nextval('web_user_id_seq')", &[]).await.expect("within the slack").get(0);
    via.batch_execute("COMMIT").await.unwrap();
    assert_eq!(id, start + 11);
    // Beyond it, in every form the server runs it.
    let start = position(&db).await;
    for sql in [
        "SELECT nextval('web_user_id_seq')",
        "SELECT nextval('web_user_id_seq') FROM (VALUES (1)) v",
        "SELECT max(nextval('web_user_id_seq')) FROM generate_series(1, 3)",
    ] {
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
        let e = via.query(sql, &[]).await.expect_err(sql);
        let m = refused_by(&e, "identity");
        assert!(m.contains("takes values of a protected sequence ahead"), "{m}");
        via.batch_execute("ROLLBACK").await.unwrap();
        via.simple_query("SELECT 1").await.unwrap();
        assert_eq!(position(&db).await, start, "put back, nothing handed out: {sql}");
    }
    // Prepared before the block (protocol and SQL), run after its bulk insert.
    let next = via.prepare("SELECT nextval('web_user_id_seq')").await.unwrap();
    via.batch_execute("PREPARE ahead AS SELECT nextval('web_user_id_seq')").await.unwrap();
    via.query_one(&next, &[]).await.expect("outside a block");
    let start = position(&db).await;
    for (i, prepared) in ["protocol", "sql"].into_iter().enumerate() {
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
        let e = match i {
            0 => via.query_one(&next, &[]).await.map(|_| ()).expect_err(prepared),
            _ => via.batch_execute("EXECUTE ahead").await.expect_err(prepared),
        };
        let m = refused_by(&e, "identity");
        assert!(m.contains("takes values of a protected sequence ahead"), "{prepared}: {m}");
        via.batch_execute("ROLLBACK").await.unwrap();
        via.simple_query("SELECT 1").await.unwrap();
        assert_eq!(position(&db).await, start, "put back, nothing handed out: {prepared}");
    }
    // A portal bound before the bulk insert, executed after it.
    let mut via = via;
    let tx = via.transaction().await.unwrap();
    let portal = tx.bind(&next, &[]).await.unwrap();
    tx.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
    let e = tx.query_portal(&portal, 0).await.expect_err("a portal bound before");
    let m = refused_by(&e, "identity");
    assert!(m.contains("takes values of a protected sequence ahead"), "{m}");
    tx.rollback().await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start, "put back, nothing handed out: a portal");
}

/// Checked after the pass: a cursor over `nextval` declared before the block's bulk insert
/// runs its query at each FETCH, after the insert: the values it returned lay under where the
/// ROLLBACK put the sequence back. Read after the block's moves went beyond the slack, it is
/// refused like a `SELECT nextval(…)` there; before them (and outside such a block) it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_a_cursor_over_nextval_declared_before_a_blocks_bulk_insert_is_refused() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    for read in ["FETCH 1 FROM ids", "FETCH ALL IN ids", "MOVE FORWARD 3 IN ids"] {
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute("DECLARE ids CURSOR FOR SELECT nextval('web_user_id_seq') FROM generate_series(1, 5)")
            .await
            .unwrap();
        via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
        let e = via.simple_query(read).await.expect_err(read);
        let m = refused_by(&e, "identity");
        assert!(m.contains("takes values of a protected sequence ahead"), "{read}: {m}");
        via.batch_execute("ROLLBACK").await.unwrap();
        via.simple_query("SELECT 1").await.unwrap();
        assert_eq!(position(&db).await, start, "put back, nothing handed out: {read}");
    }
    // Values handed out before the bulk insert (read from a cursor, or taken by a counted
    // SELECT) go, and the ROLLBACK puts the sequence back only down to where they end.
    via.batch_execute("BEGIN").await.unwrap();
    let taken = via.simple_query("SELECT nextval('web_user_id_seq') FROM generate_series(1, 3)").await.unwrap();
    assert_eq!(taken.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count(), 3);
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
    via.batch_execute("ROLLBACK").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start + 3, "never under the three values handed out");
    let start = start + 3;
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute(
        "DECLARE ids CURSOR FOR SELECT nextval('web_user_id_seq') FROM generate_series(1, 5); \
         DECLARE names CURSOR FOR SELECT auth_source FROM users",
    )
    .await
    .unwrap();
    let rows = via.simple_query("FETCH 2 FROM ids").await.expect("before the block's bulk insert");
    assert_eq!(rows.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count(), 2);
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
    via.simple_query("FETCH 1 FROM names").await.expect("a cursor that takes no values");
    via.batch_execute("ROLLBACK").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start + 2, "the two values read stay taken");
}

/// Checked after the pass: a function that returns `nextval` values, called before the
/// block's bulk insert, handed them out; the ROLLBACK put the sequence back under them. A
/// statement that runs code of its own may hand out what it took: the put-back goes down to
/// where it left the sequence at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_a_function_returned_before_a_blocks_bulk_insert_are_never_handed_out_again() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.take_ids(n int) RETURNS SETOF bigint LANGUAGE sql AS \
         $$ SELECT nextval('web_user_id_seq') FROM generate_series(1, n) $$; \
         GRANT EXECUTE ON FUNCTION public.take_ids(int) TO app;",
    );
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    via.batch_execute("BEGIN").await.unwrap();
    let ids: Vec<i64> = via.query("SELECT take_ids(4)", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, (start + 1..=start + 4).collect::<Vec<_>>());
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
    via.batch_execute("ROLLBACK").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start + 4, "never under the values the function returned");
    // Called after the bulk insert, the bulk's move lies under them: it stays, charged.
    let start = start + 4;
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
    let ids: Vec<i64> = via.query("SELECT take_ids(2)", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [start + 2001, start + 2002]);
    via.batch_execute("ROLLBACK").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start + 2002, "never under the values the function returned");
}
