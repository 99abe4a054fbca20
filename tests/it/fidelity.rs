//! Relay fidelity, differentially: each script runs directly and through blastwall and the
//! client must not be able to tell the difference (see `differential`).

use crate::differential::*;
use crate::harness::*;
use blastwall::policy::Mode;

async fn proxy_off() -> Proxy {
    proxy_with_mode(base_config(), blastwall::demo::incident_policy().unwrap(), Some(Mode::Off)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_and_their_errors() {
    let db = fresh_db("diff_basic");
    admin_sql(pg(), &db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    let p = proxy().await;
    let steps = [
        Step::Send(query("SELECT * FROM t ORDER BY id; SELECT 1/0; SELECT 2")),
        Step::Ready(1),
        Step::Send(batch(&[
            parse("", "SELECT v FROM t WHERE id = $1"),
            bind("", &[Some(b"1")], 0),
            describe_portal(),
            execute(),
            sync(),
        ])),
        Step::Ready(1),
        Step::Send(query("SELECT nosuchcolumn FROM t")),
        Step::Ready(1),
        Step::Send(terminate()),
        Step::End,
    ];
    let direct = compare(&p, &Client::new("app", APP_PW, &db), &steps).await;
    assert!(direct.iter().any(|e| matches!(e, Event::Msg { tag: b'E', .. })), "the script saw no error");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_of_an_idle_session() {
    let db = fresh_db("diff_term_idle");
    let p = proxy_off().await;
    let direct = compare(&p, &Client::new("app", APP_PW, &db), &[Step::Terminate, Step::End]).await;
    assert_eq!(error_codes(&direct), ["57P01"], "{}", render(&direct, usize::MAX));
    p.stop().await;
}
