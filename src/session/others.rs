//! The session's side of `crate::inflight`: its writes answered, its DDL's transaction ended
//! (the catalog's answers dropped then, since other sessions may have asked between the DDL's
//! answer and its COMMIT), and a message with DDL held until the other sessions' writes judged
//! before it are answered — cancelled, and their sessions ended, if they take too long — and
//! until the other blastwall instances have answered its announcement (`crate::instances`;
//! the session ends if they do not).
//!
//! Owns: those hooks. Does not own: the registry (`inflight`), the judgement (`names`), the
//! instances' coordination (`instances`).

use super::Session;
use crate::inflight::Waited;
use crate::wire::messages::ProxyMessage;

/// Held for a session's life: when it ends (or its task is dropped), its writes and DDL leave
/// the registry.
pub(super) struct Leave {
    pub(super) shared: std::sync::Arc<crate::shared::Shared>,
    pub(super) db: Option<std::sync::Arc<crate::inflight::DbHandle>>,
    pub(super) database: String,
    pub(super) session: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut mine = crate::inflight::Mine { db: self.db.take(), session: self.session, ..Default::default() };
        let db = mine.db.clone();
        if mine.leave() {
            self.shared.guard.catalog.forget(&self.database);
        }
        // Other instances are told its DDL ended (`instances`).
        if let Some(p) = db.and_then(|db| self.shared.instances.of(&self.database, &db.0)) {
            p.ended(self.session);
        }
    }
}

impl Session {
    /// After a ReadyForQuery, or once the session is idle: what the server answered leaves the
    /// registry; DDL whose transaction ended stops being open, and the catalog forgets.
    pub(super) fn inflight_answered(&mut self) {
        let idle = !self.relay.is_busy() && self.pending.is_none();
        if self.info.inflight.answered(self.relay.syncs_done(), idle, self.relay.tx) {
            self.shared.guard.catalog.forget(&self.info.database);
            self.instances_ended();
        }
    }

    /// The session's DDL's transaction ended: the other blastwall instances are told.
    fn instances_ended(&self) {
        let db = self.info.inflight.db.as_ref();
        if let Some(p) = db.and_then(|db| self.shared.instances.of(&self.info.database, &db.0)) {
            p.ended(self.id);
        }
    }

    /// After a text was judged: a refused one publishes nothing; one the guard passes as
    /// harmless that concerns other sessions' names (`GRANT`/`REVOKE`, `COMMIT PREPARED`) is
    /// published as DDL that may change any name.
    pub(super) fn inflight_judged(&mut self, sql: &[u8], refused: bool) {
        if refused {
            self.info.inflight.refused();
        } else if self.info.inflight.db.is_some() && crate::names::may_concern_others(sql) {
            let statements = self.shared.guard.statements_of(sql, &self.info, None);
            self.info.inflight.judging(&statements);
        }
    }

    /// A Bind of a statement prepared under a name: its writes run now, judged when it was
    /// prepared (or by a judgement kept since). They are registered like a message's, and one
    /// whose name another session's open DDL may redirect is refused while a policy table has
    /// protected columns, as the same write in a Query would be (`names::reach`).
    pub(super) fn inflight_bind(&mut self, stmt: &[u8]) -> Option<ProxyMessage> {
        if self.info.inflight.db.is_none() || stmt.is_empty() {
            return None;
        }
        let name = std::str::from_utf8(stmt).ok()?;
        let info = &mut self.info;
        let list = info.prepared.get(name)?;
        info.inflight.ord = self.relay.syncs_sent();
        info.inflight.judging(list);
        if info.inflight.others.is_empty() {
            return None;
        }
        let policy = self.shared.guard.policy();
        if policy.tables.iter().all(|t| t.protected_columns.is_empty()) {
            return None;
        }
        let by = list.iter().flat_map(|s| &s.writes).find_map(|w| {
            let row = w.op.is_row_write() || matches!(w.op, crate::analyze::Op::Upsert { .. });
            let t = w.target.as_ref().filter(|_| row)?;
            let constraint = matches!(&w.op, crate::analyze::Op::Upsert { constraint: Some(_), .. });
            crate::names::redirected_by_others(&info.inflight.others, t, constraint).map(|by| (t.to_string(), by))
        });
        let (target, by) = by?;
        let d = crate::guard::refusal(
            "opaque",
            "EXECUTE".into(),
            format!(
                "the statement prepared as {name} writes to {target}, which could not be resolved before it runs: {by} may make it a view over a protected table"
            ),
            "Bind it again once that transaction has ended.",
            "blastwall",
            format!("EXECUTE {name}"),
        );
        Some(crate::guard::refusal_message(&d))
    }

    /// A message with DDL was judged: nothing more goes to the server until the other
    /// sessions' writes judged before it are answered, and the other blastwall instances have
    /// answered that theirs are (`instances`). When they cannot, the session ends with a word
    /// to its client: nothing of the message runs.
    pub(super) async fn wait_for_others(&mut self) -> Result<(), super::SessionError> {
        let announce = std::mem::take(&mut self.info.inflight.announce);
        let peers = self.info.inflight.db.as_ref().and_then(|db| self.shared.instances.of(&self.info.database, &db.0));
        let id = self.id;
        let asked = async move {
            match peers {
                Some(p) if !announce.is_empty() => p.announce(id, &announce).await,
                _ => Ok(()),
            }
        };
        let ((), asked) = tokio::join!(self.wait_for_sessions(), asked);
        let Err(why) = asked else { return Ok(()) };
        tracing::warn!(
            session = self.id,
            reason = why,
            "DDL not sent: the other blastwall instances did not all answer"
        );
        use tokio::io::AsyncWriteExt;
        let _ = self.client.write_all(&crate::said::ddl_unannounced(&why).encode()).await;
        let _ = self.client.shutdown().await;
        Err(super::SessionError::Closed(why))
    }

    /// This instance's part of [`Session::wait_for_others`].
    async fn wait_for_sessions(&mut self) {
        let sessions = std::mem::take(&mut self.info.inflight.wait_for);
        let Some(db) = self.info.inflight.db.clone() else { return };
        let shared = self.shared.clone();
        let cancel = |key: crate::wire::startup::CancelKey| {
            let shared = shared.clone();
            async move {
                let _forwarding = shared.cancels.forwarding(&key);
                if let Err(e) = shared.upstream.cancel(&key).await {
                    tracing::warn!(error = %e, "cancelling another session's write before DDL failed");
                }
            }
        };
        let end = |id: u64| {
            shared.phase.kill(id);
        };
        let waited = db.0.wait_for(&sessions, cancel, end).await;
        if waited != Waited::Drained {
            tracing::warn!(
                session = self.id,
                others = ?sessions,
                outcome = ?waited,
                "DDL waited for other sessions' writes judged before it, which did not end in time: they were {}",
                if waited == Waited::Cancelled { "cancelled" } else { "cancelled and their sessions ended" }
            );
        }
    }
}
