//! Seventy-seventh adversarial pass, as `app` through blastwall in enforce mode with the
//! shipped policies; every position read on the server directly.
//! - H2: a sequence name with whitespace after a dot (`'public. web_user_id_seq'`), which the
//!   server's `regclass` input skips, was not recognised: `nextval` of it a million times ran
//!   uncounted.
//! - H3: the same call between a block's writes went unread, so the block's put-back at
//!   ROLLBACK went back below the ids it had handed out.
//! - FP: asyncpg's Parse, Describe, Flush of a write by parameters whose text names a column
//!   like a domain whose CHECK calls a function was refused as a Parse that may run it.
//! - H1 (`(…).*`, once per column) is `rt76::nextval_copied_by_between_or_in_is_judged_by_its_real_move`.

use crate::creep::position;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_name_spelled_with_whitespace_is_the_protected_sequence() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
    let start = position(&db).await;
    for name in [
        "public. web_user_id_seq",
        "public . web_user_id_seq",
        "\"public\" . \"web_user_id_seq\"",
        " public.\tweb_user_id_seq ",
    ] {
        let sql = format!("SELECT count(nextval(E'{}')) FROM generate_series(1, 5000)", name.replace('\t', "\\t"));
        let e = via.simple_query(&sql).await.expect_err(&sql);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back: {sql}");
    }
    // H3: read between the block's writes, so the put-back stops at the ids it handed out.
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'oauth' FROM generate_series(1, 200)").await.unwrap();
    let rows = via.query("SELECT nextval('public. web_user_id_seq') FROM generate_series(1, 50)", &[]).await.unwrap();
    let handed: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).max().unwrap();
    via.batch_execute("ROLLBACK").await.unwrap();
    assert!(position(&db).await >= handed, "never below an id handed out ({handed})");
}

/// FP: a Parse is counted alone in its batch only when its analysis may run a type's input,
/// which reads string literals alone: asyncpg's Parse, Describe, Flush of writes by parameters
/// whose text names a column like a domain whose CHECK calls a function (`email`) runs as
/// directly, as do psycopg's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_parameters_beside_a_domain_named_like_a_column_run_as_directly() {
    let domain = "CREATE FUNCTION public.valid_email(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 LIKE '%@%' $$; \
                  CREATE DOMAIN public.email AS text CHECK (public.valid_email(value))";
    let (direct_db, via_db) = (incident_db(), incident_db());
    admin_sql(pg(), &direct_db, domain);
    admin_sql(pg(), &via_db, domain);
    let p = proxy().await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/domain_words.py");
    let run = |port: u16, db: String| {
        let script = script.clone();
        async move {
            let out = tokio::process::Command::new("python3")
                .arg(&script)
                .arg(port.to_string())
                .arg(&db)
                .arg(APP_PW)
                .output()
                .await
                .expect("python3");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{text}");
            text
        }
    };
    let direct = run(pg().server.port, direct_db).await;
    let via = run(p.port(), via_db).await;
    assert_eq!(via, direct);
    assert!(direct.contains("DELETE 1"), "{direct}");
}
