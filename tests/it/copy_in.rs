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
