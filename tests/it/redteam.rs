//! Findings of the red-team review of the statement path, each reproduced as its attacker
//! (or its driver) sent it: message order behind a counted Execute, one namespace for SQL
//! `PREPARE` and protocol Parse, blastwall's own statements leaving the client's unnamed
//! statement and portal alone, and COPY in the extended protocol. Guard bypasses are checked
//! on the server directly; fidelity against the same script run directly.

use crate::batches::*;
use crate::harness::*;

const TIGHT: &str = r#"
[defaults]
mode = "enforce"
max_delete_rows = 3
max_update_rows = 100
"#;

fn close_statement(name: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    msg(b'C', &body)
}

/// G2: nothing the client sent after a counted Execute reaches the server before it, a
/// simple Query included (a ROLLBACK there must roll the write back; a SELECT there sees it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_behind_a_counted_execute_runs_after_it() {
    let proxy = proxy_for(COUNT_ALL).await;
    let script = [
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([pbe("UPDATE parent SET v = 7 WHERE id = 1"), q("ROLLBACK"), sync()].concat()),
        Until(b'Z', 2),
        Send(
            [
                pbe("UPDATE parent SET v = v + 1 WHERE id = 2 RETURNING v"),
                q("SELECT v FROM parent WHERE id = 2"),
                sync(),
            ]
            .concat(),
        ),
        Until(b'Z', 2),
        Send(
            [pbe("DELETE FROM child WHERE id = 3"), q("SELECT count(*) FROM child"), pbe("SELECT 1"), sync()].concat(),
        ),
        Until(b'Z', 2),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// G3: the server ignores a Sync sent while it is in COPY FROM STDIN of an extended batch;
/// the session goes on (another batch, a simple Query) as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_copy_in_leaves_the_session_usable() {
    let proxy = proxy_for(COUNT_ALL).await;
    let copy = [p("", "COPY tc FROM STDIN"), b("", "", &[]), describe(b'P', ""), e("", 0), sync()].concat();
    let script = [
        Send(q("CREATE TEMP TABLE tc (a int)")),
        Until(b'Z', 1),
        // libpq: PQexecParams, PQputCopyData, PQputCopyEnd (CopyDone, then a Sync of its own).
        Send(copy.clone()),
        Until(b'G', 1),
        Send([msg(b'd', b"5\n"), msg(b'c', &[]), sync()].concat()),
        Until(b'Z', 1),
        Send([p("", "UPDATE parent SET v = v + 1 WHERE id = $1"), b("", "", &["1"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send(q("UPDATE parent SET v = v + 1 WHERE id = 2")),
        Until(b'Z', 1),
        // A client that sends no Sync after CopyDone: the next batch answers for both.
        Send(copy),
        Until(b'G', 1),
        Send([msg(b'd', b"6\n"), msg(b'c', &[]), pbe("DELETE FROM child WHERE id = 4"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("SELECT count(*) FROM tc")),
        Until(b'Z', 1),
        // A simple-Query COPY after an extended batch: its Query is answered as usual.
        Send([pbe("SELECT 1"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("COPY tc FROM STDIN")),
        Until(b'G', 1),
        Send([msg(b'd', b"7\n"), msg(b'c', &[])].concat()),
        Until(b'Z', 1),
        Send(q("UPDATE parent SET v = v + 1 WHERE id = 5")),
        Until(b'Z', 1),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// G1: libpq's PQprepare("") + PQexecPrepared(""), an unnamed portal bound in one batch and
/// executed in a later one, and a suspended unnamed portal, around counted writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_unnamed_statement_and_portal_survive_counting() {
    let proxy = proxy_for(COUNT_ALL).await;
    let upd = "UPDATE parent SET v = v + 1 WHERE id = $1";
    let script = [
        Send([p("", upd), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "", &["1"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "", &["2"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([p("", "DELETE FROM child WHERE id = $1"), b("", "", &["5"]), sync()].concat()),
        Until(b'Z', 1),
        Send([e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([p("", "SELECT id FROM parent ORDER BY id"), b("", "", &[]), e("", 2), sync()].concat()),
        Until(b'Z', 1),
        Send([p("u", "UPDATE parent SET v = 9 WHERE id = 9"), b("u", "u", &[]), e("u", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([e("", 2), sync()].concat()),
        Until(b'Z', 1),
        Send(q("COMMIT")),
        Until(b'Z', 1),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// F1/F2: SQL EXECUTE of a name is judged as what the server holds under it now, whether it
/// came from SQL PREPARE or a protocol Parse; in dry-run, what a Parse was accepted for never
/// runs for real. The data is read directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_is_judged_as_what_the_name_holds_now() {
    let proxy = proxy_for(TIGHT).await;
    let over = "DELETE FROM child WHERE id <= 10";
    let swap = |before: Vec<u8>| {
        vec![
            Send(q("PREPARE x AS SELECT 1")),
            Until(b'Z', 1),
            Send(before),
            Until(b'Z', 1),
            Send([close_statement("x"), p("x", over), sync()].concat()),
            Until(b'Z', 1),
            Send(q("EXECUTE x")),
            Until(b'Z', 1),
        ]
    };
    let cases = [
        ("enforce", swap(q("SELECT 2"))),
        ("dry-run", swap(q("SET blastwall.mode = 'dry-run'"))),
        (
            "discard all",
            vec![
                Send(q("PREPARE x AS SELECT 1")),
                Until(b'Z', 1),
                Send(q("DISCARD ALL")),
                Until(b'Z', 1),
                Send([p("x", over), sync()].concat()),
                Until(b'Z', 1),
                Send(q("EXECUTE x")),
                Until(b'Z', 1),
            ],
        ),
        (
            "bound harmless, then deallocated and prepared again",
            vec![
                Send(q("PREPARE x AS SELECT 1")),
                Until(b'Z', 1),
                Send([b("", "x", &[]), e("", 0), sync()].concat()),
                Until(b'Z', 1),
                Send(q("DEALLOCATE x")),
                Until(b'Z', 1),
                Send(q(&format!("PREPARE x AS {over}"))),
                Until(b'Z', 1),
                Send([b("", "x", &[]), e("", 0), sync()].concat()),
                Until(b'Z', 1),
            ],
        ),
        (
            "close skipped",
            vec![
                Send([p("x", over), sync()].concat()),
                Until(b'Z', 1),
                // The Close is skipped after the error, and the second Parse fails (42P05).
                Send([pbe("SELECT 1/0"), close_statement("x"), sync()].concat()),
                Until(b'Z', 1),
                Send([p("x", "SELECT 1"), sync()].concat()),
                Until(b'Z', 1),
                Send(q("EXECUTE x")),
                Until(b'Z', 1),
            ],
        ),
    ];
    for (name, script) in cases {
        let db = db();
        let out = run(proxy.port(), &db, &script).await;
        assert_eq!(children(&db), "400", "{name}: the DELETE ran through EXECUTE: {}", show(&out));
        assert!(out.iter().any(|(t, _)| *t == b'E' || *t == b'N'), "{name}: no refusal or notice: {}", show(&out));
    }
    proxy.stop().await;
}

/// F1/F2, the other side: a name deallocated (SQL) or closed (protocol) and prepared again runs
/// what it holds now, as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_prepared_again_after_deallocate_or_close_match_direct() {
    let proxy = proxy_for(TIGHT).await;
    let script = [
        Send(q("PREPARE x AS DELETE FROM child WHERE id <= 10")),
        Until(b'Z', 1),
        Send(q("DEALLOCATE x")),
        Until(b'Z', 1),
        Send(q("PREPARE x AS SELECT 2")),
        Until(b'Z', 1),
        Send(q("EXECUTE x")),
        Until(b'Z', 1),
        Send([close_statement("x"), sync()].concat()),
        Until(b'Z', 1),
        Send([p("x", "SELECT 3"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("EXECUTE x")),
        Until(b'Z', 1),
        Send(q("DEALLOCATE ALL")),
        Until(b'Z', 1),
        Send(q("PREPARE x AS SELECT 4")),
        Until(b'Z', 1),
        Send(q("EXECUTE x")),
        Until(b'Z', 1),
    ];
    same_as_direct(&proxy, &script).await;
    proxy.stop().await;
}

/// G1, refusals: a held batch refused after its count leaves the client's unnamed statement
/// (prepared in an earlier batch) as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_leaves_the_unnamed_statement_alone() {
    let proxy = proxy_for(TIGHT).await;
    let db = db();
    let script = [
        Send([p("", "SELECT 41 + $1::int"), sync()].concat()),
        Until(b'Z', 1),
        Send([p("d", "DELETE FROM child WHERE id <= 10"), b("d", "d", &[]), e("d", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([b("", "", &["1"]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
    ];
    let out = run(proxy.port(), &db, &script).await;
    assert_eq!(children(&db), "400", "the DELETE over its limit ran: {}", show(&out));
    let last = show(&out);
    assert!(!last.contains("26000") && last.contains("\u{2}42"), "{last}");
    proxy.stop().await;
}

/// Nothing after the CREATE RULE in `mk()`.
const AFTER_RULE_NOTHING: &str = "";

/// A proxy counting deletes (3 at most) and updates of `child`, and a database where `mk()`
/// (SECURITY DEFINER) creates a rule on `t` that deletes every child row on UPDATE, then runs
/// `after`.
async fn rule_maker(after: &str) -> (Proxy, String) {
    let policy = r#"
[defaults]
mode = "enforce"

[[table]]
name = "public.child"
max_delete_rows = 3
max_update_rows = 100
"#;
    let proxy = proxy_for(policy).await;
    let db = db();
    let setup = format!(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1);
         CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
         BEGIN EXECUTE 'CREATE RULE r AS ON UPDATE TO public.t DO ALSO DELETE FROM public.child'; {after} END $$;
         GRANT ALL ON t TO PUBLIC;"
    );
    admin_sql(pg(), &db, &setup);
    (proxy, db)
}

/// F3: a rule created inside a function (which the guard cannot see into) is not missed by
/// the catalog's cached answers: the next UPDATE of the table is counted, and the DELETE its
/// rule adds is refused. The data is read directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_made_inside_a_function_is_not_missed() {
    let (proxy, db) = rule_maker(AFTER_RULE_NOTHING).await;
    let script = [
        Send(q("UPDATE t SET v = 2 WHERE id = 1")),
        Until(b'Z', 1),
        Send(q("SELECT mk()")),
        Until(b'Z', 1),
        Send(q("UPDATE t SET v = 3 WHERE id = 1")),
        Until(b'Z', 1),
    ];
    let out = run(proxy.port(), &db, &script).await;
    assert_eq!(children(&db), "400", "the rule's DELETE ran uncounted: {}", show(&out));
    proxy.stop().await;
}

/// F2, non-transactional writes: a dry run is rolled back, which does not undo setval(); in a
/// dry-run session it is not run at all, whether sent as a Query or parsed and run by EXECUTE.
/// The sequence is read directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_never_moves_a_sequence() {
    let proxy = proxy_for(TIGHT).await;
    let db = db();
    admin_sql(pg(), &db, "CREATE SEQUENCE s; GRANT ALL ON SEQUENCE s TO PUBLIC;");
    let script = [
        Send(q("SET blastwall.mode = 'dry-run'")),
        Until(b'Z', 1),
        Send(q("SELECT setval('s', 500)")),
        Until(b'Z', 1),
        Send([p("x", "SELECT setval('s', 600)"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("EXECUTE x")),
        Until(b'Z', 1),
        Send([b("", "x", &[]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
    ];
    let out = run(proxy.port(), &db, &script).await;
    let last = admin_sql(pg(), &db, "SELECT last_value FROM s");
    assert_eq!(last.trim(), "1", "a dry run moved the sequence: {}", show(&out));
    proxy.stop().await;
}

/// A counted statement parsed before the session switched to dry-run runs as a dry run
/// after the switch, as a Query would (bound and executed at once, or bound in a block and
/// executed after a Sync): rolled back. The data is read directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_parsed_before_dry_run_runs_as_a_dry_run() {
    let proxy = proxy_for(TIGHT).await;
    let db = db();
    // A change of mode stands alone, outside a transaction block, so a portal cannot outlive
    // it; the statement does.
    let script = [
        Send([p("u", "UPDATE parent SET v = 5 WHERE id = 1"), sync()].concat()),
        Until(b'Z', 1),
        Send(q("SET blastwall.mode = 'dry-run'")),
        Until(b'Z', 1),
        Send([b("pu", "u", &[]), e("pu", 0), sync()].concat()),
        Until(b'Z', 1),
        Send(q("BEGIN")),
        Until(b'Z', 1),
        Send([b("pu", "u", &[]), sync()].concat()),
        Until(b'Z', 1),
        Send([e("pu", 0), sync()].concat()),
        Until(b'Z', 1),
        Send(q("COMMIT")),
        Until(b'Z', 1),
        Send([b("", "u", &[]), e("", 0), sync()].concat()),
        Until(b'Z', 1),
        Send([p("", "SELECT 1"), b("", "u", &[]), e("", 0), e("", 0), sync()].concat()),
        Until(b'Z', 1),
    ];
    let out = run(proxy.port(), &db, &script).await;
    let v = admin_sql(pg(), &db, "SELECT v FROM parent WHERE id = 1");
    assert_eq!(v.trim(), "0", "a dry-run session changed data: {}", show(&out));
    proxy.stop().await;
}

/// F3, across sessions: another session that asks the catalog while the function runs (its
/// rule not yet committed) cannot leave a stale answer behind: the answers are dropped again
/// once the call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_made_while_another_session_asks_is_not_missed() {
    let (proxy, db) = rule_maker("PERFORM pg_sleep(1);").await;
    let port = proxy.port();
    let db2 = db.clone();
    let maker = tokio::spawn(async move { run(port, &db2, &[Send(q("SELECT mk()")), Until(b'Z', 1)]).await });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // Asks about t before the rule is committed (its UPDATE then waits for the lock and
    // matches no row, so its rule action deletes nothing).
    run(port, &db, &[Send(q("UPDATE t SET v = 2 WHERE id = -1")), Until(b'Z', 1)]).await;
    maker.await.unwrap();
    let out = run(port, &db, &[Send(q("UPDATE t SET v = 3 WHERE id = 1")), Until(b'Z', 1)]).await;
    assert_eq!(children(&db), "400", "the rule's DELETE ran uncounted: {}", show(&out));
    proxy.stop().await;
}

/// #11 family 4: a view created through blastwall over a limited table, under a name the
/// catalog had already answered for (as nothing: a plain, absent relation), is not judged from
/// that stale answer: CREATE (which writes no row) still drops the cached answers, and an
/// UPDATE of every row through the view is counted and refused. Read directly on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_created_through_blastwall_is_not_judged_from_a_stale_answer() {
    let (proxy, db) = rule_maker(AFTER_RULE_NOTHING).await;
    let sum = || admin_sql(pg(), &db, "SELECT sum(v) FROM child").trim().to_string();
    let before = sum();
    let script = [
        // Asked of the catalog while `v` does not exist: the answer is "nothing reaches further".
        Send(q("UPDATE v SET v = 1 WHERE id = 1")),
        Until(b'Z', 1),
        Send(q("CREATE VIEW v AS SELECT * FROM child")),
        Until(b'Z', 1),
        Send(q("UPDATE v SET v = v + 1 WHERE id > 0")),
        Until(b'Z', 1),
    ];
    let out = run(proxy.port(), &db, &script).await;
    assert!(show(&out).contains("blastwall"), "the UPDATE through the view was not refused: {}", show(&out));
    assert_eq!(sum(), before, "every child row was updated through the new view: {}", show(&out));
    proxy.stop().await;
}
