//! Twenty-seventh adversarial pass M1 and L3, as `app` and a DBA through blastwall in enforce
//! mode with the shipped policies, the data checked on the server directly.
//! - M1: `setval('16387', …)` — the protected sequence given as its OID in a string, which the
//!   server's `regclass` input reads as an OID — moved `web_user_id_seq` past `forbid setval`.
//! - L3: `BEGIN; ALTER TABLE t RENAME …; COMMIT` in one Query, on a table no policy names, was
//!   refused as DDL that cannot run statement by statement, while `ADD COLUMN` ran.

use crate::harness::*;

async fn last_value(db: &str, seq: &str) -> i64 {
    count(db, &format!("SELECT last_value FROM {seq}")).await
}

/// M1: the protected sequence's OID as a string (with leading zeros, cast to `regclass`,
/// `pg_catalog.setval` with three arguments, prepared with PREPARE or the extended protocol) is
/// refused by `forbid-setval` and the sequence stands where it stood; another sequence's OID
/// still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_sequence_given_by_its_oid_in_a_string_is_refused() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE SEQUENCE public.other_seq; GRANT ALL ON public.other_seq TO app");
    let oid = count(&db, "SELECT 'public.web_user_id_seq'::regclass::oid::bigint").await;
    let other = count(&db, "SELECT 'public.other_seq'::regclass::oid::bigint").await;
    let before = last_value(&db, "web_user_id_seq").await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        format!("SELECT setval('{oid}', last_value + 999) FROM web_user_id_seq"),
        format!("SELECT setval('00{oid}', {before} + 500)"),
        format!("SELECT setval('{oid}'::regclass, {before} + 500)"),
        format!("SELECT pg_catalog.setval('{oid}', {before} + 500, true)"),
        format!("SELECT x FROM setval('{oid}', {before} + 500) x"),
    ] {
        let e = via.simple_query(&sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, "forbid-setval");
        assert!(m.contains("web_user_id_seq"), "{sql}: {m}");
        assert_eq!(last_value(&db, "web_user_id_seq").await, before, "{sql}: the sequence moved");
        // The extended protocol, judged the same.
        let e = via.query(&sql, &[]).await.err().unwrap_or_else(|| panic!("ran (extended): {sql}"));
        refused_by(&e, "forbid-setval");
        assert_eq!(last_value(&db, "web_user_id_seq").await, before, "{sql} (extended): the sequence moved");
    }
    // PREPARE is judged at its EXECUTE.
    via.simple_query(&format!("PREPARE mv AS SELECT setval('{oid}', {before} + 500)")).await.unwrap();
    let e = via.simple_query("EXECUTE mv").await.unwrap_err();
    refused_by(&e, "forbid-setval");
    assert_eq!(last_value(&db, "web_user_id_seq").await, before, "EXECUTE: the sequence moved");
    // Another sequence's OID, and an OID no relation has, are not the protected sequence.
    via.simple_query(&format!("SELECT setval('{other}', 42)")).await.unwrap();
    assert_eq!(last_value(&db, "other_seq").await, 42);
    let e = via.simple_query("SELECT setval('4000000000', 42)").await.unwrap_err();
    assert!(e.as_db_error().is_some_and(|d| !d.message().starts_with("blastwall")), "{e:?}");
    assert_eq!(last_value(&db, "web_user_id_seq").await, before);
    p.stop().await;
}
