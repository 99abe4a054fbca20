//! Twentieth pass FPw: what applications send before a write in one pipeline or one Query —
//! PostgREST's request settings (`set_config('request.jwt.claim.sub', $1, true)`, a custom
//! setting read by row-security policies) and a transaction's advisory lock
//! (`pg_advisory_xact_lock($1)`) — change nothing a later name resolves to and run no one's
//! code: the write behind them is judged as if sent alone, and runs. The same calls where they
//! could change what follows are still refused: a setting that is not a custom one
//! (`search_path`), blastwall's own (`blastwall.mode`), one whose name is computed, and a
//! user's function named like either built-in that the session's path finds first. Raw frames
//! through blastwall in enforce mode with the shipped policies, as the DML-only role; the data
//! is checked directly on the server.

use crate::batches::{b, e, p, pbe, q, sync};
use crate::batchnames::send;
use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111";

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("blastwall: refused"), "{what} was not refused: {r:?}");
}

fn ran(r: &Replies, what: &str) {
    assert!(r.codes.is_empty(), "{what}: {}", r.errors);
}

/// A pipeline: `first` with its parameter, then a parameterized point UPDATE of `users`, one
/// Sync.
fn pipeline(first: &str, arg: &str, plan: &str, id: &str) -> Vec<Vec<u8>> {
    vec![
        p("", first),
        b("", "", &[arg]),
        e("", 0),
        p("", "UPDATE users SET plan = $1 WHERE id = $2"),
        b("", "", &[plan, id]),
        e("", 0),
        sync(),
    ]
}

async fn plan_of(db: &str, id: i64) -> String {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one("SELECT plan FROM users WHERE id = $1", &[&id]).await.unwrap().get(0)
}

/// FPw: the request's claims and an advisory lock, pipelined or in one Query, ahead of a
/// point UPDATE: each runs, and the row is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_settings_and_advisory_locks_before_a_write_run() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let claims = "SELECT set_config('request.jwt.claim.sub', $1, true)";
    ran(&send(&mut c, &pipeline(claims, "1000002", "claims", "1000002")).await, "claims, pipelined");
    assert_eq!(plan_of(&db, 1000002).await, "claims");
    let one = "SELECT set_config('request.jwt.claim.sub', '1000003', true); \
               UPDATE users SET plan = 'one' WHERE id = 1000003";
    ran(&send(&mut c, &[q(one)]).await, "claims and the write in one Query");
    assert_eq!(plan_of(&db, 1000003).await, "one");
    let qualified = "SELECT pg_catalog.set_config('request.method', $1, true)";
    ran(&send(&mut c, &pipeline(qualified, "PATCH", "method", "1000004")).await, "a qualified set_config");
    assert_eq!(plan_of(&db, 1000004).await, "method");
    let lock = "SELECT pg_advisory_xact_lock($1::bigint)";
    ran(&send(&mut c, &pipeline(lock, "43", "locked", "1000005")).await, "an advisory lock, pipelined");
    assert_eq!(plan_of(&db, 1000005).await, "locked");
    let both = "BEGIN; SELECT pg_advisory_xact_lock(44), set_config('request.jwt.claims', '{}', true); \
                UPDATE users SET plan = 'both' WHERE id = 1000006; COMMIT";
    ran(&send(&mut c, &[q(both)]).await, "a lock and the claims in a block");
    assert_eq!(plan_of(&db, 1000006).await, "both");
    // The range DELETE behind the same settings is still refused, and the window intact.
    let range = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";
    let r = send(&mut c, &[p("", claims), b("", "", &["1"]), e("", 0), pbe(range), sync()]).await;
    refused(&r, "the range DELETE behind the claims");
    assert_eq!(count(&db, WINDOW).await, 10);
    px.stop().await;
}

/// The same shapes where the call may change what the write's name leads to, or run a user's
/// code: refused, and the incident's window and the archive's copy unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_may_redirect_and_look_alike_functions_are_still_calls() {
    let db = crate::batchnames::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let point = "UPDATE users SET plan = 'moved' WHERE id = 1000002";
    // A path set by set_config with a parameter: the name cannot be resolved before it runs.
    let path = "SELECT set_config('search_path', $1, true)";
    let r = send(&mut c, &[p("", path), b("", "", &["archive, public"]), e("", 0), pbe(point), sync()]).await;
    refused(&r, "a point UPDATE behind a parameterized search_path");
    // A computed name may be any setting.
    let computed = "SELECT set_config('search' || '_path', 'archive, public', true); \
                    UPDATE users SET plan = 'moved' WHERE id = 1000002";
    refused(&send(&mut c, &[q(computed)]).await, "a computed setting's name");
    // blastwall's own setting keeps its own rule (a value it cannot read is refused).
    let mode = "SELECT set_config('blastwall.mode', $1, false)";
    refused(&send(&mut c, &[p("", mode), b("", "", &["warn"]), e("", 0), sync()]).await, "blastwall.mode");
    let moved = "SELECT count(*) FROM archive.users WHERE plan = 'moved'";
    assert_eq!(count(&db, moved).await + count(&db, "SELECT count(*) FROM users WHERE plan = 'moved'").await, 0);
    // A constant path in a pipeline is followed no further than a SET there: the server has
    // not answered it when the write behind it is judged, so the write is judged as every
    // table its name may be (here from archive's path back to public.users: refused).
    ran(&send(&mut c, &[q("SET search_path = archive, public")]).await, "SET");
    let range = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";
    for first in ["SELECT set_config('search_path', 'public', true)", "SET LOCAL search_path = public"] {
        let r = send(&mut c, &[p("", first), b("", "", &[]), e("", 0), pbe(range), sync()]).await;
        refused(&r, first);
        assert_eq!(count(&db, WINDOW).await, 10, "{first}");
    }
    px.stop().await;

    // A DBA's functions named like the built-ins, found first by a path that lists pg_catalog
    // after public (and, for the lock, by its exact argument type): each deletes every test
    // user (20, over the limit of 10) when called. Taken for the built-ins, they would run
    // uncounted.
    let negative = "SELECT count(*) FROM users WHERE id < 0";
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS \
               $$ DELETE FROM public.users WHERE id < 0; SELECT $2 $$; \
             CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE sql AS \
               $$ DELETE FROM public.users WHERE id < 0 $$; \
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {RAW}; \
             ALTER ROLE {RAW} IN DATABASE \"{db}\" SET search_path = public, pg_catalog"
        ),
    );
    let before = count(&db, negative).await;
    assert_eq!(before, 20);
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let claims = "SELECT set_config('request.jwt.claim.sub', '1', true)";
    refused(&send(&mut c, &[q(claims)]).await, "the look-alike set_config");
    let r = send(&mut c, &[q(&format!("{claims}; UPDATE users SET plan = 'x' WHERE id = 1000007"))]).await;
    refused(&r, "the look-alike set_config before a write");
    let path = "SELECT set_config('search_path', 'public, pg_catalog', false); \
                UPDATE users SET plan = 'x' WHERE id = 1000007";
    refused(&send(&mut c, &[q(path)]).await, "the look-alike set_config of search_path before a write");
    let lock = [p("", "SELECT pg_advisory_xact_lock($1::int)"), b("", "", &["42"]), e("", 0), sync()];
    refused(&send(&mut c, &lock).await, "the look-alike advisory lock");
    assert_eq!(count(&db, negative).await, before, "the test users, checked on the server");
    admin_sql(pg(), &db, &format!("ALTER ROLE {RAW} IN DATABASE \"{db}\" RESET search_path"));
    px.stop().await;
}

/// FPx: one Query in a block that sets a savepoint, writes, rolls back to it and writes
/// again runs as directly (the first DELETE undone, the second kept). A `ROLLBACK TO` of a
/// savepoint of an earlier message — after a `RELEASE` of this message's savepoint of the
/// same name, with none set in this message, or after a rollback to another — may undo DDL
/// the answers show as done (a temporary view dropped behind that savepoint), and the write
/// behind it is refused for that rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_a_savepoint_of_the_same_message_redirects_nothing() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let ids = "SELECT count(*) FROM web_messages WHERE id IN (1, 2)";
    assert_eq!(count(&db, ids).await, 2);
    ran(&send(&mut c, &[q("BEGIN")]).await, "BEGIN");
    let fpx = "SAVEPOINT a; DELETE FROM web_messages WHERE id = 1; ROLLBACK TO a; \
               DELETE FROM web_messages WHERE id = 2; RELEASE a";
    let r = send(&mut c, &[q(fpx)]).await;
    ran(&r, "the savepoint Query");
    assert_eq!(r.tags, "CCCCCZ");
    ran(&send(&mut c, &[q("COMMIT")]).await, "COMMIT");
    assert_eq!(count(&db, "SELECT count(*) FROM web_messages WHERE id = 1").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM web_messages WHERE id = 2").await, 0);

    // `web_messages` led to a temporary view over `users` before savepoint `a` of an earlier
    // message, and to the table since: a rollback to that savepoint brings the view back, and
    // a range DELETE of `web_messages` (no protected column there) would delete real users.
    let shadow = "BEGIN; CREATE TEMP VIEW web_messages AS SELECT * FROM public.users; SAVEPOINT a; \
                  DROP VIEW web_messages";
    let range = "DELETE FROM web_messages WHERE id BETWEEN -91111120 AND -91111111";
    for undo in ["SAVEPOINT a; RELEASE a; ROLLBACK TO a", "ROLLBACK TO a", "SAVEPOINT b; ROLLBACK TO b; ROLLBACK TO a"]
    {
        ran(&send(&mut c, &[q(shadow)]).await, "the temporary view, dropped behind a savepoint");
        let r = send(&mut c, &[q(&format!("{undo}; {range}"))]).await;
        refused(&r, undo);
        assert!(r.errors.contains("`ROLLBACK TO a` (a ROLLBACK"), "{undo}: {}", r.errors);
        assert_eq!(count(&db, WINDOW).await, 10, "{undo}");
        ran(&send(&mut c, &[q("ROLLBACK")]).await, "ROLLBACK");
    }
    px.stop().await;
}

/// Twenty-second pass S1: a statement name Parsed as `SAVEPOINT a` and replaced in the same
/// batch (Close, Parse `SELECT 1`) before its Bind and Execute sets no savepoint; nor does a
/// portal bound from it. Each time the `ROLLBACK TO a` behind them returns to the earlier
/// message's savepoint, behind which a temporary view `users` over
/// `public.users` (its `id` called `k`) was dropped, and the range DELETE by `k` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_that_did_not_run_in_the_batch_is_no_savepoint() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let close = |name: &str| {
        let mut m = crate::batches::describe(b'S', name);
        m[0] = b'C';
        m
    };
    let view = "BEGIN; CREATE TEMP VIEW users AS SELECT id AS k, email FROM public.users; SAVEPOINT a; \
                DROP VIEW users";
    let range = "DELETE FROM users WHERE k BETWEEN -91111120 AND -91111111";
    let tries: [(&str, Vec<Vec<u8>>); 2] = [
        (
            "a statement replaced before its Execute",
            vec![p("sp", "SAVEPOINT a"), close("sp"), p("sp", "SELECT 1"), b("", "sp", &[]), e("", 0)],
        ),
        (
            "a portal of a statement replaced before its Bind",
            vec![p("sq", "SAVEPOINT a"), close("sq"), p("sq", "SELECT 1"), b("pq", "sq", &[]), e("pq", 0)],
        ),
    ];
    for (what, before) in tries {
        ran(&send(&mut c, &[q(view)]).await, "the view dropped behind a savepoint");
        ran(&send(&mut c, &[q("DELETE FROM users WHERE id = 0")]).await, "users is public.users again");
        let mut batch = before;
        batch.extend([pbe("ROLLBACK TO a"), pbe(range), sync()]);
        let r = send(&mut c, &batch).await;
        refused(&r, what);
        assert_eq!(count(&db, WINDOW).await, 10, "{what}");
        ran(&send(&mut c, &[q("ROLLBACK")]).await, "ROLLBACK");
        ran(&send(&mut c, &[q("DEALLOCATE ALL")]).await, "DEALLOCATE ALL");
    }
    px.stop().await;
}
