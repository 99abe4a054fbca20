//! Findings of the red-team review of the statement path, each reproduced as its attacker
//! (or its driver) sent it: message order behind a counted Execute, one namespace for SQL
//! `PREPARE` and protocol Parse, blastwall's own statements leaving the client's unnamed
//! statement and portal alone, and COPY in the extended protocol. Guard bypasses are checked
//! on the server directly; fidelity against the same script run directly.

use crate::batches::*;
use crate::harness::*;

/// G2: nothing the client sent after a counted Execute reaches the server before it, a
/// simple Query included (a ROLLBACK there must roll the write back; a SELECT there sees it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_behind_a_counted_execute_runs_after_it() {
    let proxy = proxy_for(COUNT_ALL).await;
    let script = [
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([pbe("UPDATE parent SET v = 7 WHERE id = 1"), q("ROLLBACK"), sync()].concat()),
        Until(b'Z', 2),
        Send(
            [
                pbe("UPDATE parent SET v = v + 1 WHERE id = 2 RETURNING v"),
                q("SELECT v FROM parent WHERE id = 2"),
                sync(),
            ]
            .concat(),
        ),
        Until(b'Z', 2),
        Send(
            [pbe("DELETE FROM child WHERE id = 3"), q("SELECT count(*) FROM child"), pbe("SELECT 1"), sync()].concat(),
        ),
        Until(b'Z', 2),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// G3: the server ignores a Sync sent while it is in COPY FROM STDIN of an extended batch;
/// the session goes on (another batch, a simple Query) as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_copy_in_leaves_the_session_usable() {
    let proxy = proxy_for(COUNT_ALL).await;
    let copy = [p("", "COPY tc FROM STDIN"), b("", "", &[]), describe(b'P', ""), e("", 0), sync()].concat();
    let script = [
        Send(q("CREATE TEMP TABLE tc (a int)")),
        Until(b'Z', 1),
        // libpq: PQexecParams, PQputCopyData, PQputCopyEnd (CopyDone, then a Sync of its own).
        Send(copy.clone()),
        Until(b'G', 1),
        Send([msg(b'd', b"5\n"), msg(b'c', &[]), sync()].concat()),
        Until(b'Z', 1),
        Send([p("", "UPDATE parent SET v = v + 1 WHERE id = $1"), b("", "", &["1"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send(q("UPDATE parent SET v = v + 1 WHERE id = 2")),
        Until(b'Z', 1),
        // A client that sends no Sync after CopyDone: the next batch answers for both.
        Send(copy),
        Until(b'G', 1),
        Send([msg(b'd', b"6\n"), msg(b'c', &[]), pbe("DELETE FROM child WHERE id = 4"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("SELECT count(*) FROM tc")),
        Until(b'Z', 1),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}
