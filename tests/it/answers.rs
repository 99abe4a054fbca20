//! Issue 11, protocol fidelity on the paths where blastwall holds a message back: what the
//! server would answer (an error of its own, a notice) reaches the client as directly. Raw
//! protocol scripts run directly and through blastwall with the shipped policies, as the
//! DML-only raw role, on twin databases; the client-visible streams are compared.

use crate::batches::*;
use crate::harness::*;

/// The script directly and through a proxy with the shipped policies, on twin incident
/// databases; the streams compared.
async fn same_as_direct_shipped(script: &[Step]) -> Vec<Msg> {
    let (d1, d2) = (crate::binds::setup(), crate::binds::setup());
    let proxy = proxy_with(base_config(), shipped_policy()).await;
    let direct = run(pg().server.port, &d1, script).await;
    let via = run(proxy.port(), &d2, script).await;
    proxy.stop().await;
    assert_eq!(show(&via), show(&direct), "through blastwall (left) and direct (right) differ");
    via
}

/// Sixth pass F9: a Bind of a statement that does not exist after another Bind of the same
/// batch (whose conversion blastwall cannot count alone): the server's 26000, not a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_of_a_missing_statement_after_another_bind_gets_the_servers_error() {
    let script = [
        Send([p("", "SELECT 1"), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "", &[]), b("p2", "s9", &[]), sync()].concat()),
        Until(b'Z', 1),
        Send(q("SELECT 2")),
        Until(b'Z', 1),
    ];
    let via = same_as_direct_shipped(&script).await;
    assert!(show(&via).contains("C26000"), "{}", show(&via));
    // Nearby forms: first in its batch, with its Execute, after a Parse, named portals.
    for batch in [
        [b("p2", "s9", &[]), sync()].concat(),
        [b("p2", "s9", &[]), e("p2", 0), sync()].concat(),
        [p("", "SELECT 1"), b("", "", &[]), b("p2", "s9", &["1"]), e("p2", 0), sync()].concat(),
        [
            p("s1", "SELECT 1"),
            b("p1", "s1", &[]),
            e("p1", 0),
            b("p2", "s9", &[]),
            describe(b'P', "p2"),
            flush(),
            sync(),
        ]
        .concat(),
    ] {
        let script = [Send(batch), Until(b'Z', 1), Send(q("SELECT 2")), Until(b'Z', 1)];
        let via = same_as_direct_shipped(&script).await;
        assert!(show(&via).contains("C26000"), "{}", show(&via));
    }
}
