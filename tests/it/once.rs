//! Counted writes kept in one round trip (`precheck::once`): a point DELETE whose cascades the
//! catalog proves, in a transaction blastwall opens, goes out with its COMMIT behind a
//! server-side assertion of the row limits. Within them it is kept at once (also right after
//! other writes of the session, whose counts PostgreSQL has not reported yet); over them the
//! COMMIT rolls it back and it is counted again and refused — no row changed, checked on the
//! server directly; with counting switched off it is refused too. Right after another such
//! write, with nothing of the client's in between, its counters start at zero (the last one
//! had them reported at its COMMIT) and it goes out without a first reading; a statement of the
//! client's in between (unflushed counts of a limited table) brings the first reading back. And
//! a write that stays while the replies all sessions may hold are taken by others tells its
//! client that cause.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Deleting a parent cascades into `kid` (at most two); `other` is limited but no delete on
/// `parent` can reach it; `w` (no key: every UPDATE counted) and `acct` (a point UPDATE is
/// proven small) for the held replies.
const POLICY: &str = r#"
[defaults]
mode = "enforce"

[[table]]
name = "public.parent"
protected_columns = ["id"]

[[table]]
name = "public.kid"
max_delete_rows = 2

[[table]]
name = "public.other"
max_delete_rows = 1

[[table]]
name = "public.acct"
max_update_rows = 5

[[table]]
name = "public.w"
max_update_rows = 10
"#;

/// Parents 1 to 10 have two children, 11 to 20 three.
const SCHEMA: &str = "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 20); \
     CREATE TABLE kid (id serial PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE); \
     INSERT INTO kid (pid) SELECT p FROM generate_series(1, 20) p, generate_series(1, 3); \
     DELETE FROM kid WHERE id IN (SELECT min(id) FROM kid WHERE pid <= 10 GROUP BY pid); \
     CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other SELECT generate_series(1, 5); \
     CREATE TABLE acct (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO acct (id) SELECT generate_series(1, 5); \
     CREATE TABLE w (id int, n int NOT NULL DEFAULT 0); INSERT INTO w (id) VALUES (1)";

async fn setup(prefix: &str) -> (String, tokio_postgres::Client) {
    let db = fresh_db(prefix);
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(SCHEMA).await.unwrap();
    (db, d)
}

async fn n(d: &tokio_postgres::Client, sql: &str) -> i64 {
    d.query_one(sql, &[]).await.unwrap().get(0)
}

/// blastwall's log lines about `db` that contain `what`.
fn logged(db: &str, what: &str) -> usize {
    captured_logs().lines().filter(|l| l.contains(&format!("database=\"{db}\"")) && l.contains(what)).count()
}

const ONCE: &str = "a counted write kept in one round trip";
const AGAIN: &str = "rolled back by its one-round-trip assertion";
/// A write kept in one round trip without a reading before it.
const FROM_ZERO: &str = "from_zero=true";
/// A write kept in one round trip as one implicit transaction (no BEGIN, no COMMIT).
const ONE_BATCH: &str = "one_batch=true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_deletes_are_kept_in_one_round_trip_and_refused_over_their_limits() {
    captured_logs();
    let (db, d) = setup("once").await;
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // Four in a row, each two cascaded deletes: within the limit each, eight in all in the
    // session's counters before PostgreSQL reports them — kept in one round trip each.
    for id in 1..=4 {
        via.simple_query(&format!("DELETE FROM parent WHERE id = {id}")).await.unwrap();
    }
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id <= 4").await, 0, "kept");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid <= 4").await, 0, "kept");
    assert_eq!(logged(&db, ONCE), 4, "each in one round trip");
    assert_eq!(logged(&db, ONE_BATCH), 4, "each as one implicit transaction");
    assert_eq!(logged(&db, FROM_ZERO), 3, "all but the first without a reading before");
    assert_eq!(logged(&db, AGAIN), 0);
    // Three cascaded deletes: rolled back by the COMMIT, counted again, refused.
    let e = via.simple_query("DELETE FROM parent WHERE id = 11").await.expect_err("over the limit");
    let m = refused_by(&e, "row-limit");
    assert!(m.contains("3 deleted in public.kid is over its limit of 2"), "{m}");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 11").await, 1, "nothing changed");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 11").await, 3, "nothing changed");
    assert_eq!(logged(&db, AGAIN), 1);
    // And the next within its limit is again kept in one round trip.
    via.simple_query("DELETE FROM parent WHERE id = 5").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 5").await, 0, "kept");
    assert_eq!(logged(&db, ONCE), 5);
    p.stop().await;
}

/// An UPDATE of `other` (limited for deletes only: relayed without a count) between two kept
/// deletes leaves a count PostgreSQL has not reported yet: the next delete reads the counters
/// before it again (taken as zero, `other`'s change would fail the assertion that a delete of
/// `parent` leaves it unchanged, and the write would be counted again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_in_between_brings_the_reading_before_back() {
    captured_logs();
    let (db, d) = setup("once_between").await;
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM parent WHERE id = 1").await.unwrap();
    via.simple_query("DELETE FROM parent WHERE id = 2").await.unwrap();
    assert_eq!((logged(&db, ONCE), logged(&db, FROM_ZERO)), (2, 1));
    via.simple_query("UPDATE other SET id = id WHERE id = 1").await.unwrap();
    via.simple_query("DELETE FROM parent WHERE id = 3").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid <= 3").await, 0, "kept");
    assert_eq!((logged(&db, ONCE), logged(&db, FROM_ZERO), logged(&db, AGAIN)), (3, 1, 0));
    p.stop().await;
}

/// Kept in one round trip with no table it reaches holding a deferrable trigger, a delete
/// sends no `SET CONSTRAINTS ALL IMMEDIATE` (nothing it queues waits for the COMMIT). A
/// foreign key into `kid` made deferrable after the proof was cached (its triggers keep their
/// OIDs) fails the proof's assertion: nothing stays, and once asked again the proof knows it,
/// and the delete is kept with its deferred checks run before the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_made_deferrable_after_the_proof_fails_its_assertion() {
    captured_logs();
    let (db, d) = setup("once_defer").await;
    d.batch_execute("CREATE TABLE gk (kid int REFERENCES kid); INSERT INTO gk VALUES (NULL)").await.unwrap();
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM parent WHERE id = 1").await.unwrap();
    assert_eq!(logged(&db, ONCE), 1);
    d.batch_execute("ALTER TABLE gk ALTER CONSTRAINT gk_kid_fkey DEFERRABLE INITIALLY DEFERRED").await.unwrap();
    let e = via.simple_query("DELETE FROM parent WHERE id = 2").await.expect_err("the proof is stale");
    assert!(e.as_db_error().is_some_and(|e| e.message().contains("no longer proves")), "{e:?}");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 2").await, 2, "nothing changed");
    via.simple_query("DELETE FROM parent WHERE id = 2").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 2").await, 0, "kept");
    assert_eq!(logged(&db, ONCE), 2);
    p.stop().await;
}

/// Where the session may not ask for its counts to be reported (EXECUTE of
/// `pg_stat_force_next_flush()` revoked, as on a server before PostgreSQL 15 that has none),
/// the first delete's assertion fails and it is counted again; the later ones are kept in one
/// round trip without asking, each with its reading before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pg_stat_force_next_flush_each_reads_the_counters_before() {
    captured_logs();
    let (db, d) = setup("once_noflush").await;
    let su = direct("postgres", SUPERUSER_PW, &db).await;
    su.batch_execute("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_force_next_flush() FROM PUBLIC").await.unwrap();
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for id in 1..=3 {
        via.simple_query(&format!("DELETE FROM parent WHERE id = {id}")).await.unwrap();
    }
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid <= 3").await, 0, "kept");
    assert_eq!((logged(&db, ONCE), logged(&db, FROM_ZERO), logged(&db, AGAIN)), (2, 0, 1));
    let e = via.simple_query("DELETE FROM parent WHERE id = 11").await.expect_err("over the limit");
    refused_by(&e, "row-limit");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 11").await, 3, "nothing changed");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_counting_off_a_delete_is_not_kept_in_one_round_trip() {
    captured_logs();
    let (db, d) = setup("once_off").await;
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    via.simple_query("SET track_counts = off").await.unwrap();
    let e = via.simple_query("DELETE FROM parent WHERE id = 6").await.expect_err("not counted");
    let m = e.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(m.contains("track_counts is off"), "{e:?}");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 6").await, 1, "nothing changed");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 6").await, 2, "nothing changed");
    assert_eq!(logged(&db, ONCE), 0);
    p.stop().await;
}

/// Other sessions' unread replies take every byte all sessions may hold: a point UPDATE proven
/// small and a counted DELETE kept in one round trip stay (checked on the server), and their
/// clients are told the replies could not be held because of other sessions — not that their
/// own were too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_writes_whose_replies_others_crowd_out_say_so() {
    const TOTAL: usize = 8 << 20;
    let (db, d) = setup("once_full").await;
    d.batch_execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC").await.unwrap();
    let mut config = base_config();
    config.max_held_bytes = TOTAL;
    let p = proxy_with(config, compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    // Warm both sessions first (catalog answers, proofs, prepared readings).
    let point = connect(p.port(), "app", APP_PW, &db).await;
    point.simple_query("UPDATE acct SET n = 1 WHERE id = 1").await.unwrap();
    let counted = connect(p.port(), "app", APP_PW, &db).await;
    counted.simple_query("DELETE FROM parent WHERE id = 7").await.unwrap();
    // Held replies of all but the last KiB of the budget, for a client that never reads them.
    let mut deaf = deaf_client(p.port(), &db).await;
    let mut q = format!("UPDATE w SET n = 1 WHERE id = 1 RETURNING repeat('x', {})", TOTAL - 200).into_bytes();
    q.push(0);
    deaf.write_all(&msg(b'Q', &q)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(n(&d, "SELECT count(*) FROM w WHERE n = 1").await, 1, "the deaf client's write was kept (and held)");
    let (a, b) = tokio::join!(
        point.simple_query("UPDATE acct SET n = 2 WHERE id = 2"),
        counted.simple_query("DELETE FROM parent WHERE id = 8")
    );
    for e in [a.expect_err("replies not held"), b.expect_err("replies not held")] {
        let db_error = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
        assert_eq!(db_error.code().code(), "53000", "{e:?}");
        assert!(db_error.message().contains("the write was kept"), "{e:?}");
        assert!(db_error.message().contains("taken by other sessions"), "{e:?}");
    }
    assert_eq!(n(&d, "SELECT n::int8 FROM acct WHERE id = 2").await, 2, "kept");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 8").await, 0, "kept");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 8").await, 0, "kept");
    drop(deaf);
    p.stop().await;
}

/// A cascade that waits for the COMMIT: `gk`'s key into `kid` deletes `gk`'s rows at the end
/// of the transaction (deferred), after any reading inside it. Such a delete is never sent as
/// one implicit transaction (whose commit at the Sync would run the cascade after the
/// assertion): `SET CONSTRAINTS ALL IMMEDIATE` runs it before the reading after, so `gk`'s
/// limit holds — over it, nothing changed, checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_cascade_is_counted_before_the_commit() {
    captured_logs();
    let (db, d) = setup("once_deferred").await;
    d.batch_execute(
        "CREATE TABLE gk (id serial PRIMARY KEY, kid int REFERENCES kid ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED); \
         INSERT INTO gk (kid) SELECT id FROM kid WHERE pid = 1; INSERT INTO gk (kid) SELECT id FROM kid WHERE pid IN (2, 3)",
    )
    .await
    .unwrap();
    let policy = format!("{POLICY}\n[[table]]\nname = \"public.gk\"\nmax_delete_rows = 3\n");
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), &policy)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // Two of gk's rows, cascaded at the COMMIT: within its limit, kept.
    via.simple_query("DELETE FROM parent WHERE id = 1").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM gk").await, 4, "kept, its deferred cascade too");
    // Four more rows of gk reach the deferred cascade of parent 2 once gk has them twice.
    d.batch_execute("INSERT INTO gk (kid) SELECT id FROM kid WHERE pid = 2").await.unwrap();
    let e = via.simple_query("DELETE FROM parent WHERE id = 2").await.expect_err("over gk's limit");
    let m = refused_by(&e, "row-limit");
    assert!(m.contains("4 deleted in public.gk is over its limit of 3"), "{m}");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 2").await, 1, "nothing changed");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 2").await, 2, "nothing changed");
    assert_eq!(n(&d, "SELECT count(*) FROM gk").await, 6, "nothing changed");
    assert_eq!(logged(&db, ONE_BATCH), 0, "never one implicit transaction");
    p.stop().await;
}

/// Inside the client's own block there is no transaction of blastwall's to keep in one round
/// trip: a delete over a child's limit is refused (nothing changed, checked on the server,
/// after the client's ROLLBACK and on another session before it), one within them stays once
/// the client commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_clients_block_a_delete_is_counted_under_a_savepoint() {
    captured_logs();
    let (db, d) = setup("once_block").await;
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM parent WHERE id = 3").await.unwrap();
    via.simple_query("BEGIN").await.unwrap();
    via.simple_query("DELETE FROM parent WHERE id = 4").await.unwrap();
    let e = via.simple_query("DELETE FROM parent WHERE id = 12").await.expect_err("over kid's limit");
    refused_by(&e, "row-limit");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 12").await, 3, "nothing changed");
    via.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid IN (4, 12)").await, 5, "rolled back by the client");
    via.simple_query("BEGIN; DELETE FROM parent WHERE id = 4; COMMIT").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid IN (3, 4)").await, 0, "parents 3 and 4 deleted");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 12").await, 3);
    assert_eq!(logged(&db, ONE_BATCH), 1, "only the delete outside the block");
    p.stop().await;
}

/// The first statement of a session, over a child's limit: sent as one implicit transaction
/// (its reading before, the delete, the reading after with the limits' assertion, one Sync),
/// the assertion fails it on the server, the server rolls everything back, and the delete
/// counted again is refused — every row still there, checked directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_childs_limit_the_one_batch_keeps_nothing() {
    captured_logs();
    let (db, d) = setup("once_first").await;
    let p = proxy_with(base_config(), compile(&[(Path::new("once.toml"), POLICY)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = via.simple_query("DELETE FROM parent WHERE id = 13").await.expect_err("over kid's limit");
    let m = refused_by(&e, "row-limit");
    assert!(m.contains("3 deleted in public.kid is over its limit of 2"), "{m}");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 13").await, 1, "nothing changed");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 13").await, 3, "nothing changed");
    assert_eq!(logged(&db, AGAIN), 1, "tried in one batch first");
    // The same session's next delete within the limits is kept in one batch.
    via.simple_query("DELETE FROM parent WHERE id = 9").await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 9").await, 0, "kept");
    assert_eq!(logged(&db, ONE_BATCH), 1);
    p.stop().await;
}
