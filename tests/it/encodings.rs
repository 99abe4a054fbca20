//! Sixth adversarial pass F5: `SET client_encoding` earlier in the same Query or batch as a
//! non-ASCII text. The server decodes each protocol message in the encoding of the moment it
//! reads it: a Query that blastwall runs statement by statement, or a Parse pipelined behind
//! the SET, would be decoded in SJIS — where a UTF-8 character's last byte can swallow the
//! `\` that ends a string, turning the rest of the string into SQL — while blastwall judged it
//! as UTF-8. Raw frames through blastwall in enforce mode with the shipped policies, as a
//! DML-only role; the users are counted on the server. Controls: a Query with non-ASCII text,
//! transaction control and a counted write still runs statement by statement, and a batch with
//! non-ASCII text and no change of encoding runs.

use crate::batches::{pbe, q, sync};
use crate::batchnames::send;
use crate::binds::RAW;
use crate::harness::*;

/// Read as UTF-8, a point DELETE of nothing (`email = 'Á'' OR …'`); read as SJIS, a range
/// DELETE of the ten real users of the incident's window.
const S: &str = "DELETE FROM users WHERE email = E'\u{00c1}\\' OR id BETWEEN -91111120 AND -91111111 --' AND id = 5\n";

fn parse_bytes(sql: &str) -> Vec<u8> {
    crate::batches::p("", sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_client_encoding_before_non_ascii_text_is_refused() {
    let db = crate::binds::setup();
    let users = || count(&db, "SELECT count(*) FROM users");
    let before = users().await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    // Queries that blastwall would run statement by statement (transaction control): refused.
    for text in [
        format!("SET client_encoding = 'SJIS'; BEGIN; {S}; COMMIT"),
        format!("SELECT pg_catalog.set_config('client_encoding', 'SJIS', false); BEGIN; {S}; COMMIT"),
    ] {
        let mut s = startup(px.port(), RAW, &db).await;
        let r = send(&mut s, &[q(&text)]).await;
        assert_eq!(users().await, before, "{text}: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "{text}: {r:?}");
    }
    // Two writes without transaction control: run whole in one check, as the one message the
    // server decodes at once (in UTF-8: the first DELETE deletes nothing).
    let mut s = startup(px.port(), RAW, &db).await;
    let text = format!("SET client_encoding = 'SJIS'; {S}; DELETE FROM users WHERE id = 6");
    let r = send(&mut s, &[q(&text)]).await;
    assert_eq!(users().await, before, "{text}: {r:?}");
    // A read as UTF-8 that is a data-modifying WITH as SJIS, after a write that makes the
    // Query run statement by statement.
    let x = "WITH x AS (SELECT E'\u{00c1}\\' ) , d AS (DELETE FROM users WHERE auth_source IS NOT NULL RETURNING 1) \
             SELECT count(*) FROM d --' AS s) SELECT s FROM x\n";
    for text in [
        format!("SET client_encoding = 'SJIS'; BEGIN; DELETE FROM users WHERE id = 0; {x}; COMMIT"),
        format!("SET client_encoding = 'SJIS'; DELETE FROM users WHERE id = 0; {x}; DELETE FROM users WHERE id = 0"),
    ] {
        let mut s = startup(px.port(), RAW, &db).await;
        let r = send(&mut s, &[q(&text)]).await;
        assert_eq!(users().await, before, "{text}: {r:?}");
    }
    let mut s = startup(px.port(), RAW, &db).await;
    let r = send(
        &mut s,
        &[
            pbe("SET client_encoding = 'SJIS'"),
            parse_bytes(x),
            crate::batches::b("", "", &[]),
            crate::batches::e("", 0),
            sync(),
        ],
    )
    .await;
    assert_eq!(users().await, before, "{r:?}");
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    // The same in one extended batch: the Parse behind the SET.
    for set in [
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'SJIS'",
        "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false)",
    ] {
        let mut s = startup(px.port(), RAW, &db).await;
        let r =
            send(&mut s, &[pbe(set), parse_bytes(S), crate::batches::b("", "", &[]), crate::batches::e("", 0), sync()])
                .await;
        assert_eq!(users().await, before, "{set}: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "{set}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_text_without_a_change_of_encoding_runs() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), RAW, &db).await;
    let r =
        send(&mut s, &[q("BEGIN; UPDATE users SET email = 'Álvaro@example.com' WHERE id = -91111111; COMMIT")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let r = send(
        &mut s,
        &[pbe("SELECT 1"), pbe("UPDATE users SET email = 'Élodie@example.com' WHERE id = -91111112"), sync()],
    )
    .await;
    assert!(r.codes.is_empty(), "{r:?}");
    let changed =
        count(&db, "SELECT count(*) FROM users WHERE email IN ('Álvaro@example.com', 'Élodie@example.com')").await;
    assert_eq!(changed, 2);
}

/// Seventh pass: the encoding changed in the batch by an `EXECUTE` of a prepared `set_config`,
/// or restored by a transaction's end (ROLLBACK, ABORT, ROLLBACK TO SAVEPOINT, COMMIT after
/// `SET LOCAL`) in a session that started in SJIS: the Parse behind it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_encoding_by_execute_or_by_a_transactions_end_is_followed() {
    let db = crate::binds::setup();
    let users = || count(&db, "SELECT count(*) FROM users");
    let before = users().await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let x = "WITH x AS (SELECT E'\u{00c1}\\' ) , d AS (DELETE FROM users WHERE auth_source IS NOT NULL RETURNING 1) \
             SELECT count(*) FROM d --' AS s) SELECT s FROM x\n";
    let tail = || [parse_bytes(x), crate::batches::b("", "", &[]), crate::batches::e("", 0), sync()].concat();
    let mut s = startup(px.port(), RAW, &db).await;
    crate::batchnames::run(&mut s, "PREPARE e AS SELECT pg_catalog.set_config('client_encoding', 'SJIS', false)").await;
    let r = send(&mut s, &[pbe("EXECUTE e"), tail()]).await;
    assert_eq!(users().await, before, "EXECUTE e: {r:?}");
    assert!(r.errors.contains("blastwall: refused"), "EXECUTE e: {r:?}");
    for (setup, end) in [
        (&["BEGIN", "SET client_encoding = 'UTF8'"][..], "ROLLBACK"),
        (&["BEGIN", "SET client_encoding = 'UTF8'"][..], "ABORT"),
        (&["BEGIN", "SAVEPOINT s", "SET client_encoding = 'UTF8'"][..], "ROLLBACK TO SAVEPOINT s"),
        (&["BEGIN", "SET LOCAL client_encoding = 'UTF8'"][..], "COMMIT"),
    ] {
        let app = format!("raw-{db}");
        let mut s = send_startup(
            px.port(),
            196608,
            &[("user", RAW), ("database", &db), ("application_name", &app), ("client_encoding", "SJIS")],
        )
        .await;
        replies(&mut s).await;
        for sql in setup {
            crate::batchnames::run(&mut s, sql).await;
        }
        let r = send(&mut s, &[pbe(end), tail()]).await;
        assert_eq!(users().await, before, "{end}: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "{end}: {r:?}");
    }
}
