//! A pooler behind blastwall (clients → blastwall → PgBouncer → PostgreSQL) hands a new client
//! session a server session another client used: with `server_reset_query` empty (or in
//! transaction pooling, where PgBouncer runs none), that server session's temporary schema may
//! already hold code (#11, "a server session handed to blastwall by a pooler"). Client A, a
//! DML-only role straight to PgBouncer (pool size 1), attaches a trigger that deletes every
//! user to a temporary table that a foreign key's cascade reaches, and leaves without
//! `DISCARD`; client B, the same role through blastwall, gets that server session and sends a
//! point `UPDATE` whose cascade fires it. blastwall must ask the new session's taint before
//! judging B's first statement: refused by the row limit, the users (read on the server
//! directly) unchanged. Behind a transaction pooler the same holds for a later transaction of
//! B's, asked again (the first answer shows the pooler).

use crate::harness::*;
use crate::taint::dml_db;
use std::process::{Child, Command};

/// A PgBouncer for one database on loopback: pool size 1, no reset query; stopped on drop.
struct Bouncer {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Bouncer {
    fn start(db: &str, pool_mode: &str) -> Bouncer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = blastwall::pgtemp::free_port();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let ini = format!(
            "[databases]\n{db} = host=127.0.0.1 port={pg} dbname={db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\nlogfile = {log}\n\
             pidfile = {pid}\npool_mode = {pool_mode}\ndefault_pool_size = 1\nserver_reset_query =\n\
             ignore_startup_parameters = extra_float_digits,options,blastwall.mode\n",
            pg = pg().server.port,
            users = p("users.txt"),
            log = p("pgbouncer.log"),
            pid = p("pgbouncer.pid"),
        );
        std::fs::write(p("pgbouncer.ini"), ini).unwrap();
        std::fs::write(p("users.txt"), format!("\"taint_dml\" \"{APP_PW}\"\n")).unwrap();
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|b| std::path::Path::new(b).is_file())
            .unwrap_or("pgbouncer");
        // PgBouncer refuses to run as root: as postgres then, in a folder it may write.
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            let _ = Command::new("chown").args(["-R", "postgres", &dir.path().display().to_string()]).status();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", bin]);
            c
        } else {
            Command::new(bin)
        };
        let child = cmd.arg(p("pgbouncer.ini")).spawn().expect("starting pgbouncer");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "pgbouncer did not start: {}",
                std::fs::read_to_string(p("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Bouncer { port, child, dir }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // The pgbouncer process itself (runuser forks it), then the child this test started.
        let pid = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client A, straight to the pooler on `port`: a function that deletes every user when the
/// statement running it starts with `SELECT`, folded in a temporary child table's `CHECK`.
async fn fill(port: u16, db: &str) {
    let a = connect(port, "taint_dml", APP_PW, db).await;
    for s in [
        "CREATE FUNCTION pg_temp.d() RETURNS void LANGUAGE plpgsql AS \
         $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; END$$",
        "CREATE FUNCTION pg_temp.imm(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
         $$BEGIN IF current_query() ~* '^\\s*select' THEN PERFORM pg_temp.d(); END IF; RETURN a; END$$",
        "CREATE TEMP TABLE tp(a int)",
        "CREATE TEMP TABLE tch(CHECK (pg_temp.imm(7) > 0)) INHERITS (tp)",
    ] {
        a.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
}

async fn handed_over(pool_mode: &str) {
    let db = dml_db();
    let users = || count(&db, "SELECT count(*) FROM users");
    let before = users().await;
    assert!(before > 50, "the incident's users");
    let bouncer = Bouncer::start(&db, pool_mode);
    let mut config = base_config();
    config.upstream_port = bouncer.port;
    let p = proxy_with(config, blastwall::demo::incident_policy().unwrap()).await;
    // A first client through blastwall has the database's hidden callers learned (kept for 30
    // seconds): what A makes next, straight to the pooler, is not in them.
    connect(p.port(), "taint_dml", APP_PW, &db).await.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Client A, straight to the pooler: code in its temporary schema, no DISCARD.
    fill(bouncer.port, &db).await;
    // The pooler takes the server session back once A's connection is gone.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let b = connect(p.port(), "taint_dml", APP_PW, &db).await;
    // B's first statement (a function call before it would have the taint asked anyway): the
    // planner folds the child's CHECK (constraint exclusion), which runs A's function.
    let ran = b.simple_query("SELECT * FROM tp WHERE a = 1").await;
    assert_eq!(users().await, before, "{pool_mode}: B's SELECT ran A's function: {ran:?}");
    let e = ran.err().unwrap_or_else(|| panic!("{pool_mode}: ran"));
    refused_by(&e, "row-limit");
    drop(b);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_session_a_session_pooler_hands_over_with_code_in_its_temp_schema_is_tainted() {
    handed_over("session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_session_a_transaction_pooler_hands_over_with_code_in_its_temp_schema_is_tainted() {
    handed_over("transaction").await;
}

/// Behind a *transaction* pooler (pool size 1), client B through blastwall asks its taint in
/// its first transaction (clean); then client A, straight to the pooler, fills the same server
/// session's temporary schema with code; B's next transaction lands there: its taint is asked
/// again (the first answer showed a pooler: its process is not the BackendKeyData's), and the
/// SELECT that runs A's function is counted and refused — inside a transaction block of B's,
/// and in autocommit. The users, read on the server directly, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_transaction_behind_a_transaction_pooler_on_a_filled_server_session_is_tainted() {
    let db = dml_db();
    let users = || count(&db, "SELECT count(*) FROM users");
    let before = users().await;
    let bouncer = Bouncer::start(&db, "transaction");
    let mut config = base_config();
    config.upstream_port = bouncer.port;
    let p = proxy_with(config, blastwall::demo::incident_policy().unwrap()).await;
    let b = connect(p.port(), "taint_dml", APP_PW, &db).await;
    // B's first transaction: the taint asked, clean (the server session never had one).
    b.simple_query("SELECT count(*) FROM users").await.unwrap();
    fill(bouncer.port, &db).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // In a block: BEGIN answered first, then the statement (the question runs in the block).
    b.simple_query("BEGIN").await.unwrap();
    let ran = b.simple_query("SELECT * FROM tp WHERE a = 1").await;
    b.simple_query("COMMIT").await.unwrap();
    assert_eq!(users().await, before, "B's SELECT in a block ran A's function: {ran:?}");
    refused_by(&ran.expect_err("ran"), "row-limit");
    // In autocommit.
    let ran = b.simple_query("SELECT * FROM tp WHERE a = 1").await;
    assert_eq!(users().await, before, "B's SELECT ran A's function: {ran:?}");
    refused_by(&ran.expect_err("ran"), "row-limit");
    drop(b);
    p.stop().await;
}
