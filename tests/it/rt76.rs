//! Seventy-sixth adversarial pass (the protected sequence, ids taken ahead), as `app` through
//! blastwall in enforce mode with the shipped policies; every position read on the server
//! directly.
//! - H1, M1: the server copies the left operand of `BETWEEN` (twice; `SYMMETRIC` four times)
//!   and of an `IN` list: one written `nextval` under ten nested `NOT BETWEEN SYMMETRIC` ran
//!   1,048,576 times, relayed as one call. The same for `(expr).*` of a composite (found
//!   after the pass: once per column).
//! - H2: a protocol statement's name deallocated by SQL (`DEALLOCATE`, `DISCARD ALL`) and
//!   prepared again by SQL `PREPARE`: Binds of it ran the new statement under the old plan.
//! - H3, H4: user code beside a few calls — a cast to a domain whose CHECK calls a function, an
//!   operator of the session's own — was counted, but a SELECT of a few calls was trusted to
//!   move the sequence by its calls alone: 20,000 steps per written call were kept.

use crate::creep::position;
use crate::harness::*;

/// H1, M1: judged by what they really move: far past one statement's allowance, refused and
/// put back; a few copies spend what they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nextval_copied_by_between_or_in_is_judged_by_its_real_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
    // Six nested `NOT BETWEEN SYMMETRIC` whose every copy runs: 4^6 = 4,096 calls.
    let mut sql = "(nextval('web_user_id_seq') NOT BETWEEN SYMMETRIC 0 AND 1)".to_string();
    for _ in 1..6 {
        sql = format!("({sql} NOT BETWEEN SYMMETRIC false AND false)");
    }
    let sql = format!("SELECT {sql}");
    let start = position(&db).await;
    let e = via.simple_query(&sql).await.expect_err("4,096 calls");
    refused_by(&e, "identity");
    assert_eq!(position(&db).await, start, "put back");
    let e = via.query_one(sql.as_str(), &[]).await.expect_err("prepared too");
    refused_by(&e, "identity");
    assert_eq!(position(&db).await, start, "put back, prepared");
    // One `BETWEEN SYMMETRIC`: four steps, kept (within the allowance and the budget).
    via.simple_query("SELECT nextval('web_user_id_seq') BETWEEN SYMMETRIC 0 AND 1").await.expect("four steps");
    assert_eq!(position(&db).await, start + 4);
    // `(expr).*` of a composite the planner cannot take apart: once per column, 1,200 here.
    let columns: Vec<String> = (1..=1200).map(|i| format!("c{i} bigint")).collect();
    via.batch_execute(&format!("CREATE TEMP TABLE wide ({})", columns.join(", "))).await.unwrap();
    let values = std::iter::once("nextval('web_user_id_seq')".to_string()).chain((2..=1200).map(|i| i.to_string()));
    let star = format!("SELECT (COALESCE(ROW({})::wide, NULL)).*", values.collect::<Vec<_>>().join(", "));
    let e = via.simple_query(&star).await.expect_err("1,200 calls");
    refused_by(&e, "identity");
    assert_eq!(position(&db).await, start + 4, "put back");
}

/// H2: after `DEALLOCATE` (or `DISCARD ALL`) and a `PREPARE` of the same name, a protocol Bind
/// of it is judged by the statement SQL prepared: counted, refused and put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_again_by_sql_under_a_protocol_name_is_judged_by_its_text() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for forget in ["DEALLOCATE {}", "DEALLOCATE ALL", "DISCARD ALL"] {
        let next = via.prepare("SELECT nextval('web_user_id_seq')").await.expect("prepared");
        via.query_one(&next, &[]).await.expect("an id taken ahead");
        let name: String = via
            .query_one(
                "SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT nextval(''web_user_id_seq'')'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let forget = forget.replace("{}", &name);
        via.batch_execute(&forget).await.unwrap();
        let again =
            format!("PREPARE {} AS SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 20000)", name);
        via.batch_execute(&again).await.unwrap();
        let start = position(&db).await;
        let e = via.query_one(&next, &[]).await.expect_err(&forget);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back after {forget}");
        via.batch_execute(&format!("DEALLOCATE {name}")).await.unwrap();
    }
}

/// H3, H4: a few written calls beside user code the session made — a cast to a temporary
/// domain whose CHECK calls a function that takes 20,000 values (or sets the sequence back into
/// the incident's window), an operator of its own — are judged by what they moved: refused
/// and put back, as Query and prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_code_beside_a_few_calls_is_judged_by_its_real_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute(
        "CREATE FUNCTION pg_temp.chk(bigint) RETURNS boolean LANGUAGE sql AS \
         $$ SELECT pg_catalog.count(pg_catalog.nextval('public.web_user_id_seq')) > 0 FROM pg_catalog.generate_series(1, 20000) $$; \
         CREATE DOMAIN pg_temp.d AS bigint CHECK (pg_temp.chk(value)); \
         CREATE FUNCTION pg_temp.neg(bigint) RETURNS bigint LANGUAGE sql AS \
         $$ SELECT pg_catalog.count(pg_catalog.nextval('public.web_user_id_seq')) FROM pg_catalog.generate_series(1, 20000) $$; \
         CREATE OPERATOR pg_temp.- (rightarg = bigint, function = pg_temp.neg)",
    )
    .await
    .expect("the session's own code");
    via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
    for sql in [
        "SELECT nextval('web_user_id_seq')::pg_temp.d",
        "SELECT nextval('web_user_id_seq')::pg_temp.d, nextval('web_user_id_seq')::pg_temp.d",
        "SELECT OPERATOR(pg_temp.-) nextval('web_user_id_seq')",
    ] {
        let start = position(&db).await;
        let e = via.simple_query(sql).await.expect_err(sql);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back: {sql}");
        let e = via.query_one(sql, &[]).await.expect_err(sql);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back, prepared: {sql}");
    }
}

/// FP1: in a database with a domain whose CHECK calls a function, asyncpg's Parse, Describe,
/// Flush of `SELECT nextval(…)` (and psycopg's pipeline of them) was refused: a statement
/// counted for its calls alone was taken for one that may make such a type, so its batch's
/// Parse had to be alone. The ids come as directly, one step each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_taken_ahead_by_drivers_pass_beside_a_domain_that_calls_a_function() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.is_email(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 LIKE '%@%' $$; \
         CREATE DOMAIN public.email_t AS text CHECK (public.is_email(value))",
    );
    let p = proxy().await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ids_ahead.py");
    let start = position(&db).await;
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(p.port().to_string())
        .arg(&db)
        .arg(APP_PW)
        .output()
        .await
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "asyncpg [0, 1, 2, 3, 4, 5, 6]\npsycopg [0, 1, 2, 3, 4]\n");
    assert_eq!(position(&db).await, start + 12);
}

/// H4's re-plan: a statement prepared under the default path, executed again after `SET
/// search_path` puts the session's own schema before `pg_catalog`, is planned again by the
/// server onto the schema's operator; its Bind is judged again there: refused and put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_call_planned_again_onto_the_sessions_operator_is_judged_by_its_real_move() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE SCHEMA own AUTHORIZATION app");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute(
        "CREATE FUNCTION own.neg(bigint) RETURNS bigint LANGUAGE sql AS \
         $$ SELECT pg_catalog.count(pg_catalog.nextval('public.web_user_id_seq')) FROM pg_catalog.generate_series(1, 20000) $$; \
         CREATE OPERATOR own.- (rightarg = bigint, function = own.neg)",
    )
    .await
    .expect("the role's own schema");
    let next = via.prepare("SELECT -nextval('web_user_id_seq')").await.expect("prepared");
    for _ in 0..2 {
        via.query_one(&next, &[]).await.expect("an id taken ahead");
    }
    via.batch_execute("SET search_path = own, pg_catalog, public").await.unwrap();
    let start = position(&db).await;
    let r = via.query_one(&next, &[]).await;
    let moved = position(&db).await - start;
    let e = r.expect_err(&format!("planned onto own.- (moved {moved})"));
    refused_by(&e, "identity");
    assert_eq!(moved, 0, "put back");
}
