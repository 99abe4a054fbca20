//! A client message other than CopyData, CopyDone, CopyFail, Flush and Sync sent while the
//! server is in `COPY … FROM STDIN` (started by a Query or by an Execute): directly the server
//! answers `08P01` and FATAL and ends the session, running nothing; through blastwall the
//! client must get the same, and no server session may stay in the COPY. And a COPY that the
//! server ended itself (bad data) before such a message: the message is judged as any other
//! (the data is checked on the server).

use crate::batches::*;
use crate::harness::*;
use tokio::io::AsyncWriteExt;

/// The non-COPY messages a client may send during the COPY, each alone.
fn intruders() -> Vec<Vec<u8>> {
    vec![
        e("p1", 0),
        e("", 1),
        b("", "", &[]),
        b("p2", "s9", &[]),
        p("", "SELECT 1"),
        p("", "DELETE FROM parent WHERE id < 100"),
        describe(b'S', "s9"),
        msg(b'C', b"Ss9\0"),
        q("SELECT 1"),
        q("DELETE FROM parent WHERE id < 100"),
    ]
}

/// Query COPY (with or without a Sync, with or without data before it), then one intruder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_during_a_query_copy_gets_the_servers_answer() {
    let proxy = proxy_for(COUNT_ALL).await;
    for intruder in intruders() {
        for before in [vec![], sync(), msg(b'd', b"901\t1\n"), [msg(b'd', b"902\t1\n"), sync(), flush()].concat()] {
            let batch = [q("COPY parent (id, v) FROM STDIN"), before.clone(), intruder.clone()].concat();
            let via = same_as_direct(&proxy, &[Send(batch), Until(b'E', 2)]).await;
            assert_eq!(tags(&via), "GEE", "{}", show(&via));
            // The same, the intruder sent once the COPY started.
            let script = [
                Send(q("COPY parent (id, v) FROM STDIN")),
                Until(b'G', 1),
                Send([before, intruder.clone()].concat()),
                Until(b'E', 2),
            ];
            let via = same_as_direct(&proxy, &script).await;
            assert_eq!(tags(&via), "GEE", "{}", show(&via));
        }
    }
    proxy.stop().await;
}

/// The same during an Execute's COPY (its Sync held behind it), the intruder sent once the
/// COPY started, with or without data before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_during_an_execute_copy_gets_the_servers_answer() {
    let proxy = proxy_for(COUNT_ALL).await;
    for intruder in intruders() {
        for before in [vec![], msg(b'd', b"901\t1\n")] {
            let script = [
                Send([pbe("COPY parent (id, v) FROM STDIN"), sync()].concat()),
                Until(b'G', 1),
                Send([before, intruder.clone()].concat()),
                Until(b'E', 2),
            ];
            let via = same_as_direct(&proxy, &script).await;
            assert_eq!(tags(&via), "12GEE", "{}", show(&via));
        }
    }
    proxy.stop().await;
}

/// A COPY the server ends itself (a bad row, or a CopyFail) and a write over its limit sent
/// behind it in the same write, before blastwall read the server's error: the write is held
/// until the error is read, then counted and refused (directly it would run), never run
/// unjudged, and the session goes on. Checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_behind_a_copy_the_server_ended_is_judged() {
    let proxy = proxy_for(TIGHT).await;
    let delete = "DELETE FROM parent WHERE id < 100";
    let bad = msg(b'd', b"not a number\t1\n");
    let copy = "COPY parent (id, v) FROM STDIN";
    // How the COPY starts, and what follows the bad row (after an Execute's COPY, a Sync in
    // place of CopyDone: the server answers it, having ignored the one sent in the COPY).
    let starts = [
        (q(copy), vec![]),
        ([pbe(copy), sync()].concat(), [msg(b'c', &[]), sync()].concat()),
        ([pbe(copy), sync()].concat(), sync()),
    ];
    for (start, after) in starts {
        let writes = [
            q(delete),
            q("DELETE FROM parent"),
            [pbe(delete), sync()].concat(),
            [p("", delete), b("", "", &[]), flush(), e("", 0), sync()].concat(),
        ];
        for (write, wait) in writes.iter().flat_map(|w| [(w, false), (w, true)]) {
            let db = db();
            let mut s = startup(proxy.port(), "trust_user", &db).await;
            s.write_all(&start).await.unwrap();
            let mut seen = until(&mut s, b'G').await;
            s.write_all(&[bad.clone(), after.clone()].concat()).await.unwrap();
            if wait {
                // The server's error (and ReadyForQuery) read before the write is sent.
                seen.extend(until(&mut s, b'Z').await);
            }
            s.write_all(write).await.unwrap();
            seen.extend(drain(&mut s).await);
            drop(s);
            let left = admin_sql(pg(), &db, "SELECT count(*) FROM parent WHERE id < 100");
            assert_eq!(left.trim(), "99", "the write ran unjudged: {}", show(&seen));
            assert!(show(&seen).contains("C42501"), "{}", show(&seen));
            assert_eq!(seen.last().map(|m| m.0), Some(b'Z'), "the session goes on: {}", show(&seen));
        }
    }
    proxy.stop().await;
}

/// The messages up to the first with this tag.
async fn until(s: &mut tokio::net::TcpStream, tag: u8) -> Vec<Msg> {
    let mut seen: Vec<Msg> = Vec::new();
    while seen.last().map(|m| m.0) != Some(tag) {
        seen.push(read_msg(s).await);
    }
    seen
}

/// Every message that comes within 3 s of the last one, up to the end of the connection.
async fn drain(s: &mut tokio::net::TcpStream) -> Vec<Msg> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 5];
        match tokio::time::timeout(std::time::Duration::from_secs(3), s.read_exact(&mut h)).await {
            Ok(Ok(_)) => {}
            _ => return out,
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        if s.read_exact(&mut body).await.is_err() {
            return out;
        }
        out.push((h[0], body));
    }
}

/// A table whose COPY fails before it reads any data (a statement trigger that raises).
const FAILS_AT_ONCE: &str = "CREATE TABLE tr (id int);
CREATE FUNCTION no_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no copy into tr'; END $$;
CREATE TRIGGER tr_no BEFORE INSERT ON tr FOR EACH STATEMENT EXECUTE FUNCTION no_copy()";

/// Runs `start` (an Execute's or a Query's COPY), then `rest`, in two writes (the second once
/// the COPY started) and in one, directly and through blastwall, reading `n` ReadyForQuery
/// after the COPY starts (a reply that does not come within 10 s fails), then a Query: the
/// same replies, the session going on.
async fn copy_then(proxy: &Proxy, setup: &str, start: &[u8], rest: &[u8], n: usize) {
    let first = if setup.is_empty() { vec![] } else { vec![Send(q(setup)), Until(b'Z', 1)] };
    let apart = [Send(start.to_vec()), Until(b'G', 1), Send(rest.to_vec()), Until(b'Z', n)];
    let together = [Send([start, rest].concat()), Until(b'Z', n)];
    // (A ROLLBACK ends a transaction block the COPY failed in.)
    let then = [Send(q("ROLLBACK")), Until(b'Z', 1), Send(q("SELECT 1")), Until(b'Z', 1)];
    for script in [&apart[..], &together[..]] {
        let steps: Vec<Step> = first.iter().chain(script).chain(&then).map(copy_step).collect();
        let via = same_as_direct(proxy, &steps).await;
        assert!(tags(&via).ends_with("TDCZ"), "{}", show(&via));
    }
}

fn copy_step(s: &Step) -> Step {
    match s {
        Send(b) => Send(b.clone()),
        Until(t, n) => Until(*t, *n),
    }
}

/// Syncs the client sends during a COPY FROM STDIN, in one write with data around them:
/// directly the server ignores those it reads in the COPY and answers each it reads after the
/// COPY's error (a bad row ahead of them in the same write), so the client waits for every
/// one of those ReadyForQuery; through blastwall it must get the same, none missing, and the
/// session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_behind_a_copys_error_are_answered_as_directly() {
    let proxy = proxy_for(COUNT_ALL).await;
    let copy = "COPY parent (id, v) FROM STDIN";
    let (ext, query) = ([pbe(copy), sync()].concat(), q(copy));
    let bad = || msg(b'd', b"not a number\t1\n");
    let good = |id: u32| msg(b'd', format!("{id}\t1\n").as_bytes());
    let done = || msg(b'c', &[]);
    let update = "UPDATE parent SET v = 7 WHERE id = 1";
    let cases: Vec<(&[u8], Vec<u8>, usize)> = vec![
        // A bad row, a Sync, more of the COPY, a Sync: the server answers both.
        (&ext, [bad(), sync(), good(901), done(), sync()].concat(), 2),
        (&ext, [bad(), sync(), good(901), sync()].concat(), 2),
        (&ext, [good(901), sync(), bad(), sync(), good(902), done(), sync()].concat(), 2),
        (&ext, [bad(), sync(), flush(), good(901), sync(), good(902), sync()].concat(), 3),
        // A Query's COPY: its own ReadyForQuery, then one for each Sync after the error.
        (&query, [bad(), sync(), good(901), sync()].concat(), 3),
        (&query, [bad(), sync(), good(901), done()].concat(), 2),
        // Statements behind them run, as directly.
        (&ext, [bad(), sync(), good(901), pbe("SELECT 1"), sync()].concat(), 2),
        (&ext, [good(901), sync(), bad(), sync(), q("SELECT 2")].concat(), 2),
        (&ext, [bad(), sync(), good(901), pbe(update), sync()].concat(), 2),
        // None of them answered (read in the COPY): what follows up to the next Sync is
        // skipped, as the server skips it after the error (the data says whether it ran).
        (&ext, [bad(), done(), pbe(update), sync()].concat(), 1),
        (&ext, [good(901), sync(), bad(), done(), q(update), pbe(update), sync()].concat(), 1),
    ];
    for (start, rest, n) in &cases {
        copy_then(&proxy, "", start, rest, *n).await;
    }
    // The same in a transaction block (the marker's answers come in a failed one).
    for (start, rest, n) in &cases[..5] {
        copy_then(&proxy, "BEGIN", start, rest, *n).await;
    }
    proxy.stop().await;
}

/// A COPY that fails before it reads any data (a BEFORE STATEMENT trigger that raises), with
/// CopyData and Syncs pipelined behind its start: directly every one of those Syncs is
/// answered; through blastwall too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_behind_a_copy_that_failed_at_once_are_answered_as_directly() {
    // Nothing counted: a COPY into a table with triggers is relayed.
    let proxy = proxy_for("[defaults]\nmode = \"enforce\"\n").await;
    let copy = "COPY tr FROM STDIN";
    let row = || msg(b'd', b"1\n");
    let cases: Vec<(Vec<u8>, Vec<u8>, usize)> = vec![
        ([pbe(copy), sync()].concat(), [row(), sync(), row(), sync()].concat(), 3),
        ([pbe(copy), sync()].concat(), [row(), msg(b'c', &[]), sync()].concat(), 2),
        (pbe(copy), [row(), sync(), row(), sync()].concat(), 2),
        (q(copy), [row(), sync(), row(), sync()].concat(), 3),
    ];
    for (start, rest, n) in cases {
        copy_then(&proxy, FAILS_AT_ONCE, &start, &rest, n).await;
    }
    proxy.stop().await;
}

/// Controls: a Sync only after CopyDone (the one behind the Execute read in the COPY), and a
/// COPY's error before any Sync of the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_after_a_copys_end_are_answered_as_directly() {
    let proxy = proxy_for(COUNT_ALL).await;
    let copy = "COPY parent (id, v) FROM STDIN";
    let (bad, good, done) = (msg(b'd', b"not a number\t1\n"), msg(b'd', b"901\t1\n"), msg(b'c', &[]));
    let cases: Vec<(Vec<u8>, Vec<u8>, usize)> = vec![
        ([pbe(copy), sync()].concat(), [good.clone(), done.clone(), sync()].concat(), 1),
        (pbe(copy), [good.clone(), done.clone(), sync()].concat(), 1),
        (pbe(copy), [bad.clone(), done.clone(), sync()].concat(), 1),
        (pbe(copy), [bad.clone(), sync()].concat(), 1),
        (q(copy), bad.clone(), 1),
        (q(copy), [good.clone(), done.clone()].concat(), 1),
        // Syncs read in the COPY, which ends well or by the client's CopyFail.
        (q(copy), [good.clone(), sync(), done.clone()].concat(), 1),
        ([pbe(copy), sync()].concat(), [good.clone(), sync(), done, sync()].concat(), 1),
        ([pbe(copy), sync()].concat(), [good, sync(), msg(b'f', b"no\0"), sync()].concat(), 1),
    ];
    for (start, rest, n) in cases {
        copy_then(&proxy, "", &start, &rest, n).await;
    }
    proxy.stop().await;
}

/// Eighteenth pass FPk: a `COPY … FROM STDIN` sent as a Query, then a pipeline, then a
/// counted signup sent as a Query: the signup runs (it was refused as "a Query message in the
/// middle of an extended-protocol batch").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_after_a_copy_and_a_pipeline_is_not_taken_for_the_middle_of_a_batch() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), crate::binds::RAW, &db).await;
    let copy = [q("COPY users (auth_source, email) FROM STDIN"), msg(b'd', b"oauth\tcopy@x\n"), msg(b'c', &[])];
    let r = crate::batchnames::send(&mut c, &copy).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let pipeline = [
        p("", "SELECT 1"),
        b("", "", &[]),
        describe(b'P', ""),
        e("", 0),
        p("", "INSERT INTO users (auth_source, email) VALUES ('oauth', 'pl@x') RETURNING id"),
        b("", "", &[]),
        describe(b'P', ""),
        e("", 0),
        sync(),
    ]
    .concat();
    let r = crate::batchnames::send(&mut c, &[pipeline]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let r =
        crate::batchnames::send(&mut c, &[q("INSERT INTO users (auth_source, email) VALUES ('oauth', 's@x')")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email LIKE '%@x'").await, 3);
}
