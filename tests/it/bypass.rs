//! Issue 11's remaining ways around the guard, each run as its attacker sends it through
//! blastwall in enforce mode with the shipped policies (default + incident), the data checked
//! on the server directly: tautologies that named columns and satisfied `require-where`.

use crate::harness::*;

/// A WHERE that names the table's columns but restricts nothing does not satisfy
/// `require-where` (a table no policy names, so no row limit stands behind it); ordinary
/// predicates still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tautology_does_not_satisfy_require_where() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, flag bool, note_at timestamptz); \
         INSERT INTO notes SELECT g, 'n' || g, g % 2 = 0, now() FROM generate_series(1, 40) g; \
         CREATE TABLE note_refs (note_id int); INSERT INTO note_refs VALUES (1); \
         GRANT ALL ON notes, note_refs TO app;",
    );
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        "DELETE FROM notes WHERE notes.id = notes.id",
        "DELETE FROM notes WHERE id = id",
        "DELETE FROM notes n WHERE n IS NOT NULL",
        "DELETE FROM notes WHERE NOT (notes IS NULL)",
        "DELETE FROM notes WHERE true OR id = 5",
        "DELETE FROM notes WHERE coalesce(body, body) = coalesce(body, body)",
        "DELETE FROM notes WHERE id >= id",
        "DELETE FROM notes WHERE (id = id) IS TRUE",
        "DELETE FROM notes WHERE (id = NULL) IS NOT TRUE",
        "DELETE FROM notes WHERE id < 5 OR id >= 5",
        "DELETE FROM notes WHERE flag OR NOT flag OR flag IS NULL",
        "DELETE FROM notes WHERE id IN (SELECT id)",
        "DELETE FROM notes WHERE EXISTS (SELECT count(*) FROM note_refs r WHERE r.note_id = notes.id)",
        "DELETE FROM notes WHERE NOT EXISTS (SELECT 1 FROM note_refs r WHERE r.note_id = notes.id AND false)",
        "UPDATE notes SET body = 'x' WHERE body = body",
        "MERGE INTO notes USING note_refs r ON notes.id = notes.id WHEN MATCHED THEN DELETE",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "require-where");
        assert_eq!(count(&db, "SELECT count(*) FROM notes WHERE body LIKE 'n%'").await, 40, "{sql}");
    }
    // Ordinary predicates run.
    for (sql, left) in [
        ("DELETE FROM notes WHERE id = 1", 39),
        ("DELETE FROM notes WHERE id IN (SELECT note_id + 1 FROM note_refs)", 38),
        ("DELETE FROM notes WHERE flag AND id < 7", 36),
        ("DELETE FROM notes WHERE EXISTS (SELECT 1 FROM note_refs r WHERE r.note_id + 6 = notes.id)", 35),
        ("DELETE FROM notes WHERE note_at IS NOT NULL AND id = 9", 34),
    ] {
        via.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(count(&db, "SELECT count(*) FROM notes").await, left, "{sql}");
    }
    // On a protected table, the same tautology is named by the range rule.
    let e = via.simple_query("DELETE FROM users WHERE users.id = users.id").await.unwrap_err();
    refused_by(&e, "protected-range");
    p.stop().await;
}

async fn seq(db: &str) -> i64 {
    count(db, "SELECT last_value FROM web_user_id_seq").await
}

/// `nextval` as far as the data goes moves a protected sequence (the incident's drift): such a
/// statement is run in the pre-check, whose identity check refuses it and puts the sequence
/// back. Taking one id (`SELECT nextval(…)`) stays a plain relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nextval_cannot_drift_a_protected_sequence() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let start = seq(&db).await;
    for sql in [
        "SELECT nextval('web_user_id_seq') FROM generate_series(1, 5000)",
        "SELECT pg_catalog.nextval('public.web_user_id_seq'::regclass) FROM generate_series(1, 5000)",
        "SELECT (SELECT max(nextval('web_user_id_seq')) FROM generate_series(1, 5000))",
        "WITH g AS (SELECT generate_series(1, 5000) i) SELECT nextval('web_user_id_seq') FROM g",
        "SELECT nextval(c.oid::regclass) FROM pg_class c, generate_series(1, 3000) WHERE c.relname = 'web_user_id_seq'",
        "SELECT nextval('web_user_id_seq'), generate_series(1, 5000)",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, "identity");
        assert!(m.contains("sequence"), "{m}");
        assert_eq!(seq(&db).await, start, "{sql}: the sequence was put back");
    }
    // An application taking one id: relayed (no check), the sequence moves by one.
    via.simple_query("SELECT nextval('web_user_id_seq')").await.unwrap();
    assert_eq!(seq(&db).await, start + 1);
    // A sequence no policy protects moves freely.
    admin_sql(pg(), &db, "CREATE SEQUENCE scratch_seq; GRANT ALL ON scratch_seq TO app;");
    via.simple_query("SELECT nextval('scratch_seq') FROM generate_series(1, 5000)").await.unwrap();
    assert_eq!(count(&db, "SELECT last_value FROM scratch_seq").await, 5000);
    p.stop().await;
}

async fn users(db: &str) -> i64 {
    count(db, "SELECT count(*) FROM users").await
}

/// A user function that deletes users, reached through a view's column (and a view over that
/// view), a domain's CHECK and a column default: the statement names no function, yet it is
/// run in the pre-check like a call of one, and refused by the row limit — no user is gone.
/// What mentions none of them stays a plain relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writing_function_behind_a_view_default_or_domain_is_judged() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; \
         CREATE FUNCTION purge() RETURNS int LANGUAGE plpgsql AS \
           $$ BEGIN DELETE FROM users WHERE plan = 'premium'; RETURN 1; END $$; \
         CREATE VIEW purging AS SELECT purge() AS n; \
         CREATE VIEW purging_too AS SELECT * FROM purging; \
         CREATE DOMAIN purging_int AS int CHECK (purge() > 0); \
         CREATE TABLE stamped (id int, n int DEFAULT purge()); \
         CREATE TABLE checked (id int, n purging_int); \
         CREATE OPERATOR ==> (FUNCTION = int4eq, LEFTARG = int, RIGHTARG = int); \
         CREATE FUNCTION purge_op(int, int) RETURNS bool LANGUAGE sql AS $$ SELECT purge() > $1 $$; \
         CREATE OPERATOR <=== (FUNCTION = purge_op, LEFTARG = int, RIGHTARG = int);",
    );
    let before = users(&db).await;
    assert!(count(&db, "SELECT count(*) FROM users WHERE plan = 'premium'").await > 10);
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for sql in [
        "SELECT * FROM purging",
        "SELECT n FROM purging_too",
        "SELECT 1::purging_int",
        "INSERT INTO stamped (id) VALUES (1)",
        "INSERT INTO checked VALUES (1, 1)",
        "SELECT 1 <=== 2",
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, "row-limit");
        assert_eq!(users(&db).await, before, "{sql}");
    }
    // The same through the extended protocol.
    let e = via.query("SELECT * FROM purging", &[]).await.err().unwrap_or_else(|| panic!("ran: extended"));
    refused_by(&e, "row-limit");
    assert_eq!(users(&db).await, before);
    // Nothing mentioned: relayed as ever.
    via.simple_query("SELECT count(*) FROM users WHERE plan = 'premium'").await.unwrap();
    via.simple_query("SELECT 1 ==> 1").await.unwrap();
    // A write that gives the column (no default runs) is checked, and allowed.
    via.simple_query("INSERT INTO stamped (id, n) VALUES (2, 2)").await.unwrap();
    assert_eq!(users(&db).await, before);
    p.stop().await;
}

/// Red team F1, F2, F5 and F1's addenda: what a DML-only role can create in `pg_temp` (a
/// function, a view, a domain, a table with a default, an operator) and a user function named
/// like a built-in — every statement that reaches one is judged on what it does; a user's
/// `OPERATOR(pg_temp.=)` is no point lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_objects_and_lookalike_functions_are_judged() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.upper(bigint) RETURNS bigint LANGUAGE sql AS \
           $$ WITH d AS (DELETE FROM public.subscriptions WHERE id < $1 RETURNING 1) SELECT count(*) FROM d $$;",
    );
    let tables = "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM subscriptions) \
                  + (SELECT count(*) FROM chat_sessions) + (SELECT count(*) FROM web_messages)";
    let before = count(&db, tables).await;
    let sequence = count(&db, "SELECT last_value FROM web_user_id_seq").await;
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for setup in [
        "CREATE FUNCTION pg_temp.wipe() RETURNS bigint LANGUAGE sql AS \
           $$ WITH d AS (DELETE FROM public.users WHERE true RETURNING 1) SELECT count(*) FROM d $$",
        "CREATE TEMP VIEW innocent AS SELECT pg_temp.wipe() AS n",
        "CREATE FUNCTION pg_temp.boom2(int) RETURNS boolean LANGUAGE sql AS \
           $$ DELETE FROM public.subscriptions WHERE true; SELECT true $$",
        "CREATE DOMAIN pg_temp.d AS int CHECK (pg_temp.boom2(VALUE))",
        "CREATE FUNCTION pg_temp.boom3() RETURNS int LANGUAGE sql AS \
           $$ DELETE FROM public.chat_sessions WHERE true; SELECT 1 $$",
        "CREATE TEMP TABLE t (a int, b int DEFAULT pg_temp.boom3())",
        "CREATE FUNCTION pg_temp.cat(text, text) RETURNS text LANGUAGE sql AS \
           $$ DELETE FROM public.web_messages WHERE true; SELECT $1 || $2 $$",
        "CREATE OPERATOR pg_temp.### (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.cat)",
        "CREATE FUNCTION pg_temp.i() RETURNS int IMMUTABLE LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_temp.boom3(); RETURN 1; END $$",
        "CREATE FUNCTION pg_temp.inwin(bigint, bigint) RETURNS boolean LANGUAGE sql IMMUTABLE \
           AS 'SELECT $1 BETWEEN -91111120 AND $2'",
        "CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.inwin)",
        "CREATE FUNCTION pg_temp.s() RETURNS bigint LANGUAGE sql AS \
           $$ SELECT pg_catalog.setval('public.web_user_id_seq', 91111100) $$",
        "CREATE TEMP VIEW sv AS SELECT pg_temp.s() AS x",
        "PREPARE q(bigint) AS SELECT $1",
    ] {
        via.simple_query(setup).await.unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    }
    for (sql, rule) in [
        ("SELECT * FROM innocent", "row-limit"),
        ("SELECT 1::pg_temp.d", "row-limit"),
        ("INSERT INTO t (a) VALUES (1)", "row-limit"),
        ("SELECT 'a' OPERATOR(pg_temp.###) 'b'", "row-limit"),
        ("UPDATE subscriptions SET plan = plan OPERATOR(pg_temp.###) '' WHERE id = 1", "row-limit"),
        ("EXPLAIN SELECT pg_temp.i()", "row-limit"),
        ("SELECT upper(1000::bigint)", "row-limit"),
        ("DELETE FROM users WHERE id OPERATOR(pg_temp.=) -91111111", "protected-range"),
        ("SELECT * FROM sv", "identity"),
        ("EXECUTE q(upper(1000::bigint))", "row-limit"),
        ("EXPLAIN EXECUTE q(pg_temp.wipe())", "row-limit"),
    ] {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        refused_by(&e, rule);
        assert_eq!(count(&db, tables).await, before, "{sql}");
        assert_eq!(count(&db, "SELECT last_value FROM web_user_id_seq").await, sequence, "{sql}");
    }
    // Built-ins and ordinary reads still run.
    via.simple_query("SELECT upper('x'), count(*) FROM users WHERE id = 1000001").await.unwrap();
    p.stop().await;
}

/// Red team F1 addendum: a default set on a (temporary) view over a table whose id a sequence
/// mints, or on an inheritance child, mints an id by hand when an INSERT leaves the column out:
/// refused by `explicit-id`; the table's own sequence default still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_of_its_own_on_a_view_or_child_is_an_explicit_id() {
    let db = fresh_db("handdefault");
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, auth_source text); \
         CREATE TABLE accounts_2026 () INHERITS (accounts); \
         ALTER TABLE accounts_2026 ALTER id SET DEFAULT -91111151; \
         GRANT ALL ON accounts, accounts_2026, accounts_id_seq TO app;",
    );
    let text = "[[table]]\nname = \"public.accounts\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("accounts.toml"), text)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("CREATE TEMP VIEW av2 AS SELECT * FROM accounts").await.unwrap();
    via.simple_query("ALTER VIEW av2 ALTER id SET DEFAULT -91111150").await.unwrap();
    for sql in
        ["INSERT INTO av2 (auth_source) VALUES ('test')", "INSERT INTO accounts_2026 (auth_source) VALUES ('test')"]
    {
        let e = via.simple_query(sql).await.err().unwrap_or_else(|| panic!("ran: {sql}"));
        let m = refused_by(&e, "explicit-id");
        assert!(m.contains("its own default"), "{m}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM accounts WHERE id < 0").await, 0);
    via.simple_query("INSERT INTO accounts (auth_source) VALUES ('oauth')").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM accounts").await, 1);
    p.stop().await;
}
