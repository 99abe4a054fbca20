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

async fn exists(db: &str, relation: &str) -> bool {
    count(db, &format!("SELECT count(*) FROM pg_class WHERE oid = to_regclass('{relation}')")).await == 1
}

async fn has_column(db: &str, table: &str, column: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('{table}') AND attname = '{column}' \
         AND NOT attisdropped"
    );
    count(db, &sql).await == 1
}

/// L3: `BEGIN; ALTER TABLE … RENAME …; COMMIT` as one Query runs statement by statement, as
/// `ADD COLUMN` does, on a table no policy names (renamed on the server; a ROLLBACK in it undoes
/// its rename); a rename of `users` (`forbid rename`) or of its protected column is still
/// refused, and the server keeps its names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_in_a_one_query_transaction_runs_as_add_column_does() {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE TABLE public.t_fp (a int); ALTER TABLE public.t_fp OWNER TO app");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("BEGIN; ALTER TABLE t_fp ADD COLUMN b int; COMMIT").await.unwrap();
    assert!(has_column(&db, "public.t_fp", "b").await);
    via.simple_query("BEGIN; ALTER TABLE t_fp RENAME TO t_fp2; COMMIT").await.unwrap();
    assert!(exists(&db, "public.t_fp2").await && !exists(&db, "public.t_fp").await);
    via.simple_query("BEGIN; ALTER TABLE t_fp2 RENAME COLUMN b TO c; COMMIT").await.unwrap();
    assert!(has_column(&db, "public.t_fp2", "c").await && !has_column(&db, "public.t_fp2", "b").await);
    via.simple_query("BEGIN; ALTER TABLE t_fp2 RENAME TO t_fp3; ROLLBACK").await.unwrap();
    assert!(exists(&db, "public.t_fp2").await && !exists(&db, "public.t_fp3").await);
    for sql in [
        "BEGIN; ALTER TABLE users RENAME TO users_old; COMMIT",
        "BEGIN; ALTER TABLE users RENAME COLUMN id TO uid; COMMIT",
        "BEGIN; ALTER TABLE t_fp2 RENAME TO t_fp; ALTER TABLE users RENAME TO users_old; COMMIT",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "forbid-rename");
        assert!(exists(&db, "public.users").await && !exists(&db, "public.users_old").await, "{sql}");
        assert!(has_column(&db, "public.users", "id").await, "{sql}");
        assert!(exists(&db, "public.t_fp2").await, "{sql}");
    }
    // The session is usable after the refusals.
    via.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

/// L1: after `CREATE TEMP SEQUENCE web_user_id_seq`, `setval('web_user_id_seq', …)` in a Query
/// is the temporary sequence's (the session's temporary schema comes first) and runs (a
/// protocol Parse, resolved again at each run, is still judged by the name); with a path
/// that puts `public` first, after the temporary sequence is dropped, or in the message that
/// drops it, the name is the protected sequence's and is refused. The protected sequence never
/// moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setval_of_a_temporary_sequence_named_like_the_protected_one_runs() {
    let db = incident_db();
    let before = last_value(&db, "web_user_id_seq").await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("CREATE TEMP SEQUENCE web_user_id_seq").await.unwrap();
    for sql in ["SELECT setval('web_user_id_seq', 5)", "SELECT pg_catalog.setval('WEB_USER_ID_SEQ', 5, true)"] {
        via.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let temp: i64 = via.query_one("SELECT last_value FROM pg_temp.web_user_id_seq", &[]).await.unwrap().get(0);
        assert_eq!(temp, 5, "{sql}");
        assert_eq!(last_value(&db, "web_user_id_seq").await, before, "{sql}");
    }
    // A protocol Parse is resolved again at each run: judged as every sequence the name may be.
    let e = via.query_one("SELECT setval('web_user_id_seq', 6)", &[]).await.unwrap_err();
    refused_by(&e, "forbid-setval");
    let refused = [
        "SET search_path = public, pg_temp; SELECT setval('web_user_id_seq', 7)",
        "DROP SEQUENCE pg_temp.web_user_id_seq; SELECT setval('web_user_id_seq', 7)",
    ];
    for sql in refused {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "forbid-setval");
        assert_eq!(last_value(&db, "web_user_id_seq").await, before, "{sql}");
    }
    via.simple_query("SET search_path = public, pg_temp").await.unwrap();
    let e = via.simple_query("SELECT setval('web_user_id_seq', 7)").await.unwrap_err();
    refused_by(&e, "forbid-setval");
    via.simple_query("RESET search_path").await.unwrap();
    via.simple_query("SELECT setval('web_user_id_seq', 8)").await.unwrap();
    via.simple_query("DROP SEQUENCE pg_temp.web_user_id_seq").await.unwrap();
    let e = via.simple_query(&format!("SELECT setval('web_user_id_seq', {before} + 5)")).await.unwrap_err();
    refused_by(&e, "forbid-setval");
    assert_eq!(last_value(&db, "web_user_id_seq").await, before);
    p.stop().await;
}
