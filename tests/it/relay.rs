//! Protocol fidelity: what real clients see through the proxy is what they see direct.

use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::SimpleQueryMessage;

fn rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_extended_and_pipelined_match_direct() {
    let db = fresh_db("fidelity");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let dir = direct("app", APP_PW, &db).await;
    via.batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text, data bytea, at timestamptz DEFAULT now()); INSERT INTO t (id, name, data) SELECT g, 'n' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g").await.unwrap();
    let q = "SELECT id, name, data, 1.5::numeric, NULL::text FROM t ORDER BY id; SELECT count(*) FROM t";
    assert_eq!(rows(&via.simple_query(q).await.unwrap()), rows(&dir.simple_query(q).await.unwrap()));
    // Extended protocol, binary results, parameters of several types.
    let stmt = via.prepare("SELECT id, name, data FROM t WHERE id = ANY($1) AND name <> $2 ORDER BY id").await.unwrap();
    let a: Vec<(i32, String, Vec<u8>)> = via
        .query(&stmt, &[&vec![1i32, 2, 3], &"x"])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let b: Vec<(i32, String, Vec<u8>)> = dir
        .query("SELECT id, name, data FROM t WHERE id = ANY($1) AND name <> $2 ORDER BY id", &[&vec![1i32, 2, 3], &"x"])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    // Pipelining: many queries in flight at once on one connection.
    let futs: Vec<_> = (1..=50)
        .map(|i| {
            let via = &via;
            let stmt = &stmt;
            async move { via.query(stmt, &[&vec![i], &"x"]).await.unwrap()[0].get::<_, i32>(0) }
        })
        .collect();
    let got = futures_util::future::join_all(futs).await;
    assert_eq!(got, (1..=50).collect::<Vec<i32>>());
    // Errors keep the session usable, in and out of transactions.
    let err = via.simple_query("SELECT * FROM no_such_table").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    via.batch_execute("BEGIN").await.unwrap();
    assert!(via.batch_execute("SELECT 1/0").await.is_err());
    let aborted = via.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(aborted.code().unwrap().code(), "25P02");
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rows(&via.simple_query("SELECT 2").await.unwrap()), vec![vec![Some("2".to_string())]]);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_text_and_binary() {
    let db = fresh_db("copy");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute("CREATE TABLE c (id int, v text)").await.unwrap();
    let sink = via.copy_in("COPY c FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    let mut data = String::new();
    for i in 0..20_000 {
        data.push_str(&format!("{i}\tvalue {i}\n"));
    }
    sink.send(bytes::Bytes::from(data.clone())).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 20_000);
    let out = via.copy_out("COPY c TO STDOUT").await.unwrap();
    let chunks: Vec<bytes::Bytes> = out.map(|r| r.unwrap()).collect().await;
    assert_eq!(chunks.concat(), data.as_bytes());
    let bin = via.copy_out("COPY c TO STDOUT (FORMAT binary)").await.unwrap();
    let bin: Vec<bytes::Bytes> = bin.map(|r| r.unwrap()).collect().await;
    let dir = direct("app", APP_PW, &db).await;
    let dbin = dir.copy_out("COPY c TO STDOUT (FORMAT binary)").await.unwrap();
    let dbin: Vec<bytes::Bytes> = dbin.map(|r| r.unwrap()).collect().await;
    assert_eq!(bin.concat(), dbin.concat());
    // Binary COPY back in.
    via.batch_execute("CREATE TABLE c2 (id int, v text)").await.unwrap();
    let sink = via.copy_in("COPY c2 FROM STDIN (FORMAT binary)").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(bin.concat())).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 20_000);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_notices_are_relayed() {
    let db = fresh_db("notify");
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION noisy() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'a notice'; RETURN 1; END $$",
    );
    let p = proxy().await;
    let (listener, mut conn) =
        tokio_postgres::connect(&conninfo(p.port(), "app", APP_PW, &db), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            let _ = tx.send(m);
        }
    });
    listener.batch_execute("LISTEN chan").await.unwrap();
    let other = connect(p.port(), "app", APP_PW, &db).await;
    other.batch_execute("NOTIFY chan, 'hello'").await.unwrap();
    // A notice raised by the server, through the shipped policies (enforce).
    listener.batch_execute("SELECT noisy()").await.unwrap();
    let (mut got_notify, mut got_notice) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(got_notify && got_notice) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(tokio_postgres::AsyncMessage::Notification(n))) => {
                assert_eq!((n.channel(), n.payload()), ("chan", "hello"));
                got_notify = true;
            }
            Ok(Some(tokio_postgres::AsyncMessage::Notice(n))) => {
                assert_eq!((n.severity(), n.message()), ("NOTICE", "a notice"));
                got_notice = true;
            }
            Ok(Some(_)) => {}
            _ => panic!("notification {got_notify}, notice {got_notice}"),
        }
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_server() {
    let db = fresh_db("cancel");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let token = via.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let err = via.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    canceller.await.unwrap();
    // The session goes on.
    assert_eq!(rows(&via.simple_query("SELECT 1").await.unwrap()).len(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_method_relays() {
    let db = fresh_db("auth");
    let p = proxy().await;
    for user in ["app", "md5_user", "pw_user"] {
        let c = connect(p.port(), user, APP_PW, &db).await;
        let r = c.query_one("SELECT current_user::text", &[]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), user);
        let bad = try_connect(p.port(), user, "wrong", &db).await.unwrap_err();
        assert_eq!(bad.code().map(|c| c.code()), Some("28P01"), "{user}: {bad}");
    }
    let c = connect(p.port(), "trust_user", "", &db).await;
    c.simple_query("SELECT 1").await.unwrap();
    let c = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    c.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

fn rustls_client(ca: &std::path::Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_both_sides_and_scram_without_channel_binding() {
    let db = fresh_db("tls");
    let pg = pg();
    let mut cfg = base_config();
    cfg.tls = Some(blastwall::config::ClientTlsConfig { cert: pg.cert.clone(), key: pg.key.clone(), require: true });
    cfg.upstream_tls = blastwall::config::UpstreamTlsConfig {
        mode: blastwall::config::UpstreamSslMode::VerifyFull,
        ca: Some(pg.ca_pem.clone()),
        server_name: Some("localhost".into()),
    };
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let info = format!("host=localhost port={} user=app password={APP_PW} dbname={db} sslmode=require", p.port());
    let (c, conn) = tokio_postgres::connect(&info, rustls_client(&pg.ca_pem)).await.unwrap();
    tokio::spawn(conn);
    let r = c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(r.get::<_, bool>(0), "the upstream link is TLS");
    // Plaintext is refused with a clear error when require is set.
    let err = try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("requires TLS"), "{err:?}");
    // psql over TLS, with the default channel_binding=prefer.
    let (ok, out, errs) = {
        let mut cmd = std::process::Command::new(psql_path());
        let o = cmd
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                "SELECT 40 + 2",
                &format!("host=127.0.0.1 port={} user=app dbname={db} sslmode=require", p.port()),
            ])
            .env("PGPASSWORD", APP_PW)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(ok, "{errs}");
    assert_eq!(out.trim(), "42");
    // The proxy presents the server's own certificate, so channel binding works end to end.
    let cb = |port: u16, mode: &str| {
        std::process::Command::new(psql_path())
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                "SELECT 1",
                &format!("host=127.0.0.1 port={port} user=app dbname={db} sslmode=require channel_binding={mode}"),
            ])
            .env("PGPASSWORD", APP_PW)
            .output()
            .unwrap()
    };
    let o = cb(p.port(), "require");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p.stop().await;
    // With a certificate of its own, binding cannot pass: a clear error, and disable works.
    let key = rcgen::KeyPair::generate().unwrap();
    let own = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), own.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
    let mut cfg = base_config();
    cfg.tls = Some(blastwall::config::ClientTlsConfig {
        cert: dir.path().join("c.pem"),
        key: dir.path().join("k.pem"),
        require: false,
    });
    cfg.upstream_tls = blastwall::config::UpstreamTlsConfig {
        mode: blastwall::config::UpstreamSslMode::Require,
        ca: None,
        server_name: None,
    };
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let o = cb(p.port(), "prefer");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("channel binding cannot pass through"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cb(p.port(), "disable");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A plaintext client over a TLS upstream needs nothing special.
    let c = connect(p.port(), "app", APP_PW, &db).await;
    c.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_08p01_and_nothing_reaches_the_server() {
    let db = fresh_db("malformed");
    let p = proxy().await;
    // trust_user needs no password: the raw client reaches ReadyForQuery directly.
    let mut s = startup(p.port(), "trust_user", &db).await;
    // A Query whose length field is 2 (below the minimum of 4).
    s.write_all(&[b'Q', 0, 0, 0, 2]).await.unwrap();
    let r = replies(&mut s).await;
    assert_eq!(r.codes, vec!["08P01".to_string()], "{r:?}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    // A frame longer than the limit, refused before any allocation of that size.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&[b'Q', 0x7f, 0xff, 0xff, 0xff]).await.unwrap();
    let r = replies(&mut s).await;
    assert!(r.codes == ["08P01"] && r.errors.contains("exceeds"), "{r:?}");
    // A Query whose length ends before its NUL, followed by a DELETE that the shipped
    // policies refuse. PostgreSQL answers such a frame with an ERROR and goes on reading, so
    // a relay that forwarded it would let the server run the next message as it framed it:
    // blastwall must end the session (its own 08P01, FATAL) and the rows must all be there.
    let db_users = incident_db();
    let users = |db: &str| admin_sql(pg(), db, "SELECT count(*) FROM users").trim().to_string();
    let before = users(&db_users);
    assert_ne!(before, "0");
    let smuggle = |second: &str| {
        let mut m = vec![b'Q', 0, 0, 0, 12];
        m.extend_from_slice(b"SELECT 1");
        m.extend_from_slice(&msg(b'Q', format!("{second}\0").as_bytes()));
        m
    };
    // Directly, PostgreSQL 15 errs and then runs the next message (a harmless one here).
    let mut s = startup(pg().server.port, "trust_user", &db_users).await;
    s.write_all(&smuggle("SELECT 2")).await.unwrap();
    let r = replies(&mut s).await;
    assert!(r.codes == ["08P01"] && r.errors.contains("SERROR") && r.status == Some('I'), "{r:?}");
    let r = replies(&mut s).await;
    assert!(r.codes.is_empty() && r.tags.contains('D'), "the server ran the next message: {r:?}");
    // Through blastwall: its own FATAL, then the end; the DELETE never ran.
    let mut s = startup(p.port(), "trust_user", &db_users).await;
    s.write_all(&smuggle("DELETE FROM users")).await.unwrap();
    let r = replies(&mut s).await;
    assert!(r.codes == ["08P01"] && r.errors.contains("SFATAL") && r.errors.contains("blastwall"), "{r:?}");
    assert_eq!(r.status, None, "the session is closed: {r:?}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0))), "nothing follows the end: {n:?} {rest:?}");
    assert_eq!(users(&db_users), before);
    // The proxy still serves others.
    let c = connect(p.port(), "app", APP_PW, &db).await;
    c.simple_query("SELECT 1").await.unwrap();
    // A garbage startup packet.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&[0, 0, 0, 9, 0, 2, 0, 0, 1]).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    c.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_faults_have_clear_errors() {
    let db = fresh_db("limits");
    let mut cfg = base_config();
    cfg.max_connections = 2;
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let a = connect(p.port(), "app", APP_PW, &db).await;
    let b = connect(p.port(), "app", APP_PW, &db).await;
    let err = try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err:?}");
    drop((a, b));
    p.stop().await;
    // Upstream unreachable: 08001 naming the upstream.
    let mut cfg = base_config();
    cfg.upstream_port = blastwall::pgtemp::free_port();
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let err = try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("08001"), "{err}");
    assert!(err.as_db_error().unwrap().message().contains("127.0.0.1"), "{err:?}");
    p.stop().await;
    // Replication connections are refused unless configured.
    let p = proxy().await;
    let (ok, _, errs) =
        psql(p.port(), "app", APP_PW, &format!("dbname={db} replication=database"), &["-c", "IDENTIFY_SYSTEM"], None);
    assert!(!ok);
    // blastwall's own refusal (the server's, when it refuses, also says "replication").
    assert!(errs.contains("blastwall: replication connections are not relayed"), "{errs}");
    let refused = crate::differential::record(
        p.port(),
        &crate::differential::Client::new("app", APP_PW, &db).param("replication", "database").record_startup(),
        &[],
    )
    .await;
    assert_eq!(crate::differential::error_codes(&refused), ["0A000"]);
    // The backend of a session is terminated: the client gets an error, the proxy serves on.
    let victim = connect(p.port(), "app", APP_PW, &db).await;
    let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    admin_sql(pg(), "postgres", &format!("SELECT pg_terminate_backend({pid})"));
    assert!(victim.simple_query("SELECT 1").await.is_err());
    let c = connect(p.port(), "app", APP_PW, &db).await;
    c.simple_query("SELECT 1").await.unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_its_query() {
    let db = fresh_db("disconnect");
    let p = proxy().await;
    // A raw client that sends a long query and closes its socket without a word.
    let mut s = startup(p.port(), "trust_user", &db).await;
    s.write_all(&msg(b'Q', b"SELECT pg_sleep(60)\0")).await.unwrap();
    let admin = direct("postgres", SUPERUSER_PW, "postgres").await;
    let active = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'raw-{db}' AND query LIKE 'SELECT pg_sleep%'"
    );
    let wait_for = |want: i64| {
        let admin = &admin;
        let active = &active;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let n: i64 = admin.query_one(active.as_str(), &[]).await.unwrap().get(0);
                if n == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "pg_sleep count is {n}, want {want}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(1).await;
    drop(s);
    // The proxy cancels the query and ends the backend well before the 60 s are up.
    wait_for(0).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_transaction_then_closes_with_57p01() {
    use crate::differential::{error_codes, query, render, Client, Conn, Event};
    let db = fresh_db("shutdown");
    admin_sql(pg(), &db, "CREATE TABLE s (x int); GRANT ALL ON s TO app");
    let mut cfg = base_config();
    cfg.shutdown_grace = Duration::from_secs(20);
    cfg.tls =
        Some(blastwall::config::ClientTlsConfig { cert: pg().cert.clone(), key: pg().key.clone(), require: false });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let client = Client::new("app", APP_PW, &db);
    // Over TLS: the end must be a clean one (close_notify), as from the server.
    let mut idle = Conn::open(p.port(), &client.clone().tls(crate::differential::Tls::Request)).await;
    let busy = connect(p.port(), "app", APP_PW, &db).await;
    busy.batch_execute("BEGIN; INSERT INTO s VALUES (1)").await.unwrap();
    p.shutdown.shutdown();
    // The idle session is closed at once, at its boundary: 57P01, then the end.
    tokio::time::timeout(Duration::from_secs(5), idle.end()).await.expect("the idle session was closed");
    let r = idle.finish();
    assert_eq!(error_codes(&r), ["57P01"], "{}", render(&r, usize::MAX));
    assert_eq!(r.last(), Some(&Event::End), "{}", render(&r, usize::MAX));
    // The session in a transaction may still finish it, then it is closed too.
    busy.batch_execute("INSERT INTO s VALUES (2); COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), p.task).await.expect("proxy stopped").unwrap();
    assert_eq!(admin_sql(pg(), &db, "SELECT count(*) FROM s").trim(), "2");
    // When the grace period runs out, a session still in its transaction gets 57P01 and the
    // server rolls the transaction back.
    let mut cfg = base_config();
    cfg.shutdown_grace = Duration::from_millis(700);
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let mut late = Conn::open(p.port(), &client).await;
    late.send(&query("BEGIN; INSERT INTO s VALUES (3)")).await;
    late.ready(1).await;
    let started = std::time::Instant::now();
    p.shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), late.end()).await.expect("closed after the grace period");
    let waited = started.elapsed();
    let r = late.finish();
    assert_eq!(error_codes(&r), ["57P01"], "{}", render(&r, usize::MAX));
    assert_eq!(r.last(), Some(&Event::End), "{}", render(&r, usize::MAX));
    assert!(waited >= Duration::from_millis(600), "closed before the grace period ran out: {waited:?}");
    tokio::time::timeout(Duration::from_secs(10), p.task).await.expect("proxy stopped").unwrap();
    assert_eq!(admin_sql(pg(), &db, "SELECT count(*) FROM s").trim(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_time_failures_are_logged_with_their_reason() {
    captured_logs();
    let db = fresh_db("logged");
    // The lines about this test's database that say `what`, once there is one (a session may
    // log after its client has seen the error).
    let lines = |what: &str| {
        let db = db.clone();
        let what = what.to_string();
        async move {
            let find = || {
                let logs = captured_logs();
                logs.lines().filter(|l| l.contains(&db) && l.contains(&what)).map(str::to_string).collect::<Vec<_>>()
            };
            for _ in 0..100 {
                if !find().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            find()
        }
    };
    // A failed login: the server's reason.
    let p = proxy().await;
    try_connect(p.port(), "app", "wrong", &db).await.unwrap_err();
    let l = lines("login failed").await;
    p.stop().await;
    assert!(l.len() == 1 && l[0].contains("28P01") && l[0].contains("password authentication failed"), "{l:?}");
    // 53300.
    let mut cfg = base_config();
    cfg.max_connections = 0;
    cfg.tls =
        Some(blastwall::config::ClientTlsConfig { cert: pg().cert.clone(), key: pg().key.clone(), require: false });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    // Over TLS too, ending with close_notify as the server's own refusals do.
    use crate::differential::{error_codes, record, Client, Event, Tls};
    let r = record(p.port(), &Client::new("app", APP_PW, "postgres").tls(Tls::Request).record_startup(), &[]).await;
    assert!(error_codes(&r) == ["53300"] && r.last() == Some(&Event::End), "{r:?}");
    p.stop().await;
    let l = lines("connection refused").await;
    assert!(l.len() == 1 && l[0].contains("53300") && l[0].contains("too many clients"), "{l:?}");
    // Plaintext where TLS is required.
    let mut cfg = base_config();
    cfg.tls =
        Some(blastwall::config::ClientTlsConfig { cert: pg().cert.clone(), key: pg().key.clone(), require: true });
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    p.stop().await;
    let l = lines("requires TLS").await;
    assert!(l.len() == 1 && l[0].contains("connection refused"), "{l:?}");
    // The upstream server down.
    let mut cfg = base_config();
    cfg.upstream_port = blastwall::pgtemp::free_port();
    let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    try_connect(p.port(), "app", APP_PW, &db).await.unwrap_err();
    p.stop().await;
    let l = lines("cannot reach the upstream server").await;
    assert!(l.len() == 1 && l[0].contains("could not connect") && l[0].contains("refused"), "{l:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_scripts_and_copy() {
    let db = fresh_db("psql");
    let p = proxy().await;
    let script = "CREATE TABLE ps (id int, v text);\nINSERT INTO ps VALUES (1, 'a'), (2, 'b');\nCOPY ps FROM STDIN;\n3\tc\n4\td\n\\.\nSELECT count(*) FROM ps; SELECT max(id) FROM ps;\n\\copy ps to stdout\n";
    let (ok, out, err) =
        psql(p.port(), "app", APP_PW, &db, &["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"], Some(script));
    assert!(ok, "{err}");
    assert_eq!(out, "4\n4\n1\ta\n2\tb\n3\tc\n4\td\n");
    let (ok, out, _) = psql(p.port(), "app", APP_PW, &db, &["-A", "-t", "-c", "SELECT 1; SELECT 2"], None);
    assert!(ok);
    assert_eq!(out, "1\n2\n");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_protocol_version_is_negotiated_by_the_server() {
    let db = fresh_db("protocol");
    let p = proxy().await;
    // Protocol 3.2 with an unknown protocol option: the server answers NegotiateProtocolVersion
    // ('v'), relayed as it is, and the session goes on in 3.0.
    let mut s =
        send_startup(p.port(), 196610, &[("user", "trust_user"), ("database", &db), ("_pq_.future_feature", "on")])
            .await;
    let r = replies(&mut s).await;
    assert!(r.tags.starts_with('v'), "{r:?}");
    assert_eq!(r.status, Some('I'), "{r:?}");
    s.write_all(&msg(b'Q', b"SELECT 1\0")).await.unwrap();
    assert!(replies(&mut s).await.codes.is_empty());
    // Startup options reach the server byte for byte, and blastwall reads the text the way
    // they make the server read it.
    let (ok, _, err) = psql(
        p.port(),
        "app",
        APP_PW,
        &format!("dbname={db} options='-c standard_conforming_strings=off'"),
        &["-c", "SELECT 'a\\', '; DELETE FROM t; --'"],
        None,
    );
    assert!(!ok && err.contains("blastwall: refused"), "{err}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_without_a_word_gets_blastwalls_own_error() {
    use crate::differential::{error_codes, query, render, Client, Conn, Event};
    // A stand-in server: accepts any login, then at the first query closes the connection
    // (`reset`: with a reset, as a crashed process's socket does).
    for reset in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let len = s.read_u32().await.unwrap() as usize;
            let mut startup = vec![0u8; len - 4];
            s.read_exact(&mut startup).await.unwrap();
            let mut hello = msg(b'R', &0i32.to_be_bytes());
            hello.extend(msg(b'Z', b"I"));
            s.write_all(&hello).await.unwrap();
            let mut first = [0u8; 5];
            let _ = s.read_exact(&mut first).await;
            if reset {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            } else {
                let mut body = vec![0u8; u32::from_be_bytes(first[1..].try_into().unwrap()) as usize - 4];
                let _ = s.read_exact(&mut body).await;
            }
        });
        let mut cfg = base_config();
        cfg.upstream_port = port;
        let p = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
        let mut c = Conn::open(p.port(), &Client::new("app", APP_PW, "anything")).await;
        c.send(&query("SELECT 1")).await;
        c.end().await;
        let r = c.finish();
        p.stop().await;
        let shown = render(&r, usize::MAX);
        assert_eq!(error_codes(&r), ["08006"], "reset {reset}: {shown}");
        assert!(shown.contains("blastwall: the upstream server"), "{shown}");
        assert_eq!(r.last(), Some(&Event::End), "{shown}");
    }
}
