//! Twenty-seventh pass H2: inserts counted and kept in the client's transaction move the
//! protected sequence (`users.id` defaults to `-nextval('web_user_id_seq')`); when the
//! transaction then drops those rows — `ROLLBACK`, `ROLLBACK TO SAVEPOINT`, `ROLLBACK AND
//! CHAIN`, a failed block's end, the client gone — the sequence is put back, as for a failed
//! statement. A transaction that keeps its rows keeps its move. Sequence and rows read
//! directly on the server.

use crate::harness::*;
use std::time::Duration;

pub(crate) const INSERT: &str =
    "INSERT INTO users (auth_source, email) SELECT 'oauth', 'h2-' || g FROM generate_series(1, 20000) g";

pub(crate) async fn seq(db: &str) -> i64 {
    count(db, "SELECT last_value FROM web_user_id_seq").await
}

pub(crate) async fn users(db: &str) -> i64 {
    count(db, "SELECT count(*) FROM users").await
}

/// The sequence stands at `at` within a few seconds (a put-back runs at the next quiet point).
pub(crate) async fn stands_at(db: &str, at: i64) -> i64 {
    for _ in 0..50 {
        if seq(db).await == at {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seq(db).await
}

/// The whole block rolled back, in every way it can end without COMMIT, by the simple and
/// the extended protocol: the sequence stands where it stood, no row kept, the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_a_rolled_back_block_dropped_are_put_back() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let scripts: [&[&str]; 5] = [
        &["BEGIN", INSERT, "ROLLBACK"],
        &["BEGIN", INSERT, "SELECT 1/0", "ROLLBACK"],
        &["BEGIN", INSERT, "SELECT 1/0", "COMMIT"],
        &["BEGIN", INSERT, INSERT, "ABORT"],
        &["BEGIN", INSERT, "ROLLBACK AND CHAIN", "COMMIT"],
    ];
    for script in scripts {
        for extended in [false, true] {
            let (before, n) = (seq(&db).await, users(&db).await);
            for sql in script {
                let r = match (extended, *sql == INSERT) {
                    (true, true) => via.execute(*sql, &[]).await.map(|_| ()),
                    _ => via.batch_execute(sql).await,
                };
                assert!(r.is_ok() || sql.contains("1/0"), "{sql}: {r:?}");
            }
            assert_eq!(stands_at(&db, before).await, before, "{script:?} extended={extended}: the sequence left moved");
            assert_eq!(users(&db).await, n);
        }
    }
    via.batch_execute("SELECT 1").await.unwrap();
    p.stop().await;
}

/// A savepoint rolled back drops the inserts made after it, not those before it; released,
/// they stay. Sent statement by statement, as ORMs do (Django's atomic blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_rolled_back_puts_back_only_what_it_dropped() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let small = "INSERT INTO users (auth_source, email) SELECT 'oauth', 'h2k-' || g FROM generate_series(1, 5) g";
    for sql in ["BEGIN", small, "SAVEPOINT a", INSERT, "ROLLBACK TO SAVEPOINT a", "SELECT 1", "COMMIT"] {
        via.batch_execute(sql).await.unwrap();
    }
    assert_eq!(users(&db).await, n + 5);
    assert_eq!(
        stands_at(&db, before + 5).await,
        before + 5,
        "the dropped inserts' move is put back, the kept ones' stays"
    );
    // Released, then another savepoint rolled back: the inserts stay, and so does their move.
    let (before, n) = (seq(&db).await, users(&db).await);
    for sql in ["BEGIN", "SAVEPOINT a", INSERT, "RELEASE SAVEPOINT a", "SAVEPOINT b", "ROLLBACK TO b", "COMMIT"] {
        via.batch_execute(sql).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(users(&db).await, n + 20000);
    assert_eq!(seq(&db).await, before + 20000, "kept rows keep their move");
    // Nested: the inner savepoint's inserts dropped, the outer's kept.
    let (before, n) = (seq(&db).await, users(&db).await);
    for sql in ["BEGIN", "SAVEPOINT a", small, "SAVEPOINT b", INSERT, "ROLLBACK TO a", small, "COMMIT"] {
        via.batch_execute(sql).await.unwrap();
    }
    assert_eq!(users(&db).await, n + 5);
    let at = stands_at(&db, before + 5).await;
    assert!(at <= before + 10 && at >= before + 5, "the sequence left at {at}, was {before}");
    // A savepoint released hands its writes to its parent (thirtieth pass: a released
    // savepoint's transaction ID is let go as a rolled back one's is): they go when the
    // parent is rolled back, and stay when it is not. psycopg ends a failed nested transaction
    // with `ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s` in one Query.
    let scripts: [(&[&str], bool); 4] = [
        (&["BEGIN", "SAVEPOINT a", "SAVEPOINT b", INSERT, "RELEASE b", "ROLLBACK TO a", "COMMIT"], false),
        (
            &[
                "BEGIN",
                "SAVEPOINT a",
                "SAVEPOINT b",
                INSERT,
                "RELEASE b",
                "RELEASE a",
                "SAVEPOINT c",
                "ROLLBACK TO c",
                "COMMIT",
            ],
            true,
        ),
        (&["BEGIN", "SAVEPOINT s", INSERT, "ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s", "COMMIT"], false),
        (&["BEGIN", "SAVEPOINT s", INSERT, "RELEASE SAVEPOINT s", "ROLLBACK"], false),
    ];
    for (script, kept) in scripts {
        let (before, n) = (seq(&db).await, users(&db).await);
        for sql in script {
            via.batch_execute(sql).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        match kept {
            true => {
                assert_eq!(users(&db).await, n + 20000, "{script:?}");
                assert_eq!(seq(&db).await, before + 20000, "{script:?}: kept rows keep their move");
            }
            false => {
                assert_eq!(users(&db).await, n, "{script:?}");
                assert_eq!(stands_at(&db, before).await, before, "{script:?}: the sequence left moved");
            }
        }
    }
    p.stop().await;
}

/// Thirtieth pass H1: the mark blastwall first used, a transaction-local setting, could be read
/// and forged by the client. What it reads now, the transaction IDs its session holds, cannot
/// be: the rolled-back write is put back whatever the client set or locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_client_sets_or_locks_does_not_keep_a_rolled_back_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // The attacker's way: a one-row write in a block, then whatever blastwall's mark shows.
    via.batch_execute("BEGIN; INSERT INTO users (auth_source, email) VALUES ('oauth', 'probe')").await.unwrap();
    let shown = via.query_one("SELECT current_setting('blastwall.kept', true)", &[]).await.unwrap();
    let shown: Option<String> = shown.get(0);
    via.batch_execute("ROLLBACK").await.unwrap();
    let forged = match shown.as_deref().and_then(|v| v.split_once(':')) {
        Some((prefix, _)) => format!("{prefix}:999999"),
        None => "1:999999".into(),
    };
    let (before, n) = (seq(&db).await, users(&db).await);
    for sql in [
        format!("SET blastwall.kept = '{forged}'"),
        "BEGIN".into(),
        "SAVEPOINT s".into(),
        INSERT.into(),
        format!("SELECT pg_advisory_xact_lock(1), set_config('blastwall.kept', '{forged}', true)"),
        "ROLLBACK TO SAVEPOINT s".into(),
        "SELECT pg_advisory_xact_lock(2)".into(),
        "COMMIT".into(),
    ] {
        via.batch_execute(&sql).await.unwrap();
    }
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved");
    p.stop().await;
}

/// A block that commits keeps its rows and its move; so does an implicit transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_block_keeps_its_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let (before, n) = (seq(&db).await, users(&db).await);
    for sql in ["BEGIN", INSERT, "COMMIT"] {
        via.batch_execute(sql).await.unwrap();
    }
    via.execute(INSERT, &[]).await.unwrap();
    via.batch_execute("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(users(&db).await, n + 40000);
    assert_eq!(seq(&db).await, before + 40000);
    p.stop().await;
}

/// The client leaves in the middle of its block: the server rolls it back, and blastwall puts
/// the sequence back before the server session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_its_block_has_the_move_put_back() {
    let db = incident_db();
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute("BEGIN").await.unwrap();
    via.execute(INSERT, &[]).await.unwrap();
    assert_eq!(seq(&db).await, before + 20000);
    drop(via);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved");
    assert_eq!(users(&db).await, n);
    p.stop().await;
}

/// One Query that holds the block: the statements run one by one (`simple`), and the same
/// ends apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_blocks_are_put_back_too() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for q in [format!("BEGIN; {INSERT}; ROLLBACK"), format!("BEGIN; {INSERT}; SELECT 1/0; COMMIT")] {
        let (before, n) = (seq(&db).await, users(&db).await);
        let _ = via.batch_execute(&q).await;
        let _ = via.batch_execute("ROLLBACK").await;
        assert_eq!(stands_at(&db, before).await, before, "{q}: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    // A savepoint rolled back and the COMMIT in the same Query: no moment to read what the
    // savepoint dropped; refused, nothing run. So is PREPARE TRANSACTION after such writes
    // (rolled back later, by anyone).
    let (before, n) = (seq(&db).await, users(&db).await);
    let q = format!("BEGIN; SAVEPOINT s; {INSERT}; ROLLBACK TO s; COMMIT");
    let e = via.batch_execute(&q).await.unwrap_err();
    assert!(refused_by(&e, "unverifiable").contains("ROLLBACK TO SAVEPOINT"), "{e:?}");
    assert_eq!(seq(&db).await, before);
    for (end, extended, says) in [
        ("ROLLBACK TO s; COMMIT", false, "ROLLBACK TO SAVEPOINT"),
        ("PREPARE TRANSACTION 'h2'", false, "prepared transaction"),
        ("PREPARE TRANSACTION 'h2'", true, "prepared transaction"),
    ] {
        via.batch_execute("BEGIN").await.unwrap();
        via.execute(INSERT, &[]).await.unwrap();
        via.batch_execute("SAVEPOINT s").await.unwrap();
        let e = match extended {
            true => via.execute(end, &[]).await.map(|_| ()).unwrap_err(),
            false => via.batch_execute(end).await.unwrap_err(),
        };
        assert!(refused_by(&e, "unverifiable").contains(says), "{end}: {e:?}");
        assert_eq!(seq(&db).await, before + 20000);
        via.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(stands_at(&db, before).await, before, "{end}: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    // Outside such a transaction both run as ever.
    via.batch_execute("BEGIN; SAVEPOINT s; SELECT 1; ROLLBACK TO s; COMMIT").await.unwrap();
    p.stop().await;
}

/// A pipelining client: `ROLLBACK TO SAVEPOINT` and `COMMIT` as two Queries in one write. The
/// second waits until the first was answered and what it dropped was read: put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_pipelined_behind_a_rollback_to_waits_for_its_reading() {
    use crate::batches::{q, run, show, Send, Until};
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT INSERT, SELECT ON users TO trust_user");
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let script = [
        Send([q("BEGIN"), q("SAVEPOINT s")].concat()),
        Until(b'Z', 2),
        Send(q(INSERT)),
        Until(b'Z', 1),
        Send([q("ROLLBACK TO s"), q("COMMIT"), q("SELECT 2")].concat()),
        Until(b'Z', 3),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("COMMIT") && out.contains("\u{1}2\n"), "{out}");
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved: {out}");
    // A COPY in such a block still reads its data.
    let (before, n) = (seq(&db).await, users(&db).await);
    let rows: Vec<u8> = (0..3).flat_map(|i| crate::harness::msg(b'd', format!("oauth\tc{i}@x\n").as_bytes())).collect();
    let script = [
        Send([q("BEGIN"), q(INSERT)].concat()),
        Until(b'Z', 2),
        Send(q("COPY users (auth_source, email) FROM STDIN")),
        Until(b'G', 1),
        Send([rows, crate::harness::msg(b'c', &[])].concat()),
        Until(b'Z', 1),
        Send(q("ROLLBACK")),
        Until(b'Z', 1),
    ];
    let out = show(&run(p.port(), &db, &script).await);
    assert!(out.contains("COPY 3"), "{out}");
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved: {out}");
    p.stop().await;
}

/// A COPY kept in the client's block (read before it, `copyback`) is remembered as a counted
/// write is: the block rolled back, its move is put back; committed, kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_kept_in_a_block_the_block_drops_is_put_back() {
    use crate::batches::{q, run, show, Send, Until};
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT INSERT, SELECT ON users TO trust_user");
    let p = proxy().await;
    let rows: Vec<u8> = (0..3000).flat_map(|i| msg(b'd', format!("oauth\tcp{i}@x\n").as_bytes())).collect();
    let ends: [(&[&str], bool); 3] =
        [(&["ROLLBACK"], false), (&["SAVEPOINT s", "ROLLBACK TO s", "COMMIT"], true), (&["COMMIT"], true)];
    for (end, kept) in ends {
        let (before, n) = (seq(&db).await, users(&db).await);
        let tail: Vec<u8> = end.iter().flat_map(|e| q(e)).collect();
        let script = [
            Send([q("BEGIN"), q("SAVEPOINT a")].concat()),
            Until(b'Z', 2),
            Send(q("COPY users (auth_source, email) FROM STDIN")),
            Until(b'G', 1),
            Send([rows.clone(), msg(b'c', &[]), tail].concat()),
            Until(b'Z', 1 + end.len()),
        ];
        let out = show(&run(p.port(), &db, &script).await);
        assert!(out.contains("COPY 3000"), "{out}");
        match kept {
            false => {
                assert_eq!(users(&db).await, n);
                assert_eq!(stands_at(&db, before).await, before, "{end:?}: the sequence left moved: {out}");
            }
            true => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_eq!(users(&db).await, n + 3000, "{end:?}: {out}");
                assert_eq!(seq(&db).await, before + 3000, "{end:?}: kept rows keep their move");
            }
        }
    }
    p.stop().await;
}

/// A function that inserts rows and rolls them back inside itself (an `EXCEPTION` block that
/// catches its own error): PostgreSQL counts those rows as inserted, so a statement that runs
/// code does not get its inserts allowed for its move. Refused, put back, nothing kept; a plain
/// INSERT of as many rows still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_a_function_rolls_back_inside_itself_do_not_allow_its_move() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute(&format!(
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN BEGIN {INSERT}; RAISE EXCEPTION 'x'; \
         EXCEPTION WHEN others THEN NULL; END; RETURN 1; END $$"
    ))
    .await
    .unwrap();
    let (before, n) = (seq(&db).await, users(&db).await);
    for in_block in [false, true] {
        if in_block {
            via.batch_execute("BEGIN").await.unwrap();
        }
        let e = via.batch_execute("SELECT pg_temp.f()").await.unwrap_err();
        assert!(refused_by(&e, "identity").contains("runs functions"), "{e:?}");
        if in_block {
            via.batch_execute("ROLLBACK").await.unwrap();
        }
        assert_eq!(stands_at(&db, before).await, before, "in_block={in_block}: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    via.execute(INSERT, &[]).await.unwrap();
    assert_eq!(users(&db).await, n + 20000);
    p.stop().await;
}

/// Thirty-first pass: what made the put-back fail or misread. H1: a session read-only by
/// default, its write in `BEGIN READ WRITE` (the put-back's own statement was read-only); H2:
/// `DISCARD SEQUENCES` (the session's last values, by which a put-back tells its own move,
/// forgotten): refused while a move is remembered; M1, M2: a `RELEASE` then a `ROLLBACK TO`,
/// or writes behind a `ROLLBACK TO`, in one message: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_would_stop_or_misread_the_put_back_is_refused_or_undone() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // H1: read-only by default.
    let (before, n) = (seq(&db).await, users(&db).await);
    for sql in ["SET default_transaction_read_only = on", "BEGIN READ WRITE", INSERT, "ROLLBACK"] {
        via.batch_execute(sql).await.unwrap();
    }
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "read-only by default: the sequence left moved");
    via.batch_execute("SET default_transaction_read_only = off").await.unwrap();
    // H2, M1, M2: refused inside the block; the block then rolled back is put back.
    let small = "INSERT INTO users (auth_source, email) SELECT 'oauth', 'm-' || g FROM generate_series(1, 3) g";
    let cases = [
        ("DISCARD SEQUENCES".to_string(), "DISCARD"),
        ("SELECT 1; DISCARD SEQUENCES".to_string(), "DISCARD"),
        (format!("RELEASE SAVEPOINT a; SAVEPOINT b; {small}; ROLLBACK TO b"), "RELEASE"),
        (format!("ROLLBACK TO a; {small}"), "ROLLBACK"),
        ("ROLLBACK TO a; SET LOCAL transaction_read_only = on".to_string(), "ROLLBACK"),
    ];
    for (sql, says) in cases {
        let (before, n) = (seq(&db).await, users(&db).await);
        for s in ["BEGIN", "SAVEPOINT a", INSERT] {
            via.batch_execute(s).await.unwrap();
        }
        let e = via.batch_execute(&sql).await.unwrap_err();
        assert!(refused_by(&e, "unverifiable").contains(says), "{sql}: {e:?}");
        via.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(users(&db).await, n, "{sql}");
        assert_eq!(stands_at(&db, before).await, before, "{sql}: the sequence left moved");
    }
    // psycopg's end of a failed nested transaction still runs, and puts back.
    let (before, n) = (seq(&db).await, users(&db).await);
    for s in ["BEGIN", "SAVEPOINT a", INSERT, "ROLLBACK TO SAVEPOINT a; RELEASE SAVEPOINT a", "COMMIT"] {
        via.batch_execute(s).await.unwrap();
    }
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved");
    p.stop().await;
}

/// Thirty-second pass H2: a message of a type the server does not know, behind a block whose
/// writes moved the protected sequence: the server would end the session (FATAL 08P01) and
/// roll the block back with the move kept. blastwall ends it itself, the move put back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_no_known_type_ends_the_session_after_the_put_back() {
    use crate::batches::{q, read_msg};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT INSERT, SELECT ON users TO trust_user");
    let p = proxy().await;
    let (before, n) = (seq(&db).await, users(&db).await);
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&[q("BEGIN"), q(INSERT)].concat()).await.unwrap();
    let mut z = 0;
    while z < 2 {
        z += usize::from(read_msg(&mut s).await.0 == b'Z');
    }
    assert_eq!(seq(&db).await, before + 20000);
    s.write_all(&msg(b'Y', &[])).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).contains("08P01"), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(users(&db).await, n);
    assert_eq!(stands_at(&db, before).await, before, "the sequence left moved");
    p.stop().await;
}

/// Thirty-third pass H3: values other sessions took between two of the block's writes are in
/// use — three signups committed between a one-row insert and a 20,000-row insert of a block
/// that then rolls back. The sequence goes back only to where the last run of the block's own
/// writes began (the second write), never under the signups' ids: the next signups all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_never_puts_the_sequence_back_under_values_taken_between_its_writes() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let other = direct("app", APP_PW, &db).await;
    let signup = "INSERT INTO users (auth_source, email) VALUES ('oauth', 'signup') RETURNING id";
    for end in ["ROLLBACK", "SAVEPOINT"] {
        let (before, n) = (seq(&db).await, users(&db).await);
        via.batch_execute("BEGIN").await.unwrap();
        if end == "SAVEPOINT" {
            via.batch_execute("SAVEPOINT s").await.unwrap();
        }
        via.execute("INSERT INTO users (auth_source, email) VALUES ('oauth', 'first')", &[]).await.unwrap();
        for _ in 0..3 {
            other.query_one(signup, &[]).await.unwrap();
        }
        via.execute(INSERT, &[]).await.unwrap();
        assert_eq!(seq(&db).await, before + 20004);
        match end {
            "ROLLBACK" => via.batch_execute("ROLLBACK").await.unwrap(),
            _ => {
                via.batch_execute("ROLLBACK TO s").await.unwrap();
                via.batch_execute("COMMIT").await.unwrap();
            }
        }
        // Back to where the 20,000-row insert began: after the signups.
        assert_eq!(stands_at(&db, before + 4).await, before + 4, "{end}");
        assert_eq!(users(&db).await, n + 3);
        for _ in 0..5 {
            let r = other.query_one(signup, &[]).await;
            assert!(r.is_ok(), "{end}: a signup failed: {r:?}");
        }
    }
    p.stop().await;
}

/// Thirty-fourth pass H1: a `SELECT nextval(…)` of the protected sequence between the block's
/// writes no longer leaves the writes before it moved: since the seventy-eighth pass (H2: the
/// put-back went under the value it handed out) it is refused there, the block fails, and
/// the rollback puts everything back. A failed statement between them is read as it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nextval_between_the_blocks_writes_is_refused_and_all_goes_back() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // And a statement that fails there, in a savepoint the client then rolls back to: where
    // it left the sequence is read as it fails.
    let failing = "SAVEPOINT a; INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')";
    for middle in ["SELECT nextval('web_user_id_seq')", "SELECT -nextval('web_user_id_seq') AS id", failing] {
        for extended in [false, true] {
            let (before, n) = (seq(&db).await, users(&db).await);
            via.batch_execute("BEGIN").await.unwrap();
            via.execute(INSERT, &[]).await.unwrap();
            if middle == failing {
                via.batch_execute("SAVEPOINT a").await.unwrap();
                let r = match extended {
                    true => via
                        .execute("INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')", &[])
                        .await
                        .map(|_| ()),
                    false => via.batch_execute("INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')").await,
                };
                assert!(r.is_err(), "{r:?}");
                via.batch_execute("ROLLBACK TO a").await.unwrap();
                via.execute("INSERT INTO users (auth_source, email) VALUES ('oauth', 'last')", &[]).await.unwrap();
            } else {
                // A value taken ahead there would lie under where the rollback puts the
                // sequence back: refused, and the block fails (seventy-eighth pass H2).
                let r = match extended {
                    true => via.query_one(middle, &[]).await.map(|_| ()),
                    false => via.batch_execute(middle).await,
                };
                let m = refused_by(&r.expect_err(middle), "identity");
                assert!(m.contains("takes values of a protected sequence ahead"), "{m}");
            }
            via.batch_execute("ROLLBACK").await.unwrap();
            let at = stands_at(&db, before).await;
            assert_eq!(at, before, "{middle} extended={extended}: the sequence left moved");
            assert_eq!(users(&db).await, n);
        }
    }
    p.stop().await;
}
