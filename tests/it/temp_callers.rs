//! Temporary hidden callers belong to their session (third adversarial pass F15): one
//! session's temporary view named `users`, temporary table named `subscriptions` with a
//! default over a temporary function, or `pg_temp.lower`, leave another session's big reads and
//! `COPY … FROM STDIN` alone (they were refused as "larger than blastwall holds" / "reads COPY
//! data" while the object existed, and 30 seconds after); the session's own are still counted,
//! also when they are not committed yet and another session asked the catalog in between. The
//! data is read on the server directly.

use crate::harness::*;
use futures_util::SinkExt;
use tokio_postgres::{Client, SimpleQueryMessage};

async fn users(db: &str) -> i64 {
    count(db, "SELECT count(*) FROM public.users").await
}

async fn sequence(db: &str) -> i64 {
    count(db, "SELECT last_value FROM public.web_user_id_seq").await
}

fn rows(r: &[SimpleQueryMessage]) -> usize {
    r.iter().filter(|m| matches!(m, SimpleQueryMessage::Row(_))).count()
}

async fn run(c: &Client, sqls: &[&str]) {
    for sql in sqls {
        c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

/// A statement that must be refused by blastwall with the users and the protected sequence
/// unchanged on the server.
async fn refused_and_unchanged(c: &Client, db: &str, sql: &str) {
    let before = (users(db).await, sequence(db).await);
    let e = c.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
    let d = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
    assert!(d.message().starts_with("blastwall: refused"), "{sql}: {}", d.message());
    assert_eq!((users(db).await, sequence(db).await), before, "{sql}: {}", d.message());
}

/// A writing function and objects over it in `c`'s temporary schema, named like the real
/// tables and a built-in.
const SETUP: &[&str] = &[
    "CREATE FUNCTION pg_temp.del() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
       DELETE FROM public.users WHERE auth_source = 'telegram'; RETURN 1; END $$",
    "CREATE TEMP VIEW users AS SELECT pg_temp.del() AS x",
    "CREATE TEMP TABLE subscriptions (x int DEFAULT pg_temp.del())",
    "CREATE FUNCTION pg_temp.lower(int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
       DELETE FROM public.users WHERE auth_source = 'telegram'; RETURN 1; END $$",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_temporary_callers_leave_these_verdicts_alone() {
    let db = incident_db();
    let p = proxy().await;
    let a = connect(p.port(), "app", APP_PW, &db).await;
    run(&a, SETUP).await;
    let before = users(&db).await;
    // The DBA's session (another role, not a member of app): its ~24 MB read of the real
    // `users` and its bulk load into the real `subscriptions` are not pre-checked.
    let b = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    let big = "SELECT repeat('x', 100000), u.* FROM users u, generate_series(1, 4)";
    let got = b.simple_query(big).await.unwrap_or_else(|e| panic!("{big}: {e:?}"));
    assert_eq!(rows(&got), 4 * before as usize);
    let lower = "SELECT lower(u.email), repeat('x', 100000) FROM public.users u, generate_series(1, 4)";
    let got = b.simple_query(lower).await.unwrap_or_else(|e| panic!("{lower}: {e:?}"));
    assert_eq!(rows(&got), 4 * before as usize);
    let sink = b.copy_in("COPY subscriptions (user_id, plan) FROM STDIN").await.unwrap_or_else(|e| panic!("{e:?}"));
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1000001\tfree\n1000002\tfree\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap_or_else(|e| panic!("COPY: {e:?}")), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM public.subscriptions WHERE user_id = 1000001").await, 2);
    // Another session of the same role still counts them: a pooler between blastwall and the
    // server (PgBouncer pools by role) may hand it the connection that holds them.
    let a2 = connect(p.port(), "app", APP_PW, &db).await;
    refused_and_unchanged(&a2, &db, big).await;
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_own_temporary_callers_are_still_counted() {
    let db = incident_db();
    let p = proxy().await;
    let a = connect(p.port(), "app", APP_PW, &db).await;
    run(&a, SETUP).await;
    run(
        &a,
        &[
            "CREATE DOMAIN pg_temp.d AS int CHECK (pg_temp.del() = 1)",
            "CREATE TEMP TABLE mint (x bigint DEFAULT nextval('web_user_id_seq'), y int)",
            // A `setval` in the text is refused by the policy (`forbid-setval`): one a function
            // builds.
            "CREATE FUNCTION pg_temp.sv() RETURNS bigint LANGUAGE plpgsql AS $$ DECLARE v bigint; BEGIN \
               EXECUTE 'SELECT pg_catalog.set' || 'val(''public.web_user_id_seq'', 1)' INTO v; RETURN v; END $$",
            "CREATE TEMP TABLE reset (x bigint DEFAULT pg_temp.sv(), y int)",
            "CREATE TEMP TABLE stamp (x text DEFAULT set_config('search_path', 'public', false), y int)",
        ],
    )
    .await;
    for sql in [
        "SELECT * FROM users",
        "INSERT INTO subscriptions DEFAULT VALUES",
        "SELECT 1::pg_temp.d",
        "INSERT INTO mint (y) SELECT g FROM generate_series(1, 5000) g",
        "INSERT INTO reset (y) VALUES (1)",
    ] {
        refused_and_unchanged(&a, &db, sql).await;
    }
    // The temporary schema is never searched for functions: its `lower` runs only by that name.
    refused_and_unchanged(&a, &db, "SELECT pg_temp.lower(1)").await;
    // A default over set_config ahead of a range DELETE in the same message.
    run(&a, &["SET search_path = public"]).await;
    refused_and_unchanged(&a, &db, "INSERT INTO stamp (y) VALUES (1); DELETE FROM users WHERE id < 0").await;
    // Owned by another role (SET ROLE), found by the session's own temporary schema.
    let c = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    run(&c, &["SET ROLE app"]).await;
    run(&c, &SETUP[..2]).await;
    run(&c, &["RESET ROLE"]).await;
    refused_and_unchanged(&c, &db, "SELECT * FROM users").await;
    p.stop().await;
}

/// The session that made them asks on its own connection: another session's answer, asked
/// after the DDL but before its COMMIT, does not see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_temporary_callers_are_asked_on_their_own_session() {
    let db = incident_db();
    let p = proxy().await;
    let a = connect(p.port(), "app", APP_PW, &db).await;
    let b = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    run(&b, &["SELECT 1"]).await;
    run(&a, &["BEGIN"]).await;
    run(&a, &SETUP[..2]).await;
    // The DDL dropped the database's answer: b asks again, and cannot see a's objects.
    run(&b, &["SELECT 1"]).await;
    refused_and_unchanged(&a, &db, "SELECT * FROM users").await;
    p.stop().await;
}
