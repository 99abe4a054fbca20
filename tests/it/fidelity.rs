//! Relay fidelity, differentially: each script runs directly and through blastwall and the
//! client must not be able to tell the difference (see `differential`). Mode `off` for
//! everything; scripts that write nothing also through the shipped policies in enforce mode.

use crate::differential::*;
use crate::harness::*;
use blastwall::config::{ClientTlsConfig, UpstreamSslMode, UpstreamTlsConfig};
use blastwall::policy::Mode;

fn shipped() -> blastwall::policy::Policy {
    blastwall::demo::incident_policy().unwrap()
}

async fn proxy_off() -> Proxy {
    proxy_with_mode(base_config(), shipped(), Some(Mode::Off)).await
}

/// A script that writes nothing: the same through blastwall in mode off and in enforce mode.
async fn compare_off_and_enforced(client: &Client, steps: &[Step]) -> Recording {
    let off = proxy_off().await;
    let direct = compare(&off, client, steps).await;
    off.stop().await;
    let enforced = proxy().await;
    compare(&enforced, client, steps).await;
    enforced.stop().await;
    direct
}

fn has(r: &Recording, tag: u8) -> bool {
    r.iter().any(|e| matches!(e, Event::Msg { tag: t, .. } if *t == tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_and_their_errors() {
    let db = fresh_db("diff_basic");
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); GRANT SELECT ON t TO app",
    );
    let steps = [
        // Simple query: rows, then an error that ends the rest of the string.
        Step::Send(query("SELECT * FROM t ORDER BY id; SELECT 1/0; SELECT 2")),
        Step::Ready(1),
        Step::Send(query("SELECT nosuchcolumn FROM t")),
        Step::Ready(1),
        Step::Send(query("")),
        Step::Ready(1),
        // Extended: a good batch, text and binary results.
        Step::Send(batch(&[
            parse("", "SELECT v, id FROM t WHERE id = $1"),
            bind("", &[Some(b"1")], 0),
            describe_portal(),
            execute(),
            bind("", &[Some(b"2")], 1),
            describe_portal(),
            execute(),
            sync(),
        ])),
        Step::Ready(1),
        // A Parse error: the rest is skipped up to Sync.
        Step::Send(batch(&[parse("", "SELEC 1"), bind("", &[], 0), execute(), sync()])),
        Step::Ready(1),
        // A Bind error (wrong parameter count), skipped to Sync.
        Step::Send(batch(&[parse("s1", "SELECT $1::int"), bind("s1", &[], 0), execute(), sync()])),
        Step::Ready(1),
        // An Execute error in the middle of a batch: later messages skipped to Sync.
        Step::Send(batch(&[
            parse("", "SELECT 1/0"),
            bind("", &[], 0),
            execute(),
            parse("", "SELECT 42"),
            bind("", &[], 0),
            execute(),
            sync(),
            parse("", "SELECT 43"),
            bind("", &[], 0),
            execute(),
            sync(),
        ])),
        Step::Ready(2),
        // Binary parameters and results: int4 42 in, int4 and text out in binary.
        Step::Send(batch(&[
            parse("s2", "SELECT $1::int + 1, 'x'::text"),
            crate::harness::msg(b'B', b"\0s2\0\0\x01\0\x01\0\x01\0\0\0\x04\0\0\0\x2a\0\x01\0\x01"),
            execute(),
            sync(),
        ])),
        Step::Ready(1),
        // Describe of a statement that does not exist; Close of one is no error.
        Step::Send(batch(&[
            crate::harness::msg(b'D', b"Snosuch\0"),
            sync(),
            crate::harness::msg(b'C', b"Snosuch\0"),
            sync(),
        ])),
        Step::Ready(2),
        // An error inside a transaction block: later statements refused (25P02) until ROLLBACK.
        Step::Send(query("BEGIN; SELECT 1/0")),
        Step::Ready(1),
        Step::Send(query("SELECT 1")),
        Step::Ready(1),
        Step::Send(batch(&[parse("", "SELECT 1"), bind("", &[], 0), execute(), sync()])),
        Step::Ready(1),
        Step::Send(query("ROLLBACK")),
        Step::Ready(1),
        // A Bind of a statement that does not exist; a bad parameter value.
        Step::Send(batch(&[bind("nosuch", &[], 0), execute(), sync()])),
        Step::Ready(1),
        Step::Send(batch(&[bind("s1", &[Some(b"x")], 0), execute(), sync()])),
        Step::Ready(1),
        Step::Send(terminate()),
        Step::End,
    ];
    let direct = compare_off_and_enforced(&Client::new("app", APP_PW, &db), &steps).await;
    assert_eq!(
        error_codes(&direct),
        ["22012", "42703", "42601", "08P01", "22012", "26000", "22012", "25P02", "25P02", "26000", "22P02"],
        "{}",
        render(&direct, usize::MAX)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_at_startup_bad_password_and_unknown_database() {
    let db = fresh_db("diff_startup");
    let p = proxy_off().await;
    for user in ["app", "md5_user", "pw_user"] {
        let bad = Client::new(user, "wrong", &db).record_startup();
        let r = compare(&p, &bad, &[]).await;
        assert_eq!(error_codes(&r), ["28P01"], "{user}: {}", render(&r, usize::MAX));
        let good = Client::new(user, APP_PW, &db).record_startup();
        let r = compare(&p, &good, &[Step::Send(query("SELECT current_user")), Step::Ready(1)]).await;
        assert!(error_codes(&r).is_empty() && has(&r, b'D'), "{user}: {}", render(&r, usize::MAX));
    }
    let r = compare(&p, &Client::new("trust_user", "", &db).record_startup(), &[]).await;
    assert!(has(&r, b'Z'), "{}", render(&r, usize::MAX));
    let r = compare(&p, &Client::new("app", APP_PW, "no_such_database").record_startup(), &[]).await;
    assert_eq!(error_codes(&r), ["3D000"], "{}", render(&r, usize::MAX));
    let r = compare(&p, &Client::new("no_such_role", "x", &db).record_startup(), &[]).await;
    assert_eq!(error_codes(&r), ["28P01"], "{}", render(&r, usize::MAX));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_and_unknown_options_are_negotiated_by_the_server() {
    let db = fresh_db("diff_proto");
    let client = Client::new("app", APP_PW, &db).version(196610).param("_pq_.no_such_option", "1").record_startup();
    let r = compare_off_and_enforced(&client, &[Step::Send(query("SELECT 1")), Step::Ready(1)]).await;
    assert!(has(&r, b'v'), "PostgreSQL 15 answers 3.2 with NegotiateProtocolVersion: {}", render(&r, usize::MAX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_notices() {
    let db = fresh_db("diff_notify");
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION noisy() RETURNS int LANGUAGE plpgsql AS \
         $$ BEGIN RAISE NOTICE 'a notice %', 42; RAISE WARNING 'a warning'; RETURN 1; END $$",
    );
    let steps = [
        Step::Send(query("LISTEN chan")),
        Step::Ready(1),
        // Our own notification arrives after the commit, with our PID (masked).
        Step::Send(query("NOTIFY chan, 'self'")),
        Step::Ready(1),
        // Another session's, while idle.
        Step::Admin("NOTIFY chan, 'other'".into()),
        Step::Until(b'A'),
        Step::Send(query("SELECT noisy()")),
        Step::Ready(1),
        Step::Send(query("ROLLBACK")),
        Step::Ready(1),
    ];
    let r = compare_off_and_enforced(&Client::new("app", APP_PW, &db), &steps).await;
    let a = r.iter().filter(|e| matches!(e, Event::Msg { tag: b'A', .. })).count();
    let n = r.iter().filter(|e| matches!(e, Event::Msg { tag: b'N', .. })).count();
    assert!(a == 2 && n >= 3, "{}", render(&r, usize::MAX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_both_ways_text_and_binary_with_errors() {
    let db = fresh_db("diff_copy");
    let steps = [
        // Both runs start from the same table.
        Step::Admin("DROP TABLE IF EXISTS c; CREATE TABLE c (id int, v text, b bytea); GRANT ALL ON c TO app".into()),
        Step::Send(query("COPY c FROM STDIN")),
        Step::Until(b'G'),
        Step::Send(batch(&[copy_data(b"1\tone\t\\\\x00ff\n2\t"), copy_data(b"two\t\\N\n"), copy_done()])),
        Step::Ready(1),
        Step::Send(query("COPY c TO STDOUT")),
        Step::Ready(1),
        Step::Send(query("COPY c TO STDOUT (FORMAT binary)")),
        Step::Ready(1),
        Step::Send(query("COPY (SELECT id, v FROM c ORDER BY id) TO STDOUT (FORMAT csv, HEADER)")),
        Step::Ready(1),
        // Bad data: the server's error, then ReadyForQuery.
        Step::Send(query("COPY c FROM STDIN")),
        Step::Until(b'G'),
        Step::Send(batch(&[copy_data(b"not a number\tx\t\\N\n"), copy_done()])),
        Step::Ready(1),
        // The client gives up.
        Step::Send(query("COPY c FROM STDIN")),
        Step::Until(b'G'),
        Step::Send(crate::harness::msg(b'f', b"client changed its mind\0")),
        Step::Ready(1),
        // Binary COPY in, via the extended protocol.
        Step::Send(batch(&[parse("", "COPY c (id) FROM STDIN (FORMAT binary)"), bind("", &[], 0), execute(), sync()])),
        Step::Until(b'G'),
        Step::Send(batch(&[
            copy_data(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x04\0\0\0\x07\xff\xff"),
            copy_done(),
            // The Sync sent during copy-in mode was ignored, as the protocol says.
            sync(),
        ])),
        Step::Ready(1),
        Step::Send(query("SELECT count(*) FROM c")),
        Step::Ready(1),
    ];
    let p = proxy_off().await;
    let r = compare(&p, &Client::new("app", APP_PW, &db), &steps).await;
    p.stop().await;
    assert_eq!(error_codes(&r), ["22P02", "57014"], "{}", render(&r, usize::MAX));
    assert!(has(&r, b'H') && has(&r, b'd'), "{}", render(&r, usize::MAX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rows_and_parameters_of_several_megabytes() {
    let db = fresh_db("diff_large");
    admin_sql(pg(), &db, "CREATE TABLE big (id int, v text); GRANT ALL ON big TO app");
    let value = "x".repeat(6 * 1024 * 1024);
    let steps = [
        Step::Send(query("SELECT repeat('ab', 3 * 1024 * 1024), 1")),
        Step::Ready(1),
        Step::Send(batch(&[
            parse("", "SELECT length($1::text), md5($1::text)"),
            bind("", &[Some(value.as_bytes())], 0),
            execute(),
            sync(),
        ])),
        Step::Ready(1),
        Step::Send(query("COPY (SELECT repeat('c', 4 * 1024 * 1024) FROM generate_series(1, 2)) TO STDOUT")),
        Step::Ready(1),
        Step::Send(batch(&[
            parse("", "SELECT convert_to(repeat('z', 5 * 1024 * 1024), 'UTF8')"),
            bind("", &[], 1),
            execute(),
            sync(),
        ])),
        Step::Ready(1),
    ];
    let r = compare_off_and_enforced(&Client::new("app", APP_PW, &db), &steps).await;
    let largest = r.iter().filter_map(|e| if let Event::Msg { body, .. } = e { Some(body.len()) } else { None }).max();
    assert!(largest > Some(5 * 1024 * 1024), "{largest:?}");
}

// Terminations: the server's FATAL, then the end; nothing added.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_idle_in_a_query_and_in_copy() {
    let db = fresh_db("diff_term");
    admin_sql(pg(), &db, "CREATE TABLE c (id int); GRANT ALL ON c TO app");
    let client = Client::new("app", APP_PW, &db);
    let scripts: [&[Step]; 3] = [
        &[Step::Terminate, Step::End],
        &[Step::Send(query("SELECT pg_sleep(30)")), Step::Waiting("PgSleep"), Step::Terminate, Step::End],
        &[
            Step::Send(query("COPY c FROM STDIN")),
            Step::Until(b'G'),
            Step::Send(copy_data(b"1\n")),
            Step::Terminate,
            Step::End,
        ],
    ];
    let off = proxy_off().await;
    let enforced = proxy().await;
    for (i, steps) in scripts.iter().enumerate() {
        // The COPY writes: mode off only.
        let proxies: &[&Proxy] = if i < 2 { &[&off, &enforced] } else { &[&off] };
        for p in proxies {
            let r = compare(p, &client, steps).await;
            assert_eq!(error_codes(&r), ["57P01"], "{}", render(&r, usize::MAX));
            assert_eq!(r.last(), Some(&Event::End), "{}", render(&r, usize::MAX));
        }
    }
    off.stop().await;
    enforced.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_of_a_running_prepared_statement() {
    let db = incident_db();
    let client = Client::new("app", APP_PW, &db);
    let stmt = "UPDATE users SET email = email WHERE id = $1 AND pg_sleep(30) IS NOT NULL";
    let steps = [
        Step::Send(batch(&[parse("upd", stmt), sync()])),
        Step::Ready(1),
        Step::Send(batch(&[bind("upd", &[Some(b"1")], 0), execute(), sync()])),
        Step::Waiting("PgSleep"),
        Step::Terminate,
        Step::End,
    ];
    for mode in [Mode::Off, Mode::Enforce] {
        let p = proxy_with_mode(base_config(), shipped(), Some(mode)).await;
        let r = compare(&p, &client, &steps).await;
        assert_eq!(error_codes(&r), ["57P01"], "{mode:?}: {}", render(&r, usize::MAX));
        p.stop().await;
    }
}

// SASL offers: what a server would offer on the client's own link.

fn tls_config(
    p: &Pg,
    require_verify: bool,
    own_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> blastwall::config::Config {
    let mut cfg = base_config();
    let (cert, key) = own_cert.unwrap_or((p.cert.clone(), p.key.clone()));
    cfg.tls = Some(ClientTlsConfig { cert, key, require: false });
    cfg.upstream_tls = if require_verify {
        UpstreamTlsConfig {
            mode: UpstreamSslMode::VerifyFull,
            ca: Some(p.ca_pem.clone()),
            server_name: Some("localhost".into()),
        }
    } else {
        UpstreamTlsConfig { mode: UpstreamSslMode::Disable, ca: None, server_name: None }
    };
    cfg
}

fn offer(r: &Recording) -> String {
    r.iter()
        .find_map(|e| match e {
            Event::Msg { tag: b'R', body } if body.len() > 4 && body[3] == 10 => {
                Some(String::from_utf8_lossy(&body[4..]).replace('\0', " ").trim().to_string())
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_offers_on_every_combination_of_client_and_upstream_tls() {
    let db = fresh_db("diff_sasl");
    let pg = pg();
    let steps = [Step::Send(query("SELECT current_user")), Step::Ready(1)];
    let plain = Client::new("app", APP_PW, &db).record_startup();
    let tls = plain.clone().tls(Tls::Request);
    // Upstream TLS, blastwall holding the server's own certificate.
    let p = proxy_with_mode(tls_config(pg, true, None), shipped(), Some(Mode::Off)).await;
    let r = compare(&p, &plain, &steps).await;
    assert_eq!(offer(&r), "SCRAM-SHA-256", "a plaintext client is never offered channel binding");
    let r = compare(&p, &tls, &steps).await;
    assert_eq!(offer(&r), "SCRAM-SHA-256-PLUS SCRAM-SHA-256", "TLS end to end with the server's certificate");
    p.stop().await;
    // Upstream plaintext: the same offer as a plaintext server to a plaintext client; a TLS
    // client cannot be offered binding to a certificate the server never presented.
    let p = proxy_with_mode(tls_config(pg, false, None), shipped(), Some(Mode::Off)).await;
    let r = compare(&p, &plain, &steps).await;
    assert_eq!(offer(&r), "SCRAM-SHA-256");
    let r = record(p.port(), &tls, &steps).await;
    assert_eq!(offer(&r), "SCRAM-SHA-256", "{}", render(&r, usize::MAX));
    assert!(error_codes(&r).is_empty() && has(&r, b'D'), "{}", render(&r, usize::MAX));
    p.stop().await;
    // Upstream TLS, blastwall with a certificate of its own: no binding for anyone.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let own = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(dir.path().join("c.pem"), own.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
    let own = Some((dir.path().join("c.pem"), dir.path().join("k.pem")));
    let p = proxy_with_mode(tls_config(pg, true, own), shipped(), Some(Mode::Off)).await;
    let r = compare(&p, &plain, &steps).await;
    assert_eq!(offer(&r), "SCRAM-SHA-256");
    p.stop().await;
}

// Cancel: plaintext, after an SSLRequest, over direct TLS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_plaintext_after_sslrequest_and_over_direct_tls() {
    let db = fresh_db("diff_cancel");
    let pg = pg();
    let p = proxy_with_mode(tls_config(pg, true, None), shipped(), Some(Mode::Off)).await;
    let script = |how: Tls| {
        vec![
            Step::Send(query("SELECT pg_sleep(30)")),
            Step::Waiting("PgSleep"),
            Step::Cancel(how),
            Step::Ready(1),
            Step::Send(query("SELECT 1")),
            Step::Ready(1),
        ]
    };
    for (conn_tls, cancel_tls) in [(Tls::Off, Tls::Off), (Tls::Request, Tls::Request), (Tls::Off, Tls::Request)] {
        let client = Client::new("app", APP_PW, &db).tls(conn_tls);
        let r = compare(&p, &client, &script(cancel_tls)).await;
        assert_eq!(error_codes(&r), ["57014"], "{conn_tls:?}/{cancel_tls:?}: {}", render(&r, usize::MAX));
    }
    // Terminated over TLS: the FATAL, then a clean end (close_notify), as from the server.
    let r = compare(&p, &Client::new("app", APP_PW, &db).tls(Tls::Request), &[Step::Terminate, Step::End]).await;
    assert_eq!(error_codes(&r), ["57P01"], "{}", render(&r, usize::MAX));
    // Direct TLS (PostgreSQL 17+): the server here (15) does not speak it, so blastwall's
    // answer is compared with the server's over an SSLRequest.
    let direct =
        record(pg.server.port, &Client::new("app", APP_PW, &db).tls(Tls::Request), &script(Tls::Request)).await;
    let proxied = record(p.port(), &Client::new("app", APP_PW, &db).tls(Tls::Direct), &script(Tls::Direct)).await;
    assert_same(&Client::new("app", APP_PW, &db), &direct, &proxied);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_answers_part_of_a_batch_before_its_sync() {
    let db = fresh_db("diff_flush");
    let p = proxy().await;
    let r = compare_with(&p, &Client::new("app", APP_PW, &db), |c| {
        Box::pin(async move {
            // Parse and Flush: the ParseComplete comes before any Sync.
            c.send(&batch(&[parse("f", "SELECT $1::text || '!'"), crate::harness::msg(b'H', &[])])).await;
            c.until(b'1').await;
            c.send(&batch(&[bind("f", &[Some(b"hi")], 0), execute(), crate::harness::msg(b'H', &[])])).await;
            c.until(b'C').await;
            c.send(&sync()).await;
            c.ready(1).await;
        })
    })
    .await;
    p.stop().await;
    assert!(has(&r, b'D') && error_codes(&r).is_empty(), "{}", render(&r, usize::MAX));
}
