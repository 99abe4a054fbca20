//! Seventy-first pass F1–F4: a type's input run by the type's OID. Another session (of
//! another DML-only role) made a temporary domain whose `CHECK` calls its temporary function (the range
//! DELETE of ten users: within the row limit, so only `unjudged-write` stands in the way);
//! this session reached it with `pg_catalog.domain_in('5', <its OID>, -1)` (or `array_in`),
//! relayed as a harmless built-in, or with a protocol Bind whose parameter type is that OID,
//! relayed where the database had no permanent type whose input runs code. Now such a call is
//! a call of code whose caller steers what it runs (`analyze::RUNNERS`): counted, and its
//! changes to a table with text rules explain nothing; a Bind typed by any such OID is counted.
//! Data checked on the server.

use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111120 AND -91111111";

/// The range DELETE of the window's ten users (the row limit: only `unjudged-write` refuses).
const RANGE: &str = "DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111";

/// Another role's session (`app`: no name of the tested session reaches its temporary
/// schema), through blastwall, made `ddl`; returns it (kept open, its objects with it) and
/// the OID of its temporary object `kind` (`pg_type` or `pg_proc`) named `name`.
async fn made_by_another_role(
    px: &Proxy,
    db: &str,
    ddl: &str,
    kind: &str,
    name: &str,
) -> (tokio_postgres::Client, i64) {
    let maker = connect(px.port(), "app", APP_PW, db).await;
    maker.batch_execute(ddl).await.unwrap_or_else(|e| panic!("{ddl}: {e:?}"));
    let (col, ns) = if kind == "pg_type" { ("typname", "typnamespace") } else { ("proname", "pronamespace") };
    let oid = count(
        db,
        &format!(
            "SELECT o.oid::int8 FROM {kind} o JOIN pg_namespace n ON n.oid = o.{ns} \
             WHERE o.{col} = '{name}' AND n.nspname LIKE 'pg_temp%'"
        ),
    )
    .await;
    (maker, oid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_temporary_domain_reached_by_its_oid_changes_nothing() {
    use crate::batches::{b, e, q, sync};
    let db = crate::binds::setup();
    admin_sql(pg(), &db, &format!("GRANT TEMPORARY ON DATABASE {db} TO {RAW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let ddl = format!(
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ {RANGE}; SELECT 1 $$; \
         CREATE DOMAIN pg_temp.dd AS int CHECK (pg_temp.f() = 1)"
    );
    let (maker, oid) = made_by_another_role(&px, &db, &ddl, "pg_type", "dd").await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let mut c = startup(px.port(), RAW, &db).await;
    // The database's hidden callers asked, as any session's first statement asks them.
    run(&mut c, "SELECT 1").await;
    let mut body = b"\0SELECT 1 WHERE $1 IS NOT NULL\0".to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&(oid as u32).to_be_bytes());
    let r = send(&mut c, &[msg(b'P', &body), b("", "", &["5"]), e("", 0), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "the Bind: {r:?}");
    assert_eq!(count(&db, WINDOW).await, before, "the Bind: users deleted");
    for sql in [
        format!("SELECT pg_catalog.pg_typeof(pg_catalog.domain_in('5', {oid}, -1))"),
        format!("SELECT pg_catalog.array_in('{{5}}', {oid}, -1)"),
        format!("SELECT pg_catalog.pg_typeof(domain_in('5', {oid}, -1))"),
    ] {
        let r = send(&mut c, &[q(&sql)]).await;
        assert!(r.errors.contains("blastwall: refused"), "{sql}: {r:?}");
        assert_eq!(count(&db, WINDOW).await, before, "{sql}: users deleted");
    }
    drop(maker);
    px.stop().await;
}

/// Seventy-second pass H1: a language's validator given another session's temporary function
/// by OID analyzes its body, whose constant of a composite type over a domain runs the
/// domain's `CHECK` (armed for this session's role only): `pg_catalog.fmgr_sql_validator(oid)`
/// was taken for a harmless built-in and deleted the window. Now counted, and its changes
/// explain nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_given_another_sessions_function_by_oid_changes_nothing() {
    use crate::batches::q;
    let db = crate::binds::setup();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let ddl = format!(
        "CREATE FUNCTION pg_temp.purge() RETURNS boolean LANGUAGE sql AS $$ {RANGE}; SELECT true $$; \
         CREATE DOMAIN pg_temp.dd AS int CHECK (VALUE <> 7 OR current_user <> '{RAW}' OR pg_temp.purge()); \
         CREATE TYPE pg_temp.cc AS (x pg_temp.dd); \
         CREATE FUNCTION pg_temp.f(x pg_temp.cc) RETURNS pg_temp.cc LANGUAGE sql AS $$ SELECT coalesce(x, '(7)') $$"
    );
    let (maker, oid) = made_by_another_role(&px, &db, &ddl, "pg_proc", "f").await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let mut c = startup(px.port(), RAW, &db).await;
    for sql in [
        format!("SELECT pg_catalog.fmgr_sql_validator({oid})"),
        format!("SELECT \"pg_catalog\".\"fmgr_sql_validator\"({oid}::oid)"),
        format!("SELECT fmgr_sql_validator({oid})"),
    ] {
        let r = send(&mut c, &[q(&sql)]).await;
        assert!(r.errors.contains("blastwall: refused"), "{sql}: {r:?}");
        assert_eq!(count(&db, WINDOW).await, before, "{sql}: users deleted");
    }
    drop(maker);
    px.stop().await;
}
