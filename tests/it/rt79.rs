//! Seventy-ninth adversarial pass, as `app` through blastwall in enforce mode with the shipped
//! policies; every position read on the server directly.
//!
//! H1: values a counted statement in a client's block took through the session's own
//! temporary view, or a temporary table's default, over `nextval` — the text shows no call —
//! were put back under by the block's ROLLBACK (and handed out again: a signup failed on a
//! duplicate key). A kept move beyond the rows the write put into `users` is now taken as
//! values handed out.
//!
//! M1: the ROLLBACK was answered before its put-back ran, so a session connected directly
//! could take a value in between and keep the whole move (1 round in 3).

use crate::creep::position;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_taken_through_a_temporary_view_or_default_are_never_put_back_under() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute(
        "CREATE TEMP VIEW vv AS SELECT nextval('web_user_id_seq') AS v; \
         CREATE TEMP TABLE t (x int, v bigint DEFAULT nextval('web_user_id_seq'))",
    )
    .await
    .unwrap();
    let bulk = "INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)";
    let take = |sql: &'static str| {
        let via = &via;
        async move {
            let rows = via.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            rows[0].get::<_, i64>(0)
        }
    };
    for sql in ["SELECT v FROM vv", "INSERT INTO t (x) VALUES (1) RETURNING v"] {
        // Before the block's bulk insert: the ROLLBACK goes back down to the value, not under.
        via.batch_execute("BEGIN").await.unwrap();
        let id = take(sql).await;
        via.batch_execute(bulk).await.unwrap();
        via.batch_execute("ROLLBACK").await.unwrap();
        via.simple_query("SELECT 1").await.unwrap();
        assert_eq!(position(&db).await, id, "{sql}: never under the value handed out");
        // After it: the bulk insert's move lies under the value and stays.
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute(bulk).await.unwrap();
        let id = take(sql).await;
        via.batch_execute("ROLLBACK").await.unwrap();
        via.simple_query("SELECT 1").await.unwrap();
        assert_eq!(position(&db).await, id, "{sql}: never under the value handed out");
    }
    // A block of plain inserts alone still goes back whole.
    let start = position(&db).await;
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute(bulk).await.unwrap();
    via.batch_execute("ROLLBACK").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    assert_eq!(position(&db).await, start, "put back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_answered_once_its_put_back_ran() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let other = direct("app", APP_PW, &db).await;
    let read = other.prepare("SELECT last_value FROM web_user_id_seq").await.unwrap();
    for _ in 0..5 {
        let start = position(&db).await;
        via.batch_execute("BEGIN").await.unwrap();
        via.batch_execute("INSERT INTO users (auth_source) SELECT 'bulk' FROM generate_series(1, 2000)").await.unwrap();
        via.batch_execute("ROLLBACK").await.unwrap();
        // Read at once, directly: the put-back ran before the client heard ROLLBACK.
        let now: i64 = other.query_one(&read, &[]).await.unwrap().get(0);
        assert_eq!(now, start, "put back before the ROLLBACK was answered");
    }
}
