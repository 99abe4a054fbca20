//! Seventeenth adversarial pass M5, V1, V2, V4: a write of `users` that changes nothing (a
//! point UPDATE or DELETE of an id no row has), in the same statement as a write to a relation
//! whose rule range-writes `users`, once made the count's check take every change of `users`
//! as judged. In the middle of an extended batch (the rule's relation a temporary table made
//! through blastwall, whose rules the catalog cannot be asked about there), ten real users
//! were deleted, forty overwritten, an id moved into the window; with a DBA's rule added on a
//! direct connection within the 30 s an answer is kept, the same as a plain Query. Data checked
//! directly on the server; the controls show what still runs.

use crate::batches::{pbe, q, sync};
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "id BETWEEN -91111120 AND -91111111";

async fn window(db: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM public.users WHERE {WINDOW}")).await
}

/// The incident's database, with a user who has no subscription yet (1000050); the DML-only
/// role may make temporary tables and write `staging` and `staging_log`.
fn db() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "GRANT TEMPORARY ON DATABASE {db} TO {RAW}; \
             CREATE TABLE public.staging (id bigint); INSERT INTO staging VALUES (1), (2), (3); \
             CREATE TABLE public.staging_log (id bigint); \
             INSERT INTO users (id, auth_source, email) VALUES (1000050, 'telegram', 'new@example.com'); \
             GRANT SELECT, INSERT, DELETE ON staging, staging_log TO {RAW}; ANALYZE staging, users"
        ),
    );
    db
}

/// M5, V1, V2: in the middle of a batch, a temporary table's INSTEAD rule range-deletes the
/// real users, overwrites forty of them, or moves a real user's id into the window, beside a
/// point write of `users` that matches no row (or one). Refused; the server unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_write_beside_users_whose_rules_cannot_be_asked_is_refused() {
    let rules = [
        ("delete the window", format!("DELETE FROM public.users WHERE {WINDOW}")),
        (
            "overwrite forty",
            "UPDATE public.users SET email = 'overwritten' WHERE id BETWEEN 1000001 AND 1000040".into(),
        ),
        ("move an id", "UPDATE public.users SET id = -91111150 WHERE id = 1000050".into()),
    ];
    let covers = [
        "UPDATE users SET plan = plan WHERE id = 0 RETURNING 1",
        "DELETE FROM users WHERE id = 0 RETURNING 1",
        "UPDATE users SET plan = plan WHERE id = 1000039 RETURNING 1",
    ];
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    for (what, rule) in &rules {
        for cover in covers {
            let mut c = startup(px.port(), RAW, &db).await;
            run(&mut c, "CREATE TEMP TABLE st (id bigint); INSERT INTO st VALUES (1)").await;
            run(&mut c, &format!("CREATE RULE r AS ON DELETE TO st DO INSTEAD {rule}")).await;
            let attack = format!("WITH x AS ({cover}) DELETE FROM st WHERE id = 1");
            let r = send(&mut c, &[[pbe("SELECT 1"), pbe(&attack), sync()].concat()]).await;
            assert!(r.errors.contains("unjudged-write"), "{what} / {cover}: {r:?}");
            assert_eq!(window(&db).await, 10, "{what} / {cover}: users deleted: {r:?}");
            let overwritten = count(&db, "SELECT count(*) FROM users WHERE email = 'overwritten'").await;
            assert_eq!(overwritten, 0, "{what} / {cover}: users overwritten: {r:?}");
            assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 1000050").await, 1, "{what} / {cover}: {r:?}");
        }
    }
}

/// V4: blastwall learned `staging`'s rules (none) from an ordinary write; a DBA then adds an
/// INSTEAD rule on a direct connection that deletes the real users. Within the 30 s that answer
/// is kept, a write of `staging` beside a no-row write of `users` is asked about again and
/// refused before it runs (a plain Query), or by its count (in the middle of a batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_added_on_a_direct_connection_beside_a_write_of_users_is_refused() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "DELETE FROM staging WHERE id = 3").await;
    admin_sql(
        pg(),
        &db,
        &format!("CREATE RULE legacy AS ON DELETE TO staging DO INSTEAD DELETE FROM public.users WHERE {WINDOW}"),
    );
    let attack = "WITH x AS (DELETE FROM users WHERE id = 0 RETURNING 1) DELETE FROM staging WHERE id = 2";
    let r = send(&mut c, &[q(attack)]).await;
    assert!(r.errors.contains("unjudged-write") && r.errors.contains("a rule fired by"), "{r:?}");
    assert_eq!(window(&db).await, 10, "users deleted: {r:?}");
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "DELETE FROM staging_log WHERE id = 0").await;
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(attack), sync()].concat()]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(window(&db).await, 10, "users deleted in a batch: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM staging").await, 2);
}

/// Controls: a statement that deletes a test user and logs it runs as a Query, first in its
/// batch (blastwall asks about the log's rules), and in the middle of a batch behind a
/// statement that ran (blastwall asks inside the batch: issue 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_delete_of_a_test_user_runs_where_the_logs_rules_can_be_asked() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let logged = |id: i64| {
        format!("WITH d AS (DELETE FROM users WHERE id = {id} RETURNING id) INSERT INTO staging_log SELECT id FROM d")
    };
    run(&mut c, &logged(-91111105)).await;
    let r = send(&mut c, &[[pbe(&logged(-91111104)), pbe("SELECT 1"), sync()].concat()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(&logged(-91111103)), sync()].concat()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM staging_log").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = -91111103").await, 0);
}

/// Sixteenth pass M4: with `forbid = ["explicit_id"]`, a temporary table's INSTEAD rule on
/// INSERT that inserts users with hand-picked ids in the window, fired in the middle of a
/// batch (where its rules cannot be asked about), is refused by its count — rows inserted
/// into `users` that no INSERT it was judged for made; so is a hand-picked id inserted through
/// a view over `users` whose columns cannot be asked about there. A plain signup in the middle
/// of a batch, and one through the view as a Query, still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_with_hand_picked_ids_are_refused_in_a_batch() {
    let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\nmax_delete_rows = 10\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("ids.toml"), text)]).unwrap();
    let db = db();
    let px = proxy_with(base_config(), policy).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP TABLE st (id bigint)").await;
    let minted =
        "INSERT INTO public.users (id, auth_source) SELECT -g, 'test' FROM generate_series(91111141, 91111160) g";
    run(&mut c, &format!("CREATE RULE r AS ON INSERT TO st DO INSTEAD {minted}")).await;
    let hand_picked = "SELECT count(*) FROM users WHERE id BETWEEN -91111160 AND -91111141";
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe("INSERT INTO st VALUES (1)"), sync()].concat()]).await;
    assert!(r.errors.contains("unjudged-write") && r.errors.contains("20 inserted"), "{r:?}");
    assert_eq!(count(&db, hand_picked).await, 0, "{r:?}");
    let r = send(&mut c, &[q("INSERT INTO st VALUES (1)")]).await;
    assert!(r.errors.contains("a rule fired by INSERT on st"), "{r:?}");
    run(&mut c, "CREATE TEMP VIEW uv AS SELECT * FROM public.users").await;
    let by_hand = "INSERT INTO uv (id, auth_source) VALUES (-91111150, 'test')";
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(by_hand), sync()].concat()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(count(&db, hand_picked).await, 0, "{r:?}");
    let signup =
        |table: &str, email: &str| format!("INSERT INTO {table} (auth_source, email) VALUES ('oauth', '{email}')");
    run(&mut c, &signup("uv", "a@example.com")).await;
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(&signup("users", "b@example.com")), sync()].concat()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email LIKE '_@example.com'").await, 2);
}

/// Sixteenth pass A7d: the database is dropped and made again under the same name on a direct
/// connection while blastwall runs (a staging reset). A temporary table's INSERT rule that
/// deletes the real users, fired by an INSERT that calls a built-in, is refused in the new
/// database as in the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_made_again_under_its_name_is_judged_by_its_own_answers() {
    let spare = db();
    let db = db();
    admin_sql(pg(), "postgres", &format!("ALTER DATABASE {spare} IS_TEMPLATE true"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let attack = |n: u32| {
        [
            format!("CREATE TEMP TABLE s{n} (id bigint)"),
            format!("CREATE RULE r{n} AS ON INSERT TO s{n} DO ALSO DELETE FROM public.users WHERE {WINDOW}"),
            format!("INSERT INTO s{n} SELECT 1 WHERE pg_notify('x', 'y') IS NOT NULL"),
        ]
    };
    let mut c = startup(px.port(), RAW, &db).await;
    let [make, rule, fire] = attack(1);
    run(&mut c, &make).await;
    run(&mut c, &rule).await;
    let r = send(&mut c, &[q(&fire)]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    drop(c);
    admin_sql(pg(), "postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    admin_sql(pg(), "postgres", &format!("CREATE DATABASE {db} TEMPLATE {spare}"));
    let mut c = startup(px.port(), RAW, &db).await;
    // Without a call first: the rule is found by the name of what it writes (the OIDs blastwall
    // knew for `users` are the old database's).
    let [make, rule, fire] = attack(2);
    run(&mut c, &make).await;
    run(&mut c, &rule).await;
    let r = send(&mut c, &[q(&fire.replace(" WHERE pg_notify('x', 'y') IS NOT NULL", ""))]).await;
    assert!(r.errors.contains("a rule fired by INSERT on s2"), "in the database made again: {r:?}");
    let r = send(&mut c, &[q(&fire)]).await;
    assert!(r.errors.contains("unjudged-write"), "in the database made again, with a call: {r:?}");
    assert_eq!(window(&db).await, 10, "users deleted in the database made again: {r:?}");
    // Ordinary writes of the new database's policy tables run (fourteenth pass F3, FPd).
    run(&mut c, "UPDATE users SET plan = 'pro' WHERE id = -91111105").await;
    run(&mut c, "DELETE FROM users WHERE id = -91111104").await;
    run(&mut c, "DELETE FROM chat_sessions WHERE user_id = -91111103").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id BETWEEN -91111110 AND -91111101").await, 9);
    admin_sql(pg(), "postgres", &format!("ALTER DATABASE {spare} IS_TEMPLATE false"));
}

/// Sixteenth pass A7d's second half: on a blastwall that never asked about this database's
/// policy tables, a call of a built-in (`pg_notify`) was taken for a user's function and
/// switched the count's check off; a rule made in the same message (which no catalog answer
/// can show before it runs) then deleted the real users. Asked now: refused by the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_in_call_does_not_switch_the_count_off_before_the_database_was_asked_about() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(
        &mut c,
        &[q(&format!(
            "CREATE TEMP TABLE s5 (id bigint); \
             CREATE RULE r5 AS ON INSERT TO s5 DO ALSO DELETE FROM public.users WHERE {WINDOW}; \
             INSERT INTO s5 SELECT 1 WHERE pg_notify('x', 'y') IS NOT NULL"
        ))],
    )
    .await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(window(&db).await, 10, "users deleted: {r:?}");
}

/// Fifteenth pass N5, its UPDATE form: a DBA's rule on `users` itself (`ON UPDATE … DO ALSO
/// DELETE FROM users WHERE id BETWEEN …`), fired by a point UPDATE of a test user. An UPDATE
/// explains deleted rows only where a row may move to another partition (a partitioned
/// table), which `users` is not: refused by its count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_users_that_deletes_users_is_refused_when_an_update_fires_it() {
    let db = db();
    admin_sql(pg(), &db, &format!("CREATE RULE purge AS ON UPDATE TO users DO ALSO DELETE FROM users WHERE {WINDOW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(&mut c, &[q("UPDATE users SET plan = 'pro' WHERE id = -91111105")]).await;
    assert!(r.errors.contains("unjudged-write") && r.errors.contains("10 deleted"), "{r:?}");
    assert_eq!(window(&db).await, 10, "users deleted: {r:?}");
}

/// Eighteenth pass E2: with `forbid = ["explicit_id"]`, a signup INSERT of `users` in a WITH,
/// in the middle of a batch, beside a temporary table whose INSTEAD rule inserts hand-picked
/// ids: refused — before it runs, since the INSERT into a policy table has the catalog asked
/// inside the batch, which shows the rule (or, where it cannot be asked, by the count: the
/// signup does not explain the rule's rows). Only the ordinary signup, alone, runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_beside_a_rule_that_inserts_hand_picked_ids_is_refused_in_a_batch() {
    let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\nmax_delete_rows = 10\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("ids.toml"), text)]).unwrap();
    let db = db();
    let px = proxy_with(base_config(), policy).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP TABLE st2 (id bigint); INSERT INTO st2 VALUES (1), (2)").await;
    run(
        &mut c,
        "CREATE RULE r2 AS ON DELETE TO st2 DO INSTEAD INSERT INTO public.users (id, auth_source, email) \
         VALUES (-91111131, 'oauth', 'hand'), (-91111132, 'oauth', 'hand')",
    )
    .await;
    let attack = "WITH s AS (INSERT INTO users (auth_source, email) VALUES ('oauth', 'cover') RETURNING id) \
                  DELETE FROM st2 WHERE id = 1";
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(attack), sync()].concat()]).await;
    assert!(r.errors.contains("unjudged-write") && r.errors.contains("public.users"), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email IN ('hand', 'cover')").await, 0, "{r:?}");
    // Nineteenth pass FPq: an ordinary signup with its subscription, in the middle of a batch,
    // inserts no more rows into users than its VALUES list: it runs.
    let signup = "WITH u AS (INSERT INTO users (auth_source, email) VALUES ('oauth', 'signup') RETURNING id) \
                  INSERT INTO subscriptions (user_id, plan) SELECT id, 'free' FROM u";
    let r = send(&mut c, &[[pbe("SELECT 1"), pbe(signup), sync()].concat()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'signup'").await, 1);
}

/// Eighteenth pass T1: the DML-only role's temporary table named `users` (it hides
/// `public.users` on the session's path) with an INSTEAD rule into `public.users`, then a
/// point write of `users` in the middle of a pipeline, where the name cannot be resolved nor
/// its rules asked about: refused by the count (the rows cannot be told from the rule's); the
/// server unchanged. A session whose DDL named no policy table writes `users` as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_table_named_like_a_policy_table_cannot_cover_its_rule_in_a_batch() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let rules = [
        ("DELETE", format!("DELETE FROM public.users WHERE {WINDOW}"), "DELETE FROM users WHERE id = 0"),
        (
            "UPDATE",
            "UPDATE public.users SET email = 'overwritten' WHERE id BETWEEN 1000001 AND 1000040".into(),
            "UPDATE users SET plan = plan WHERE id = 0",
        ),
    ];
    for (event, rule, write) in rules {
        let mut c = startup(px.port(), RAW, &db).await;
        run(&mut c, "CREATE TEMP TABLE users (id bigint, auth_source text, plan text, email text)").await;
        run(&mut c, "INSERT INTO pg_temp.users (id) VALUES (0)").await;
        run(&mut c, &format!("CREATE RULE r AS ON {event} TO users DO INSTEAD {rule}")).await;
        let r = send(&mut c, &[[pbe("SELECT 1"), pbe(write), sync()].concat()]).await;
        assert!(r.errors.contains("unjudged-write"), "{event}: {r:?}");
        assert_eq!(window(&db).await, 10, "{event}: users deleted: {r:?}");
        assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'overwritten'").await, 0, "{event}: {r:?}");
    }
    // A session whose DDL named no policy table (a temporary table of another name:
    // nineteenth pass FPp) still writes `users` in the middle of a batch. One that also holds a
    // temporary function does not (any of its statements may run it: `tests/it/own_code.rs`),
    // until the function is gone.
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP TABLE scratch (id bigint)").await;
    let pipeline = |id: i64| [pbe("SELECT 1"), pbe(&format!("DELETE FROM users WHERE id = {id}")), sync()].concat();
    let r = send(&mut c, &[pipeline(-91111105)]).await;
    assert!(r.codes.is_empty(), "a session with a temporary table of another name: {r:?}");
    run(&mut c, "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'").await;
    let r = send(&mut c, &[pipeline(-91111106)]).await;
    assert!(r.errors.contains("temporary schema holds code"), "with a temporary function: {r:?}");
    run(&mut c, "DROP FUNCTION pg_temp.f()").await;
    let r = send(&mut c, &[pipeline(-91111106)]).await;
    assert!(r.codes.is_empty(), "the function dropped: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id IN (-91111105, -91111106)").await, 0);
}

/// Eighteenth pass E5: with `forbid = ["explicit_id"]`, a temporary view over `users` whose
/// own default for `id` calls the sequence but returns a hand-picked id
/// (`0 * nextval(…) - 91111135`): an INSERT through it that leaves `id` out is refused as an
/// explicit id. A view default that is the table's own (`-nextval(…)`) still mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_default_that_calls_the_sequence_but_picks_the_id_is_an_explicit_id() {
    let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\nmax_delete_rows = 10\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("ids.toml"), text)]).unwrap();
    let db = db();
    let px = proxy_with(base_config(), policy).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let signup = |view: &str| format!("INSERT INTO {view} (auth_source, email) VALUES ('oauth', 'through {view}')");
    for (view, default, runs) in [
        ("uv1", "0 * nextval('public.web_user_id_seq') - 91111135", false),
        ("uv2", "-(nextval('public.web_user_id_seq') - 25)", false),
        ("uv3", "-nextval('web_user_id_seq'::regclass)", true),
    ] {
        run(&mut c, &format!("CREATE TEMP VIEW {view} AS SELECT * FROM public.users")).await;
        run(&mut c, &format!("ALTER VIEW {view} ALTER COLUMN id SET DEFAULT {default}")).await;
        let r = send(&mut c, &[q(&signup(view))]).await;
        match runs {
            true => assert!(r.codes.is_empty(), "{view}: {r:?}"),
            false => assert!(r.errors.contains("explicit-id"), "{view}: {r:?}"),
        }
        let n = count(&db, &format!("SELECT count(*) FROM users WHERE email = 'through {view}'")).await;
        assert_eq!(n, i64::from(runs), "{view}: {r:?}");
    }
}

/// Nineteenth pass FPt: a temporary sequence called like the protected one changes how the
/// default of `users.id` reads on the session (`nextval('public.web_user_id_seq'…)`), not what
/// it is: made through blastwall, it runs, and a signup still takes its id from the real
/// sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_sequence_named_like_the_protected_one_is_no_change_of_its_default() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(&mut c, &[q("CREATE TEMP SEQUENCE web_user_id_seq START 5")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let r = send(&mut c, &[q("INSERT INTO users (auth_source, email) VALUES ('oauth', 'fpt@x')")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    let id = count(&db, "SELECT id FROM users WHERE email = 'fpt@x'").await;
    assert_eq!(id, -91111121, "minted by the real sequence");
    assert_eq!(count(&db, "SELECT last_value FROM public.web_user_id_seq").await, 91111121);
    px.stop().await;
}

/// Twentieth pass FPv: a temporary type or domain called `text` changes how `text` prints on
/// the session (`pg_catalog.text`), not any column: made through blastwall, each runs, and the
/// session's point writes of `users` run after it (before, blastwall's own catalog questions
/// named `text` unqualified and failed, and every later statement was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_type_called_text_changes_nothing_blastwall_reads() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    for make in ["CREATE DOMAIN pg_temp.text AS pg_catalog.text", "CREATE TYPE pg_temp.text AS (a int)"] {
        let mut c = startup(px.port(), RAW, &db).await;
        let r = send(&mut c, &[q(make)]).await;
        assert!(r.codes.is_empty(), "{make}: {r:?}");
        for (id, plan) in [(1000001, "pro"), (1000002, "team")] {
            let r = send(&mut c, &[q(&format!("UPDATE users SET plan = '{plan}' WHERE id = {id}"))]).await;
            assert!(r.codes.is_empty(), "{make}: {r:?}");
        }
        let r = send(&mut c, &[q("DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111")]).await;
        assert!(r.errors.contains("blastwall: refused"), "{make}: {r:?}");
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM users WHERE (id, plan) IN ((1000001, 'pro'), (1000002, 'team'))").await,
        2
    );
    assert_eq!(window(&db).await, 10);
    px.stop().await;
}
