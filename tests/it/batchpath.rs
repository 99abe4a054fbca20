//! Issue 13: a `search_path` set earlier in the same extended-protocol batch (an Execute the
//! server ran before the write's Parse is judged) is followed. blastwall asks the catalog
//! inside the batch, behind what it ran, so a write to `archive.users` through the path runs,
//! and the same write whose path leads back to `public.users` is refused. Each batch is sent
//! as raw frames through blastwall in enforce mode with the shipped policies, as a DML-only
//! role; the data is checked directly on the server.

use crate::batches::{b, e, p, pbe, sync};
use crate::batchnames::{run, send, setup};
use crate::harness::*;

/// The incident's ten real users' range, and a copy of it in archive.users.
const RANGE: &str = "DELETE FROM users WHERE id BETWEEN -91111120 AND -91111111";
const PUBLIC: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111120 AND -91111111";
const ARCHIVE: &str = "SELECT count(*) FROM archive.users WHERE id BETWEEN -91111120 AND -91111111";

/// On the server, not through blastwall.
async fn server_value(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_set_earlier_in_the_batch_is_followed() {
    let db = setup();
    let (public, archive) = (server_value(&db, PUBLIC).await, server_value(&db, ARCHIVE).await);
    assert!(public >= 10 && archive >= 10, "{public} {archive}");
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), crate::binds::RAW, &db).await;
    // Leading back to public.users, by every way the batch may leave the path: refused.
    for batch in [
        vec![pbe("SET search_path = public, archive"), pbe(RANGE), sync()],
        vec![pbe("SET search_path = archive, public"), pbe("RESET search_path"), pbe(RANGE), sync()],
        vec![
            pbe("SELECT pg_catalog.set_config('search_path', 'archive', false)"),
            pbe("SET search_path TO DEFAULT"),
            pbe(RANGE),
            sync(),
        ],
        vec![
            pbe("BEGIN"),
            pbe("SAVEPOINT a"),
            pbe("SET LOCAL search_path = archive"),
            pbe("ROLLBACK TO a"),
            pbe(RANGE),
            pbe("COMMIT"),
            sync(),
        ],
    ] {
        let r = send(&mut s, &batch).await;
        assert!(r.errors.contains("blastwall: refused"), "not refused: {r:?}");
        assert_eq!(server_value(&db, PUBLIC).await, public);
        // The one inside a block leaves it failed.
        run(&mut s, "ROLLBACK").await;
        run(&mut s, "RESET search_path").await;
    }
    // Leading to archive.users: it runs, and only archive.users changes.
    let r = send(&mut s, &[pbe("SET search_path = archive, public"), pbe(RANGE), sync()]).await;
    assert!(r.codes.is_empty(), "SET then DELETE: {}", r.errors);
    assert!(r.tags.contains('C'), "{r:?}");
    assert_eq!(server_value(&db, ARCHIVE).await, 0);
    assert_eq!(server_value(&db, PUBLIC).await, public);
    run(&mut s, "RESET search_path").await;
    admin_sql(
        pg(),
        &db,
        "INSERT INTO archive.users SELECT * FROM public.users WHERE id BETWEEN -91111120 AND -91111111",
    );
    // The same inside a block, with SET LOCAL, and by a constant set_config.
    let r =
        send(&mut s, &[pbe("BEGIN"), pbe("SET LOCAL search_path = archive"), pbe(RANGE), pbe("COMMIT"), sync()]).await;
    assert!(r.codes.is_empty(), "SET LOCAL then DELETE: {}", r.errors);
    assert_eq!(server_value(&db, ARCHIVE).await, 0);
    admin_sql(
        pg(),
        &db,
        "INSERT INTO archive.users SELECT * FROM public.users WHERE id BETWEEN -91111120 AND -91111111",
    );
    let r =
        send(&mut s, &[pbe("SELECT pg_catalog.set_config('search_path', 'archive', false)"), pbe(RANGE), sync()]).await;
    assert!(r.codes.is_empty(), "set_config then DELETE: {}", r.errors);
    assert_eq!(server_value(&db, ARCHIVE).await, 0);
    assert_eq!(server_value(&db, PUBLIC).await, public);
    px.stop().await;
}

/// A statement parsed while the path led to archive.users and executed after an Execute of
/// the same batch changed the path: the server plans it again under the new path (a prepared
/// statement is re-analyzed when `search_path` changed), so it reaches public.users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_parsed_before_the_batch_changed_the_path_is_not_run_unjudged() {
    let db = setup();
    let public = server_value(&db, PUBLIC).await;
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut s = startup(px.port(), crate::binds::RAW, &db).await;
    run(&mut s, "SET search_path = archive, public").await;
    let r = send(&mut s, &[p("d", RANGE), pbe("SET search_path = public"), b("", "d", &[]), e("", 0), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "not refused: {r:?}");
    assert_eq!(server_value(&db, PUBLIC).await, public);
    // Parsed in one batch, the path changed in a second, bound and run in a third.
    run(&mut s, "SET search_path = archive, public").await;
    let r = send(&mut s, &[p("d2", RANGE), sync()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    run(&mut s, "SET search_path = public").await;
    let r = send(&mut s, &[b("", "d2", &[]), e("", 0), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "not refused: {r:?}");
    assert_eq!(server_value(&db, PUBLIC).await, public);
    px.stop().await;
}
