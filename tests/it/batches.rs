//! Counted writes anywhere in an extended-protocol batch. With a policy whose `[defaults]`
//! limits count every DELETE and UPDATE but are far above any real count, raw protocol
//! scripts run directly and through blastwall must give the client the same backend message
//! stream (the backend key aside); with tight limits, a write over its limit is refused
//! wherever it stands, and the data is checked directly on the server.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts every DELETE and UPDATE; nothing real comes near the limits.
pub(crate) const COUNT_ALL: &str = r#"
[defaults]
mode = "enforce"
max_delete_rows = 1000000
max_update_rows = 1000000
"#;

/// Tight limits: 3 deletes, 100 updates per statement.
pub(crate) const TIGHT: &str = r#"
[defaults]
mode = "enforce"
max_delete_rows = 3
max_update_rows = 100
"#;

const SETUP: &str = "\
CREATE TABLE parent (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id) ON DELETE CASCADE, v int NOT NULL DEFAULT 0);
INSERT INTO parent (id) SELECT g FROM generate_series(1, 200) g;
INSERT INTO child (id, parent_id) SELECT g, (g % 200) + 1 FROM generate_series(1, 400) g;
CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'child % goes', OLD.id; RETURN OLD; END $$;
CREATE TRIGGER child_note BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION note();
GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;";

pub(crate) async fn proxy_for(policy: &str) -> Proxy {
    let policy = compile(&[(Path::new("batches.toml"), policy)]).unwrap();
    proxy_with(base_config(), policy).await
}

pub(crate) fn db() -> String {
    let db = fresh_db("batches");
    admin_sql(pg(), &db, SETUP);
    db
}

// Frontend messages.

fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

pub(crate) fn p(name: &str, sql: &str) -> Vec<u8> {
    parse(name, sql)
}

/// Bind with text parameters and text results.
pub(crate) fn b(portal: &str, stmt: &str, params: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, stmt);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for v in params {
        body.extend_from_slice(&(v.len() as i32).to_be_bytes());
        body.extend_from_slice(v.as_bytes());
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    msg(b'B', &body)
}

pub(crate) fn e(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    msg(b'E', &body)
}

pub(crate) fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    msg(b'D', &body)
}

pub(crate) fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

pub(crate) fn flush() -> Vec<u8> {
    msg(b'H', &[])
}

pub(crate) fn q(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, sql);
    msg(b'Q', &body)
}

/// Parse, Bind and Execute of one unnamed statement.
pub(crate) fn pbe(sql: &str) -> Vec<u8> {
    [p("", sql), b("", "", &[]), e("", 0)].concat()
}

/// One step of a script.
pub(crate) enum Step {
    Send(Vec<u8>),
    /// Read until this many messages with this tag have come.
    Until(u8, usize),
}
pub(crate) use Step::*;

/// A backend message: tag and body.
pub(crate) type Msg = (u8, Vec<u8>);

/// Runs a script as `trust_user` and returns every backend message after the startup
/// (BackendKeyData left out); a reply that does not come within 10 s fails the test.
pub(crate) async fn run(port: u16, db: &str, script: &[Step]) -> Vec<Msg> {
    let mut s = startup(port, "trust_user", db).await;
    let mut out = Vec::new();
    for step in script {
        match step {
            Send(bytes) => s.write_all(bytes).await.unwrap(),
            Until(tag, n) => {
                let mut seen = 0;
                while seen < *n {
                    let m = tokio::time::timeout(Duration::from_secs(10), read_msg(&mut s))
                        .await
                        .unwrap_or_else(|_| panic!("no reply within 10 s; so far: {}", tags(&out)));
                    if m.0 == *tag {
                        seen += 1;
                    }
                    out.push(m);
                }
            }
        }
    }
    out
}

pub(crate) async fn read_msg(s: &mut tokio::net::TcpStream) -> Msg {
    let mut h = [0u8; 5];
    s.read_exact(&mut h).await.expect("connection closed");
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await.expect("connection closed");
    (h[0], body)
}

pub(crate) fn tags(m: &[Msg]) -> String {
    m.iter().map(|(t, _)| *t as char).collect()
}

pub(crate) fn show(m: &[Msg]) -> String {
    m.iter()
        .map(|(t, b)| {
            let b = if *t == b'T' { without_table_oids(b) } else { b.clone() };
            format!("{} {}\n", *t as char, String::from_utf8_lossy(&b).replace('\0', "|"))
        })
        .collect()
}

/// A RowDescription with its table OIDs zeroed (the twin databases' OIDs differ).
fn without_table_oids(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let n = i16::from_be_bytes([body[0], body[1]]);
    let mut pos = 2;
    for _ in 0..n {
        pos += body[pos..].iter().position(|&c| c == 0).unwrap() + 1;
        out[pos..pos + 4].fill(0);
        pos += 18;
    }
    out
}

/// The same script directly (on one database) and through the proxy (on a twin), the
/// streams compared message by message; then the two databases must hold the same data.
pub(crate) async fn same_as_direct(proxy: &Proxy, script: &[Step]) -> Vec<Msg> {
    same_as_direct_but(proxy, script, |s| s).await
}

/// [`same_as_direct`], the streams compared as `normal` shows them (for a known difference).
pub(crate) async fn same_as_direct_but(proxy: &Proxy, script: &[Step], normal: fn(String) -> String) -> Vec<Msg> {
    let (d1, d2) = (db(), db());
    let direct = run(pg().server.port, &d1, script).await;
    let via = run(proxy.port(), &d2, script).await;
    assert_eq!(normal(show(&via)), normal(show(&direct)), "through blastwall (left) and direct (right) differ");
    let data = "SELECT (SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM parent) || '/' || \
                (SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM child)";
    assert_eq!(admin_sql(pg(), &d2, data), admin_sql(pg(), &d1, data), "data differ");
    via
}

fn jdbc_batch(n: usize) -> Vec<u8> {
    let mut out = pbe("SELECT count(*) FROM parent");
    for i in 1..=n {
        out.extend(pbe(&format!("UPDATE parent SET v = v + {i} WHERE id = {i}")));
        out.extend(pbe(&format!("DELETE FROM child WHERE id = {}", 100 + i)));
    }
    out.extend(sync());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_after_reads_match_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let via = same_as_direct(&proxy, &[Send(jdbc_batch(6)), Until(b'Z', 1), Send(jdbc_batch(2)), Until(b'Z', 1)]).await;
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    // Two batches of one Sync each, pipelined without waiting.
    let two = [jdbc_batch(3), jdbc_batch(3)].concat();
    same_as_direct(&proxy, &[Send(two), Until(b'Z', 2)]).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_in_the_batch_of_the_first_write_matches_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let batch =
        [pbe("BEGIN"), pbe("DELETE FROM child WHERE id = 3"), pbe("UPDATE parent SET v = 9 WHERE id > 0"), sync()]
            .concat();
    let via = same_as_direct(&proxy, &[Send(batch), Until(b'Z', 1), Send(q("COMMIT")), Until(b'Z', 1)]).await;
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_describe_flush_is_answered_at_once() {
    let proxy = proxy_for(COUNT_ALL).await;
    // asyncpg: Parse, Describe, Flush, wait; then Bind, Execute, Sync.
    let sql = "UPDATE parent SET v = $1::int WHERE id = $2::int RETURNING id, v";
    let script = [
        Send([p("s1", sql), describe(b'S', "s1"), flush()].concat()),
        Until(b'T', 1),
        Send([b("", "s1", &["5", "7"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        // The same with a Flush after the Execute too, before the Sync.
        Send([p("s2", "DELETE FROM child WHERE id = $1::int"), describe(b'S', "s2"), flush()].concat()),
        Until(b'n', 1),
        Send([b("", "s2", &["8"]), e("", 0), flush()].concat()),
        Until(b'C', 1),
        Send(sync()),
        Until(b'Z', 1),
    ];
    let via = same_as_direct(&proxy, &script).await;
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rows_failures_savepoints_cursors_and_notices_match_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    // Execute with a row limit: a DML portal runs to completion at the first Execute.
    let max_rows = [
        pbe("SELECT 1"),
        p("", "UPDATE parent SET v = v + 1 WHERE id <= 10 RETURNING id"),
        b("", "", &[]),
        e("", 3),
        e("", 3),
        sync(),
    ]
    .concat();
    same_as_direct(&proxy, &[Send(max_rows), Until(b'Z', 1)]).await;
    // Statements that fail on the server, before, at and after a counted write.
    let failing = [
        pbe("SELECT 1"),
        pbe("UPDATE parent SET id = 1 WHERE id = 2"),
        pbe("DELETE FROM child WHERE id = 50"),
        sync(),
        pbe("DELETE FROM child WHERE id = 51"),
        pbe("SELECT 1/0"),
        sync(),
        pbe("DELETE FROM child WHERE id = 52"),
        p("", "DELETE FROM nowhere WHERE id = 1"),
        sync(),
    ]
    .concat();
    same_as_direct(&proxy, &[Send(failing), Until(b'Z', 3)]).await;
    // A Query inside a batch that failed before it is skipped by the server (one
    // ReadyForQuery for both); counted writes afterwards must not wait for a second one.
    let skipped = [
        p("", "SELEC 1"),
        q("SELECT 1"),
        q("DELETE FROM child WHERE id = 60"),
        sync(),
        q("DELETE FROM child WHERE id = 61"),
        pbe("DELETE FROM child WHERE id = 62"),
        sync(),
    ]
    .concat();
    same_as_direct(&proxy, &[Send(skipped), Until(b'Z', 3)]).await;
    // Savepoints inside the client's block.
    let savepoints = [
        q("BEGIN"),
        pbe("SAVEPOINT a"),
        pbe("DELETE FROM child WHERE id = 5"),
        pbe("ROLLBACK TO SAVEPOINT a"),
        pbe("DELETE FROM child WHERE id = 6"),
        sync(),
        q("COMMIT"),
    ]
    .concat();
    same_as_direct(&proxy, &[Send(savepoints), Until(b'Z', 3)]).await;
    // A cursor and WHERE CURRENT OF.
    let cursor = [
        q("BEGIN; DECLARE c CURSOR FOR SELECT id FROM parent WHERE id = 9 FOR UPDATE; FETCH c"),
        pbe("SELECT 1"),
        pbe("UPDATE parent SET v = 0 WHERE CURRENT OF c"),
        sync(),
        q("COMMIT"),
    ]
    .concat();
    same_as_direct(&proxy, &[Send(cursor), Until(b'Z', 3)]).await;
    // Cascades into a table whose row trigger raises a notice per row.
    let notices = [pbe("SELECT 1"), pbe("DELETE FROM parent WHERE id IN (11, 12, 13)"), sync()].concat();
    let via = same_as_direct(&proxy, &[Send(notices), Until(b'Z', 1)]).await;
    assert_eq!(via.iter().filter(|m| m.0 == b'N').count(), 6, "{}", show(&via));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_and_portals_across_batches_match_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let script = [
        // Sync-separated Parse, Bind and Execute inside a block.
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([p("s", "DELETE FROM child WHERE id = 20"), sync()].concat()),
        Until(b'Z', 1),
        Send([b("p", "s", &[]), sync()].concat()),
        Until(b'Z', 1),
        Send([e("p", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([b("p2", "s", &[]), e("p2", 0), flush()].concat()),
        Until(b'C', 1),
        Send([sync(), q("COMMIT")].concat()),
        Until(b'Z', 2),
        // A failed second Parse of the same name leaves the first.
        Send([p("t", "DELETE FROM child WHERE id = 30"), sync()].concat()),
        Until(b'Z', 1),
        Send([p("t", "SELECT 1"), b("", "t", &[]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "t", &[]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// Child rows left, read directly on the server.
pub(crate) fn children(db: &str) -> String {
    admin_sql(pg(), db, "SELECT count(*) FROM child").trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_its_limit_is_refused_wherever_it_stands() {
    let proxy = proxy_for(TIGHT).await;
    let over = "DELETE FROM child WHERE id <= 10";
    let cases: Vec<(&str, Vec<Step>)> = vec![
        ("mid-batch", vec![Send([pbe("SELECT 1"), pbe(over), pbe("SELECT 2"), sync()].concat()), Until(b'Z', 1)]),
        (
            "with COMMIT behind it",
            vec![Send([pbe("BEGIN"), pbe("SELECT 1"), pbe(over), pbe("COMMIT"), sync()].concat()), Until(b'Z', 1)],
        ),
        (
            "first in its batch, before a Flush",
            vec![Send([pbe(over), flush()].concat()), Until(b'E', 1), Send(sync()), Until(b'Z', 1)],
        ),
        (
            "Sync-separated inside BEGIN",
            vec![
                Send(q("BEGIN")),
                Until(b'Z', 1),
                Send([p("s", over), sync()].concat()),
                Until(b'Z', 1),
                Send([b("p", "s", &[]), sync()].concat()),
                Until(b'Z', 1),
                Send([e("p", 0), sync()].concat()),
                Until(b'Z', 1),
                Send(q("COMMIT")),
                Until(b'Z', 1),
            ],
        ),
        (
            "Sync-separated inside BEGIN, Execute before a Flush",
            vec![
                Send(q("BEGIN")),
                Until(b'Z', 1),
                Send([p("s", over), b("p", "s", &[]), sync()].concat()),
                Until(b'Z', 1),
                Send([e("p", 0), flush()].concat()),
                Until(b'E', 1),
                Send([sync(), q("COMMIT")].concat()),
                Until(b'Z', 2),
            ],
        ),
        (
            "bound behind a batch that fails before replacing its statement",
            vec![
                Send([p("", over), sync()].concat()),
                Until(b'Z', 1),
                Send([e("nowhere", 0), p("", "SELECT 1"), sync(), b("", "", &[]), e("", 0), sync()].concat()),
                Until(b'Z', 2),
            ],
        ),
        (
            "prepared by SQL PREPARE, run by a protocol Bind",
            vec![
                Send(q("PREPARE d AS DELETE FROM child WHERE id <= 10")),
                Until(b'Z', 1),
                Send([pbe("SELECT 1"), b("", "d", &[]), e("", 0), sync()].concat()),
                Until(b'Z', 1),
            ],
        ),
        (
            "prepared by SQL PREPARE, run by SQL EXECUTE",
            vec![
                Send(q("PREPARE d AS DELETE FROM child WHERE id <= 10")),
                Until(b'Z', 1),
                Send(q("EXECUTE d")),
                Until(b'Z', 1),
            ],
        ),
        (
            "after a failed second Parse of its name",
            vec![
                Send([p("s", over), sync()].concat()),
                Until(b'Z', 1),
                Send([p("s", "SELECT 1"), sync()].concat()),
                Until(b'Z', 1),
                Send([pbe("SELECT 1"), b("", "s", &[]), e("", 0), sync()].concat()),
                Until(b'Z', 1),
            ],
        ),
    ];
    for (what, script) in cases {
        let d = db();
        let out = run(proxy.port(), &d, &script).await;
        let refusals =
            out.iter().filter(|m| m.0 == b'E' && String::from_utf8_lossy(&m.1).contains("blastwall: refused")).count();
        assert!(refusals >= 1, "{what}: not refused:\n{}", show(&out));
        assert_eq!(children(&d), "400", "{what}: rows deleted:\n{}", show(&out));
        // Idle, or a failed block that can only be rolled back: the write cannot be kept.
        let status = out.last().map(|m| m.1.clone());
        assert!(matches!(status.as_deref(), Some(b"I") | Some(b"E")), "{what}: {}", show(&out));
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_apply_per_statement_inside_a_batch() {
    let proxy = proxy_for(TIGHT).await;
    let d = db();
    // executemany: 120 single-row UPDATEs against a per-statement limit of 100.
    let mut batch = p("u", "UPDATE parent SET v = v + 1 WHERE id = $1::int");
    for i in 1..=120 {
        batch.extend(b("", "u", &[&i.to_string()]));
        batch.extend(e("", 0));
    }
    batch.extend(sync());
    let out = run(proxy.port(), &d, &[Send(batch), Until(b'Z', 1)]).await;
    assert!(!tags(&out).contains('E'), "{}", show(&out));
    assert_eq!(admin_sql(pg(), &d, "SELECT count(*) FROM parent WHERE v = 1").trim(), "120");
    // Each of 4 single-row DELETEs is under the limit of 3; their sum is not.
    let batch = [
        pbe("DELETE FROM child WHERE id = 1"),
        pbe("DELETE FROM child WHERE id = 2"),
        pbe("DELETE FROM child WHERE id = 3"),
        pbe("DELETE FROM child WHERE id = 4"),
        sync(),
    ]
    .concat();
    let out = run(proxy.port(), &d, &[Send(batch), Until(b'Z', 1)]).await;
    assert!(!tags(&out).contains('E'), "{}", show(&out));
    assert_eq!(children(&d), "396");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_pipelining_matches_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let (d1, d2) = (db(), db());
    async fn pipelined(c: &tokio_postgres::Client) -> Vec<String> {
        let s = c.prepare("UPDATE parent SET v = v + $1 WHERE id = $2").await.unwrap();
        let futs = (1..=20).map(|i| {
            let s = s.clone();
            async move { c.execute(&s, &[&i, &(i * 3)]).await.map(|n| n.to_string()).unwrap_or_else(|e| e.to_string()) }
        });
        let mut out = futures_join(futs).await;
        let del = c.prepare("DELETE FROM child WHERE id = $1").await.unwrap();
        let (a, b2) = tokio::join!(c.execute(&del, &[&70]), c.query("SELECT count(*) FROM child", &[]));
        out.push(format!("{a:?}"));
        out.push(b2.map(|r| r[0].get::<_, i64>(0).to_string()).unwrap_or_else(|e| e.to_string()));
        out
    }
    let direct = pipelined(&connect(pg().server.port, "trust_user", "", &d1).await).await;
    let via = pipelined(&connect(proxy.port(), "trust_user", "", &d2).await).await;
    assert_eq!(via, direct);
    proxy.stop().await;
}

/// Polls futures together (tokio-postgres pipelines what is polled concurrently).
async fn futures_join<F: std::future::Future<Output = String>>(futs: impl Iterator<Item = F>) -> Vec<String> {
    let handles: Vec<_> = futs.collect();
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<String>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_pipelined_point_updates_on_a_limited_table_never_fail() {
    let policy = r#"
[defaults]
mode = "enforce"

[[table]]
name = "public.parent"
max_update_rows = 1
"#;
    let proxy = proxy_for(policy).await;
    let d = db();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pipeline.sql");
    std::fs::write(
        &script,
        "\\set id random(1, 200)\n\\startpipeline\n\
         UPDATE parent SET v = v + 1 WHERE id = :id;\n\
         SELECT v FROM parent WHERE id = :id;\n\
         UPDATE parent SET v = v - 1 WHERE id = :id;\n\
         \\endpipeline\n",
    )
    .unwrap();
    let bench = blastwall::pgtemp::find_bindir().expect("bindir").join("pgbench");
    let out = std::process::Command::new(bench)
        .args(["-n", "-M", "extended", "-c", "2", "-t", "100", "-f"])
        .arg(&script)
        .args(["-h", "127.0.0.1", "-p", &proxy.port().to_string(), "-U", "trust_user", &d])
        .output()
        .expect("pgbench");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("number of transactions actually processed: 200/200"), "{text}");
    assert!(text.contains("number of failed transactions: 0 "), "{text}");
    assert_eq!(admin_sql(pg(), &d, "SELECT sum(v) FROM parent").trim(), "0");
    // The limit is real: a pipelined UPDATE of two rows is refused, data unchanged.
    let out = run(
        proxy.port(),
        &d,
        &[Send([pbe("SELECT 1"), pbe("UPDATE parent SET v = 5 WHERE id IN (1, 2)"), sync()].concat()), Until(b'Z', 1)],
    )
    .await;
    assert!(show(&out).contains("blastwall: refused UPDATE"), "{}", show(&out));
    assert_eq!(admin_sql(pg(), &d, "SELECT count(*) FROM parent WHERE v = 5").trim(), "0");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_held_is_bounded() {
    let proxy = proxy_for(COUNT_ALL).await;
    let d = db();
    // RETURNING past the 16 MiB held while a write in a batch is counted: refused, undone.
    let big = "UPDATE parent SET v = v + 1 WHERE id <= 100 RETURNING repeat('x', 200000)";
    let out = run(proxy.port(), &d, &[Send([pbe("SELECT 1"), pbe(big), sync()].concat()), Until(b'Z', 1)]).await;
    assert!(show(&out).contains("could not be counted"), "{}", tags(&out));
    assert_eq!(admin_sql(pg(), &d, "SELECT sum(v) FROM parent").trim(), "0");
    // A one-write batch past the 1 MiB held until its Sync is counted where it stands.
    let value = "7".repeat(2 * 1024 * 1024);
    let sql = "UPDATE parent SET v = length($1::text) / 1048576 WHERE id = 1";
    let script = [Send([p("", sql), b("", "", &[&value]), e("", 0), sync()].concat()), Until(b'Z', 1)];
    let via = same_as_direct(&proxy, &script).await;
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    proxy.stop().await;
}

/// Sixth adversarial pass F8: a batch that fails at once and holds two Queries and a named
/// Parse in its skipped part (the server skips them all up to Sync): the session answered the
/// error and then nothing, and its backend stayed after the client left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_a_parse_skipped_with_a_failed_batch_match_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let batch =
        [p("", "SELECT 3"), e("", 0), q("SELECT 1"), p("s2", "SELECT 1"), q("SELECT 2"), e("", 0), sync()].concat();
    let via = same_as_direct(&proxy, &[Send(batch), Until(b'Z', 1), Send(q("SELECT 4")), Until(b'Z', 1)]).await;
    assert_eq!(tags(&via), "1EZTDCZ", "{}", show(&via));
    proxy.stop().await;
}

/// Sixth adversarial pass F2: a protocol COPY FROM STDIN pipelined with a Sync (which the
/// server ignores while it copies), its data, and a counted write after it, all in one write:
/// the session stopped after CopyInResponse and its backend stayed in COPY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_pipelined_with_its_data_and_a_counted_write_matches_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    let batch = [
        pbe("COPY parent (id, v) FROM STDIN"),
        sync(),
        msg(b'd', b"900\t1\n"),
        msg(b'c', &[]),
        pbe("DELETE FROM parent WHERE id = 900"),
        sync(),
    ]
    .concat();
    let via = same_as_direct(&proxy, &[Send(batch), Until(b'Z', 1), Send(q("SELECT 4")), Until(b'Z', 1)]).await;
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    proxy.stop().await;
}

/// Seventh pass: an Execute skipped with a failed batch, then CopyDone or CopyFail, then Sync:
/// no COPY can start in a failed batch, so the CopyDone does not wait for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_end_after_a_failed_batch_matches_direct() {
    let proxy = proxy_for(COUNT_ALL).await;
    for end in [msg(b'c', &[]), msg(b'f', b"no\0")] {
        let batch = [p("", "SELEC x"), e("p1", 0), end.clone(), sync()].concat();
        let via = same_as_direct(&proxy, &[Send(batch), Until(b'Z', 1), Send(q("SELECT 4")), Until(b'Z', 1)]).await;
        assert_eq!(tags(&via), "EZTDCZ", "{}", show(&via));
        let batch = [e("nope", 0), e("p1", 0), end.clone(), sync()].concat();
        same_as_direct(&proxy, &[Send(batch), Until(b'Z', 1)]).await;
        // Under the shipped policies the skipped Execute of an unknown portal is counted (read
        // like a FETCH of a cursor): what it owes must go with the failed batch too.
        let db = crate::binds::setup();
        let shipped = proxy_with(base_config(), shipped_policy()).await;
        let mut s = startup(shipped.port(), crate::binds::RAW, &db).await;
        let batch = [p("", "SELEC x"), e("p1", 0), end, sync()];
        let sent = crate::batchnames::send(&mut s, &batch);
        let r =
            tokio::time::timeout(Duration::from_secs(20), sent).await.expect("no ReadyForQuery after the failed batch");
        assert_eq!((r.tags.as_str(), r.codes.as_slice()), ("EZ", &["42601".to_string()][..]), "{r:?}");
        let r = crate::batchnames::send(&mut s, &[q("SELECT 4")]).await;
        assert_eq!(r.tags, "TDCZ", "{r:?}");
        shipped.stop().await;
    }
    proxy.stop().await;
}

/// Seventh pass: an Execute of a named portal sent while the server is in a protocol COPY FROM
/// STDIN (which ends the COPY with a protocol error and the connection): the client gets the
/// server's FATAL, and no server session stays in the COPY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_during_a_copy_gets_the_servers_answer() {
    let proxy = proxy_for(COUNT_ALL).await;
    for data in [vec![], msg(b'd', b"901\t1\n")] {
        let batch = [pbe("COPY parent (id, v) FROM STDIN"), sync(), data, e("p1", 0)].concat();
        let via = same_as_direct(&proxy, &[Send(batch), Until(b'E', 2)]).await;
        assert_eq!(tags(&via), "12GEE", "{}", show(&via));
    }
    proxy.stop().await;
}
