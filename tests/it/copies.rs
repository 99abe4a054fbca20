//! Fifth adversarial pass F10: `COPY users … FROM STDIN` as a lone message, where users' id
//! default `-nextval('web_user_id_seq')` moves the protected sequence. A COPY that supplies
//! the id evaluates no default; one that leaves it out moves the sequence by one per row, as
//! an INSERT may: both are relayed. A COPY whose table moves a sequence any other way stays
//! refused, with a hint that does not tell the client to do what it did. Data checked on the
//! server directly.

use crate::harness::*;

/// `psql -c COPY … FROM STDIN` through blastwall as `app`, the rows on its standard input.
fn copy(port: u16, db: &str, sql: &str, rows: &str) -> (bool, String) {
    let (ok, out, err) = psql(port, "app", APP_PW, db, &["-v", "ON_ERROR_STOP=1", "-c", sql], Some(rows));
    (ok, format!("{out}{err}"))
}

async fn sequence(db: &str) -> i64 {
    count(db, "SELECT last_value FROM web_user_id_seq").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_users_that_moves_the_sequence_one_per_row_is_relayed() {
    let db = incident_db();
    let p = proxy_with(base_config(), shipped_policy()).await;
    let users = count(&db, "SELECT count(*) FROM users").await;
    let seq = sequence(&db).await;
    // The id supplied: no default runs, the sequence stays.
    let (ok, out) = copy(
        p.port(),
        &db,
        "COPY users (id, auth_source, plan, email) FROM STDIN",
        "2000001\ttelegram\tfree\t\\N\n2000002\ttelegram\tpremium\t\\N\n",
    );
    assert!(ok, "{out}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id IN (2000001, 2000002)").await, 2);
    assert_eq!(sequence(&db).await, seq);
    // The id left out: one value of the sequence per row.
    let rows: String = (1..=5).map(|i| format!("oauth\tfree\tnew{i}@example.com\n")).collect();
    let (ok, out) = copy(p.port(), &db, "COPY users (auth_source, plan, email) FROM STDIN", &rows);
    assert!(ok, "{out}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email LIKE 'new%'").await, 5);
    assert_eq!(sequence(&db).await, seq + 5);
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, users + 7);
    p.stop().await;
}

/// Each case in a database of its own, its DDL run directly (blastwall learns it afresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_table_moves_the_sequence_otherwise_stays_refused() {
    let p = proxy_with(base_config(), shipped_policy()).await;
    let cases = [
        // Two values per row: more than an INSERT of the same rows may move it.
        (
            "ALTER TABLE users ALTER id SET DEFAULT -(nextval('web_user_id_seq') + nextval('web_user_id_seq'))",
            "COPY users (auth_source, plan, email) FROM STDIN",
            "oauth\tfree\tx@example.com\n",
        ),
        // A CHECK that moves it runs whether the id is supplied or not.
        (
            "ALTER TABLE users ADD CONSTRAINT moves CHECK (nextval('web_user_id_seq') > 0) NOT VALID",
            "COPY users (id, auth_source, plan, email) FROM STDIN",
            "2000003\toauth\tfree\t\\N\n",
        ),
        // A COPY … WHERE is not judged by its defaults alone.
        (
            "SELECT 1",
            "COPY users (auth_source, plan, email) FROM STDIN WHERE plan = 'free'",
            "oauth\tfree\ty@example.com\n",
        ),
    ];
    for (ddl, sql, rows) in cases {
        let db = incident_db();
        direct("app", APP_PW, &db).await.batch_execute(ddl).await.unwrap();
        let users = count(&db, "SELECT count(*) FROM users").await;
        let seq = sequence(&db).await;
        let (ok, out) = copy(p.port(), &db, sql, rows);
        assert!(!ok && out.contains("rule unverifiable"), "{sql}: {out}");
        assert!(!out.contains("message of its own"), "the hint tells it to do what it did: {out}");
        assert_eq!(count(&db, "SELECT count(*) FROM users").await, users, "{sql}");
        assert_eq!(sequence(&db).await, seq, "{sql}");
    }
    p.stop().await;
}
