//! Thirteenth adversarial pass: writes that change a policy table the judgement did not reach
//! (`guard::reached`, rule `unjudged-write`). H1: a name led to `public.users` by DDL in a
//! function's body, run by another session between the write's judgement and its run. H2: a
//! rule of a table outside the policy that writes into `users`. Data checked directly on the
//! server; the controls show what still runs.

use crate::batches::q;
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const WINDOW: &str = "id BETWEEN -91111120 AND -91111111";

async fn window(db: &str, table: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM {table} WHERE {WINDOW}")).await
}

/// The incident's database with `archive.users`, a copy of `users` the DML-only role may
/// write (with a trigger on INSERT, which a DELETE does not run: fifteenth pass N8), and
/// `public.mv()`, whose body renames it away.
fn archive_db() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive; GRANT USAGE ON SCHEMA archive TO {RAW}; \
             CREATE TABLE archive.users AS SELECT * FROM public.users; \
             GRANT SELECT, DELETE ON archive.users TO {RAW}; \
             CREATE FUNCTION public.mv() RETURNS void LANGUAGE sql \
               AS $$ ALTER TABLE archive.users RENAME TO users_old $$; \
             CREATE FUNCTION archive.stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; \
             CREATE TRIGGER stamp BEFORE INSERT ON archive.users FOR EACH ROW EXECUTE FUNCTION archive.stamp();"
        ),
    );
    db
}

/// H1: judged as `archive.users`, the range DELETE runs behind a slow statement; meanwhile a
/// DBA's `SELECT mv()` renames the archive away, and the server runs the DELETE on
/// `public.users`. Its counts show rows of a protected table it was not judged for: refused,
/// rolled back.
/// Fourteenth pass F4: a call of a built-in that is not on the well-known list
/// (`txid_current()`) no longer switches that check off (no function of the database has its
/// name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_led_elsewhere_by_a_functions_ddl_is_refused_by_its_counts() {
    for extra in ["", " AND txid_current() > 0"] {
        let db = archive_db();
        let px = proxy_with(base_config(), shipped_policy()).await;
        let mut c = startup(px.port(), RAW, &db).await;
        run(&mut c, "SET search_path = archive, public").await;
        run(&mut c, "SELECT count(*) FROM users").await;
        c.write_all(&q(&format!("SELECT pg_sleep(1.5); DELETE FROM users WHERE {WINDOW}{extra}"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let dba = connect(px.port(), "postgres", SUPERUSER_PW, &db).await;
        dba.batch_execute("SELECT public.mv()").await.expect("the function runs");
        let r = replies(&mut c).await;
        assert!(r.errors.contains("blastwall: refused") && r.errors.contains("unjudged-write"), "{extra}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{extra}: real users were deleted: {r:?}");
        assert_eq!(window(&db, "archive.users_old").await, 10, "{extra}: the archive is untouched: {r:?}");
    }
}

/// The same DELETE with the archive in place runs on it, judged and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delete_on_the_archive_runs() {
    let db = archive_db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = archive, public").await;
    run(&mut c, &format!("DELETE FROM users WHERE {WINDOW}")).await;
    assert_eq!(window(&db, "archive.users").await, 0);
    assert_eq!(window(&db, "public.users").await, 10);
}

/// A table outside the policy, the DML-only role's, with the test window's ids.
fn staging_db(rule: &str) -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.staging (id bigint); INSERT INTO staging SELECT id FROM users WHERE {WINDOW}; \
             CREATE TABLE public.staging_log (id bigint); \
             GRANT SELECT, INSERT, DELETE ON staging, staging_log TO {RAW}; {rule}; ANALYZE staging, users"
        ),
    );
    db
}

/// H2: a rule of `staging` deletes the users it names: 10 users, within the limit, but
/// `protected-range` was never applied to them. Refused, rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_writing_into_a_protected_table_is_refused() {
    for (rule, what) in [
        ("CREATE RULE purge AS ON DELETE TO staging DO ALSO DELETE FROM users WHERE id = OLD.id", "DO ALSO"),
        ("CREATE RULE purge AS ON DELETE TO staging DO INSTEAD DELETE FROM users WHERE id = OLD.id", "DO INSTEAD"),
        (
            "CREATE RULE purge AS ON INSERT TO staging DO INSTEAD UPDATE users SET email = 'x' || NEW.id WHERE id = NEW.id",
            "ON INSERT",
        ),
    ] {
        let db = staging_db(rule);
        let px = proxy_with(base_config(), shipped_policy()).await;
        let mut c = startup(px.port(), RAW, &db).await;
        let sql = match what {
            "ON INSERT" => format!("INSERT INTO staging SELECT id FROM users WHERE {WINDOW}"),
            _ => "DELETE FROM staging WHERE id < 0".to_string(),
        };
        let r = send(&mut c, &[q(&sql)]).await;
        assert!(r.errors.contains("unjudged-write"), "{what}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{what}: users were deleted: {r:?}");
        let changed = count(&db, &format!("SELECT count(*) FROM users WHERE {WINDOW} AND email LIKE 'x%'")).await;
        assert_eq!(changed, 0, "{what}: users were updated: {r:?}");
        assert_eq!(count(&db, "SELECT count(*) FROM staging").await, 10, "{what}: rolled back: {r:?}");
    }
}

/// A policy that protects `users`' ids and has no row limit at all: the rule's write is still
/// counted (a write to a relation with rules may write a table with text rules) and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_into_a_protected_table_is_counted_without_any_limit() {
    let only_columns = blastwall::policy::file::compile(&[
        (std::path::Path::new("policies/default.toml"), blastwall::policy::file::DEFAULT_POLICY),
        (std::path::Path::new("p.toml"), "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\n"),
    ])
    .unwrap();
    for (rule, sql) in [
        (
            "CREATE RULE purge AS ON DELETE TO staging DO ALSO DELETE FROM users WHERE id = OLD.id",
            "DELETE FROM staging WHERE id < 0",
        ),
        (
            "CREATE RULE purge AS ON INSERT TO staging_log DO ALSO DELETE FROM users WHERE id = NEW.id",
            "INSERT INTO staging_log SELECT id FROM staging",
        ),
    ] {
        let db = staging_db(rule);
        let px = proxy_with(base_config(), only_columns.clone()).await;
        let mut c = startup(px.port(), RAW, &db).await;
        let r = send(&mut c, &[q(sql)]).await;
        assert!(r.errors.contains("unjudged-write"), "{sql}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{sql}: users were deleted: {r:?}");
    }
}

/// A rule that writes a table outside the policy: the write runs, as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_writing_elsewhere_runs() {
    let db = staging_db("CREATE RULE keep AS ON DELETE TO staging DO ALSO INSERT INTO staging_log VALUES (OLD.id)");
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "DELETE FROM staging WHERE id < 0").await;
    assert_eq!(count(&db, "SELECT count(*) FROM staging").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM staging_log").await, 10);
    assert_eq!(window(&db, "public.users").await, 10);
}

/// L1: `set_config('role', …)` to a role that may not read the protected sequence runs, as
/// `SET ROLE` does (the sequence's position, unreadable after, did not move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_of_the_role_runs_like_set_role() {
    let db = crate::binds::setup();
    let r = format!("weak_{db}");
    admin_sql(pg(), &db, &format!("CREATE ROLE {r} NOLOGIN; GRANT {r} TO {RAW}; GRANT USAGE ON SCHEMA public TO {r}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, &format!("SELECT set_config('role', '{r}', false)")).await;
    run(&mut c, "RESET ROLE").await;
    run(&mut c, &format!("SET ROLE {r}")).await;
}

/// Fourteenth pass F1, F1b, F2, F5, F7, F9: the DML-only role makes a temporary table whose
/// rule range-deletes real users, then fires it in forms that once switched the count's check
/// off — a built-in domain column, a disabled trigger, row security with no policy, a call of
/// a harmless built-in, a point write to `users` beside it, a pipeline, `EXECUTE`, a temporary
/// table made earlier in the message. Each is refused before it runs (the rule reaches a
/// protected table); the users are checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_tables_rule_into_users_is_refused_in_every_form() {
    use crate::batches::{pbe, sync};
    let rule = format!("DO ALSO DELETE FROM public.users WHERE {WINDOW}");
    let cases: Vec<(&str, String, Vec<Vec<u8>>)> = vec![
        ("domain", "CREATE TEMP TABLE st (id bigint, n information_schema.cardinal_number)".into(), vec![q("DELETE FROM st WHERE id = 1")]),
        (
            "disabled trigger",
            "CREATE TEMP TABLE st (id bigint); CREATE FUNCTION pg_temp.t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; \
             CREATE TRIGGER t BEFORE INSERT ON st FOR EACH ROW EXECUTE FUNCTION pg_temp.t(); ALTER TABLE st DISABLE TRIGGER t"
                .into(),
            vec![q("DELETE FROM st WHERE id = 1")],
        ),
        ("row security", "CREATE TEMP TABLE st (id bigint); ALTER TABLE st ENABLE ROW LEVEL SECURITY".into(), vec![q("DELETE FROM st WHERE id = 1")]),
        ("built-in call", "CREATE TEMP TABLE st (id bigint)".into(), vec![q("DELETE FROM st WHERE id = 1 AND txid_current() > 0")]),
        (
            "point write beside it",
            "CREATE TEMP TABLE st (id bigint)".into(),
            vec![q("WITH x AS (UPDATE users SET plan = plan WHERE id = 1000001 RETURNING 1) DELETE FROM st WHERE id = 1")],
        ),
        ("pipeline", "CREATE TEMP TABLE st (id bigint)".into(), vec![[pbe("SELECT 1"), pbe("DELETE FROM st WHERE id = 1"), sync()].concat()]),
        (
            "pipeline with a built-in call",
            "CREATE TEMP TABLE st (id bigint)".into(),
            vec![[pbe("SELECT 1"), pbe("DELETE FROM st WHERE id = 1 AND txid_current() > 0"), sync()].concat()],
        ),
        ("execute", "CREATE TEMP TABLE st (id bigint)".into(), vec![q("PREPARE d AS DELETE FROM st WHERE id = $1"), q("EXECUTE d(1)")]),
        ("temporary table first", "CREATE TEMP TABLE st (id bigint)".into(), vec![q("CREATE TEMP TABLE zz (a int); DELETE FROM st WHERE id = 1")]),
    ];
    let db = crate::binds::setup();
    admin_sql(pg(), &db, &format!("GRANT TEMPORARY ON DATABASE {db} TO {RAW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    for (what, setup, attack) in cases {
        let mut c = startup(px.port(), RAW, &db).await;
        run(&mut c, &setup).await;
        run(&mut c, "INSERT INTO st (id) VALUES (1)").await;
        run(&mut c, &format!("CREATE RULE r AS ON DELETE TO st {rule}")).await;
        let mut last = None;
        for m in attack {
            last = Some(send(&mut c, &[m]).await);
        }
        let r = last.unwrap();
        assert!(r.errors.contains("unjudged-write"), "{what}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{what}: users were deleted: {r:?}");
    }
}

/// Fifteenth pass N2–N4: a rule reached through a foreign key's cascade (a DBA's legacy rule
/// on `team_members`), through another rule (a chain), or through a view a rule writes, that
/// deletes real users. Each refused before it runs; the users checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reached_through_keys_chains_and_views_are_refused() {
    let purge = format!("DO ALSO DELETE FROM public.users WHERE {WINDOW}");
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "GRANT TEMPORARY ON DATABASE {db} TO {RAW}; \
             CREATE TABLE teams (id int PRIMARY KEY); CREATE TABLE team_members (id int, team_id int REFERENCES teams ON DELETE CASCADE); \
             INSERT INTO teams VALUES (1); INSERT INTO team_members VALUES (1, 1); \
             CREATE RULE purge AS ON DELETE TO team_members {purge}; \
             CREATE TABLE chain_a (id int); CREATE TABLE chain_b (id int); INSERT INTO chain_a VALUES (1); INSERT INTO chain_b VALUES (1); \
             CREATE RULE next AS ON DELETE TO chain_a DO ALSO DELETE FROM chain_b WHERE id = OLD.id; \
             CREATE RULE purge AS ON DELETE TO chain_b {purge}; \
             GRANT SELECT, DELETE ON teams, team_members, chain_a, chain_b TO {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP VIEW v AS SELECT * FROM public.users").await;
    run(&mut c, "CREATE TEMP TABLE st (id bigint); INSERT INTO st VALUES (1)").await;
    run(&mut c, &format!("CREATE RULE r AS ON DELETE TO st DO ALSO DELETE FROM v WHERE {WINDOW}")).await;
    for sql in ["DELETE FROM teams WHERE id = 1", "DELETE FROM chain_a WHERE id = 1", "DELETE FROM st WHERE id = 1"] {
        let r = send(&mut c, &[q(sql)]).await;
        assert!(r.errors.contains("unjudged-write") && r.errors.contains("a rule fired by"), "{sql}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{sql}: users were deleted: {r:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM teams").await, 1);
}

/// Fifteenth pass FP2: a disabled rule into `users`, or one enabled for replication only
/// (which fires only under `session_replication_role = replica`, a superuser's setting), fires
/// nothing; the write runs. Enabled always, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_rule_into_users_leaves_its_table_writable() {
    for (how, runs) in
        [("DISABLE RULE purge", true), ("ENABLE REPLICA RULE purge", true), ("ENABLE ALWAYS RULE purge", false)]
    {
        let db = staging_db(&format!(
            "CREATE RULE purge AS ON DELETE TO staging DO ALSO DELETE FROM users WHERE {WINDOW}; \
             ALTER TABLE staging {how}"
        ));
        let px = proxy_with(base_config(), shipped_policy()).await;
        let mut c = startup(px.port(), RAW, &db).await;
        let r = send(&mut c, &[q("DELETE FROM staging WHERE id < 0")]).await;
        assert_eq!(r.codes.is_empty(), runs, "{how}: {r:?}");
        assert_eq!(count(&db, "SELECT count(*) FROM staging").await, if runs { 0 } else { 10 }, "{how}");
        assert_eq!(window(&db, "public.users").await, 10, "{how}");
        px.stop().await;
    }
}

/// Sixteenth pass FPb: a logging rule on `subscriptions` (on UPDATE and INSERT) that reads
/// `users` is not fired by a write to `users` — an INSERT fires no key's action, a DELETE's
/// cascade deletes subscriptions (no rule on DELETE), and an UPDATE of a column no key
/// references acts on nothing with `ON UPDATE` actions. Signup, point UPDATE and point DELETE
/// of a test user run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logging_rule_on_a_referencing_table_leaves_users_writable() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE subs_log (id bigint); GRANT INSERT ON subs_log TO {RAW}; \
             CREATE RULE log_u AS ON UPDATE TO subscriptions DO ALSO INSERT INTO subs_log SELECT id FROM users WHERE id = NEW.user_id; \
             CREATE RULE log_i AS ON INSERT TO subscriptions DO ALSO INSERT INTO subs_log SELECT id FROM users WHERE id = NEW.user_id"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "INSERT INTO users (auth_source, plan, email) VALUES ('oauth', 'free', 'new@example.com')").await;
    run(&mut c, "UPDATE users SET plan = 'pro' WHERE id = -91111105").await;
    run(&mut c, "DELETE FROM users WHERE id = -91111105").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'new@example.com'").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = -91111105").await, 0);
}
