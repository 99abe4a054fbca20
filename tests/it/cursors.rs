//! Red-team findings F3 and F4: the session's prepared statements and cursors changed or
//! opened where blastwall cannot see (a function body's dynamic SQL), and cursors that run
//! their query later (at FETCH, at a protocol Execute of their name, at COMMIT for WITH HOLD).
//! Each attack runs through blastwall in enforce mode with the shipped policies, as a DML-only
//! role (no ownership, no CREATE in `public`; temporary functions only), and the data is
//! checked directly on the server. Ordinary cursors (DECLARE/FETCH, psql's FETCH_COUNT,
//! portals read in pieces) keep working.

use crate::batches::{b, e, p, q, sync};
use crate::harness::*;
use blastwall::policy::file::{compile, DEFAULT_POLICY};
use std::path::Path;
use tokio::io::AsyncWriteExt;

const ROLE: &str = "dml_only";
/// The raw-protocol tests' role (no password: the harness's trust entry), DML-only as well.
const RAW: &str = "trust_user";

/// An incident database, the DML-only role, and the DBA's maintenance function of F4.
fn setup() -> String {
    let db = incident_db();
    admin_sql(
        pg(),
        "postgres",
        &format!(
            "DO $$ BEGIN CREATE ROLE {ROLE} LOGIN PASSWORD '{APP_PW}'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ),
    );
    admin_sql(
        pg(),
        &db,
        &format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
             GRANT USAGE ON SCHEMA public TO {ROLE}, {RAW}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}, {RAW}; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}, {RAW}; \
             CREATE FUNCTION public.purge_sessions(before_id bigint) RETURNS bigint LANGUAGE sql AS \
               $$ WITH d AS (DELETE FROM public.chat_sessions WHERE id < before_id RETURNING 1) \
                  SELECT count(*) FROM d $$;"
        ),
    );
    db
}

async fn proxy() -> Proxy {
    let policy = compile(&[
        (Path::new("policies/default.toml"), DEFAULT_POLICY),
        (Path::new("policies/incident.toml"), blastwall::demo::INCIDENT_POLICY),
    ])
    .unwrap();
    proxy_with(base_config(), policy).await
}

async fn count(db: &str, table: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

fn refusal(e: &tokio_postgres::Error) -> String {
    let d = e.as_db_error().unwrap_or_else(|| panic!("not a server error: {e:?}"));
    assert!(d.message().starts_with("blastwall: refused"), "{e:?}");
    format!("{} {}", d.message(), d.detail().unwrap_or(""))
}

const SWAP: &str = "CREATE FUNCTION pg_temp.swap(n text, target text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
    EXECUTE format('DEALLOCATE %I', n); \
    EXECUTE format('PREPARE %I AS DELETE FROM %s WHERE true', n, target); END $$";

/// F3: a function called by name (counted: it changes no row) swaps the statement behind a
/// prepared name; `EXECUTE` of the name is then counted, and refused at the row limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_of_a_name_a_function_prepared_again_is_counted() {
    let db = setup();
    let px = proxy().await;
    let c = connect(px.port(), ROLE, APP_PW, &db).await;
    c.batch_execute("PREPARE foo AS SELECT 1").await.unwrap();
    c.batch_execute(SWAP).await.unwrap();
    c.simple_query("SELECT pg_temp.swap('foo', 'public.web_messages')").await.unwrap();
    let m = refusal(&c.simple_query("EXECUTE foo").await.unwrap_err());
    assert!(m.contains("web_messages"), "{m}");
    assert_eq!(count(&db, "web_messages").await, 360);
    // The same when the function raises after swapping, inside the client's block (its
    // transaction aborts; the prepared statement stays swapped).
    c.batch_execute(
        "CREATE FUNCTION pg_temp.swap_and_fail() RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
        DEALLOCATE foo; EXECUTE 'PREPARE foo AS SELECT 1'; \
        PERFORM pg_temp.swap('foo', 'public.subscriptions'); RAISE EXCEPTION 'no'; END $$",
    )
    .await
    .unwrap();
    c.batch_execute("DEALLOCATE foo; PREPARE foo AS SELECT 3").await.unwrap();
    c.simple_query("EXECUTE foo").await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.simple_query("SELECT pg_temp.swap_and_fail()").await.unwrap_err();
    let after = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(after.code().map(|c| c.code()), Some("25P02"), "the block stays aborted: {after:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    refusal(&c.simple_query("EXECUTE foo").await.unwrap_err());
    assert_eq!(count(&db, "subscriptions").await, 60);
    // Prepared again by the client: judged as what it prepared.
    c.batch_execute("DEALLOCATE foo; PREPARE foo AS SELECT 2").await.unwrap();
    c.simple_query("EXECUTE foo").await.unwrap();
    px.stop().await;
}

/// F3 through the protocol: Parse `bar` (`SELECT 1`), a function prepares `bar` again as a
/// DELETE, then Bind from `bar`: counted and refused. A name only a function prepared is
/// refused at Bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_of_a_name_a_function_prepared_again_is_counted() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    s.write_all(&[p("bar", "SELECT 1"), sync()].concat()).await.unwrap();
    assert!(replies(&mut s).await.codes.is_empty());
    let maker = "CREATE FUNCTION pg_temp.mk() RETURNS void LANGUAGE plpgsql AS \
        $$ BEGIN EXECUTE 'PREPARE baz AS DELETE FROM public.users WHERE true'; END $$";
    for sql in [SWAP, "SELECT pg_temp.swap('bar', 'public.subscriptions')", maker, "SELECT pg_temp.mk()"] {
        s.write_all(&q(sql)).await.unwrap();
        let r = replies(&mut s).await;
        assert!(r.codes.is_empty(), "{sql}: {r:?}");
    }
    s.write_all(&[b("", "bar", &[]), e("", 0), sync()].concat()).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, ["42501"], "{r:?}");
    assert_eq!(count(&db, "subscriptions").await, 60);
    s.write_all(&[b("", "baz", &[]), e("", 0), sync()].concat()).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, ["42501"], "{r:?}");
    assert_eq!(count(&db, "users").await, 60);
    px.stop().await;
}

/// F4: a cursor over a counted function call. WITH HOLD is refused (its COMMIT runs the
/// query); without it, inside a block, each FETCH is counted and refused at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_over_a_counted_function_is_refused_or_counted_at_fetch() {
    let db = setup();
    let px = proxy().await;
    let c = connect(px.port(), ROLE, APP_PW, &db).await;
    refusal(&c.simple_query("SELECT purge_sessions(1000)").await.unwrap_err());
    let m = refusal(&c.simple_query("DECLARE c CURSOR WITH HOLD FOR SELECT purge_sessions(1000)").await.unwrap_err());
    assert!(m.contains("a cursor runs its query at FETCH") && m.contains("rule cursor"), "{m}");
    c.simple_query("FETCH ALL c").await.unwrap_err();
    assert_eq!(count(&db, "chat_sessions").await, 120);
    c.batch_execute(
        "CREATE FUNCTION pg_temp.wipe() RETURNS bigint LANGUAGE sql AS \
         $$ WITH d AS (DELETE FROM public.subscriptions WHERE true RETURNING 1) SELECT count(*) FROM d $$",
    )
    .await
    .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.simple_query("DECLARE c CURSOR FOR SELECT pg_temp.wipe()").await.unwrap();
    let m = refusal(&c.simple_query("FETCH ALL c").await.unwrap_err());
    assert!(m.contains("subscriptions"), "{m}");
    c.simple_query("MOVE ALL IN c").await.unwrap_err();
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&db, "subscriptions").await, 60);
    px.stop().await;
}

/// F4's variant: a function (counted, changes nothing) opens a named cursor over the purge
/// and returns; the client's FETCH of it is counted and refused. A function that opens one
/// WITH HOLD is refused itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_a_function_opened_is_counted_when_read() {
    let db = setup();
    let px = proxy().await;
    let c = connect(px.port(), ROLE, APP_PW, &db).await;
    c.batch_execute(
        "CREATE FUNCTION pg_temp.opener() RETURNS refcursor LANGUAGE plpgsql AS \
         $$ DECLARE c refcursor := 'c'; BEGIN OPEN c FOR SELECT public.purge_sessions(1000); RETURN c; END $$; \
         CREATE FUNCTION pg_temp.holder() RETURNS void LANGUAGE plpgsql AS \
         $$ BEGIN EXECUTE 'DECLARE h CURSOR WITH HOLD FOR SELECT public.purge_sessions(1000)'; END $$",
    )
    .await
    .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.simple_query("SELECT pg_temp.opener()").await.unwrap();
    let m = refusal(&c.simple_query("FETCH ALL c").await.unwrap_err());
    assert!(m.contains("chat_sessions"), "{m}");
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&db, "chat_sessions").await, 120);
    let m = refusal(&c.simple_query("SELECT pg_temp.holder()").await.unwrap_err());
    assert!(m.contains("WITH HOLD") && m.contains("rule cursor"), "{m}");
    c.simple_query("FETCH ALL h").await.unwrap_err();
    assert_eq!(count(&db, "chat_sessions").await, 120);
    // A plain cursor closed and reopened by a function under the same name.
    c.batch_execute(
        "CREATE FUNCTION pg_temp.reopener() RETURNS void LANGUAGE plpgsql AS \
         $$ DECLARE c refcursor := 'c'; BEGIN CLOSE c; OPEN c FOR SELECT public.purge_sessions(1000); END $$",
    )
    .await
    .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.simple_query("DECLARE c CURSOR FOR SELECT 1").await.unwrap();
    c.simple_query("SELECT pg_temp.reopener()").await.unwrap();
    refusal(&c.simple_query("FETCH ALL c").await.unwrap_err());
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&db, "chat_sessions").await, 120);
    px.stop().await;
}

/// Cursors and portals share one namespace on the server: a protocol Execute of a cursor
/// declared by SQL, and an SQL FETCH of a portal bound by protocol, are counted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_portals_read_across_protocols_are_counted() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    for sql in ["BEGIN", "DECLARE c CURSOR FOR SELECT public.purge_sessions(1000)"] {
        s.write_all(&q(sql)).await.unwrap();
        assert!(replies(&mut s).await.codes.is_empty(), "{sql}");
    }
    s.write_all(&[e("c", 0), sync()].concat()).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, ["42501"], "{r:?}");
    s.write_all(&q("ROLLBACK")).await.unwrap();
    let _ = replies(&mut s).await;
    assert_eq!(count(&db, "chat_sessions").await, 120);
    s.write_all(&q("BEGIN")).await.unwrap();
    let _ = replies(&mut s).await;
    s.write_all(&[p("s", "SELECT public.purge_sessions(1000)"), b("pp", "s", &[]), sync()].concat()).await.unwrap();
    assert!(replies(&mut s).await.codes.is_empty());
    s.write_all(&q("FETCH ALL pp")).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, ["42501"], "{r:?}");
    s.write_all(&q("ROLLBACK")).await.unwrap();
    let _ = replies(&mut s).await;
    assert_eq!(count(&db, "chat_sessions").await, 120);
    px.stop().await;
}

/// Ordinary cursors keep working, uncounted: DECLARE/FETCH/MOVE/CLOSE in a block, WITH HOLD
/// over a plain query, psql's FETCH_COUNT, a portal read in pieces (a driver's fetch size),
/// and a refcursor a function returns over a query that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_cursors_work_unchanged() {
    let db = setup();
    let px = proxy().await;
    let c = connect(px.port(), ROLE, APP_PW, &db).await;
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT * FROM users ORDER BY id").await.unwrap();
    assert_eq!(c.query("FETCH 10 FROM c", &[]).await.unwrap().len(), 10);
    c.batch_execute("MOVE 5 IN c").await.unwrap();
    assert_eq!(c.query("FETCH ALL FROM c", &[]).await.unwrap().len(), 45);
    c.batch_execute("CLOSE c; COMMIT").await.unwrap();
    c.batch_execute("DECLARE h CURSOR WITH HOLD FOR SELECT count(*) FROM users").await.unwrap();
    let n: i64 = c.query_one("FETCH NEXT FROM h", &[]).await.unwrap().get(0);
    assert_eq!(n, 60);
    c.batch_execute("CLOSE h").await.unwrap();
    c.batch_execute(
        "CREATE FUNCTION pg_temp.users_cursor() RETURNS refcursor LANGUAGE plpgsql AS \
         $$ DECLARE r refcursor := 'r'; BEGIN OPEN r FOR SELECT id FROM public.users; RETURN r; END $$",
    )
    .await
    .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.simple_query("SELECT pg_temp.users_cursor()").await.unwrap();
    assert_eq!(c.query("FETCH ALL FROM r", &[]).await.unwrap().len(), 60);
    c.batch_execute("COMMIT").await.unwrap();
    let (ok, out, err) =
        psql(px.port(), ROLE, APP_PW, &db, &["-At", "-v", "FETCH_COUNT=7", "-c", "SELECT id FROM users"], None);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 60, "{out}");
    let mut s = startup(px.port(), RAW, &db).await;
    s.write_all(&q("BEGIN")).await.unwrap();
    let _ = replies(&mut s).await;
    s.write_all(&[p("", "SELECT id FROM users"), b("", "", &[]), e("", 25), e("", 25), e("", 25), sync()].concat())
        .await
        .unwrap();
    let r = replies(&mut s).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(r.tags.chars().filter(|t| *t == 'D').count(), 60, "{r:?}");
    px.stop().await;
}
