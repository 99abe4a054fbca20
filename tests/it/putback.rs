//! Fourth adversarial pass F3/F4: a statement that moves a protected sequence and then fails
//! (by itself, cancelled, in the client's own block, in a pipelined batch, or abandoned by its
//! client) has the sequence put back exactly as a refused one does, while the client sees the
//! server's own error; and a value another session took after the statement's last call is
//! never handed out again. Every position is read directly on the server.

use crate::batches::{pbe, q, run, show, sync, Send, Until};
use crate::harness::*;
use std::time::Duration;

async fn seq(db: &str) -> (i64, bool) {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let r = c.query_one("SELECT last_value, is_called FROM web_user_id_seq", &[]).await.unwrap();
    (r.get(0), r.get(1))
}

/// A database with functions (owned by app) that move the protected sequence and then fail.
fn db() -> String {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT app TO trust_user; \
         SET ROLE app; \
         CREATE FUNCTION back_then_fail() RETURNS int LANGUAGE plpgsql AS $b$ BEGIN \
           EXECUTE 'SELECT set' || 'val(''public.web_user_id_seq'', 1000)'; RAISE EXCEPTION 'boom'; END $b$; \
         CREATE FUNCTION forward_sleep_fail(n int, pause float8) RETURNS int LANGUAGE plpgsql AS $b$ BEGIN \
           PERFORM nextval('public.web_user_id_seq') FROM generate_series(1, n); PERFORM pg_sleep(pause); \
           RAISE EXCEPTION 'late boom'; END $b$; \
         CREATE FUNCTION back_sleep_fail(pause float8) RETURNS int LANGUAGE plpgsql AS $b$ BEGIN \
           EXECUTE 'SELECT set' || 'val(''public.web_user_id_seq'', 1000)'; PERFORM pg_sleep(pause); \
           RAISE EXCEPTION 'late boom'; END $b$;",
    );
    db
}

/// The message of an error the server (or blastwall) sent.
fn message(e: tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

const DIVIDE: &str = "SELECT count(nextval('web_user_id_seq')) / (count(*) - 30000) FROM generate_series(1, 30000) g";

/// F3 and F4 as a Query of their own: the server's own error, the sequence where it stood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_that_moved_a_protected_sequence_is_put_back() {
    let db = db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let cases = [
        (DIVIDE, "division by zero"),
        ("SELECT back_then_fail()", "boom"),
        (
            "SELECT nextval('web_user_id_seq') FROM generate_series(1, 5000) g WHERE g < 4999 OR 1 / (g - 5000) = 0",
            "division by zero",
        ),
        // Through the column default: no row inserted.
        (
            "INSERT INTO users (auth_source) SELECT CASE WHEN g < 5000 THEN 'x' END FROM generate_series(1, 5000) g",
            "null value in column",
        ),
    ];
    for (sql, error) in cases {
        let before = seq(&db).await;
        let e = via.simple_query(sql).await.expect_err(sql);
        let m = message(e);
        assert!(m.starts_with(error), "{sql}: the server's own error: {m}");
        assert_eq!(seq(&db).await, before, "{sql} left the sequence moved");
    }
    // Inside the client's own block: its block stays aborted, as it would directly.
    let before = seq(&db).await;
    via.simple_query("BEGIN").await.unwrap();
    assert_eq!(message(via.simple_query("SELECT back_then_fail()").await.unwrap_err()), "boom");
    let e = via.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION), "{e:?}");
    via.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(seq(&db).await, before, "in a block");
    via.simple_query("BEGIN").await.unwrap();
    assert_eq!(message(via.simple_query(DIVIDE).await.unwrap_err()), "division by zero");
    via.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(seq(&db).await, before, "in a block, forward");
    // A move within the rule's allowance is put back too: a failed statement keeps none of its
    // steps (failure after failure would creep past any budget, `creep.rs`).
    let (at, called) = seq(&db).await;
    let sql = "SELECT count(nextval('web_user_id_seq')) / (count(*) - 500) FROM generate_series(1, 500) g";
    assert_eq!(message(via.simple_query(sql).await.unwrap_err()), "division by zero");
    assert_eq!(seq(&db).await, (at, called), "a small move of a failed statement is put back");
    // The session goes on.
    via.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

/// A statement cancelled by its client after it moved the sequence: put back; the client
/// sees the server's cancellation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_statement_that_moved_a_protected_sequence_is_put_back() {
    let db = db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = seq(&db).await;
    let token = via.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let e = via.simple_query("SELECT forward_sleep_fail(20000, 30)").await.unwrap_err();
    canceller.await.unwrap();
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{e:?}");
    assert_eq!(seq(&db).await, before);
    p.stop().await;
}

/// Runs `failing` (which fails with "late boom" after sleeping 2 s) while `other` takes a value
/// of the sequence a second into it: that value.
async fn taken_meanwhile(via: &tokio_postgres::Client, failing: &str, other: &tokio_postgres::Client) -> i64 {
    let taking = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        other.query_one("SELECT nextval('web_user_id_seq')", &[]).await.unwrap().get::<_, i64>(0)
    };
    let (failed, taken) = tokio::join!(via.simple_query(failing), taking);
    assert_eq!(message(failed.unwrap_err()), "late boom");
    taken
}

/// Another session takes a value while the failing statement still runs, after its last
/// call: a forward move is then left where it is (putting it back would hand that value out
/// again); a backward move is put forward again, above every value handed out since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_another_session_took_is_never_handed_out_again() {
    let db = db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let other = direct("postgres", SUPERUSER_PW, &db).await;
    // Forward by 5,000, then the other session's value, then the failure.
    let (start, _) = seq(&db).await;
    let taken = taken_meanwhile(&via, "SELECT forward_sleep_fail(5000, 2)", &other).await;
    assert_eq!(taken, start + 5001);
    assert_eq!(seq(&db).await, (start + 5001, true), "moved back below a value another session took");
    // Without the other session, the same statement is put back.
    let (start, _) = seq(&db).await;
    assert_eq!(message(via.simple_query("SELECT forward_sleep_fail(5000, 0)").await.unwrap_err()), "late boom");
    assert_eq!(seq(&db).await, (start, true));
    // Backward to 1,000, another session takes 1,001: put forward to where it stood.
    assert_eq!(taken_meanwhile(&via, "SELECT back_sleep_fail(2)", &other).await, 1001);
    assert_eq!(seq(&db).await, (start, true), "a backward move stays");
    p.stop().await;
}

/// In pipelined extended-protocol batches: alone before its Sync, and in the middle of a
/// batch after another statement (counted where it stands).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_in_a_batch_is_put_back() {
    let db = db();
    let p = proxy().await;
    let batches = [
        [pbe(DIVIDE), sync()].concat(),
        [pbe("SET ROLE app"), pbe("SELECT back_then_fail()"), pbe("SELECT 2"), sync()].concat(),
        [pbe("SELECT 1"), pbe(DIVIDE), pbe("SELECT 2"), sync()].concat(),
    ];
    for batch in batches {
        let before = seq(&db).await;
        let script = [Send(batch), Until(b'Z', 1), Send([pbe("SELECT 3"), sync()].concat()), Until(b'Z', 1)];
        let out = show(&run(p.port(), &db, &script).await);
        assert!(out.contains("division by zero") || out.contains("boom"), "{out}");
        assert!(!out.contains("blastwall"), "the server's own error only: {out}");
        assert!(out.contains("\u{1}3\n"), "the next batch ran: {out}");
        assert_eq!(seq(&db).await, before, "{out}");
    }
    // Refused in the middle of a batch (it moved the sequence past the rule and succeeded).
    let before = seq(&db).await;
    let moving = "SELECT nextval('web_user_id_seq') FROM generate_series(1, 5000)";
    let script = [
        Send([pbe("SELECT 1"), pbe(moving), pbe("SELECT 2"), sync()].concat()),
        Until(b'Z', 1),
        Send([pbe("SELECT 3"), sync()].concat()),
        Until(b'Z', 1),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("blastwall: refused") && out.contains("\u{1}3\n"), "{out}");
    assert_eq!(seq(&db).await, before, "refused in a batch: {out}");
    // Failed in the middle of a batch inside the client's block: put back once the block ends.
    let script = [
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([pbe("SELECT 1"), pbe(DIVIDE), pbe("SELECT 2"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("ROLLBACK")),
        Until(b'Z', 1),
        Send([pbe("SELECT 3"), sync()].concat()),
        Until(b'Z', 1),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("division by zero") && out.contains("\u{1}3\n"), "{out}");
    assert_eq!(seq(&db).await, before, "failed in a block: {out}");
    p.stop().await;
}

/// A client that leaves while its statement runs: the statement is cancelled and the
/// sequence put back before the server session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_statement_that_moved_a_protected_sequence_is_put_back() {
    use tokio::io::AsyncWriteExt;
    let db = db();
    let p = proxy().await;
    let before = seq(&db).await;
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"SET ROLE app\0")).await.unwrap();
    s.write_all(&msg(b'Q', b"SELECT forward_sleep_fail(20000, 30)\0")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(s);
    assert_eq!(back_at(&db, before).await, before, "left moved after the client went away");
    p.stop().await;
}

/// The sequence once it is back at `before`, or after 10 s.
async fn back_at(db: &str, before: (i64, bool)) -> (i64, bool) {
    let mut at = seq(db).await;
    for _ in 0..100 {
        if at == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        at = seq(db).await;
    }
    at
}

/// Fiftieth pass H2: the same when the statement runs behind a `BEGIN` of the same Query (run
/// as a batch, counted where it stands): nothing was put back, for any role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_abandoned_behind_its_begin_is_put_back() {
    use tokio::io::AsyncWriteExt;
    let db = db();
    let p = proxy().await;
    let before = seq(&db).await;
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"SET ROLE app\0")).await.unwrap();
    let sql = b"BEGIN; SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 50000000)\0";
    s.write_all(&msg(b'Q', sql)).await.unwrap();
    let mut moved = seq(&db).await.0;
    for _ in 0..100 {
        if moved > before.0 + 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        moved = seq(&db).await.0;
    }
    assert!(moved > before.0 + 10_000, "the statement did not start: {moved}");
    drop(s);
    assert_eq!(back_at(&db, before).await, before, "left moved after the client went away");
    p.stop().await;
}

/// Fifty-first pass H1: a function body's `DISCARD SEQUENCES` left no `currval` to judge the
/// put-back by, and every put-back failed: judged as on another connection, on the session
/// (its role may call `setval`; no `[ddl_notify]` here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_currval_was_discarded_is_put_back() {
    let db = db();
    let p = proxy().await;
    let mut s = startup(p.port(), "trust_user", &db).await;
    let forget = "CREATE FUNCTION pg_temp.forget() RETURNS int LANGUAGE plpgsql AS \
                  $$ BEGIN EXECUTE 'DISCARD SEQUENCES'; RETURN 1; END $$";
    crate::batchnames::run(&mut s, forget).await;
    let before = seq(&db).await;
    let moving = "SELECT pg_temp.forget() FROM \
                  (SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 100000)) s";
    let r = crate::batchnames::send(&mut s, &[crate::batches::q(moving)]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(seq(&db).await, before, "the sequence stayed moved");
    p.stop().await;
}

/// Fourteenth pass F6: refused in the middle of an autocommit batch, the statement's move of
/// the protected sequence is put back before the batch's ReadyForQuery reaches the client —
/// not at its next message: an idle client leaves nothing for other sessions to mint from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_moved_by_a_refused_statement_in_a_batch_is_back_before_the_batch_ends() {
    let db = db();
    let p = proxy().await;
    let before = seq(&db).await;
    let moving = "SELECT nextval('web_user_id_seq') FROM generate_series(1, 5000)";
    let mut c = startup(p.port(), "trust_user", &db).await;
    let r = crate::batchnames::send(&mut c, &[[pbe("SELECT 1"), pbe(moving), pbe("SELECT 2"), sync()].concat()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    // The client sends nothing more; the server is read directly.
    assert_eq!(seq(&db).await, before, "the sequence stays moved while the client is idle");
    // A rule's function that sets the sequence back into the test window (F6's own form).
    crate::batchnames::run(
        &mut c,
        "CREATE FUNCTION pg_temp.sv() RETURNS bigint LANGUAGE plpgsql AS $f$ DECLARE r bigint; BEGIN \
           EXECUTE 'SELECT pg_catalog.set' || 'val($1, $2)' INTO r USING 'public.web_user_id_seq'::regclass, 91111099::bigint; \
           RETURN r; END $f$; \
         CREATE TEMP TABLE st5 (id bigint); CREATE RULE r5 AS ON INSERT TO st5 DO ALSO SELECT pg_temp.sv()",
    )
    .await;
    let r =
        crate::batchnames::send(&mut c, &[[pbe("SELECT 1"), pbe("INSERT INTO st5 VALUES (1)"), sync()].concat()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(seq(&db).await, before, "set back by a rule's function, left there while the client is idle");
    let r = crate::batchnames::send(&mut c, &[q("SELECT 3")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    p.stop().await;
}

/// Eighteenth pass F6b–F6d: the same refused in a pipeline whose Sync comes only after the
/// client read the error (a driver's pipeline: the statements, a Flush, then the Sync), and by
/// a client that leaves right after the error without a Sync at all; autocommit, and inside
/// the client's block (put back once it rolls back, or once the client left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_moved_in_a_pipeline_is_back_when_its_sync_comes_later_or_never() {
    use tokio::io::AsyncReadExt;
    let db = db();
    let p = proxy().await;
    let before = seq(&db).await;
    let setval = "CREATE FUNCTION pg_temp.mv() RETURNS bigint LANGUAGE sql \
                  AS $$ SELECT pg_catalog.setval('public.web_user_id_seq', 91111100) $$";
    let cases = [(1, false), (1, true), (2, false), (2, true), (0, false), (0, true)];
    for (leaves, block) in cases {
        let mut c = startup(p.port(), "trust_user", &db).await;
        crate::batchnames::run(&mut c, setval).await;
        if block {
            crate::batchnames::run(&mut c, "BEGIN").await;
        }
        let mut pipeline = [pbe("SELECT 1"), pbe("SELECT pg_temp.mv()")].concat();
        pipeline.extend_from_slice(&crate::batches::flush());
        tokio::io::AsyncWriteExt::write_all(&mut c, &pipeline).await.unwrap();
        // Read up to the error.
        let mut seen = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed");
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("blastwall: refused") {
                break;
            }
        }
        if leaves > 0 {
            // 1: the link dropped; 2: a clean close (Terminate, as drivers and pools do).
            if leaves == 2 {
                tokio::io::AsyncWriteExt::write_all(&mut c, &msg(b'X', &[])).await.unwrap();
            }
            drop(c);
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(seq(&db).await, before, "the client left ({leaves}) after the error (in a block: {block})");
        } else if block {
            // In the client's block: put back once the block ends, as directly it rolls back.
            let r = crate::batchnames::send(&mut c, &[sync()]).await;
            assert_eq!((r.tags.as_str(), r.status), ("Z", Some('E')), "its Sync answered once: {r:?}");
            let r = crate::batchnames::send(&mut c, &[q("ROLLBACK")]).await;
            assert_eq!(r.status, Some('I'), "{r:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(seq(&db).await, before, "the block rolled back");
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(seq(&db).await, before, "the client is idle, its Sync not sent");
            let r = crate::batchnames::send(&mut c, &[sync()]).await;
            assert_eq!((r.tags.as_str(), r.status), ("Z", Some('I')), "its Sync answered once: {r:?}");
            let r = crate::batchnames::send(&mut c, &[pbe("SELECT 2"), sync()]).await;
            assert!(r.codes.is_empty() && r.status == Some('I'), "the next batch runs: {r:?}");
        }
    }
    p.stop().await;
}

/// Nineteenth pass F6 (a driver's pipeline, psycopg's shape: Parse, Bind with a parameter,
/// Describe, Execute per statement, one Sync): a rule's SQL function that sets the protected
/// sequence back, refused; the client then stays idle. The sequence is back meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_moved_by_a_rule_in_a_drivers_pipeline_is_back_while_the_client_is_idle() {
    use crate::batches::{b, describe, e, p as parse};
    let db = db();
    let px = proxy().await;
    let before = seq(&db).await;
    let mut c = startup(px.port(), "trust_user", &db).await;
    crate::batchnames::run(
        &mut c,
        "CREATE TEMP TABLE st2 (id bigint); INSERT INTO st2 VALUES (1); \
         CREATE FUNCTION pg_temp.mv() RETURNS bigint LANGUAGE sql \
           AS $$ SELECT pg_catalog.setval('public.web_user_id_seq', 91111105) $$; \
         CREATE RULE r AS ON DELETE TO st2 DO ALSO SELECT pg_temp.mv()",
    )
    .await;
    let pipeline = [
        parse("", "SELECT 1"),
        b("", "", &[]),
        describe(b'P', ""),
        e("", 0),
        parse("", "DELETE FROM st2 WHERE id = $1"),
        b("", "", &["1"]),
        describe(b'P', ""),
        e("", 0),
        sync(),
    ]
    .concat();
    let r = crate::batchnames::send(&mut c, &[pipeline]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seq(&db).await, before, "left moved while the client is idle");
    px.stop().await;
}

/// Forty-fourth pass M1: a client that leaves in the middle of a batch (no Sync; its link
/// dropped, or a Terminate) has nothing of the batch kept, as directly: the server rolls an
/// unsynced batch back when its client leaves. blastwall, which puts back the protected
/// sequence the batch's INSERT moved before the server session ends, first fails the batch, so
/// that the Sync it needs for that does not commit the client's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_left_without_its_sync_is_not_committed() {
    use tokio::io::AsyncReadExt;
    let db = db();
    let p = proxy().await;
    let d = direct("postgres", SUPERUSER_PW, &db).await;
    let messages = "SELECT count(*) FROM web_messages";
    let left = "SELECT count(*) FROM users WHERE email = 'left'";
    let before = d.query_one(messages, &[]).await.unwrap().get::<_, i64>(0);
    for leaves in [1, 2] {
        let mut c = startup(p.port(), "trust_user", &db).await;
        let delete = "DELETE FROM web_messages WHERE id = (SELECT min(id) FROM web_messages)";
        let mut pipeline = [pbe(delete), pbe("INSERT INTO users (email) VALUES ('left')")].concat();
        pipeline.extend_from_slice(&crate::batches::flush());
        tokio::io::AsyncWriteExt::write_all(&mut c, &pipeline).await.unwrap();
        // Both ran: read up to the INSERT's tag.
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("INSERT 0 1") {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&seen).contains("DELETE 1"), "{}", String::from_utf8_lossy(&seen));
        if leaves == 2 {
            tokio::io::AsyncWriteExt::write_all(&mut c, &msg(b'X', &[])).await.unwrap();
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let kept =
            (d.query_one(messages, &[]).await.unwrap().get::<_, i64>(0), d.query_one(left, &[]).await.unwrap().get(0));
        assert_eq!(kept, (before, 0i64), "the client left ({leaves}) before its Sync");
    }
    p.stop().await;
}
