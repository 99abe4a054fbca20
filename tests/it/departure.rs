//! Red-team F7: blastwall's own EXPLAIN before a counted write is bounded; and (addendum) a
//! client that disconnects while blastwall runs its write in the
//! pre-check has it cancelled on the server and never committed afterwards. Checked directly
//! on the server: the rows are still there, and no backend is left running the statement.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const LIMITS: &str = r#"
[defaults]
mode = "enforce"
max_delete_rows = 10
max_update_rows = 10
"#;

/// A write that sleeps 4 s on the server while it runs (in the pre-check), marked so that
/// `pg_stat_activity` can find it.
fn slow_delete(db: &str) -> String {
    format!("DELETE FROM t WHERE id < 2 AND pg_sleep(4) IS NOT NULL AND '{db}' <> ''")
}

fn db() -> String {
    let db = fresh_db("departure");
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT g FROM generate_series(1, 5) g; \
         CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u SELECT g FROM generate_series(1, 5) g; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;",
    );
    db
}

/// Backends still running the test's statement (blastwall's EXPLAIN of it or itself).
fn orphans(db: &str) -> String {
    admin_sql(
        pg(),
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(4)%{db}%' \
             AND pid <> pg_backend_pid()"
        ),
    )
    .trim()
    .to_string()
}

/// Sends what `messages` makes for the test's database, and goes away while it is checked.
async fn leaves_during_check_with(messages: impl Fn(&str) -> Vec<u8>) {
    let policy = compile(&[(Path::new("departure.toml"), LIMITS)]).unwrap();
    let proxy = proxy_with(base_config(), policy).await;
    let db = db();
    let mut s = startup(proxy.port(), "trust_user", &db).await;
    s.write_all(&messages(&db)).await.unwrap();
    // The statement runs in the pre-check (it sleeps 4 s there); the client goes away.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(orphans(&db), "1", "the statement should be running on the server by now");
    drop(s);
    // Cancelled at once: long before its sleep would have ended.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(orphans(&db), "0", "the departed client's statement is still running on the server");
    // And never committed afterwards.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(admin_sql(pg(), &db, "SELECT count(*) FROM t").trim(), "5", "the departed client's DELETE was kept");
    assert_eq!(orphans(&db), "0");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_client_left_during_its_check_is_cancelled_not_committed() {
    leaves_during_check_with(|db| {
        let mut q = slow_delete(db).into_bytes();
        q.push(0);
        msg(b'Q', &q)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_batch_whose_client_left_during_its_check_is_cancelled_not_committed() {
    leaves_during_check_with(|db| [parse("", &slow_delete(db)), bind_execute(""), msg(b'S', &[])].concat()).await;
}

/// In the middle of a batch (counted where it stands, the batch's Sync not yet sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_counted_in_its_batch_whose_client_left_is_cancelled_not_committed() {
    leaves_during_check_with(|db| {
        [parse("", "SELECT 1"), bind_execute(""), parse("", &slow_delete(db)), bind_execute(""), msg(b'H', &[])]
            .concat()
    })
    .await;
}

/// `DELETE FROM t WHERE id IN (SELECT id FROM t WHERE id IN (… 1 …))`, `depth` levels deep.
/// The nested reads are of another table: the target read again in itself is judged by
/// `require-where` (at most 256 levels deep, then refused).
fn nested_delete(depth: usize) -> String {
    format!("DELETE FROM t WHERE id IN ({}1{})", "SELECT id FROM u WHERE id IN (".repeat(depth), ")".repeat(depth))
}

/// Red-team F7: blastwall's own EXPLAIN (VERBOSE) before a counted write is bounded. Of this
/// 12 KB DELETE the server plans in well under a second, but deparses its VERBOSE EXPLAIN for
/// some 20 s (and hundreds of MB): through blastwall it costs about what it costs directly,
/// still runs and is counted (the estimate is skipped, not the count), and leaves nothing
/// running on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_of_a_deeply_nested_write_is_bounded_and_the_write_still_counted() {
    let policy = compile(&[(Path::new("departure.toml"), LIMITS)]).unwrap();
    let proxy = proxy_with(base_config(), policy).await;
    let db = db();
    let sql = nested_delete(350);
    let direct = direct("app", APP_PW, &db).await;
    let started = std::time::Instant::now();
    direct.batch_execute(&format!("BEGIN; {sql}; ROLLBACK")).await.unwrap();
    let alone = started.elapsed();
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let started = std::time::Instant::now();
    assert_eq!(c.execute(sql.as_str(), &[]).await.unwrap(), 1);
    let via = started.elapsed();
    // The write ran and was kept (one row, within its limit), counted as any other.
    assert_eq!(admin_sql(pg(), &db, "SELECT count(*) FROM t").trim(), "4");
    // Planning it once alone, once for the EXPLAIN (cut at its bound), once to run it, once
    // for blastwall's parse: a few times the statement alone, never the deparse's 20-odd.
    assert!(via < alone * 6 + Duration::from_secs(3), "through blastwall {via:?}, directly {alone:?}");
    let running = admin_sql(
        pg(),
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' AND query LIKE 'EXPLAIN%'"),
    );
    assert_eq!(running.trim(), "0");
    proxy.stop().await;
}
