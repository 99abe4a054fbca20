//! Sixty-seventh pass H1: a read whose names led nowhere (or to a built-in) when it was judged
//! waits for a lock; another session of a DML-only role commits, meanwhile, a view or a
//! function in a schema that role may create in; the read, resumed, resolves its later names
//! to them and runs them: 20 users deleted. Now a text that names a schema another role than
//! the policy tables' owners may create in is counted, and so is every statement of a session
//! whose `search_path` lists one, or of a database where such a role may create schemas
//! (`catalog::opened`). Data checked on the server.

use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111200 AND -91111100";

/// The role's schema (`waited::setup`) with its function that deletes users, and a table the
/// role may lock (the superuser's: reading it is counted for no other reason).
async fn setup() -> String {
    let db = crate::waited::setup().await;
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.lockme (n varchar); INSERT INTO public.lockme VALUES ('a'); \
             GRANT ALL ON public.lockme TO {RAW}; SET ROLE {RAW}; \
             CREATE FUNCTION own.kill() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
               DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100; RETURN true; END $$"
        ),
    );
    db
}

/// Holds `public.lockme`'s lock on a direct connection of the role and runs `ddl` there,
/// sends `read` through blastwall (after `first`), commits while it waits (`waited::raced`).
async fn raced(db: &str, p: &Proxy, ddl: &str, first: &str, read: &'static str) -> Result<(), String> {
    let ddl = format!("LOCK TABLE public.lockme IN ACCESS EXCLUSIVE MODE; {ddl}");
    crate::waited::raced(db, p, &ddl, first, read).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_come_to_mean_new_code_while_a_read_waits_are_counted() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 20);
    let view = |name: &str| format!("CREATE VIEW {name} AS SELECT 1 AS y WHERE own.kill()");
    let cases: [(String, &str, &'static str); 4] = [
        // Qualified, in the role's schema: nothing of that name when judged.
        (view("own.vv"), "SELECT 1", "SELECT * FROM public.lockme RIGHT JOIN own.vv ON true"),
        // Unqualified, the role's schema first on the path: it led nowhere.
        (view("own.vw"), "SET search_path = own, public", "SELECT * FROM lockme RIGHT JOIN vw ON true"),
        // A function of the role's schema that matches better than the built-in it led to.
        (
            "CREATE FUNCTION own.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT CASE WHEN own.kill() THEN $1 END'"
                .to_string(),
            "SET search_path = public, own",
            "SELECT lower(n) FROM lockme",
        ),
        // Set in the startup packet's way, by set_config: the same.
        (
            view("own.vx"),
            "SELECT pg_catalog.set_config('search_path', 'own, public', false)",
            "SELECT * FROM lockme RIGHT JOIN vx ON true",
        ),
    ];
    for (ddl, first, read) in cases {
        let e = raced(&db, &p, &ddl, first, read).await.expect_err(read);
        assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{read}: {e}");
        assert_eq!(count(&db, WINDOW).await, before, "{read}: the new code deleted users");
    }
    p.stop().await;
}

/// The path put back to one through such a schema earlier in the same message (`RESET` to
/// the role's default), where the text names no such schema: what follows is counted, a read
/// (the prefilter's path) and a write (the full path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_reset_in_the_same_message_leads_what_follows_to_be_counted() {
    let db = setup().await;
    admin_sql(pg(), &db, &format!("ALTER ROLE {RAW} IN DATABASE \"{db}\" SET search_path = own, public"));
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    let view = |name: &str| format!("CREATE VIEW own.{name} AS SELECT 1 AS y WHERE own.kill()");
    let cases: [(String, &'static str); 2] = [
        (view("vr"), "RESET search_path; SELECT * FROM lockme RIGHT JOIN vr ON true"),
        (view("vu"), "RESET search_path; UPDATE lockme SET n = 'b' WHERE n = (SELECT 'z' FROM vu)"),
    ];
    for (ddl, message) in cases {
        let e = raced(&db, &p, &ddl, "SET search_path = public", message).await.expect_err(message);
        assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{message}: {e}");
        assert_eq!(count(&db, WINDOW).await, before, "{message}: the new view deleted users");
    }
    admin_sql(pg(), &db, &format!("ALTER ROLE {RAW} IN DATABASE \"{db}\" RESET search_path"));
    p.stop().await;
}

/// Sixty-eighth pass H1: the role revoked its own use of its schema before the path was
/// asked (`current_schemas` leaves such a schema out), and granted it back while the read
/// waited: the path is read as written, so the session is counted all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_the_role_may_not_use_when_asked_still_counts_on_its_path() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    let ddl = format!(
        "GRANT USAGE, CREATE ON SCHEMA own TO {RAW}; \
         CREATE FUNCTION own.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT CASE WHEN own.kill() THEN $1 END'"
    );
    let role = connect(p.port(), RAW, "", &db).await;
    role.batch_execute(&format!("REVOKE USAGE, CREATE ON SCHEMA own FROM {RAW}")).await.unwrap();
    let first = "SET search_path = own, public";
    let e = raced(&db, &p, &ddl, first, "SELECT lower(n) FROM lockme").await.expect_err("the read ran uncounted");
    assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{e}");
    assert_eq!(count(&db, WINDOW).await, before, "the function made meanwhile deleted users");
    p.stop().await;
}

/// A role that may create schemas may make one of any name a text or a path names: every
/// statement of the database is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_made_while_a_read_waits_is_counted_where_another_role_may_make_schemas() {
    let db = setup().await;
    admin_sql(pg(), &db, &format!("GRANT CREATE ON DATABASE \"{db}\" TO {RAW}"));
    let p = proxy_with(base_config(), shipped_policy()).await;
    let before = count(&db, WINDOW).await;
    let ddl = "CREATE SCHEMA fresh; CREATE VIEW fresh.vv AS SELECT 1 AS y WHERE own.kill()";
    let e = raced(&db, &p, ddl, "SELECT 1", "SELECT * FROM public.lockme RIGHT JOIN fresh.vv ON true")
        .await
        .expect_err("the read ran");
    assert!(e.contains("row-limit") || e.contains("unjudged-write"), "{e}");
    assert_eq!(count(&db, WINDOW).await, before, "the new schema's view deleted users");
    p.stop().await;
}

/// What cannot be counted in such a session is refused, saying why; in a session whose path
/// is closed again, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_path_is_open_says_why_what_it_cannot_count_is_refused() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), RAW, "", &db).await;
    via.batch_execute("SET search_path = own, public").await.unwrap();
    let e = via.batch_execute("VACUUM public.lockme").await.expect_err("VACUUM ran uncounted");
    let e = format!("{e:?}");
    assert!(e.contains("schema own is on the search_path"), "{e}");
    via.batch_execute("RESET search_path").await.unwrap();
    via.batch_execute("VACUUM public.lockme").await.unwrap();
    p.stop().await;
}
