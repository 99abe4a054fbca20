//! Red-team pass 11's identity findings, each tried as an attacker (or an ordinary user) would
//! and checked on the server directly: a foreign table elsewhere named like a policy table
//! (L1: writes to the policy table were refused by the name), views over a foreign table made
//! on a direct connection (a permanent view, a view over it, a table whose rule writes one, a
//! partitioned table with a foreign partition: each a write that runs on the remote server,
//! here the same database through a loopback `postgres_fdw` server); foreign keys' actions into
//! a protected column judged by the relation written and the columns the action sets; and a
//! policy table dropped, created again and renamed on a direct connection.

use crate::harness::*;

/// The incident's database with `postgres_fdw` and a loopback server that connects back to it
/// as `app` (DML-only on the foreign table `far_users` over `users`), and `more` run after as
/// `app` (on a direct connection, as the setup of every test here).
pub(crate) fn fdw_db(more: &str) -> String {
    let db = incident_db();
    let port = pg().server.port;
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE EXTENSION postgres_fdw; \
             CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '{port}', dbname '{db}'); \
             CREATE USER MAPPING FOR app SERVER loop OPTIONS (user 'app', password '{APP_PW}'); \
             CREATE FOREIGN TABLE public.far_users (id bigint, auth_source text, plan text, email text) \
               SERVER loop OPTIONS (schema_name 'public', table_name 'users'); \
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.far_users TO app; \
             GRANT USAGE ON FOREIGN SERVER loop TO app; SET ROLE app; {more}"
        ),
    );
    db
}

async fn users_with(db: &str, cond: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM public.users WHERE {cond}")).await
}

/// L1: `remote.users`, a foreign table over `public.users` in a schema not on the path, no
/// longer makes point writes to `public.users` refused: the name is resolved as the server
/// will resolve it, and only a write that reaches the foreign table is refused — under a path
/// that leads `users` there (set before, or in the same message), or naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_table_elsewhere_does_not_refuse_writes_to_the_policy_table() {
    let db = fdw_db(
        "CREATE SCHEMA remote; \
         CREATE FOREIGN TABLE remote.users (id bigint, auth_source text, plan text, email text) \
           SERVER loop OPTIONS (schema_name 'public', table_name 'users');",
    );
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    c.simple_query("DELETE FROM users WHERE id = 1000001").await.unwrap();
    assert_eq!(users_with(&db, "id = 1000001").await, 0);
    c.simple_query("UPDATE users SET plan = 'gold' WHERE id = 1000003").await.unwrap();
    assert_eq!(users_with(&db, "id = 1000003 AND plan = 'gold'").await, 1);
    // Led to the foreign table: by the path set before, in the same message, or by its name.
    c.simple_query("SET search_path = remote, public").await.unwrap();
    for (sql, id) in [
        ("DELETE FROM users WHERE id = 1000002", 1000002),
        ("UPDATE users SET plan = 'gold' WHERE id = 1000004", 1000004),
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains("users reaches a foreign table"), "{sql}: {m}");
        assert_eq!(users_with(&db, &format!("id = {id} AND plan <> 'gold'")).await, 1, "{sql}");
    }
    c.simple_query("RESET search_path").await.unwrap();
    for sql in [
        "SET search_path = remote, public; DELETE FROM users WHERE id = 1000002",
        "DELETE FROM remote.users WHERE id = 1000002",
        "DELETE FROM far_users WHERE id = 1000002",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        refused_by(&e, "unverifiable");
        assert_eq!(users_with(&db, "id = 1000002").await, 1, "{sql}");
    }
    // The same session's path is the default again: the policy table's point write runs.
    c.simple_query("DELETE FROM users WHERE id = 1000002").await.unwrap();
    assert_eq!(users_with(&db, "id = 1000002").await, 0);
    proxy.stop().await;
}

/// The relations a write to which reaches `far_users`, made on a direct connection before
/// blastwall started: a permanent view over it, a view over that view, a table whose rule
/// deletes from it, a partitioned table with a foreign partition over `users`. Each write
/// through blastwall by `app` is refused (it would run in the loopback server's backend,
/// counted nowhere: every user deleted); so is a temporary view over the view; reading runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_relations_over_a_foreign_table_made_directly_are_refused() {
    let db = fdw_db(
        "CREATE VIEW far_v AS SELECT * FROM far_users; \
         CREATE VIEW far_vv AS SELECT id, auth_source, plan FROM far_v; \
         CREATE TABLE ruled (id bigint); INSERT INTO ruled VALUES (1); \
         CREATE RULE ruled_del AS ON DELETE TO ruled DO ALSO DELETE FROM far_users WHERE auth_source <> 'x'; \
         CREATE TABLE parts (id bigint, auth_source text, plan text, email text) PARTITION BY RANGE (id); \
         CREATE FOREIGN TABLE parts_far PARTITION OF parts FOR VALUES FROM (MINVALUE) TO (MAXVALUE) \
           SERVER loop OPTIONS (schema_name 'public', table_name 'users');",
    );
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    let before = snapshot(&owner).await;
    let proxy = proxy().await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    for (sql, via) in [
        ("DELETE FROM far_v WHERE auth_source <> 'x'", "far_v"),
        ("DELETE FROM far_vv WHERE auth_source <> 'x'", "far_vv"),
        ("UPDATE far_vv SET plan = 'gold' WHERE auth_source <> 'x'", "far_vv"),
        ("DELETE FROM ruled WHERE id = 1", "ruled"),
        ("DELETE FROM parts WHERE auth_source <> 'x'", "parts"),
        ("CREATE TEMP VIEW tv AS SELECT * FROM far_vv", "CREATE"),
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains(via), "{sql}: {m}");
        assert_eq!(snapshot(&owner).await, before, "{sql}: {m}");
    }
    c.simple_query("SELECT count(*) FROM far_vv").await.unwrap();
    c.simple_query("SELECT count(*) FROM parts").await.unwrap();
    proxy.stop().await;
}

/// Where the name cannot be resolved before the message runs, it fails closed: a view over the
/// foreign table renamed earlier in the same message to a name nothing reaches yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_ddl_earlier_in_the_message_may_redirect_is_refused_while_a_foreign_table_exists() {
    let db = fdw_db("CREATE VIEW far_v AS SELECT * FROM far_users");
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    let before = snapshot(&owner).await;
    // A policy without protected columns: no rule of a policy table refuses the write (with
    // one, a write after DDL that names it is refused as a possible view over it).
    let text = "[[table]]\nname = \"public.subscriptions\"\nmax_delete_rows = 10\n";
    let policy = blastwall::policy::file::compile(&[
        (std::path::Path::new("policies/default.toml"), blastwall::policy::file::DEFAULT_POLICY),
        (std::path::Path::new("subscriptions.toml"), text),
    ])
    .unwrap();
    let proxy = proxy_with(base_config(), policy).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    // Resolved first (nothing is called so): the answer must not be trusted past the DDL.
    let e = c.simple_query("DELETE FROM innocent WHERE auth_source <> 'x'").await.expect_err("no such relation");
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE), "{e}");
    let sql = "ALTER VIEW far_v RENAME TO innocent; DELETE FROM innocent WHERE auth_source <> 'x'";
    let e = c.simple_query(sql).await.expect_err(sql);
    let m = refused_by(&e, "unverifiable");
    assert!(m.contains("innocent may name another relation"), "{m}");
    assert_eq!(snapshot(&owner).await, before);
    assert_eq!(count(&db, "SELECT count(*) FROM pg_class WHERE relname = 'far_v'").await, 1);
    proxy.stop().await;
}

/// A view over the foreign table made on a direct connection while blastwall runs is caught by
/// the next write through blastwall once the catalog's answers are dropped: at once with
/// `[ddl_notify]` (the event triggers' notification), here; within 30 seconds without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_over_a_foreign_table_made_directly_meanwhile_is_refused_once_notified() {
    let db = fdw_db("");
    // Learns the database's answers (the foreign table, nothing over it) and starts listening.
    let (proxy, c) = notified_proxy(&db, "DELETE FROM users WHERE id = 1000001").await;
    let owner = direct("postgres", SUPERUSER_PW, &db).await;
    let maker = direct("app", APP_PW, &db).await;
    ddl_seen(&proxy, &maker, "CREATE VIEW late_v AS SELECT * FROM far_users").await;
    let before = snapshot(&owner).await;
    let e = c.simple_query("DELETE FROM late_v WHERE auth_source <> 'x'").await.expect_err("through the view");
    let m = refused_by(&e, "unverifiable");
    assert!(m.contains("late_v reaches a foreign table"), "{m}");
    assert_eq!(snapshot(&owner).await, before);
    proxy.stop().await;
}

/// A policy whose only table is `public.members`, its column `uid` protected.
fn members_policy() -> blastwall::policy::Policy {
    let text = "[[table]]\nname = \"public.members\"\nprotected_columns = [\"uid\"]\n";
    blastwall::policy::file::compile(&[
        (std::path::Path::new("policies/default.toml"), blastwall::policy::file::DEFAULT_POLICY),
        (std::path::Path::new("members.toml"), text),
    ])
    .unwrap()
}

/// README open item: a foreign key's action into a protected column is judged by the relation
/// the write resolves to (by OID), not every relation of that name: `archive.accounts`, whose
/// deletion sets `members.uid` to NULL, does not make a DELETE of `public.accounts` refused;
/// and an `ON DELETE SET NULL (org)` sets only the columns it lists (`members.uid` stays), while
/// one that sets the whole key (`uid` with it) is refused. Rows read on the server directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_actions_into_a_protected_column_are_judged_by_identity() {
    let db = fresh_db("fkid");
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE SCHEMA archive; \
         CREATE TABLE public.accounts (id bigint PRIMARY KEY); CREATE TABLE archive.accounts (id bigint PRIMARY KEY); \
         CREATE TABLE pairs (org bigint, uid bigint, PRIMARY KEY (org, uid)); \
         CREATE TABLE pairs2 (org bigint, uid bigint, PRIMARY KEY (org, uid)); \
         CREATE TABLE members (org bigint, uid bigint REFERENCES archive.accounts ON DELETE SET NULL, \
           FOREIGN KEY (org, uid) REFERENCES pairs ON DELETE SET NULL (org), \
           FOREIGN KEY (org, uid) REFERENCES pairs2 ON DELETE SET NULL); \
         INSERT INTO public.accounts VALUES (1), (2); INSERT INTO archive.accounts VALUES (1), (2); \
         INSERT INTO pairs VALUES (10, 1), (10, 2); INSERT INTO pairs2 VALUES (10, 1), (10, 2); \
         INSERT INTO members VALUES (10, 1), (10, 2);",
    );
    let proxy = proxy_with(base_config(), members_policy()).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    let members = || count(&db, "SELECT count(*) FROM members WHERE uid IS NOT NULL");
    c.simple_query("DELETE FROM accounts WHERE id = 1").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM public.accounts").await, 1);
    for sql in [
        "DELETE FROM archive.accounts WHERE id = 1",
        "SET search_path = archive, public; DELETE FROM accounts WHERE id = 1",
        "DELETE FROM pairs2 WHERE org = 10 AND uid = 1",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        let m = refused_by(&e, "protected-assign");
        assert!(m.contains("sets protected column uid of public.members"), "{sql}: {m}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM archive.accounts").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM pairs2").await, 2);
    assert_eq!(members().await, 2);
    // Only `org` is set to NULL: the protected column stays.
    c.simple_query("DELETE FROM pairs WHERE org = 10 AND uid = 1").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM members WHERE org IS NULL AND uid = 1").await, 1);
    assert_eq!(members().await, 2);
    proxy.stop().await;
}

/// The proxy with `[ddl_notify]` (as the superuser) and the incident's policy, once listening
/// on `db` (after `first`, a statement through it by `app`, which also learns its answers).
async fn notified_proxy(db: &str, first: &str) -> (Proxy, tokio_postgres::Client) {
    admin_sql(pg(), db, &blastwall::contract::state::init_script("blastwall", &["app".into()]));
    std::env::set_var("BLASTWALL_TEST_LISTENER_PASSWORD", SUPERUSER_PW);
    let mut cfg = base_config();
    let password_env = Some("BLASTWALL_TEST_LISTENER_PASSWORD".into());
    cfg.ddl_notify = Some(blastwall::config::DdlNotifyConfig { user: "postgres".into(), password_env });
    let proxy = proxy_with(cfg, blastwall::demo::incident_policy().unwrap()).await;
    let c = connect(proxy.port(), "app", APP_PW, db).await;
    c.simple_query(first).await.unwrap();
    let listening = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = 'blastwall DDL listener' AND query <> '' AND state = 'idle'"
    );
    let t = std::time::Instant::now();
    while count(db, &listening).await != 1 {
        assert!(t.elapsed().as_secs() < 10, "blastwall never listened on {db}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (proxy, c)
}

/// Runs `ddl` on `direct` and waits until blastwall was told (its catalog's generation moved).
async fn ddl_seen(proxy: &Proxy, direct: &tokio_postgres::Client, ddl: &str) {
    let generation = proxy.shared.guard.catalog.generation();
    direct.batch_execute(ddl).await.unwrap_or_else(|e| panic!("{ddl}: {e:?}"));
    let t = std::time::Instant::now();
    while proxy.shared.guard.catalog.generation() == generation {
        assert!(t.elapsed().as_secs() < 2, "not notified: {ddl}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// README open item: a policy table dropped and created again on a direct connection, and
/// renamed after blastwall has seen the new one under the policy's name, keeps every rule
/// (before, the OID first seen, of the dropped table, was all blastwall remembered: the
/// renamed table was judged by its new name, with no rules, and a range of ids was deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_table_dropped_created_again_and_renamed_keeps_its_rules() {
    let db = incident_db();
    let (proxy, c) = notified_proxy(&db, "DELETE FROM users WHERE id = 1000001").await;
    let direct = direct("app", APP_PW, &db).await;
    ddl_seen(
        &proxy,
        &direct,
        "CREATE TABLE users_new (LIKE users INCLUDING ALL); INSERT INTO users_new SELECT * FROM users; \
         DROP TABLE users CASCADE; ALTER TABLE users_new RENAME TO users",
    )
    .await;
    // Seen under the policy's name by a write through blastwall.
    c.simple_query("DELETE FROM users WHERE id = 1000002").await.unwrap();
    ddl_seen(&proxy, &direct, "ALTER TABLE users RENAME TO members").await;
    let sql = "DELETE FROM members WHERE id BETWEEN -91111200 AND -91111100";
    let e = c.simple_query(sql).await.expect_err(sql);
    refused_by(&e, "protected-range");
    assert_eq!(count(&db, "SELECT count(*) FROM members WHERE id BETWEEN -91111200 AND -91111100").await, 20);
    proxy.stop().await;
}
