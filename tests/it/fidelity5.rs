//! The fifth adversarial pass's smaller fidelity items (#11): what blastwall says and relays,
//! compared with what happened on the server.

use crate::harness::*;

/// F9: a write through a temporary view whose columns swap the table's names is refused, and
/// the refusal names the view's alias as such — not as a column "renamed since" the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_through_a_view_that_renames_columns_names_them_as_the_views() {
    let db = incident_db();
    let ids = || count(&db, "SELECT coalesce(sum(id), 0)::bigint FROM users");
    let before = ids().await;
    let p = proxy().await;
    let app = connect(p.port(), "app", APP_PW, &db).await;
    app.simple_query("CREATE TEMP VIEW v AS SELECT email AS id, id AS email, plan FROM users").await.unwrap();
    let e = app
        .simple_query("UPDATE v SET email = email - 1000000000 WHERE id = 'a@example.com'")
        .await
        .expect_err("moved ids through the view");
    let m = refused_by(&e, "protected-assign");
    assert!(m.contains("SET of protected column email (the view's name for public.users.id)"), "{m}");
    assert!(!m.contains("renamed since"), "{m}");
    // A column really renamed since is still said to be, through the same kind of view.
    admin_sql(pg(), &db, "ALTER TABLE users RENAME COLUMN id TO uid");
    let app = connect(p.port(), "app", APP_PW, &db).await;
    app.simple_query("CREATE TEMP VIEW w AS SELECT email AS id, uid AS email FROM users").await.unwrap();
    let e = app
        .simple_query("UPDATE w SET email = email - 1000000000 WHERE id = 'a@example.com'")
        .await
        .expect_err("moved ids through the view");
    let m = refused_by(&e, "protected-assign");
    assert!(
        m.contains(
            "SET of protected column email (the view's name for public.users.uid: id in the policy, renamed since)"
        ),
        "{m}"
    );
    assert_eq!(count(&db, "SELECT coalesce(sum(uid), 0)::bigint FROM users").await, before, "ids moved");
    p.stop().await;
}

/// F9: a notification raised by a counted statement (a tainted session's call of its temporary
/// function, run inside the pre-check) reaches the client where PostgreSQL puts it — after the
/// statement's rows and command tag, just before ReadyForQuery — not ahead of the held rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_of_a_counted_statement_comes_where_the_server_sends_it() {
    use crate::differential::{compare, query, Client, Step};
    let db = incident_db();
    let p = proxy().await;
    let client = Client::new("app", APP_PW, &db);
    let steps = [
        Step::Send(query("LISTEN ch")),
        Step::Ready(1),
        Step::Send(query(
            "CREATE FUNCTION pg_temp.nf() RETURNS int LANGUAGE plpgsql AS \
             $$BEGIN PERFORM pg_notify('ch', 'hello'); RETURN 1; END$$",
        )),
        Step::Ready(1),
        Step::Send(query("SELECT pg_temp.nf()")),
        Step::Ready(1),
    ];
    let direct = compare(&p, &client, &steps).await;
    let tags: Vec<u8> = direct
        .iter()
        .filter_map(|e| match e {
            crate::differential::Event::Msg { tag, .. } => Some(*tag),
            _ => None,
        })
        .collect();
    assert!(tags.ends_with(b"TDCAZ"), "{:?}", String::from_utf8_lossy(&tags));
    p.stop().await;
}
