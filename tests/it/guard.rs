//! The incident, through the proxy, against the real server: what is refused leaves the data
//! byte-for-byte unchanged and the session usable; what is allowed behaves as direct.

use crate::harness::*;
use tokio::io::AsyncWriteExt;

const INCIDENT_DELETE: &str = "DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100";

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_delete_is_refused_and_nothing_is_lost() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    // The test that would have caught the incident: the range sweeps real users too.
    let dir = direct("app", APP_PW, &db).await;
    assert_eq!(
        count(&dir, "SELECT count(*) FROM users WHERE id BETWEEN -91111200 AND -91111100 AND auth_source <> 'test'")
            .await,
        10
    );

    let err = via.simple_query(INCIDENT_DELETE).await.unwrap_err();
    let db_err = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(db_err.code().code(), "42501");
    assert_eq!(
        db_err.message(),
        "blastwall: refused DELETE on public.users: range predicate (BETWEEN) on protected column id"
    );
    assert!(db_err.detail().unwrap().contains("rule protected-range"));
    assert!(db_err.hint().unwrap().contains("auth_source = 'test'"));
    assert_eq!(snapshot(&via).await, before, "nothing changed");

    // Extended protocol with parameters: refused at Parse, before anything runs.
    let err =
        via.execute("DELETE FROM users WHERE id BETWEEN $1 AND $2", &[&-91111200i64, &-91111100i64]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    assert_eq!(snapshot(&via).await, before);

    // The upsert that overwrote real users, and the sequence move that started it all.
    let err = via
        .simple_query("INSERT INTO users (id, auth_source) VALUES (-91111111, 'test') ON CONFLICT (id) DO UPDATE SET auth_source = EXCLUDED.auth_source")
        .await
        .unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("ON CONFLICT (id) DO UPDATE"), "{err:?}");
    let err = via.simple_query("SELECT setval('web_user_id_seq', 91111101)").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    assert_eq!(snapshot(&via).await, before);

    // The session is usable, and the safe cleanup does exactly what it does direct.
    let n = via.execute("DELETE FROM users WHERE auth_source = 'test'", &[]).await.unwrap();
    assert_eq!(n, 10);
    assert_eq!(count(&via, "SELECT count(*) FROM users WHERE id BETWEEN -91111200 AND -91111100").await, 10);
    assert_eq!(count(&via, "SELECT count(*) FROM subscriptions").await, 50);
    // Point deletes on protected rows are allowed.
    assert_eq!(via.execute("DELETE FROM users WHERE id = $1", &[&1000001i64]).await.unwrap(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_a_transaction_aborts_it_like_a_server_error() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute("UPDATE users SET plan = 'changed' WHERE id = 1000002").await.unwrap();
    assert!(via.simple_query("DELETE FROM users").await.is_err());
    let err = via.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25P02", "the transaction is aborted, as after any error");
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(snapshot(&via).await, before);
    // A multi-statement string is judged whole: its harmless part does not run either.
    let err = via
        .simple_query("UPDATE users SET plan = 'x' WHERE id = 1000003; DELETE FROM users WHERE id < 0")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    assert_eq!(snapshot(&via).await, before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_in_a_pipelined_batch_behaves_like_a_server_error() {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO trust_user");
    let p = proxy().await;
    let batch = |bad: &str| {
        let mut b = parse("", "UPDATE users SET plan = 'batched' WHERE id = 1000004");
        b.extend(bind_execute(""));
        b.extend(parse("s2", bad));
        b.extend(bind_execute("s2"));
        b.extend(msg(b'S', &[]));
        b
    };
    // Through the proxy: the refused Parse fails the batch; the UPDATE before it is rolled
    // back with the implicit transaction, exactly as a server-side error would do.
    let mut via = startup(p.port(), "trust_user", &db).await;
    via.write_all(&batch(INCIDENT_DELETE)).await.unwrap();
    let r_via = replies(&mut via).await;
    // Direct, with a statement the server itself rejects at Parse.
    let mut dir = startup(pg().server.port, "trust_user", &db).await;
    dir.write_all(&batch("DELETE FROM no_such_table WHERE id BETWEEN 1 AND 2")).await.unwrap();
    let r_dir = replies(&mut dir).await;
    assert_eq!(r_via.tags, r_dir.tags, "same message sequence as a server error");
    assert_eq!(r_via.codes, vec!["42501".to_string()]);
    assert_eq!(r_via.status, r_dir.status);
    let c = direct("app", APP_PW, &db).await;
    assert_eq!(count(&c, "SELECT count(*) FROM users WHERE plan = 'batched'").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM users").await, 60);
    // Same connection, next batch: works.
    let mut ok = parse("", "SELECT 1");
    ok.extend(bind_execute(""));
    ok.extend(msg(b'S', &[]));
    via.write_all(&ok).await.unwrap();
    let r = replies(&mut via).await;
    assert!(r.codes.is_empty(), "{r:?}");
    // In an explicit transaction block the refusal leaves it failed ('E'), as the server does.
    via.write_all(&msg(b'Q', b"BEGIN\0")).await.unwrap();
    replies(&mut via).await;
    via.write_all(&batch(INCIDENT_DELETE)).await.unwrap();
    assert_eq!(replies(&mut via).await.status, Some('E'));
    via.write_all(&msg(b'Q', b"ROLLBACK\0")).await.unwrap();
    assert_eq!(replies(&mut via).await.status, Some('I'));
    // The FunctionCall message calls a function by OID: its body is unseen, so it is refused.
    let mut f = 1397u32.to_be_bytes().to_vec(); // int4abs
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 4, 255, 255, 255, 251, 0, 0]);
    via.write_all(&msg(b'F', &f)).await.unwrap();
    let r = replies(&mut via).await;
    assert_eq!(r.codes, vec!["42501".to_string()]);
    assert_eq!(r.status, Some('I'));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_conforming_strings_off_cannot_smuggle_a_delete() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    via.batch_execute("SET standard_conforming_strings = off").await.unwrap();
    // Read with `on`, this is one SELECT of two strings; the server, with `off`, runs a DELETE.
    let err = via.simple_query("SELECT 'a\\', '; DELETE FROM users; --'").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    assert_eq!(snapshot(&via).await, before);
    // The same text pipelined right behind the SET, before the server reported the change.
    let via2 = connect(p.port(), "app", APP_PW, &db).await;
    let (a, b) = tokio::join!(
        via2.simple_query("SET standard_conforming_strings = off"),
        via2.simple_query("SELECT 'a\\', '; DELETE FROM users; --'")
    );
    a.unwrap();
    assert!(b.is_err());
    assert_eq!(snapshot(&via).await, before);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_sees_a_clear_error_and_warn_mode_forwards() {
    let db = incident_db();
    let p = proxy().await;
    let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-c", INCIDENT_DELETE], None);
    assert!(!ok);
    assert!(
        err.contains(
            "ERROR:  blastwall: refused DELETE on public.users: range predicate (BETWEEN) on protected column id"
        ),
        "{err}"
    );
    assert!(err.contains("DETAIL:  rule protected-range"), "{err}");
    assert!(err.contains("HINT:  "), "{err}");
    // A script stops at the refusal with ON_ERROR_STOP, and what came before stays.
    let script = "UPDATE users SET plan = 'x' WHERE id = 1000005;\nDELETE FROM users WHERE id < 0;\nUPDATE users SET plan = 'y' WHERE id = 1000006;\n";
    let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-v", "ON_ERROR_STOP=1", "-f", "-"], Some(script));
    assert!(!ok, "{err}");
    assert!(err.contains("<stdin>:2: ERROR"), "{err}");
    let c = direct("app", APP_PW, &db).await;
    assert_eq!(count(&c, "SELECT count(*) FROM users WHERE plan IN ('x', 'y')").await, 1);
    p.stop().await;
    // The migrator role is in warn mode: forwarded, with a WARNING.
    let p = proxy().await;
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO migrator");
    let (ok, _, err) = psql(p.port(), "migrator", APP_PW, &db, &["-c", "DELETE FROM web_messages WHERE id > 0"], None);
    assert!(ok, "{err}");
    let (ok, _, err) = psql(p.port(), "migrator", APP_PW, &db, &["-c", "TRUNCATE web_messages"], None);
    assert!(ok, "{err}");
    assert!(err.contains("WARNING:  blastwall: would refuse TRUNCATE on public.web_messages"), "{err}");
    assert_eq!(count(&c, "SELECT count(*) FROM web_messages").await, 0);
    p.stop().await;
}

/// Long statements are analyzed off the session's event loop (other sessions on it keep
/// going) and judged exactly as short ones, in both protocols and in the middle of a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_statements_are_judged_like_short_ones() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&via).await;
    // ~40 KiB: past the size analyzed off the loop.
    let long = "x".repeat(40 * 1024);
    let range = format!("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100 AND auth_source <> '{long}'");
    for result in [via.simple_query(&range).await.map(|_| ()), via.execute(&range, &[]).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
        assert!(err.as_db_error().unwrap().message().contains("range predicate (BETWEEN)"), "{err:?}");
    }
    // A pipelined batch: the long Parse comes after a query that is already forwarded.
    let (a, b) = tokio::join!(via.query_one("SELECT 1::int4", &[]), via.execute(&range, &[]));
    assert_eq!(a.unwrap().get::<_, i32>(0), 1);
    assert_eq!(b.unwrap_err().code().unwrap().code(), "42501");
    assert_eq!(snapshot(&via).await, before, "nothing changed");
    // A long write that the policy allows runs (after its pre-check), and the session goes on.
    let point = format!("DELETE FROM users WHERE id = 1000001 AND auth_source <> '{long}'");
    assert_eq!(via.execute(&point, &[]).await.unwrap(), 1);
    assert_eq!(count(&via, "SELECT count(*) FROM users WHERE id = 1000001").await, 0);
    p.stop().await;
}

/// A statement sent behind the login, before the server is ready (in the same write as the
/// StartupMessage under trust authentication), is judged like any other: refused, data kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_pipelined_behind_the_login_is_judged() {
    use tokio::io::AsyncWriteExt;
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO trust_user");
    let before = direct("postgres", SUPERUSER_PW, &db).await;
    let count = |c: tokio_postgres::Client| async move {
        c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get::<_, i64>(0)
    };
    let n = count(before).await;
    let p = proxy().await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", p.port())).await.unwrap();
    let mut bytes = startup_packet(196608, &[("user", "trust_user"), ("database", &db)]);
    bytes.extend_from_slice(&msg(b'Q', b"DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100\0"));
    s.write_all(&bytes).await.unwrap();
    let login = replies(&mut s).await;
    assert_eq!(login.status, Some('I'), "{login:?}");
    let r = replies(&mut s).await;
    assert!(r.errors.contains("blastwall: refused DELETE"), "{r:?}");
    assert_eq!(count(direct("postgres", SUPERUSER_PW, &db).await).await, n, "the DELETE ran");
    p.stop().await;
}

/// A message sent in a failed transaction that ends it itself (`ROLLBACK; …`) is not relayed
/// unjudged: refused, and the data is unchanged (the issue's own bypass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_at_the_head_of_a_message_in_a_failed_transaction_is_judged() {
    let db = incident_db();
    let n = |db: String| async move {
        let c = direct("postgres", SUPERUSER_PW, &db).await;
        c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get::<_, i64>(0)
    };
    let before = n(db.clone()).await;
    let p = proxy().await;
    let c = connect(p.port(), "postgres", SUPERUSER_PW, &db).await;
    for sql in [
        "ROLLBACK; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100; TRUNCATE users CASCADE",
        "ROLLBACK; DELETE FROM users WHERE plan = 'premium'",
    ] {
        c.batch_execute("BEGIN").await.unwrap();
        assert!(c.batch_execute("SELECT 1/0").await.is_err());
        // Refused in place: the server gets blastwall's marker instead, which it answers with
        // its own 25P02 in a failed transaction (the ROLLBACK at the head never ran).
        let e = c.batch_execute(sql).await.unwrap_err();
        let code = e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_default();
        assert!(code == "25P02" || code == "42501", "{sql}: {e:?}");
        let still = c.batch_execute("SELECT 1").await.unwrap_err();
        assert_eq!(still.as_db_error().map(|d| d.code().code()), Some("25P02"), "{sql}: the ROLLBACK ran");
        assert_eq!(n(db.clone()).await, before, "{sql}");
        c.batch_execute("ROLLBACK").await.unwrap();
    }
    // ROLLBACK alone still ends a failed transaction as usual.
    c.batch_execute("BEGIN").await.unwrap();
    assert!(c.batch_execute("SELECT 1/0").await.is_err());
    c.batch_execute("ROLLBACK").await.unwrap();
    c.batch_execute("SELECT 1").await.unwrap();
    p.stop().await;
}

/// Ranges in any disguise (#11 family 5): each is refused through the proxy and the data is
/// unchanged on the server; what they would have done direct is checked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_in_disguise_are_refused_and_nothing_changes() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    orders_and_batches(&dir).await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&dir).await;
    let range = "-91111200 AND -91111100";
    for sql in [
        format!("DELETE FROM users WHERE (users).id BETWEEN {range}"),
        "DELETE FROM users WHERE id(users) < 0".to_string(),
        format!("DELETE FROM users WHERE EXISTS (SELECT 1 WHERE id BETWEEN {range})"),
        // An outer reference from a subquery with a FROM of its own (v has no column id).
        format!("DELETE FROM users WHERE EXISTS (SELECT 1 FROM (VALUES (1)) v(x) WHERE id BETWEEN {range})"),
        format!("DELETE FROM users u WHERE (to_jsonb(u)->>'id')::bigint BETWEEN {range}"),
        "DELETE FROM users t WHERE (t.*)::text LIKE '(-9111%'".to_string(),
        "DELETE FROM users t WHERE (row_to_json(t)->>'id')::bigint < 0".to_string(),
        "UPDATE users t SET plan = 'x' WHERE (row_to_json(t)->>'id')::bigint < 0".to_string(),
        // Moving ids is its own rule, whatever the WHERE.
        "UPDATE users SET id = id - 1000000000 WHERE auth_source = 'oauth'".to_string(),
        "UPDATE users SET (plan, id) = ('free', id - 1) WHERE id = -91111111".to_string(),
        "MERGE INTO users u USING (VALUES (1)) v(x) ON u.id = -91111111 WHEN MATCHED THEN UPDATE SET id = 5"
            .to_string(),
        // A forgotten join condition: batch_status is a column of batches, not of orders.
        "UPDATE orders SET status = 'cancelled' FROM batches WHERE batch_status = 'void'".to_string(),
        "DELETE FROM orders USING batches WHERE batch_status = 'void'".to_string(),
    ] {
        let err = via.simple_query(&sql).await.expect_err(&sql);
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{sql}: {err:?}");
        assert_eq!(snapshot(&dir).await, before, "{sql} changed users");
        let orders = count(&dir, "SELECT count(*) FROM orders WHERE status = 'open'").await;
        assert_eq!(orders, 40, "{sql} changed orders");
    }
    let m = via.simple_query("UPDATE users SET id = id - 1000000000 WHERE auth_source = 'oauth'").await.unwrap_err();
    assert!(m.as_db_error().unwrap().detail().unwrap().contains("rule protected-assign"), "{m:?}");
    let m =
        via.simple_query("UPDATE orders SET status = 'x' FROM batches WHERE batch_status = 'void'").await.unwrap_err();
    assert!(m.as_db_error().unwrap().message().contains("qualify"), "{m:?}");
    // What they would have done: the forgotten join condition updates every order.
    let tx = dir
        .simple_query(
            "BEGIN; UPDATE orders SET status = 'cancelled' FROM batches WHERE batch_status = 'void'; ROLLBACK",
        )
        .await
        .unwrap();
    assert!(format!("{tx:?}").contains("40"), "{tx:?}");
    // The same with the join written out is allowed, and does what it says.
    let n = via
        .execute("UPDATE orders SET status = 'cancelled' FROM batches b WHERE orders.batch_id = b.id AND batch_status = 'void'", &[])
        .await
        .unwrap();
    assert_eq!(n, 20);
    assert_eq!(count(&dir, "SELECT count(*) FROM orders WHERE status = 'cancelled' AND batch_id = 1").await, 20);
    // A point is still a point, next to a subquery that names its own columns.
    let n = via
        .execute("DELETE FROM users WHERE id = -91111101 AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = -91111101)", &[])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(count(&dir, "SELECT count(*) FROM users").await, 59);
    p.stop().await;
}

/// With `allow_protected_update = true` the table's protected column may be set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_may_allow_setting_a_protected_column() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    dir.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, v text); INSERT INTO accounts VALUES (1, 'a')")
        .await
        .unwrap();
    let policy = "[[table]]\nname = \"accounts\"\nprotected_columns = [\"id\"]\nallow_protected_update = true\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("p.toml"), policy)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    assert_eq!(via.execute("UPDATE accounts SET id = 77 WHERE id = 1", &[]).await.unwrap(), 1);
    assert_eq!(count(&dir, "SELECT count(*) FROM accounts WHERE id = 77 AND v = 'a'").await, 1);
    p.stop().await;
}

/// False positives (#11 family 7): each is allowed, and changes what it says on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_statements_that_were_refused_run() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    dir.batch_execute("CREATE TABLE tally (n int); CREATE TABLE people (id int PRIMARY KEY, system_user text)")
        .await
        .unwrap();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // 60 chained || (prost's nesting limit made it "not parse").
    let concat = format!("UPDATE users SET email = 'a'{} WHERE id = -91111101", " || 'a'".repeat(60));
    assert_eq!(via.execute(concat.as_str(), &[]).await.unwrap(), 1);
    assert_eq!(count(&dir, "SELECT length(email)::bigint FROM users WHERE id = -91111101").await, 61);
    // INSERT … SELECT with 100 UNION ALL branches.
    let union = format!("INSERT INTO tally SELECT 1{}", " UNION ALL SELECT 1".repeat(100));
    assert_eq!(via.execute(union.as_str(), &[]).await.unwrap(), 101);
    assert_eq!(count(&dir, "SELECT count(*) FROM tally").await, 101);
    // An ordinary comment that starts with blastwall:.
    let n = via.simple_query("-- blastwall: test users only\nDELETE FROM users WHERE id = -91111102").await.unwrap();
    assert!(format!("{n:?}").contains("CommandComplete(1)"), "{n:?}");
    assert_eq!(count(&dir, "SELECT count(*) FROM users WHERE id = -91111102").await, 0);
    // system_user as a column name (a keyword of the parser's grammar, a name on PostgreSQL 15).
    via.simple_query(
        "INSERT INTO people (id, system_user) VALUES (1, 'a'); UPDATE people SET system_user = 'b' WHERE id = 1",
    )
    .await
    .unwrap();
    assert_eq!(count(&dir, "SELECT count(*) FROM people WHERE system_user = 'b'").await, 1);
    // A trailing comment on a counted, estimated DELETE: counted right, and allowed.
    let n = via
        .simple_query("DELETE FROM users WHERE auth_source = 'test' AND plan = 'free' -- the nightly cleanup")
        .await
        .unwrap();
    assert!(format!("{n:?}").contains("CommandComplete(9)"), "{n:?}");
    assert_eq!(count(&dir, "SELECT count(*) FROM users WHERE auth_source = 'test'").await, 0);
    p.stop().await;
}

/// EUC_JP text (ASCII-safe: every byte of a multibyte character is ≥ 0x80) is judged, not
/// refused; SJIS text with non-ASCII bytes still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn euc_jp_text_is_judged_and_runs() {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO trust_user");
    let p = proxy().await;
    let mut via = startup(p.port(), "trust_user", &db).await;
    via.write_all(&msg(b'Q', b"SET client_encoding = 'EUC_JP'\0")).await.unwrap();
    assert!(replies(&mut via).await.codes.is_empty());
    // ぁ in EUC_JP.
    via.write_all(&msg(b'Q', b"UPDATE users SET email = '\xa4\xa1' WHERE id = -91111103\0")).await.unwrap();
    let r = replies(&mut via).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let dir = direct("app", APP_PW, &db).await;
    assert_eq!(count(&dir, "SELECT count(*) FROM users WHERE id = -91111103 AND email = 'ぁ'").await, 1);
    via.write_all(&msg(b'Q', b"SET client_encoding = 'SJIS'\0")).await.unwrap();
    assert!(replies(&mut via).await.codes.is_empty());
    via.write_all(&msg(b'Q', b"UPDATE users SET email = '\x82\x9f' WHERE id = -91111104\0")).await.unwrap();
    assert_eq!(replies(&mut via).await.codes, vec!["42501".to_string()]);
    assert_eq!(count(&dir, "SELECT count(*) FROM users WHERE id = -91111104 AND email LIKE 'qa+%'").await, 1);
    p.stop().await;
}

/// `replication=fals` is `false` to the server (parse_bool takes unique prefixes): an ordinary
/// session, relayed; `replication=database` and `replication=on` are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_is_read_as_the_server_reads_it() {
    let db = incident_db();
    let p = proxy().await;
    for (value, refused) in
        [("fals", false), ("of", false), ("0", false), ("database", true), ("on", true), ("t", true)]
    {
        let mut s =
            send_startup(p.port(), 196608, &[("user", "trust_user"), ("database", &db), ("replication", value)]).await;
        let r = replies(&mut s).await;
        assert_eq!(r.errors.contains("replication connections are not relayed"), refused, "{value}: {r:?}");
        if !refused {
            assert_eq!(r.status, Some('I'), "{value}: {r:?}");
        }
    }
    p.stop().await;
}

/// The planner's estimate is a guess: a DELETE it puts far over the limit is counted exactly,
/// with a bound, before it is refused. One matching no row runs; one over the limit is still
/// refused without running, whatever comment trails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_estimate_far_over_the_limit_is_counted_before_refusing() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    // Statistics of 10,000 rows, then every row gone (not vacuumed): the planner still
    // estimates thousands.
    dir.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
         INSERT INTO big SELECT g, g FROM generate_series(1, 10000) g; ANALYZE big; DELETE FROM big;",
    )
    .await
    .unwrap();
    let policy = "[[table]]\nname = \"big\"\nmax_delete_rows = 5\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("big.toml"), policy)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let plan = dir.simple_query("EXPLAIN DELETE FROM big WHERE v > 0").await.unwrap();
    let plan = format!("{plan:?}");
    assert!(!plan.contains("rows=1 "), "the planner must guess high: {plan}");
    let r = via.simple_query("DELETE FROM big WHERE v > 0").await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(0)"), "{r:?}");
    dir.batch_execute("INSERT INTO big SELECT g, g FROM generate_series(1, 10) g").await.unwrap();
    let err = via.simple_query("DELETE FROM big WHERE v > 0 -- the nightly cleanup").await.unwrap_err();
    let m = err.as_db_error().unwrap().message().to_string();
    assert!(m.contains("far over its limit of 5; not run"), "{m}");
    assert_eq!(count(&dir, "SELECT count(*) FROM big").await, 10);
    // Within the limit by the count: runs, counted.
    let r = via.simple_query("DELETE FROM big WHERE v > 6 -- tail").await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(4)"), "{r:?}");
    assert_eq!(count(&dir, "SELECT count(*) FROM big").await, 6);
    p.stop().await;
}

/// The bounded count covers what the planner's estimate alone used to refuse: a DELETE with
/// `USING`, an UPDATE with `FROM` (each target row once, however many rows it joins), a `WITH`
/// of plain SELECTs, and a statement with extended-protocol parameters (counted with the
/// client's own values). Each matches one row while the planner guesses thousands: it runs
/// and changes exactly that row. The same statements matching seven rows (over the limit of
/// 5) stay refused without running. Every count is read on the server directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bounded_count_covers_using_from_with_and_parameters() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    // Statistics of 10,000 (and 1,000) rows, then the rows gone: the planner guesses high.
    dir.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
         CREATE TABLE small (v int) WITH (autovacuum_enabled = false);
         INSERT INTO big SELECT g, g FROM generate_series(1, 10000) g;
         INSERT INTO small SELECT g FROM generate_series(1, 1000) g;
         ANALYZE big; ANALYZE small; DELETE FROM big; DELETE FROM small;
         INSERT INTO big SELECT g, g FROM generate_series(1, 10) g; INSERT INTO small VALUES (9)",
    )
    .await
    .unwrap();
    let policy = "[[table]]\nname = \"big\"\nmax_delete_rows = 5\nmax_update_rows = 5\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("big.toml"), policy)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let far = |m: &str| m.contains("far over its limit of 5; not run");
    let statements = [
        "DELETE FROM big USING small WHERE big.v > small.v",
        "UPDATE big SET v = big.v + 100 FROM small WHERE big.v > small.v",
        "WITH s AS (SELECT v FROM small) DELETE FROM big WHERE v > (SELECT min(v) FROM s)",
    ];
    // Seven rows each (small holds 3): refused before running, nothing changed.
    dir.batch_execute("UPDATE small SET v = 3").await.unwrap();
    let before = big_rows(&dir).await;
    // An estimate that takes over its 500 ms budget (a loaded machine, a backend's cold
    // caches) is not had and the statement is counted instead, refused all the same: tried
    // again then, refused unchanged each time.
    for sql in statements {
        let mut m = String::new();
        for _ in 0..3 {
            let e = via.simple_query(sql).await.expect_err(sql);
            m = e.as_db_error().unwrap().message().to_string();
            if far(&m) {
                break;
            }
        }
        assert!(far(&m), "{sql}: {m}");
    }
    let mut m = String::new();
    for _ in 0..3 {
        let e = via.execute("DELETE FROM big WHERE v > $1", &[&3i32]).await.expect_err("seven rows by parameter");
        m = e.as_db_error().unwrap().message().to_string();
        if far(&m) {
            break;
        }
    }
    assert!(far(&m), "{m}");
    assert_eq!(big_rows(&dir).await, before);
    // One row each (small holds 9): runs, and changes exactly that row.
    dir.batch_execute("UPDATE small SET v = 9").await.unwrap();
    let r = via.simple_query(statements[1]).await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(1)"), "{r:?}");
    let mut want = before.clone();
    want[9].1 = 110;
    assert_eq!(big_rows(&dir).await, want);
    dir.batch_execute("UPDATE big SET v = 10 WHERE id = 10").await.unwrap();
    let r = via.simple_query(statements[0]).await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(1)"), "{r:?}");
    want[9].1 = 10;
    want.pop();
    assert_eq!(big_rows(&dir).await, want);
    dir.batch_execute("INSERT INTO small VALUES (8)").await.unwrap();
    let r = via.simple_query(statements[2]).await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(1)"), "{r:?}");
    want.pop();
    assert_eq!(big_rows(&dir).await, want);
    let n = via.execute("DELETE FROM big WHERE v > $1", &[&7i32]).await.unwrap();
    assert_eq!(n, 1);
    want.pop();
    assert_eq!(big_rows(&dir).await, want);
    p.stop().await;
}

async fn big_rows(d: &tokio_postgres::Client) -> Vec<(i32, i32)> {
    d.query("SELECT id, v FROM big ORDER BY id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// `EXPLAIN ANALYZE EXECUTE` of a prepared SELECT reads: it is allowed and answers its plan.
/// The same of a prepared DELETE (or of a name never prepared) executes a write the guard
/// does not count inside EXPLAIN: refused (`opaque`), and the user is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_execute_of_a_prepared_select_is_allowed() {
    let p = proxy().await;
    let db = incident_db();
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.batch_execute("PREPARE sel(bigint) AS SELECT count(*) FROM users WHERE id > $1").await.unwrap();
    let r = via.simple_query("EXPLAIN ANALYZE EXECUTE sel(0)").await.unwrap();
    assert!(format!("{r:?}").contains("actual time"), "{r:?}");
    via.batch_execute("PREPARE del(bigint) AS DELETE FROM users WHERE id = $1").await.unwrap();
    for sql in ["EXPLAIN ANALYZE EXECUTE del(1000001)", "EXPLAIN (ANALYZE) EXECUTE nosuch(1000001)"] {
        let e = via.simple_query(sql).await.expect_err(sql);
        let d = e.as_db_error().unwrap();
        assert!(d.message().contains("blastwall: refused"), "{sql}: {e:?}");
    }
    let dir = direct("app", APP_PW, &db).await;
    let n: i64 = dir.query_one("SELECT count(*) FROM users WHERE id = 1000001", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    p.stop().await;
}

/// An unqualified column beside another relation is placed from the catalog, on the client's
/// session: a name that is a column of the target and of none of the relations beside it is
/// the target's (as the server resolves it), so `WHERE batch_id = batches.id AND …` restricts
/// `orders` and runs, changing exactly its 20 rows, and a point on an unqualified `id` of
/// `users` beside `flags` is a point. A name of the other relation (`batch_status`), or of
/// both (`id`), stays refused; so does a range on the placed `id` (now as BETWEEN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_column_beside_another_relation_is_placed_from_the_catalog() {
    let db = incident_db();
    let dir = direct("app", APP_PW, &db).await;
    orders_and_batches(&dir).await;
    dir.batch_execute("CREATE TABLE flags (flag text); INSERT INTO flags VALUES ('x')").await.unwrap();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let before = snapshot(&dir).await;
    for (sql, why) in [
        ("UPDATE orders SET status = 'cancelled' FROM batches WHERE batch_status = 'void'", "require-where"),
        ("DELETE FROM orders USING batches WHERE id = 1", "require-where"),
        ("DELETE FROM users USING flags WHERE id BETWEEN -91111105 AND -91111101 AND flag = 'x'", "(BETWEEN)"),
    ] {
        let err = via.simple_query(sql).await.expect_err(sql);
        let d = err.as_db_error().unwrap();
        assert!(format!("{} {}", d.message(), d.detail().unwrap_or("")).contains(why), "{sql}: {err:?}");
    }
    assert_eq!(snapshot(&dir).await, before);
    assert_eq!(count(&dir, "SELECT count(*) FROM orders WHERE status = 'open'").await, 40);
    let join =
        "UPDATE orders SET status = 'cancelled' FROM batches WHERE batch_id = batches.id AND batch_status = 'void'";
    // Prepared (a protocol Parse run at its Execute), its names are resolved when it runs,
    // under the path of its Parse: not placed, refused.
    via.execute(join, &[]).await.expect_err("prepared: not placed");
    let r = via.simple_query(join).await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(20)"), "{r:?}");
    assert_eq!(count(&dir, "SELECT count(*) FROM orders WHERE status = 'cancelled'").await, 20);
    assert_eq!(count(&dir, "SELECT count(*) FROM orders WHERE status = 'cancelled' AND batch_id = 1").await, 20);
    let r = via.simple_query("DELETE FROM users USING flags WHERE id = -91111105 AND flag = 'x'").await.unwrap();
    assert!(format!("{r:?}").contains("CommandComplete(1)"), "{r:?}");
    assert_eq!(count(&dir, "SELECT count(*) FROM users").await, 59);
    assert_eq!(count(&dir, "SELECT count(*) FROM users WHERE id = -91111105").await, 0);
    p.stop().await;
}

/// `batches` (1 void, 2 ok) and 40 open `orders`, half of them in each batch.
async fn orders_and_batches(dir: &tokio_postgres::Client) {
    dir.batch_execute(
        "CREATE TABLE batches (id int PRIMARY KEY, batch_status text);
         CREATE TABLE orders (id int PRIMARY KEY, batch_id int, status text);
         INSERT INTO batches VALUES (1, 'void'), (2, 'ok');
         INSERT INTO orders SELECT g, 1 + g % 2, 'open' FROM generate_series(1, 40) g;",
    )
    .await
    .unwrap();
}
