//! `blastwall demo`: a throwaway PostgreSQL with the incident's schema and data, behind the
//! proxy in enforce mode with the incident's policy — the first thing a new user runs.
//!
//! Owns: the demo's setup, its instructions (with commands that work from where it was
//! started), and its cleanup: the proxy's port is taken before initdb runs, the throwaway
//! server is removed when the demo stops (the CLI stops it on SIGINT, SIGTERM and SIGHUP) and
//! by a watchdog when the demo is killed outright. Does not own: the proxy (`server`) or the
//! throwaway server's mechanics (`pgtemp`).

use crate::config::{Config, UpstreamSslMode};
use crate::guard::Guard;
use crate::pgtemp::{PgError, PgOptions, TempPostgres};
use crate::policy::{self, file::DEFAULT_POLICY, Policy};
use crate::server::{Server, ServerError, ShutdownHandle};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const INCIDENT_POLICY: &str = include_str!("../policies/incident.toml");
pub const INCIDENT_SCHEMA: &str = include_str!("../policies/incident-schema.sql");
pub const DEMO_PASSWORD: &str = "blastwall-demo";

#[derive(Debug, Error)]
pub enum DemoError {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error("loading the incident schema failed: {0}")]
    Schema(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot listen on {addr}: {error}; give the demo another address, e.g. --listen 127.0.0.1:6433")]
    Listen { addr: String, error: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// The default and incident policies, as shipped.
pub fn incident_policy() -> Result<Policy, policy::PolicyError> {
    policy::file::compile(&[
        (Path::new("policies/default.toml"), DEFAULT_POLICY),
        (Path::new("policies/incident.toml"), INCIDENT_POLICY),
    ])
}

/// The demo's policy: the shipped ones, with the anomaly rule on users made quick to show
/// (more than 5 × the usual, after 3 runs, above 3 rows).
pub fn demo_policy() -> Result<Policy, policy::PolicyError> {
    let mut p = incident_policy()?;
    for t in p.tables.iter_mut().filter(|t| t.name == "users") {
        t.anomaly = policy::AnomalyKeys {
            enabled: Some(true),
            factor: Some(5),
            min_runs: Some(3),
            floor: Some(3),
            ..t.anomaly
        };
    }
    Ok(p)
}

/// Loads the incident's schema and data into `db` of a server, over its Unix socket.
pub async fn load_schema(pg: &TempPostgres, db: &str) -> Result<(), DemoError> {
    let (client, conn) = tokio_postgres::connect(&pg.admin_conninfo(db), tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client.batch_execute(INCIDENT_SCHEMA).await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Runs the demo until `shutdown` fires (Ctrl-C in the CLI).
pub async fn run(listen: &str, shutdown: ShutdownHandle) -> Result<(), DemoError> {
    // The port first: a taken port fails now, not after initdb. It is held until the proxy
    // binds it.
    let held =
        std::net::TcpListener::bind(listen).map_err(|error| DemoError::Listen { addr: listen.to_string(), error })?;
    let listen = held.local_addr().map_or(listen.to_string(), |a| a.to_string());
    eprintln!("blastwall demo: starting a throwaway PostgreSQL …");
    let opts = PgOptions { password: DEMO_PASSWORD.into(), ..Default::default() };
    let pg = tokio::task::spawn_blocking(move || TempPostgres::start(&opts))
        .await
        .map_err(|e| DemoError::Other(e.to_string()))??;
    // `kill -9` skips every destructor: a watchdog outside this process removes the server.
    pg.stop_when_process_exits(std::process::id());
    load_schema(&pg, "postgres").await?;
    let mut config = Config { listen, upstream_port: pg.port, ..Config::default() };
    config.upstream_tls.mode = UpstreamSslMode::Disable;
    drop(held);
    let server = Server::bind(config, Guard::new(demo_policy()?, None)).await?;
    let addr = server.local_addr();
    let check = check_command(pg.dir())?;
    println!(
        r#"
blastwall demo is running.

  PostgreSQL (throwaway, {dir}) on 127.0.0.1:{pg_port}, loaded with the incident's schema:
    users (40 Telegram users, 10 test users at ids -91111101…-91111110, and 10 real OAuth
    users whose ids drifted into the same window), each with a subscription, two chat
    sessions and six web messages, all ON DELETE CASCADE.
  blastwall on {addr}, mode enforce, policies/default.toml + policies/incident.toml, and
    the anomaly rule on users (more than 5 × the usual, after 3 runs).

Connect through blastwall:

  PGPASSWORD={pw} psql "host=127.0.0.1 port={port} user=postgres dbname=postgres"

and try:

  -- 1. The incident's cleanup: refused, nothing is deleted.
  DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;

  -- 2. A rehearsal: in dry-run the same DELETE runs inside a savepoint, blastwall
  --    reports exactly what it would have removed (real users included), and rolls back.
  SET blastwall.mode = 'dry-run';
  DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;
  \q

  -- 3. In a new session: the cleanup by attribute. Its rows are counted on the live
  --    server (cascades included) and are within the limits: exactly the 10 test users go.
  DELETE FROM users WHERE auth_source = 'test';

  -- 4. The contract over time: a nightly erasure job removes one user by e-mail pattern,
  --    night after night (each run is remembered in the database, schema blastwall) …
  DELETE FROM users WHERE email LIKE 'user1@%';
  DELETE FROM users WHERE email LIKE 'user2@%';
  DELETE FROM users WHERE email LIKE 'user3@%';
  --    … until the night its pattern drifted: 7 users at once, refused (rule anomaly).
  DELETE FROM users WHERE email LIKE 'user%';

  Also refused: the seeding upsert that overwrote real users, and the setval that moved
  the sequence into the test window:
  INSERT INTO users (id, auth_source) VALUES (-91111111, 'test')
    ON CONFLICT (id) DO UPDATE SET auth_source = EXCLUDED.auth_source;
  SELECT setval('web_user_id_seq', 91111101);

Or check a script offline, without running anything:

  echo "DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;" | {check} -

Press Ctrl-C to stop; the throwaway server and its files are removed.
"#,
        dir = pg.dir().display(),
        pg_port = pg.port,
        pw = DEMO_PASSWORD,
        port = addr.port(),
    );
    // Not the user's own shell: the next lines may be read by a script watching the demo.
    std::io::Write::flush(&mut std::io::stdout()).ok();
    server.run(shutdown).await;
    drop(pg);
    eprintln!("blastwall demo: stopped, throwaway server removed.");
    Ok(())
}

/// `blastwall check --policy … `, spelled so that it runs from the demo's working directory:
/// `blastwall` only when that name on PATH is this binary (after `cargo run` it is not), and
/// the shipped policies, or copies of them in the demo's folder when they are not here.
fn check_command(demo_dir: &Path) -> Result<String, DemoError> {
    let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("blastwall"))
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
    });
    let cwd = std::env::current_dir().unwrap_or_default();
    let program = match (&exe, on_path) {
        (Some(e), Some(p)) if *e == p => "blastwall".to_string(),
        (Some(e), _) => shown(e, &cwd),
        (None, _) => "blastwall".to_string(),
    };
    let policies = if Path::new("policies/incident.toml").is_file() && Path::new("policies/default.toml").is_file() {
        "policies/".to_string()
    } else {
        let dir = demo_dir.join("policies");
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text);
        std::fs::create_dir_all(&dir)
            .and_then(|_| write("default.toml", DEFAULT_POLICY))
            .and_then(|_| write("incident.toml", INCIDENT_POLICY))
            .map_err(|e| DemoError::Other(format!("writing the demo's policies: {e}")))?;
        shown(&dir, &cwd)
    };
    Ok(format!("{program} check --policy {policies}"))
}

/// A path relative to `cwd` when it is below it; quoted for a POSIX shell when it needs to be.
fn shown(p: &Path, cwd: &Path) -> String {
    let rel: PathBuf = p.strip_prefix(cwd).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf());
    let s = rel.display().to_string();
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
