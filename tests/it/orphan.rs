//! The server ends a session that owes protected sequences a put-back (thirty-second to
//! thirty-fifth passes): blastwall puts them back on a connection of its own (`[ddl_notify]`)
//! once the server says the writes' transaction aborted, never under values others took.
//! Sequence and rows read directly on the server.

use crate::harness::*;
use crate::undone::{seq, stands_at, users, INSERT};
use std::time::Duration;

/// Thirty-second pass H1: the **server** ends the session with the block open — the session
/// terminating itself, another session of the same role terminating it, and
/// `idle_in_transaction_session_timeout` set in the startup options. The server rolls the
/// block back; blastwall can no longer put anything back on that session, so it does on a
/// connection of its own (`[ddl_notify]`), once the server says the writes' transaction
/// aborted. A block that committed before keeps its move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_ending_the_block_has_the_move_put_back_on_blastwalls_own_connection() {
    let db = incident_db();
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let mut cfg = base_config();
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(blastwall::config::DdlNotifyConfig { user: "postgres".into(), password_env });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let first = connect(p.port(), "app", APP_PW, &db).await;
    first.simple_query("SELECT count(*) FROM users").await.unwrap();
    crate::ddl_notify::listening(&db).await;
    let direct_app = direct("app", APP_PW, &db).await;
    for how in ["itself", "another session", "idle timeout"] {
        for extended in [false, true] {
            let (before, n) = (seq(&db).await, users(&db).await);
            let info = match how {
                "idle timeout" => format!(
                    "{} options='-c idle_in_transaction_session_timeout=300'",
                    conninfo(p.port(), "app", APP_PW, &db)
                ),
                _ => conninfo(p.port(), "app", APP_PW, &db),
            };
            let (via, conn) = tokio_postgres::connect(&info, tokio_postgres::NoTls).await.unwrap();
            let conn = tokio::spawn(conn);
            via.batch_execute("BEGIN").await.unwrap();
            match extended {
                true => via.execute(INSERT, &[]).await.map(|_| ()),
                false => via.batch_execute(INSERT).await,
            }
            .unwrap();
            let pid: i32 = via.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
            assert_eq!(seq(&db).await, before + 20000);
            match how {
                "itself" => {
                    let r = via.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await;
                    assert!(r.is_err(), "{r:?}");
                }
                "another session" => {
                    let sql = format!("SELECT pg_terminate_backend({pid})");
                    assert!(direct_app.query_one(&sql, &[]).await.unwrap().get::<_, bool>(0));
                }
                _ => tokio::time::sleep(Duration::from_millis(800)).await,
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            assert!(via.is_closed(), "{how}: the session was not ended");
            let at = stands_at(&db, before).await;
            assert_eq!(at, before, "{how} extended={extended}: the sequence left moved");
            assert_eq!(users(&db).await, n);
        }
    }
    // No block: one Query whose implicit transaction the server ends behind the counted write.
    {
        let (before, n) = (seq(&db).await, users(&db).await);
        let via = connect(p.port(), "app", APP_PW, &db).await;
        let r = via.batch_execute(&format!("{INSERT}; SELECT pg_terminate_backend(pg_backend_pid())")).await;
        assert!(r.is_err(), "{r:?}");
        let at = stands_at(&db, before).await;
        assert_eq!(at, before, "one implicit transaction: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    // The same while another session's open transaction holds the sequence (it took a value,
    // which may lie in the range the statement moved over): where the statement left the
    // sequence was never read, so it stays where it is.
    {
        let holder = direct("app", APP_PW, &db).await;
        let before = seq(&db).await;
        holder.batch_execute("BEGIN; SELECT nextval('web_user_id_seq')").await.unwrap();
        let via = connect(p.port(), "app", APP_PW, &db).await;
        let r = via.batch_execute(&format!("{INSERT}; SELECT pg_terminate_backend(pg_backend_pid())")).await;
        assert!(r.is_err(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(seq(&db).await, before + 20001, "a value an open transaction holds would be handed out again");
        holder.batch_execute("COMMIT").await.unwrap();
        admin_sql(pg(), &db, &format!("SELECT setval('web_user_id_seq', {before})"));
    }
    // Ended by another session in the middle of the counted write (its check): never read
    // after it.
    {
        let (before, n) = (seq(&db).await, users(&db).await);
        let via = connect(p.port(), "app", APP_PW, &db).await;
        let big =
            "INSERT INTO users (auth_source, email) SELECT 'oauth', 'big-' || g FROM generate_series(1, 2000000) g";
        let running = tokio::spawn(async move { via.batch_execute(big).await });
        let find = format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND usename = 'app'              AND state = 'active' AND query LIKE 'INSERT INTO users%big-%'"
        );
        let mut killed = false;
        for _ in 0..200 {
            if let Some(r) = direct_app.query_opt(&find, &[]).await.unwrap() {
                if seq(&db).await > before + 5000 {
                    let pid: i32 = r.get(0);
                    killed = direct_app.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap().get(0);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(killed, "the write was not seen running");
        let r = running.await.unwrap();
        assert!(r.is_err(), "{r:?}");
        let at = stands_at(&db, before).await;
        assert_eq!(at, before, "ended in the middle of the write: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    // A COPY kept in the block (its position read with its transaction ID), then the end.
    {
        use crate::batches::{q, run, show, Send, Until};
        admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT INSERT, SELECT ON users TO trust_user");
        let (before, n) = (seq(&db).await, users(&db).await);
        let rows: Vec<u8> = (0..3000).flat_map(|i| msg(b'd', format!("oauth\tcp{i}@x\n").as_bytes())).collect();
        let script = [
            Send(q("BEGIN")),
            Until(b'Z', 1),
            Send(q("COPY users (auth_source, email) FROM STDIN")),
            Until(b'G', 1),
            Send([rows, msg(b'c', &[]), q("SELECT 1"), q("SELECT pg_terminate_backend(pg_backend_pid())")].concat()),
            Until(b'E', 1),
        ];
        let out = show(&run(p.port(), &db, &script).await);
        assert!(out.contains("COPY 3000") && out.contains("57P01"), "{out}");
        assert_eq!(stands_at(&db, before).await, before, "COPY: the sequence left moved: {out}");
        assert_eq!(users(&db).await, n);
    }
    // Thirty-third pass H1: a statement that failed after the kept write moved the sequence a
    // step no reading saw; the failed block is then ended by another session.
    {
        let (before, n) = (seq(&db).await, users(&db).await);
        let via = connect(p.port(), "app", APP_PW, &db).await;
        via.batch_execute("BEGIN").await.unwrap();
        via.execute(INSERT, &[]).await.unwrap();
        let pid: i32 = via.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        let r = via.batch_execute("INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')").await;
        assert!(r.is_err(), "{r:?}");
        let sql = format!("SELECT pg_terminate_backend({pid})");
        assert!(direct_app.query_one(&sql, &[]).await.unwrap().get::<_, bool>(0));
        let at = stands_at(&db, before).await;
        assert_eq!(at, before, "a failed statement after the write, then ended: the sequence left moved");
        assert_eq!(users(&db).await, n);
    }
    // Thirty-fourth pass H3: the same failed statement, then the client waits in its failed
    // block while others sign up, then the end: where the failure left the sequence was read,
    // the signups' ids are past it, so it stays where it is — never under them.
    {
        let before = seq(&db).await;
        let via = connect(p.port(), "app", APP_PW, &db).await;
        via.batch_execute("BEGIN").await.unwrap();
        via.execute(INSERT, &[]).await.unwrap();
        let pid: i32 = via.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        let r = via.batch_execute("INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')").await;
        assert!(r.is_err(), "{r:?}");
        for _ in 0..3 {
            direct_app
                .batch_execute("INSERT INTO users (auth_source, email) VALUES ('oauth', 'meanwhile')")
                .await
                .unwrap();
        }
        let sql = format!("SELECT pg_terminate_backend({pid})");
        assert!(direct_app.query_one(&sql, &[]).await.unwrap().get::<_, bool>(0));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The failed INSERT's one step was put back at once (a failed statement keeps none of
        // its steps), before the signups took theirs: 20,000 and the three signups.
        assert_eq!(seq(&db).await, before + 20003, "put back under the signups' ids");
        for _ in 0..3 {
            let r = direct_app.batch_execute("INSERT INTO users (auth_source, email) VALUES ('oauth', 'after')").await;
            assert!(r.is_ok(), "a signup failed: {r:?}");
        }
        admin_sql(pg(), &db, &format!("SELECT setval('web_user_id_seq', {})", before + 20007));
    }
    // Thirty-third pass H3: signups committed between the block's two writes, then the end:
    // back to where the second write began, above the signups' ids.
    {
        let (before, n) = (seq(&db).await, users(&db).await);
        let via = connect(p.port(), "app", APP_PW, &db).await;
        via.batch_execute("BEGIN").await.unwrap();
        via.execute("INSERT INTO users (auth_source, email) VALUES ('oauth', 'first')", &[]).await.unwrap();
        let signup = "INSERT INTO users (auth_source, email) VALUES ('oauth', 'signup')";
        for _ in 0..3 {
            direct_app.batch_execute(signup).await.unwrap();
        }
        via.execute(INSERT, &[]).await.unwrap();
        let r = via.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await;
        assert!(r.is_err(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(stands_at(&db, before + 4).await, before + 4, "under the signups' ids, or left moved");
        assert_eq!(users(&db).await, n + 3);
    }
    // Thirty-third pass H2: a lone COPY the server ends in the middle of its data.
    {
        admin_sql(pg(), &db, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO trust_user; GRANT INSERT, SELECT ON users TO trust_user");
        let (before, n) = (seq(&db).await, users(&db).await);
        let mut c = startup(p.port(), "trust_user", &db).await;
        use tokio::io::AsyncWriteExt;
        c.write_all(&crate::batches::q("COPY users (auth_source, email) FROM STDIN")).await.unwrap();
        while crate::batches::read_msg(&mut c).await.0 != b'G' {}
        let rows: Vec<u8> = (0..20000).flat_map(|i| msg(b'd', format!("oauth\tmid{i}@x\n").as_bytes())).collect();
        c.write_all(&rows).await.unwrap();
        let find = format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND usename = 'trust_user' AND query LIKE 'COPY users%'"
        );
        for _ in 0..100 {
            if seq(&db).await >= before + 20000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid: i32 = count(&db, &format!("SELECT ({find})::int8")).await as i32;
        admin_sql(pg(), &db, &format!("SELECT pg_terminate_backend({pid})"));
        let at = stands_at(&db, before).await;
        assert_eq!(at, before, "a COPY ended by the server in its middle: the sequence left moved");
        assert_eq!(users(&db).await, n);
        drop(c);
    }
    // Thirty-fifth pass H1, H2: in a block, one extended batch whose counted INSERT is kept and
    // whose second INSERT fails after taking a value, then the client waits in its failed
    // block and another session ends it: where the failure left the sequence was read on
    // blastwall's own connection as the block failed.
    {
        use crate::batches::{pbe, q, read_msg, sync};
        use tokio::io::AsyncWriteExt;
        let (before, n) = (seq(&db).await, users(&db).await);
        let mut c = startup(p.port(), "trust_user", &db).await;
        c.write_all(&q("BEGIN")).await.unwrap();
        while read_msg(&mut c).await.0 != b'Z' {}
        let batch =
            [pbe(INSERT), pbe("INSERT INTO users (auth_source, email) VALUES (NULL, 'fails')"), sync()].concat();
        c.write_all(&batch).await.unwrap();
        while read_msg(&mut c).await.0 != b'Z' {}
        assert_eq!(users(&db).await, n);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let find = format!("SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND usename = 'trust_user'");
        let pid = count(&db, &format!("SELECT ({find})::int8")).await;
        admin_sql(pg(), &db, &format!("SELECT pg_terminate_backend({pid})"));
        let at = stands_at(&db, before).await;
        assert_eq!(at, before, "a batch failed after its kept write, then ended: the sequence left moved");
        drop(c);
    }
    // Committed, then ended: kept.
    let before = seq(&db).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute("BEGIN").await.unwrap();
    via.execute(INSERT, &[]).await.unwrap();
    via.batch_execute("COMMIT; BEGIN").await.unwrap();
    let _ = via.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seq(&db).await, before + 20000, "a committed move was put back");
    p.stop().await;
}

/// Forty-ninth pass H1: a role with `USAGE, SELECT` on the protected sequence, not `UPDATE`
/// (`setval` is not its to call), moved it 100,000 steps with a statement blastwall refused:
/// the put-back on its session failed, and the sequence stayed moved. It is made on
/// blastwall's own connection (`[ddl_notify]`), outside a block and inside one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_the_role_may_not_put_back_is_put_back_on_blastwalls_own_connection() {
    const ROLE: &str = "seq_user_only";
    let db = incident_db();
    let role = format!(
        "DO $$ BEGIN CREATE ROLE {ROLE} LOGIN PASSWORD '{APP_PW}'; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    admin_sql(pg(), "postgres", &role);
    admin_sql(
        pg(),
        &db,
        &format!(
            "GRANT USAGE ON SCHEMA public TO {ROLE}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}"
        ),
    );
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let mut cfg = base_config();
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(blastwall::config::DdlNotifyConfig { user: "postgres".into(), password_env });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let c = connect(p.port(), ROLE, APP_PW, &db).await;
    let moves = "SELECT nextval('web_user_id_seq') FROM generate_series(1, 100000)";
    for block in [false, true] {
        let before = seq(&db).await;
        if block {
            c.batch_execute("BEGIN").await.unwrap();
        }
        let e = c.simple_query(moves).await.expect_err("the move was kept");
        let e = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
        assert!(e.message().starts_with("blastwall: refused"), "{e:?}");
        if block {
            c.batch_execute("ROLLBACK").await.unwrap();
        }
        assert_eq!(seq(&db).await, before, "block={block}: the sequence stayed moved");
    }
    // Fiftieth pass H1: the statement fails by itself in the client's block (the put-backs run
    // there behind a reading of which are due, the first the role may not make stops the rest).
    let fails = "SELECT 1 / (count(nextval('web_user_id_seq')) - 100000)::int FROM generate_series(1, 100000)";
    let before = seq(&db).await;
    c.batch_execute("BEGIN").await.unwrap();
    let e = c.simple_query(fails).await.expect_err("the division by zero ran");
    assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("22012"), "{e:?}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(seq(&db).await, before, "failed in a block: the sequence stayed moved");
    // Fifty-first pass H1: a function body's `DISCARD SEQUENCES` leaves no `currval` to judge
    // the put-back by: judged as on another connection, refused and failed in a block alike.
    let forget = "CREATE FUNCTION pg_temp.forget() RETURNS int LANGUAGE plpgsql AS \
                  $$ BEGIN EXECUTE 'DISCARD SEQUENCES'; RETURN 1; END $$";
    c.batch_execute(forget).await.unwrap();
    let moved = "(SELECT count(nextval('web_user_id_seq')) AS n FROM generate_series(1, 100000)) s";
    for (block, sql) in [
        (false, format!("SELECT pg_temp.forget() FROM {moved}")),
        (true, format!("SELECT pg_temp.forget() FROM {moved}")),
        (true, format!("SELECT pg_temp.forget() / (n - 100000)::int FROM {moved}")),
    ] {
        let before = seq(&db).await;
        if block {
            c.batch_execute("BEGIN").await.unwrap();
        }
        c.simple_query(&sql).await.expect_err("the move was kept");
        if block {
            c.batch_execute("ROLLBACK").await.unwrap();
        }
        assert_eq!(seq(&db).await, before, "{sql}: the sequence stayed moved");
    }
    // The session goes on: its own next value follows where the sequence was put back.
    let next: i64 = c.query_one("SELECT nextval('web_user_id_seq')", &[]).await.unwrap().get(0);
    assert_eq!(next, seq(&db).await);
    p.stop().await;
}

/// Forty-ninth pass H1 in the middle of an extended batch: the role may not call `setval`
/// (`USAGE, SELECT, INSERT…` but not `UPDATE` on the sequence), and its 100,000-step move,
/// refused behind another statement of the same batch, was put back on the session only
/// (which failed: the move stayed). Which put-backs are due is read there first, and the one
/// the role may not make is made on blastwall's own connection (`[ddl_notify]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_the_role_may_not_put_back_mid_batch_is_put_back_on_blastwalls_own_connection() {
    use crate::batches::{pbe, sync};
    use crate::binds::RAW;
    let db = crate::binds::setup();
    admin_sql(pg(), &db, &format!("REVOKE UPDATE ON SEQUENCE web_user_id_seq FROM {RAW}"));
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let mut cfg = base_config();
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(blastwall::config::DdlNotifyConfig { user: "postgres".into(), password_env });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let mut c = startup(p.port(), RAW, &db).await;
    crate::batchnames::run(&mut c, "SELECT count(*) FROM users").await;
    crate::ddl_notify::listening(&db).await;
    let before = seq(&db).await;
    let moves = "SELECT nextval('web_user_id_seq') FROM generate_series(1, 100000)";
    let r = crate::batchnames::send(&mut c, &[pbe("SELECT 1"), pbe(moves), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(seq(&db).await, before, "the sequence stayed moved");
    // The session goes on.
    crate::batchnames::run(&mut c, "SELECT 1").await;
    p.stop().await;
}
