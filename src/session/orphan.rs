//! What a session still owes the server when its server session is gone (thirty-second pass
//! H1): the server ended it with the client's transaction open — `pg_terminate_backend`
//! (from the session itself or from another of its role), `idle_in_transaction_session_timeout`,
//! an administrator — or the link broke. The server rolls that transaction back, and the
//! protected sequences its remembered writes moved (`undone`) stay moved with no row; a
//! put-back owed and not yet run (`putback`) is not run either. blastwall cannot put them
//! back on a session that no longer exists, so it does it on a connection of its own, as the
//! `[ddl_notify]` role (which needs `UPDATE` on the protected sequences for it):
//!
//! 1. It waits until the session's backend is gone and no transaction ID its writes were
//!    remembered under is in progress (`txid_status`), up to [`FATE_WITHIN`].
//! 2. A move whose transaction ID committed is kept (a `COMMIT` the server ran as it ended the
//!    session); one whose ID aborted is undone; a move with no ID (its write wrote no row)
//!    follows the others, undone when none committed.
//! 3. Each sequence goes back to where it stood before the last run of undone moves that
//!    follow each other (`undone::contiguous_with_end`), under the put-back's rule (beyond the
//!    slack since), and only while it stands exactly where the session's last reading found
//!    it: `currval` cannot be asked on another connection, and a sequence another session
//!    has taken a value of since stays where it is. Where the last move is a statement or
//!    COPY the server ended in its middle (its end never read), only while no other session
//!    holds a lock on it — values others took while it ran are the limitation of any failed
//!    statement's put-back. A put-back owed in the client's failed block has its end read on
//!    blastwall's listening connection as the block failed (`putback::read_owed_ends`); any
//!    other move whose end was never read that ended earlier (the client may have waited
//!    since, while others took values) leaves the sequence where it is, logged.
//!
//! The connection is tried again while it fails, for [`CONNECT_WITHIN`].
//!
//! Without `[ddl_notify]` nothing can run it: logged as an error, with the sequences.
//!
//! Also the session's hook for a put-back its role may not make (`precheck::elsewhere`), on
//! the same kind of connection.
//!
//! Owns: the hand-over at the session's end and the put-back on blastwall's own connection.
//! Does not own: what is remembered (`undone`), the put-back statement (`precheck::putback`),
//! the connection (`catalog::listener`).

use super::Session;
use crate::precheck::putback::{self, Moved};
use crate::shared::Shared;
use crate::wire::messages::TxStatus;
use std::sync::Arc;
use std::time::Duration;

/// How long the session's backend and transactions may take to end.
const FATE_WITHIN: Duration = Duration::from_secs(30);

/// How long the connection is tried for, and how often.
const CONNECT_WITHIN: Duration = Duration::from_secs(120);
const CONNECT_AGAIN: Duration = Duration::from_millis(500);

/// The `application_name` of the connection.
const APPLICATION: &str = "blastwall put-back";

/// What decides whether a move was undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Known undone (a put-back owed).
    Undone,
    /// The transaction ID its rows were written under (`None`: no row written).
    Xid(Option<u32>),
}

/// What a session left owed.
struct Orphaned {
    session: u64,
    database: String,
    /// The session's backend.
    pid: Option<i32>,
    /// In the order they were made (earliest first), each with where it left the sequence
    /// (`None`: never read after it).
    moves: Vec<(Fate, Moved)>,
    /// The sequences a statement or COPY the server ended in its middle moved last.
    in_flight: Vec<u32>,
}

impl Session {
    /// The session ends: what it still owes the server is handed to a task that puts it back
    /// on a connection of blastwall's own (see the module's doc).
    pub(super) fn orphan(&mut self) {
        let kept = self.block.orphaned();
        let owed = std::mem::take(&mut self.put_back);
        let lost = std::mem::take(&mut self.lost_check);
        // A COPY the server ended in its middle (thirty-third pass H2): its rows cannot have
        // been kept in the client's block, nor outside one before the client ended it.
        let copy = self.copy_awaited.take().filter(|a| self.relay.tx != TxStatus::Idle || !a.ended);
        let copy = copy.map(|a| a.moved).unwrap_or_default();
        if kept.is_empty() && owed.is_empty() && lost.is_empty() && copy.is_empty() {
            return;
        }
        // In the order they were made, each with where it left the sequence when that was
        // read (`left_at`; `None`: never read after it).
        let unread = |m: Moved| (Fate::Undone, Moved { left_at: None, ..m });
        let mut moves: Vec<(Fate, Moved)> = kept.into_iter().map(|(x, m)| (Fate::Xid(x), m)).collect();
        // Where a put-back owed in the failed block was left, as read then (`read_owed_ends`).
        let block = &self.block;
        let end = |m: Moved| match (m.left_at, block.owed_end(m.oid)) {
            (None, Some(at)) => Moved { left_at: Some(at), ..m },
            _ => m,
        };
        moves.extend(owed.into_iter().map(|m| (Fate::Undone, end(m))));
        let in_flight = lost.iter().chain(&copy).map(|m| m.oid).collect();
        moves.extend(lost.into_iter().chain(copy).map(unread));
        let o = Orphaned {
            session: self.id,
            database: self.info.database.clone(),
            pid: self.key.as_ref().map(|k| k.pid),
            moves,
            in_flight,
        };
        tokio::spawn(put_back_elsewhere(self.shared.clone(), o));
    }
}

/// The session's way to put back, on a connection of blastwall's own, what its role may not
/// (`precheck::elsewhere`): `None` without `[ddl_notify]`.
pub(super) fn elsewhere(shared: &Arc<Shared>, database: &str) -> Option<crate::precheck::elsewhere::Hook> {
    let cfg = shared.config.ddl_notify.clone()?;
    let (shared, database) = (shared.clone(), database.to_string());
    Some(Arc::new(move |sql: String| {
        let (cfg, shared, database) = (cfg.clone(), shared.clone(), database.clone());
        Box::pin(async move {
            let client =
                crate::catalog::listener::own_connection(&cfg, &shared.upstream, &database, APPLICATION).await?;
            let messages = client.simple_query(&sql).await.map_err(|e| e.to_string())?;
            Ok(putback::simple_rows(&messages))
        })
    }))
}

/// Each move's transaction ID's status, and whether the backend is still there.
fn status_sql() -> String {
    format!(
        "{} UNION ALL SELECT 'backend', CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_stat_activity a \
           WHERE a.pid OPERATOR(pg_catalog.=) $2) THEN 'in progress' ELSE 'gone' END",
        putback::xid_status_sql("$1")
    )
}

async fn put_back_elsewhere(shared: Arc<Shared>, o: Orphaned) {
    let oids: Vec<u32> = o.moves.iter().map(|(_, m)| m.oid).collect();
    let (session, database) = (o.session, o.database.as_str());
    let Some(cfg) = shared.config.ddl_notify.clone() else {
        return tracing::error!(session, database, sequences = ?oids,
            "the server session ended with protected sequences moved by writes it rolled back; without [ddl_notify] blastwall has no connection of its own to put them back: they stay moved");
    };
    // Tried again while it fails (thirty-third pass M1: every connection slot taken): a value
    // handed out meanwhile keeps the sequence where it is (the put-back's condition).
    let deadline = tokio::time::Instant::now() + CONNECT_WITHIN;
    let client = loop {
        match crate::catalog::listener::own_connection(&cfg, &shared.upstream, database, APPLICATION).await {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return tracing::error!(session, database, sequences = ?oids, error = %e,
                    "the server session ended with protected sequences moved by writes it rolled back; blastwall's own connection failed: they stay moved");
            }
            Err(e) => {
                tracing::warn!(session, database, error = %e, "blastwall's own connection to put protected sequences back failed; trying again");
                tokio::time::sleep(CONNECT_AGAIN).await;
            }
        }
    };
    let xids: Vec<i64> = o
        .moves
        .iter()
        .filter_map(|(f, _)| match f {
            Fate::Xid(Some(x)) => Some(i64::from(*x)),
            _ => None,
        })
        .collect();
    let statuses = match fates(&client, &xids, o.pid.unwrap_or(0)).await {
        Ok(s) => s,
        Err(e) => {
            return tracing::error!(session, database, sequences = ?oids, error = %e,
                "what became of a server session's transaction could not be read: its protected sequences stay moved");
        }
    };
    let any_committed = statuses.iter().any(|(_, s)| s == "committed");
    let undone = |f: &Fate| match f {
        Fate::Undone => true,
        Fate::Xid(Some(x)) => statuses.iter().any(|(y, s)| y == &x.to_string() && s == "aborted"),
        Fate::Xid(None) => !any_committed,
    };
    let undone = o.moves.iter().filter(|(f, _)| undone(f)).map(|(_, m)| m.clone());
    for m in &super::undone::contiguous_with_end(undone) {
        // Where a statement that ended earlier left it was never read, and the client may
        // have waited since while others took values (thirty-fourth pass H3): it stays.
        if m.left_at.is_none() && !o.in_flight.contains(&m.oid) {
            tracing::error!(session, database, sequence = m.oid,
                "a protected sequence moved by writes the ended server session rolled back was never read after its last move: it stays moved (values others took since cannot be told)");
            continue;
        }
        match client.simple_query(&putback::sql_elsewhere(m)).await {
            Ok(messages) => {
                let rows = putback::simple_rows(&messages);
                if rows.is_empty() {
                    // Within the slack, or not where the session left it, or held by another
                    // session (thirty-fourth pass L1: nothing said so).
                    tracing::warn!(session, database, sequence = m.oid, to = ?m.was,
                        "a protected sequence moved by writes the ended server session rolled back was not put back: it moved within the slack, or no longer stands where the session left it, or another session holds it");
                }
                putback::logged(m, &rows);
            }
            Err(e) => tracing::error!(session, database, sequence = m.oid, error = %e,
                "a protected sequence moved by writes the ended server session rolled back could not be put back (the [ddl_notify] role needs UPDATE on it)"),
        }
    }
}

/// Waits until the backend `pid` is gone and none of `xids` is in progress; their statuses.
async fn fates(client: &tokio_postgres::Client, xids: &[i64], pid: i32) -> Result<Vec<(String, String)>, String> {
    let deadline = tokio::time::Instant::now() + FATE_WITHIN;
    loop {
        let rows = client.query(&status_sql(), &[&xids, &pid]).await.map_err(|e| e.to_string())?;
        let read: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if read.iter().all(|(_, s)| s != "in progress") {
            return Ok(read);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("still in progress after {FATE_WITHIN:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
