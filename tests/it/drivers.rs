//! Real client drivers (asyncpg, psycopg, pgjdbc, node-postgres) run the same program directly
//! and through blastwall with a policy that counts every DELETE and UPDATE (limits far above
//! any real count): the output must be the same, within a time limit (a hang fails). The
//! drivers come from `scripts/install-test-clients`; a test whose driver is missing fails.

use crate::batches::{db, proxy_for, COUNT_ALL};
use crate::harness::*;
use std::path::PathBuf;
use std::time::Duration;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn node_modules() -> PathBuf {
    let base = std::env::var("BLASTWALL_TEST_CLIENTS").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/blastwall-test-clients")
    });
    base.join("node/node_modules")
}

/// Runs a client program against `port`/`db`; its stdout, or a failure naming the driver.
async fn run_client(program: &[&str], port: u16, db: &str) -> String {
    let mut cmd = tokio::process::Command::new(program[0]);
    cmd.args(&program[1..]).arg(port.to_string()).arg(db).env("NODE_PATH", node_modules()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{program:?} did not finish within 90 s (a hang)"))
        .unwrap_or_else(|e| panic!("{program:?} could not start ({e}); run scripts/install-test-clients"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program:?} failed (is the driver installed? scripts/install-test-clients):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn same_as_direct(program: &[&str]) {
    let proxy = proxy_for(COUNT_ALL).await;
    let (d1, d2) = (db(), db());
    let direct = run_client(program, pg().server.port, &d1).await;
    let via = run_client(program, proxy.port(), &d2).await;
    assert_eq!(via, direct, "through blastwall (left) and direct (right) differ");
    assert!(!via.contains("blastwall"), "{via}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_matches_direct() {
    let p = clients_dir().join("asyncpg_client.py");
    same_as_direct(&["python3", p.to_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_matches_direct() {
    let p = clients_dir().join("psycopg_client.py");
    same_as_direct(&["python3", p.to_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_with_autocommit_off_matches_direct() {
    let p = clients_dir().join("Jdbc.java");
    same_as_direct(&["java", "-cp", "/usr/share/java/postgresql.jar", p.to_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_matches_direct() {
    let p = clients_dir().join("pg_client.js");
    same_as_direct(&["node", p.to_str().unwrap()]).await;
}
