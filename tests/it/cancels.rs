//! Red-team pass 3, F14 and F12. A client's CancelRequest through blastwall, whatever
//! statement it meets (the client's, or blastwall's own around a counted write): the client
//! sees what a direct cancel gives (57014, never the CommandComplete of a write that is not
//! kept), its session is idle afterwards (or its own block aborted), no backend is left idle
//! in a transaction, and the data hold exactly the writes the client was told about. And a
//! refusal in the middle of a batch followed by a Query reaches the client as blastwall's
//! refusal, not as the marker's raw error.

use crate::batches::{e, p, pbe, q, read_msg, run, sync, tags, Msg, Send, Until, COUNT_ALL};
use crate::harness::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `t` has no index (every UPDATE of it is counted, none proven a point write); `slow`'s
/// deferred constraint trigger sleeps at the end of the transaction (in blastwall's
/// `SET CONSTRAINTS ALL IMMEDIATE` when it opened the transaction, at COMMIT directly).
const SETUP: &str = "\
CREATE TABLE t (id int, v int NOT NULL DEFAULT 0);
INSERT INTO t (id) SELECT g FROM generate_series(1, 40) g;
CREATE TABLE slow (id int, v int NOT NULL DEFAULT 0);
INSERT INTO slow (id) VALUES (1);
CREATE FUNCTION sleepy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER sleepy AFTER UPDATE ON slow DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sleepy();
GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;";

fn db() -> String {
    let db = fresh_db("cancels");
    admin_sql(pg(), &db, SETUP);
    db
}

/// A raw client that knows its backend key.
struct Raw {
    s: TcpStream,
    port: u16,
    key: Vec<u8>,
}

impl Raw {
    async fn connect(port: u16, db: &str) -> Raw {
        let mut s = send_startup(port, 196608, &[("user", "trust_user"), ("database", db)]).await;
        let mut key = Vec::new();
        loop {
            let (t, body) = read_msg(&mut s).await;
            match t {
                b'K' => key = body,
                b'Z' => break,
                b'E' => panic!("startup failed: {}", String::from_utf8_lossy(&body)),
                _ => {}
            }
        }
        Raw { s, port, key }
    }

    /// Sends a CancelRequest with this session's key after `delay`, and waits until the
    /// proxy (or server) closed that connection: the cancel was delivered.
    fn cancel_after(&self, delay: Duration) -> tokio::task::JoinHandle<()> {
        let (port, key) = (self.port, self.key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut pkt = 16u32.to_be_bytes().to_vec();
            pkt.extend_from_slice(&80877102u32.to_be_bytes());
            pkt.extend_from_slice(&key);
            c.write_all(&pkt).await.unwrap();
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink).await;
        })
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The replies up to ReadyForQuery.
    async fn until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), read_msg(&mut self.s))
                .await
                .unwrap_or_else(|_| panic!("no ReadyForQuery within 20 s; so far {}", tags(&out)));
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }
}

fn codes(m: &[Msg]) -> Vec<String> {
    m.iter()
        .filter(|(t, _)| *t == b'E')
        .filter_map(|(_, b)| b.split(|&c| c == 0).find(|f| f.first() == Some(&b'C')).map(|f| f[1..].to_vec()))
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .collect()
}

fn status(m: &[Msg]) -> char {
    m.last().filter(|(t, _)| *t == b'Z').map(|(_, b)| b[0] as char).expect("ends with ReadyForQuery")
}

/// Whether the replies carry the write's CommandComplete.
fn updated(m: &[Msg]) -> bool {
    m.iter().any(|(t, b)| *t == b'C' && b.starts_with(b"UPDATE"))
}

fn told_kept(m: &[Msg]) -> bool {
    updated(m) && codes(m).is_empty()
}

/// The replies to a write the client may have cancelled: a cancel (57014 only) or none; never
/// a CommandComplete followed by an error.
fn check_write(m: &[Msg], what: &str) {
    let c = codes(m);
    assert!(c.iter().all(|c| c == "57014"), "{what}: {} {c:?}", tags(m));
    if !c.is_empty() {
        assert!(!updated(m), "{what}: told a write that was not kept: {}", tags(m));
    }
}

fn server_sum(db: &str) -> i64 {
    admin_sql(pg(), db, "SELECT sum(v) FROM t").trim().parse().unwrap()
}

fn idle_in_transaction(db: &str) -> String {
    admin_sql(
        pg(),
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state LIKE 'idle in transaction%' \
             AND pid <> pg_backend_pid()"
        ),
    )
    .trim()
    .to_string()
}

/// Counted writes (simple, extended alone and after another statement, inside the client's
/// own block) with cancels sent at
/// random small delays; after each, `SELECT 1` works and the session is idle; at the end no
/// backend is idle in a transaction and the table holds exactly the writes the client was
/// told were kept. Run directly too (the assertions describe a direct cancel).
async fn cancel_loop(port: u16, db: &str, rounds: u32, must_meet: bool) {
    let mut c = Raw::connect(port, db).await;
    let mut told = 0i64;
    let mut seed = 0x2545_f491_u64;
    let mut cancelled = [0usize; 4];
    for i in 0..rounds {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // The cancel leaves up to 1.5 ms before the write or after it: its own trip (a new
        // connection, the server's fork) spreads where it lands over the whole check.
        let delay = Duration::from_micros((seed >> 33) % 1500);
        let head_start = Duration::from_micros((seed >> 13) % 1500);
        let sql = format!("UPDATE t SET v = v + 1 WHERE id = {}", i % 40 + 1);
        let kind = i % 4;
        if kind == 2 {
            c.send(&q("BEGIN")).await;
            assert_eq!(status(&c.until_ready().await), 'T');
        }
        let msgs = match kind {
            1 => [pbe(&sql), sync()].concat(),
            // Counted where it stands in its batch (`session::counting`).
            3 => [pbe("SELECT 1"), pbe(&sql), sync()].concat(),
            _ => q(&sql),
        };
        let cancel = c.cancel_after(delay);
        tokio::time::sleep(head_start).await;
        c.send(&msgs).await;
        let r = c.until_ready().await;
        cancel.await.unwrap();
        let what = format!("round {i} (kind {kind})");
        check_write(&r, &what);
        cancelled[kind as usize] += usize::from(!codes(&r).is_empty());
        if kind == 2 {
            // In its own block: open if the write stood, aborted if it was cancelled.
            let st = status(&r);
            assert_eq!(st, if codes(&r).is_empty() { 'T' } else { 'E' }, "{what}: {}", tags(&r));
            c.send(&q(if st == 'T' { "COMMIT" } else { "ROLLBACK" })).await;
            let end = c.until_ready().await;
            assert!(codes(&end).iter().all(|c| c == "57014"), "{what}: end {}", tags(&end));
            if st == 'T' && codes(&end).is_empty() && told_kept(&r) {
                told += 1;
            }
        } else {
            assert_eq!(status(&r), 'I', "{what}: {}", tags(&r));
            told += i64::from(told_kept(&r));
        }
        c.send(&q("SELECT 1")).await;
        let one = c.until_ready().await;
        assert!(codes(&one).is_empty() && status(&one) == 'I', "{what}: SELECT 1 after it: {}", tags(&one));
    }
    eprintln!("port {port}: writes cancelled (simple, extended, in a block, in a batch): {cancelled:?}");
    assert!(cancelled.iter().sum::<usize>() > 0 || !must_meet, "no cancel met a write in {rounds} rounds");
    assert_eq!(idle_in_transaction(db), "0", "a backend is left idle in a transaction");
    assert_eq!(server_sum(db), told, "the table holds other writes than the client was told were kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_at_random_moments_leave_what_a_direct_cancel_leaves() {
    let proxy = crate::batches::proxy_for(COUNT_ALL).await;
    // Directly a write takes well under a millisecond: few cancels meet one.
    cancel_loop(pg().server.port, &db(), 90, false).await;
    cancel_loop(proxy.port(), &db(), 400, true).await;
}

/// A cancel that meets blastwall's `SET CONSTRAINTS ALL IMMEDIATE` (a deferred trigger that
/// sleeps): as a direct cancel of the implicit COMMIT it stands for, 57014 and nothing kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_blastwalls_own_statement_is_the_clients_cancel() {
    let proxy = crate::batches::proxy_for(COUNT_ALL).await;
    let sql = "UPDATE slow SET v = v + 1 WHERE id = 1";
    let mut seen = Vec::new();
    for port in [pg().server.port, proxy.port()] {
        let db = db();
        let mut c = Raw::connect(port, &db).await;
        c.send(&q(sql)).await;
        let cancel = c.cancel_after(Duration::from_millis(500));
        let r = c.until_ready().await;
        cancel.await.unwrap();
        c.send(&q("SELECT 1")).await;
        let one = c.until_ready().await;
        assert!(codes(&one).is_empty() && status(&one) == 'I', "SELECT 1 after it: {}", tags(&one));
        assert_eq!(admin_sql(pg(), &db, "SELECT v FROM slow").trim(), "0");
        assert_eq!(idle_in_transaction(&db), "0");
        assert!(codes(&r).iter().all(|c| c == "57014"), "{}", crate::batches::show(&r));
        seen.push((tags(&r), codes(&r), status(&r)));
    }
    assert_eq!(seen[1], seen[0], "through blastwall (right) and direct (left) differ");
    assert_eq!(seen[0], ("EZ".to_string(), vec!["57014".to_string()], 'I'));

    // Extended: never the CommandComplete of the write that was undone.
    let db = db();
    let mut c = Raw::connect(proxy.port(), &db).await;
    c.send(&[pbe(sql), sync()].concat()).await;
    let cancel = c.cancel_after(Duration::from_millis(500));
    let r = c.until_ready().await;
    cancel.await.unwrap();
    assert_eq!((tags(&r), codes(&r), status(&r)), ("12EZ".to_string(), vec!["57014".to_string()], 'I'));
    assert_eq!(admin_sql(pg(), &db, "SELECT v FROM slow").trim(), "0");
    assert_eq!(idle_in_transaction(&db), "0");
}

/// F12: a write refused in the middle of a batch, then a Query before any Sync: the client
/// sees blastwall's refusal where a failing write shows the server's error (same shape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_a_query_in_the_same_batch_is_blastwalls() {
    let proxy = crate::batches::proxy_for(crate::batches::TIGHT).await;
    let script = |sql: &str| {
        vec![
            Send([p("", sql), crate::batches::b("", "", &[]), e("", 0), q("SELECT 42"), sync()].concat()),
            Until(b'Z', 1),
            Send(q("SELECT 1")),
            Until(b'Z', 1),
        ]
    };
    let d1 = crate::batches::db();
    let failing = run(pg().server.port, &d1, &script("UPDATE parent SET v = 1 / (id - id) WHERE id <= 150")).await;
    let d2 = crate::batches::db();
    let refused = run(proxy.port(), &d2, &script("UPDATE parent SET v = 1 WHERE id <= 150")).await;
    assert_eq!(tags(&refused), tags(&failing), "shape");
    assert_eq!(codes(&refused), ["42501"], "{:?}", refused);
    let text: String = refused.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(text.contains("blastwall: refused UPDATE") && !text.contains("blastwall-refusal-"), "{text}");
    assert_eq!(admin_sql(pg(), &d2, "SELECT count(*) FROM parent WHERE v <> 0").trim(), "0");
}

/// A cancel that meets one of blastwall's catalog questions (asked on the client's session
/// before its statement is judged) ends the client's statement with 57014, as a direct cancel
/// of it does: nothing of it runs (judged without the answer or not), nothing is learned from
/// the cancelled answer, and the client's own block is aborted as the server has it — a
/// simple Query and an extended batch, outside a block and inside one. The question is made
/// slow deterministically: a superuser holds `pg_depend` locked (the database's hidden-callers
/// question reads it, and so does the session's taint question, asked first once the client
/// made a temporary object: `own`) and the cancel is sent once the question waits for that
/// lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_a_catalog_question_ends_the_clients_statement() {
    let proxy = proxy_with(base_config(), shipped_policy()).await;
    let sql = "UPDATE t SET v = v + 1 WHERE id = 1";
    let cases = [(false, false, false), (true, false, false), (false, true, false), (true, true, false)];
    for (extended, block, own) in cases.into_iter().chain([(false, false, true), (true, true, true)]) {
        let what = format!("extended {extended}, in a block {block}, own temporary object {own}");
        let db = db();
        let mut c = Raw::connect(proxy.port(), &db).await;
        if own {
            c.send(&q("CREATE TEMP TABLE mine (a int)")).await;
            assert_eq!(status(&c.until_ready().await), 'I');
        }
        if block {
            c.send(&q("BEGIN")).await;
            assert_eq!(status(&c.until_ready().await), 'T');
        }
        // DDL through blastwall (another session's) makes the database's answers be asked again.
        let other = connect(proxy.port(), "app", APP_PW, &db).await;
        other.batch_execute("CREATE TEMP TABLE scratch (a int)").await.unwrap();
        let lock = direct("postgres", SUPERUSER_PW, &db).await;
        lock.batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_depend IN ACCESS EXCLUSIVE MODE").await.unwrap();
        c.send(&if extended { [pbe(sql), sync()].concat() } else { q(sql) }).await;
        let waiting = "SELECT count(*) FROM pg_catalog.pg_locks \
            WHERE relation = 'pg_catalog.pg_depend'::regclass AND NOT granted";
        let mut waited = 0;
        while lock.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) == 0 {
            waited += 1;
            assert!(waited < 200, "{what}: no catalog question waits for pg_depend");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // Delivered (the server signalled the backend) before the lock is let go.
        c.cancel_after(Duration::ZERO).await.unwrap();
        lock.batch_execute("COMMIT").await.unwrap();
        let r = c.until_ready().await;
        if !block {
            assert_eq!(server_sum(&db), 0, "{what}: the cancelled statement ran: {}", tags(&r));
        }
        assert_eq!(codes(&r), ["57014"], "{what}: {}", crate::batches::show(&r));
        assert!(!updated(&r), "{what}: {}", tags(&r));
        assert_eq!(status(&r), if block { 'E' } else { 'I' }, "{what}: {}", tags(&r));
        if block {
            c.send(&q("ROLLBACK")).await;
            assert_eq!(status(&c.until_ready().await), 'I');
        }
        assert_eq!(server_sum(&db), 0, "{what}: the cancelled statement was kept");
        // The session goes on: the question is asked again and answered, the write runs.
        c.send(&q(sql)).await;
        let again = c.until_ready().await;
        assert!(codes(&again).is_empty() && told_kept(&again), "{what}: {}", tags(&again));
        assert_eq!(server_sum(&db), 1, "{what}");
        assert_eq!(idle_in_transaction(&db), "0", "{what}");
    }
    proxy.stop().await;
}
