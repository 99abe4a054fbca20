//! A counted message that ran quietly — its transaction wrote nothing, the path and roles as
//! before — keeps what the session knew of its temporary schema and path, and the database's
//! catalog answers: a read of a relation the application's role owns is no longer followed by
//! both catalog questions again (about 10 ms of the server's planning per read). One that
//! wrote (a temporary function made by the code it ran) or moved the path (`set_config` in
//! that code) is asked about again, and what follows is counted as it must be. Checked on the
//! server: its log says which questions the session asked, and a `VACUUM`, which a session
//! whose code or path is open cannot run, says what blastwall knew.

use crate::binds::RAW;
use crate::harness::*;

/// The role's schema (`waited::setup`) with a plain view, a view whose function moves the
/// path, and one whose function makes a temporary function; a table the role may vacuum; and
/// the role's statements logged.
async fn setup() -> String {
    let db = crate::waited::setup().await;
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.vac (n int); GRANT ALL ON public.vac TO {RAW}; \
             ALTER TABLE public.vac OWNER TO {RAW}; \
             ALTER ROLE {RAW} IN DATABASE \"{db}\" SET log_statement = 'all'; SET ROLE {RAW}; \
             CREATE VIEW own.plain AS SELECT 1 AS x; \
             CREATE FUNCTION own.steer() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
               PERFORM pg_catalog.set_config('search_path', 'own, public', false); RETURN 1; END $$; \
             CREATE VIEW own.steered AS SELECT own.steer() AS x; \
             CREATE FUNCTION own.masked() RETURNS int LANGUAGE plpgsql AS $$ DECLARE was text; BEGIN \
               was := pg_catalog.current_setting('search_path'); \
               PERFORM pg_catalog.set_config('search_path', 'own, public', false); \
               PERFORM pg_catalog.set_config('search_path', was, true); RETURN 1; END $$; \
             CREATE VIEW own.masking AS SELECT own.masked() AS x; \
             CREATE FUNCTION own.mk() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
               CREATE FUNCTION pg_temp.tf() RETURNS int LANGUAGE sql AS 'SELECT 1'; RETURN 1; END $$; \
             CREATE VIEW own.making AS SELECT own.mk() AS x"
        ),
    );
    db
}

/// How many of the two catalog questions a read may be followed by — the taint
/// (`catalog::taint::query`) and the hidden callers (`catalog::hidden`) — server process
/// `pid` was logged asking after byte `from` of the server's log.
fn questions_since(from: usize, pid: i32) -> usize {
    let log = pg().server.log();
    let tag = format!("[{pid}]");
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&tag))
        .filter(|l| l.contains("WITH RECURSIVE o(classid, objid)") || l.contains("WITH RECURSIVE f AS"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_reads_ask_nothing_again_and_code_that_wrote_or_moved_the_path_is_asked_about() {
    let db = setup().await;
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), RAW, "", &db).await;
    let pid: i32 = via.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await.unwrap().get(0);
    via.batch_execute("VACUUM public.vac").await.expect("a clean session vacuums");
    // The first read asks what it must; the reads after it ran quietly ask nothing again.
    via.simple_query("SELECT * FROM own.plain").await.unwrap();
    let from = pg().server.log().len();
    for _ in 0..5 {
        via.simple_query("SELECT * FROM own.plain").await.unwrap();
    }
    assert_eq!(questions_since(from, pid), 0, "quiet reads asked the catalog questions again");
    via.batch_execute("VACUUM public.vac").await.expect("still clean");
    // Code that moved the path without writing: the path is asked about, and is open.
    let rows = via.simple_query("SELECT * FROM own.steered").await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let e = format!("{:?}", via.batch_execute("VACUUM public.vac").await.expect_err("VACUUM with own on the path"));
    assert!(e.contains("schema own is on the search_path"), "{e}");
    via.batch_execute("RESET search_path").await.unwrap();
    via.batch_execute("VACUUM public.vac").await.expect("the path closed again");
    // The same move hidden from the reading after it by a `SET LOCAL` of the old path, which
    // blastwall's COMMIT ends (seventieth pass F1): read after that COMMIT, open all the same.
    via.simple_query("SELECT * FROM own.masking").await.unwrap();
    let e = format!("{:?}", via.batch_execute("VACUUM public.vac").await.expect_err("VACUUM, the path masked"));
    assert!(e.contains("schema own is on the search_path"), "{e}");
    via.batch_execute("RESET search_path").await.unwrap();
    via.batch_execute("VACUUM public.vac").await.expect("the path closed again");
    // In the client's own block the `SET LOCAL` lasts to the client's COMMIT: never quiet.
    via.batch_execute("BEGIN").await.unwrap();
    via.simple_query("SELECT * FROM own.masking").await.unwrap();
    via.batch_execute("COMMIT").await.unwrap();
    let e = format!("{:?}", via.batch_execute("VACUUM public.vac").await.expect_err("VACUUM, masked in a block"));
    assert!(e.contains("schema own is on the search_path"), "{e}");
    via.batch_execute("RESET search_path").await.unwrap();
    via.batch_execute("VACUUM public.vac").await.expect("the path closed again");
    // Code that made a temporary function: the schema is asked about, and holds code.
    via.simple_query("SELECT * FROM own.making").await.unwrap();
    let e = format!("{:?}", via.batch_execute("VACUUM public.vac").await.expect_err("VACUUM with temporary code"));
    assert!(e.contains("temporary schema holds code"), "{e}");
    admin_sql(pg(), &db, &format!("ALTER ROLE {RAW} IN DATABASE \"{db}\" RESET log_statement"));
    p.stop().await;
}
