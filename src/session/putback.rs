//! Protected sequences that a write counted in the middle of a batch moved, when the write
//! was not kept (it failed by itself, a reading behind it failed, or the verdict failed the
//! batch): the server skips to the batch's Sync, so nothing can be put back there. The
//! put-back is owed and run at the session's next quiet point — no reply owed, no batch open,
//! the transaction not failed (a client's failed block first ends with its ROLLBACK) —
//! latest first, so that each goes back to where the one before it left the sequence.
//!
//! A batch blastwall failed whose Sync the client has not sent is ended on the server by a
//! Sync of blastwall's own first (`end_failed_batch`); a client that leaves with a put-back
//! owed has it run before its server session ends (`ending`).
//!
//! Owns: what is owed and when it runs. Does not own: the statement (`precheck::putback`).

use super::undone::{xids, HELD_XIDS, NEWEST_XID};
use super::{Session, SessionError};
use crate::precheck::{self, Backend};
use crate::wire::messages::TxStatus;
use crate::wire::Frame;

impl Session {
    /// The counted Execute `frame` ended unkept: the protected sequences of its reading
    /// before (`before`) are owed a put-back, judged from where its portal's run began.
    pub(super) fn owe_put_back(&mut self, frame: &Frame, before: &[Vec<Option<String>>]) {
        let portal = super::extended::execute_portal(frame).unwrap_or_default();
        let policy = self.shared.guard.policy();
        let inserted = precheck::putback::sequence_inserts(self.mirror.runs.so_far(&portal), &policy);
        let since = self.mirror.runs.since(&portal);
        let owed = precheck::putback::candidates(before, since, inserted, self.info.view(), &policy);
        self.put_back.extend(owed);
    }

    /// Runs what is owed once the session is quiet (see the module's doc).
    pub(super) async fn put_back_when_quiet(&mut self) -> Result<(), SessionError> {
        if !self.relay.is_busy() {
            self.failed_batch_ended = false;
        }
        if self.put_back.is_empty() {
            self.block.set_owed_ends(None);
            return Ok(());
        }
        if self.relay.tx == TxStatus::Failed {
            if self.block.owed_ends_unread() {
                self.read_owed_ends().await;
            }
            return Ok(());
        }
        self.block.set_owed_ends(None);
        let mut in_block = self.relay.tx != TxStatus::Idle;
        if self.relay.is_busy() {
            match self.end_failed_batch().await? {
                Some(TxStatus::Idle) => in_block = false,
                _ => return Ok(()),
            }
        }
        let mut owed = std::mem::take(&mut self.put_back);
        owed.reverse();
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let done = precheck::putback::run(&mut b, &owed, in_block).await;
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        done.map_err(|e| SessionError::Closed(format!("putting a protected sequence back: {e}")))
    }

    /// Put-backs owed in the client's failed block (a write that failed in its batch, a COPY):
    /// where their statements left the sequences cannot be read on the session until the block
    /// ends, and the client may wait long, while others take values; so it is read at once on
    /// blastwall's own listening connection (`[ddl_notify]`), for a put-back should the server
    /// end the session first (`orphan`; thirty-fifth pass H1, H2). Without it, or when the
    /// reading fails, nothing is known (`orphan` then leaves the sequence).
    async fn read_owed_ends(&mut self) {
        let db = self.info.inflight.db.as_ref();
        let peers = db.and_then(|db| self.shared.instances.of(&self.info.database, &db.0));
        let Some(link) = peers.and_then(|p| p.link()) else {
            return self.block.set_owed_ends(Some(Vec::new()));
        };
        let sql = precheck::putback::ends_sql(self.put_back.iter().map(|m| m.oid));
        let read = tokio::time::timeout(std::time::Duration::from_secs(1), link.client.simple_query(&sql)).await;
        let rows = match read {
            Ok(Ok(messages)) => precheck::putback::simple_rows(&messages),
            _ => Vec::new(),
        };
        let ended = precheck::putback::ended(&self.put_back, &rows);
        self.block.set_owed_ends(Some(ended.iter().filter_map(|m| Some((m.oid, m.left_at?))).collect()));
    }

    /// A batch blastwall failed (its client's messages dropped up to the Sync) whose Sync has
    /// not come — a driver's pipeline sends it only after it read the error, or not at all
    /// (eighteenth pass F6, F6b–F6d): every sync point answered, the server skipping to a
    /// Sync, blastwall sends one of its own, so that the put-back does not wait for the client.
    /// The client's Sync, when it comes, is answered as it would have been (the server is idle,
    /// or in the client's failed block, either way). Returns the server's status then, once.
    async fn end_failed_batch(&mut self) -> Result<Option<TxStatus>, SessionError> {
        let quiet = self.relay.is_discarding() && self.relay.only_sync_owed();
        if !quiet || self.failed_batch_ended || self.pending.is_some() || !self.relay.to_server.is_empty() {
            return Ok(None);
        }
        self.failed_batch_ended = true;
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let sync = crate::wire::encode(crate::wire::messages::fe::SYNC, &[]);
        let sent = b.send(&sync).await;
        let answer = match sent {
            Ok(()) => b.answer().await.map(|a| a.status),
            Err(e) => Err(e),
        };
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        answer.map_err(|e| SessionError::Closed(format!("ending a failed batch to put a sequence back: {e}")))
    }
}

/// blastwall's savepoint around its own statements in the client's block (`undone`).
const MARK_SP: &str = "blastwall_mark";

impl Session {
    /// A write kept in the client's block moved protected sequences (`moves`): remembered
    /// until the block ends, with the transaction ID its rows were written under (`undone`).
    /// The server is idle in the client's block (the check just ended).
    pub(super) async fn remember_kept(
        &mut self,
        moves: Vec<precheck::putback::Moved>,
        handed: bool,
    ) -> Result<(), SessionError> {
        if self.relay.tx != TxStatus::InBlock || moves.is_empty() {
            return Ok(());
        }
        let resolve = self.block.unresolved();
        let sql = match resolve {
            true => format!("{HELD_XIDS}; {NEWEST_XID}"),
            false => NEWEST_XID.to_string(),
        };
        let rows = self.hidden(&sql).await?;
        self.remember_read((moves, handed), resolve, &rows);
        Ok(())
    }

    /// What the readings of `remember_kept` (or `remember_in_batch`) said: a `ROLLBACK` or
    /// `RELEASE` before the write resolved first (`resolve`: the first row is the IDs held),
    /// then the write's moves remembered under the newest ID.
    fn remember_read(
        &mut self,
        (moves, handed): (Vec<precheck::putback::Moved>, bool),
        resolve: bool,
        rows: &[Vec<Option<String>>],
    ) {
        let value = |i: usize| rows.get(i).and_then(|r| r.first().cloned().flatten());
        if resolve {
            let (guard, db) = (&self.shared.guard, &self.info.database);
            let undone = self.block.resolve(&xids(value(0).as_deref()), &mut |oid, steps, force| {
                guard.spend_by_oid(db, oid, steps, force)
            });
            self.put_back.splice(0..0, undone);
        }
        let newest = xids(value(usize::from(resolve)).as_deref()).first().copied();
        self.block.record(moves, newest, handed);
    }

    /// Runs blastwall's own reading `sql` on the server idle in the client's block.
    async fn hidden(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, SessionError> {
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let done = hidden_in_block(&mut b, sql).await;
        let Backend { for_client, params, .. } = b;
        self.take_for_client(for_client, params);
        done.map_err(|e| SessionError::Closed(format!("reading a protected sequence's transaction: {e}")))
    }

    /// The same for a write counted in the middle of a batch (`rows`: the readings before and
    /// after it), read there behind it on blastwall's statement `name`. `false`: the server
    /// failed that reading (the batch now skips to its Sync).
    pub(super) async fn remember_in_batch(
        &mut self,
        rows: &(precheck::inbatch::Rows, precheck::inbatch::Rows),
        name: &str,
        (plan, counts): (&precheck::CheckPlan, &[precheck::TableCount]),
    ) -> Result<bool, SessionError> {
        let policy = self.shared.guard.policy();
        let start = precheck::slices::Positions::new();
        let back = precheck::putback::candidates(&rows.0, &start, 0, self.info.view(), &policy);
        let moves = precheck::putback::kept_moves(&back, &rows.0, &rows.1);
        if moves.is_empty() {
            return Ok(true);
        }
        let inserted = precheck::putback::sequence_inserts(counts, &policy);
        let handed = precheck::putback::beyond_rows(&moves, inserted) || plan.hands_out();
        let resolve = self.block.unresolved();
        let mut sqls = vec![NEWEST_XID.to_string()];
        if resolve {
            sqls.insert(0, HELD_XIDS.to_string());
        }
        let mut b = Backend::new(&mut self.server, &mut self.sfr);
        let done = precheck::inbatch::run_after(&mut b, name, &sqls).await;
        let Backend { for_client, params, .. } = b;
        let for_client = self.notifications_to_ready(for_client);
        self.take_for_client(for_client, params);
        let done =
            done.map_err(|e| SessionError::Closed(format!("reading a protected sequence's transaction: {e}")))?;
        let Ok(read) = done else { return Ok(false) };
        self.remember_read((moves, handed), resolve, &read);
        Ok(true)
    }

    /// The transaction ID owed for a COPY's moves kept in the client's block, read once the
    /// server is idle in that block (`undone`).
    pub(super) async fn set_block_mark(&mut self) -> Result<(), SessionError> {
        let quiet = !self.relay.is_busy() && self.pending.is_none() && self.relay.to_server.is_empty();
        if !quiet {
            return Ok(());
        }
        if self.relay.tx != TxStatus::InBlock {
            self.block.marked(None, &[]);
            return Ok(());
        }
        // Where the COPY left them too (`undone::contiguous_with_end`): the ends row is one
        // row whatever it finds, so the transaction ID is the second.
        let ends = precheck::putback::ends_sql(self.block.unmarked().into_iter());
        let rows = self.hidden(&format!("{ends}; {NEWEST_XID}")).await?;
        let value = |i: usize| rows.get(i).and_then(|r| r.first().cloned().flatten());
        let at = precheck::putback::ends(&rows);
        self.block.marked(xids(value(1).as_deref()).first().copied(), &at);
        Ok(())
    }

    /// A `ROLLBACK` or `RELEASE` tag left the client's block open: what it undid is read from
    /// the session's transaction IDs once the server is idle, and owed a put-back (`undone`).
    pub(super) async fn read_block_marks(&mut self) -> Result<(), SessionError> {
        let quiet = !self.relay.is_busy() && self.pending.is_none() && self.relay.to_server.is_empty();
        if !quiet || self.relay.tx != TxStatus::InBlock {
            return Ok(());
        }
        let rows = self.hidden(HELD_XIDS).await?;
        let value = rows.first().and_then(|r| r.first().cloned().flatten());
        let (guard, db) = (&self.shared.guard, &self.info.database);
        let undone = self
            .block
            .resolve(&xids(value.as_deref()), &mut |oid, steps, force| guard.spend_by_oid(db, oid, steps, force));
        self.put_back.splice(0..0, undone);
        Ok(())
    }
}

/// Runs `sql` in the client's open block under a savepoint of blastwall's (an error cannot
/// abort the block): its rows, or none when it failed.
async fn hidden_in_block(b: &mut Backend<'_>, sql: &str) -> Result<Vec<Vec<Option<String>>>, precheck::PrecheckError> {
    let a = b.query(&format!("SAVEPOINT {MARK_SP}; {sql}; RELEASE SAVEPOINT {MARK_SP}")).await?;
    if a.error.is_some() {
        b.query(&format!("ROLLBACK TO SAVEPOINT {MARK_SP}; RELEASE SAVEPOINT {MARK_SP}")).await?;
        return Ok(Vec::new());
    }
    Ok(a.rows)
}
