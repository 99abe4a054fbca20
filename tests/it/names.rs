//! Names resolved as the server will (issue 13): in a database where the policy protects
//! `public.users` and an `archive.users` (a copy) is not protected, a write whose name the
//! session's `search_path` (or a temporary table) leads to `archive.users` is judged as a write
//! to `archive.users` — allowed, and the rows change as the statement says — and the same
//! statement is refused whenever the path leads back to `public.users`. Renamed tables and
//! columns keep every rule, across a blastwall restart; `ON CONFLICT ON CONSTRAINT` is judged
//! by the constraint's columns; a view over `users` gets its rules under the view's column
//! names. Every count is read directly on the server.

use crate::harness::*;
use tokio_postgres::Client;

/// 20 rows in the incident's window (10 test users, 10 real ones): a range on a protected
/// column of `public.users`, refused by `protected-range` there.
const RANGE_DELETE: &str = "DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100";

/// The incident database with `archive.users`, a copy of `users` that no policy protects.
pub(crate) async fn archive_db() -> String {
    let db = incident_db();
    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "CREATE SCHEMA archive; CREATE TABLE archive.users (LIKE public.users INCLUDING ALL); \
         INSERT INTO archive.users SELECT * FROM public.users",
    )
    .await
    .unwrap();
    db
}

/// Rows of `public.users` and `archive.users`, read on the server directly.
pub(crate) async fn counts(db: &str) -> (i64, i64) {
    let c = direct("app", APP_PW, db).await;
    let row = c
        .query_one("SELECT (SELECT count(*) FROM public.users), (SELECT count(*) FROM archive.users)", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Sends one Query message; the error's text when it failed.
pub(crate) async fn send(c: &Client, sql: &str) -> Result<(), String> {
    c.batch_execute(sql).await.map_err(|e| match e.as_db_error() {
        Some(d) => format!("{} | {}", d.message(), d.detail().unwrap_or("")),
        None => e.to_string(),
    })
}

pub(crate) async fn refused(c: &Client, sql: &str) -> String {
    let e = send(c, sql).await.expect_err(sql);
    assert!(e.contains("blastwall: refused"), "{sql}: {e}");
    e
}

async fn connect_with(port: u16, db: &str, options: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("{} options='{options}'", conninfo(port, "app", APP_PW, db)),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_set_in_its_own_message_leads_where_the_server_goes() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Before: the path is public's, the range is refused.
    let e = refused(&c, RANGE_DELETE).await;
    assert!(e.contains("public.users"), "{e}");
    send(&c, "SET search_path = archive, public").await.unwrap();
    send(&c, RANGE_DELETE).await.unwrap();
    assert_eq!(counts(&db).await, (60, 40));
    // RESET leads back to public.users.
    send(&c, "RESET search_path").await.unwrap();
    refused(&c, RANGE_DELETE).await;
    // set_config, both ways.
    send(&c, "SELECT set_config('search_path', 'archive, public', false)").await.unwrap();
    send(&c, "UPDATE users SET plan = 'moved' WHERE id BETWEEN 1000001 AND 1000040").await.unwrap();
    send(&c, "SELECT pg_catalog.set_config('search_path', 'public', false)").await.unwrap();
    refused(&c, "UPDATE users SET plan = 'moved' WHERE id BETWEEN 1000001 AND 1000040").await;
    // SET LOCAL lasts until the transaction ends; a SET rolled back is undone.
    send(&c, "BEGIN").await.unwrap();
    send(&c, "SET LOCAL search_path = archive").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000005").await.unwrap();
    send(&c, "COMMIT").await.unwrap();
    refused(&c, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000010").await;
    send(&c, "BEGIN").await.unwrap();
    send(&c, "SET search_path = archive").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN 1000006 AND 1000008").await.unwrap();
    send(&c, "ROLLBACK").await.unwrap();
    refused(&c, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000010").await;
    // The same opened and set in one message.
    send(&c, "BEGIN; SET LOCAL search_path = archive").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN 1000006 AND 1000008").await.unwrap();
    send(&c, "ROLLBACK").await.unwrap();
    refused(&c, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000010").await;
    // DISCARD ALL resets the path too.
    send(&c, "SET search_path = archive").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN 1000009 AND 1000010").await.unwrap();
    send(&c, "DISCARD ALL").await.unwrap();
    refused(&c, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000020").await;
    // Direct check: archive lost 20 + 5 + 2 rows, public none, and the archive UPDATE ran.
    assert_eq!(counts(&db).await, (60, 33));
    let d = direct("app", APP_PW, &db).await;
    let moved: i64 = d.query_one("SELECT count(*) FROM archive.users WHERE plan = 'moved'", &[]).await.unwrap().get(0);
    let public_moved: i64 =
        d.query_one("SELECT count(*) FROM public.users WHERE plan = 'moved'", &[]).await.unwrap().get(0);
    assert_eq!((moved, public_moved), (33, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_options_path_is_the_sessions_path() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect_with(proxy.port(), &db, "-c search_path=archive").await;
    send(&c, RANGE_DELETE).await.unwrap();
    assert_eq!(counts(&db).await, (60, 40));
    let back = connect_with(proxy.port(), &db, "-c search_path=public,archive").await;
    refused(&back, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000040").await;
    // A schema dropped on the server directly, not through blastwall: the name leads back to
    // public.users at once (an answer that led elsewhere is never reused).
    let c2 = connect_with(proxy.port(), &db, "-c search_path=archive,public").await;
    send(&c2, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000002").await.unwrap();
    direct("app", APP_PW, &db).await.batch_execute("DROP TABLE archive.users").await.unwrap();
    refused(&c2, "DELETE FROM users WHERE id BETWEEN 1000001 AND 1000040").await;
    refused(&c2, "TRUNCATE users").await;
    let d = direct("app", APP_PW, &db).await;
    let left: i64 = d.query_one("SELECT count(*) FROM public.users", &[]).await.unwrap().get(0);
    assert_eq!(left, 60);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_or_a_table_made_earlier_in_the_same_message_fails_closed_and_says_why() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // A path set by a constant set_config earlier in the same message is followed as a SET
    // is: its value split as the server splits it (unquoted names folded).
    send(&c, "SELECT set_config('search_path', ' ARCHIVE ,public', true); DELETE FROM users WHERE id < -91111115")
        .await
        .unwrap();
    assert_eq!(counts(&db).await, (60, 55));
    let e = refused(
        &c,
        "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false); \
         DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100",
    )
    .await;
    assert!(e.contains("public.users") && e.contains("protected-range"), "{e}");
    // A vertical tab is no whitespace to the server (rt38 H1): `archive\v` is a schema of its
    // own, which does not exist, and the name leads to public.users (a call of a function
    // outside pg_catalog after the write would leave the count without its check).
    let e = refused(
        &c,
        "SELECT set_config('search_path', E'archive\\x0b, public', false); \
         DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111; \
         SELECT information_schema._pg_char_max_length(25, 10)",
    )
    .await;
    assert!(e.contains("public.users") && e.contains("protected-range"), "{e}");
    assert_eq!(counts(&db).await, (60, 55));
    // Not a constant list (computed, a second call beside it, a quote left open): not followed.
    for sql in [
        "SELECT set_config('search_path', 'arch' || 'ive', false); DELETE FROM users WHERE id < 0",
        "SELECT set_config('search_path', 'archive', false), now(); DELETE FROM users WHERE id < 0",
        "SELECT set_config('search_path', '\"archive', false); DELETE FROM users WHERE id < 0",
    ] {
        let e = refused(&c, sql).await;
        assert!(e.contains("could not be resolved before the message runs"), "{sql}: {e}");
    }
    assert_eq!(counts(&db).await, (60, 55));
    let e = refused(
        &c,
        "CREATE TEMP TABLE users (id bigint, email text); INSERT INTO users VALUES (-91111150, 'x'); \
         DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100",
    )
    .await;
    assert!(e.contains("CREATE TEMP TABLE users"), "{e}");
    assert_eq!(counts(&db).await, (60, 55));
    // The same in messages of their own: the temporary table shadows public.users.
    send(&c, "CREATE TEMP TABLE users (id bigint, email text)").await.unwrap();
    send(&c, "INSERT INTO users VALUES (-91111150, 'x'), (-91111151, 'y')").await.unwrap();
    send(&c, RANGE_DELETE).await.unwrap();
    send(&c, "TRUNCATE users").await.unwrap();
    assert_eq!(counts(&db).await, (60, 55));
    // Dropped: the name leads back to public.users.
    send(&c, "DROP TABLE users").await.unwrap();
    refused(&c, RANGE_DELETE).await;
    refused(&c, "TRUNCATE users").await;
    assert_eq!(counts(&db).await, (60, 55));
    proxy.stop().await;
}

/// A proxy with the incident policy that keeps its identities in `file`.
async fn proxy_keeping(file: &std::path::Path) -> Proxy {
    let mut cfg = base_config();
    cfg.identities_file = Some(file.to_path_buf());
    proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_table_and_column_keep_every_rule_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("identities.jsonl");
    let db = incident_db();
    let proxy = proxy_keeping(&file).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Any write teaches blastwall the policy tables' identities.
    send(&c, "DELETE FROM users WHERE id = 0").await.unwrap();
    // Renamed on the server directly (the policy forbids it through blastwall).
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute("ALTER TABLE users RENAME TO members").await.unwrap();
    let rules = |col: &str| {
        [
            ("TRUNCATE members".to_string(), "forbid-truncate"),
            ("DROP TABLE members".to_string(), "forbid-drop"),
            (format!("DELETE FROM members WHERE {col} BETWEEN -91111200 AND -91111195"), "protected-range"),
            ("ALTER TABLE members DROP COLUMN email".to_string(), "forbid-alter-drop-column"),
            ("DELETE FROM members".to_string(), "require-where"),
        ]
    };
    for (sql, rule) in rules("id") {
        let e = refused(&c, &sql).await;
        assert!(e.contains(rule) && e.contains("public.users"), "{sql}: {e}");
    }
    proxy.stop().await;
    // While no blastwall runs, its id column is renamed too; a new blastwall, same file.
    d.batch_execute("ALTER TABLE members RENAME id TO uid").await.unwrap();
    let proxy = proxy_keeping(&file).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for (sql, rule) in rules("uid") {
        let e = refused(&c, &sql).await;
        assert!(e.contains(rule) && e.contains("public.users"), "after a restart, {sql}: {e}");
    }
    let left: i64 = d.query_one("SELECT count(*) FROM members", &[]).await.unwrap().get(0);
    assert_eq!(left, 60);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_conflict_on_constraint_is_judged_by_the_constraints_columns() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)").await.unwrap();
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // SQLAlchemy's on_conflict_do_update(constraint='users_email_key'): email is not protected.
    send(
        &c,
        "INSERT INTO users (id, email, plan) VALUES (5, 'user1@example.com', 'upserted') \
         ON CONFLICT ON CONSTRAINT users_email_key DO UPDATE SET plan = excluded.plan",
    )
    .await
    .unwrap();
    let plan: String =
        d.query_one("SELECT plan FROM users WHERE email = 'user1@example.com'", &[]).await.unwrap().get(0);
    assert_eq!(plan, "upserted");
    // On the primary key (id, protected): refused, nothing changed.
    let e = refused(
        &c,
        "INSERT INTO users (id, plan) VALUES (1000001, 'over') ON CONFLICT ON CONSTRAINT users_pkey DO UPDATE SET plan = excluded.plan",
    )
    .await;
    assert!(e.contains("upsert-overwrite") && e.contains("protected column id"), "{e}");
    let plan: String = d.query_one("SELECT plan FROM users WHERE id = 1000001", &[]).await.unwrap().get(0);
    assert_ne!(plan, "over");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_a_policy_table_gets_its_rules_under_the_views_names() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute("CREATE VIEW user_directory AS SELECT id AS uid, email, plan FROM users").await.unwrap();
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Five users at most, well under every row limit: only the text rule refuses it.
    let e = refused(&c, "UPDATE user_directory SET plan = 'x' WHERE uid BETWEEN -91111105 AND -91111101").await;
    assert!(e.contains("protected-range") && e.contains("uid") && e.contains("public.users"), "{e}");
    let e = refused(&c, "DELETE FROM user_directory").await;
    assert!(e.contains("require-where"), "{e}");
    // A point on the view's name of id is fine, and changes what it says.
    send(&c, "UPDATE user_directory SET plan = 'x' WHERE uid = -91111105").await.unwrap();
    let x: i64 = d.query_one("SELECT count(*) FROM users WHERE plan = 'x'", &[]).await.unwrap().get(0);
    assert_eq!(x, 1);
    // Moving an id, or overwriting by id, under the view's name of the column (red team).
    let e = refused(&c, "UPDATE user_directory SET uid = -91111199 WHERE uid = -91111105").await;
    assert!(e.contains("protected-assign") && e.contains("uid"), "{e}");
    let e =
        refused(&c, "INSERT INTO user_directory (uid) VALUES (-91111105) ON CONFLICT (uid) DO UPDATE SET plan = 'y'")
            .await;
    assert!(e.contains("upsert-overwrite"), "{e}");
    let moved: i64 =
        d.query_one("SELECT count(*) FROM users WHERE id = -91111199 OR plan = 'y'", &[]).await.unwrap().get(0);
    assert_eq!(moved, 0, "an id was moved or a row overwritten through the view");
    proxy.stop().await;
}

#[test]
fn blastwall_check_says_when_a_verdict_rests_on_an_unqualified_name() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cleanup.sql");
    std::fs::write(
        &script,
        "DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;\n\
         DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100;\n",
    )
    .unwrap();
    let guard = blastwall::guard::Guard::new(blastwall::demo::incident_policy().unwrap(), None);
    let opts = blastwall::check::Options { user: "app".into(), ..Default::default() };
    let out = blastwall::check::run(&guard, &[script], &opts).unwrap();
    let messages: Vec<&str> = out.reports.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("read offline by name: the unqualified users as public.users"), "{messages:?}");
    assert!(!messages[1].contains("offline"), "{messages:?}");
}

/// A statement prepared with the protocol (Parse) is resolved again by the server whenever it
/// runs, under the path the session has then: prepared while the path leads `users` to
/// `archive.users`, executed after the path led back to `public.users`, it would delete real
/// users (red team). It is judged by what its name leads to when prepared, counted, and where
/// the name leads is read again around each run (`precheck::named`): the run under the other
/// path is refused. `public.users` is read on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_is_judged_as_every_table_its_name_may_reach() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&c, "SET search_path = archive, public").await.unwrap();
    let prepared = c.prepare(RANGE_DELETE).await.expect("prepared under the archive path");
    send(&c, "SET search_path = public").await.unwrap();
    let e = c.execute(&prepared, &[]).await.expect_err("run under the public path");
    let e = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(counts(&db).await.0, 60, "public.users lost rows");
    // The same text as a Query, now: refused as before.
    refused(&c, RANGE_DELETE).await;
    // As a Query under the archive path it is judged as what it reaches now, and runs.
    send(&c, "SET search_path = archive, public").await.unwrap();
    send(&c, RANGE_DELETE).await.unwrap();
    assert_eq!(counts(&db).await.0, 60, "public.users lost rows");
    proxy.stop().await;
}

/// The fourth example: `SET search_path TO archive; DELETE FROM users WHERE id < 0` in
/// one message is judged against the path the SET installs — allowed, and `archive.users`
/// loses its rows — while a SET that leads the name to `public.users` (listed first, or after
/// schemas that do not exist or hold no `users`) is refused. A temporary table comes first
/// unless the path lists `pg_temp`. Every count is read on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_set_earlier_in_the_same_message_is_followed() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let negative = "SELECT count(*) FROM archive.users WHERE id < 0";
    let d = direct("app", APP_PW, &db).await;
    let before: i64 = d.query_one(negative, &[]).await.unwrap().get(0);
    assert!(before > 0);
    send(&c, "SET search_path TO archive; DELETE FROM users WHERE id < 0").await.unwrap();
    let after: i64 = d.query_one(negative, &[]).await.unwrap().get(0);
    assert_eq!((after, counts(&db).await.0), (0, 60), "archive.users lost its test rows, public.users none");
    for sql in [
        "SET search_path TO public; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100",
        "SET search_path TO nosuch, \"$user\", public, archive; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100",
        "SET LOCAL search_path = public; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100",
    ] {
        refused(&c, sql).await;
    }
    // A temporary table shadows both, unless the path lists pg_temp after public.
    send(&c, "CREATE TEMP TABLE users (id bigint)").await.unwrap();
    send(&c, "INSERT INTO users VALUES (-91111150)").await.unwrap();
    send(&c, "SET search_path TO archive, public; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100")
        .await
        .unwrap();
    refused(&c, "SET search_path TO public, pg_temp; DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100").await;
    assert_eq!(counts(&db).await.0, 60, "public.users lost rows");
    proxy.stop().await;
}

/// The rows of `users` as (id, plan), read on the server directly.
async fn users_rows(d: &Client) -> Vec<(i64, String)> {
    d.query("SELECT id, plan FROM users ORDER BY id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// `rows` with `id`'s plan set to `plan` (and `gone` removed): what a statement that does
/// exactly what it says leaves.
fn expect(rows: &[(i64, String)], id: i64, plan: &str, gone: Option<i64>) -> Vec<(i64, String)> {
    rows.iter()
        .filter(|(i, _)| Some(*i) != gone)
        .map(|(i, p)| (*i, if *i == id { plan.to_string() } else { p.clone() }))
        .collect()
}

/// A view over a view over a view of `users`, each renaming `id` (`v3(u3)` over `v2(uid2)`
/// over `v1(uid)` over `users(id)`): a write through any level gets every text rule of
/// `public.users` under that level's name of `id`; point writes change exactly their row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_over_views_get_the_tables_rules_under_each_levels_names() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE VIEW v1 AS SELECT id AS uid, email, plan FROM users; \
         CREATE VIEW v2 AS SELECT uid AS uid2, email AS mail, plan FROM v1; \
         CREATE VIEW v3 AS SELECT uid2 AS u3, plan FROM v2 WHERE mail IS NOT NULL OR mail IS NULL",
    )
    .await
    .unwrap();
    let before = users_rows(&d).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Five users at most, under every row limit: only the text rules refuse these.
    for (sql, rule, col) in [
        ("UPDATE v2 SET plan = 'x' WHERE uid2 BETWEEN -91111105 AND -91111101", "protected-range", "uid2"),
        ("DELETE FROM v3 WHERE u3 BETWEEN -91111105 AND -91111101", "protected-range", "u3"),
        ("DELETE FROM v3 WHERE u3 > -91111103 AND u3 < 0", "protected-range", "u3"),
        ("UPDATE v3 SET u3 = -91111199 WHERE u3 = -91111105", "protected-assign", "u3"),
        ("UPDATE v2 SET uid2 = uid2 - 1000 WHERE uid2 = -91111105", "protected-assign", "uid2"),
        (
            "INSERT INTO v2 (uid2, plan) VALUES (-91111105, 'y') ON CONFLICT (uid2) DO UPDATE SET plan = 'y'",
            "upsert-overwrite",
            "uid2",
        ),
        ("DELETE FROM v3", "require-where", ""),
        ("UPDATE v2 SET plan = 'x' WHERE true", "require-where", ""),
    ] {
        let e = refused(&c, sql).await;
        assert!(e.contains(rule) && e.contains(col) && e.contains("public.users"), "{sql}: {e}");
    }
    assert_eq!(users_rows(&d).await, before, "a refused write through the views changed users");
    // Point writes through each level do exactly what they say.
    send(&c, "UPDATE v3 SET plan = 'via-v3' WHERE u3 = -91111105").await.unwrap();
    let after = expect(&before, -91111105, "via-v3", None);
    assert_eq!(users_rows(&d).await, after);
    send(&c, "DELETE FROM v2 WHERE uid2 = -91111104").await.unwrap();
    assert_eq!(users_rows(&d).await, expect(&after, 0, "", Some(-91111104)));
    proxy.stop().await;
}

/// A view over an inheritance parent (or a partitioned parent) of `users` reaches the rows of
/// `users`: a write to the parent, or through a view (over a view) of it, gets the rules of
/// `public.users` under the view's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_of_a_policy_table_and_views_over_it_get_its_rules() {
    let proxy = proxy().await;
    for (parent, make) in [
        ("people", "CREATE TABLE people (LIKE users); ALTER TABLE users INHERIT people"),
        (
            "all_users",
            "CREATE TABLE all_users (LIKE users) PARTITION BY RANGE (id); \
             ALTER TABLE all_users ATTACH PARTITION users FOR VALUES FROM (MINVALUE) TO (MAXVALUE)",
        ),
    ] {
        let db = incident_db();
        let d = direct("app", APP_PW, &db).await;
        d.batch_execute(make).await.unwrap();
        d.batch_execute(&format!(
            "CREATE VIEW pv AS SELECT id AS pid, plan FROM {parent}; CREATE VIEW pv2 AS SELECT pid AS person, plan FROM pv"
        ))
        .await
        .unwrap();
        let before = users_rows(&d).await;
        let c = connect(proxy.port(), "app", APP_PW, &db).await;
        for (sql, rule, col) in [
            (format!("DELETE FROM {parent} WHERE id BETWEEN -91111105 AND -91111101"), "protected-range", "id"),
            (
                "UPDATE pv2 SET plan = 'x' WHERE person BETWEEN -91111105 AND -91111101".into(),
                "protected-range",
                "person",
            ),
            ("DELETE FROM pv WHERE pid < -91111119".into(), "protected-range", "pid"),
            ("UPDATE pv2 SET person = 1 WHERE person = -91111105".into(), "protected-assign", "person"),
            ("DELETE FROM pv2".into(), "require-where", ""),
        ] {
            let e = refused(&c, &sql).await;
            assert!(e.contains(rule) && e.contains(col) && e.contains("public.users"), "{parent}: {sql}: {e}");
        }
        assert_eq!(users_rows(&d).await, before, "{parent}: a refused write changed users");
        send(&c, "UPDATE pv2 SET plan = 'via-parent' WHERE person = -91111105").await.unwrap();
        let after = expect(&before, -91111105, "via-parent", None);
        assert_eq!(users_rows(&d).await, after, "{parent}");
        send(&c, &format!("DELETE FROM {parent} WHERE id = -91111104")).await.unwrap();
        assert_eq!(users_rows(&d).await, expect(&after, 0, "", Some(-91111104)), "{parent}");
    }
    proxy.stop().await;
}

/// A view on the way with an INSTEAD OF trigger or a rule takes the write over: it goes
/// wherever the trigger's body says, so the chain cannot be followed to `users`' columns. Such
/// a write is refused, saying which view; a kind of write no trigger or rule takes over still
/// goes through the views and is judged as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_whose_trigger_or_rule_takes_the_write_over_is_refused() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE VIEW tv AS SELECT id AS uid, plan FROM users; \
         CREATE FUNCTION tv_delete() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN DELETE FROM users WHERE id <= OLD.uid; RETURN OLD; END $$; \
         CREATE TRIGGER tv_delete INSTEAD OF DELETE ON tv FOR EACH ROW EXECUTE FUNCTION tv_delete(); \
         CREATE VIEW tv2 AS SELECT uid AS u2, plan FROM tv; \
         CREATE VIEW rv AS SELECT id AS rid, plan FROM users; \
         CREATE RULE rv_update AS ON UPDATE TO rv DO INSTEAD UPDATE users SET plan = NEW.plan WHERE id >= OLD.rid",
    )
    .await
    .unwrap();
    let before = users_rows(&d).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for (sql, view) in [
        ("DELETE FROM tv2 WHERE u2 = -91111111", "public.tv"),
        ("DELETE FROM tv WHERE uid = -91111111", "public.tv"),
        ("UPDATE rv SET plan = 'r' WHERE rid = 1000001", "public.rv"),
    ] {
        let e = refused(&c, sql).await;
        assert!(e.contains("opaque") && e.contains(view) && e.contains("INSTEAD OF"), "{sql}: {e}");
    }
    assert_eq!(users_rows(&d).await, before, "a write taken over by a trigger or rule changed users");
    // No trigger takes an UPDATE of tv2 over: it goes through to users, and is judged so.
    refused(&c, "UPDATE tv2 SET plan = 'x' WHERE u2 < 0").await;
    send(&c, "UPDATE tv2 SET plan = 'through' WHERE u2 = -91111105").await.unwrap();
    assert_eq!(users_rows(&d).await, expect(&before, -91111105, "through", None));
    proxy.stop().await;
}

/// The other ways a session's path (or what it finds first) changes or vanishes, each followed
/// both ways: `SET SCHEMA`, `ROLLBACK TO SAVEPOINT` of a `SET`, `RESET ALL`, the role's own
/// schema (`"$user"`, first on the default path) and its table dropped on the server, a
/// per-role-and-database default (`ALTER ROLE … IN DATABASE … SET search_path`), and `DISCARD
/// TEMP` of a shadowing temporary table. `public.users` is read on the server after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_way_the_path_changes_is_followed() {
    let proxy = proxy().await;
    let db = archive_db().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Each change is made after a refusal (an answer that led to public.users, kept), so a
    // change blastwall did not follow would refuse the next statement again.
    refused(&c, RANGE_DELETE).await;
    send(&c, "SET SCHEMA 'archive'").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111116").await.unwrap();
    assert_eq!(counts(&db).await, (60, 55));
    // A SET undone by ROLLBACK TO SAVEPOINT: back to archive.
    for sql in ["BEGIN", "SAVEPOINT s", "SET search_path = public"] {
        send(&c, sql).await.unwrap();
    }
    refused(&c, RANGE_DELETE).await;
    send(&c, "ROLLBACK TO SAVEPOINT s").await.unwrap();
    send(&c, "DELETE FROM users WHERE id BETWEEN -91111115 AND -91111111").await.unwrap();
    send(&c, "COMMIT").await.unwrap();
    assert_eq!(counts(&db).await, (60, 50));
    send(&c, "SET search_path = archive").await.unwrap();
    send(&c, "RESET ALL").await.unwrap();
    refused(&c, RANGE_DELETE).await;
    // "$user": a schema named after the role comes first on the default path.
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE SCHEMA app; CREATE TABLE app.users (LIKE public.users INCLUDING ALL); \
         INSERT INTO app.users SELECT * FROM public.users",
    )
    .await
    .unwrap();
    let own = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&own, RANGE_DELETE).await.unwrap();
    let app_left: i64 = d.query_one("SELECT count(*) FROM app.users", &[]).await.unwrap().get(0);
    assert_eq!(app_left, 40);
    d.batch_execute("DROP TABLE app.users").await.unwrap();
    refused(&own, RANGE_DELETE).await;
    // A default of the role in this database, for its next sessions.
    d.batch_execute(&format!("ALTER ROLE app IN DATABASE \"{db}\" SET search_path = archive")).await.unwrap();
    let defaulted = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&defaulted, "DELETE FROM users WHERE id BETWEEN -91111110 AND -91111101").await.unwrap();
    assert_eq!(counts(&db).await, (60, 40));
    d.batch_execute(&format!("ALTER ROLE app IN DATABASE \"{db}\" RESET search_path")).await.unwrap();
    let back = connect(proxy.port(), "app", APP_PW, &db).await;
    refused(&back, RANGE_DELETE).await;
    // A temporary table that shadows, then DISCARD TEMP.
    send(&back, "CREATE TEMP TABLE users (id bigint)").await.unwrap();
    send(&back, "INSERT INTO users VALUES (-91111150)").await.unwrap();
    send(&back, RANGE_DELETE).await.unwrap();
    send(&back, "DISCARD TEMP").await.unwrap();
    refused(&back, RANGE_DELETE).await;
    assert_eq!(counts(&db).await, (60, 40), "public.users lost rows");
    proxy.stop().await;
}

/// A write to an inheritance child of a policy table changes rows of that table (a scan of
/// `users` returns them): it gets the table's rules, directly and through a view of the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_a_policy_table_gets_its_rules() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE users_child () INHERITS (users); \
         INSERT INTO users_child (id, auth_source, plan) SELECT g, 'test', 'free' FROM generate_series(-91111305, -91111301) g; \
         CREATE VIEW child_v AS SELECT id AS cid, plan FROM users_child",
    )
    .await
    .unwrap();
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for (sql, rule) in [
        ("DELETE FROM users_child WHERE id BETWEEN -91111305 AND -91111301", "protected-range"),
        ("UPDATE child_v SET plan = 'x' WHERE cid < 0", "protected-range"),
        ("DELETE FROM users_child", "require-where"),
        ("TRUNCATE users_child", "forbid-truncate"),
    ] {
        let e = refused(&c, sql).await;
        assert!(e.contains(rule) && e.contains("public.users"), "{sql}: {e}");
    }
    let before = child_rows(&d).await;
    assert_eq!(before.len(), 5);
    send(&c, "UPDATE child_v SET plan = 'kid' WHERE cid = -91111303").await.unwrap();
    send(&c, "DELETE FROM users_child WHERE id = -91111301").await.unwrap();
    let want = expect(&before, -91111303, "kid", Some(-91111301));
    assert_eq!(child_rows(&d).await, want);
    assert_eq!(counts_public(&d).await, 60 + 4);
    proxy.stop().await;
}

async fn child_rows(d: &Client) -> Vec<(i64, String)> {
    d.query("SELECT id, plan FROM users_child ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn counts_public(d: &Client) -> i64 {
    d.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0)
}
