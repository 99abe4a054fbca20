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

/// A DML-only role (trust, no DDL, no ownership).
const DML: &str = "trust_user";

fn assign(r: Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>) -> String {
    refused_by(&r.expect_err("refused"), "protected-assign")
}

/// The incident's schema, with two users nothing references (5000001, 5000002: their ids can
/// move, to -5 where `origins` has it), where `users.id` references `people` with `ON UPDATE CASCADE`, and
/// `people.id` references `origins` the same way (a chain into `users.id`); `users.team`
/// (not protected) references `teams`; `origins_v` is a view over `origins` that renames `k`;
/// the owner's DDL, then a DML-only role's grants.
fn people_db() -> String {
    dml_db(
        "INSERT INTO users (id) VALUES (5000001), (5000002); \
         CREATE TABLE origins (k bigint PRIMARY KEY); INSERT INTO origins SELECT id FROM users; INSERT INTO origins VALUES (-5); \
             CREATE TABLE people (id bigint PRIMARY KEY REFERENCES origins (k) ON UPDATE CASCADE, note text); \
             INSERT INTO people SELECT id FROM users; \
             ALTER TABLE users ADD FOREIGN KEY (id) REFERENCES people (id) ON UPDATE CASCADE; \
             CREATE TABLE teams (id int PRIMARY KEY); INSERT INTO teams VALUES (1), (2); \
             ALTER TABLE users ADD team int REFERENCES teams (id) ON UPDATE CASCADE; \
             UPDATE users SET team = 1 WHERE id BETWEEN 1000001 AND 1000005; \
             CREATE VIEW origins_v AS SELECT k AS key FROM origins",
    )
}

/// The incident's schema with the owner's `ddl`, then the DML-only role's grants.
fn dml_db(ddl: &str) -> String {
    let db = incident_db();
    let grants = format!(
        "GRANT USAGE ON SCHEMA public TO {DML}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {DML}"
    );
    admin_sql(pg(), &db, &format!("SET ROLE app; {ddl}; RESET ROLE; {grants};"));
    db
}

/// Fifth pass: `UPDATE people SET id = …` moved users' ids through `ON UPDATE CASCADE` while
/// `UPDATE users SET id = …` was refused (`protected-assign`). Now the key's action is judged
/// as the assignment it is, at any depth, in every form of UPDATE; what does not set the
/// referenced key, and a key into a column that is not protected, still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fk_action_into_a_protected_column_is_an_assignment() {
    let db = people_db();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), DML, "", &db).await;
    // The direct form and the key's: one row each, within users' limit of 50.
    assign(via.simple_query("UPDATE users SET id = -5 WHERE id = 5000001").await);
    let m = assign(via.simple_query("UPDATE people SET id = -5 WHERE id = 5000001").await);
    assert!(
        m.contains("foreign key users_id_fkey (ON UPDATE CASCADE) sets protected column id of public.users"),
        "{m}"
    );
    assert!(m.contains("setting id of people fires it"), "{m}");
    // Two keys away: origins → people → users.
    let m = assign(via.simple_query("UPDATE origins SET k = -7 WHERE k = 5000001").await);
    assert!(m.contains("users_id_fkey") && m.contains("through foreign key people_id_fkey"), "{m}");
    // An upsert's overwrite and a MERGE set the key too; so do the extended protocol's forms.
    assign(via.simple_query("INSERT INTO people VALUES (5000001) ON CONFLICT (id) DO UPDATE SET id = -5").await);
    assign(
        via.simple_query(
            "MERGE INTO people USING (SELECT 5000001 AS i) s ON people.id = s.i WHEN MATCHED THEN UPDATE SET id = -5",
        )
        .await,
    );
    let e = via.execute("UPDATE people SET id = $1 WHERE id = $2", &[&-5i64, &5000002i64]).await.expect_err("refused");
    refused_by(&e, "protected-assign");
    // Through a view over the first key's table, under another column name.
    let m = assign(via.simple_query("UPDATE origins_v SET key = -7 WHERE key = 5000001").await);
    assert!(m.contains("users_id_fkey") && m.contains("a view over the key's table"), "{m}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id IN (5000001, 5000002)").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id IN (-5, -7)").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM people WHERE id IN (-5, -7)").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM origins WHERE k = -7").await, 0);

    // Controls: a write that does not set the referenced key fires nothing; a key into a
    // column that is not protected (users.team) runs, and its cascade changes users.
    via.simple_query("UPDATE people SET note = 'vip' WHERE id = 1000003").await.unwrap();
    via.simple_query("UPDATE teams SET id = 3 WHERE id = 1").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM people WHERE note = 'vip'").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE team = 3").await, 5);
    p.stop().await;
}

/// `ON DELETE SET NULL` and `SET DEFAULT` into protected columns are assignments too; a table
/// whose policy allows setting them (`allow_protected_update`) lets the key act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_null_and_set_default_into_a_protected_column_are_assignments() {
    let db = dml_db(
        "CREATE TABLE mailboxes (address text PRIMARY KEY); INSERT INTO mailboxes SELECT email FROM users WHERE email IS NOT NULL; \
             INSERT INTO mailboxes VALUES ('none'); \
             ALTER TABLE users ADD FOREIGN KEY (email) REFERENCES mailboxes (address) ON DELETE SET NULL; \
             CREATE TABLE owners (handle text PRIMARY KEY); INSERT INTO owners VALUES ('nobody'), ('qa'); \
             ALTER TABLE users ADD owner text DEFAULT 'nobody' REFERENCES owners (handle) ON DELETE SET DEFAULT; \
             UPDATE users SET owner = 'qa' WHERE id < 0; \
             CREATE TABLE zones (code text PRIMARY KEY); INSERT INTO zones VALUES ('eu'); \
             ALTER TABLE users ADD zone text DEFAULT 'eu' REFERENCES zones (code) ON DELETE SET NULL",
    );
    let policy = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\", \"email\", \"owner\"]\n";
    let p = proxy_with(base_config(), compile(&[(Path::new("p.toml"), policy)]).unwrap()).await;
    let via = connect(p.port(), DML, "", &db).await;
    let kept = "SELECT count(*) FROM users WHERE email IS NOT NULL AND owner = 'qa'";
    let users = count(&db, kept).await;
    assert!(users >= 10, "{users}");
    let m = assign(via.simple_query("DELETE FROM mailboxes WHERE address = 'qa+91111101@example.test'").await);
    assert!(m.contains("(ON DELETE SET NULL) sets protected column email of public.users"), "{m}");
    assert!(m.contains("deleting rows of mailboxes fires it"), "{m}");
    let m = assign(via.simple_query("DELETE FROM owners WHERE handle = 'qa'").await);
    assert!(m.contains("(ON DELETE SET DEFAULT) sets protected column owner"), "{m}");
    assert_eq!(count(&db, kept).await, users);
    // Judged by the keys, not by the rows: a mailbox no user has is refused too (as
    // `SET id = …` is whatever rows it matches).
    assign(via.simple_query("DELETE FROM mailboxes WHERE address = 'none'").await);
    // A key into a column that is not protected acts: every user's zone set to NULL.
    via.simple_query("DELETE FROM zones WHERE code = 'eu'").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE zone IS NULL").await, 60);
    p.stop().await;

    let allowed = format!("{policy}allow_protected_update = true\n");
    let p = proxy_with(base_config(), compile(&[(Path::new("p.toml"), allowed.as_str())]).unwrap()).await;
    let via = connect(p.port(), DML, "", &db).await;
    via.simple_query("DELETE FROM owners WHERE handle = 'qa'").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE owner = 'nobody'").await, 60);
    p.stop().await;
}
