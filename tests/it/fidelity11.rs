//! Issue 11, protocol fidelity: what the server says is what the client gets when nothing
//! guarded is at stake. An Execute of a portal that does not exist — first in its batch, in
//! the middle of one, in a fresh session (whose taint blastwall has yet to ask) or in one
//! whose temporary schema holds code — gets the server's `34000`, not a refusal.

use crate::batches::*;
use crate::harness::*;

/// blastwall with the shipped policies (default + incident).
async fn shipped() -> Proxy {
    proxy_with(base_config(), shipped_policy()).await
}

/// An incident database the raw-protocol role may write.
fn incident() -> String {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC");
    db
}

/// The script directly and through blastwall, each on a fresh incident database: the same
/// messages (the backend key aside).
async fn same_on_incident(proxy: &Proxy, script: &[Step]) -> Vec<Msg> {
    let direct = run(pg().server.port, &incident(), script).await;
    let via = run(proxy.port(), &incident(), script).await;
    assert_eq!(show(&via), show(&direct), "through blastwall (left) and direct (right) differ");
    via
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_of_a_missing_portal_gets_the_servers_answer() {
    let proxy = shipped().await;
    let taint = q("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    let scripts: Vec<(Vec<u8>, usize)> = vec![
        ([e("nope", 0), sync()].concat(), 1),
        ([e("nope", 0), e("nope2", 0), sync()].concat(), 1),
        ([q("SELECT 1"), e("nope", 0), e("nope2", 0), sync()].concat(), 2),
        ([taint.clone(), e("nope", 0), sync()].concat(), 2),
        ([taint.clone(), pbe("SELECT 1"), e("nope", 0), sync()].concat(), 2),
        ([taint.clone(), p("", "SELECT 1"), flush(), e("nope", 0), sync()].concat(), 2),
        ([pbe("SELECT 1"), e("nope", 0), sync()].concat(), 1),
        ([q("BEGIN"), pbe("SELECT 1"), e("nope", 0), sync(), q("COMMIT")].concat(), 3),
        ([pbe("SELECT 1"), sync(), e("nope", 0), sync()].concat(), 2),
    ];
    for (script, ready) in scripts {
        let via = same_on_incident(&proxy, &[Send(script), Until(b'Z', ready)]).await;
        assert!(show(&via).contains("C34000"), "{}", show(&via));
    }
    proxy.stop().await;
}
