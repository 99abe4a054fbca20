//! Nineteenth pass FPs, sixteenth pass FPd, fourteenth pass F3: a database dropped and created
//! again under the same name on a direct connection while blastwall runs is another database
//! (`catalog::incarnation`). What blastwall knew of the old one — the policy tables' OIDs, the
//! contract's state, its cached answers — goes at the first session that finds the new one,
//! so ordinary writes of the new database's policy tables run at once, and what the policy
//! refuses is refused there as before. Every outcome is read directly on the server.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;

const BUDGET: &str = r#"
[[table]]
name = "public.accounts"
protected_columns = ["id"]
budget_delete_rows = 25
budget_window = "1h"
"#;

fn accounts(db: &str) {
    admin_sql(
        pg(),
        db,
        "SET ROLE app; CREATE TABLE accounts (id int PRIMARY KEY, x int); \
         INSERT INTO accounts SELECT g, g FROM generate_series(1, 100) g",
    );
}

fn message(e: tokio_postgres::Error) -> String {
    e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())
}

/// FPs: with a budget, the point DELETEs of the database made again are recorded against the
/// new table (before: refused for every write, "a run of 1 rows, but this transaction changed
/// 0 of that table", until blastwall restarted), and the budget still holds there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budgeted_tables_deletes_run_in_a_database_made_again() {
    let db = fresh_db("recreated");
    accounts(&db);
    let policy = compile(&[(Path::new("budget.toml"), BUDGET)]).unwrap();
    let p = proxy_with(base_config(), policy).await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("DELETE FROM accounts WHERE id = 1").await.unwrap();
    drop(via);
    let spent = "SELECT coalesce(sum(rows), 0)::int8 FROM blastwall.budget_spent";
    assert_eq!(count(&db, spent).await, 1);
    recreate_db(&db);
    accounts(&db);
    for id in 2..=4 {
        let via = connect(p.port(), "app", APP_PW, &db).await;
        via.simple_query(&format!("DELETE FROM accounts WHERE id = {id}"))
            .await
            .unwrap_or_else(|e| panic!("point DELETE {id} in the database made again: {}", message(e)));
    }
    assert_eq!(count(&db, "SELECT count(*) FROM accounts").await, 97);
    assert_eq!(count(&db, spent).await, 3, "spent in the new database's state");
    // The budget holds in the new database: 23 left, 30 more refused.
    let via = connect(p.port(), "app", APP_PW, &db).await;
    let e = message(via.simple_query("DELETE FROM accounts WHERE x BETWEEN 10 AND 39").await.unwrap_err());
    assert!(e.contains("over its budget of 25"), "{e}");
    assert_eq!(count(&db, "SELECT count(*) FROM accounts").await, 97);
    p.stop().await;
}

/// FPd, F3: the shipped policies; the incident's database made again after blastwall knew
/// it. Point writes of `users`, of `chat_sessions` (which cascades into a policy table) and
/// of a child of `users` run at once; the incident's range DELETE is refused in the new
/// database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_writes_run_at_once_in_the_incidents_database_made_again() {
    let db = incident_db();
    let child = "SET ROLE app; CREATE TABLE users_archive () INHERITS (users)";
    admin_sql(pg(), &db, child);
    let p = proxy_with(base_config(), shipped_policy()).await;
    let writes = [
        "UPDATE users SET plan = 'pro' WHERE id = 1000001",
        "DELETE FROM chat_sessions WHERE id = 1",
        "DELETE FROM users WHERE id = 0",
        "DELETE FROM users_archive WHERE id = 0",
    ];
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for w in writes {
        via.simple_query(w).await.unwrap_or_else(|e| panic!("{w}: {}", message(e)));
    }
    drop(via);
    recreate_db(&db);
    load_incident(&db);
    admin_sql(pg(), &db, child);
    let via = connect(p.port(), "app", APP_PW, &db).await;
    for w in writes {
        via.simple_query(w).await.unwrap_or_else(|e| panic!("in the database made again, {w}: {}", message(e)));
    }
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE plan = 'pro' AND id = 1000001").await, 1);
    let window = "SELECT count(*) FROM users WHERE id BETWEEN -91111120 AND -91111111";
    let before = count(&db, window).await;
    assert_eq!(before, 10);
    let e = via.simple_query("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100").await.unwrap_err();
    assert!(message(e).contains("blastwall: refused"));
    assert_eq!(count(&db, window).await, before);
    p.stop().await;
}

/// Twentieth pass N6: a superuser swaps databases through blastwall — a new database renamed
/// away, the incident's renamed into the new one's name, then dropped by that name; or a name
/// created and dropped through blastwall, then given to the incident's database. The mark of a
/// database created through blastwall no longer follows the name: each drop is refused, and
/// the incident's database is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_renamed_into_a_created_ones_name_is_not_dropped() {
    let db = incident_db();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let app = connect(p.port(), "app", APP_PW, &db).await;
    app.simple_query("SELECT count(*) FROM users").await.unwrap();
    drop(app);
    let dba = connect(p.port(), "postgres", SUPERUSER_PW, "postgres").await;
    let (new, tmp) = (format!("{db}_new"), format!("{db}_tmp"));
    for sql in [
        format!("CREATE DATABASE {new}"),
        format!("ALTER DATABASE {new} RENAME TO {tmp}"),
        format!("ALTER DATABASE {db} RENAME TO {new}"),
        format!("ALTER DATABASE {tmp} RENAME TO {db}"),
    ] {
        dba.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let e = dba.simple_query(&format!("DROP DATABASE {new}")).await.unwrap_err();
    assert!(message(e).contains("blastwall: refused"));
    let users = count(&new, "SELECT count(*) FROM users").await;
    assert!(users > 0, "the incident's database, now {new}, holds its users");
    // A name created and dropped through blastwall, then given to the incident's database.
    let reused = format!("{db}_reused");
    dba.simple_query(&format!("CREATE DATABASE {reused}")).await.unwrap();
    dba.simple_query(&format!("DROP DATABASE {reused}")).await.unwrap();
    dba.simple_query(&format!("ALTER DATABASE {new} RENAME TO {reused}")).await.unwrap();
    let e = dba.simple_query(&format!("DROP DATABASE {reused}")).await.unwrap_err();
    assert!(message(e).contains("blastwall: refused"));
    assert_eq!(count(&reused, "SELECT count(*) FROM users").await, users);
    p.stop().await;
}
