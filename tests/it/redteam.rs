//! Findings of the red-team review of the statement path, each reproduced as its attacker
//! (or its driver) sent it: message order behind a counted Execute, one namespace for SQL
//! `PREPARE` and protocol Parse, blastwall's own statements leaving the client's unnamed
//! statement and portal alone, and COPY in the extended protocol. Guard bypasses are checked
//! on the server directly; fidelity against the same script run directly.

use crate::batches::*;

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
