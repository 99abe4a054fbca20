//! Twelfth adversarial pass: a role's membership and owners re-point names (H1–H3), and a
//! superuser's row writes to the system catalogs (M2).
//!
//! H1–H3 share one setup: `archive.users`, a copy of the incident's `users`, in a schema owned
//! by a NOLOGIN role the DML-only role is an (INHERIT) member of — its only way into `archive`.
//! Under `search_path = archive, public` the range DELETE is judged as a write to
//! `archive.users`; take the membership or the ownership away before the server reaches it
//! and it deletes the ten real users of `public.users` instead. Data checked directly on the
//! server.

use crate::batches::q;
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const RANGE: &str = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";

async fn window(db: &str, table: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM {table} WHERE id BETWEEN -91111120 AND -91111111")).await
}

/// The incident's database with `archive.users` owned by a role of its own (returned), the
/// DML-only role its member (`admin`: with ADMIN OPTION).
fn archive_setup(admin: bool) -> (String, String) {
    let db = crate::binds::setup();
    let owner = format!("arch_{db}");
    let with = if admin { " WITH ADMIN OPTION" } else { "" };
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE ROLE {owner} NOLOGIN; CREATE SCHEMA archive AUTHORIZATION {owner}; \
             CREATE TABLE archive.users AS SELECT * FROM public.users; ALTER TABLE archive.users OWNER TO {owner}; \
             GRANT {owner} TO {RAW}{with};"
        ),
    );
    (db, owner)
}

/// The DML-only role's session under `search_path = archive, public`, its range DELETE sent
/// behind a slow statement (the replies are read later).
async fn slow_range_delete(port: u16, db: &str) -> tokio::net::TcpStream {
    let mut c = startup(port, RAW, db).await;
    run(&mut c, "SET search_path = archive, public").await;
    run(&mut c, "SELECT count(*) FROM users").await;
    c.write_all(&q(&format!("SELECT pg_sleep(1.5); {RANGE}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c
}

/// H1: `REASSIGN OWNED BY` the archive's owner takes the schema (and its USAGE) away from its
/// members: it waits for the range DELETE judged before it, which deletes the archive's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassign_owned_waits_for_a_write_judged_before_it() {
    let (db, owner) = archive_setup(false);
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = slow_range_delete(px.port(), &db).await;
    let dba = connect(px.port(), "postgres", SUPERUSER_PW, &db).await;
    dba.batch_execute(&format!("REASSIGN OWNED BY {owner} TO migrator")).await.expect("the reassign runs");
    the_archive_was_written(&db, &mut c, "reassign").await;
}

/// The slow DELETE's replies, and the rows it deleted: the archive's, judged, not the real
/// users (`after`: what ran while it waited).
async fn the_archive_was_written(db: &str, c: &mut tokio::net::TcpStream, after: &str) {
    let r = crate::harness::replies(c).await;
    assert_eq!(window(db, "public.users").await, 10, "real users were deleted after the {after}: {r:?}");
    // Or, where the DDL committed between the DELETE and blastwall's reading after it, the
    // DELETE was refused by that reading (`precheck::named`: the schema it went through
    // changed while it ran) and rolled back: nothing of either table deleted.
    if r.errors.contains("rule identity") && r.errors.contains("changed while it ran") {
        assert_eq!(window(db, "archive.users").await, 10, "refused, and rolled back: {r:?}");
        return;
    }
    assert_eq!(window(db, "archive.users").await, 0, "the archive's rows were the ones judged: {r:?}");
}

/// H2: `REVOKE owner FROM app` (a role's membership) waits for the range DELETE judged
/// before it. Without waiting, the server keeps its path until a `pg_namespace` change, which
/// the app itself makes: another of its sessions' first temporary table (a new `pg_temp_N`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_membership_waits_for_a_write_judged_before_it() {
    let (db, owner) = archive_setup(false);
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = slow_range_delete(px.port(), &db).await;
    let dba = connect(px.port(), "postgres", SUPERUSER_PW, &db).await;
    let revoke = async { dba.batch_execute(&format!("REVOKE {owner} FROM {RAW}")).await.expect("the revoke runs") };
    let invalidate = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut t = startup(px.port(), RAW, &db).await;
        run(&mut t, "CREATE TEMP TABLE tt (a int)").await;
    };
    tokio::join!(revoke, invalidate);
    the_archive_was_written(&db, &mut c, "revoke").await;
}

/// H3: the app's own `REVOKE owner FROM app` earlier in the same message (it holds the admin
/// option), then the same `search_path` again (the server computes it anew), then the range
/// DELETE: the DELETE's name cannot be resolved before the message runs, and it is refused as
/// a write to `public.users`; so with a table's GRANT before the REVOKE. A table's GRANT alone
/// changes no lookup: the DELETE is judged (and runs) as a write to `archive.users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_revoked_earlier_in_the_message_leaves_the_name_unresolved() {
    let (db, owner) = archive_setup(true);
    let px = proxy_with(base_config(), shipped_policy()).await;
    for message in [
        format!("REVOKE {owner} FROM {RAW}; SET search_path = archive, public; {RANGE}"),
        format!("GRANT SELECT ON archive.users TO migrator; REVOKE {owner} FROM {RAW}; {RANGE}"),
        format!("REASSIGN OWNED BY {owner} TO migrator; SET search_path = archive, public; {RANGE}"),
    ] {
        let mut c = startup(px.port(), RAW, &db).await;
        run(&mut c, "SET search_path = archive, public").await;
        run(&mut c, "SELECT count(*) FROM users").await;
        let r = send(&mut c, &[q(&message)]).await;
        assert!(r.errors.contains("blastwall: refused"), "{message}: {r:?}");
        assert_eq!(window(&db, "public.users").await, 10, "{message}: real users deleted");
        assert_eq!(window(&db, "archive.users").await, 10, "{message}: ran");
        let members = count(&db, &format!("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = '{owner}'")).await;
        assert_eq!(members, 1, "{message}: the revoke ran");
    }
    // A table the policy tables' owner owns: since the sixty-sixth pass a mention of one
    // another role owns (`archive.users`) may run code that changes what later names are.
    admin_sql(
        pg(),
        &db,
        &format!("CREATE TABLE public.gt (a int); GRANT SELECT ON public.gt TO {RAW} WITH GRANT OPTION"),
    );
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = archive, public").await;
    let r = send(&mut c, &[q(&format!("GRANT SELECT ON public.gt TO migrator; {RANGE}"))]).await;
    assert!(r.codes.is_empty(), "a table's grant made the write unresolved: {r:?}");
    assert_eq!((window(&db, "public.users").await, window(&db, "archive.users").await), (10, 0));
}

/// M2: a superuser's row writes to system catalogs through blastwall in enforce mode — the
/// protected sequence reversed in `pg_sequence`, `users` made unlogged in `pg_class`,
/// `public` renamed in `pg_namespace`, `users`' key triggers switched off in `pg_trigger`
/// (also in a writable CTE, with the schema in another case, and through views over
/// `pg_sequence` and `pg_trigger` of other names, found by what they resolve to) — are
/// refused `catalog-write`, and the catalogs are as they were. Reading them runs, and so does
/// a write to a table of the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superusers_catalog_writes_are_refused() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        "CREATE VIEW seqdefs AS SELECT * FROM pg_catalog.pg_sequence; CREATE VIEW seqdefs2 AS SELECT * FROM seqdefs; \
         CREATE SCHEMA ops; CREATE VIEW ops.trig AS SELECT * FROM pg_catalog.pg_trigger",
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let dba = connect(px.port(), "postgres", SUPERUSER_PW, &db).await;
    for sql in [
        "UPDATE pg_catalog.pg_sequence SET seqincrement = -1 WHERE seqrelid = 'public.web_user_id_seq'::regclass",
        "UPDATE PG_CATALOG.pg_class SET relpersistence = 'u' WHERE oid = 'public.users'::regclass",
        "UPDATE pg_namespace SET nspname = 'public_old' WHERE nspname = 'public'",
        "UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'public.users'::regclass",
        "WITH t AS (UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'public.users'::regclass RETURNING 1) SELECT count(*) FROM t",
        "UPDATE seqdefs SET seqincrement = -1 WHERE seqrelid = 'public.web_user_id_seq'::regclass",
        "UPDATE seqdefs2 SET seqincrement = -1 WHERE seqrelid = 'public.web_user_id_seq'::regclass",
        "UPDATE ops.trig SET tgenabled = 'D' WHERE tgrelid = 'public.users'::regclass",
    ] {
        let e = dba.batch_execute(sql).await.expect_err(sql);
        refused_by(&e, "catalog-write");
    }
    let changed = "SELECT (SELECT count(*) FROM pg_sequence WHERE seqincrement <> 1) \
                   + (SELECT count(*) FROM pg_class WHERE relpersistence = 'u') \
                   + (SELECT count(*) FROM pg_namespace WHERE nspname = 'public_old') \
                   + (SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D')";
    assert_eq!(count(&db, changed).await, 0, "a catalog was written");
    let n: i64 = dba.query_one("SELECT count(*) FROM pg_catalog.pg_class", &[]).await.unwrap().get(0);
    assert!(n > 0);
    dba.batch_execute("UPDATE web_messages SET body = 'x' WHERE id = 1").await.expect("a table's write runs");
}

/// H2's rest: a membership revoked on a direct connection (blastwall sees nothing of it) while
/// a session of the role is open. The session's server keeps the search path it computed
/// before until a `pg_namespace` change, so asking it (`to_regclass`) still leads `users` to
/// `archive.users`; a range DELETE judged so behind a slow statement, and a schema made
/// meanwhile (any session can make one: its first temporary table), and the DELETE runs on
/// `public.users`. The name is judged as every relation it may be: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_kept_from_before_a_revoke_leaves_the_name_unresolved() {
    let (db, owner) = archive_setup(false);
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = archive, public").await;
    run(&mut c, "SELECT count(*) FROM users").await;
    admin_sql(pg(), &db, &format!("REVOKE {owner} FROM {RAW}"));
    c.write_all(&q(&format!("SELECT pg_sleep(1.5); {RANGE}"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    admin_sql(pg(), &db, &format!("CREATE SCHEMA moved_{db}"));
    let r = crate::harness::replies(&mut c).await;
    assert_eq!(window(&db, "public.users").await, 10, "real users were deleted: {r:?}");
    assert!(format!("{r:?}").contains("computed before"), "refused for the kept path: {r:?}");
}
