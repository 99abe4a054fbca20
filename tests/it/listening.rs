//! Listening and connecting as PostgreSQL tools do: psql over blastwall's Unix socket (a socket
//! folder or file, next to a TCP address), and blastwall reaching the server over its Unix
//! socket.

use crate::harness::*;

/// psql over a Unix socket: `-h FOLDER -p PORT`.
fn psql_unix(folder: &std::path::Path, port: u16, user: &str, db: &str, sql: &str) -> (bool, String, String) {
    let out = std::process::Command::new(psql_path())
        .args(["-X", "-A", "-t", "-h", &folder.display().to_string(), "-p", &port.to_string(), "-U", user, "-d", db])
        .args(["-c", sql])
        .env("PGPASSWORD", APP_PW)
        .output()
        .expect("psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_connects_over_a_unix_socket_folder_next_to_tcp() {
    let db = incident_db();
    let dir = tempfile::tempdir().unwrap();
    let port = blastwall::pgtemp::free_port();
    let mut c = base_config();
    c.listen = format!("127.0.0.1:{port}, {}", dir.path().display());
    let p = proxy_with(c, blastwall::demo::incident_policy().unwrap()).await;
    let socket = dir.path().join(format!(".s.PGSQL.{port}"));
    assert!(socket.exists(), "the socket folder holds .s.PGSQL.<port>");
    let folder = dir.path().to_path_buf();
    let d = db.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || psql_unix(&folder, port, "app", &d, "SELECT count(*) FROM users"))
            .await
            .unwrap();
    assert!(ok, "{err}");
    assert!(out.trim().parse::<u64>().is_ok(), "{out}");
    // The guard is the same on every listener.
    let folder = dir.path().to_path_buf();
    let d = db.clone();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || psql_unix(&folder, port, "app", &d, "DELETE FROM users")).await.unwrap();
    assert!(!ok && err.contains("blastwall"), "{err}");
    // And TCP still answers.
    let tcp = connect(port, "app", APP_PW, &db).await;
    tcp.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_file_path_and_the_session_list_name_the_unix_client() {
    let db = fresh_db("unixfile");
    let dir = tempfile::tempdir().unwrap();
    let port = blastwall::pgtemp::free_port();
    let socket = dir.path().join(format!(".s.PGSQL.{port}"));
    // A stale socket file from a crashed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut c = base_config();
    c.listen = socket.display().to_string();
    let p = proxy_with(c, blastwall::demo::incident_policy().unwrap()).await;
    let conninfo = format!("host={} port={port} user=trust_user dbname={db}", dir.path().display());
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    let clients: Vec<String> = p.shared.console.sessions.iter().map(|s| s.client.clone()).collect();
    assert_eq!(clients, vec![format!("unix:{}", socket.display())]);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blastwall_reaches_the_server_over_its_unix_socket() {
    let db = incident_db();
    let pg = &pg().server;
    for upstream in
        [pg.socket_dir.display().to_string(), pg.socket_dir.join(format!(".s.PGSQL.{}", pg.port)).display().to_string()]
    {
        let mut c = base_config();
        c.upstream_host = "unused".into();
        c.apply(blastwall::config::Overrides { upstream: Some(upstream.clone()), ..Default::default() }).unwrap();
        // The server's port is in the socket's name; a folder alone means 5432, and the port
        // setting picks the socket in it.
        if !upstream.contains(".s.PGSQL") {
            assert_eq!(c.upstream_port, 5432);
            c.upstream_port = pg.port;
        }
        assert_eq!(
            c.upstream_address(),
            blastwall::listen::Address::Unix(pg.socket_dir.join(format!(".s.PGSQL.{}", pg.port)))
        );
        let p = proxy_with(c, blastwall::demo::incident_policy().unwrap()).await;
        // pg_hba.conf trusts local (Unix socket) connections only: this login proves the path.
        let client = connect(p.port(), "postgres", "", &db).await;
        let rows = client.simple_query("SELECT coalesce(inet_server_addr()::text, 'unix')").await.unwrap();
        assert!(format!("{rows:?}").contains("unix"), "{upstream}: {rows:?}");
        // The guard still stands in the way.
        let e = client.simple_query("DELETE FROM users").await.unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e:?}");
        drop(client);
        p.stop().await;
    }
}
