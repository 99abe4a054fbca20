//! Operations around a session's life, owned by the operations work (#16): idle timeouts with
//! PostgreSQL's codes, a second Ctrl-C during the shutdown grace, and upstream TLS with a
//! self-signed server certificate (verify-full), plus the TLS certificate reload on SIGHUP.

use crate::harness::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn idle_proxy() -> Proxy {
    let mut c = base_config();
    c.idle_timeout = Some(Duration::from_secs(1));
    proxy_with(c, blastwall::demo::incident_policy().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_uses_25p03_inside_a_transaction_and_57p05_outside() {
    let db = fresh_db("idle");
    let p = idle_proxy().await;
    // Outside a transaction: idle_session_timeout's code.
    let mut s = startup(p.port(), "trust_user", &db).await;
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["57P05"], "{r:?}");
    assert!(r.errors.contains("idle-session timeout"), "{r:?}");
    // Inside one: idle_in_transaction_session_timeout's.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"BEGIN\0")).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.status, Some('T'), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["25P03"], "{r:?}");
    assert!(r.errors.contains("idle-in-transaction timeout"), "{r:?}");
    // A failed transaction is still a transaction.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"BEGIN; SELECT 1/0\0")).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.status, Some('E'), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(10), replies(&mut s)).await.unwrap();
    assert_eq!(r.codes, vec!["25P03"], "{r:?}");
    p.stop().await;
}
