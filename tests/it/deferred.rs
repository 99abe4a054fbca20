//! Sixth adversarial pass F4: a session whose temporary schema holds code, with a deferrable
//! foreign key between its temporary tables — whose check, at COMMIT, plans a query over a
//! table whose statistics expression runs that code — made in the same message as the write,
//! or used with BEGIN, the write and COMMIT in one Query or one extended batch. The check runs
//! after every count, so such a write is refused (`guard::taint`), and a write counted in the
//! middle of a batch is refused while the session's temporary tables have deferrable foreign
//! keys (`precheck::identity`). Raw frames through blastwall in enforce mode with the shipped
//! policies, as a DML-only role; the users are counted on the server.

use crate::batches::{pbe, q, sync};
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;

/// The session's code: `imm` deletes every user when the statement running it is a COMMIT;
/// the statistics of `p` run it when a query over `p` is planned.
const SETUP: &[&str] = &[
    "CREATE FUNCTION pg_temp.d() RETURNS void LANGUAGE plpgsql AS \
     $$BEGIN DELETE FROM public.users WHERE auth_source IS NOT NULL; END$$",
    "CREATE FUNCTION pg_temp.imm(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
     $$BEGIN IF current_query() ~* '^\\s*commit' THEN PERFORM pg_temp.d(); END IF; RETURN a; END$$",
    "CREATE TEMP TABLE p(id int primary key, b int)",
    "CREATE STATISTICS pg_temp.st ON (b + pg_temp.imm(7)), id FROM p",
    "INSERT INTO p VALUES (1, 1)",
];

const FK: &str = "CREATE TEMP TABLE c(pid int references p(id) DEFERRABLE INITIALLY DEFERRED)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_foreign_key_of_a_tainted_session_keeps_nothing_uncounted() {
    let db = crate::binds::setup();
    let users = || count(&db, "SELECT count(*) FROM users");
    let before = users().await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    // (a) the foreign key made in the same message as the write, in the client's block;
    // (e) made before, BEGIN, the write and COMMIT in one Query; (b) the same in one batch.
    for case in ["a", "e", "b"] {
        let mut s = startup(px.port(), RAW, &db).await;
        for sql in SETUP {
            run(&mut s, sql).await;
        }
        let r = match case {
            "a" => {
                run(&mut s, "BEGIN").await;
                let r = send(&mut s, &[q(&format!("{FK}; INSERT INTO c VALUES (1)"))]).await;
                let _ = send(&mut s, &[q("COMMIT")]).await;
                r
            }
            "e" => {
                run(&mut s, FK).await;
                send(&mut s, &[q("BEGIN; INSERT INTO c VALUES (1); COMMIT")]).await
            }
            _ => {
                run(&mut s, FK).await;
                send(&mut s, &[pbe("BEGIN"), pbe("INSERT INTO c VALUES (1)"), pbe("COMMIT"), sync()]).await
            }
        };
        assert_eq!(users().await, before, "({case}) the check at COMMIT ran the session's code: {r:?}");
        assert!(r.errors.contains("blastwall: refused"), "({case}) {r:?}");
    }
}

/// Twentieth pass N3: one session's temporary deferrable constraint trigger fires nothing in
/// another session, whose point writes of `users` inside its transaction block run (before,
/// every session's were refused while the first stayed connected). The first session's own
/// write in a block is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_temporary_deferrable_trigger_refuses_nothing_here() {
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut a = startup(px.port(), RAW, &db).await;
    run(
        &mut a,
        "CREATE TEMP TABLE tq (id int); \
         CREATE FUNCTION pg_temp.tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER ct AFTER INSERT ON tq DEFERRABLE INITIALLY DEFERRED \
           FOR EACH ROW EXECUTE FUNCTION pg_temp.tf()",
    )
    .await;
    let mut b = startup(px.port(), RAW, &db).await;
    let r = send(&mut b, &[q("BEGIN; UPDATE users SET plan = 'pro' WHERE id = 1000001; COMMIT")]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 1000001 AND plan = 'pro'").await, 1);
    let r = send(&mut a, &[q("BEGIN; UPDATE users SET plan = 'pro' WHERE id = 1000002; COMMIT")]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    let _ = send(&mut a, &[q("ROLLBACK")]).await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 1000002 AND plan = 'pro'").await, 0);
    px.stop().await;
}
