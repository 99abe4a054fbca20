//! The session taint rule (fifth adversarial pass F1, F3, F4, F6, F7 and F10's variant): a
//! DML-only role attaches code to its own temporary objects — an FK cascade into a table with
//! a trigger or a default, a generated column, a CHECK, a row-security policy, a child's CHECK
//! folded at plan time, a statistics expression, a child's partial index, an RI check planned
//! over a table with a statistics expression — and every statement of that session is counted
//! from then on. Each repro runs through blastwall (enforce, shipped policies) as a role with
//! only DML grants and the default TEMP privilege; the users and the protected sequence are
//! read on the server directly. And the other side: a session whose temporary tables hold no
//! code (`serial`, `now()`) is not tainted — its COPY FROM STDIN, VACUUM and big reads pass.

use crate::harness::*;
use std::sync::OnceLock;

/// The DML-only role `taint_dml` (made once per server), granted DML on a database's tables.
pub(crate) fn dml_db() -> String {
    static ROLE: OnceLock<()> = OnceLock::new();
    ROLE.get_or_init(|| {
        admin_sql(pg(), "postgres", &format!("CREATE ROLE taint_dml LOGIN PASSWORD '{APP_PW}'"));
    });
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO taint_dml; \
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO taint_dml",
    );
    db
}

/// What the pass checked on the server: the users, and where the protected sequence stands.
async fn state(db: &str) -> (i64, i64) {
    (count(db, "SELECT count(*) FROM users").await, count(db, "SELECT last_value FROM web_user_id_seq").await)
}

const DELETES: &str = "CREATE FUNCTION pg_temp.d() RETURNS void LANGUAGE plpgsql AS \
    $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; END$$";

/// `imm(a)`: deletes every user when the statement running it starts with `word`.
fn imm(word: &str) -> String {
    format!(
        "CREATE FUNCTION pg_temp.imm(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
         $$BEGIN IF current_query() ~* '^\\s*{word}' THEN PERFORM pg_temp.d(); END IF; RETURN a; END$$"
    )
}

/// Runs `setup` one statement per message through blastwall as the DML-only role, then
/// `attack`: it must not run (refused) and the users and the sequence stay as they were.
async fn repro(setup: &[&str], attack: &str) {
    let db = dml_db();
    let before = state(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    for s in setup {
        via.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    assert_eq!(state(&db).await, before, "the setup changed users or the sequence");
    let ran = via.simple_query(attack).await;
    assert_eq!(state(&db).await, before, "{attack}: {ran:?}");
    let e = ran.err().unwrap_or_else(|| panic!("ran: {attack}"));
    refused_by(&e, "row-limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_an_fk_cascade_into_a_triggered_temp_table_is_counted() {
    let trg = "CREATE FUNCTION pg_temp.trg() RETURNS trigger LANGUAGE plpgsql AS \
        $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; RETURN NEW; END$$";
    repro(
        &[
            "CREATE TEMP TABLE p(id int primary key)",
            "CREATE TEMP TABLE c(pid int references p(id) on update cascade, x int)",
            trg,
            "CREATE TRIGGER t BEFORE UPDATE ON c FOR EACH ROW EXECUTE FUNCTION pg_temp.trg()",
            "INSERT INTO p VALUES (1)",
            "INSERT INTO c VALUES (1, 1)",
        ],
        "UPDATE p SET id = 2 WHERE id = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_set_default_into_a_default_calling_a_temp_function_is_counted() {
    let f = "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE plpgsql AS \
        $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; RETURN 0; END$$";
    repro(
        &[
            f,
            "CREATE TEMP TABLE p(id int primary key)",
            "INSERT INTO p VALUES (0),(1)",
            "CREATE TEMP TABLE c(pid int DEFAULT pg_temp.f() references p(id) on update set default)",
            "INSERT INTO c VALUES (1)",
        ],
        "UPDATE p SET id = 2 WHERE id = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_point_updates_of_a_generated_column_a_check_and_a_policy_are_counted() {
    let chk = "CREATE FUNCTION pg_temp.chk(a int) RETURNS boolean LANGUAGE plpgsql AS \
        $$BEGIN IF a = 7 THEN PERFORM pg_temp.d(); END IF; RETURN true; END$$";
    let pol = "CREATE FUNCTION pg_temp.pol(a int) RETURNS boolean LANGUAGE plpgsql AS \
        $$BEGIN IF current_query() ~* '^\\s*delete' THEN PERFORM pg_temp.d(); END IF; RETURN true; END$$";
    let imm7 = "CREATE FUNCTION pg_temp.imm(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
        $$BEGIN IF a = 7 THEN PERFORM pg_temp.d(); END IF; RETURN a; END$$";
    repro(
        &[
            DELETES,
            imm7,
            "CREATE TEMP TABLE g2(id int primary key, a int, b int GENERATED ALWAYS AS (pg_temp.imm(a)) STORED)",
            "INSERT INTO g2(id, a) VALUES (1, 1)",
        ],
        "UPDATE g2 SET a = 7 WHERE id = 1",
    )
    .await;
    repro(
        &[
            DELETES,
            chk,
            "CREATE TEMP TABLE g3(id int primary key, a int CHECK (pg_temp.chk(a)))",
            "INSERT INTO g3 VALUES (1,1)",
        ],
        "UPDATE g3 SET a = 7 WHERE id = 1",
    )
    .await;
    repro(
        &[
            DELETES,
            pol,
            "CREATE TEMP TABLE g4(id int primary key, a int)",
            "INSERT INTO g4 VALUES (1,1)",
            "ALTER TABLE g4 ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE g4 FORCE ROW LEVEL SECURITY",
            "CREATE POLICY p ON g4 USING (pg_temp.pol(a))",
        ],
        "DELETE FROM g4 WHERE id = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_a_check_that_moves_the_protected_sequence_back_is_refused_and_the_sequence_stays() {
    let db = dml_db();
    let before = state(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    for s in [
        "CREATE FUNCTION pg_temp.chk(a int) RETURNS boolean LANGUAGE plpgsql AS \
         $$BEGIN IF a = 7 THEN PERFORM setval('public.web_user_id_seq', 91111100); END IF; RETURN true; END$$",
        "CREATE TEMP TABLE g5(id int primary key, a int CHECK (pg_temp.chk(a)))",
        "INSERT INTO g5 VALUES (1, 1)",
    ] {
        via.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    let ran = via.simple_query("UPDATE g5 SET a = 7 WHERE id = 1").await;
    assert_eq!(state(&db).await, before, "{ran:?}");
    refused_by(&ran.expect_err("the sequence moved back"), "identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_a_childs_check_folded_at_plan_time_is_counted() {
    repro(
        &[
            DELETES,
            &imm("select"),
            "CREATE TEMP TABLE tp(a int)",
            "CREATE TEMP TABLE tch(CHECK (pg_temp.imm(7) > 0)) INHERITS (tp)",
        ],
        "SELECT * FROM tp WHERE a = 1",
    )
    .await;
    repro(
        &[
            DELETES,
            &imm("select"),
            "CREATE TEMP TABLE tc(a int CHECK (pg_temp.imm(7) > 0))",
            "SET constraint_exclusion = on",
        ],
        "SELECT * FROM tc WHERE a = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_a_statistics_expression_folded_at_plan_time_is_counted() {
    repro(
        &[
            DELETES,
            &imm("select"),
            "CREATE TEMP TABLE ts(a int, b int)",
            "CREATE STATISTICS pg_temp.st ON (a + pg_temp.imm(7)), b FROM ts",
        ],
        "SELECT * FROM ts WHERE a = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_a_childs_partial_index_reached_through_its_parent_is_counted() {
    repro(
        &[
            DELETES,
            &imm("select"),
            "CREATE TEMP TABLE tp2(a int)",
            "CREATE TEMP TABLE tch2() INHERITS (tp2)",
            "CREATE INDEX ON tch2(a) WHERE a > pg_temp.imm(7)",
        ],
        "SELECT * FROM tp2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_variant_an_ri_check_planned_over_a_statistics_expression_is_counted() {
    repro(
        &[
            DELETES,
            &imm("insert into c "),
            "CREATE TEMP TABLE p(id int primary key, b int)",
            "CREATE STATISTICS pg_temp.st ON (b + pg_temp.imm(7)), id FROM p",
            "INSERT INTO p VALUES (1, 1)",
            "CREATE TEMP TABLE c(pid int references p(id))",
        ],
        "INSERT INTO c VALUES (1)",
    )
    .await;
}

/// The same plan-time fold through the extended protocol (Parse/Bind/Execute), with the code
/// attached by a function the session calls: the taint is learned after any statement that
/// may make objects, not only after DDL in its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_and_objects_made_inside_a_function_are_counted_too() {
    let db = dml_db();
    let body = format!(
        "{DELETES}; {}; CREATE TEMP TABLE tp(a int); \
         CREATE TEMP TABLE tch(CHECK (pg_temp.imm(7) > 0)) INHERITS (tp)",
        imm("select")
    );
    let make = format!(
        "CREATE FUNCTION public.make_temp() RETURNS void LANGUAGE plpgsql AS $do$ BEGIN {body}; END $do$; \
         GRANT EXECUTE ON FUNCTION public.make_temp() TO taint_dml"
    );
    admin_sql(pg(), &db, &make);
    let before = state(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    via.simple_query("SELECT public.make_temp()").await.unwrap();
    assert_eq!(state(&db).await, before);
    let ran = via.query("SELECT * FROM tp WHERE a = $1", &[&1i32]).await;
    assert_eq!(state(&db).await, before, "{ran:?}");
    refused_by(&ran.expect_err("ran"), "row-limit");
}

/// Code a session gets from a permanent view whose function makes temporary objects (no DDL
/// in its text, so nothing else is judged again): a statement prepared while the session was
/// clean is counted at its Bind once the session is tainted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_while_clean_is_counted_at_its_bind_once_tainted() {
    let db = dml_db();
    let body = format!("{DELETES}; {}; CREATE TEMP TABLE tch(CHECK (pg_temp.imm(7) > 0)) INHERITS (tp)", imm("select"));
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE FUNCTION public.mk() RETURNS int LANGUAGE plpgsql AS $do$ BEGIN {body}; RETURN 1; END $do$; \
             CREATE VIEW public.vmk AS SELECT public.mk() AS made; \
             GRANT SELECT ON public.vmk TO taint_dml"
        ),
    );
    let before = state(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    via.simple_query("CREATE TEMP TABLE tp(a int)").await.unwrap();
    let read = via.prepare("SELECT * FROM tp WHERE a = $1").await.unwrap();
    via.query(&read, &[&1i32]).await.unwrap();
    via.simple_query("SELECT * FROM vmk").await.unwrap();
    assert_eq!(state(&db).await, before);
    let ran = via.query(&read, &[&1i32]).await;
    assert_eq!(state(&db).await, before, "{ran:?}");
    refused_by(&ran.expect_err("ran"), "row-limit");
}

/// What cannot be counted in a tainted session is refused, saying why; DISCARD TEMP clears
/// the taint, and a ROLLBACK that brings the code back brings the taint back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tainted_session_refuses_what_it_cannot_count_until_its_code_is_gone() {
    let db = dml_db();
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    via.simple_query("CREATE TEMP TABLE b(a int)").await.unwrap();
    via.simple_query("VACUUM b").await.unwrap();
    via.simple_query(DELETES).await.unwrap();
    for sql in ["VACUUM b", "CREATE INDEX CONCURRENTLY bi ON b (a)", "REINDEX TABLE CONCURRENTLY b"] {
        let e = via.simple_query(sql).await.expect_err(sql);
        let m = refused_by(&e, "unverifiable");
        assert!(m.contains("temporary schema holds code") && m.contains("pg_temp"), "{m}");
    }
    let sink = via.copy_in::<_, bytes::Bytes>("COPY b FROM STDIN").await;
    let m = refused_by(&sink.err().expect("COPY FROM STDIN ran"), "unverifiable");
    assert!(m.contains("COPY"), "{m}");
    // Dropped inside a block and rolled back: the function is back, so is the taint.
    via.simple_query("BEGIN").await.unwrap();
    via.simple_query("DROP FUNCTION pg_temp.d()").await.unwrap();
    via.simple_query("SELECT 1").await.unwrap();
    via.simple_query("ROLLBACK").await.unwrap();
    refused_by(&via.simple_query("VACUUM b").await.expect_err("tainted again"), "unverifiable");
    // A failed transaction cannot be asked: the taint is assumed, and its ROLLBACK still ends it.
    via.simple_query("BEGIN").await.unwrap();
    via.simple_query("CREATE TEMP TABLE x(a int); SELECT 1/0").await.expect_err("division by zero");
    via.simple_query("ROLLBACK").await.unwrap();
    via.simple_query("DISCARD TEMP").await.unwrap();
    via.simple_query("CREATE TEMP TABLE b2(a int)").await.unwrap();
    via.simple_query("VACUUM b2").await.unwrap();
}

/// A session whose temporary tables hold no code — a `serial` id, `now()`, a plain CHECK and
/// index — is not tainted: COPY FROM STDIN, VACUUM and a read larger than what a count holds
/// all pass as they would directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_temporary_tables_do_not_taint() {
    use futures_util::SinkExt;
    let db = dml_db();
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    for s in [
        "CREATE TEMP TABLE t(id serial primary key, at timestamptz default now(), note text CHECK (note <> ''))",
        "CREATE INDEX ON t (lower(note))",
        "CREATE TEMP VIEW tv AS SELECT id, note FROM t",
        "CREATE TEMP SEQUENCE s",
        "CREATE TEMP TABLE t2(n bigint DEFAULT nextval('s'), m int)",
        "INSERT INTO t(note) VALUES ('a'), ('b')",
    ] {
        via.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    let sink = via.copy_in("COPY t(note) FROM STDIN").await.expect("COPY FROM STDIN");
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"c\nd\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    via.simple_query("VACUUM t").await.unwrap();
    // More than a counted statement may return (16 MiB).
    let rows = via.query("SELECT repeat('x', 1000) FROM generate_series(1, 20000)", &[]).await.unwrap();
    assert_eq!(rows.len(), 20_000);
    assert_eq!(via.query_one("SELECT count(*) FROM tv", &[]).await.unwrap().get::<_, i64>(0), 4);
}

/// The question costs nothing to a session that never changes its temporary schema: reads,
/// counted writes and INSERTs into the incident's table (whose default moves a protected
/// sequence, code that makes no objects) ask nothing; a CREATE TEMP TABLE asks once, and what
/// follows it asks no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_message_that_may_change_the_schema_asks() {
    let db = dml_db();
    captured_logs();
    let asks =
        || captured_logs().lines().filter(|l| l.contains(&db) && l.contains("temporary schema holds code")).count();
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    for s in [
        "SELECT count(*) FROM users",
        "INSERT INTO users (auth_source, plan, email) VALUES ('oauth', 'free', 'new@example.com')",
        "UPDATE users SET plan = 'premium' WHERE id = 1000001",
        "DELETE FROM web_messages WHERE id = 1",
        "BEGIN",
        "DELETE FROM web_messages WHERE id = 2",
        "COMMIT",
    ] {
        via.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    via.query("SELECT * FROM users WHERE id = $1", &[&1000002i64]).await.unwrap();
    assert_eq!(asks(), 0);
    via.simple_query("CREATE TEMP TABLE t(id serial primary key)").await.unwrap();
    via.simple_query("INSERT INTO t DEFAULT VALUES").await.unwrap();
    via.simple_query("SELECT * FROM t").await.unwrap();
    assert_eq!(asks(), 1);
}

/// F10's variant, deferred: the RI check of a deferrable foreign key runs at the client's
/// COMMIT, after every count. Inside a block such a tainted session's statements are refused;
/// outside one the same INSERT is counted (blastwall fires deferred checks inside its count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_checks_of_a_tainted_session_run_inside_the_count() {
    let db = dml_db();
    let before = state(&db).await;
    let p = proxy().await;
    let via = connect(p.port(), "taint_dml", APP_PW, &db).await;
    for s in [
        DELETES,
        &imm("(commit|insert into c |set constraints)"),
        "CREATE TEMP TABLE p(id int primary key, b int)",
        "CREATE STATISTICS pg_temp.st ON (b + pg_temp.imm(7)), id FROM p",
        "INSERT INTO p VALUES (1, 1)",
        "CREATE TEMP TABLE c(pid int references p(id) DEFERRABLE INITIALLY DEFERRED)",
        "BEGIN",
    ] {
        via.simple_query(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
    let e = via.simple_query("INSERT INTO c VALUES (1)").await.expect_err("queued in a block");
    let m = refused_by(&e, "unverifiable");
    assert!(m.contains("COMMIT"), "{m}");
    via.simple_query("COMMIT").await.unwrap();
    assert_eq!(state(&db).await, before);
    let ran = via.simple_query("INSERT INTO c VALUES (1)").await;
    assert_eq!(state(&db).await, before, "{ran:?}");
    refused_by(&ran.expect_err("ran"), "row-limit");
}
