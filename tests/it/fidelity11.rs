//! Issue 11, protocol fidelity: what the server says is what the client gets when nothing
//! guarded is at stake, raw protocol scripts compared directly and through blastwall.
//! - An Execute of a portal that does not exist — first in its batch, in the middle of one,
//!   in a fresh session (whose taint blastwall has yet to ask) or in one whose temporary
//!   schema holds code — gets the server's `34000`, not a refusal.
//! - Syncs around a `COPY … FROM STDIN` (behind its Execute, in its data, after its error, in
//!   place of CopyDone) are answered as the server answers them, and a counted write after
//!   them is answered.
//! - A message behind a COPY the server already ended (a bad row) runs as it does directly.
//!   (Writes there that must be counted or are refused: `copy_in`, data checked on the server.)
//! - A session whose temporary schema holds code (every statement counted) runs its
//!   `DEALLOCATE ALL` and `DISCARD ALL`; its counted writes stay counted (data checked directly).

use crate::batches::*;
use crate::harness::*;

/// blastwall with the shipped policies (default + incident).
async fn shipped() -> Proxy {
    proxy_with(base_config(), shipped_policy()).await
}

/// An incident database the raw-protocol role may write.
fn incident() -> String {
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC");
    db
}

/// The script directly and through blastwall, each on a fresh incident database: the same
/// messages (the backend key aside).
async fn same_on_incident(proxy: &Proxy, script: &[Step]) -> Vec<Msg> {
    let direct = run(pg().server.port, &incident(), script).await;
    let via = run(proxy.port(), &incident(), script).await;
    assert_eq!(show(&via), show(&direct), "through blastwall (left) and direct (right) differ");
    via
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_of_a_missing_portal_gets_the_servers_answer() {
    let proxy = shipped().await;
    let taint = q("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    let scripts: Vec<(Vec<u8>, usize)> = vec![
        ([e("nope", 0), sync()].concat(), 1),
        ([e("nope", 0), e("nope2", 0), sync()].concat(), 1),
        ([q("SELECT 1"), e("nope", 0), e("nope2", 0), sync()].concat(), 2),
        ([taint.clone(), e("nope", 0), sync()].concat(), 2),
        ([taint.clone(), pbe("SELECT 1"), e("nope", 0), sync()].concat(), 2),
        ([taint.clone(), p("", "SELECT 1"), flush(), e("nope", 0), sync()].concat(), 2),
        ([pbe("SELECT 1"), e("nope", 0), sync()].concat(), 1),
        ([q("BEGIN"), pbe("SELECT 1"), e("nope", 0), sync(), q("COMMIT")].concat(), 3),
        ([pbe("SELECT 1"), sync(), e("nope", 0), sync()].concat(), 2),
    ];
    for (script, ready) in scripts {
        let via = same_on_incident(&proxy, &[Send(script), Until(b'Z', ready)]).await;
        assert!(show(&via).contains("C34000"), "{}", show(&via));
    }
    proxy.stop().await;
}

const COPY: &str = "COPY parent (id, v) FROM STDIN";

fn copy_data(rows: &str) -> Vec<u8> {
    msg(b'd', rows.as_bytes())
}

fn copy_done() -> Vec<u8> {
    msg(b'c', &[])
}

/// A COPY the server fails before it reads a message (after its CopyInResponse): `FREEZE` of
/// a table not made in the transaction.
const FREEZE: &str = "COPY parent (id, v) FROM STDIN (FREEZE)";

/// Syncs around a COPY FROM STDIN: the server ignores the ones it reads in the COPY and
/// answers the ones it reads after the COPY's error; the client gets the ReadyForQuery the
/// server sends, no more, no less, and the session goes on (a counted write after it, which
/// waits for the server to be idle, is answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_around_a_copy_are_answered_as_the_server_answers_them() {
    let proxy = proxy_for(COUNT_ALL).await;
    let bad = || copy_data("not a number\t1\n");
    let good = || copy_data("901\t1\n");
    // A counted write: it waits for the server to be idle, which it must then be.
    let after = || [Send(q("UPDATE parent SET v = v + 1 WHERE id > 190")), Until(b'Z', 1)];
    let execute = [pbe(COPY), sync()].concat();
    let scripts: Vec<Vec<Step>> = vec![
        // An Execute's COPY, a bad row, then a Sync in place of CopyDone (read after the error).
        vec![Send(execute.clone()), Until(b'G', 1), Send(bad()), Until(b'E', 1), Send(sync()), Until(b'Z', 1)],
        // The same Sync sent with the bad row, before the error was read.
        vec![Send(execute.clone()), Until(b'G', 1), Send([bad(), sync()].concat()), Until(b'Z', 1)],
        // libpq's way: Sync behind the Execute, data, CopyDone, Sync; good and bad.
        vec![Send(execute.clone()), Until(b'G', 1), Send([good(), copy_done(), sync()].concat()), Until(b'Z', 1)],
        vec![
            Send(execute.clone()),
            Until(b'G', 1),
            Send([bad(), good(), copy_done(), sync()].concat()),
            Until(b'Z', 1),
        ],
        // All in one write, the data not waiting for CopyInResponse.
        vec![
            Send([execute.clone(), good(), sync(), copy_data("902\t2\n"), copy_done(), sync()].concat()),
            Until(b'Z', 1),
        ],
        // Syncs in the middle of the data (ignored), then CopyDone.
        vec![
            Send(execute.clone()),
            Until(b'G', 1),
            Send([good(), sync(), sync(), copy_data("902\t2\n"), copy_done(), sync()].concat()),
            Until(b'Z', 1),
        ],
        // A COPY that fails before it reads a message (FREEZE): the Sync behind
        // its Execute is read after the error and answered; CopyDone is dropped, its Sync
        // answered too.
        vec![
            Send([pbe(FREEZE), sync()].concat()),
            Until(b'Z', 1),
            Send([copy_done(), sync()].concat()),
            Until(b'Z', 1),
        ],
        vec![Send(q(FREEZE)), Until(b'Z', 1), Send(sync()), Until(b'Z', 1)],
        // A Query's COPY: a Sync in the data is ignored; one after a bad row is answered.
        vec![Send(q(COPY)), Until(b'G', 1), Send([good(), sync(), copy_done()].concat()), Until(b'Z', 1)],
        vec![Send(q(COPY)), Until(b'G', 1), Send([bad(), sync()].concat()), Until(b'Z', 2)],
        vec![Send([q(COPY), sync()].concat()), Until(b'G', 1), Send([good(), copy_done()].concat()), Until(b'Z', 1)],
    ];
    for mut script in scripts {
        script.extend(after());
        let via = same_as_direct(&proxy, &script).await;
        assert!(show(&via).contains("\nC UPDATE "), "{}", show(&via));
    }
    proxy.stop().await;
}

/// A message other than the COPY's own sent behind a COPY the server has already ended (a bad
/// row), before blastwall read the error: judged like any other and, allowed, it runs as it
/// does directly (after a Query's COPY; after an Execute's, the server skips it to Sync) —
/// also one that must be counted (held until the server's error is read, then counted where
/// it stands), alone or behind another message of the same write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_behind_a_copy_the_server_ended_runs_as_directly() {
    let proxy = proxy_for(COUNT_ALL).await;
    let bad = copy_data("not a number\t1\n");
    let insert = "INSERT INTO parent (id) VALUES (903)";
    // Each with the number of statements it runs where the server reads it as usual.
    let intruders = [
        (q("SELECT 1"), 1),
        (q(insert), 1),
        ([pbe("SELECT 2"), sync()].concat(), 1),
        ([pbe(insert), sync()].concat(), 1),
        ([p("s", "SELECT 3"), describe(b'S', "s"), sync()].concat(), 0),
        (q("DELETE FROM parent WHERE id = 150"), 1),
        (q("UPDATE parent SET v = v + 1 WHERE id > 190"), 1),
        ([pbe("UPDATE parent SET v = v + 1 WHERE id > 190"), sync()].concat(), 1),
        ([p("", "DELETE FROM parent WHERE id = 151"), b("", "", &[]), flush(), e("", 0), sync()].concat(), 1),
        ([q("SELECT 4"), q("DELETE FROM parent WHERE id = 152")].concat(), 2),
    ];
    for (intruder, runs) in intruders {
        // After an Execute's COPY the server skips the intruder up to the Sync behind it.
        for (start, runs) in [(q(COPY), runs), ([pbe(COPY), sync()].concat(), 0)] {
            let script = [
                Send(start),
                Until(b'G', 1),
                Send([bad.clone(), intruder.clone(), sync()].concat()),
                Until(b'Z', 1),
                Send(q("SELECT count(*) FROM parent")),
                Until(b'C', runs + 1),
            ];
            same_as_direct(&proxy, &script).await;
        }
    }
    proxy.stop().await;
}

/// A session whose temporary schema holds code counts every statement: its `DEALLOCATE ALL`
/// (by Query or by protocol) and `DISCARD ALL` run, and the next counted writes are counted
/// on readings prepared anew (refused over the limit, data checked on the server directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tainted_sessions_deallocate_all_runs() {
    use crate::points::{n, refused};
    use tokio_postgres::SimpleQueryMessage as M;
    let (_db, p, via, d) = crate::readings::setup().await;
    // Code without a user function (a default calling `set_config`): every statement counted,
    // and writes of the session's own kind still explained.
    let taint = "CREATE TEMP TABLE tt (x text DEFAULT pg_catalog.set_config('application_name', 'x', false))";
    via.batch_execute(taint).await.unwrap();
    let readings = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_\\_blastwall\\_r%'";
    let mine = "SELECT count(*) FROM pg_prepared_statements WHERE name = 'mine'";
    for (i, (within, over)) in [(1, 10), (2, 11), (3, 12), (4, 13)].into_iter().enumerate() {
        let r = via.simple_query(&format!("DELETE FROM parent WHERE id = {within}")).await.unwrap();
        assert!(matches!(&r[0], M::CommandComplete(1)), "{r:?}");
        let m = refused(via.simple_query(&format!("DELETE FROM parent WHERE id = {over}")).await);
        assert!(m.contains("3 deleted in public.kid"), "{m}");
        assert_eq!(n(&d, &format!("SELECT count(*) FROM kid WHERE pid IN ({within}, {over})")).await, 3);
        let prepared: i64 = via.query_one(readings, &[]).await.unwrap().get(0);
        assert!(prepared > 0, "the readings are prepared on the session");
        via.batch_execute("PREPARE mine AS SELECT 1").await.unwrap();
        match i {
            0 => via.batch_execute("DEALLOCATE ALL").await.unwrap(),
            1 => assert_eq!(via.execute("DEALLOCATE ALL", &[]).await.unwrap(), 0),
            _ => {
                via.batch_execute("DISCARD ALL").await.unwrap();
                via.batch_execute(taint).await.unwrap();
            }
        }
        // (Every statement of the session is counted: its check prepares the readings again.)
        let left: i64 = via.query_one(mine, &[]).await.unwrap().get(0);
        assert_eq!(left, 0, "the client's DEALLOCATE ALL ran");
    }
    p.stop().await;
}
