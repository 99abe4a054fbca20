//! Red-team F9: the replies of counted writes that blastwall holds for clients that do not read
//! them are bounded across all sessions (`precheck::hold`): past the total, a write waits for
//! room, then is refused and rolled back rather than held. Checked on the server: of 8
//! counted UPDATEs each returning 4 MB to a client that never reads, only those whose replies
//! fit in the total were kept.

use crate::harness::*;
use blastwall::policy::file::compile;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const LIMITS: &str = r#"
[defaults]
mode = "enforce"
max_update_rows = 10
"#;

const SESSIONS: usize = 8;
const RETURNED: usize = 4_000_000;
/// The budget of this proxy (its own: other tests' proxies have theirs).
const TOTAL: usize = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_replies_of_clients_that_do_not_read_are_bounded_across_sessions() {
    let policy = compile(&[(Path::new("holding.toml"), LIMITS)]).unwrap();
    let mut config = base_config();
    config.max_held_bytes = TOTAL;
    let proxy = proxy_with(config, policy).await;
    let db = fresh_db("holding");
    // No key: no point write can be proven, each UPDATE is counted (its replies held).
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE w (id int, n int NOT NULL DEFAULT 0); INSERT INTO w (id) SELECT g FROM generate_series(1, {SESSIONS}) g; \
             GRANT ALL ON w TO PUBLIC;"
        ),
    );
    let mut clients = Vec::new();
    for i in 1..=SESSIONS {
        let mut s = deaf_client(proxy.port(), &db).await;
        let mut q = format!("UPDATE w SET n = 1 WHERE id = {i} RETURNING repeat('x', {RETURNED})").into_bytes();
        q.push(0);
        s.write_all(&msg(b'Q', &q)).await.unwrap();
        clients.push(s);
    }
    // Those that found no room waited for it, then were refused.
    tokio::time::sleep(blastwall::precheck::hold::WAIT + Duration::from_secs(8)).await;
    let total = TOTAL;
    let kept: usize = admin_sql(pg(), &db, "SELECT count(*) FROM w WHERE n = 1").trim().parse().unwrap();
    assert!(kept >= 1, "no write was kept");
    assert!(kept <= total / RETURNED, "{kept} writes of {RETURNED} bytes each were kept (and held) past {total}");
    assert_eq!(
        admin_sql(
            pg(),
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active'")
        )
        .trim(),
        "0"
    );
    drop(clients);
    proxy.stop().await;
}
