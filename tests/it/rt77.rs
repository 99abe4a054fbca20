//! Seventy-seventh adversarial pass, as `app` through blastwall in enforce mode with the
//! shipped policies; every position read on the server directly.
//! - H2: a sequence name with whitespace after a dot (`'public. web_user_id_seq'`), which the
//!   server's `regclass` input skips, was not recognised: `nextval` of it a million times ran
//!   uncounted.
//! - H3: the same call between a block's writes went unread, so the block's put-back at
//!   ROLLBACK went back below the ids it had handed out.
//! - H1 (`(…).*`, once per column) is `rt76::nextval_copied_by_between_or_in_is_judged_by_its_real_move`.

use crate::creep::position;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_name_spelled_with_whitespace_is_the_protected_sequence() {
    let db = incident_db();
    let p = proxy().await;
    let via = connect(p.port(), "app", APP_PW, &db).await;
    via.simple_query("SELECT nextval('web_user_id_seq')").await.expect("an id taken ahead");
    let start = position(&db).await;
    for name in [
        "public. web_user_id_seq",
        "public . web_user_id_seq",
        "\"public\" . \"web_user_id_seq\"",
        " public.\tweb_user_id_seq ",
    ] {
        let sql = format!("SELECT count(nextval(E'{}')) FROM generate_series(1, 5000)", name.replace('\t', "\\t"));
        let e = via.simple_query(&sql).await.expect_err(&sql);
        refused_by(&e, "identity");
        assert_eq!(position(&db).await, start, "put back: {sql}");
    }
    // H3: read between the block's writes, so the put-back stops at the ids it handed out.
    via.batch_execute("BEGIN").await.unwrap();
    via.batch_execute("INSERT INTO users (auth_source) SELECT 'oauth' FROM generate_series(1, 200)").await.unwrap();
    let rows = via.query("SELECT nextval('public. web_user_id_seq') FROM generate_series(1, 50)", &[]).await.unwrap();
    let handed: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).max().unwrap();
    via.batch_execute("ROLLBACK").await.unwrap();
    assert!(position(&db).await >= handed, "never below an id handed out ({handed})");
}
