//! Fifty-second pass H1: a write judged by what its name led to when it was judged, whose name
//! the server resolves again after waiting for a lock, by which time DDL another session
//! committed leads it elsewhere. `DELETE FROM users WHERE id BETWEEN …` under `search_path =
//! archive, public` is a write to `archive.users` (the role's own copy); it waits on a lock
//! another session holds on `archive.users`, which renames it away and commits, and the rows
//! come out of `public.users`. A trigger on `archive.users` made the count take the rows as
//! what code may do. Now the names a counted write was judged by are read again before and
//! after it runs (`precheck::named`), and one that led elsewhere refuses it. Every result is
//! checked on the server directly.

use crate::binds::RAW;
use crate::harness::*;
use std::time::Duration;

const RANGE: &str = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111116";
const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111120 AND -91111116";

/// The incident's schema, and `archive.users`, a copy the DML-only role owns, with a trigger
/// that does nothing.
fn setup() -> String {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive AUTHORIZATION {RAW}; \
             CREATE TABLE archive.users (LIKE public.users); ALTER TABLE archive.users OWNER TO {RAW}; \
             INSERT INTO archive.users SELECT * FROM public.users; \
             CREATE FUNCTION archive.keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN coalesce(NEW, OLD); END$$; \
             ALTER FUNCTION archive.keep() OWNER TO {RAW}; \
             CREATE TRIGGER keep BEFORE INSERT OR UPDATE OR DELETE ON archive.users \
               FOR EACH ROW EXECUTE FUNCTION archive.keep();"
        ),
    );
    db
}

/// Sends `write` as a Query on `c` in the background: what the server (or blastwall) said.
fn in_background(c: tokio_postgres::Client, write: &'static str) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        c.simple_query(write)
            .await
            .map(|_| ())
            .map_err(|e| e.as_db_error().map_or(e.to_string(), |d| d.message().to_string()))
    })
}

/// What the background write said, once it ended.
async fn ended(run: tokio::task::JoinHandle<Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the write ended").unwrap()
}

async fn server_value(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// Runs `write` through blastwall under the archive path while a direct session holds a lock
/// on `archive.users`, renames it away meanwhile and commits: what the write said.
async fn raced(db: &str, port: u16, write: &'static str, extended: bool) -> Result<(), String> {
    admin_sql(pg(), db, "ALTER TABLE IF EXISTS archive.users_old RENAME TO users");
    let lock = direct(RAW, "", db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive.users IN SHARE MODE").await.unwrap();
    let a = connect(port, RAW, "", db).await;
    a.batch_execute("SET search_path = archive, public").await.unwrap();
    let run = tokio::spawn(async move {
        let r =
            if extended { a.execute(write, &[]).await.map(|_| ()) } else { a.simple_query(write).await.map(|_| ()) };
        r.map_err(|e| e.as_db_error().map_or(e.to_string(), |d| d.message().to_string()))
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.batch_execute("ALTER TABLE archive.users RENAME TO users_old; COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the write ended").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_name_leads_elsewhere_by_the_time_it_runs_is_refused() {
    let db = setup();
    let before = server_value(&db, WINDOW).await;
    assert_eq!(before, 5);
    let px = proxy_with(base_config(), shipped_policy()).await;
    // Not raced: the write to archive.users runs.
    let c = connect(px.port(), RAW, "", &db).await;
    c.batch_execute("SET search_path = archive, public").await.unwrap();
    c.simple_query(RANGE).await.expect("a range DELETE of archive.users runs");
    assert_eq!(
        server_value(&db, "SELECT count(*) FROM archive.users WHERE id BETWEEN -91111120 AND -91111116").await,
        0
    );
    admin_sql(
        pg(),
        &db,
        "INSERT INTO archive.users SELECT * FROM public.users WHERE id BETWEEN -91111120 AND -91111116",
    );
    // Raced, as a Query.
    let r = raced(&db, px.port(), RANGE, false).await;
    let e = r.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    // An upsert that would overwrite a protected row, raced the same way.
    let upsert = "INSERT INTO users (id, auth_source, plan, email) VALUES (-91111101, 'test', 'free', 'pwned') \
                  ON CONFLICT (id) DO UPDATE SET email = excluded.email";
    admin_sql(pg(), &db, "ALTER TABLE archive.users_old ADD PRIMARY KEY (id)");
    let e = raced(&db, px.port(), upsert, false).await.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, "SELECT count(*) FROM public.users WHERE email = 'pwned'").await, 0);
    px.stop().await;
}

/// Fifty-third pass H1: the writer's privilege on the schema its name led to is taken away
/// while the write waits for a lock (its name then leads to `public.users`, where it waits on
/// rows another session holds), and given back before the write ends: the name leads where it
/// did before and after the run, with the same relation, but the schemas the lookup went
/// through changed meanwhile. The rows are checked on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_hidden_from_the_writer_while_it_runs_and_shown_again_is_found() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA archive2 AUTHORIZATION migrator; \
             CREATE TABLE archive2.users (LIKE public.users); ALTER TABLE archive2.users OWNER TO migrator; \
             INSERT INTO archive2.users SELECT * FROM public.users; \
             CREATE FUNCTION archive2.keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN coalesce(NEW, OLD); END$$; \
             CREATE TRIGGER keep BEFORE INSERT OR UPDATE OR DELETE ON archive2.users \
               FOR EACH ROW EXECUTE FUNCTION archive2.keep(); \
             GRANT USAGE ON SCHEMA archive2 TO {RAW}; GRANT ALL ON archive2.users TO {RAW}"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let owner = direct("migrator", APP_PW, &db).await;
    owner.batch_execute("BEGIN; LOCK TABLE archive2.users IN SHARE MODE").await.unwrap();
    let rows = direct("postgres", SUPERUSER_PW, &db).await;
    rows.batch_execute("BEGIN; SELECT id FROM public.users WHERE id BETWEEN -91111120 AND -91111116 FOR UPDATE")
        .await
        .unwrap();
    let a = connect(px.port(), RAW, "", &db).await;
    a.batch_execute("SET search_path = archive2, public").await.unwrap();
    let run = in_background(a, RANGE);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    owner.batch_execute(&format!("REVOKE USAGE ON SCHEMA archive2 FROM {RAW}; COMMIT")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    owner.batch_execute(&format!("GRANT USAGE ON SCHEMA archive2 TO {RAW}")).await.unwrap();
    rows.batch_execute("COMMIT").await.unwrap();
    let r = ended(run).await;
    let e = r.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    px.stop().await;
}

/// Fifty-third pass H2: an UPDATE of a plain table no policy table is named like (no row limit
/// counts it) waits for a lock; the role that owns the table swaps it for a view over
/// `public.users` meanwhile, and the UPDATE goes through the view. A table a role other than
/// the policy tables' owner may swap is counted, so the swap is read around the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_a_table_swapped_for_a_view_while_it_waits_is_refused() {
    let db = setup();
    admin_sql(pg(), &db, &format!("CREATE TABLE archive.t (LIKE public.users); ALTER TABLE archive.t OWNER TO {RAW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    // Not raced: it runs.
    let c = connect(px.port(), RAW, "", &db).await;
    c.simple_query("UPDATE archive.t SET plan = 'y' WHERE id BETWEEN -91111120 AND -91111111")
        .await
        .expect("an UPDATE of archive.t runs");
    let lock = direct(RAW, "", &db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive.t IN SHARE MODE").await.unwrap();
    let run = in_background(c, "UPDATE archive.t SET plan = 'x' WHERE id BETWEEN -91111120 AND -91111111");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.batch_execute(
        "ALTER TABLE archive.t RENAME TO t_old; CREATE VIEW archive.t AS SELECT * FROM public.users; COMMIT",
    )
    .await
    .unwrap();
    let r = ended(run).await;
    let e = r.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, "SELECT count(*) FROM public.users WHERE plan = 'x'").await, 0);
    px.stop().await;
}

/// Fifty-fourth pass H1: a DELETE of the role's own `archive.t` (qualified), judged with the
/// table's harmless rule, waits for a lock; the rule is replaced meanwhile (on a direct
/// connection here, in a function's body there) by one that deletes from `public.users`. The
/// table's catalog row does not change, and a do-nothing trigger on `archive.t` made the count
/// take the users' rows for what code may do. Code a role other than the policy tables' owner
/// wrote explains no rows of a policy table the judgement did not reach: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_replaced_while_the_write_waits_explains_nothing() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE archive.t (LIKE public.users); ALTER TABLE archive.t OWNER TO {RAW}; \
             INSERT INTO archive.t SELECT * FROM public.users; \
             CREATE TABLE archive.log (id bigint); ALTER TABLE archive.log OWNER TO {RAW}; \
             SET ROLE {RAW}; \
             CREATE RULE r AS ON DELETE TO archive.t DO ALSO INSERT INTO archive.log VALUES (old.id); \
             CREATE TRIGGER keep BEFORE DELETE ON archive.t FOR EACH ROW EXECUTE FUNCTION archive.keep()"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let lock = direct(RAW, "", &db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive.t IN SHARE MODE").await.unwrap();
    let a = connect(px.port(), RAW, "", &db).await;
    let run = in_background(a, "DELETE FROM archive.t WHERE id BETWEEN -91111120 AND -91111116");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.batch_execute(
        "CREATE OR REPLACE RULE r AS ON DELETE TO archive.t DO ALSO DELETE FROM public.users WHERE id = old.id; COMMIT",
    )
    .await
    .unwrap();
    let r = ended(run).await;
    let e = r.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    px.stop().await;
}

/// Fifty-fifth pass H1: the writer reaches `archive3` only as a member of a role; the
/// membership is taken away while its DELETE waits (an unrelated schema touched so that the
/// server computes its path again: the name then leads to `public.users`), and given back
/// before it ends. The statement calls a function the policy tables' owner wrote, which a
/// count takes as code that may explain the rows; the role memberships read around the run
/// show the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_taken_away_while_the_write_runs_and_given_back_is_found() {
    let db = crate::binds::setup();
    let team = format!("team_{}", db.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    admin_sql(
        pg(),
        &db,
        &format!(
            "DROP ROLE IF EXISTS {team}; CREATE ROLE {team} NOLOGIN; GRANT {team} TO {RAW}; \
             CREATE SCHEMA archive3; CREATE SCHEMA junk; GRANT USAGE ON SCHEMA archive3 TO {team}; \
             CREATE TABLE archive3.users (LIKE public.users); INSERT INTO archive3.users SELECT * FROM public.users; \
             GRANT ALL ON archive3.users TO {team}; \
             CREATE FUNCTION public.one() RETURNS int LANGUAGE sql SET search_path = pg_catalog AS 'SELECT 1'"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let lock = direct("postgres", SUPERUSER_PW, &db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive3.users IN SHARE MODE").await.unwrap();
    let rows = direct("postgres", SUPERUSER_PW, &db).await;
    rows.batch_execute("BEGIN; SELECT id FROM public.users WHERE id BETWEEN -91111120 AND -91111116 FOR UPDATE")
        .await
        .unwrap();
    let a = connect(px.port(), RAW, "", &db).await;
    a.batch_execute("SET search_path = archive3, public").await.unwrap();
    let run = in_background(a, "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111116 AND public.one() = 1");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    admin_sql(pg(), &db, &format!("REVOKE {team} FROM {RAW}; GRANT USAGE ON SCHEMA junk TO PUBLIC"));
    lock.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    admin_sql(pg(), &db, &format!("GRANT {team} TO {RAW}"));
    rows.batch_execute("COMMIT").await.unwrap();
    let r = ended(run).await;
    admin_sql(pg(), &db, &format!("DROP SCHEMA archive3 CASCADE; DROP ROLE {team}"));
    let e = r.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    px.stop().await;
}

/// Fifty-sixth pass H1: the path's first entry, `zz`, does not exist when the write is judged
/// (its name leads to `archive.users`). While it waits for a lock, a schema holding a view over
/// `public.users` is renamed to `zz` (a rename takes no lock on the view), the name leads
/// there, and the schema is renamed back before the write ends: at both readings `zz` is
/// absent and the name leads to `archive.users`. The statement calls a function the policy
/// tables' owner wrote, the database has no other role's code, and `archive.users` is the
/// owner's too: the count would take the users' rows for what that function may do. The schemas of the database read around the run show the renames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_entry_that_exists_only_while_the_write_runs_is_found() {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "DROP TRIGGER keep ON archive.users; DROP FUNCTION archive.keep(); \
             ALTER SCHEMA archive OWNER TO postgres; ALTER TABLE archive.users OWNER TO postgres; \
             GRANT USAGE ON SCHEMA archive TO {RAW}; GRANT ALL ON archive.users TO {RAW}; \
             CREATE SCHEMA stash AUTHORIZATION {RAW}; \
             CREATE VIEW stash.users AS SELECT * FROM public.users; ALTER VIEW stash.users OWNER TO {RAW}; \
             CREATE FUNCTION public.one() RETURNS int LANGUAGE sql SET search_path = pg_catalog AS 'SELECT 1'"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let lock = direct(RAW, "", &db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive.users IN SHARE MODE").await.unwrap();
    let rows = direct("postgres", SUPERUSER_PW, &db).await;
    rows.batch_execute("BEGIN; SELECT id FROM public.users WHERE id BETWEEN -91111120 AND -91111116 FOR UPDATE")
        .await
        .unwrap();
    let a = connect(px.port(), RAW, "", &db).await;
    a.batch_execute("SET search_path = zz, archive, public").await.unwrap();
    let run = in_background(a, "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111116 AND public.one() = 1");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    admin_sql(pg(), &db, "ALTER SCHEMA stash RENAME TO zz");
    lock.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    admin_sql(pg(), &db, "ALTER SCHEMA zz RENAME TO stash");
    rows.batch_execute("COMMIT").await.unwrap();
    let e = ended(run).await.expect_err("refused");
    assert!(e.contains("blastwall: refused") && e.contains("a schema of the database"), "{e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    px.stop().await;
}

/// Fifty-seventh pass H1: a write through the DML-only role's own view `archive.v` (over its
/// `archive.users`), by a qualified name, calling a function the policy tables' owner wrote;
/// while it waits for a lock, the view's rule is replaced in another session by one that reads
/// `public.users` (the view's catalog row does not change, and the database has no other
/// role's function, trigger or rule). A relation another role may make lead elsewhere leaves
/// no code to explain rows of a policy table the judgement did not reach: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_whose_rule_is_replaced_while_the_write_waits_explains_nothing() {
    view_rule_swapped("", "DELETE FROM archive.v WHERE id BETWEEN -91111120 AND -91111116 AND public.one() = 1").await;
}

/// Fifty-seventh pass H2, the form the readings cannot see: the session's path lists a schema
/// the role may not use (`zz`, holding a view over `public.users`); a membership that shows it,
/// given while a write waits and taken away before it ends, leads the write there and leaves
/// nothing changed at either reading. So such a path leaves no code to explain rows of a
/// policy table the judgement did not reach: here the owner's own trigger on `archive.users`,
/// which deletes the user of the deleted row, no longer explains it. Without `zz` in the path
/// the same DELETE runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_lists_a_schema_the_role_may_not_use_leaves_no_code_to_explain_rows() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE SCHEMA zz; CREATE VIEW zz.users AS SELECT * FROM public.users; \
             CREATE SCHEMA archive; GRANT USAGE ON SCHEMA archive TO {RAW}; \
             CREATE TABLE archive.users (LIKE public.users); INSERT INTO archive.users SELECT * FROM public.users; \
             GRANT ALL ON archive.users TO {RAW}; \
             CREATE FUNCTION archive.gone() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
               AS $$BEGIN DELETE FROM public.users WHERE id = OLD.id; RETURN OLD; END$$; \
             CREATE TRIGGER gone AFTER DELETE ON archive.users FOR EACH ROW EXECUTE FUNCTION archive.gone()"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let c = connect(px.port(), RAW, "", &db).await;
    c.batch_execute("SET search_path = zz, archive, public").await.unwrap();
    let e = c.simple_query("DELETE FROM users WHERE id = -91111120").await.expect_err("refused");
    let e = e.as_db_error().map_or(e.to_string(), |d| d.message().to_string());
    assert!(e.contains("blastwall: refused") && e.contains("does not name"), "{e}");
    let kept = "SELECT count(*) FROM public.users WHERE id = -91111120";
    assert_eq!(server_value(&db, kept).await, 1, "public.users kept its row");
    c.batch_execute("SET search_path = archive, public").await.unwrap();
    c.simple_query("DELETE FROM users WHERE id = -91111119").await.unwrap();
    let gone = "SELECT count(*) FROM public.users WHERE id = -91111119";
    assert_eq!(server_value(&db, gone).await, 0, "the owner's trigger ran");
    px.stop().await;
}

/// Fifty-eighth pass H2: the write names the policy tables' owner's view `public.v2`, which
/// reads the DML-only role's view `archive.v` (over its `archive.users`); while the write
/// waits for a lock, the inner view's rule is replaced by one that reads `public.users`. A
/// view another role owns anywhere on the write's way makes it one that role may redirect:
/// no code explains the users' rows. Refused, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_view_whose_rule_is_replaced_while_the_write_waits_explains_nothing() {
    let outer = format!("CREATE VIEW public.v2 AS SELECT * FROM archive.v; GRANT ALL ON public.v2 TO {RAW}");
    view_rule_swapped(&outer, "DELETE FROM public.v2 WHERE id BETWEEN -91111120 AND -91111116 AND public.one() = 1")
        .await;
}

/// The DML-only role's view `archive.v` over its `archive.users` (whose trigger is dropped: the
/// database has no other role's code), the policy tables' owner's `public.one()`, and `more`.
/// Runs `write` through blastwall while a direct session of the role holds a lock on
/// `archive.v`, and replaces the view's rule meanwhile by one that reads `public.users`:
/// refused, and `public.users` kept its rows.
async fn view_rule_swapped(more: &str, write: &'static str) {
    let db = setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "DROP TRIGGER keep ON archive.users; DROP FUNCTION archive.keep(); \
             CREATE VIEW archive.v AS SELECT * FROM archive.users; ALTER VIEW archive.v OWNER TO {RAW}; \
             CREATE FUNCTION public.one() RETURNS int LANGUAGE sql SET search_path = pg_catalog AS 'SELECT 1'; {more}"
        ),
    );
    let before = server_value(&db, WINDOW).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let lock = direct(RAW, "", &db).await;
    lock.batch_execute("BEGIN; LOCK TABLE archive.v IN SHARE MODE").await.unwrap();
    let a = connect(px.port(), RAW, "", &db).await;
    let run = in_background(a, write);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.batch_execute(
        "CREATE OR REPLACE RULE \"_RETURN\" AS ON SELECT TO archive.v DO INSTEAD SELECT * FROM public.users; COMMIT",
    )
    .await
    .unwrap();
    let e = ended(run).await.expect_err("refused");
    assert!(e.contains("blastwall: refused"), "{write}: {e}");
    assert_eq!(server_value(&db, WINDOW).await, before, "public.users kept its rows");
    px.stop().await;
}
