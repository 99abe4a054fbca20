//! Issue 11, fifth pass F9: what a counted statement's client receives besides its rows — the
//! statement's own DEBUG notices (`client_min_messages = debug…`) and notifications — arrives
//! as directly, in the server's order. Raw protocol scripts run directly and through
//! blastwall (every DELETE and UPDATE counted), the client-visible streams compared.

use crate::batches::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_statements_debug_notices_reach_the_client() {
    let proxy = proxy_for(COUNT_ALL).await;
    for level in ["debug1", "debug2", "debug3", "debug4", "debug5"] {
        let set = q(&format!("SET client_min_messages = {level}"));
        let script = [
            Send(set.clone()),
            Until(b'Z', 1),
            Send(q("DELETE FROM child WHERE id = 7")),
            Until(b'Z', 1),
            Send([pbe("UPDATE parent SET v = 1 WHERE id = 8"), sync()].concat()),
            Until(b'Z', 1),
            Send([pbe("SELECT 1"), pbe("UPDATE parent SET v = 1 WHERE id = 9"), sync()].concat()),
            Until(b'Z', 1),
            Send(q("DELETE FROM child WHERE id = 10; UPDATE parent SET v = 2 WHERE id = 11")),
            Until(b'Z', 1),
            Send(q("BEGIN")),
            Until(b'Z', 1),
            Send(q("DELETE FROM child WHERE id = 12")),
            Until(b'Z', 1),
            Send([pbe("SELECT 1"), pbe("DELETE FROM child WHERE id = 13"), sync()].concat()),
            Until(b'Z', 1),
            Send(q("COMMIT")),
            Until(b'Z', 1),
        ];
        if level == "debug5" {
            // The transaction machinery's own notes (`StartTransaction(1) …`, with xids that
            // differ from run to run) describe blastwall's transaction where it wraps the
            // statement: left out.
            same_as_direct_but(&proxy, &script, without_transaction_states).await;
        } else {
            same_as_direct(&proxy, &script).await;
        }
    }
    proxy.stop().await;
}

fn without_transaction_states(s: String) -> String {
    s.lines().filter(|l| !l.contains("RShowTransactionStateRec")).collect::<Vec<_>>().join("\n")
}

/// Fifth pass: a notification to the session itself, committed earlier in a batch whose later
/// write is counted where it stands (a Bind that may run code, in a database whose hidden
/// callers were not asked, waits for its Execute). Directly, the batch pipelined, the server
/// sends the notification just before the batch's ReadyForQuery; through blastwall, which
/// holds the Bind and Execute back, the server waited for input outside a transaction and sent
/// it there: it came ahead of the write's rows. It must come where the server puts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_in_a_batch_with_a_counted_write_comes_before_its_ready_for_query() {
    let script = [
        Send(q("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")),
        Until(b'Z', 1),
        Send(q("LISTEN ch")),
        Until(b'Z', 1),
        Send([p("s", "SELECT pg_temp.f()"), sync()].concat()),
        Until(b'Z', 1),
        Send(
            [pbe("BEGIN"), pbe("SELECT pg_notify('ch', 'x')"), pbe("COMMIT"), b("p", "s", &[]), e("p", 0), sync()]
                .concat(),
        ),
        Until(b'Z', 1),
    ];
    let via = crate::answers::same_as_direct_shipped(&script).await;
    assert!(tags(&via).ends_with("DCAZ"), "{}", show(&via));
}
