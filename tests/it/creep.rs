//! The creep budget of a protected sequence (sixty-ninth pass F2): statement after statement,
//! each moving `web_user_id_seq` less than one statement's allowance of 1,000 steps beyond
//! its rows, no longer moves it as far as one likes. Steps beyond the rows inserted are summed
//! over the table's window (`sequence_creep`, here 5,000 per hour) across statements, forms
//! (counted, a few calls as applications take ids, prepared and executed again) and sessions;
//! the statement that would go past it is refused and the sequence put back. Rows inserted
//! explain their steps. What neither can undo — a refused move after which another session
//! took a value — is left and logged. Every position is read directly on the server.

use crate::harness::*;

/// Where the sequence stands (`last_value`), read directly on the server.
pub(crate) async fn position(db: &str) -> i64 {
    count(db, "SELECT last_value FROM web_user_id_seq").await
}

/// The shipped policy with `users`' creep budget at `steps` per hour.
pub(crate) async fn proxy_with_creep(steps: u64) -> Proxy {
    let mut policy = shipped_policy();
    let users = policy.tables.iter_mut().find(|t| t.name == "users").expect("users");
    users.creep = blastwall::policy::Creep { steps, window_secs: 3600 };
    proxy_with(base_config(), policy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_each_under_the_allowance_stop_at_the_creep_budget_and_are_put_back() {
    let db = incident_db();
    let p = proxy_with_creep(5000).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    // 900 calls each, under one statement's allowance: five fit in 5,000 steps.
    let many = "SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 900)";
    for i in 0..5 {
        via.simple_query(many).await.unwrap_or_else(|e| panic!("statement {i}: {e:?}"));
    }
    assert_eq!(position(&db).await, start + 4500);
    // The sixth would take it to 5,400: refused, and the sequence put back.
    let e = via.simple_query(many).await.expect_err("past the creep budget");
    let m = refused_by(&e, "identity");
    assert!(m.contains("4500 such steps were taken in the last 1h"), "{m}");
    assert!(m.contains("sequence_creep = 5000"), "{m}");
    assert_eq!(position(&db).await, start + 4500, "put back");
    // A few calls at a time, as an application takes ids ahead, spend from the same budget,
    // in another session, and as a prepared statement executed again.
    let other = connect(p.port(), "app", APP_PW, &db).await;
    let hundred = format!("SELECT {}", vec!["nextval('web_user_id_seq')"; 100].join(", "));
    for i in 0..5 {
        other.simple_query(&hundred).await.unwrap_or_else(|e| panic!("hundred {i}: {e:?}"));
    }
    assert_eq!(position(&db).await, start + 5000);
    let e = other.simple_query(&hundred).await.expect_err("the budget is spent");
    refused_by(&e, "identity");
    let e = other.query_one("SELECT nextval('web_user_id_seq')", &[]).await.expect_err("prepared, one call");
    refused_by(&e, "identity");
    assert_eq!(position(&db).await, start + 5000, "nothing past the budget stays");
    // Rows inserted explain their steps: an import of 2,000 users spends nothing.
    via.simple_query("INSERT INTO users (auth_source) SELECT 'import' FROM generate_series(1, 2000)")
        .await
        .expect("inserted rows explain their ids");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE auth_source = 'import'").await, 2000);
    assert_eq!(position(&db).await, start + 7000);
    // … but an import whose rows are not kept explains nothing.
    let e = via
        .simple_query(
            "INSERT INTO users (auth_source) SELECT CASE WHEN g < 900 THEN 'x' END FROM generate_series(1, 900) g",
        )
        .await
        .expect_err("the last row fails");
    assert!(!format!("{e:?}").contains("blastwall"), "the server's own error: {e:?}");
    assert_eq!(position(&db).await, start + 7000, "put back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_taken_ahead_within_the_budget_are_relayed_as_the_server_answers() {
    let db = incident_db();
    let p = proxy_with_creep(10_000).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = position(&db).await;
    let oauth = "SELECT count(*) FROM users WHERE id < 0 AND auth_source = 'oauth'";
    let before = count(&db, oauth).await;
    // The incident's minter: an id taken ahead, then the row inserted with it.
    for i in 1..=20 {
        let id: i64 = via.query_one("SELECT nextval('web_user_id_seq')", &[]).await.unwrap().get(0);
        assert_eq!(id, start + i);
        via.execute("INSERT INTO users (id, auth_source) VALUES ($1, 'oauth')", &[&-id]).await.unwrap();
    }
    assert_eq!(position(&db).await, start + 20);
    assert_eq!(count(&db, oauth).await, before + 20);
}

/// Seventy-third pass H1, L1: what the creep budget and the put-back cannot undo. A refused
/// move after whose last call another session took a value is left where it stands (putting
/// it back would hand that value out again), and blastwall's log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_move_another_session_took_values_after_is_left_and_logged() {
    let db = incident_db();
    captured_logs();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let oid = count(&db, "SELECT 'web_user_id_seq'::regclass::oid::int8").await;
    let start = position(&db).await;
    // 5,000 calls (past the allowance), then a second in which the other session takes one.
    let slow = "WITH t AS MATERIALIZED (SELECT count(nextval('web_user_id_seq')) AS n FROM generate_series(1, 5000)) \
                SELECT n, pg_sleep(1) FROM t";
    let refused = tokio::spawn(async move { via.simple_query(slow).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let other = direct("app", APP_PW, &db).await;
    let taken: i64 = other.query_one("SELECT nextval('web_user_id_seq')", &[]).await.unwrap().get(0);
    let e = refused.await.unwrap().expect_err("past the allowance");
    refused_by(&e, "identity");
    assert_eq!(taken, start + 5001, "the other session's value comes after the statement's");
    assert_eq!(position(&db).await, start + 5001, "left: never put back under another session's value");
    let said = captured_logs();
    let line = said.lines().find(|l| l.contains("was left where it stands") && l.contains(&format!("sequence={oid}")));
    assert!(line.is_some(), "no log line about the move left in {db}:\n{said}");
}

/// Seventy-fifth pass H1: a SELECT without FROM runs its target list once per group, so one
/// written `nextval` under `GROUP BY GROUPING SETS ((), () …)` took 4,096 steps (100 written:
/// 409,600), relayed as "a few calls" and spent as one. Counted, it is judged by its real move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_sets_around_a_few_calls_are_judged_by_their_real_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
    let start = position(&db).await;
    // Twelve `GROUPING SETS ((), ())`: 2^12 groups.
    let sets = ["GROUPING SETS ((), ())"; 12].join(", ");
    for sql in [
        format!("SELECT nextval('web_user_id_seq') GROUP BY {sets} OFFSET 4095"),
        "SELECT nextval('web_user_id_seq') GROUP BY CUBE (1 + 0, 1 + 1, 1 + 2, 1 + 3, 1 + 4, 1 + 5, 1 + 6, 1 + 7, 1 + 8, 1 + 9, 1 + 10) OFFSET 2047"
            .to_string(),
    ] {
        let e = via.simple_query(&sql).await.expect_err(&sql);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back: {sql}");
        let e = via.query_one(sql.as_str(), &[]).await.expect_err("prepared too");
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back, prepared: {sql}");
    }
}

/// An id taken ahead by a prepared statement (Hibernate's and pgjdbc's sequence generators
/// prepare `SELECT nextval('…')` once and execute it for every id): each Execute spends its
/// known step from the creep budget and runs uncounted — counting it cost 6–7 ms an id —, in
/// a pipeline too, once a counted run learned the sequence's OID; the first past the budget
/// is counted, refused and put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_id_taken_ahead_spends_its_steps_at_each_execute_uncounted() {
    let db = incident_db();
    let p = proxy_with_creep(40).await;
    let checks = || p.shared.metrics.precheck_seconds.get_sample_count();
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let next = via.prepare("SELECT nextval('web_user_id_seq')").await.expect("prepared");
    let start = position(&db).await;
    let before = checks();
    // The first is counted: the reading around it learns the sequence's OID.
    let id: i64 = via.query_one(&next, &[]).await.unwrap().get(0);
    assert_eq!(id, start + 1);
    assert_eq!(checks(), before + 1, "the first is counted");
    for i in 2..=20 {
        let id: i64 = via.query_one(&next, &[]).await.unwrap().get(0);
        assert_eq!(id, start + i);
    }
    // Twenty more in one pipeline: the budget's last steps.
    let ids = futures_util::future::try_join_all((0..20).map(|_| via.query_one(&next, &[]))).await.unwrap();
    assert_eq!(ids.len(), 20);
    assert_eq!(position(&db).await, start + 40);
    assert_eq!(checks(), before + 1, "no later Execute was counted");
    // The forty-first does not fit: refused before it runs.
    let e = via.query_one(&next, &[]).await.expect_err("past the creep budget");
    let m = refused_by(&e, "identity");
    assert!(m.contains("sequence_creep = 40") && m.contains("has 0 steps left"), "{m}");
    assert_eq!(checks(), before + 1, "refused before it runs, uncounted");
    assert_eq!(position(&db).await, start + 40, "never moved");
    // Inside a block whose earlier write's move is remembered, it is counted, so that a
    // ROLLBACK puts the block's moves back from where it really left the sequence.
    let fresh = proxy_with_creep(10_000).await;
    let tx = connect(fresh.port(), "app", APP_PW, &db).await;
    let next = tx.prepare("SELECT nextval('web_user_id_seq')").await.expect("prepared");
    tx.batch_execute("BEGIN").await.unwrap();
    tx.execute("INSERT INTO users (auth_source) VALUES ('block')", &[]).await.unwrap();
    let counted = fresh.shared.metrics.precheck_seconds.get_sample_count();
    tx.query_one(&next, &[]).await.unwrap();
    assert!(fresh.shared.metrics.precheck_seconds.get_sample_count() > counted, "counted inside the block");
    tx.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE auth_source = 'block'").await, 0);
}

/// Seventy-eighth pass M2: a refused move left where it stands (another session took a value
/// after it: seventy-third pass H1) is charged to the creep budget, past it if need be. While
/// the window has no room, a statement that takes ids ahead is refused before it runs —
/// counted, few calls, prepared — so that sessions that together went past the budget once
/// (12 concurrent statements of 60 calls left +660 against 300) cannot do so again and again.
/// Rows inserted still go. Every position is read on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_left_where_it_stands_spends_the_budget_and_ids_ahead_wait_for_room() {
    let db = incident_db();
    let p = proxy_with_creep(3000).await;
    let prepared = connect(p.port(), "app", APP_PW, &db).await;
    let next = prepared.prepare("SELECT nextval('web_user_id_seq')").await.expect("prepared while there is room");
    let other = direct("app", APP_PW, &db).await;
    let start = position(&db).await;
    // 5,000 calls, then a second in which another session takes a value: refused, and left.
    let slow = "WITH t AS MATERIALIZED (SELECT count(nextval('web_user_id_seq')) AS n FROM generate_series(1, 5000)) \
                SELECT n, pg_sleep(1) FROM t";
    let round = || async {
        let via = connect(p.port(), "app", APP_PW, &db).await;
        let refused = tokio::spawn(async move { via.simple_query(slow).await });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let taken: i64 = other.query_one("SELECT nextval('web_user_id_seq')", &[]).await.unwrap().get(0);
        (taken, refused.await.unwrap().expect_err("refused"))
    };
    let (taken, e) = round().await;
    refused_by(&e, "identity");
    assert_eq!(taken, start + 5001, "the other session's value comes after the statement's");
    assert_eq!(position(&db).await, start + 5001, "left");
    // Again: now refused before it runs, so only the other session's value is taken.
    let (taken, e) = round().await;
    let m = refused_by(&e, "identity");
    assert!(m.contains("has 0 steps left") && m.contains("sequence_creep = 3000"), "{m}");
    assert_eq!(taken, start + 5002);
    assert_eq!(position(&db).await, start + 5002, "the refused statement moved nothing");
    // A few calls, a counted form, and a statement prepared before: each refused unmoved.
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in
        ["SELECT nextval('web_user_id_seq')", "SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 10)"]
    {
        let e = via.simple_query(sql).await.expect_err(sql);
        assert!(refused_by(&e, "identity").contains("has 0 steps left"), "{sql}");
    }
    let e = prepared.query_one(&next, &[]).await.expect_err("prepared");
    assert!(refused_by(&e, "identity").contains("has 0 steps left"));
    assert_eq!(position(&db).await, start + 5002, "nothing moved");
    // Rows that hold their ids still go.
    via.simple_query("INSERT INTO users (auth_source) VALUES ('after')").await.expect("an insert explains its id");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE auth_source = 'after'").await, 1);
    assert_eq!(position(&db).await, start + 5003);
}
