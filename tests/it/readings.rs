//! blastwall's counter readings prepared once per session (`precheck::prepared`): a client's
//! `DEALLOCATE ALL` or `DISCARD ALL` is followed (the next counted write prepares the reading
//! again and is counted), and a statement of the client's under blastwall's name — prepared
//! by SQL or by a function, which no command tag shows — never stands in for the reading: the
//! write is refused and undone, checked on the server directly, and the next one is counted.
//! Simple Queries and writes counted in the middle of an extended batch alike.

use crate::harness::*;
use crate::points::{n, refused, uncounted, CASCADES};
use blastwall::policy::file::compile;
use std::path::Path;
use tokio_postgres::SimpleQueryMessage as M;

/// Each parent has three children, parents 1 to 5 two; deleting a parent cascades (policy:
/// `points::CASCADES`, at most two deleted in `kid`).
const SCHEMA: &str = "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 20); \
     CREATE TABLE kid (id serial PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE); \
     INSERT INTO kid (pid) SELECT p FROM generate_series(1, 20) p, generate_series(1, 3); \
     DELETE FROM kid WHERE id IN (SELECT min(id) FROM kid WHERE pid <= 5 GROUP BY pid)";

async fn setup() -> (String, Proxy, tokio_postgres::Client, tokio_postgres::Client) {
    let db = fresh_db("readings");
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(SCHEMA).await.unwrap();
    let p = proxy_with(base_config(), compile(&[(Path::new("cascades.toml"), CASCADES)]).unwrap()).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    (db, p, via, d)
}

/// The names of blastwall's prepared readings on the client's session.
async fn reading_names(via: &tokio_postgres::Client) -> Vec<String> {
    via.query("SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_\\_blastwall\\_r%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A parent with two children: deleting it is counted and kept; one with three: refused.
async fn counted_within_and_over(via: &tokio_postgres::Client, d: &tokio_postgres::Client, within: i32, over: i32) {
    let r = via.simple_query(&format!("DELETE FROM parent WHERE id = {within}")).await.unwrap();
    assert!(matches!(&r[0], M::CommandComplete(1)), "{r:?}");
    assert_eq!(n(d, &format!("SELECT count(*) FROM kid WHERE pid = {within}")).await, 0, "kept");
    let m = refused(via.simple_query(&format!("DELETE FROM parent WHERE id = {over}")).await);
    assert!(m.contains("3 deleted in public.kid"), "{m}");
    assert_eq!(n(d, &format!("SELECT count(*) FROM parent WHERE id = {over}")).await, 1, "undone");
    assert_eq!(n(d, &format!("SELECT count(*) FROM kid WHERE pid = {over}")).await, 3, "undone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_all_and_discard_all_are_followed() {
    let (_db, p, mut via, d) = setup().await;
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 1").await, 2);
    counted_within_and_over(&via, &d, 1, 10).await;
    // Its reach proven (`precheck::reach`), the delete reads differently before and after it.
    assert_eq!(reading_names(&via).await.len(), 2, "the readings are prepared on the session");
    // The client removes every prepared statement: the next counted write prepares it again.
    via.simple_query("DEALLOCATE ALL").await.unwrap();
    assert!(reading_names(&via).await.is_empty());
    counted_within_and_over(&via, &d, 2, 11).await;
    via.simple_query("DISCARD ALL").await.unwrap();
    counted_within_and_over(&via, &d, 3, 12).await;
    // The same through the extended protocol: a counted Execute in the middle of a batch.
    via.simple_query("DEALLOCATE ALL").await.unwrap();
    let stmt = via.prepare("DELETE FROM parent WHERE id = $1").await.unwrap();
    let t = via.transaction().await.unwrap();
    assert_eq!(t.execute(&stmt, &[&4i32]).await.unwrap(), 1);
    t.commit().await.unwrap();
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 4").await, 0, "kept");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_of_the_clients_under_blastwalls_name_never_reads_the_counters() {
    let (_db, p, mut via, d) = setup().await;
    counted_within_and_over(&via, &d, 1, 10).await;
    let names = reading_names(&via).await;
    assert_eq!(names.len(), 2, "the readings before and after");
    // A reading that says nothing changed, prepared by SQL under blastwall's name: either one.
    let fake = |name: &str| {
        format!(
            "DEALLOCATE \"{name}\"; PREPARE \"{name}\" AS SELECT 'track_counts'::text, 'on'::text, \
             0::int8, 0::int8, 0::int8, 0::oid"
        )
    };
    for (i, name) in names.iter().enumerate() {
        via.simple_query(&fake(name)).await.unwrap();
        let m = refused(via.simple_query("DELETE FROM parent WHERE id = 11").await);
        // Kept in one round trip (`precheck::once`), the check rolls it back and it is counted
        // again on readings prepared anew: refused by its real count.
        assert!(m.contains("missing or was replaced") || m.contains("3 deleted in public.kid"), "{i}: {m}");
        assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 11").await, 3, "undone");
        // blastwall prepares its own again: counted as before.
        counted_within_and_over(&via, &d, 2 + i as i32, 12 + i as i32).await;
    }
    // The same by a function, which no command tag shows, in the middle of an extended batch.
    d.batch_execute(
        "CREATE FUNCTION swap() RETURNS int LANGUAGE plpgsql AS $$ DECLARE n text; BEGIN \
           FOR n IN SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_\\_blastwall\\_r%' LOOP \
             EXECUTE format('DEALLOCATE %I', n); \
             EXECUTE format('PREPARE %I AS SELECT %L::text, %L::text, 0::int8, 0::int8, 0::int8, 0::oid', \
               n, 'track_counts', 'on'); \
           END LOOP; RETURN 1; END $$",
    )
    .await
    .unwrap();
    let _ = via.simple_query("SELECT swap()").await;
    let over = via.prepare("DELETE FROM parent WHERE id = $1").await.unwrap();
    let t = via.transaction().await.unwrap();
    let e = t.execute(&over, &[&13i32]).await.expect_err("refused");
    assert_eq!(e.code().unwrap().code(), "42501", "{e:?}");
    drop(t);
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 13").await, 3, "undone");
    let _ = via.simple_query("SELECT swap()").await;
    let m = refused(via.simple_query("DELETE FROM parent WHERE id = 14").await);
    assert!(m.contains("3 deleted in public.kid") || m.contains("missing or was replaced"), "{m}");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 14").await, 3, "undone");
    counted_within_and_over(&via, &d, 4, 15).await;
    p.stop().await;
}

/// The point writes' assertion (`precheck::point`) is prepared too: replaced by one that always
/// passes, it does not keep a write uncounted once DDL broke the proof — the check behind it
/// rolls the write back, and it is counted and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_point_assertion_keeps_nothing_uncounted() {
    captured_logs();
    let (db, p, via, d) = crate::points::setup().await;
    via.simple_query("DELETE FROM acct WHERE id = 1").await.unwrap();
    assert_eq!(uncounted(&db), 1);
    via.simple_query("DELETE FROM acct WHERE id = 2").await.unwrap();
    assert_eq!(uncounted(&db), 2, "the second runs on the prepared assertion");
    let names = reading_names(&via).await;
    assert_eq!(names.len(), 1, "{names:?}");
    via.simple_query(&format!("DEALLOCATE \"{0}\"; PREPARE \"{0}\" AS SELECT 0::int4", names[0])).await.unwrap();
    d.batch_execute(
        "CREATE FUNCTION sweep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM other WHERE id <= 5; RETURN OLD; END $$; \
         CREATE TRIGGER t_sweep AFTER DELETE ON acct FOR EACH ROW EXECUTE FUNCTION sweep()",
    )
    .await
    .unwrap();
    let m = refused(via.simple_query("DELETE FROM acct WHERE id = 3").await);
    assert!(m.contains("5 deleted in public.other"), "{m}");
    assert_eq!(n(&d, "SELECT count(*) FROM other").await, 50, "the trigger's deletes were undone");
    assert_eq!(n(&d, "SELECT count(*) FROM acct WHERE id = 3").await, 1);
    assert_eq!(uncounted(&db), 2);
    p.stop().await;
}
