//! Issue 13, sixth adversarial pass F3, F6, F7: a write judged in the middle of an
//! extended-protocol batch, where blastwall cannot ask the catalog, after DDL passed through
//! blastwall since the session's last answer — a temporary view over `users` made in an
//! earlier message (F3), `users` renamed (F6), its protected column renamed (F6, F7) — and
//! what such a judgement leaves for others: nothing it assumed may stand as a real answer for
//! a later judgement of any session (F7: `WHERE uid BETWEEN …` alone, from a new session, ran
//! after one mid-batch statement naming `uid`). Each is sent as raw frames through blastwall
//! in enforce mode with the shipped policies, as the DML-only role, with the migrations run
//! through blastwall by the `migrator` role (warn mode), and the data is checked directly on
//! the server. Controls: a pipeline on a table asked before, with no DDL since, runs; after
//! DDL, one write sent on its own lets the session's pipelines run again.

use crate::batches::{b, describe, e, flush, p, pbe, q, sync};
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use tokio::net::TcpStream;

/// The incident's ten real users, and the statement that deleted them.
const WINDOW: &str = "SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111";
const RANGE_V: &str = "DELETE FROM v WHERE id BETWEEN -91111120 AND -91111111";

/// The incident's schema for the DML-only role, with `users` owned by `migrator` (who may
/// rename it) and a copy of it in `archive` (for a view that leads elsewhere).
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "ALTER TABLE users OWNER TO migrator; GRANT USAGE, CREATE ON SCHEMA public TO migrator; \
             CREATE SCHEMA archive; CREATE TABLE archive.users AS SELECT * FROM public.users; \
             GRANT USAGE ON SCHEMA archive TO {RAW}; GRANT SELECT, INSERT, UPDATE, DELETE ON archive.users TO {RAW};"
        ),
    );
    db
}

/// A migration through blastwall, as `migrator` (warn mode: reported, not refused).
async fn migrate(port: u16, db: &str, sql: &str) {
    let m = connect(port, "migrator", APP_PW, db).await;
    m.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("blastwall: refused"), "{what} was not refused: {r:?}");
}

fn ran(r: &Replies, what: &str) {
    assert!(r.codes.is_empty(), "{what}: {}", r.errors);
}

/// `P/B/E("SELECT 1")`, then `sql`'s P/B/E, then Sync: `sql` is judged mid-batch.
async fn mid_batch(s: &mut TcpStream, sql: &str) -> Replies {
    send(s, &[pbe("SELECT 1"), pbe(sql), sync()]).await
}

/// A session that has had its answers: one write judged on its own.
pub(crate) async fn warm(port: u16, db: &str) -> TcpStream {
    let mut s = startup(port, RAW, db).await;
    run(&mut s, "DELETE FROM users WHERE id = 0").await;
    s
}

/// F7: after `RENAME COLUMN id TO uid` through blastwall, one mid-batch statement naming `uid`
/// is refused, and leaves nothing behind: the range DELETE sent alone, from that session and
/// from a new one, is refused (the protected column by its name now).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_batch_judgement_leaves_no_assumed_answer_for_other_sessions() {
    let db = setup();
    let window = |db: String| async move { count(&db, &WINDOW.replace("id BETWEEN", "uid BETWEEN")).await };
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    migrate(px.port(), &db, "ALTER TABLE users RENAME COLUMN id TO uid").await;
    let before = window(db.clone()).await;
    assert_eq!(before, 10);
    let r = mid_batch(&mut c, "DELETE FROM users WHERE uid BETWEEN -5 AND -1").await;
    refused(&r, "a mid-batch range DELETE on the renamed protected column");
    let alone = "DELETE FROM users WHERE uid BETWEEN -91111120 AND -91111111";
    let mut fresh = startup(px.port(), RAW, &db).await;
    let r = send(&mut fresh, &[q(alone)]).await;
    refused(&r, "the range DELETE alone, from a new session, after the mid-batch judgement");
    assert!(r.errors.contains("uid"), "names the column as it is called now: {}", r.errors);
    refused(&send(&mut c, &[q(alone)]).await, "the range DELETE alone, from the same session");
    // A mid-batch write where the stand-in is usable again (answered since) stays judged
    // with the column's name now.
    let r = mid_batch(&mut c, "DELETE FROM users WHERE uid BETWEEN -91111120 AND -91111111").await;
    refused(&r, "the range DELETE mid-batch, once the session had its answers again");
    assert_eq!(window(db.clone()).await, before);
    px.stop().await;
}

/// F6: after `ALTER TABLE users RENAME TO members` through blastwall, a session whose last
/// answer predates it writes to `members` mid-batch: judged as possibly any policy table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_renamed_since_the_last_answer_is_not_judged_by_its_new_name_only() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    migrate(px.port(), &db, "ALTER TABLE users RENAME TO members").await;
    let window = WINDOW.replace("FROM users", "FROM members");
    let before = count(&db, &window).await;
    assert_eq!(before, 10);
    let range = "DELETE FROM members WHERE id BETWEEN -91111120 AND -91111111";
    refused(&mid_batch(&mut c, range).await, "a mid-batch range DELETE on the renamed table");
    // Any first statement: BEGIN, a Parse and Describe, a Flush.
    let r = send(&mut c, &[pbe("BEGIN"), pbe(range), pbe("COMMIT"), sync()]).await;
    refused(&r, "after BEGIN");
    run(&mut c, "ROLLBACK").await;
    let r = send(&mut c, &[p("", "SELECT 1"), describe(b'S', ""), flush(), pbe(range), sync()]).await;
    refused(&r, "after Parse, Describe and Flush");
    let upd = "UPDATE members SET plan = 'x' WHERE id > -91111130 AND id < -91111100";
    refused(&mid_batch(&mut c, upd).await, "a mid-batch range UPDATE on the renamed table");
    assert_eq!(count(&db, &window).await, before);
    assert_eq!(count(&db, "SELECT count(*) FROM members WHERE plan = 'x'").await, 0);
    px.stop().await;
}

/// F3: a temporary view over `users` made in an earlier message (answered), then written
/// through in the middle of a batch: the incident's DELETE, the upsert overwrite, a range
/// UPDATE; a view re-pointed by CREATE OR REPLACE after blastwall had asked about it; a named
/// statement prepared while the view led to `archive.users`, bound mid-batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_made_in_an_earlier_message_is_not_judged_by_its_name_mid_batch() {
    let db = setup();
    let before = count(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    // Warm first, then a session that never had an answer of its own (the database's stands
    // in; a cold blastwall: `a_view_written_mid_batch_on_a_cold_blastwall_…`).
    for warmed in [true, false] {
        let mut c = if warmed { warm(px.port(), &db).await } else { startup(px.port(), RAW, &db).await };
        run(&mut c, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
        refused(&mid_batch(&mut c, RANGE_V).await, "a range DELETE through v mid-batch");
        let r = send(&mut c, &[pbe("CREATE TEMP TABLE zz (a int)"), pbe(RANGE_V), sync()]).await;
        refused(&r, "after CREATE TEMP TABLE in the batch");
        let upsert = "INSERT INTO v (id, auth_source, plan, email) VALUES (-91111112, 'test', 'free', 'pwned') \
                      ON CONFLICT (id) DO UPDATE SET email = excluded.email, auth_source = excluded.auth_source";
        refused(&mid_batch(&mut c, upsert).await, "an upsert overwrite through v mid-batch");
        let upd = "UPDATE v SET plan = 'free', email = 'pwn-range' WHERE id > -91111130 AND id < -91111100";
        refused(&mid_batch(&mut c, upd).await, "a range UPDATE through v mid-batch");
    }
    // Re-pointed after blastwall had asked about it (a write to v over archive, alone).
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP VIEW v AS SELECT * FROM archive.users").await;
    run(&mut c, "DELETE FROM v WHERE id = 0").await;
    run(&mut c, "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users").await;
    refused(&mid_batch(&mut c, RANGE_V).await, "a range DELETE through the re-pointed v mid-batch");
    // Prepared while v led to archive.users, bound mid-batch after it was re-pointed.
    run(&mut c, "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM archive.users").await;
    ran(&send(&mut c, &[p("S", RANGE_V), sync()]).await, "Parse while v leads to archive.users");
    run(&mut c, "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM public.users").await;
    let r = send(&mut c, &[pbe("SELECT 1"), b("", "S", &[]), e("", 0), sync()]).await;
    refused(&r, "Bind of S mid-batch after v was re-pointed at users");
    assert_eq!(count(&db, WINDOW).await, before);
    let touched = "SELECT count(*) FROM users WHERE email IN ('pwned', 'pwn-range') \
                   OR (id BETWEEN -91111120 AND -91111111 AND auth_source <> 'oauth')";
    assert_eq!(count(&db, touched).await, 0);
    px.stop().await;
}

/// Controls: an ordinary pipeline on tables asked before, with no DDL since (or only a new
/// plain table, a plain column), runs and changes what it says; after DDL through blastwall
/// that may change what a write reaches (here a column with a `CHECK`), the policy tables are
/// asked again before the next batch (`names::before_batch`), and its mid-batch UPDATE runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_pipelines_run_when_the_answers_are_current() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = warm(px.port(), &db).await;
    run(&mut c, "UPDATE subscriptions SET plan = plan WHERE id = 0").await;
    let upd = "UPDATE subscriptions SET plan = 'gold' WHERE user_id = -91111111";
    let r = send(&mut c, &[pbe("SELECT 1"), pbe(upd), pbe("DELETE FROM users WHERE id = 5"), sync()]).await;
    ran(&r, "an ordinary pipeline");
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions WHERE plan = 'gold'").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 5").await, 0);
    // A new plain table (made in an earlier message) changes no policy table's identity.
    run(&mut c, "CREATE TEMP TABLE scratch (a int)").await;
    let upd1 = "UPDATE subscriptions SET plan = 'bronze' WHERE user_id = -91111113";
    ran(&mid_batch(&mut c, upd1).await, "a pipeline after a new temporary table");
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions WHERE plan = 'bronze'").await, 1);
    // (DDL that can change nothing a write reaches — a plain column — keeps the answers
    // current: `names::ddl`.)
    migrate(px.port(), &db, "ALTER TABLE users ADD COLUMN plain text").await;
    ran(
        &mid_batch(&mut c, "UPDATE subscriptions SET plan = plan WHERE id = 0").await,
        "a pipeline after a plain column",
    );
    migrate(px.port(), &db, "ALTER TABLE users ADD COLUMN note text CHECK (note <> '')").await;
    let upd2 = "UPDATE subscriptions SET plan = 'silver' WHERE user_id = -91111112";
    ran(&mid_batch(&mut c, upd2).await, "a mid-batch UPDATE after DDL, asked again before its batch");
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions WHERE plan = 'silver'").await, 1);
    px.stop().await;
}

/// What a mid-batch judgement assumes of a name's indirect effects (the last answer, however
/// stale, within five minutes) stays with that judgement: it was kept in the shared cache for
/// a second, where another session's write judged alone took it for a current answer. Here the
/// last answer about `t` said "a plain table"; a rule that deletes 100 messages (the limit is
/// 60) was added since on a direct connection (blastwall does not see it), and the answer
/// expired. A mid-batch write to `t` (touching no row) assumes the old answer; another
/// session's UPDATE of `t`, alone and right after, must be asked about afresh: the rule's
/// deletes are counted and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_assumed_mid_batch_is_not_another_sessions_answer() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, x int); INSERT INTO t VALUES (1, 0); \
             GRANT SELECT, UPDATE ON t TO {RAW};"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut a = startup(px.port(), RAW, &db).await;
    run(&mut a, "UPDATE t SET x = x WHERE id = 1").await;
    admin_sql(
        pg(),
        &db,
        "CREATE RULE purge AS ON UPDATE TO t DO ALSO DELETE FROM web_messages WHERE id IN \
           (SELECT id FROM web_messages ORDER BY id LIMIT 100)",
    );
    let messages = "SELECT count(*) FROM web_messages";
    let before = count(&db, messages).await;
    assert!(before > 100, "{before}");
    let mut b = startup(px.port(), RAW, &db).await;
    run(&mut b, "SELECT 1").await;
    // The answer about t expires (the catalog's 30 s).
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    ran(&mid_batch(&mut a, "UPDATE t SET x = x WHERE id = -1").await, "a mid-batch write to t touching no row");
    let r = send(&mut b, &[q("UPDATE t SET x = x + 1 WHERE id = 1")]).await;
    refused(&r, "another session's UPDATE of t right after, whose rule deletes 100 messages");
    assert_eq!(count(&db, messages).await, before);
    px.stop().await;
}

/// Eighth adversarial pass F3, cold: on a freshly started blastwall, in a database where no
/// session has had an answer about the policy tables (nothing to stand in), a temporary view
/// over `users` made in an earlier message and written through in the middle of a batch was
/// judged by its name only (`DELETE 10`). The policy tables are asked before the batch's first
/// message when nothing may stand in, and a name without an answer is taken as any policy
/// table or a view over one: refused, whatever the batch's first message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_written_mid_batch_on_a_cold_blastwall_is_not_judged_by_its_name() {
    let db = setup();
    let before = count(&db, WINDOW).await;
    let upd = "UPDATE v SET plan = 'free', email = 'pwn-range' WHERE id > -91111130 AND id < -91111100";
    let firsts: [Vec<Vec<u8>>; 3] =
        [vec![pbe("SELECT 1")], vec![pbe("BEGIN")], vec![p("", "SELECT 1"), describe(b'S', ""), flush()]];
    for first in firsts {
        for write in [RANGE_V, upd] {
            // A new blastwall each time: nothing asked since it started.
            let px = proxy_with(base_config(), shipped_policy()).await;
            let mut c = startup(px.port(), RAW, &db).await;
            run(&mut c, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
            let r = send(&mut c, &[first.clone(), vec![pbe(write), sync()]].concat()).await;
            refused(&r, &format!("{write} through v in the middle of a batch, on a cold blastwall"));
            drop(c);
            px.stop().await;
        }
    }
    assert_eq!(count(&db, WINDOW).await, before);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'pwn-range'").await, 0);
}

/// Controls, on a cold blastwall: pipelines as pgjdbc (a batch in a transaction: BEGIN first)
/// and psycopg (executemany in a pipeline) send them — writes to a table no policy names, and
/// to a policy table within its rules — run and change what they say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_pipelines_run_on_a_cold_blastwall() {
    let db = setup();
    admin_sql(pg(), &db, &format!("CREATE TABLE t (id int PRIMARY KEY, x int); GRANT ALL ON t TO {RAW};"));
    let ins = |i: i32| pbe(&format!("INSERT INTO t VALUES ({i}, 0)"));
    let upd = |i: i32| pbe(&format!("UPDATE t SET x = x + 1 WHERE id = {i}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let mut batch = vec![pbe("BEGIN")];
    batch.extend((1..=5).map(ins));
    batch.extend((1..=5).map(upd));
    batch.push(pbe("UPDATE users SET plan = 'gold' WHERE id = -91111111"));
    batch.extend([pbe("COMMIT"), sync()]);
    ran(&send(&mut c, &batch).await, "a pgjdbc-style batch in a transaction");
    drop(c);
    px.stop().await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let mut batch: Vec<Vec<u8>> = (1..=5).map(upd).collect();
    batch.push(pbe("DELETE FROM t WHERE id = 5"));
    batch.push(sync());
    ran(&send(&mut c, &batch).await, "a psycopg-style pipeline");
    drop(c);
    px.stop().await;
    assert_eq!(count(&db, "SELECT sum(x) FROM t").await, 8);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'gold'").await, 1);
}

/// DDL run by a function's body — a plain `SELECT f()` through blastwall that makes a
/// temporary view over `users` — kept the last answer about the policy tables standing in for
/// the session's next batch, whose middle then wrote through `v` by its name only (`DELETE
/// 10`). In a database where a function may run DDL, such a call keeps the answers learned
/// before it from standing in for the calling session: they are asked again before its next
/// batch. Controls: no call changes the policy tables' identities for every session (their
/// generation stays), and pipelines run after calls, in a database whose functions cannot run
/// DDL and in one where one may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_run_by_a_functions_body_keeps_the_last_answer_from_standing_in() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.plus1(i int) RETURNS int LANGUAGE sql AS 'SELECT i + 1'; \
         CREATE FUNCTION public.users_now() RETURNS bigint LANGUAGE plpgsql \
           AS $$BEGIN RETURN (SELECT count(*) FROM public.users); END$$;",
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let generation = || px.shared.guard.catalog.identity_generation();
    let mut c = warm(px.port(), &db).await;
    let pipeline = "UPDATE subscriptions SET plan = plan WHERE id = 0";
    ran(&mid_batch(&mut c, pipeline).await, "a pipeline (answers asked before it)");
    let g = generation();
    run(&mut c, "SELECT public.plus1(1), public.users_now()").await;
    ran(&mid_batch(&mut c, pipeline).await, "a pipeline after ordinary calls");
    assert_eq!(generation(), g, "calls change no identity for every session");
    // A function that may, made through blastwall.
    migrate(
        px.port(),
        &db,
        "CREATE FUNCTION public.mkview() RETURNS void LANGUAGE plpgsql \
           AS $$BEGIN EXECUTE 'CREATE TEMP VIEW v AS SELECT * FROM public.users'; END$$;",
    )
    .await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let mut c = warm(px.port(), &db).await;
    let mut other = warm(px.port(), &db).await;
    ran(&mid_batch(&mut c, pipeline).await, "a pipeline with the new function known");
    let g2 = generation();
    run(&mut c, "SELECT public.plus1(1)").await;
    ran(&mid_batch(&mut c, pipeline).await, "the caller's pipeline after a call");
    ran(&mid_batch(&mut other, pipeline).await, "another session's pipeline after the call");
    run(&mut c, "SELECT public.mkview()").await;
    refused(&mid_batch(&mut c, RANGE_V).await, "a range DELETE through the view a function made");
    let upd = "UPDATE v SET plan = 'free', email = 'pwn-range' WHERE id > -91111130 AND id < -91111100";
    refused(&mid_batch(&mut c, upd).await, "a range UPDATE through it");
    assert_eq!(count(&db, WINDOW).await, before);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'pwn-range'").await, 0);
    assert_eq!(generation(), g2, "calls change no identity for every session");
    px.stop().await;
}

/// Nineteenth pass FPk: a driver's pipeline that ends with a Sync and then a Flush (psycopg's
/// `pipeline()` exit, libpq's `PQpipelineSync` plus `PQsendFlushRequest`) leaves no batch
/// open: the Flush after the Sync starts none on the server. The next simple Query, a counted
/// signup, is judged as a Query of its own and runs; before, it was refused as "in the middle
/// of an extended-protocol batch" for the rest of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_after_a_pipelines_sync_opens_no_batch() {
    let db = setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let users = "SELECT count(*) FROM users";
    let before = count(&db, users).await;
    // psycopg's `copy()`: the Query, CopyInResponse awaited, then the rows and CopyDone.
    tokio::io::AsyncWriteExt::write_all(&mut c, &q("COPY users (auth_source, email) FROM STDIN")).await.unwrap();
    assert_eq!(crate::batches::read_msg(&mut c).await.0, b'G');
    let r = send(&mut c, &[msg(b'd', b"oauth\tfpk-copy@x\n"), msg(b'c', &[])]).await;
    ran(&r, "the COPY");
    let signup = "INSERT INTO users (auth_source, email) VALUES ('oauth', 'fpk@x')";
    // psycopg's shape: Parse, Bind, Describe, Execute per statement, the signup's email a
    // parameter.
    let with_param = "INSERT INTO users (auth_source, email) VALUES ('oauth', $1)";
    let pipeline = [
        p("", "SELECT 1"),
        b("", "", &[]),
        describe(b'P', ""),
        e("", 0),
        p("", with_param),
        b("", "", &["fpk-pipeline@x"]),
        describe(b'P', ""),
        e("", 0),
        sync(),
        flush(),
    ];
    let r = send(&mut c, &pipeline).await;
    ran(&r, "the pipeline");
    for i in 0..2 {
        let r = send(&mut c, &[q(&signup.replace("fpk@", &format!("fpk{i}@")))]).await;
        ran(&r, "a simple-Query signup after the pipeline");
        assert_eq!(r.status, Some('I'), "{r:?}");
    }
    // A Flush that is all of a message opens nothing either.
    let r = send(&mut c, &[flush(), q(&signup.replace("fpk@", "fpk2@"))]).await;
    ran(&r, "a simple-Query signup behind a lone Flush");
    assert_eq!(count(&db, users).await, before + 5);
    // A Flush behind an Execute is in that batch: a counted Query behind both is still judged
    // as one in the middle of a batch.
    let r = send(&mut c, &[pbe("SELECT 1"), flush(), q(&signup.replace("fpk@", "fpk3@")), sync()]).await;
    refused(&r, "a counted Query behind an Execute and a Flush");
    assert_eq!(count(&db, users).await, before + 5);
    px.stop().await;
}

/// Fifteenth pass FP1: a point UPDATE through an ordinary view over `users` (a DBA's, no rules)
/// in the middle of a pipeline, after the session had the view resolved: the session's answer
/// about the view stands in for its rules as it does for its name, so the write runs. A range
/// through the view is still refused there. A write beside another relation (seventeenth pass
/// V1's shape) has that relation's rules asked inside the batch (issue 13): it has none, and
/// the write runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_point_update_through_a_view_over_users_runs() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE VIEW active_users AS SELECT id, email, plan FROM users WHERE auth_source <> 'test'; \
             GRANT SELECT, UPDATE ON active_users TO {RAW}; \
             CREATE TABLE staging (id bigint); GRANT SELECT, INSERT, UPDATE, DELETE ON staging TO {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "UPDATE active_users SET plan = 'pro' WHERE id = 1000011").await;
    let update = "UPDATE active_users SET plan = $1 WHERE id = $2";
    let pipeline = [pbe("SELECT 1"), p("", update), b("", "", &["premium", "1000010"]), e("", 0), sync()];
    ran(&send(&mut c, &pipeline).await, "the pipelined point UPDATE through the view");
    let plan = "SELECT count(*) FROM users WHERE id = 1000010 AND plan = 'premium'";
    assert_eq!(count(&db, plan).await, 1);
    let range = "UPDATE active_users SET plan = 'x' WHERE id BETWEEN -91111120 AND -91111111";
    refused(&mid_batch(&mut c, range).await, "a range through the view");
    let beside = "WITH s AS (DELETE FROM staging WHERE id = 1) UPDATE active_users SET plan = 'y' WHERE id = 1000012";
    ran(&mid_batch(&mut c, beside).await, "a write through the view beside another relation");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'x'").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'y'").await, 1);
    px.stop().await;
}
