//! Twenty-fourth pass Q1–Q3: portals are named as the server names them. Portals and SQL
//! cursors are one namespace there, and a protocol name is converted from the client's
//! encoding before it is keyed: blastwall's mirror of a portal must not stand for what SQL
//! made under its name since (a `DECLARE` after an SQL `CLOSE`, or after a `ROLLBACK TO` that
//! dropped the portal), nor key a non-ASCII name the server converts. Raw frames through
//! blastwall in enforce mode with the shipped policies, as the DML-only role; the data is
//! checked directly on the server.

use crate::batches::{b, e, p, pbe, q, sync};
use crate::batchnames::send;
use crate::binds::RAW;
use crate::harness::*;

const SEQUENCE: &str = "SELECT last_value FROM web_user_id_seq";
const WINDOW: &str = "SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111";

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("blastwall: refused"), "{what} was not refused: {r:?}");
}

fn ran(r: &Replies, what: &str) {
    assert!(r.codes.is_empty(), "{what}: {}", r.errors);
}

async fn server_value(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// A frame with raw (non-UTF-8) names: Bind of `stmt` to `portal`, Execute, Close portal.
fn raw_bind(portal: &[u8], stmt: &[u8]) -> Vec<u8> {
    let mut body = portal.to_vec();
    body.push(0);
    body.extend_from_slice(stmt);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    msg(b'B', &body)
}

fn raw_execute(portal: &[u8]) -> Vec<u8> {
    let mut body = portal.to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    msg(b'E', &body)
}

fn raw_close_portal(portal: &[u8]) -> Vec<u8> {
    let mut body = vec![b'P'];
    body.extend_from_slice(portal);
    body.push(0);
    msg(b'C', &body)
}

/// Two portal names of 41 bytes in LATIN1 (`é` × 40, then `1` or `2`), one portal once
/// the server converts them to UTF-8 (81 bytes, keyed by 63): `SELECT 1` bound to the second,
/// the first closed (the server closes the second), the mass DELETE bound to the first and
/// the second executed, one Sync.
fn look_alike_portals() -> Vec<Vec<u8>> {
    let mut p1 = vec![0xe9u8; 40];
    let mut p2 = p1.clone();
    p1.push(b'1');
    p2.push(b'2');
    vec![
        p("w", "DELETE FROM users WHERE plan <> 'nothing'"),
        p("ok", "SELECT 1"),
        raw_bind(&p2, b"ok"),
        raw_close_portal(&p1),
        raw_bind(&p1, b"w"),
        raw_execute(&p2),
        sync(),
    ]
}

/// Q2, Q3: a portal bound by the protocol, closed by SQL (or dropped by `ROLLBACK TO`) and
/// made again by an SQL `DECLARE` of the same name: an Execute of the name reads the cursor,
/// and is judged as reading it (its 5,000 `nextval`s move a protected sequence past its allowance: refused); a
/// `SAVEPOINT` portal replaced so sets no savepoint for a `ROLLBACK TO` behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_declared_over_a_bound_portals_name_is_read_as_that_cursor() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let before = server_value(&db, SEQUENCE).await;
    let declare = "DECLARE cur1 CURSOR FOR SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 5000)";
    for (what, between) in [
        ("an SQL CLOSE", vec![q("CLOSE cur1")]),
        ("CLOSE and DECLARE in one Query", vec![]),
        ("a ROLLBACK TO that dropped it", vec![q("ROLLBACK TO s")]),
    ] {
        ran(&send(&mut c, &[q("BEGIN")]).await, "BEGIN");
        let savepoint = what.starts_with("a ROLLBACK");
        if savepoint {
            ran(&send(&mut c, &[q("SAVEPOINT s")]).await, "SAVEPOINT");
        }
        ran(&send(&mut c, &[p("ok", "SELECT 1"), b("cur1", "ok", &[]), sync()]).await, "the portal");
        for m in between {
            ran(&send(&mut c, &[m]).await, what);
        }
        let make = match what {
            "CLOSE and DECLARE in one Query" => format!("CLOSE cur1; {declare}"),
            _ => declare.to_string(),
        };
        ran(&send(&mut c, &[q(&make)]).await, "the cursor");
        let r = send(&mut c, &[e("cur1", 0), sync()]).await;
        refused(&r, what);
        ran(&send(&mut c, &[q("ROLLBACK")]).await, "ROLLBACK");
        ran(&send(&mut c, &[q("DEALLOCATE ALL")]).await, "DEALLOCATE");
        assert_eq!(server_value(&db, SEQUENCE).await, before, "{what}: the sequence, on the server");
    }

    // Q3: the savepoint trick of the twenty-second pass through a replaced portal.
    let view = "BEGIN; CREATE TEMP VIEW users AS SELECT id AS k, email FROM public.users; SAVEPOINT a; \
                DROP VIEW users";
    ran(&send(&mut c, &[q(view)]).await, "the view dropped behind a savepoint");
    ran(&send(&mut c, &[q("DELETE FROM users WHERE id = 0")]).await, "users is public.users again");
    let batch = [
        p("sp", "SAVEPOINT a"),
        b("cur1", "sp", &[]),
        pbe("CLOSE cur1"),
        pbe("DECLARE cur1 CURSOR FOR SELECT 1"),
        e("cur1", 0),
        pbe("ROLLBACK TO a"),
        pbe("DELETE FROM users WHERE k BETWEEN -91111120 AND -91111111"),
        sync(),
    ];
    refused(&send(&mut c, &batch).await, "the replaced SAVEPOINT portal");
    assert_eq!(server_value(&db, WINDOW).await, 10, "the window, on the server");
    ran(&send(&mut c, &[q("ROLLBACK")]).await, "ROLLBACK");
    px.stop().await;
}

/// Q1: in a LATIN1 session, two portal names of 41 bytes (`é` × 40, then `1` or `2`) are one
/// portal once the server converts them to UTF-8 (81 bytes, keyed by 63): a non-ASCII name
/// the server converts is refused, and the write bound under one and executed under the
/// other does not run. ASCII names there, and non-ASCII names in a UTF-8 session, run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_server_converts_before_keying_it_is_refused() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let users = "SELECT count(*) FROM users";
    let before = server_value(&db, users).await;
    // UTF-8: a non-ASCII portal name is read as the server reads it.
    let utf8 = "é".repeat(3);
    let r = send(&mut c, &[p("", "SELECT 1"), b(&utf8, "", &[]), e(&utf8, 0), sync()]).await;
    ran(&r, "a UTF-8 portal name in a UTF-8 session");
    ran(&send(&mut c, &[q("SET client_encoding = 'LATIN1'")]).await, "LATIN1");
    let ascii = [p("two", "SELECT 1"), b("portal", "two", &[]), e("portal", 0), sync()];
    ran(&send(&mut c, &ascii).await, "an ASCII portal name in a LATIN1 session");
    let r = send(&mut c, &look_alike_portals()).await;
    refused(&r, "portal names the server converts");
    assert!(r.errors.contains("non-ASCII"), "{}", r.errors);
    assert_eq!(server_value(&db, users).await, before, "users, on the server");
    px.stop().await;
}

/// Twenty-fifth pass R1, R2: the encoding may change earlier in the same batch (a non-ASCII
/// name behind `SET client_encoding` is refused as well), and a Bind of a cursor's name that
/// the server skipped (after an error) or refused does not make the name the client's portal
/// again: the Execute behind a `ROLLBACK TO` still reads the cursor, and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoding_changed_in_the_batch_and_a_bind_that_did_not_run_change_nothing() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let users = "SELECT count(*) FROM users";
    let before = server_value(&db, users).await;
    let batch = [vec![pbe("SET client_encoding = 'LATIN1'")], look_alike_portals()].concat();
    refused(&send(&mut c, &batch).await, "names behind SET client_encoding in the batch");
    assert_eq!(server_value(&db, users).await, before, "users, on the server");
    ran(&send(&mut c, &[q("RESET client_encoding; DEALLOCATE ALL")]).await, "RESET");

    let sequence = server_value(&db, SEQUENCE).await;
    ran(&send(&mut c, &[q("BEGIN")]).await, "BEGIN");
    ran(&send(&mut c, &[p("ok", "SELECT 1"), b("cur1", "ok", &[]), sync()]).await, "the portal");
    ran(&send(&mut c, &[q("CLOSE cur1")]).await, "CLOSE");
    let declare = "DECLARE cur1 CURSOR FOR SELECT count(nextval('web_user_id_seq')) FROM generate_series(1, 5000)";
    ran(&send(&mut c, &[q(declare)]).await, "the cursor");
    ran(&send(&mut c, &[q("SAVEPOINT s")]).await, "SAVEPOINT");
    // Skipped by the server after the error before it.
    let r = send(&mut c, &[pbe("SELECT 1/0"), b("cur1", "ok", &[]), sync()]).await;
    assert!(r.errors.contains("22012"), "{}", r.errors);
    ran(&send(&mut c, &[q("ROLLBACK TO s")]).await, "ROLLBACK TO");
    // Refused by the server: the cursor exists.
    let r = send(&mut c, &[b("cur1", "ok", &[]), sync()]).await;
    assert!(r.errors.contains("42P03"), "{}", r.errors);
    ran(&send(&mut c, &[q("ROLLBACK TO s")]).await, "ROLLBACK TO");
    refused(&send(&mut c, &[e("cur1", 0), sync()]).await, "the cursor's Execute");
    ran(&send(&mut c, &[q("ROLLBACK")]).await, "ROLLBACK");
    assert_eq!(server_value(&db, SEQUENCE).await, sequence, "the sequence, on the server");
    px.stop().await;
}
