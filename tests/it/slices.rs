//! Red-team F8: a counted statement run as a suspended portal (Execute with a row count,
//! PortalSuspended between slices) is one statement, and its row limits apply to the whole
//! run, not to each slice. Every outcome is checked directly on the server; a driver's
//! fetch size (pgjdbc) on reads and on counted runs within their limits keeps working,
//! with the same messages as directly.

use crate::batches::{b, e, p, q, run, show, sync, tags, Msg, Send, Step, Until};
use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

/// 10 deletes per table per statement; each call of `del_one()` deletes one parent, and
/// the cascade two children.
const TEN: &str = r#"
[defaults]
mode = "enforce"
max_delete_rows = 10
max_update_rows = 10

[opaque]
functions = "verify"
"#;

const SETUP: &str = "\
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id) ON DELETE CASCADE);
INSERT INTO parent (id) SELECT g FROM generate_series(1, 200) g;
INSERT INTO child (id, parent_id) SELECT g, (g % 200) + 1 FROM generate_series(1, 400) g;
CREATE FUNCTION del_one() RETURNS int LANGUAGE sql AS
  $$ WITH d AS (DELETE FROM parent WHERE id = (SELECT min(id) FROM parent) RETURNING id) SELECT id FROM d $$;
GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;";

const SLICED: &str = "SELECT del_one() FROM generate_series(1, 20)";

fn db() -> String {
    let db = fresh_db("slices");
    admin_sql(pg(), &db, SETUP);
    db
}

async fn proxy() -> Proxy {
    let policy = compile(&[(Path::new("slices.toml"), TEN)]).unwrap();
    proxy_with(base_config(), policy).await
}

fn left(db: &str) -> String {
    admin_sql(pg(), db, "SELECT (SELECT count(*) FROM parent) || '/' || (SELECT count(*) FROM child)")
        .trim()
        .to_string()
}

fn close_portal(name: &str) -> Vec<u8> {
    let mut body = vec![b'P'];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    msg(b'C', &body)
}

/// The replies of each slice (one batch each), split at ReadyForQuery.
fn batches(m: &[Msg]) -> Vec<String> {
    tags(m).split_inclusive('Z').map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_of_one_portal_in_a_block_share_its_limits() {
    let proxy = proxy().await;
    let db = db();
    let mut script: Vec<Step> = vec![
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([p("s", SLICED), b("p", "s", &[]), sync()].concat()),
        Until(b'Z', 1),
    ];
    for _ in 0..10 {
        script.push(Send([e("p", 1), sync()].concat()));
        script.push(Until(b'Z', 1));
    }
    script.push(Send(q("COMMIT")));
    script.push(Until(b'Z', 1));
    let via = run(proxy.port(), &db, &script).await;
    let each = batches(&via);
    // BEGIN, Parse+Bind, then five slices of one row each (5 parents, 10 children so far).
    for slice in &each[2..7] {
        assert_eq!(slice, "DsZ", "{}", show(&via));
    }
    // The sixth would make 12 children: refused, and the client's block fails.
    assert!(each[7].starts_with('E'), "{}", show(&via));
    assert!(show(&via).contains("row"), "{}", show(&via));
    assert!(each[8..].iter().all(|s| s.starts_with('E') || s.starts_with('C')), "{}", show(&via));
    // Nothing stays: the block was failed, COMMIT rolled it back.
    assert_eq!(left(&db), "200/400", "{}", show(&via));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_of_one_portal_in_one_batch_share_its_limits() {
    let proxy = proxy().await;
    let db = db();
    let mut batch = [p("s", SLICED), b("p", "s", &[])].concat();
    for _ in 0..10 {
        batch.extend(e("p", 1));
    }
    batch.extend(sync());
    let via = run(proxy.port(), &db, &[Send(batch), Until(b'Z', 1)]).await;
    assert!(tags(&via).starts_with("12DsDsDsDsDsE"), "{}", show(&via));
    assert_eq!(left(&db), "200/400", "{}", show(&via));
    proxy.stop().await;
}

/// pgjdbc with a fetch size: a read, and counted runs within their limits (each portal's
/// run counted from its own Bind, a closed or replaced one forgotten), give the same
/// messages as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_size_runs_within_limits_match_direct() {
    let proxy = proxy().await;
    let four = "SELECT del_one() FROM generate_series(1, 4)";
    let mut script: Vec<Step> = vec![Send(q("BEGIN")), Until(b'Z', 1)];
    script.push(Send([p("r", "SELECT id FROM parent ORDER BY id"), b("c", "r", &[]), e("c", 50), sync()].concat()));
    script.push(Until(b'Z', 1));
    for _ in 0..3 {
        script.push(Send([e("c", 50), sync()].concat()));
        script.push(Until(b'Z', 1));
    }
    // A read's portal may be fetched by SQL too.
    script.push(Send(q("FETCH 60 FROM c")));
    script.push(Until(b'Z', 1));
    // A run closed after 3 slices (6 children), then a whole run of 4 (8 children): 14 in
    // all, at most 8 per statement; the same with the unnamed portal, bound anew.
    for slices in [3, 5] {
        script.push(Send([p("s", four), b("p", "s", &[]), sync()].concat()));
        script.push(Until(b'Z', 1));
        for _ in 0..slices {
            script.push(Send([e("p", 1), sync()].concat()));
            script.push(Until(b'Z', 1));
        }
        script.push(Send([close_portal("p"), msg(b'C', b"Ss\0"), sync()].concat()));
        script.push(Until(b'Z', 1));
    }
    // The unnamed portal, bound anew each time in one batch.
    let mut batch = Vec::new();
    for slices in [3, 5] {
        batch.extend([p("", four), b("", "", &[])].concat());
        for _ in 0..slices {
            batch.extend(e("", 1));
        }
    }
    batch.extend(sync());
    script.push(Send(batch));
    script.push(Until(b'Z', 1));
    script.push(Send(q("COMMIT")));
    script.push(Until(b'Z', 1));
    let (d1, d2) = (db(), db());
    let direct = run(pg().server.port, &d1, &script).await;
    let via = run(proxy.port(), &d2, &script).await;
    assert_eq!(show(&via), show(&direct), "through blastwall (left) and direct (right) differ");
    assert!(!tags(&via).contains('E'), "{}", show(&via));
    assert_eq!(left(&d2), "186/372");
    assert_eq!(left(&d2), left(&d1));
    proxy.stop().await;
}

/// SQL FETCH and MOVE of a protocol portal bound to a counted statement would run it with
/// no count: refused (the whole run, or the rest of a suspended one), data checked directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_or_move_of_a_counted_portal_is_refused() {
    let proxy = proxy().await;
    for (slice, sql) in [(true, "FETCH ALL FROM p"), (false, "MOVE FORWARD ALL IN p"), (false, "SELECT 1; FETCH 5 p")] {
        let db = db();
        let mut script =
            vec![Send(q("BEGIN")), Until(b'Z', 1), Send([p("s", SLICED), b("p", "s", &[]), sync()].concat())];
        script.push(Until(b'Z', 1));
        if slice {
            script.push(Send([e("p", 1), sync()].concat()));
            script.push(Until(b'Z', 1));
        }
        script.extend([Send(q(sql)), Until(b'Z', 1), Send(q("COMMIT")), Until(b'Z', 1)]);
        let via = run(proxy.port(), &db, &script).await;
        assert!(show(&via).contains("a FETCH or MOVE of it cannot be"), "{sql}: {}", show(&via));
        assert_eq!(left(&db), "200/400", "{sql}: {}", show(&via));
    }
    proxy.stop().await;
}
