//! Red-team pass 10's findings, each reproduced as its attacker sent it and checked on the
//! server directly: `SET UNLOGGED` of a policy table (M1), writes a server-side connection runs
//! in another backend (`dblink`, H1), and two-phase commit in a session with a temporary
//! table (M2); and pass 11's ways around the H1 fix (dblink's library outside its extension,
//! a temporary view over a foreign table).

use crate::harness::*;

/// The persistence of `rel` as the server has it (`p` logged, `u` unlogged), asked directly.
async fn persistence(db: &str, rel: &str) -> String {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let sql = format!("SELECT relpersistence::text FROM pg_class WHERE oid = '{rel}'::regclass");
    c.query_one(&sql, &[]).await.unwrap().get(0)
}

/// M1: an unlogged table is emptied by crash recovery and on every replica: `SET UNLOGGED` of a
/// policy table (and an unlogged child or partition of one) is refused like a truncation; the
/// same of a table no policy names runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_unlogged_of_a_policy_table_is_refused() {
    let db = incident_db();
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for sql in [
        "ALTER TABLE web_messages SET UNLOGGED",
        "ALTER TABLE IF EXISTS public.web_messages SET UNLOGGED",
        "ALTER TABLE web_messages ADD COLUMN note text, SET UNLOGGED",
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        let m = refused_by(&e, "unlogged");
        assert!(m.contains("public.web_messages"), "{m}");
    }
    assert_eq!(persistence(&db, "public.web_messages").await, "p");
    let e = c
        .batch_execute("CREATE UNLOGGED TABLE wm_more () INHERITS (web_messages)")
        .await
        .expect_err("an unlogged child");
    refused_by(&e, "unlogged");
    assert_eq!(count(&db, "SELECT count(*) FROM pg_class WHERE relname = 'wm_more'").await, 0);
    // A table no policy names may be made unlogged.
    c.batch_execute("CREATE TABLE scratch (v int); ALTER TABLE scratch SET UNLOGGED").await.unwrap();
    assert_eq!(persistence(&db, "public.scratch").await, "u");
    proxy.stop().await;
}

/// A database with the incident's schema and `dblink`, and the connection string that makes
/// the server connect to itself as `app` (dblink asks a password of a non-superuser).
fn dblink_db() -> (String, String) {
    let db = incident_db();
    admin_sql(pg(), &db, "CREATE EXTENSION dblink");
    let loopback = format!("host=127.0.0.1 port={} dbname={db} user=app password={APP_PW}", pg().server.port);
    (db, loopback)
}

/// H1: `dblink_exec` runs its SQL in a backend the server opened to itself: the pre-check's
/// counters (the client's backend) see nothing and that backend commits on its own. Calls of
/// dblink's functions — direct, through a view, a function wrapping one, a row source — are
/// refused as unverifiable; the rows stay on the server. Built-ins still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dblink_writes_in_another_session_are_refused() {
    let (db, loopback) = dblink_db();
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    owner
        .batch_execute(&format!(
            "SET ROLE app; \
             CREATE VIEW wipe AS SELECT dblink_exec('{loopback}', 'DELETE FROM web_messages') AS r; \
             CREATE FUNCTION quiet() RETURNS text LANGUAGE plpgsql AS \
               $$BEGIN RETURN dblink_exec('{loopback}', 'DELETE FROM chat_sessions'); END$$;"
        ))
        .await
        .unwrap();
    let before = snapshot(&owner).await;
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let users = "'DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100'";
    for sql in [
        format!("SELECT dblink_exec('{loopback}', {users})"),
        format!("SELECT public.dblink_exec('{loopback}', 'DELETE FROM users')"),
        format!("SELECT * FROM dblink('{loopback}', 'DELETE FROM users RETURNING id') AS t(id bigint)"),
        format!("SELECT dblink_connect('x', '{loopback}'), dblink_send_query('x', 'DELETE FROM users')"),
        "SELECT * FROM wipe".to_string(),
        "SELECT quiet()".to_string(),
    ] {
        let e = c.simple_query(&sql).await.expect_err(&sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains("(dblink.") && m.contains("in another session"), "{sql}: {m}");
        // The extended protocol is judged the same.
        let e = c.query(&sql, &[]).await.expect_err(&sql);
        refused_by(&e, "unverifiable");
    }
    // Nothing was deleted, by this session or another.
    assert_eq!(snapshot(&owner).await, before);
    // Well-known built-ins are not calls of code blastwall cannot see.
    c.simple_query("SELECT upper('x'), now()").await.unwrap();
    proxy.stop().await;
}

/// Eleventh pass H2: dblink's C function declared outside the extension (by a superuser) runs
/// SQL in another session all the same: known by its library, not by the extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dblinks_library_outside_its_extension_is_refused() {
    let db = incident_db();
    let loopback = format!("host=127.0.0.1 port={} dbname={db} user=app password={APP_PW}", pg().server.port);
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.remote_exec(text, text) RETURNS text \
           AS '$libdir/dblink', 'dblink_exec' LANGUAGE C STRICT; \
         GRANT EXECUTE ON FUNCTION public.remote_exec(text, text) TO app",
    );
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    let before = snapshot(&owner).await;
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let sql = format!("SELECT remote_exec('{loopback}', 'DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100')");
    let e = c.simple_query(&sql).await.expect_err(&sql);
    let m = refused_by(&e, "unverifiable");
    assert!(m.contains("remote_exec") && m.contains("in another session"), "{m}");
    assert_eq!(snapshot(&owner).await, before);
    proxy.stop().await;
}

/// H1, foreign tables: a write to a `postgres_fdw` foreign table runs on the remote server —
/// here this one, through a loopback definition — where nothing is counted: refused, and so is
/// a call of a user function while the database has one (its body may write to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_foreign_table_are_refused() {
    let db = crate::rt11::fdw_db("CREATE FUNCTION far_wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM far_users';");
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    let before = snapshot(&owner).await;
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // A temporary view over it would be written through as a plain relation (eleventh pass H1).
    for sql in [
        "DELETE FROM far_users WHERE id BETWEEN -91111200 AND -91111100",
        "SELECT far_wipe()",
        "CREATE TEMP VIEW v AS SELECT * FROM far_users",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains("foreign table far_users"), "{sql}: {m}");
    }
    let e = c.simple_query("DELETE FROM v WHERE auth_source <> 'x'").await.expect_err("no view");
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE), "{e}");
    assert_eq!(snapshot(&owner).await, before);
    // Reading it is not a write.
    c.simple_query("SELECT count(*) FROM far_users").await.unwrap();
    proxy.stop().await;
}

/// A PostgreSQL of this module's own with `max_prepared_transactions` (the harness's has none),
/// `app` and a database `honey` with the incident's schema owned by it.
fn two_phase_pg() -> &'static blastwall::pgtemp::TempPostgres {
    static PG2: std::sync::OnceLock<blastwall::pgtemp::TempPostgres> = std::sync::OnceLock::new();
    PG2.get_or_init(|| {
        let opts = blastwall::pgtemp::PgOptions {
            password: SUPERUSER_PW.into(),
            tls: None,
            hba: vec![],
            conf: vec!["max_prepared_transactions = 4".into()],
        };
        let server = blastwall::pgtemp::TempPostgres::start(&opts).unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        server.stop_when_process_exits(std::process::id());
        let run = |db: &str, sql: &str| {
            let out = std::process::Command::new(psql_path())
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &server.admin_conninfo(db), "-c", sql])
                .output()
                .expect("psql");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        run("postgres", &format!("CREATE ROLE app LOGIN PASSWORD '{APP_PW}'"));
        run("postgres", "CREATE DATABASE honey OWNER app");
        run("honey", &format!("SET ROLE app; {}", blastwall::demo::INCIDENT_SCHEMA));
        server
    })
}

/// What each step of `steps` answered: its command tags, or its SQLSTATE.
async fn outcomes(c: &tokio_postgres::Client, steps: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps {
        out.push(match c.simple_query(s).await {
            Ok(msgs) => msgs
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(format!("ok {n}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => format!("error {:?}", e.code().map(|c| c.code().to_string())),
        });
    }
    out
}

/// M2: in a session with a temporary table that has a TOAST table and an index, a write to a
/// policy table inside a block and then `PREPARE TRANSACTION` (a transaction manager's
/// two-phase commit) answer through blastwall as directly: blastwall's catalog questions on
/// the client's session must not open the temporary relations (which marks the transaction as
/// having used temporary objects: `0A000` at PREPARE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_beside_a_temporary_table_as_directly() {
    let server = two_phase_pg();
    let mut cfg = base_config();
    cfg.upstream_port = server.port;
    let proxy = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let mut seen = Vec::new();
    for (port, gid) in [(server.port, "direct"), (proxy.port(), "proxied")] {
        let c = connect(port, "app", APP_PW, "honey").await;
        let steps = [
            "CREATE TEMP TABLE scratch (id int PRIMARY KEY, note text DEFAULT 'x')",
            "BEGIN",
            "UPDATE users SET plan = plan WHERE auth_source = 'test'",
            "UPDATE users SET plan = plan WHERE id = -91111105",
            "INSERT INTO subscriptions (user_id, plan) VALUES (-91111105, 'free')",
            &format!("PREPARE TRANSACTION '{gid}'"),
            &format!("COMMIT PREPARED '{gid}'"),
        ];
        seen.push(outcomes(&c, &steps).await);
    }
    assert_eq!(seen[0], seen[1], "direct, then through blastwall");
    assert!(seen[0].iter().all(|s| s.starts_with("ok")), "{:?}", seen[0]);
    // Both committed: two subscriptions added on the server.
    let c = connect(server.port, "postgres", SUPERUSER_PW, "honey").await;
    let n: i64 = c.query_one("SELECT count(*) FROM subscriptions WHERE user_id = -91111105", &[]).await.unwrap().get(0);
    assert_eq!(n, 3, "the one from the schema and the two committed");
    proxy.stop().await;
}
