//! Fifth adversarial pass F1 without user code: a write to a table without limits whose foreign
//! keys' `ON UPDATE`/`ON DELETE` actions (`CASCADE`, `SET NULL`, `SET DEFAULT`), directly or
//! through other tables, change rows of a limited table is counted like a write to that table;
//! a write to an unrelated table is still relayed without a pre-check. Data checked on the
//! server directly.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

/// How many pre-checks this proxy ran.
fn checks(p: &Proxy) -> u64 {
    p.shared.metrics.precheck_seconds.get_sample_count()
}

/// Every test proxy counts every write under `BLASTWALL_TEST_COUNT_ALL=1`.
fn counting_all() -> bool {
    std::env::var("BLASTWALL_TEST_COUNT_ALL").is_ok_and(|v| v == "1")
}

fn row_limit(r: Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>) -> String {
    refused_by(&r.expect_err("refused"), "row-limit")
}

/// The incident's schema with a lookup table of plans that users' `plan` references with
/// `ON UPDATE CASCADE` (an ordinary DBA's schema), every user on `free`, and a chain
/// `brands` → `tiers` → `users.tier`: each key is its table's and references the next.
async fn plans_db() -> (String, tokio_postgres::Client) {
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE plans (name text PRIMARY KEY); INSERT INTO plans VALUES ('free'), ('premium'), ('basic'); \
         UPDATE users SET plan = 'free'; UPDATE users SET plan = 'basic' WHERE id > 0 AND id <= 1000040 AND id % 2 = 0; \
         ALTER TABLE users ADD FOREIGN KEY (plan) REFERENCES plans (name) ON UPDATE CASCADE; \
         CREATE TABLE brands (name text PRIMARY KEY); INSERT INTO brands VALUES ('gold'); \
         CREATE TABLE tiers (name text PRIMARY KEY REFERENCES brands (name) ON UPDATE CASCADE); INSERT INTO tiers VALUES ('gold'); \
         ALTER TABLE users ADD tier text DEFAULT 'gold' REFERENCES tiers (name) ON UPDATE CASCADE; \
         CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders VALUES (1, 'new'), (2, 'new')",
    )
    .await
    .unwrap();
    (db, d)
}

async fn n(d: &tokio_postgres::Client, sql: &str) -> i64 {
    d.query_one(sql, &[]).await.unwrap().get(0)
}

/// The red team's repro: `UPDATE plans SET name = …` changed all 60 users against
/// users.max_update_rows = 50 while the direct UPDATE of users was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_update_cascade_into_a_limited_table_is_counted() {
    let (db, d) = plans_db().await;
    assert_eq!(n(&d, "SELECT count(*) FROM users WHERE plan = 'free'").await, 40);
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // The direct form, and the lookup table's: both refused by what they change in users.
    row_limit(via.simple_query("UPDATE users SET plan = 'premium' WHERE auth_source <> 'x'").await);
    d.batch_execute("UPDATE users SET plan = 'free'").await.unwrap();
    let m = row_limit(via.simple_query("UPDATE plans SET name = 'gratis' WHERE name = 'free'").await);
    assert!(m.contains("60 updated in public.users"), "{m}");
    // Transitively: brands → tiers → users.
    let m = row_limit(via.simple_query("UPDATE brands SET name = 'platinum' WHERE name = 'gold'").await);
    assert!(m.contains("60 updated in public.users"), "{m}");
    // An upsert's overwrite and a MERGE fire the same actions.
    row_limit(
        via.simple_query("INSERT INTO plans VALUES ('free') ON CONFLICT (name) DO UPDATE SET name = 'gratis'").await,
    );
    row_limit(
        via.simple_query(
            "MERGE INTO plans USING (SELECT 'free' AS n) s ON plans.name = s.n WHEN MATCHED THEN UPDATE SET name = 'gratis'",
        )
        .await,
    );
    // TRUNCATE … CASCADE of the lookup table is verified like DDL.
    via.simple_query("TRUNCATE plans CASCADE").await.expect_err("refused");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'free' AND tier = 'gold'").await, 60);
    assert_eq!(count(&db, "SELECT count(*) FROM plans WHERE name = 'free'").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM brands WHERE name = 'gold'").await, 1);

    // Within the limit: counted, allowed, and the cascade's rows changed.
    d.batch_execute("UPDATE users SET plan = 'basic' WHERE id BETWEEN 1000001 AND 1000030").await.unwrap();
    let before = checks(&p);
    via.simple_query("UPDATE plans SET name = 'starter' WHERE name = 'basic'").await.unwrap();
    assert_eq!(checks(&p), before + 1, "the cascade was counted");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'starter'").await, 30);
    assert_eq!(count(&db, "SELECT count(*) FROM plans WHERE name = 'basic'").await, 0);

    // An unrelated table: relayed without a pre-check.
    let before = checks(&p);
    via.simple_query("UPDATE orders SET status = 'paid' WHERE id = 1").await.unwrap();
    via.simple_query("UPDATE orders SET status = 'paid' WHERE status = 'new'").await.unwrap();
    if !counting_all() {
        assert_eq!(checks(&p), before, "a write to a table no action leads from was not counted");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM orders WHERE status = 'paid'").await, 2);
    p.stop().await;
}

/// Under a policy that limits updates only (so DELETEs are not all counted), a DELETE of a
/// lookup row whose keys `SET NULL` or `SET DEFAULT` in a limited table, or whose `CASCADE`
/// deletes rows whose keys do, is counted by the updates it makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delete_actions_that_update_a_limited_table_are_counted() {
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE regions (code text PRIMARY KEY); INSERT INTO regions VALUES ('eu'), ('us'), ('none'); \
         CREATE TABLE zones (code text PRIMARY KEY, region text REFERENCES regions (code) ON DELETE CASCADE); \
         INSERT INTO zones VALUES ('eu-1', 'eu'), ('us-1', 'us'); \
         ALTER TABLE users ADD region text DEFAULT 'none' REFERENCES regions (code) ON DELETE SET DEFAULT, \
           ADD zone text REFERENCES zones (code) ON DELETE SET NULL; \
         UPDATE users SET region = 'eu', zone = 'eu-1'; UPDATE users SET region = 'us', zone = 'us-1' WHERE id BETWEEN 1000001 AND 1000020; \
         CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes SELECT generate_series(1, 100)",
    )
    .await
    .unwrap();
    let policy = "[[table]]\nname = \"public.users\"\nmax_update_rows = 30\n";
    let p = proxy_with(base_config(), compile(&[(Path::new("updates.toml"), policy)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // SET DEFAULT on 40 users, and SET NULL on the same 40 through the zone it cascades to.
    let m = row_limit(via.simple_query("DELETE FROM regions WHERE code = 'eu'").await);
    assert!(m.contains("80 updated in public.users"), "{m}");
    // SET NULL on 40 users.
    row_limit(via.simple_query("DELETE FROM zones WHERE code = 'eu-1'").await);
    // CASCADE into zones, whose SET NULL reaches users.
    d.batch_execute("UPDATE users SET region = 'us' WHERE region = 'eu'").await.unwrap();
    let m = row_limit(via.simple_query("DELETE FROM regions WHERE code = 'eu'").await);
    assert!(m.contains("40 updated in public.users"), "{m}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE zone = 'eu-1'").await, 40);
    assert_eq!(count(&db, "SELECT count(*) FROM zones").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM regions").await, 3);
    // Within the limit: 20 users changed.
    via.simple_query("DELETE FROM zones WHERE code = 'us-1'").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE zone IS NULL").await, 20);
    // An unrelated table's DELETE: relayed without a pre-check.
    let before = checks(&p);
    via.simple_query("DELETE FROM notes WHERE id > 10").await.unwrap();
    if !counting_all() {
        assert_eq!(checks(&p), before, "a DELETE no action leads from was not counted");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM notes").await, 10);
    p.stop().await;
}

/// A cascade into a table that is not the policy's but whose change runs code (a DBA's
/// trigger that updates users): counted, so the trigger's updates meet users' limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_into_a_table_whose_change_runs_code_is_counted() {
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE tags (name text PRIMARY KEY); INSERT INTO tags VALUES ('x'); \
         CREATE TABLE labels (tag text REFERENCES tags (name) ON UPDATE CASCADE); INSERT INTO labels VALUES ('x'); \
         CREATE FUNCTION touch_users() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           UPDATE users SET plan = 'premium' WHERE plan <> 'premium' OR plan = 'premium'; RETURN NULL; END $$; \
         CREATE TRIGGER touch AFTER UPDATE ON labels FOR EACH STATEMENT EXECUTE FUNCTION touch_users(); \
         UPDATE users SET plan = 'free'",
    )
    .await
    .unwrap();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let m = row_limit(via.simple_query("UPDATE tags SET name = 'y' WHERE name = 'x'").await);
    assert!(m.contains("60 updated in public.users"), "{m}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'free'").await, 60);
    assert_eq!(count(&db, "SELECT count(*) FROM labels WHERE tag = 'x'").await, 1);
    p.stop().await;
}
