//! Thirty-seventh pass FP2: a child or partition of a policy table could not be let go through
//! blastwall even when empty — its storage gone from the table's tree is what the identity
//! check refuses. Now `DETACH PARTITION` or `NO INHERIT`, alone in its statement, of a child
//! that holds no row (its own children included) runs, and the former child may then be
//! dropped; a child with rows, one emptied in the same message, one read in a `REPEATABLE
//! READ` transaction (whose snapshot may predate the statement's lock), and `DROP TABLE` of a
//! child stay refused (`precheck::detach`). Rows and the trees checked on the server.

use crate::harness::*;
use blastwall::policy::file::compile;

/// The parents of `rel` and the rows under `users`, read directly.
async fn tree(db: &str, rel: &str) -> String {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    let q = format!(
        "SELECT concat_ws(' | ', (SELECT string_agg(i.inhparent::regclass::text, ',') FROM pg_inherits i \
           WHERE i.inhrelid = to_regclass('{rel}')), coalesce(to_regclass('{rel}')::text, 'dropped'), \
           (SELECT count(*) || ' users' FROM public.users))"
    );
    c.query_one(&q, &[]).await.unwrap().get(0)
}

/// The error of `sql` through blastwall, if any.
async fn run(c: &tokio_postgres::Client, sql: &str) -> Result<(), String> {
    c.batch_execute(sql).await.map_err(|e| e.as_db_error().map_or(e.to_string(), |d| d.message().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_child_may_be_let_go_and_one_with_rows_may_not() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE TABLE users_old () INHERITS (users); CREATE TABLE users_rr () INHERITS (users); \
         CREATE TABLE users_kept () INHERITS (users); INSERT INTO users_kept (id) VALUES (5000001); \
         CREATE TABLE users_many () INHERITS (users); \
         INSERT INTO users_many (id) SELECT 6000000 + g FROM generate_series(1, 12) g; \
         CREATE TABLE users_mid () INHERITS (users); CREATE TABLE users_leaf () INHERITS (users_mid); \
         INSERT INTO users_leaf (id) VALUES (5000002)",
    );
    let p = proxy().await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let users = tree(&db, "users_kept").await;
    let users = users.rsplit(" | ").next().unwrap().to_string();
    for (sql, child) in [
        ("ALTER TABLE users_kept NO INHERIT users", "users_kept"),
        ("DROP TABLE users_kept", "users_kept"),
        // Emptied in the same message: a message with a row write is not read for children let
        // go (the counters, read after it, would no longer see the child).
        ("DELETE FROM users_many WHERE plan = 'free'; ALTER TABLE users_many NO INHERIT users", "users_many"),
        ("ALTER TABLE users_mid NO INHERIT users", "users_mid"),
        ("DROP TABLE users_old", "users_old"),
    ] {
        let before = tree(&db, child).await;
        let e = run(&c, sql).await.expect_err(sql);
        let why = if sql.starts_with("DROP") { "DROP is forbidden" } else { "is gone or let go with rows" };
        let before_rows = count(&db, &format!("SELECT count(*) FROM {child}")).await;
        assert!(e.starts_with("blastwall: refused") && e.contains(why), "{sql}: {e}");
        assert_eq!(tree(&db, child).await, before, "{sql}");
        assert_eq!(count(&db, &format!("SELECT count(*) FROM {child}")).await, before_rows, "{sql}");
    }
    // The snapshot of a REPEATABLE READ transaction may not have the rows committed before the
    // statement's lock: nothing counts as empty there.
    let e = run(&c, "BEGIN ISOLATION LEVEL REPEATABLE READ; ALTER TABLE users_rr NO INHERIT users").await;
    assert!(e.expect_err("repeatable read").starts_with("blastwall: refused"));
    run(&c, "ROLLBACK").await.unwrap();
    assert_eq!(tree(&db, "users_rr").await, format!("users | users_rr | {users}"));
    // Empty and alone in its statement: let go, then dropped.
    run(&c, "ALTER TABLE users_old NO INHERIT users").await.unwrap();
    assert_eq!(tree(&db, "users_old").await, format!("users_old | {users}"));
    run(&c, "DROP TABLE users_old").await.unwrap();
    assert_eq!(tree(&db, "users_old").await, format!("dropped | {users}"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_may_be_detached_and_one_with_rows_may_not() {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE TABLE events (id int, at date) PARTITION BY RANGE (at); \
         CREATE TABLE events_2019 PARTITION OF events FOR VALUES FROM ('2019-01-01') TO ('2020-01-01'); \
         CREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01') \
           PARTITION BY RANGE (at); \
         CREATE TABLE events_2020a PARTITION OF events_2020 FOR VALUES FROM ('2020-01-01') TO ('2020-07-01'); \
         INSERT INTO events VALUES (1, '2020-05-05')",
    );
    let text = "[[table]]\nname = \"public.events\"\nforbid = [\"truncate\", \"drop\"]\n";
    let policy = compile(&[(std::path::Path::new("events.toml"), text)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let c = connect(p.port(), "app", APP_PW, &db).await;
    let rows = || count(&db, "SELECT count(*) FROM events");
    for sql in ["ALTER TABLE events DETACH PARTITION events_2020", "DROP TABLE events_2020"] {
        let e = run(&c, sql).await.expect_err(sql);
        assert!(e.starts_with("blastwall: refused"), "{sql}: {e}");
        assert!(tree(&db, "events_2020").await.starts_with("events | "), "{sql}");
        assert_eq!(rows().await, 1);
    }
    run(&c, "ALTER TABLE events DETACH PARTITION events_2019").await.unwrap();
    assert!(tree(&db, "events_2019").await.starts_with("events_2019 | "));
    run(&c, "DROP TABLE events_2019").await.unwrap();
    assert!(tree(&db, "events_2019").await.starts_with("dropped | "));
    assert_eq!(rows().await, 1);
    p.stop().await;
}
