//! Seventy-fourth pass H1: the protected sequence renamed (on the server, by its owner) lost
//! every rule — `setval('seq2', …)` set it back into the incident's window, `setval` of its
//! OID as text too, and 5,000 `nextval` calls went uncounted. A sequence is now one by what it
//! feeds as well as by its listed name (a protected column's default takes from it), and the
//! pre-check reads it by that dependency and by the OID it learned. Every position is read
//! directly on the server.

use crate::harness::*;

async fn position(db: &str) -> i64 {
    count(db, "SELECT last_value FROM seq2").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_sequence_renamed_on_the_server_keeps_its_rules() {
    // Renamed before blastwall ever read it (nothing learned) and after (its OID learned).
    for learned_first in [false, true] {
        let db = incident_db();
        let p = proxy().await;
        let via = connect(p.port(), "app", APP_PW, &db).await;
        if learned_first {
            via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
        }
        admin_sql(pg(), &db, "ALTER SEQUENCE web_user_id_seq RENAME TO seq2; GRANT UPDATE ON seq2 TO app");
        let start = position(&db).await;
        let oid = count(&db, "SELECT 'seq2'::regclass::oid::int8").await;
        for sql in [
            "SELECT setval('seq2', 91111101)".to_string(),
            format!("SELECT setval('{oid}', 91111101)"),
            "SELECT setval('public.seq2', 95000000)".to_string(),
        ] {
            let e = via.simple_query(&sql).await.expect_err(&sql);
            let m = refused_by(&e, "forbid-setval");
            assert!(m.contains("feeding a protected column"), "{sql}: {m}");
        }
        assert_eq!(position(&db).await, start, "learned first: {learned_first}");
        let e = via
            .simple_query("SELECT count(nextval('seq2')) FROM generate_series(1, 5000)")
            .await
            .expect_err("past the allowance");
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back (learned first: {learned_first})");
        // An id taken ahead by the new name, and a row inserted by the default, still run.
        via.simple_query("SELECT nextval('seq2')").await.expect("an id");
        via.simple_query("INSERT INTO users (auth_source) VALUES ('oauth')").await.expect("a signup");
        assert_eq!(position(&db).await, start + 2);
        // Another sequence is not one.
        via.simple_query("SELECT setval('subscriptions_id_seq', 1000)").await.expect("not protected");
        p.stop().await;
    }
}

/// Seventy-fourth pass FP2: `SET ROLE` to a role that may not read the protected sequence, in
/// a database with the role's own schema (so the change of `"$user"` is counted), was refused
/// as a move of the sequence "to unreadable": the reading after it runs as the new role.
/// Settings alone move nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_role_to_a_role_that_cannot_read_the_sequence_runs() {
    let db = incident_db();
    let tenant = format!("tenant_{}", std::process::id());
    admin_sql(
        pg(),
        &db,
        &format!(
            "DO $$ BEGIN CREATE ROLE {tenant}; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT {tenant} TO trust_user; \
             CREATE SCHEMA {tenant} AUTHORIZATION {tenant}; \
             CREATE TABLE {tenant}.users (id bigint PRIMARY KEY, email text); \
             ALTER TABLE {tenant}.users OWNER TO {tenant}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO trust_user; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO trust_user"
        ),
    );
    let p = proxy().await;
    // A role with DML only, as an application's (the tables are app's).
    let via = connect(p.port(), "trust_user", "", &db).await;
    // `BEGIN` as a message of its own (with `SET LOCAL` in the same Query, a counted message
    // that opens a transaction is refused as it always is).
    for (begin, set, back) in [
        (None, format!("SET ROLE {tenant}"), "RESET ROLE"),
        (Some("BEGIN"), format!("SET LOCAL ROLE {tenant}"), "COMMIT"),
    ] {
        if let Some(b) = begin {
            via.simple_query(b).await.unwrap();
        }
        via.simple_query(&set).await.unwrap_or_else(|e| panic!("{set}: {e:?}"));
        let who: String = via.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
        assert_eq!(who, tenant, "{set}");
        via.simple_query("SELECT count(*) FROM users").await.expect("the role's own table");
        via.simple_query(back).await.unwrap_or_else(|e| panic!("{back}: {e:?}"));
    }
    let who: String = via.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(who, "trust_user");
}
