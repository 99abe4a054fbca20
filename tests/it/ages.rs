//! Sixth adversarial pass F1: a portal bound while its statement was harmless (a plain INSERT
//! into a plain temporary table), then DDL that gives the table code — a trigger, a `CHECK`
//! calling a temporary function — and the portal's Execute, in a later batch of the same
//! transaction or later in the same batch. The executor takes triggers and constraints from
//! the catalog at the Execute, so the Execute is judged again there (`session::ages`). Raw
//! frames through blastwall in enforce mode with the shipped policies, as a DML-only role;
//! the users and the protected sequence are read on the server. Controls: a portal executed
//! after DDL that gives it nothing still runs, once, and a read portal fetched in pieces across
//! DDL is read whole.

use crate::batches::{b, e, flush, p, pbe, q, read_msg, sync};
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PURGE: &str = "CREATE FUNCTION pg_temp.f() RETURNS trigger LANGUAGE plpgsql AS \
    $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; RETURN NEW; END$$";
const TRIGGER: &str = "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION pg_temp.f()";

/// Users, and where the protected sequence stands, on the server.
async fn state(db: &str) -> (i64, i64) {
    (count(db, "SELECT count(*) FROM users").await, count(db, "SELECT last_value FROM web_user_id_seq").await)
}

/// A session of the DML-only role through `px` with a temporary table `t`, in a block, with a
/// portal `p` bound to insert a row into it.
async fn bound_insert(px: &Proxy, db: &str) -> TcpStream {
    bound(px, db, "INSERT INTO t VALUES (1)").await
}

/// The same with a portal `p` bound to run `sql`.
async fn bound(px: &Proxy, db: &str, sql: &str) -> TcpStream {
    let mut s = startup(px.port(), RAW, db).await;
    run(&mut s, "CREATE TEMP TABLE t(a int)").await;
    run(&mut s, "BEGIN").await;
    let r = send(&mut s, &[p("s", sql), b("p", "s", &[]), sync()]).await;
    assert!(r.codes.is_empty(), "{}", r.errors);
    s
}

/// Reads until a message with this tag came; returns the tags read.
async fn until(s: &mut TcpStream, tag: u8) -> String {
    let mut tags = String::new();
    loop {
        let (t, _) = tokio::time::timeout(std::time::Duration::from_secs(20), read_msg(s)).await.expect("no reply");
        tags.push(t as char);
        if t == tag || t == b'E' {
            return tags;
        }
    }
}

/// Inside a block: the portal bound in one batch, the trigger made in the next ones, the
/// Execute in its own batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_bound_before_a_trigger_is_counted_at_its_execute() {
    let db = crate::binds::setup();
    let before = state(&db).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    // A plain INSERT, and a data-modifying WITH (its executor starts at the Execute too).
    for sql in ["INSERT INTO t VALUES (1)", "WITH x AS (INSERT INTO t VALUES (1) RETURNING a) SELECT * FROM x"] {
        let mut s = bound(&px, &db, sql).await;
        run(&mut s, PURGE).await;
        run(&mut s, TRIGGER).await;
        let r = send(&mut s, &[e("p", 0), sync()]).await;
        assert_eq!(state(&db).await, before, "{sql}: the Execute ran the trigger uncounted: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "{sql}: {r:?}");
        run(&mut s, "ROLLBACK").await;
        assert_eq!(state(&db).await, before);
    }
}

/// The same in one batch, released piece by piece by Flushes, outside a block; and with a
/// `CHECK` that calls the function instead of a trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_bound_before_code_in_the_same_batch_is_counted() {
    let db = crate::binds::setup();
    let before = state(&db).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    for (table, code, attach, value) in [
        ("t", PURGE, TRIGGER, 1),
        (
            "c",
            "CREATE FUNCTION pg_temp.g(a int) RETURNS bool LANGUAGE plpgsql AS \
             $$BEGIN IF a = 7 THEN DELETE FROM public.users WHERE auth_source IS NOT NULL; END IF; RETURN true; END$$",
            "ALTER TABLE c ADD CHECK (pg_temp.g(a))",
            7,
        ),
    ] {
        let mut s = startup(px.port(), RAW, &db).await;
        run(&mut s, &format!("CREATE TEMP TABLE {table}(a int)")).await;
        let insert = format!("INSERT INTO {table} VALUES ({value})");
        s.write_all(&[p("s", &insert), b("p", "s", &[]), flush()].concat()).await.unwrap();
        assert_eq!(until(&mut s, b'2').await, "12");
        s.write_all(&[pbe(code), flush()].concat()).await.unwrap();
        assert!(until(&mut s, b'C').await.ends_with('C'));
        s.write_all(&[pbe(attach), flush()].concat()).await.unwrap();
        let tags = until(&mut s, b'C').await;
        assert!(tags.ends_with('C'), "{attach}: {tags}");
        let r = send(&mut s, &[e("p", 0), sync()]).await;
        assert_eq!(state(&db).await, before, "{attach}: the Execute ran uncounted: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    }
}

/// Controls: DDL that gives the portal's table nothing leaves its Execute as it was (it runs,
/// once); a read portal fetched in pieces across DDL is read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_executed_after_unrelated_ddl_run() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP TABLE t(a int)").await;
    run(&mut s, "BEGIN").await;
    let r = send(
        &mut s,
        &[
            p("s", "INSERT INTO t VALUES (1)"),
            b("p", "s", &[]),
            p("r", "SELECT id FROM users"),
            b("c", "r", &[]),
            sync(),
        ],
    )
    .await;
    assert!(r.codes.is_empty(), "{}", r.errors);
    let r = send(&mut s, &[e("c", 5), sync()]).await;
    assert_eq!(r.tags.matches('D').count(), 5, "{r:?}");
    run(&mut s, "CREATE TEMP TABLE other(b int)").await;
    let r = send(&mut s, &[e("p", 0), sync()]).await;
    assert!(r.codes.is_empty(), "{}", r.errors);
    let r = send(&mut s, &[e("c", 0), sync()]).await;
    assert!(r.codes.is_empty(), "{}", r.errors);
    let users = count(&db, "SELECT count(*) FROM users").await as usize;
    assert_eq!(r.tags.matches('D').count(), users - 5, "{r:?}");
    run(&mut s, "COMMIT").await;
    let r = send(&mut s, &[q("SELECT count(*) FROM t")]).await;
    assert!(r.codes.is_empty(), "{}", r.errors);
}

/// The trigger made by a DBA's function the session calls between the Bind and the Execute
/// (no DDL in the session's own text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_bound_before_a_function_made_a_trigger_is_counted() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE FUNCTION public.attach() RETURNS void LANGUAGE plpgsql AS $f$BEGIN \
               EXECUTE $x${PURGE}$x$; EXECUTE $x${TRIGGER}$x$; END$f$; \
             GRANT EXECUTE ON FUNCTION public.attach() TO {RAW}"
        ),
    );
    let before = state(&db).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = bound_insert(&px, &db).await;
    run(&mut s, "SELECT public.attach()").await;
    let r = send(&mut s, &[e("p", 0), sync()]).await;
    assert_eq!(state(&db).await, before, "the Execute ran the trigger uncounted: {r:?}");
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    run(&mut s, "ROLLBACK").await;
}
