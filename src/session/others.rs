//! The session's side of `crate::inflight`: its writes answered, its DDL's transaction ended
//! (the catalog's answers dropped then, since other sessions may have asked between the DDL's
//! answer and its COMMIT), and a message with DDL held until the other sessions' writes judged
//! before it are answered — cancelled, and their sessions ended, if they take too long — and
//! until the other blastwall instances have answered its announcement (`crate::instances`;
//! the session ends if they do not).
//!
//! Also: whether the session's role may run that DDL, asked on the session before it waits
//! (`inflight::first`), and the end of a session ended while it waited (`inflight::wait`).
//!
//! Owns: those hooks. Does not own: the registry (`inflight`), the judgement (`names`), the
//! instances' coordination (`instances`).

use super::{Session, SessionError};
use crate::inflight::Waited;
use crate::wire::messages::{ProxyMessage, TxStatus};
use tokio::io::AsyncWriteExt;

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

    /// The session's DDL's transaction ended (or was prepared): the other blastwall instances
    /// are told.
    fn instances_ended(&mut self) {
        let prepared = self.info.inflight.two_phase.take_prepared();
        let db = self.info.inflight.db.as_ref();
        if let Some(p) = db.and_then(|db| self.shared.instances.of(&self.info.database, &db.0)) {
            p.ended_as(self.id, prepared);
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
            self.info.inflight.judging(&statements, self.info.settings_certain);
        }
    }

    /// A Bind of a prepared statement: its writes run now, judged when it was prepared (or by
    /// a judgement kept since). They are registered like a message's, and one whose name
    /// another session's open DDL may redirect is refused while a policy table has protected
    /// columns, as the same write in a Query would be (`names::reach`). The unnamed
    /// statement's were registered by its Parse when that came in the same batch; parsed in
    /// an earlier one, they are registered here too.
    pub(super) fn inflight_bind(&mut self, stmt: &[u8]) -> Option<ProxyMessage> {
        self.info.inflight.db.as_ref()?;
        self.info.inflight.ord = self.relay.syncs_sent();
        if stmt.is_empty() {
            let list = self.unnamed_bound()?;
            return against_others(&mut self.info.inflight, &list, &self.shared.guard, None);
        }
        let name = std::str::from_utf8(stmt).ok()?;
        let list = self.info.prepared.get(name)?;
        against_others(&mut self.info.inflight, list, &self.shared.guard, Some(name))
    }

    /// The unnamed statement's statements at its Bind, when it was parsed in an earlier batch
    /// than this one (analyzed once per Parse).
    fn unnamed_bound(&mut self) -> Option<std::sync::Arc<Vec<crate::analyze::Statement>>> {
        let (at, kept) = self.info.inflight.unnamed.clone()?;
        if at == self.relay.syncs_sent() {
            return None;
        }
        if let Some(list) = kept {
            return Some(list);
        }
        let facts = self.mirror.facts(b"")?;
        let sql = crate::wire::messages::parse_msg(facts.parse.as_ref()?).ok()?.sql;
        let list = self.shared.guard.statements_of(sql, &self.info, None);
        self.info.inflight.unnamed = Some((at, Some(list.clone())));
        Some(list)
    }

    /// A message with DDL was judged: nothing more goes to the server until the other
    /// sessions' writes judged before it are answered, and the other blastwall instances have
    /// answered that theirs are (`instances`). When they cannot, the session ends with a word
    /// to its client: nothing of the message runs.
    pub(super) async fn wait_for_others(&mut self) -> Result<(), SessionError> {
        // DDL of the session's own temporary relations alone is taken back, and waits for
        // nothing (`inflight::first::temporary`).
        if let Some((ord, text, entries)) = self.info.inflight.temporary.take() {
            if self.only_own_temporary(ord, &text).await? {
                tracing::info!(session = self.id, "DDL of the session's own temporary relations: not published");
                self.info.inflight.only_own_temporary(ord, text, &entries);
                if !self.info.inflight.must_wait() {
                    return Ok(());
                }
            }
        }
        let announce = std::mem::take(&mut self.info.inflight.announce);
        let peers = self.info.inflight.db.as_ref().and_then(|db| self.shared.instances.of(&self.info.database, &db.0));
        let (id, backend) = (self.id, self.info.inflight.key.as_ref().map(|k| k.pid));
        let asked = async move {
            match peers {
                Some(p) if !announce.is_empty() => p.announce(id, backend, &announce).await,
                _ => Ok(()),
            }
        };
        let (local, asked) = tokio::join!(self.wait_for_sessions(), asked);
        local?;
        let Err(why) = asked else { return Ok(()) };
        tracing::warn!(
            session = self.id,
            reason = why,
            "DDL not sent: the other blastwall instances did not all answer"
        );
        use tokio::io::AsyncWriteExt;
        let _ = self.client.write_all(&crate::said::ddl_unannounced(&why).encode()).await;
        let _ = self.client.shutdown().await;
        Err(SessionError::Closed(why))
    }

    /// This instance's part of [`Session::wait_for_others`]: the other sessions' writes
    /// judged before the message's DDL — unless the session's role may not run that DDL
    /// (`inflight::first`, `names::rights`). Ended meanwhile by an older waiting session's
    /// wait (`inflight::wait`), the session ends and sends nothing.
    async fn wait_for_sessions(&mut self) -> Result<(), SessionError> {
        let first = self.info.inflight.first.take();
        let sessions = std::mem::take(&mut self.info.inflight.wait_for);
        let Some(db) = self.info.inflight.db.clone() else { return Ok(()) };
        let me = self.info.inflight.session;
        if let Some((ord, text)) = first {
            if !self.may_run(ord, &text, &db.0).await? {
                tracing::info!(
                    session = self.id,
                    others = ?sessions,
                    "DDL the session's role may not run (the server will refuse it) waits for no other session's writes"
                );
                return Ok(());
            }
        }
        let shared = self.shared.clone();
        let cancel = crate::cancels::by_blastwall(&shared, "another session's DDL");
        let end = |id: u64| {
            shared.phase.kill(id);
        };
        let waited = db.0.wait_for(me, &sessions, cancel, end).await;
        match waited {
            Waited::Drained => {}
            Waited::Gone => {
                tracing::warn!(
                    session = self.id,
                    others = ?sessions,
                    "DDL waited for other sessions' writes while an older session's DDL waited for this one's: this session is ended"
                );
                self.shared.phase.forget_kill(self.id);
                self.cancel_if_busy();
                let msg = crate::said::ended_for_other_ddl();
                let _ = self.client.write_all(&msg.encode()).await;
                let _ = self.client.shutdown().await;
                let _ = self.server.write_all(&crate::wire::messages::terminate()).await;
                return Err(SessionError::Closed("ended for an older session's DDL".into()));
            }
            _ => tracing::warn!(
                session = self.id,
                others = ?sessions,
                outcome = ?waited,
                "DDL waited for other sessions' writes judged before it, which did not end in time: they were {}",
                if waited == Waited::Cancelled { "cancelled" } else { "cancelled and their sessions ended" }
            ),
        }
        Ok(())
    }

    /// Whether `text`, the DDL of the message of sync point `ord`, changes only the session's
    /// own temporary relations (`names::rights::own_temporary_query`), asked on the session
    /// when the server has answered everything before that message (false otherwise).
    async fn only_own_temporary(&mut self, ord: u64, text: &str) -> Result<bool, SessionError> {
        if self.relay.syncs_done() != ord || self.relay.tx == TxStatus::Failed {
            return Ok(false);
        }
        let Some(sql) = crate::names::rights::own_temporary_query(text) else { return Ok(false) };
        let mut backend = crate::precheck::Backend::new(&mut self.server, &mut self.sfr);
        let answer = backend.query(&sql).await.map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?;
        let crate::precheck::Backend { for_client, params, .. } = backend;
        self.take_for_client(for_client, params);
        let value = answer.rows.first().and_then(|r| r.first()).cloned().flatten();
        Ok(answer.error.is_none() && value.as_deref() == Some("t"))
    }

    /// Whether the session's role may run `text`, the first statement of the message of sync
    /// point `ord` (true where that cannot be known: asked only when the server has answered
    /// everything before that message and no other session's DDL is open, which might change
    /// what the role may do before the statement runs).
    async fn may_run(&mut self, ord: u64, text: &str, db: &crate::inflight::Db) -> Result<bool, SessionError> {
        if self.relay.syncs_done() != ord || db.open_elsewhere(self.info.inflight.session) {
            return Ok(true);
        }
        // A failed transaction runs nothing but its end.
        if self.relay.tx == TxStatus::Failed {
            return Ok(false);
        }
        let Some(sql) = crate::names::rights::may_run_query(text, self.relay.tx != TxStatus::Idle) else {
            return Ok(true);
        };
        let mut backend = crate::precheck::Backend::new(&mut self.server, &mut self.sfr);
        let answer = backend.query(&sql).await.map_err(|e| SessionError::Closed(format!("catalog lookup: {e}")))?;
        let crate::precheck::Backend { for_client, params, .. } = backend;
        self.take_for_client(for_client, params);
        let value = answer.rows.first().and_then(|r| r.first()).cloned().flatten();
        Ok(answer.error.is_some() || value.as_deref() != Some("f"))
    }
}

/// Registers the writes a Bind runs (`list`, the statement prepared as `name`, or the unnamed
/// one) and judges them against other sessions' open DDL: the refusal when one may be
/// redirected.
fn against_others(
    inflight: &mut crate::inflight::Mine,
    list: &[crate::analyze::Statement],
    guard: &crate::guard::Guard,
    name: Option<&str>,
) -> Option<ProxyMessage> {
    inflight.judging(list, false);
    if inflight.others.is_empty() || guard.policy().tables.iter().all(|t| t.protected_columns.is_empty()) {
        return None;
    }
    let by = list.iter().flat_map(|s| &s.writes).find_map(|w| {
        let row = w.op.is_row_write() || matches!(w.op, crate::analyze::Op::Upsert { .. });
        let t = w.target.as_ref().filter(|_| row)?;
        let constraint = matches!(&w.op, crate::analyze::Op::Upsert { constraint: Some(_), .. });
        crate::names::redirected_by_others(&inflight.others, t, constraint).map(|by| (t.to_string(), by))
    });
    let (target, by) = by?;
    let (what, text) = match name {
        Some(name) => (format!("the statement prepared as {name}"), format!("EXECUTE {name}")),
        None => ("the unnamed statement".to_string(), "EXECUTE of the unnamed statement".to_string()),
    };
    let d = crate::guard::refusal(
        "opaque",
        "EXECUTE".into(),
        format!(
            "{what} writes to {target}, which could not be resolved before it runs: {by} may make it a view over a protected table"
        ),
        "Bind it again once that transaction has ended.",
        "blastwall",
        text,
    );
    Some(crate::guard::refusal_message(&d))
}
