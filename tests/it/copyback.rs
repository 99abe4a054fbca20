//! Twenty-seventh pass H3: a lone `COPY users (auth_source, plan, email) FROM STDIN` (relayed
//! uncounted: users' id default `-nextval('web_user_id_seq')` moves the protected sequence one
//! per row) that fails — a bad row at its end, the client's CopyFail, the client leaving in the
//! middle, with or without a Terminate (twenty-eighth pass N1), or by sending another message
//! — has the sequence put back as a failed INSERT does: at once outside a block, when the
//! client's failed block ends inside one. A COPY that succeeds keeps its move, and so does
//! a failed one within the rule's allowance. Sequence and rows read directly on the server.

use crate::batches::{q, read_msg, run, show, tags, Send, Until};
use crate::harness::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const COPY: &str = "COPY users (auth_source, plan, email) FROM STDIN";

/// A database whose `trust_user` (the raw scripts' role) may write users as app does.
fn db() -> String {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user");
    // A role membership is the cluster's: granted once (tests that grant it at once race on
    // pg_auth_members' unique index).
    static MEMBER: std::sync::Once = std::sync::Once::new();
    MEMBER.call_once(|| {
        admin_sql(pg(), &db, "GRANT app TO trust_user");
    });
    db
}

async fn seq(db: &str) -> (i64, bool) {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let r = c.query_one("SELECT last_value, is_called FROM web_user_id_seq", &[]).await.unwrap();
    (r.get(0), r.get(1))
}

async fn users(db: &str) -> i64 {
    count(db, "SELECT count(*) FROM users").await
}

/// `n` good rows as CopyData messages, in one buffer.
fn rows(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| msg(b'd', format!("oauth\tfree\tc{i}@example.com\n").as_bytes())).collect()
}

/// A row that fails the table's `NOT NULL` on auth_source.
fn bad() -> Vec<u8> {
    msg(b'd', b"\\N\tfree\tbad@example.com\n")
}

fn done() -> Vec<u8> {
    msg(b'c', &[])
}

fn fail() -> Vec<u8> {
    msg(b'f', b"the client gives up\0")
}

/// A lone COPY that fails on its last row, or that the client ends with CopyFail: the
/// server's own error, no row, the sequence where it stood; the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_that_moved_the_protected_sequence_is_put_back() {
    let db = db();
    let p = proxy().await;
    let cases = [
        ([rows(5000), bad(), done()].concat(), "null value in column"),
        ([rows(3000), fail()].concat(), "COPY from stdin failed"),
    ];
    for (data, error) in cases {
        let (before, n) = (seq(&db).await, users(&db).await);
        let script = [Send(q(COPY)), Until(b'G', 1), Send(data), Until(b'Z', 1), Send(q("SELECT 3")), Until(b'Z', 1)];
        let out = show(&run(p.port(), &db, &script).await);
        assert!(out.contains(error), "the server's own error: {out}");
        assert!(out.contains("\u{1}3\n"), "the session went on: {out}");
        assert_eq!(users(&db).await, n, "{error}: no row kept");
        assert_eq!(seq(&db).await, before, "{error}: the sequence left moved");
    }
    // The Query and its data in one write (the Query waits for the reading, the data behind it).
    let (before, n) = (seq(&db).await, users(&db).await);
    let script = [Send([q(COPY), rows(5000), bad(), done(), q("SELECT 3")].concat()), Until(b'Z', 2)];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("null value in column") && out.contains("\u{1}3\n"), "{out}");
    assert_eq!((seq(&db).await, users(&db).await), (before, n), "in one write");
    // psql's `-c COPY … FROM STDIN`, the rows on its standard input (the red team's shape).
    let data: String =
        (0..5000).map(|i| format!("oauth\tfree\tp{i}@example.com\n")).collect::<String>() + "\\N\tfree\tx\n";
    let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-v", "ON_ERROR_STOP=1", "-c", COPY], Some(&data));
    assert!(!ok && err.contains("null value in column"), "{err}");
    assert_eq!((seq(&db).await, users(&db).await), (before, n), "psql");
    p.stop().await;
}

/// Inside the client's block: the block stays failed, as directly; the sequence goes back
/// once the client's ROLLBACK ends it (and on a ROLLBACK TO SAVEPOINT, inside the block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_in_a_block_is_put_back_when_the_block_ends() {
    let db = db();
    let p = proxy().await;
    for (open, end) in [("BEGIN", "ROLLBACK"), ("BEGIN; SAVEPOINT s", "ROLLBACK TO SAVEPOINT s")] {
        let (before, n) = (seq(&db).await, users(&db).await);
        let script = [
            Send(q(open)),
            Until(b'Z', 1),
            Send(q(COPY)),
            Until(b'G', 1),
            Send([rows(5000), bad(), done()].concat()),
            Until(b'Z', 1),
            Send(q("SELECT 1")),
            Until(b'Z', 1),
            Send(q(end)),
            Until(b'Z', 1),
            Send(q("SELECT 3")),
            Until(b'Z', 1),
            Send(q("COMMIT")),
            Until(b'Z', 1),
        ];
        let out = run(p.port(), &db, &script).await;
        let shown = show(&out);
        assert!(shown.contains("null value in column"), "{shown}");
        assert!(shown.contains("current transaction is aborted"), "the block stays failed: {shown}");
        assert!(shown.contains("\u{1}3\n"), "{shown}");
        assert_eq!(users(&db).await, n);
        assert_eq!(seq(&db).await, before, "{open} … {end}: {}", tags(&out));
    }
    p.stop().await;
}

/// What is put back and what is not: a COPY that succeeds keeps its rows and its move; a
/// failed one keeps none of its move, however small (as a failed INSERT's: failure after
/// failure, each within the rule's allowance, would creep past any budget, `creep.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_succeeds_keeps_its_move_and_a_failed_one_none() {
    let db = db();
    let p = proxy().await;
    let ((start, _), n) = (seq(&db).await, users(&db).await);
    let script = [Send(q(COPY)), Until(b'G', 1), Send([rows(2000), done()].concat()), Until(b'Z', 1)];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("COPY 2000"), "{out}");
    assert_eq!(users(&db).await, n + 2000);
    assert_eq!(seq(&db).await, (start + 2000, true));
    let script = [Send(q(COPY)), Until(b'G', 1), Send([rows(500), bad(), done()].concat()), Until(b'Z', 1)];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("null value in column"), "{out}");
    assert_eq!(users(&db).await, n + 2000);
    assert_eq!(seq(&db).await, (start + 2000, true), "a small move of a failed COPY is put back too");
    p.stop().await;
}

/// The client leaves in the middle of its COPY (at a message boundary): blastwall ends the
/// COPY with a CopyFail of its own and puts the sequence back before the server session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_client_leaves_is_put_back() {
    let db = db();
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    // The rows reach the server (the sequence moves) before the client goes.
    let s = copying_4000(p.port(), &db, before).await;
    drop(s);
    let put = put_back_within(&db, before, 10).await;
    assert!(put, "the sequence left at {:?}, was {before:?}", seq(&db).await);
    assert_eq!(users(&db).await, n);
    p.stop().await;
}

/// The client ends its COPY and leaves without reading the answer: a COPY that failed (a bad
/// last row) is put back; one that was kept keeps its rows and its move (putting it back
/// would hand out its rows' ids again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_ended_by_a_client_that_leaves_is_put_back_only_when_it_failed() {
    let db = db();
    let p = proxy().await;
    for (data, kept) in [([rows(4000), bad(), done()].concat(), false), ([rows(3000), done()].concat(), true)] {
        let ((start, _), n) = (seq(&db).await, users(&db).await);
        let mut s = startup(p.port(), "trust_user", &db).await;
        s.write_all(&q(COPY)).await.unwrap();
        while read_msg(&mut s).await.0 != b'G' {}
        s.write_all(&data).await.unwrap();
        drop(s);
        // The server session ends once blastwall is done with it.
        let ended = async {
            while count(&db, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'raw-%' AND datname = current_database()").await > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(15), ended).await.expect("the server session did not end");
        match kept {
            true => {
                assert_eq!(users(&db).await, n + 3000);
                assert_eq!(seq(&db).await, (start + 3000, true), "a kept COPY keeps its move");
            }
            false => {
                assert_eq!(users(&db).await, n);
                assert_eq!(seq(&db).await.0, start, "a failed COPY is put back");
            }
        }
    }
    p.stop().await;
}

/// Whether the server's sequence stands at `before` again within `secs` seconds.
async fn put_back_within(db: &str, before: (i64, bool), secs: u64) -> bool {
    let back = async {
        while seq(db).await != before {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), back).await.is_ok()
}

/// A raw session of `trust_user` in the middle of its COPY, 4,000 rows sent, once they reached
/// the server (the sequence moved by them past `before`).
async fn copying_4000(port: u16, db: &str, before: (i64, bool)) -> tokio::net::TcpStream {
    let mut s = startup(port, "trust_user", db).await;
    s.write_all(&q(COPY)).await.unwrap();
    while read_msg(&mut s).await.0 != b'G' {}
    s.write_all(&rows(4000)).await.unwrap();
    moved_by(db, before.0, 4000).await;
    s
}

/// Waits until the server's sequence moved by `n` past `before` (the rows reached it).
async fn moved_by(db: &str, before: i64, n: i64) {
    let moved = async {
        while seq(db).await.0 < before + n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), moved).await.expect("the rows never reached the server");
}

/// Twenty-eighth pass N1: the client ends its session with a Terminate in the middle of the
/// COPY (libpq's `PQfinish`): the Terminate is not relayed, blastwall ends the COPY itself and
/// puts the sequence back before the server session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_client_terminates_is_put_back() {
    let db = db();
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let mut s = copying_4000(p.port(), &db, before).await;
    s.write_all(&msg(b'X', &[])).await.unwrap();
    drop(s);
    let put = put_back_within(&db, before, 10).await;
    assert!(put, "the sequence left at {:?}, was {before:?}", seq(&db).await);
    assert_eq!(users(&db).await, n);
    p.stop().await;
}

/// Twenty-eighth pass N1: a Query in the middle of the COPY. Directly, the server answers it
/// with 08P01 and ends the session, the COPY's transaction rolled back with the sequence
/// moved; through blastwall the COPY is ended first by a CopyFail of blastwall's (its error
/// says why), the sequence put back, and the Query then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_the_middle_of_a_copy_ends_it_and_it_is_put_back() {
    let db = db();
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let mut s = copying_4000(p.port(), &db, before).await;
    s.write_all(&q("SELECT 1")).await.unwrap();
    let mut got = Vec::new();
    while got.iter().filter(|(t, _): &&(u8, Vec<u8>)| *t == b'Z').count() < 2 {
        got.push(read_msg(&mut s).await);
    }
    assert_eq!(tags(&got), "EZTDCZ", "{}", show(&got));
    assert!(String::from_utf8_lossy(&got[0].1).contains("another message before the COPY's end"), "{}", show(&got));
    let put = put_back_within(&db, before, 10).await;
    assert!(put, "the sequence left at {:?}, was {before:?}", seq(&db).await);
    assert_eq!(users(&db).await, n);
    p.stop().await;
}

/// Twenty-ninth pass P1: a message of no known type, or one whose length field is invalid, in
/// the middle of the COPY: the server would end the session (FATAL 08P01); blastwall ends it
/// too, the COPY's move put back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_server_would_end_the_session_for_is_put_back_first() {
    let db = db();
    let p = proxy().await;
    let mut too_short = vec![b'd'];
    too_short.extend_from_slice(&3u32.to_be_bytes());
    for intruder in [msg(b'z', b"x"), too_short] {
        let (before, n) = (seq(&db).await, users(&db).await);
        let mut s = copying_4000(p.port(), &db, before).await;
        s.write_all(&intruder).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest))
            .await;
        assert!(String::from_utf8_lossy(&rest).contains("08P01"), "{}", String::from_utf8_lossy(&rest));
        let put = put_back_within(&db, before, 10).await;
        assert!(put, "{:?}: the sequence left at {:?}, was {before:?}", intruder[0] as char, seq(&db).await);
        assert_eq!(users(&db).await, n);
    }
    p.stop().await;
}

/// Twenty-ninth pass P3: an extended-protocol message in the middle of the COPY (which ends it,
/// by blastwall's CopyFail), then the client's Terminate or its link dropped at once, no Sync
/// sent and nothing read: the move is put back before the server session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_message_then_leaving_mid_copy_is_put_back() {
    let db = db();
    let p = proxy().await;
    let bind = msg(b'B', b"\0\0\0\0\0\0\0\0");
    let close = msg(b'C', b"Sx\0");
    let forms = [bind, parse("", "SELECT 1"), close];
    for (intruder, terminate) in forms.iter().flat_map(|i| [(i.clone(), false), (i.clone(), true)]) {
        let (before, n) = (seq(&db).await, users(&db).await);
        let mut s = copying_4000(p.port(), &db, before).await;
        let mut out = intruder.clone();
        if terminate {
            out.extend(msg(b'X', &[]));
        }
        s.write_all(&out).await.unwrap();
        drop(s);
        let put = put_back_within(&db, before, 15).await;
        assert!(
            put,
            "{:?} {terminate}: the sequence left at {:?}, was {before:?}",
            intruder[0] as char,
            seq(&db).await
        );
        assert_eq!(users(&db).await, n);
    }
    p.stop().await;
}

/// Thirtieth pass H2: a COPY that may move the protected sequence where blastwall cannot read
/// where it stands first — an extended-protocol COPY (tokio-postgres' `copy_in`, a Parse),
/// beside another statement in one Query, in one Query with its `BEGIN` — is refused while
/// the session enforces: nothing runs, the sequence stays. A lone Query COPY goes on, read
/// first, and so does one behind a batch that ran nothing (asyncpg's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_may_move_the_sequence_unread_is_refused() {
    let db = db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let refused = |r: Result<(), tokio_postgres::Error>, what: &str| {
        let e = r.expect_err(what);
        let text = format!("{:?}", e.as_db_error());
        assert!(text.contains("unverifiable") && text.contains("a Query of its own"), "{what}: {text}");
    };
    let r = via.copy_in::<_, bytes::Bytes>(COPY).await.map(|_| ());
    refused(r, "extended-protocol COPY");
    refused(via.batch_execute(&format!("SELECT 1; {COPY}")).await, "beside another statement");
    refused(via.batch_execute(&format!("BEGIN; {COPY}")).await, "with its BEGIN");
    via.batch_execute("ROLLBACK").await.ok();
    // The thirtieth pass's own: in a block, Parse, Bind, Execute of the COPY and a Flush.
    use crate::batches::{describe, flush, p as parse, pbe, sync};
    let script = [
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([pbe(COPY), flush()].concat()),
        Until(b'E', 1),
        Send([sync(), q("ROLLBACK")].concat()),
        Until(b'Z', 2),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("a Query of its own") && !out.contains("G "), "{out}");
    assert_eq!((seq(&db).await, users(&db).await), (before, n));
    // A lone Query COPY is read first, and runs.
    let script = [
        Send(q(COPY)),
        Until(b'G', 1),
        Send([msg(b'd', b"oauth\tfree\tlone@x\n"), msg(b'c', &[])].concat()),
        Until(b'Z', 1),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("COPY 1"), "{out}");
    assert_eq!(users(&db).await, n + 1);
    // asyncpg's `copy_records_to_table`: Parse, Describe and Flush, then the COPY Query in that
    // open batch — blastwall ends the batch itself, reads, and the COPY runs.
    let script = [
        Send([parse("s", "SELECT 1"), describe(b'S', "s"), flush()].concat()),
        Until(b'T', 1),
        Send(q(COPY)),
        Until(b'G', 1),
        Send([msg(b'd', b"oauth\tfree\tasyncpg@x\n"), msg(b'c', &[])].concat()),
        Until(b'Z', 1),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("COPY 1") && !out.contains("unverifiable"), "{out}");
    assert_eq!(users(&db).await, n + 2);
    p.stop().await;
}
