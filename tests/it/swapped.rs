//! Twenty-seventh pass H1: a policy table swapped out — renamed or moved, and a new table or a
//! compatibility view made under the policy's name — keeps its row limits. The count reads
//! the relation remembered for the policy table while it exists, and what holds its name now
//! with it (`precheck::stats::tree_sql`); before, only the name's relation was read, so the
//! old table's rows went uncounted ("change no rows") through either name. Every outcome is
//! read directly on the server.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

const POLICY: &str = r#"
[[table]]
name = "public.subs"
max_delete_rows = 10
max_update_rows = 10
"#;

fn message(e: tokio_postgres::Error) -> String {
    e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())
}

/// `subs` of 60 rows, owned by `app`, in a database of its own.
fn subs_db(prefix: &str) -> String {
    let db = fresh_db(prefix);
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE TABLE subs (id int PRIMARY KEY, plan text); \
         INSERT INTO subs SELECT g, CASE WHEN g <= 40 THEN 'free' ELSE 'paid' END FROM generate_series(1, 60) g",
    );
    db
}

/// A write over the limit through the old table's new name, and through a view under the
/// policy's name: refused, nothing changed. Within the limit: runs.
async fn over_the_limit_by_every_name(via: &tokio_postgres::Client, db: &str, old: &str, renamed: bool) {
    let left = |db: String, old: String| async move { count(&db, &format!("SELECT count(*) FROM {old}")).await };
    for sql in [
        format!("DELETE FROM {old} WHERE plan = 'free'"),
        format!("UPDATE {old} SET plan = 'gone' WHERE plan = 'free'"),
    ] {
        let e = message(via.simple_query(&sql).await.expect_err(&sql));
        assert!(e.contains("over its limit of 10"), "{sql}: {e}");
    }
    assert_eq!(left(db.to_string(), old.to_string()).await, 60, "renamed: {renamed}");
    assert_eq!(count(db, &format!("SELECT count(*) FROM {old} WHERE plan = 'free'")).await, 40);
    via.simple_query(&format!("DELETE FROM {old} WHERE id BETWEEN 1 AND 3")).await.unwrap();
    assert_eq!(left(db.to_string(), old.to_string()).await, 57);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_swapped_out_keeps_its_limits_by_either_name() {
    let db = subs_db("swapped");
    let policy = compile(&[(Path::new("swap.toml"), POLICY)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    // blastwall learns the table's OID from a counted write.
    let e = message(via.simple_query("DELETE FROM subs WHERE plan = 'free'").await.unwrap_err());
    assert!(e.contains("over its limit of 10"), "{e}");
    // The swap, through blastwall (the policy forbids no rename).
    via.batch_execute("ALTER TABLE subs RENAME TO subs_old").await.unwrap();
    via.batch_execute("CREATE TABLE subs (LIKE subs_old INCLUDING ALL)").await.unwrap();
    over_the_limit_by_every_name(&via, &db, "subs_old", true).await;
}

/// The usual zero-downtime rename: the table renamed and a view over it made under the old
/// name. The application's own statement, through the policy's name, keeps the limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_renamed_behind_a_compatibility_view_keeps_its_limits() {
    let db = subs_db("swapped_view");
    let policy = compile(&[(Path::new("swap.toml"), POLICY)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM subs WHERE id BETWEEN 1 AND 3").await.unwrap();
    via.batch_execute("ALTER TABLE subs RENAME TO subs_old").await.unwrap();
    via.batch_execute("CREATE VIEW subs AS SELECT * FROM subs_old").await.unwrap();
    for sql in ["DELETE FROM subs WHERE plan = 'free'", "UPDATE subs SET plan = 'gone' WHERE plan = 'free'"] {
        let e = message(via.simple_query(sql).await.expect_err(sql));
        assert!(e.contains("over its limit of 10"), "{sql}: {e}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM subs_old WHERE plan = 'free'").await, 37);
    via.simple_query("DELETE FROM subs WHERE id BETWEEN 4 AND 6").await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM subs_old").await, 54);
}

/// The swap made on a direct connection, and a schema move, after blastwall learned the OID:
/// the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_swapped_out_on_a_direct_connection_or_moved_keeps_its_limits() {
    let db = subs_db("swapped_direct");
    let policy = compile(&[(Path::new("swap.toml"), POLICY)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = message(via.simple_query("DELETE FROM subs WHERE plan = 'free'").await.unwrap_err());
    assert!(e.contains("over its limit of 10"), "{e}");
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; CREATE SCHEMA old; ALTER TABLE subs SET SCHEMA old; \
         CREATE TABLE public.subs (LIKE old.subs INCLUDING ALL); \
         INSERT INTO public.subs SELECT g, 'free' FROM generate_series(1, 30) g",
    );
    over_the_limit_by_every_name(&via, &db, "old.subs", false).await;
    // The table that took the name is limited too.
    let e = message(via.simple_query("DELETE FROM public.subs WHERE plan = 'free'").await.unwrap_err());
    assert!(e.contains("over its limit of 10"), "{e}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.subs").await, 30);
}

/// Twenty-eighth pass N2: the swap made on a direct connection before blastwall judged any
/// write in the database (its sessions there only read): the policy table's OID was learned
/// when the first session started (`session::firstlook`), so the old table keeps its limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_swapped_before_any_write_was_judged_keeps_its_limits() {
    let db = subs_db("swapped_early");
    let policy = compile(&[(Path::new("swap.toml"), POLICY)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT count(*) FROM subs").await.unwrap();
    admin_sql(
        pg(),
        &db,
        "SET ROLE app; ALTER TABLE subs RENAME TO subs_old; CREATE TABLE subs (LIKE subs_old INCLUDING ALL)",
    );
    over_the_limit_by_every_name(&via, &db, "subs_old", true).await;
}
