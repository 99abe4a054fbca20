//! Issue 11's remaining ways around the guard, each run as its attacker sends it through
//! blastwall in enforce mode with the shipped policies (default + incident), the data checked
//! on the server directly: tautologies that named columns and satisfied `require-where`.

use crate::harness::*;

async fn count(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

fn refused_by(e: &tokio_postgres::Error, rule: &str) -> String {
    let d = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    let m = format!("{} / {}", d.message(), d.detail().unwrap_or_default());
    assert!(d.message().starts_with("blastwall: refused"), "{m}");
    assert!(m.contains(&format!("rule {rule}")), "{m}");
    m
}

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
