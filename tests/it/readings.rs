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

pub(crate) async fn setup() -> (String, Proxy, tokio_postgres::Client, tokio_postgres::Client) {
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

/// The rows' first values of a raw Query's answer.
async fn raw_rows(s: &mut tokio::net::TcpStream, sql: &str) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&msg(b'Q', &q)).await.unwrap();
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 5];
        s.read_exact(&mut h).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize - 4];
        s.read_exact(&mut body).await.unwrap();
        match h[0] {
            b'D' => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                out.push(String::from_utf8_lossy(&body[6..6 + len.max(0) as usize]).into_owned());
            }
            b'E' => out.push(format!("error: {}", String::from_utf8_lossy(&body))),
            b'Z' => return out,
            _ => {}
        }
    }
}

/// A client's own protocol Parse under blastwall's name (which, unlike SQL `PREPARE`, leaves
/// `from_sql` false) of a reading that says nothing changed: the check compares the text, so
/// the write over its limit is refused and undone all the same (checked on the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_parse_of_the_clients_under_blastwalls_name_never_reads_the_counters() {
    use tokio::io::AsyncWriteExt;
    let (db, p, _via, d) = setup().await;
    d.batch_execute("GRANT SELECT, DELETE ON parent, kid TO trust_user").await.unwrap();
    let mut s = startup(p.port(), "trust_user", &db).await;
    assert_eq!(raw_rows(&mut s, "DELETE FROM parent WHERE id = 1").await, Vec::<String>::new());
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 1").await, 0, "counted and kept");
    let names =
        raw_rows(&mut s, "SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_\\_blastwall\\_r%'").await;
    assert_eq!(names.len(), 2, "the readings before and after: {names:?}");
    let fake = "SELECT 'track_counts'::text, 'on'::text, 0::int8, 0::int8, 0::int8, 0::oid";
    for (i, name) in names.iter().enumerate() {
        let mut close = vec![b'S'];
        close.extend_from_slice(name.as_bytes());
        close.push(0);
        let batch = [msg(b'C', &close), parse(name, fake), msg(b'S', &[])].concat();
        s.write_all(&batch).await.unwrap();
        let r = replies(&mut s).await;
        assert!(r.codes.is_empty() && r.tags.contains('1'), "the client's Parse ran: {r:?}");
        let from_sql =
            raw_rows(&mut s, &format!("SELECT from_sql::text FROM pg_prepared_statements WHERE name = '{name}'")).await;
        assert_eq!(from_sql, ["false"], "protocol-prepared, as blastwall's are");
        let over = 11 + i as i32;
        let r = raw_rows(&mut s, &format!("DELETE FROM parent WHERE id = {over}")).await;
        assert!(r.len() == 1 && r[0].contains("42501"), "{i}: refused: {r:?}");
        assert_eq!(n(&d, &format!("SELECT count(*) FROM kid WHERE pid = {over}")).await, 3, "{i}: undone");
        assert_eq!(n(&d, &format!("SELECT count(*) FROM parent WHERE id = {over}")).await, 1, "{i}: undone");
        // blastwall prepares its own again: a write within the limits is kept.
        assert_eq!(raw_rows(&mut s, &format!("DELETE FROM parent WHERE id = {}", 2 + i)).await, Vec::<String>::new());
        assert_eq!(n(&d, &format!("SELECT count(*) FROM kid WHERE pid = {}", 2 + i)).await, 0, "{i}: kept");
    }
    p.stop().await;
}

/// A function that deallocates every prepared statement (`DEALLOCATE ALL` by dynamic SQL, whose
/// command tag the client never sees; `DISCARD ALL` cannot run in a function): the next
/// counted write finds its readings gone, is counted on readings prepared anew, and is refused
/// over its limit with nothing changed (checked on the server), kept within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_deallocates_every_statement_leaves_nothing_uncounted() {
    let (_db, p, via, d) = setup().await;
    counted_within_and_over(&via, &d, 1, 10).await;
    d.batch_execute(
        "CREATE FUNCTION drop_all() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN 1; END $$",
    )
    .await
    .unwrap();
    let e = d
        .batch_execute(
            "CREATE FUNCTION discard() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DISCARD ALL'; RETURN 1; END $$; \
             SELECT discard()",
        )
        .await
        .expect_err("PostgreSQL's own rule");
    let m = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(m.starts_with("DISCARD ALL cannot"), "{e:?}");
    for (within, over) in [(2, 11), (3, 12)] {
        // The call itself is counted: its check finds the readings gone and refuses it, but a
        // DEALLOCATE is not undone by a rollback.
        let _ = via.simple_query("SELECT drop_all()").await;
        assert!(reading_names(&via).await.is_empty(), "gone, and no tag said so");
        counted_within_and_over(&via, &d, within, over).await;
        assert_eq!(reading_names(&via).await.len(), 2, "prepared anew");
    }
    p.stop().await;
}

/// The check of the prepared readings of a write kept in one batch is parsed once into the
/// session's unnamed statement and then only bound (`precheck::prepared::check_unnamed`), only
/// while nothing of the client's reached the server since. A client puts a check of its own
/// that always passes into the unnamed statement (its own protocol Parse), and a trigger added
/// on a direct connection after the proof was cached deletes more children and replaces the
/// readings by SQL `PREPARE` from inside the write: the check, parsed anew since the client's
/// Parse, finds them replaced; nothing stays (checked on the server directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_of_the_clients_in_the_unnamed_statement_is_never_trusted() {
    use tokio::io::AsyncWriteExt;
    let (db, p, _via, d) = setup().await;
    d.batch_execute("GRANT SELECT, DELETE ON parent, kid TO trust_user").await.unwrap();
    let mut s = startup(p.port(), "trust_user", &db).await;
    assert_eq!(raw_rows(&mut s, "DELETE FROM parent WHERE id = 1").await, Vec::<String>::new());
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid = 1").await, 0, "counted and kept");
    // A check that passes whatever it is given: the names and texts of two readings.
    let passes = "SELECT 0::int4 WHERE $1::text IS NOT NULL OR $2::text IS NOT NULL \
                  OR $3::text IS NOT NULL OR $4::text IS NOT NULL";
    s.write_all(&[parse("", passes), msg(b'S', &[])].concat()).await.unwrap();
    let r = replies(&mut s).await;
    assert!(r.codes.is_empty() && r.tags.contains('1'), "the client's Parse ran: {r:?}");
    d.batch_execute(
        r#"CREATE FUNCTION swap() RETURNS trigger LANGUAGE plpgsql AS $$
           DECLARE r record;
           BEGIN
             IF EXISTS (SELECT FROM kid WHERE pid = 20) THEN DELETE FROM kid WHERE pid = 20; END IF;
             FOR r IN SELECT name FROM pg_prepared_statements WHERE name LIKE '\_\_blastwall\_r%' AND NOT from_sql LOOP
               EXECUTE format('DEALLOCATE %I', r.name);
               EXECUTE format('PREPARE %I AS SELECT %L::text, %L::text, 0::int8, 0::int8, 0::int8, 0::oid',
                 r.name, 'track_counts', 'on');
             END LOOP;
             RETURN NULL;
           END $$;
           CREATE TRIGGER t_swap AFTER DELETE ON kid FOR EACH STATEMENT EXECUTE FUNCTION swap()"#,
    )
    .await
    .unwrap();
    let r = raw_rows(&mut s, "DELETE FROM parent WHERE id = 2").await;
    assert!(r.len() == 1 && r[0].contains("42501"), "refused: {r:?}");
    assert_eq!(n(&d, "SELECT count(*) FROM kid WHERE pid IN (2, 20)").await, 5, "undone");
    assert_eq!(n(&d, "SELECT count(*) FROM parent WHERE id = 2").await, 1, "undone");
    p.stop().await;
}
