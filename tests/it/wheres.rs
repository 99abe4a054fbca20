//! Issue 11 items 5 and 7, the analysis's own mistakes, each sent through blastwall in enforce
//! mode with the data checked on the server directly: `require-where` accepting the table
//! compared with itself through a subquery or a self-join (red-team pass 2, F2), false
//! positives (`id < 10 OR id > 90`, `DELETE FROM ONLY parent`, `DROP DATABASE` of a scratch
//! database, `DROP TABLE pg_temp.users` over the extended protocol), the table a refusal names,
//! and the shipped contract's `explicit_id` on the shipped schema.

use crate::harness::*;

/// Each statement runs through `via` and sets `b` to its mark on exactly that many rows, as
/// the server says.
async fn runs(via: &tokio_postgres::Client, db: &str, cases: &[(&str, &str, u64)]) {
    for &(sql, mark, rows) in cases {
        let n = via.execute(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(n, rows, "{sql}");
        assert_eq!(count(db, &format!("SELECT count(*) FROM t1 WHERE b = '{mark}'")).await, rows as i64, "{sql}");
    }
}

/// A database with `t1(id, a, b, parent_id, created)` of 100 rows (no policy names it, so
/// `require-where` is all that stands in front of it) and `t2`.
fn t1_db() -> String {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE t1 (id int PRIMARY KEY, a int, b text, parent_id int, created timestamptz); \
         INSERT INTO t1 SELECT g, g % 7, 'b', g / 2, now() - g * interval '10 days' FROM generate_series(1, 100) g; \
         CREATE TABLE t2 (id int, k int); INSERT INTO t2 VALUES (1, 1), (2, 2), (3, 3); \
         GRANT ALL ON t1, t2 TO app;",
    );
    db
}

/// F2: the table compared with itself through an unrestricted subquery or self-join
/// restricts nothing; with a restriction of its own, or over another table, it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_compared_with_itself_does_not_satisfy_require_where() {
    let db = t1_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let changed = "SELECT count(*) FROM t1 WHERE b <> 'b'";
    for sql in [
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM t1)",
        "UPDATE t1 x SET b = 'z' FROM t1 y WHERE x.id = y.id",
        "UPDATE t1 SET b = 'z' WHERE a IN (SELECT a FROM t1)",
        "UPDATE t1 SET b = 'z' WHERE EXISTS (SELECT 1 FROM t1 y WHERE y.id = t1.id)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT k FROM (SELECT id AS k FROM t1) s)",
        "WITH s AS (SELECT id FROM t1) UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM s)",
        "DELETE FROM t1 x USING t1 y WHERE x.id = y.id",
        "MERGE INTO t1 x USING t1 y ON x.id = y.id WHEN MATCHED THEN UPDATE SET b = 'z'",
        // rt36 M1: an aggregate expanded again, a window, a GROUP BY of one row per group;
        // rt36 L1: a sample of all of it.
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT unnest(array_agg(id)) FROM t1)",
        "UPDATE t1 SET b = 'z' WHERE id = ANY((SELECT array_agg(id) FROM t1)::int[])",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT generate_series(min(id), max(id)) FROM t1)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT first_value(id) OVER (PARTITION BY id) FROM t1)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT max(id) FROM t1 GROUP BY id)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM t1 TABLESAMPLE SYSTEM (100))",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM t1 GROUP BY id HAVING true)",
        // rt37: through LATERAL, WITH TIES, a null limit, a recursive walk, groups of rows.
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT x FROM t1, LATERAL (SELECT id) l(x))",
        "UPDATE t1 x SET b = 'z' FROM t1 y, LATERAL (SELECT y.id) l(k) WHERE x.id = l.k",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM t1 ORDER BY a * 0 FETCH FIRST 1 ROW WITH TIES)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT id FROM t1 LIMIT NULL::int)",
        "UPDATE t1 SET b = 'z' WHERE id IN (WITH RECURSIVE r(i) AS (SELECT min(id) FROM t1 UNION \
         SELECT (SELECT min(id) FROM t1 WHERE id > r.i) FROM r WHERE r.i IS NOT NULL) SELECT i FROM r)",
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT max(id) FROM t1 GROUP BY ctid)",
        // rt38 M1.
        "UPDATE t1 SET b = 'z' WHERE id IN (SELECT (SELECT max(y) FROM (VALUES (m.id)) v(y)) FROM t1 m)",
        // rt39 M1.
        "UPDATE t1 SET b = 'z' WHERE id = (SELECT max(y) FROM (VALUES (id)) v(y))",
        // rt40: the row looked up in itself, a whole row never null, the looked-up column on
        // both sides, null tests spelled as DISTINCT.
        "UPDATE t1 w SET b = 'z' WHERE EXISTS (SELECT 1 FROM (SELECT w.id AS k) m WHERE m.k = w.id)",
        "UPDATE t1 s SET b = 'z' WHERE (SELECT count(*) FROM (VALUES (s.id)) v(x) WHERE v.x = s.id) = 1",
        "UPDATE t1 c SET b = 'z' WHERE EXISTS (SELECT 1 FROM generate_series(c.id, c.id) g WHERE g = c.id)",
        "UPDATE t1 w SET b = 'z' WHERE w IS DISTINCT FROM NULL",
        "UPDATE t1 w SET b = 'z' WHERE EXISTS (SELECT 1 FROM t2 c WHERE c.id = w.a * 0 + c.id)",
        "UPDATE t1 SET b = 'z' WHERE b IS DISTINCT FROM NULL OR b IS NULL",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "require-where");
        assert_eq!(count(&db, changed).await, 0, "{sql}");
        assert_eq!(count(&db, "SELECT count(*) FROM t1").await, 100, "{sql}");
    }
    // Restricted on their own, or by another table: they run, and change what they say.
    runs(
        &via,
        &db,
        &[
            (
                "UPDATE t1 SET b = 'y' WHERE id IN (SELECT id FROM t1 WHERE created < now() - interval '1 year')",
                "y",
                64,
            ),
            ("UPDATE t1 x SET b = 'x' FROM t1 y WHERE x.id = y.id AND y.a = 3", "x", 14),
            ("UPDATE t1 SET b = 'w' WHERE id IN (SELECT id FROM t1 ORDER BY id LIMIT 5)", "w", 5),
            ("UPDATE t1 SET b = 'v' WHERE id = (SELECT max(id) FROM t1)", "v", 1),
            ("UPDATE t1 SET b = 'u' WHERE id IN (SELECT t1.id FROM t1 JOIN t2 ON t1.id = t2.k)", "u", 3),
            ("UPDATE t1 SET b = 't' WHERE parent_id IN (SELECT id FROM t2)", "t", 6),
            ("UPDATE t1 SET b = 'r' WHERE id = (SELECT max(id) - 1 FROM t1)", "r", 1),
            // A correlated count in another table compared with a constant (rt39 FP2).
            ("UPDATE t1 SET b = 'p' WHERE (SELECT count(*) FROM t2 WHERE t2.k = t1.id) = 1", "p", 3),
            ("UPDATE t1 SET b = 'o' WHERE coalesce((SELECT max(t2.id) FROM t2 WHERE t2.k = t1.id), 0) > 1", "o", 2),
            // The latest row of each group (rt37 FP1).
            ("UPDATE t1 SET b = 'q' WHERE id IN (SELECT max(id) FROM t1 GROUP BY a)", "q", 7),
            // One row kept per group: the groups' aggregates are excluded.
            ("UPDATE t1 SET b = 's' WHERE id NOT IN (SELECT min(id) FROM t1 GROUP BY a)", "s", 93),
        ],
    )
    .await;
    p.stop().await;
}

/// F10: branches that leave values out (`id < 10 OR id > 90`) restrict; branches that meet
/// (`a < 5 OR a >= 5`) are still a tautology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_or_of_ranges_with_a_gap_restricts() {
    let db = t1_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    runs(
        &via,
        &db,
        &[
            ("UPDATE t1 SET b = 'o' WHERE id < 10 OR id > 90", "o", 19),
            ("UPDATE t1 SET b = 'i' WHERE id <= 10 OR id >= 90", "i", 21),
            ("UPDATE t1 SET b = 'c' WHERE created < now() - interval '900 days' OR 3 > a", "c", 49),
            // A gap of one integer between bounds with fractions: 50 is left out.
            ("UPDATE t1 SET b = 'g' WHERE id < 49.5 OR id > 50.5", "g", 99),
        ],
    )
    .await;
    let before = count(&db, "SELECT count(*) FROM t1 WHERE b = 'z'").await;
    for sql in [
        "UPDATE t1 SET b = 'z' WHERE a < 5 OR a >= 5",
        "UPDATE t1 SET b = 'z' WHERE id < 10 OR 5 < id",
        "UPDATE t1 SET b = 'z' WHERE id < 10 OR id > 90 OR id BETWEEN 5 AND 95",
        // rt41 M2, L2.
        "UPDATE t1 SET b = 'z' WHERE id <> 5 OR id <> 6",
        "UPDATE t1 SET b = 'z' WHERE b NOT IN ('x', 'y') OR b NOT IN ('v', 'w')",
        "UPDATE t1 SET b = 'z' WHERE id >= 5 OR id <= 4",
        // rt62 F1: a bound with a fraction, on an integer column.
        "UPDATE t1 SET b = 'z' WHERE id <= 4 OR id >= 4.5",
        "UPDATE t1 SET b = 'z' WHERE id < 4.1 OR id > 4.9",
        // rt66 L1: the column negated, the same tautology.
        "UPDATE t1 SET b = 'z' WHERE id <= 4 OR -id <= -4.5",
        "UPDATE t1 SET b = 'z' WHERE id < 5 OR 0 - id <= -5",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "require-where");
        assert_eq!(count(&db, "SELECT count(*) FROM t1 WHERE b = 'z'").await, before, "{sql}");
    }
    p.stop().await;
}

/// F6: `ONLY parent` does not write the parent's inheritance children, so a protected child
/// does not lend the parent its rules; without `ONLY` it still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_parent_does_not_reach_its_protected_child() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE public.pu (id bigint, auth_source text, plan text, email text); \
         ALTER TABLE users INHERIT pu; \
         INSERT INTO pu SELECT -g, 'old', 'free', NULL FROM generate_series(1, 6) g; \
         GRANT ALL ON pu TO app;",
    );
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let users = "SELECT count(*) FROM users";
    let own = "SELECT count(*) FROM ONLY pu";
    for (sql, rule) in [
        ("DELETE FROM pu WHERE id < 0", "protected-range"),
        ("UPDATE pu SET plan = 'gone' WHERE id < 0", "protected-range"),
        ("TRUNCATE pu", "forbid-truncate"),
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, rule);
        assert!(m.contains("public.users"), "{m}");
        assert_eq!((count(&db, users).await, count(&db, own).await), (60, 6), "{sql}");
    }
    let n = via.execute("UPDATE ONLY pu SET plan = 'p' WHERE id < -3", &[]).await.unwrap();
    assert_eq!(n, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM ONLY pu WHERE plan = 'p'").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'p'").await, 0);
    // The simple protocol: judged by what the name resolves to now.
    via.batch_execute("DELETE FROM ONLY pu WHERE id < -4").await.unwrap();
    assert_eq!((count(&db, users).await, count(&db, own).await), (60, 4));
    via.batch_execute("TRUNCATE ONLY pu").await.unwrap();
    assert_eq!((count(&db, users).await, count(&db, own).await), (60, 0));
    p.stop().await;
}

/// An estimate or count refusal of a statement whose `WITH` writes another table names the
/// table whose rows they are (red-team pass 1, L7: the 360 rows of `web_messages` were once
/// reported as `subscriptions`').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_table_whose_rows_it_counts() {
    let db = incident_db();
    admin_sql(pg(), &db, "INSERT INTO web_messages (session_id, body) SELECT s.id, 'more' FROM chat_sessions s, generate_series(1, 20); ANALYZE web_messages;");
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let messages = count(&db, "SELECT count(*) FROM web_messages").await;
    for sql in [
        "WITH d AS (DELETE FROM web_messages WHERE session_id > 0 RETURNING 1) DELETE FROM subscriptions WHERE id = 1",
        "WITH d AS (DELETE FROM web_messages WHERE session_id < 5 RETURNING 1) DELETE FROM subscriptions WHERE id = 1",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, "row-limit");
        assert!(m.contains("public.web_messages"), "{m}");
        assert!(!m.contains("rows in public.subscriptions"), "{m}");
        assert_eq!(count(&db, "SELECT count(*) FROM web_messages").await, messages, "{sql}");
        assert_eq!(count(&db, "SELECT count(*) FROM subscriptions").await, 60, "{sql}");
    }
    p.stop().await;
}

async fn database_exists(name: &str) -> bool {
    count("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")).await == 1
}

/// Red-team pass 1, L5: `DROP DATABASE` is refused for a database that may hold a policy table
/// whose DROP is forbidden (blastwall has seen it there, or knows nothing of the database); a
/// database created through blastwall, where it never saw one, may be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_database_is_refused_only_where_the_policy_tables_may_be() {
    let guarded = incident_db();
    let unknown = fresh_db("unknown");
    let scratch = format!("scratch_{}", std::process::id());
    let p = proxy().await;
    {
        // A session on the guarded database: blastwall learns where the policy tables are.
        let app = connect(p.port(), "app", APP_PW, &guarded).await;
        assert_eq!(app.execute("DELETE FROM users WHERE id = 1000001", &[]).await.unwrap(), 1);
    }
    let dba = connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await;
    let e = dba.simple_query(&format!("DROP DATABASE {guarded} WITH (FORCE)")).await.unwrap_err();
    let m = refused_by(&e, "forbid-drop");
    assert!(m.contains("public.users"), "{m}");
    assert!(database_exists(&guarded).await);
    assert_eq!(count(&guarded, "SELECT count(*) FROM users").await, 59);
    // A database blastwall knows nothing of may hold it (fail closed).
    let e = dba.simple_query(&format!("DROP DATABASE {unknown}")).await.unwrap_err();
    refused_by(&e, "forbid-drop");
    assert!(database_exists(&unknown).await);
    dba.batch_execute(&format!("CREATE DATABASE {scratch}")).await.unwrap();
    dba.batch_execute(&format!("DROP DATABASE {scratch}")).await.unwrap();
    assert!(!database_exists(&scratch).await);
    p.stop().await;
}

/// Red-team pass 1, L6: a name qualified with `pg_temp` is a temporary relation of the
/// session, never the policy's `public.users`: dropping one is judged alike on both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_table_named_like_a_policy_table_may_be_dropped() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let temp =
        "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = 'users' AND pg_table_is_visible(oid)";
    for extended in [false, true] {
        via.batch_execute("CREATE TEMP TABLE users (x int)").await.unwrap();
        assert_eq!(via.query_one(temp, &[]).await.unwrap().get::<_, i64>(0), 1);
        if extended {
            via.execute("DROP TABLE pg_temp.users", &[]).await.unwrap_or_else(|e| panic!("{e:?}"));
        } else {
            via.batch_execute("DROP TABLE pg_temp.users").await.unwrap_or_else(|e| panic!("{e:?}"));
        }
        assert_eq!(via.query_one(temp, &[]).await.unwrap().get::<_, i64>(0), 0, "extended: {extended}");
        assert_eq!(count(&db, "SELECT count(*) FROM users").await, 60);
    }
    // The policy's table itself, and a temporary child of it, are still judged as it.
    via.batch_execute("CREATE TEMP TABLE kid () INHERITS (public.users)").await.unwrap();
    for sql in ["DROP TABLE public.users", "DROP TABLE pg_temp.kid"] {
        for extended in [false, true] {
            let e = if extended { via.execute(sql, &[]).await.map(|_| ()) } else { via.batch_execute(sql).await };
            refused_by(&e.err().unwrap_or_else(|| panic!("ran: {sql}")), "forbid-drop");
        }
    }
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 60);
    p.stop().await;
}

/// Red-team pass 1, L1: the shipped contract (`policies/default.toml` +
/// `policies/contract/contract.toml`) on the shipped schema refuses a users.id made by hand —
/// the incident's first domino — and lets the sequence mint an OAuth user's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_contract_refuses_a_hand_made_user_id() {
    let db = incident_db();
    admin_sql(pg(), &db, &blastwall::contract::state::init_script("blastwall", &["app".into()]));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policy =
        blastwall::policy::file::load(&[dir.join("default.toml"), dir.join("contract/contract.toml")]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        "INSERT INTO users (id, auth_source, email) VALUES (-91111150, 'test', 'handmade@example.test')",
        "INSERT INTO users VALUES (-91111151, 'test', 'free', 'handmade@example.test')",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "explicit-id");
        assert_eq!(count(&db, "SELECT count(*) FROM users").await, 60, "{sql}");
    }
    let id: i64 = via
        .query_one("INSERT INTO users (auth_source, email) VALUES ('oauth', 'new@example.com') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, -91111121, "the sequence's next id");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = -91111121 AND auth_source = 'oauth'").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 61);
    p.stop().await;
}
