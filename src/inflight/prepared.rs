//! A two-phase transaction's DDL between its `PREPARE TRANSACTION 'g'` and its `COMMIT
//! PREPARED 'g'` (ninth adversarial pass): the session's transaction has ended, but its DDL
//! is not committed yet, and may be at any moment, from any session (or a direct connection).
//! So when a session's transaction with open DDL ends behind a `PREPARE TRANSACTION`, its
//! DDL stays open in the registry under the transaction's gid, and other sessions' writes
//! whose names it may redirect are judged with it, as with any open DDL (a `COMMIT PREPARED`
//! through blastwall waits for the writes judged before it, as any DDL that may change any
//! name does).
//!
//! It stays until the server says the gid is gone: a judgement whose writes it may redirect
//! asks `pg_prepared_xacts` on its session (`catalog::Question::Prepared`) when the gid was
//! not seen there in the last [`FRESH`] (or since a `COMMIT|ROLLBACK PREPARED` of it through
//! blastwall ended); where nothing can be asked (the middle of a batch) it is taken as still
//! there. A `PREPARE TRANSACTION` that failed leaves its DDL held until that first question.
//!
//! A prepared transaction outlives its session and its blastwall instance (eleventh pass M1),
//! and may have been made on a direct connection: so with `[ddl_notify]` the server itself is
//! asked too, once a second per database from the listening connection, and when it joins
//! ([`SERVER_QUERY`], read by [`Db::learn_server`]). Every prepared transaction of the database
//! whose locks show DDL (a lock on a relation stronger than a row write's, on a relation the
//! catalog does not show yet (made in it), on a catalog table beyond reading it, on any
//! database object) or that changed a schema's row (`GRANT`/`REVOKE … ON SCHEMA` take no
//! lock), and one of any database with more than a read's lock on a shared catalog (role
//! memberships, `ALTER ROLE … SET`), is kept open here until the server says it is gone: by
//! what this instance knows of it (its own session's DDL, or another instance's, told at its
//! `PREPARE`: `instances`), else as DDL that may change any name. A transaction of row writes
//! only holds nothing open.
//!
//! Owns: those entries and those questions. Does not own: the registry (`super`), asking
//! (`crate::session`, `crate::instances`).

use super::{Db, Write};
use crate::analyze::{RelName, Statement};
use crate::names::Earlier;
use std::time::{Duration, Instant};

/// How long the server's word that a prepared transaction is still there stands.
const FRESH: Duration = Duration::from_secs(1);

/// A prepared transaction's open DDL.
pub(super) struct Prepared {
    gid: String,
    pub(super) ddl: Vec<Earlier>,
    /// When the server last said the gid is still there.
    seen: Option<Instant>,
    /// When it was registered (an answer asked before does not show it).
    since: Instant,
    /// Its transaction id, once the server showed it (another transaction may take the gid
    /// once this one is gone).
    xid: Option<String>,
}

/// A session's two-phase statements, judged and not yet ended.
#[derive(Debug, Clone, Default)]
pub struct TwoPhase {
    /// The gid of a `PREPARE TRANSACTION` sent in the open transaction.
    preparing: Option<String>,
    /// The gids of `COMMIT|ROLLBACK PREPARED` sent since the last transaction end.
    resolving: Vec<String>,
    /// The gids the judgement being made must ask about.
    pub(super) ask: Vec<String>,
    /// The gid the last transaction end prepared, with DDL (other instances are told).
    prepared: Option<String>,
}

impl TwoPhase {
    /// Notes the two-phase statements among `statements`.
    pub(super) fn judged(&mut self, statements: &[Statement]) {
        for st in statements.iter().filter(|st| st.transaction_control) {
            match crate::names::two_phase(st) {
                Some((true, gid)) => self.preparing = Some(gid),
                Some((false, gid)) if !self.resolving.contains(&gid) => self.resolving.push(gid),
                _ => {}
            }
        }
    }

    /// The question the judgement being made must ask first, if any.
    pub fn question(&self) -> Option<crate::catalog::Question> {
        (!self.ask.is_empty()).then(|| crate::catalog::Question::Prepared(self.ask.clone()))
    }

    /// The gid the session's last transaction end prepared with DDL open, once.
    pub fn take_prepared(&mut self) -> Option<String> {
        self.prepared.take()
    }
}

impl super::Mine {
    /// The session's transaction ended: its open DDL ends (whether it had any), or stays
    /// under the gid it was prepared as; gids it committed or rolled back are asked about
    /// again at the next judgement they concern.
    pub(super) fn transaction_end(&mut self, db: &Db) -> bool {
        let ended = match self.two_phase.preparing.take() {
            Some(gid) if self.published => {
                let had = db.prepare(self.session, gid.clone());
                self.two_phase.prepared = had.then_some(gid);
                had
            }
            _ if self.published => db.transaction_ended(self.session),
            _ => false,
        };
        let mut s = db.lock();
        for gid in std::mem::take(&mut self.two_phase.resolving) {
            s.prepared.iter_mut().filter(|p| p.gid == gid).for_each(|p| p.seen = None);
        }
        ended
    }

    /// What the server answered about the gids asked (`rows`: theirs still there; `None`:
    /// not answered, taken as still there). Whether a gid's DDL left (the catalog's answers
    /// are then dropped by the caller: it may have committed).
    pub fn learn_prepared(&mut self, asked: &[String], rows: Option<&[Vec<Option<String>>]>) -> bool {
        self.two_phase.ask.clear();
        let Some(db) = self.db.as_ref() else { return false };
        let mut s = db.0.lock();
        let there = |gid: &String| rows.is_none_or(|r| r.iter().any(|row| row.first() == Some(&Some(gid.clone()))));
        let before = s.prepared.len();
        s.prepared.retain(|p| !asked.contains(&p.gid) || there(&p.gid));
        for p in s.prepared.iter_mut().filter(|p| asked.contains(&p.gid)) {
            p.seen = Some(Instant::now());
        }
        s.prepared.len() != before
    }
}

impl Db {
    /// The session's transaction ended behind a `PREPARE TRANSACTION 'gid'`: its DDL stays
    /// open under the gid (also another instance's session's, told by it). Whether it had any.
    pub(crate) fn prepare(&self, session: u64, gid: String) -> bool {
        let mut s = self.lock();
        let mut ddl = Vec::new();
        s.ddl.retain(|(id, e, _)| {
            if *id == session {
                ddl.push(e.clone());
            }
            *id != session
        });
        let had = !ddl.is_empty();
        match s.prepared.iter_mut().find(|p| p.gid == gid) {
            Some(p) => p.ddl.extend(ddl),
            None if had => {
                let now = Instant::now();
                s.prepared.push(Prepared { gid, ddl, seen: Some(now), since: now, xid: None })
            }
            None => {}
        }
        had
    }

    /// The gids whose DDL may redirect one of `targets` and that the server has not said
    /// are still there in the last [`FRESH`].
    pub(super) fn stale_prepared(&self, targets: &[(&RelName, bool)]) -> Vec<String> {
        let s = self.lock();
        let stale = |p: &&Prepared| p.seen.is_none_or(|t| t.elapsed() >= FRESH);
        let concerns = |p: &&Prepared| {
            p.ddl.iter().any(|e| {
                targets.iter().any(|(t, constraint)| {
                    let w = Write { session: 0, ord: 0, target: (*t).clone(), constraint: *constraint, key: None };
                    w.redirected_by(e)
                })
            })
        };
        s.prepared.iter().filter(stale).filter(concerns).map(|p| p.gid.clone()).collect()
    }
}

/// A prepared transaction as the server shows it ([`SERVER_QUERY`]'s row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnServer {
    pub gid: String,
    pub xid: String,
    /// Whether it may have DDL that concerns this database.
    pub ddl: bool,
}

impl Db {
    /// What the server says of its prepared transactions (`now`, read by a query sent at
    /// `asked`): those gone leave (registered before it was sent), those with DDL not known
    /// here are kept as DDL that may change any name. Whether any left (the catalog's answers
    /// are then dropped by the caller: it may have committed).
    pub fn learn_server(&self, asked: Instant, now: &[OnServer]) -> bool {
        let mut s = self.lock();
        let before = s.prepared.len();
        s.prepared.retain(|p| match now.iter().find(|o| o.gid == p.gid) {
            None => p.since >= asked,
            // Another transaction under the same gid: this one is gone.
            Some(o) => p.xid.as_ref().is_none_or(|x| *x == o.xid),
        });
        let left = s.prepared.len() != before;
        let at = Instant::now();
        for o in now {
            match s.prepared.iter_mut().find(|p| p.gid == o.gid) {
                Some(p) => {
                    p.seen = Some(at);
                    p.xid = Some(o.xid.clone());
                }
                None if o.ddl => {
                    let text = format!("DDL prepared as '{}', seen on the server", o.gid.replace('\'', "''"));
                    let ddl = vec![Earlier::elsewhere(&text, Vec::new(), false)];
                    let (gid, xid) = (o.gid.clone(), Some(o.xid.clone()));
                    s.prepared.push(Prepared { gid, ddl, seen: Some(at), since: at, xid });
                }
                None => {}
            }
        }
        left
    }
}

/// The server's prepared transactions that may concern the current database, each with its
/// transaction id and whether it may hold DDL (see the module's comment). Cheap when there
/// are none: `pg_locks` is read only for the prepared transactions there are.
pub const SERVER_QUERY: &str = "SELECT p.gid, p.transaction::pg_catalog.text, \
       (p.database OPERATOR(pg_catalog.=) pg_catalog.current_database() AND EXISTS (SELECT FROM pg_catalog.pg_namespace n \
          WHERE n.xmax OPERATOR(pg_catalog.=) p.transaction)) \
    OR EXISTS (SELECT FROM pg_catalog.pg_locks t JOIN pg_catalog.pg_locks l \
          ON l.virtualtransaction OPERATOR(pg_catalog.=) t.virtualtransaction AND l.pid IS NULL \
        LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation \
        WHERE t.locktype OPERATOR(pg_catalog.=) 'transactionid' AND t.pid IS NULL \
          AND t.transactionid OPERATOR(pg_catalog.=) p.transaction \
          AND CASE WHEN l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.database OPERATOR(pg_catalog.=) 0::pg_catalog.oid \
                 THEN l.mode OPERATOR(pg_catalog.<>) ALL (ARRAY['AccessShareLock', 'RowShareLock']) \
               WHEN p.database OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN false \
               WHEN l.locktype OPERATOR(pg_catalog.=) 'object' THEN true \
               WHEN l.locktype OPERATOR(pg_catalog.=) 'relation' THEN c.oid IS NULL \
                 OR l.mode OPERATOR(pg_catalog.<>) ALL (ARRAY['AccessShareLock', 'RowShareLock', 'RowExclusiveLock']) \
                 OR c.oid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid AND l.mode OPERATOR(pg_catalog.<>) 'AccessShareLock' \
               ELSE false END) \
  FROM pg_catalog.pg_prepared_xacts p";

/// The query answering which of `gids` are prepared transactions now.
pub fn prepared_query(gids: &[String]) -> String {
    let list: Vec<String> = gids.iter().map(|g| crate::catalog::literal(g)).collect();
    format!(
        "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE gid OPERATOR(pg_catalog.=) ANY (ARRAY[{}]::pg_catalog.text[])",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{mine, statements};
    use super::*;
    use crate::wire::messages::TxStatus;
    use std::sync::Arc;

    #[test]
    fn prepared_ddl_stays_open_until_the_server_says_its_gid_is_gone() {
        let db = Arc::new(Db::default());
        let mut m = mine(&db, 1, 0);
        m.judging(&statements("CREATE VIEW members AS SELECT * FROM users"), false);
        m.judging(&statements("PREPARE TRANSACTION 'g1'"), false);
        assert!(m.answered(1, true, TxStatus::Idle), "the transaction's end is reported");
        let mut app = mine(&db, 2, 0);
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert_eq!(app.others.len(), 1, "the prepared DDL is not open");
        assert!(app.two_phase.question().is_none(), "asked though seen just now");
        // A COMMIT PREPARED ended: asked again; the server says the gid is gone.
        let mut c = mine(&db, 3, 0);
        c.judging(&statements("COMMIT PREPARED 'g1'"), false);
        assert!(c.answered(1, true, TxStatus::Idle));
        app.judging(&statements("DELETE FROM members WHERE id = 2"), false);
        let Some(crate::catalog::Question::Prepared(gids)) = app.two_phase.question() else { panic!("not asked") };
        assert_eq!(gids, vec!["g1".to_string()]);
        assert!(!app.learn_prepared(&gids, None), "not answered: still there");
        assert!(app.learn_prepared(&gids, Some(&[])));
        app.judging(&statements("DELETE FROM members WHERE id = 3"), false);
        assert!(app.others.is_empty());
        assert!(prepared_query(&gids).contains("E'g1'"));
    }

    fn on(gid: &str, xid: &str, ddl: bool) -> OnServer {
        OnServer { gid: gid.into(), xid: xid.into(), ddl }
    }

    #[test]
    fn the_servers_prepared_transactions_with_ddl_are_held_until_they_are_gone() {
        let db = Arc::new(Db::default());
        let mut app = mine(&db, 2, 0);
        let asked = Instant::now();
        // Row writes only: nothing held. With DDL, not known here: any name.
        assert!(!db.learn_server(asked, &[on("xa1", "700", false), on("ddl1", "701", true)]));
        app.judging(&statements("DELETE FROM notes WHERE id = 1"), false);
        assert_eq!(app.others.len(), 1, "a prepared transaction with DDL seen on the server is not held");
        assert!(app.others[0].shown().contains("'ddl1'"), "{:?}", app.others);
        // Known here (a session prepared it, after the question was sent): its own names,
        // and not taken as gone by an answer that could not show it.
        let mut m = mine(&db, 1, 0);
        m.judging(&statements("ALTER TABLE users RENAME TO members"), false);
        m.judging(&statements("PREPARE TRANSACTION 'g1'"), false);
        assert!(m.answered(1, true, TxStatus::Idle));
        assert_eq!(m.two_phase.take_prepared().as_deref(), Some("g1"), "other instances are told the gid");
        assert!(!db.learn_server(asked, &[on("ddl1", "701", true)]), "g1 left on an answer asked before it");
        assert!(!db.learn_server(Instant::now(), &[on("ddl1", "701", true), on("g1", "702", true)]));
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert_eq!(app.others.len(), 2, "{:?}", app.others);
        // Another transaction under the gid g1: the old one is gone.
        assert!(db.learn_server(Instant::now(), &[on("g1", "703", false), on("ddl1", "701", true)]));
        app.judging(&statements("DELETE FROM members WHERE id = 1"), false);
        assert_eq!(app.others.len(), 1);
        assert!(db.learn_server(Instant::now(), &[]), "gone from the server: left");
        app.judging(&statements("DELETE FROM notes WHERE id = 1"), false);
        assert!(app.others.is_empty());
    }
}
