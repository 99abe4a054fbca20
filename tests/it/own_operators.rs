//! Sixty-ninth pass F1: blastwall asks its catalog questions and reads its counters on the
//! client's own session, under the client's `search_path`. A simple `CASE x WHEN …` in them
//! compared by the operator named `=` as that path found it: a role that owns a schema put its
//! own `=` there, set `search_path = own, pg_catalog, public`, and the next `SELECT 1` made
//! blastwall run the role's function, uncounted (20 users deleted, every email rewritten).
//! Here the role plants the operators blastwall's questions use, for the types they compare,
//! each of whose functions moves a sequence of its own; the session sends what makes blastwall
//! ask (reads counted for the open path, counted and refused writes, prepared statements, a
//! Bind); the sequence, read on the server, never moved.

use crate::binds::RAW;
use crate::harness::*;

/// `(operator, type)` pairs planted: what the questions compare, by every operator they use.
const PLANTED: &[(&str, &str)] = &[
    ("=", "text"),
    ("=", "oid"),
    ("=", "int4"),
    ("=", "int8"),
    ("=", "\"char\""),
    ("=", "name"),
    ("=", "bool"),
    ("<>", "text"),
    ("<>", "oid"),
    ("<>", "int4"),
    ("<>", "\"char\""),
    ("<>", "name"),
    ("<", "int4"),
    ("<", "int8"),
    (">", "int4"),
    (">", "int8"),
    ("<=", "int4"),
    (">=", "int4"),
    ("~~", "text"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roles_operators_on_the_path_never_run_in_blastwalls_own_questions() {
    let db = crate::waited::setup().await;
    let mut ddl = format!("SET ROLE {RAW}; CREATE SEQUENCE own.hits; ");
    for (i, (op, ty)) in PLANTED.iter().enumerate() {
        ddl.push_str(&format!(
            "CREATE FUNCTION own.f{i}(a {ty}, b {ty}) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
               PERFORM pg_catalog.nextval('own.hits'); RETURN a OPERATOR(pg_catalog.{op}) b; END $$; \
             CREATE OPERATOR own.{op} (LEFTARG = {ty}, RIGHTARG = {ty}, FUNCTION = own.f{i}); "
        ));
    }
    admin_sql(pg(), &db, &ddl);
    let p = proxy_with(base_config(), shipped_policy()).await;
    let via = connect(p.port(), RAW, "", &db).await;
    via.batch_execute("SET search_path = own, pg_catalog, public").await.unwrap();
    // None of these texts compares anything itself: whatever moves the sequence is blastwall's.
    let refused = [
        "DELETE FROM public.users",
        "TRUNCATE public.users",
        "UPDATE public.users SET email = NULL",
        "DELETE FROM public.users WHERE id BETWEEN -91111200 AND -91111100",
    ];
    for sql in refused {
        via.simple_query(sql).await.expect_err(sql);
    }
    let run = [
        "SELECT 1",
        "SELECT * FROM own.q",
        "DELETE FROM public.chat_sessions WHERE user_id IS NULL",
        "UPDATE public.subscriptions SET plan = plan WHERE user_id IS NULL",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE p",
        "CREATE TEMP TABLE scratch (n int)",
        "INSERT INTO scratch VALUES (1)",
        "SELECT 1",
    ];
    for sql in run {
        via.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let one: i32 = via.query_one("SELECT $1::pg_catalog.int4", &[&1i32]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let dir = direct("postgres", SUPERUSER_PW, &db).await;
    let row = dir.query_one("SELECT last_value, is_called FROM own.hits", &[]).await.unwrap();
    let (last, called): (i64, bool) = (row.get(0), row.get(1));
    assert!(!called, "the role's operators ran {last} times in blastwall's own questions");
    p.stop().await;
}
