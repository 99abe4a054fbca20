//! A write through a view is judged by the predicate it really applies to the base table: the
//! statement's WHERE and every level's view WHERE, view columns replaced by what they show
//! (red team, third pass, F13). Data checked directly on the server.

use crate::harness::*;
use crate::names::{refused, send};
use tokio_postgres::Client;

async fn count(d: &Client, sql: &str) -> i64 {
    d.query_one(sql, &[]).await.unwrap().get(0)
}

const OAUTH: &str = "SELECT count(*) FROM users WHERE auth_source = 'oauth'";

/// F13: the view's own WHERE is a range on the protected column; the statement's WHERE names
/// only `auth_source`. Through a second view over it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_in_a_views_own_where_is_judged() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&c, "CREATE TEMP VIEW v AS SELECT * FROM public.users WHERE id BETWEEN -91111120 AND -91111111")
        .await
        .unwrap();
    send(&c, "CREATE TEMP VIEW v2 AS SELECT id AS uid, email, auth_source AS src FROM v").await.unwrap();
    let e = refused(&c, "DELETE FROM v WHERE auth_source = 'oauth'").await;
    assert!(e.contains("protected-range") && e.contains("public.users"), "{e}");
    let e = refused(&c, "DELETE FROM v2 WHERE src = 'oauth'").await;
    assert!(e.contains("protected-range"), "{e}");
    let e = refused(&c, "UPDATE v SET plan = 'gone' WHERE auth_source = 'oauth'").await;
    assert!(e.contains("protected-range"), "{e}");
    assert_eq!(count(&d, OAUTH).await, 10, "real users deleted through the view's WHERE");
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE plan = 'gone'").await, 0);
    // A point on the id inside the view's range is one row: it runs, and deletes that row.
    let one: i64 = d.query_one("SELECT min(id) FROM users WHERE auth_source = 'oauth'", &[]).await.unwrap().get(0);
    send(&c, &format!("DELETE FROM v2 WHERE uid = {one}")).await.unwrap();
    assert_eq!(count(&d, OAUTH).await, 9);
    proxy.stop().await;
}

/// F13 addendum 2: a view column that is an expression over the protected column: a
/// predicate on it is not a point on the column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_column_is_followed_to_the_columns_it_reads() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&c, "CREATE TEMP VIEW uv3 AS SELECT id * 1 AS k, email FROM public.users").await.unwrap();
    let e = refused(&c, "DELETE FROM uv3 WHERE k BETWEEN -91111120 AND -91111112").await;
    assert!(e.contains("protected-range") && e.contains("id"), "{e}");
    let e = refused(&c, "DELETE FROM uv3 WHERE k = -91111111").await;
    assert!(e.contains("protected-range"), "{e}");
    assert_eq!(count(&d, OAUTH).await, 10, "real users deleted through an expression column");
    // Its other columns are the table's own: a point on email runs.
    send(&c, "DELETE FROM uv3 WHERE email = 'qa+91111101@example.test'").await.unwrap();
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE auth_source = 'test'").await, 9);
    proxy.stop().await;
}

/// F13 addendum: a constant view column restricts nothing (`require-where`, on a table no
/// policy names); the common soft-delete view keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_column_restricts_nothing_and_a_soft_delete_view_still_works() {
    let proxy = proxy().await;
    let db = incident_db();
    let d = direct("app", APP_PW, &db).await;
    d.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text); \
         INSERT INTO orders SELECT g, 'c' || g FROM generate_series(1, 40) g; \
         ALTER TABLE users ADD COLUMN deleted_at timestamptz; \
         UPDATE users SET deleted_at = now() WHERE id = -91111102; \
         CREATE VIEW active_users AS SELECT * FROM users WHERE deleted_at IS NULL",
    )
    .await
    .unwrap();
    let c = connect(proxy.port(), "app", APP_PW, &db).await;
    send(&c, "CREATE TEMP VIEW ov AS SELECT o.*, 1 AS one FROM orders o").await.unwrap();
    let e = refused(&c, "DELETE FROM ov WHERE one = 1").await;
    assert!(e.contains("require-where"), "{e}");
    assert_eq!(count(&d, "SELECT count(*) FROM orders").await, 40, "every order deleted through a constant column");
    send(&c, "DELETE FROM ov WHERE id = 3 AND one = 1").await.unwrap();
    assert_eq!(count(&d, "SELECT count(*) FROM orders").await, 39);
    // Soft delete: a point through the view runs; a range on the id is still refused.
    send(&c, "DELETE FROM active_users WHERE id = -91111101").await.unwrap();
    send(&c, "DELETE FROM active_users WHERE id = -91111102").await.unwrap();
    assert_eq!(count(&d, "SELECT count(*) FROM users WHERE id IN (-91111101, -91111102)").await, 1);
    let e = refused(&c, "DELETE FROM active_users WHERE id < -91111110").await;
    assert!(e.contains("protected-range"), "{e}");
    assert_eq!(count(&d, OAUTH).await, 10);
    proxy.stop().await;
}
