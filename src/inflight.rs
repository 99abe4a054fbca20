//! What the sessions of one database have sent through blastwall that the server may not have
//! finished with: the writes judged and not yet answered, and the DDL whose transaction has
//! not ended (eighth adversarial pass N1).
//!
//! A write is judged when it arrives, with the catalog of that moment; the server resolves its
//! names only when it reaches it — after a slow statement before it in the same batch, or
//! after a lock it waits for. DDL another session sends meanwhile (`ALTER TABLE users RENAME
//! TO members`, `CREATE VIEW members AS SELECT * FROM users`, a column renamed) would make that
//! write's name lead to a policy table it was not judged as. So the two are kept apart:
//! - **DDL waits for the writes judged before it**: a message whose DDL may redirect a name
//!   (`names::Earlier`: `ddl::Class::Named` for the names it mentions, `Class::Any` for every
//!   name) is not forwarded until every other session's write judged before it whose name it
//!   may redirect is answered ([`DDL_WAIT`] at most; then those are cancelled, and after
//!   [`CANCEL_GRACE`] their sessions are ended: nothing they sent can run after the DDL).
//! - **Writes judged while such DDL is open see it**: until the DDL's transaction ends (its
//!   session's ReadyForQuery with no transaction open), a row write of another session whose
//!   name it may redirect is judged as one whose name cannot be resolved before it runs
//!   (`names::reach`), as it is after DDL earlier in its own batch; once it ends, the
//!   catalog's answers are dropped, and the next judgement asks again.
//!
//! Registering a write and seeing the open DDL happen under one lock, as do publishing DDL and
//! finding the writes to wait for: either the write was registered first (the DDL waits for
//! it) or the DDL was published first (the write is judged with it).
//!
//! Three cases apart: DDL the session's role may not run waits for nothing (`first`); two
//! sessions whose DDL waits for each other's writes end one, the younger waiter (`wait`); a
//! prepared transaction's DDL stays open under its gid until it is gone (`prepared`).
//!
//! Owns: that registry and the waiting. Does not own: which DDL may redirect what
//! (`names::earlier`, `names::ddl`), the judgement (`names::reach`), the session's hooks
//! (`session`).

use crate::analyze::RelName;
use crate::names::{Earlier, EarlierKind};
use crate::wire::messages::TxStatus;
use crate::wire::startup::CancelKey;
use dashmap::DashMap;
use std::sync::{Arc, Mutex};

mod first;
mod prepared;
mod wait;
pub use prepared::{prepared_query, OnServer, TwoPhase, SERVER_QUERY};
pub use wait::{Waited, CANCEL_GRACE, DDL_WAIT};

/// The waiter's id when another blastwall instance's DDL waits for this one's writes
/// (`crate::instances`): no session of this instance, so it is in no cycle of waits.
pub const FOREIGN: u64 = u64::MAX;

/// Every database's registry.
#[derive(Default)]
pub struct Inflight {
    dbs: DashMap<String, Arc<Db>>,
}

impl Inflight {
    /// The registry of `database` (a session keeps its handle).
    pub fn db(&self, database: &str) -> Arc<Db> {
        if let Some(d) = self.dbs.get(database) {
            return d.clone();
        }
        self.dbs.entry(database.to_string()).or_default().clone()
    }
}

/// One database's writes and DDL in flight.
#[derive(Default)]
pub struct Db {
    state: Mutex<State>,
    /// Woken whenever a session's entries are removed.
    changed: tokio::sync::Notify,
}

impl State {
    /// The other sessions with a write in flight that `ddl` may redirect.
    fn waits(&self, me: u64, ddl: &[Earlier]) -> Vec<u64> {
        let mut wait: Vec<u64> = Vec::new();
        for w in self.writes.iter().filter(|w| w.session != me) {
            if !wait.contains(&w.session) && ddl.iter().any(|e| w.redirected_by(e)) {
                wait.push(w.session);
            }
        }
        wait
    }
}

#[derive(Default)]
struct State {
    /// DDL sent, whose transaction has not ended: (session, statement, active). Inactive
    /// while its transaction is failed (it can only roll back, unless a `ROLLBACK TO
    /// SAVEPOINT` brings it back: active again then).
    ddl: Vec<(u64, Earlier, bool)>,
    /// Writes judged and not yet answered: (session, its sync point, its target, its backend key).
    writes: Vec<Write>,
    /// Sessions whose DDL waits for others' writes (`wait`), and the order of the next one.
    waiting: Vec<wait::Waiting>,
    next_wait: u64,
    /// Sessions ended by another's wait and not yet gone (their own wait stops).
    ended: Vec<u64>,
    /// Prepared transactions' open DDL (`prepared`).
    prepared: Vec<prepared::Prepared>,
}

struct Write {
    session: u64,
    ord: u64,
    target: RelName,
    /// An upsert `ON CONFLICT ON CONSTRAINT`: any DDL may swap its constraint.
    constraint: bool,
    key: Option<CancelKey>,
}

impl Write {
    fn redirected_by(&self, e: &Earlier) -> bool {
        e.redirects_elsewhere(&self.target).is_some() || (self.constraint && e.kind == EarlierKind::Ddl)
    }
}

impl Db {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A judgement on `session`: registers its row writes' targets (at sync point `ord`) and
    /// its DDL, and answers the other sessions' open DDL (what its writes are judged against)
    /// and, when it has DDL, the sessions whose writes it must wait for.
    /// The DDL entries it adds are also returned: an entry equal to one the session published
    /// before (the same statement again) is not added, and is not taken back with a refusal.
    pub fn judging(
        &self,
        me: &Mine,
        targets: &[(&RelName, bool)],
        ddl: &[Earlier],
    ) -> (Vec<Earlier>, Vec<u64>, Vec<Earlier>) {
        let mut s = self.lock();
        let mut added = Vec::new();
        for (t, constraint) in targets {
            if !s.writes.iter().any(|w| w.session == me.session && w.ord == me.ord && w.target == **t) {
                let (target, key) = ((*t).clone(), me.key.clone());
                s.writes.push(Write { session: me.session, ord: me.ord, target, constraint: *constraint, key });
            }
        }
        for e in ddl {
            if !s.ddl.iter().any(|(id, d, _)| *id == me.session && d == e) {
                s.ddl.push((me.session, e.clone(), true));
                added.push(e.clone());
            }
        }
        let others = s.ddl.iter().filter(|(id, _, on)| *id != me.session && *on).map(|(_, e, _)| e.clone());
        let others = others.chain(s.prepared.iter().flat_map(|p| p.ddl.iter().cloned())).collect();
        (others, s.waits(me.session, ddl), added)
    }

    /// Takes back DDL the session published in a judgement that refused it (it never runs).
    pub fn withdraw(&self, session: u64, ddl: &[Earlier]) {
        self.lock().ddl.retain(|(id, e, _)| *id != session || !ddl.contains(e));
    }

    /// The session's transaction failed (its DDL can only roll back: inactive) or is open
    /// again after a `ROLLBACK TO SAVEPOINT` (active again: the sessions whose writes it must
    /// wait for, judged meanwhile).
    pub fn failed(&self, session: u64, failed: bool) -> Vec<u64> {
        let mut s = self.lock();
        let mut revived = Vec::new();
        for (id, e, on) in s.ddl.iter_mut().filter(|(id, ..)| *id == session) {
            if *on == failed {
                *on = !failed;
                if !failed {
                    revived.push(e.clone());
                }
                let _ = id;
            }
        }
        s.waits(session, &revived)
    }

    /// The session's writes up to sync point `answered` (exclusive) are answered; with
    /// `all`, every one of them.
    pub fn answered(&self, session: u64, answered: u64, all: bool) {
        let mut s = self.lock();
        let before = s.writes.len();
        s.writes.retain(|w| w.session != session || (!all && w.ord >= answered));
        if s.writes.len() != before {
            drop(s);
            self.changed.notify_waiters();
        }
    }

    /// The session's transaction ended (or the session did): its DDL is no longer open.
    /// Whether it had any.
    pub fn transaction_ended(&self, session: u64) -> bool {
        let mut s = self.lock();
        let before = s.ddl.len();
        s.ddl.retain(|(id, ..)| *id != session);
        let had = s.ddl.len() != before;
        drop(s);
        if had {
            self.changed.notify_waiters();
        }
        had
    }
}

/// A session's side of the registry (kept in its `SessionInfo`).
#[derive(Debug, Clone, Default)]
pub struct Mine {
    /// The database's registry (none before the session is ready, and for the console).
    pub db: Option<Arc<DbHandle>>,
    pub session: u64,
    pub key: Option<CancelKey>,
    /// The sync point the message being judged belongs to.
    pub ord: u64,
    /// Other sessions' open DDL, as of the judgement being made.
    pub others: Vec<Earlier>,
    /// Sessions whose writes the message just judged must wait for (it has DDL).
    pub wait_for: Vec<u64>,
    /// Whether the session registered anything since it was last idle.
    pub registered: bool,
    /// Whether it published DDL since its last transaction end.
    pub published: bool,
    /// The DDL the last judgement published, and the waits it added (taken back if it was
    /// refused).
    pub last: Vec<Earlier>,
    pub last_waits: Vec<u64>,
    /// The session's transaction is failed (its DDL inactive).
    pub failed: bool,
    /// DDL published and not yet announced to other blastwall instances (`crate::instances`):
    /// announced before the message that carries it is forwarded.
    pub announce: Vec<Earlier>,
    /// The one message whose DDL the waits are for, when it may be refused by the server
    /// for lack of privilege (`first`).
    pub first: first::First,
    /// The session is judging a whole Query (not an extended Parse): set by the session.
    pub whole_query: bool,
    /// The last judged message's DDL that may change only the session's own temporary
    /// relations (`first::temporary`): its sync point, its text and the entries it published,
    /// asked about before it is forwarded.
    pub temporary: Option<(u64, String, Vec<Earlier>)>,
    /// Such DDL the session answered for (its sync point and text): not published again when
    /// its message is judged again.
    pub own_temporary: Option<(u64, String)>,
    /// The sync point of the unnamed statement's last Parse (its writes were registered
    /// there), and its statements once a Bind in a later batch needed them.
    pub unnamed: Option<(u64, Option<Arc<Vec<crate::analyze::Statement>>>)>,
    /// Its two-phase statements, and the prepared transactions to ask about (`prepared`).
    pub two_phase: TwoPhase,
}

/// A session's handle on its database's registry (`Debug` for `SessionInfo`).
pub struct DbHandle(pub Arc<Db>);

impl std::fmt::Debug for DbHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Mine {
    /// Called where a message's writes are judged by name: registers them and its DDL, and
    /// takes the other sessions' open DDL to judge them against. `quiet`: the server had
    /// answered everything the session sent before this message.
    pub fn judging(&mut self, statements: &[crate::analyze::Statement], quiet: bool) {
        let Some(db) = self.db.clone() else { return };
        self.two_phase.judged(statements);
        // Nothing of the transaction published, announced or waiting before this message.
        let nothing_before = !self.published && self.wait_for.is_empty() && self.announce.is_empty();
        let mut targets: Vec<(&RelName, bool)> = Vec::new();
        let mut ddl: Vec<Earlier> = Vec::new();
        for st in statements {
            for w in &st.writes {
                let row = w.op.is_row_write() || matches!(w.op, crate::analyze::Op::Upsert { .. });
                let constraint = matches!(&w.op, crate::analyze::Op::Upsert { constraint: Some(_), .. });
                if let (true, Some(t)) = (row, w.target.as_ref()) {
                    if !targets.contains(&(t, constraint)) {
                        targets.push((t, constraint));
                    }
                }
            }
            if self.own_temporary.as_ref().is_some_and(|(ord, text)| *ord == self.ord && *text == st.text) {
                continue;
            }
            ddl.extend(Earlier::for_others(st));
        }
        self.last.clear();
        self.last_waits.clear();
        // No row write to judge and no DDL to publish: nothing to register or see.
        if targets.is_empty() && ddl.is_empty() {
            self.others.clear();
            self.two_phase.ask.clear();
            return;
        }
        let (others, wait, added) = db.0.judging(self, &targets, &ddl);
        // A prepared transaction's DDL is among the others' when it concerns anything.
        self.two_phase.ask = if others.is_empty() { Vec::new() } else { db.0.stale_prepared(&targets) };
        self.first.judged(statements, quiet, self.ord, self.wait_for.is_empty(), !wait.is_empty());
        self.registered |= !targets.is_empty() || !ddl.is_empty();
        self.published |= !ddl.is_empty();
        self.others = others;
        for e in &ddl {
            if !self.announce.contains(e) {
                self.announce.push(e.clone());
            }
        }
        if !ddl.is_empty() {
            let own = first::temporary(statements, quiet, self.whole_query).filter(|_| nothing_before);
            self.temporary = own.filter(|_| !added.is_empty()).map(|text| (self.ord, text, added.clone()));
        }
        // Only what this judgement added is taken back if it is refused.
        self.last = added;
        for s in wait {
            if !self.wait_for.contains(&s) {
                self.wait_for.push(s);
                self.last_waits.push(s);
            }
        }
    }

    /// The server answered the session's sync points before `answered`; `idle`: all of them;
    /// `status`: the transaction's (idle: the session's DDL ends; failed: it is inactive until
    /// revived). Whether DDL the session published ended with it (the catalog's answers are
    /// then dropped by the caller).
    pub fn answered(&mut self, answered: u64, idle: bool, status: TxStatus) -> bool {
        let Some(db) = self.db.clone().filter(|_| self.registered) else { return false };
        db.0.answered(self.session, answered, idle);
        let tx_idle = status == TxStatus::Idle;
        let failed = status == TxStatus::Failed;
        if self.published && failed != self.failed && !tx_idle {
            self.failed = failed;
            for s in db.0.failed(self.session, failed) {
                self.first.mixed();
                if !self.wait_for.contains(&s) {
                    self.wait_for.push(s);
                }
            }
        }
        let mut ended = false;
        if idle && tx_idle {
            self.failed = false;
            ended = self.transaction_end(&db.0);
            self.published = false;
            self.registered = false;
        }
        ended
    }

    /// A new judgement begins: what the last one published is no longer "the last" (a refusal
    /// of this one takes back only its own).
    pub fn judging_anew(&mut self) {
        if !self.last.is_empty() || !self.last_waits.is_empty() {
            self.last.clear();
            self.last_waits.clear();
        }
    }

    /// The last judgement was a refusal: what it published never runs, and it waits for
    /// nothing (what DDL judged before it in the same read waits for stays).
    pub fn refused(&mut self) {
        self.temporary = None;
        if let (Some(db), false) = (self.db.as_ref(), self.last.is_empty()) {
            db.0.withdraw(self.session, &self.last);
            self.announce.retain(|e| !self.last.contains(e));
            self.last.clear();
            let added = std::mem::take(&mut self.last_waits);
            self.wait_for.retain(|s| !added.contains(s));
            match self.wait_for.is_empty() {
                true => drop(self.first.take()),
                false => self.first.mixed(),
            }
        }
    }

    /// Whether the message judged must wait before it is forwarded: for other sessions' writes
    /// judged before its DDL, or for other instances to hear of that DDL.
    pub fn must_wait(&self) -> bool {
        !self.wait_for.is_empty() || !self.announce.is_empty() || self.temporary.is_some()
    }

    /// The session answered that the message's DDL changes only its own temporary relations
    /// (`temporary`): it is taken back from other sessions' view, and waits for nothing (no
    /// other DDL of the transaction was published, announced or waiting before it).
    pub fn only_own_temporary(&mut self, ord: u64, text: String, entries: &[Earlier]) {
        self.own_temporary = Some((ord, text));
        if let Some(db) = self.db.as_ref() {
            db.0.withdraw(self.session, entries);
        }
        self.announce.retain(|e| !entries.contains(e));
        self.last.retain(|e| !entries.contains(e));
        self.wait_for.clear();
        self.last_waits.clear();
        drop(self.first.take());
    }

    /// The session ended: nothing of it is in flight any more.
    pub fn leave(&mut self) -> bool {
        let Some(db) = self.db.take() else { return false };
        db.0.answered(self.session, 0, true);
        db.0.lock().ended.retain(|id| *id != self.session);
        db.0.transaction_ended(self.session)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) fn statements(sql: &str) -> Vec<crate::analyze::Statement> {
        crate::analyze::analyze(sql, Default::default())
    }

    fn users() -> RelName {
        RelName { schema: None, name: "users".into() }
    }

    fn members() -> RelName {
        RelName { schema: None, name: "members".into() }
    }

    pub(super) fn mine(db: &Arc<Db>, session: u64, ord: u64) -> Mine {
        Mine { db: Some(Arc::new(DbHandle(db.clone()))), session, ord, ..Default::default() }
    }

    #[test]
    fn ddl_waits_for_the_writes_it_may_redirect_and_later_writes_see_it() {
        let db = Arc::new(Db::default());
        let mut app = mine(&db, 1, 0);
        let mut other = mine(&db, 3, 0);
        // A new view over `users` changes what `members` leads to, not what `users` does.
        let mut viewer = mine(&db, 5, 0);
        viewer.judging(&statements("CREATE VIEW members AS SELECT * FROM users"), false);
        app.judging(&statements("DELETE FROM users WHERE id = 1"), false);
        assert!(app.others.iter().all(|e| e.redirects_elsewhere(&users()).is_none()));
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert!(app.others.iter().any(|e| e.redirects_elsewhere(&members()).is_some()));
        assert!(viewer.answered(1, true, TxStatus::Idle));
        db.answered(1, 0, true);
        app.judging(&statements("DELETE FROM members WHERE id BETWEEN 1 AND 2"), false);
        other.judging(&statements("UPDATE notes SET x = 1 WHERE id < 5"), false);
        assert!(app.others.is_empty());
        let mut migrator = mine(&db, 2, 0);
        migrator.judging(&statements("ALTER TABLE users RENAME TO members"), false);
        // Only the write whose name the rename names is waited for.
        assert_eq!(migrator.wait_for, vec![1]);
        // A write judged now sees the rename; the migrator's own do not.
        app.ord = 1;
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert_eq!(app.others.len(), 1);
        migrator.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert!(migrator.others.is_empty());
        // Answered: the wait ends; the DDL stays open until its transaction does.
        assert!(!app.answered(2, true, TxStatus::Idle));
        assert!(db.still(&[1]).is_empty());
        assert!(migrator.answered(1, true, TxStatus::Idle), "the DDL's end is reported");
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert!(app.others.is_empty());
    }

    #[test]
    fn a_refused_ddl_withdraws_only_what_it_added() {
        let db = Arc::new(Db::default());
        let mut app = mine(&db, 1, 0);
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        let mut other = mine(&db, 3, 0);
        other.judging(&statements("DELETE FROM notes WHERE id = 1"), false);
        let mut w = mine(&db, 2, 0);
        w.judging(&statements("ALTER TABLE users RENAME TO members"), false);
        w.judging(&statements("ALTER TABLE notes RENAME TO old_notes"), false);
        assert_eq!(w.wait_for, vec![1, 3]);
        w.refused();
        assert_eq!(w.wait_for, vec![1], "the first DDL, judged before, still waits");
        // A later judgement that publishes nothing and is refused takes back nothing.
        w.judging(&statements("ALTER TABLE users RENAME TO members"), false);
        w.judging_anew();
        w.refused();
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert!(!app.others.is_empty(), "the rename, still open, was taken back");
        // Nor does the same statement again, refused right away: it added nothing.
        w.judging(&statements("ALTER TABLE users RENAME TO members"), false);
        w.refused();
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert!(!app.others.is_empty(), "the rename, still open, was taken back by its repetition");
        app.judging(&statements("DELETE FROM old_notes WHERE id = 1"), false);
        assert!(app.others.iter().all(|e| e.redirects_elsewhere(&members()).is_some()), "{:?}", app.others);
    }

    #[test]
    fn ddl_that_may_redirect_any_name_waits_for_every_write() {
        let db = Arc::new(Db::default());
        let mut app = mine(&db, 1, 0);
        app.judging(&statements("DELETE FROM notes WHERE id = 1"), false);
        let mut migrator = mine(&db, 2, 0);
        migrator.judging(&statements("ALTER SCHEMA archive RENAME TO old"), false);
        assert_eq!(migrator.wait_for, vec![1]);
        let mut nothing = mine(&db, 4, 0);
        nothing.judging(&statements("CREATE INDEX ON notes (id)"), false);
        assert!(nothing.wait_for.is_empty(), "DDL that redirects nothing waits for nothing");
    }
}
