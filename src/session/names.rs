//! The session's prepared-statement names as SQL `EXECUTE name` is judged
//! (`SessionInfo::prepared`): one namespace for SQL `PREPARE` and protocol Parse, as on the
//! server. What may be prepared under a name is added when it is sent (the server keeps one
//! of the candidates, so judging all of them is only stricter); `DEALLOCATE` and protocol
//! Close take entries away only once the server answered their sync point without an error,
//! and only the entries that were there when they were sent. A name with no entry is unknown,
//! and an EXECUTE of it fails closed. Also: dropping the catalog's answers again once a
//! message that may change what names resolve to (DDL, a function body) has run.
//!
//! The same confirmation makes a plain cursor's DECLARE count (`guard::cursors`), and what a
//! counted statement did to the session's prepared statements and cursors
//! (`precheck::objects`) is applied here: a name made again is marked unknown (counted).
//!
//! Also what each extended-protocol statement and portal may do to names when it runs
//! (`names::Earlier`: DDL, a ROLLBACK, a function call), so that an Execute of one enters the
//! session's statements sent and not yet answered (`Resolutions::earlier`), against which every
//! later write is judged until the server answered its sync point; and a Bind of a write after
//! such an Execute is judged again (fourth adversarial pass F1, F2, F5 in a batch).
//!
//! Owns: that bookkeeping. Does not own: judging an EXECUTE (`guard`), the extended
//! protocol's mirror of counted statements and portals (`statements`).

use super::Session;
use crate::names::{Earlier, EarlierKind};
use crate::policy::Mode;
use crate::wire::messages::TxStatus;
use crate::wire::Frame;
use std::collections::{HashMap, VecDeque};

/// Whether a check of these texts (a message, the statement it counts) must read the counters
/// as text, not on blastwall's prepared readings: a `DEALLOCATE` or `DISCARD` in them may
/// remove the readings with the client's own statements (in a session whose every statement
/// is counted, a client's `DEALLOCATE ALL` is checked), and the check would then find them
/// missing and refuse it. The readings are then forgotten (`Prepared::forget`: closed and
/// prepared again at the next check that uses them).
pub(super) fn may_drop_readings(texts: &[&[u8]], readings: &mut crate::precheck::prepared::Prepared) -> bool {
    let word = |t: &[u8], i: usize, w: &[u8]| t.get(i..i + w.len()).is_some_and(|x| x.eq_ignore_ascii_case(w));
    let drops = texts
        .iter()
        .any(|t| memchr::memchr2_iter(b'd', b'D', t).any(|i| word(t, i, b"deallocate") || word(t, i, b"discard")));
    if drops {
        readings.forget();
    }
    drops
}

/// Removals waiting for the server's answer.
#[derive(Debug, Default)]
pub(super) struct Removals {
    /// The sync point that confirms them, and for each name how many of its entries go.
    queue: VecDeque<(u64, String, usize)>,
    /// An error came since the last ReadyForQuery.
    error: bool,
    /// The last sync point holding a message that may change what names resolve to: the
    /// catalog's answers are dropped again when it is answered.
    changes_names: Option<u64>,
    /// Names whose Bind was judged harmless, with how many entries the name had, the
    /// session's mode and the policy in force then: the same judgement while all three stay
    /// (entries are only appended between removals, and a removal empties this).
    harmless: HashMap<Vec<u8>, Judged>,
    /// Plain cursors declared (`guard::cursors`), confirmed by the answer to their sync point.
    cursors: VecDeque<(u64, String)>,
    /// The judgement just made found that its text changes what names resolve to.
    judged_changes: bool,
    /// What the unnamed statement (set by each unnamed Parse) may do to names when it runs.
    unnamed_redirects: Option<Redirects>,
    /// Bound portals whose statement may redirect names when it runs.
    portal_redirects: HashMap<Vec<u8>, Redirects>,
    /// More portals than [`MAX_PORTALS`] were bound in the transaction: one not in the map
    /// may redirect names.
    portals_lost: bool,
}

/// How many portals that may redirect names a session keeps apart.
const MAX_PORTALS: usize = 1024;

/// What a statement may do to names when it runs (`names::Earlier`, sync point 0).
type Redirects = std::sync::Arc<Vec<Earlier>>;

impl Removals {
    /// Whether a Bind of `name` was judged harmless with the name as it is now, under the
    /// catalog's generation `stamp` (no DDL since), less than the catalog's answers' life ago
    /// (DDL elsewhere is seen once they are asked again).
    pub(super) fn known_harmless(
        &self,
        name: &[u8],
        entries: usize,
        mode: Option<Mode>,
        policy: &str,
        stamp: u64,
    ) -> bool {
        self.harmless.get(name).is_some_and(|j| {
            j.0 == entries && j.1 == mode && j.2 == policy && j.3 == stamp && j.4.elapsed() < HARMLESS_FOR
        })
    }

    pub(super) fn judged_harmless(
        &mut self,
        name: &[u8],
        entries: usize,
        mode: Option<Mode>,
        policy: &str,
        stamp: u64,
    ) {
        if self.harmless.len() >= MAX_REMEMBERED {
            self.harmless.clear();
        }
        let judged = (entries, mode, policy.to_string(), stamp, std::time::Instant::now());
        self.harmless.insert(name.to_vec(), judged);
    }
}

/// What a judgement of a name depended on: its entries, the session's mode, the policy's hash,
/// the catalog's generation, and when it was made.
type Judged = (usize, Option<Mode>, String, u64, std::time::Instant);

/// How long a harmless judgement of a name is kept without DDL through blastwall: as long as
/// the catalog trusts its answers (DDL elsewhere shows once they are asked again).
const HARMLESS_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// How many harmless judgements a session keeps.
const MAX_REMEMBERED: usize = 1024;

impl Session {
    /// A protocol Parse of a named statement went to the server: an SQL EXECUTE of the name
    /// may now run it.
    pub(super) fn parsed_name(&mut self, name: &[u8], sql: &[u8]) {
        if name.is_empty() {
            return;
        }
        let statements = self.shared.guard.statements_of(sql, &self.info, None);
        let list = self.info.prepared.entry(String::from_utf8_lossy(name).into_owned()).or_default();
        for st in statements.iter() {
            if !list.contains(st) {
                list.push(st.clone());
            }
        }
    }

    /// A protocol Close of a named statement went to the server (in the open batch).
    pub(super) fn closed_name(&mut self, name: &[u8]) {
        let name = String::from_utf8_lossy(name).into_owned();
        let n = self.info.prepared.get(&name).map_or(0, Vec::len);
        self.names.queue.push_back((self.relay.syncs_sent(), name, n));
    }

    /// What a message just judged leaves to be confirmed: its DEALLOCATEs (`sent`: whether
    /// the message goes to the server as it is; a refused or counted one removes nothing),
    /// and whether the catalog's answers must be dropped again once it has run.
    pub(super) fn after_judging(&mut self, sent: bool) {
        let ord = self.relay.syncs_sent();
        self.names.judged_changes = std::mem::take(&mut self.info.changes_names);
        if self.names.judged_changes {
            self.names.changes_names = Some(ord);
        }
        for (name, n) in std::mem::take(&mut self.info.unprepared) {
            // A plan judged for a protocol Parse of the name is no longer what a Bind of it
            // runs: a statement SQL `PREPARE` makes under it next would run by that plan
            // (seventy-sixth pass H2: `DEALLOCATE s1`, then `PREPARE s1 AS SELECT
            // count(nextval(…)) FROM generate_series(1, 200000)`, bound by protocol, ran
            // uncounted). Forgotten at once, whether it runs or not: a Bind of the name is then
            // judged by every text that may be prepared under it (`adopt_sql_prepared`).
            match name.is_empty() {
                true => self.mirror.forget_named_statements(),
                false => self.mirror.forget_statement(name.as_bytes()),
            }
            if sent && !name.is_empty() {
                self.names.queue.push_back((ord, name, n));
            }
        }
        self.cursors_after_judging(sent, ord);
    }

    /// A plain DECLARE waits for its sync point's answer; a name forgotten meanwhile (or all of
    /// them, marked by an empty name) voids what waits for it.
    fn cursors_after_judging(&mut self, sent: bool, ord: u64) {
        for name in std::mem::take(&mut self.info.cursors.made) {
            self.mirror.replaced.made(Some(name.as_bytes()));
        }
        let forgotten = std::mem::take(&mut self.info.cursors.forgotten);
        if forgotten.iter().any(String::is_empty) {
            self.names.cursors.clear();
        } else if !forgotten.is_empty() {
            self.names.cursors.retain(|(_, n)| !forgotten.contains(n));
        }
        for name in std::mem::take(&mut self.info.cursors.declared) {
            if sent {
                self.names.cursors.push_back((ord, name));
            }
        }
    }

    /// What a checked statement did to the session's prepared statements and cursors
    /// (`precheck::objects`): a name it made again is no longer known — an `EXECUTE` or Bind of
    /// it is counted like a function call from now on (its entries gain one that calls
    /// functions), until the client deallocates it; a cursor it opened is not plain.
    pub(super) fn objects_changed(&mut self, c: crate::precheck::objects::Changes) {
        if c.is_empty() {
            return;
        }
        self.names.harmless.clear();
        let names: Vec<String> = match c.unknown {
            true => self.info.prepared.keys().cloned().collect(),
            false => c.prepared.iter().filter(|n| self.info.prepared.contains_key(*n)).cloned().collect(),
        };
        for name in names {
            self.mark_unknown(name);
        }
        if c.unknown {
            self.mirror.forget_statements();
            self.info.cursors.forget_all();
            self.mirror.replaced.made(None);
        }
        c.cursors.iter().for_each(|n| self.info.cursors.forget(n));
        c.cursors.iter().for_each(|n| self.mirror.replaced.made(Some(n.as_bytes())));
        let ord = self.relay.syncs_sent();
        self.cursors_after_judging(false, ord);
    }

    /// Whether a Bind of the statement prepared under `name` may run user code (`binds`): any
    /// of its entries calls a function or mentions what runs one (`Guard::binds_code`).
    pub(super) fn prepared_binds_code(&self, name: &str) -> bool {
        let Some(list) = self.info.prepared.get(name) else { return false };
        let guard = &self.shared.guard;
        list.iter().any(|e| e.calls_functions || guard.binds_code(e.text.as_bytes(), &[], &self.info, false))
    }

    /// A prepared name whose statement may be one blastwall never saw: it gains an entry that
    /// calls functions, so that running it is counted like a function call.
    pub(super) fn mark_unknown(&mut self, name: String) {
        self.mirror.forget_statement(name.as_bytes());
        let marker = unknown(&name);
        let list = self.info.prepared.entry(name).or_default();
        if !list.contains(&marker) {
            list.push(marker);
        }
    }

    pub(super) fn names_on_error(&mut self) {
        self.names.error = true;
    }

    /// A ReadyForQuery answered sync point `answered`: its removals happen if nothing failed
    /// (a failure may have skipped them; keeping the entries is the stricter error).
    pub(super) fn names_on_ready(&mut self, answered: u64) {
        self.info.names.answered(answered);
        self.info.taint.on_ready();
        let ok = !std::mem::take(&mut self.names.error);
        while self.names.cursors.front().is_some_and(|(ord, _)| *ord <= answered) {
            let Some((ord, name)) = self.names.cursors.pop_front() else { break };
            if ok && ord == answered {
                self.info.cursors.confirm(name);
            }
        }
        if self.names.changes_names.is_some_and(|ord| ord <= answered) {
            self.names.changes_names = None;
            if std::mem::take(&mut self.info.names.identities_may_change) {
                self.shared.guard.catalog.forget(&self.info.database);
            } else {
                self.shared.guard.catalog.forget_new_tables(&self.info.database);
            }
        }
        while self.names.queue.front().is_some_and(|(ord, ..)| *ord <= answered) {
            let Some((ord, name, n)) = self.names.queue.pop_front() else { break };
            if !ok || ord != answered || n == 0 {
                continue;
            }
            self.names.harmless.clear();
            if let Some(list) = self.info.prepared.get_mut(&name) {
                list.drain(..n.min(list.len()));
                if list.is_empty() {
                    self.info.prepared.remove(&name);
                }
            }
            // Later removals of the same name counted the entries just removed.
            for (_, later, m) in self.names.queue.iter_mut() {
                if *later == name {
                    *m = m.saturating_sub(n);
                }
            }
        }
    }
}

impl Session {
    /// A Parse was judged and goes to the server: what the unnamed statement may do to names
    /// when it runs (a named one's statements are kept in `info.prepared`).
    pub(super) fn parsed_redirects(&mut self, name: &[u8], sql: &[u8]) {
        let changes = std::mem::take(&mut self.names.judged_changes);
        if name.is_empty() {
            // Its writes were registered by this judgement, for this sync point (`others`).
            self.info.inflight.unnamed = Some((self.relay.syncs_sent(), None));
            let may = changes || crate::names::may_redirect_unseen(sql);
            self.names.unnamed_redirects = if may { self.redirects_of(sql) } else { None };
        }
    }

    /// What the statements of `sql` may do to names, with the prepared statements an `EXECUTE`
    /// of it runs (one blastwall does not know may do anything).
    fn redirects_of(&self, sql: &[u8]) -> Option<Redirects> {
        let statements = self.shared.guard.statements_of(sql, &self.info, None);
        let mut out = Vec::new();
        for st in statements.iter() {
            out.extend(Earlier::of(st, 0));
            for ex in &st.executes {
                match self.info.prepared.get(&ex.name) {
                    Some(list) => {
                        out.extend(list.iter().filter_map(|p| Earlier::of(p, 0)).map(|e| e.among(list.len())))
                    }
                    None => out.extend(Earlier::of(&unknown(&ex.name), 0)),
                }
            }
        }
        (!out.is_empty()).then(|| std::sync::Arc::new(out))
    }

    /// What the statement prepared as `name` may do to names (any of its candidates).
    fn prepared_redirects(&self, name: &[u8]) -> Option<Redirects> {
        let list = self.info.prepared.get(std::str::from_utf8(name).ok()?)?;
        let out: Vec<Earlier> = list.iter().filter_map(|st| Earlier::of(st, 0)).map(|e| e.among(list.len())).collect();
        (!out.is_empty()).then(|| std::sync::Arc::new(out))
    }

    /// Statements sent and not yet answered, as of now: none of the sync points the server
    /// answered (a sync point answered inside a pre-check is not seen by `names_on_ready`).
    pub(super) fn earlier_now(&mut self) -> &[Earlier] {
        if !self.info.names.earlier.is_empty() {
            let done = self.relay.syncs_done();
            self.info.names.earlier.retain(|e| e.ord >= done);
        }
        &self.info.names.earlier
    }

    /// A Bind goes to the server: its portal now runs what its statement may do to names.
    pub(super) fn bound_redirects(&mut self, f: &Frame) {
        let Ok((portal, stmt)) = crate::wire::messages::bind_names(f) else { return };
        let map = &mut self.names.portal_redirects;
        // No portal outlives its transaction.
        if !map.is_empty() && self.relay.tx == TxStatus::Idle && !self.relay.is_busy() {
            map.clear();
            self.names.portals_lost = false;
        }
        // (User code a Bind runs — a parameter's domain CHECK, a folded function, `binds` —
        // is not taken as redirecting: as for an object a Query's statement uses, later names
        // are judged unresolved there, not refused outright.)
        let r = if stmt.is_empty() { self.names.unnamed_redirects.clone() } else { self.prepared_redirects(stmt) };
        match r {
            Some(r) => {
                let map = &mut self.names.portal_redirects;
                // Bounded: past it, any portal not kept may redirect names (fail closed).
                if map.len() >= MAX_PORTALS && !map.contains_key(portal) {
                    map.clear();
                    self.names.portals_lost = true;
                }
                map.insert(portal.to_vec(), r);
            }
            None if !self.names.portal_redirects.is_empty() => {
                self.names.portal_redirects.remove(portal);
            }
            None => {}
        }
    }

    /// An Execute goes to the server: what its portal may do to names is earlier than every
    /// statement judged until the server answered its sync point. A transaction end counts
    /// only where the transaction may have failed (it then rolls back).
    pub(super) fn executing_redirects(&mut self, f: &Frame) {
        if self.names.portal_redirects.is_empty() && !self.names.portals_lost && !self.mirror.replaced.any() {
            return;
        }
        let Ok(portal) = super::extended::execute_portal(f) else { return };
        // A portal SQL may have replaced reads a cursor, whose query may redirect any name.
        let replaced = self.mirror.replaced.may_be(&portal);
        let r = match self.names.portal_redirects.get(&portal) {
            Some(r) if !replaced => r.clone(),
            None if !self.names.portals_lost && !replaced => return,
            _ => {
                let lost = unknown(&String::from_utf8_lossy(&portal));
                std::sync::Arc::new(Earlier::of(&lost, 0).into_iter().collect())
            }
        };
        let ord = self.relay.syncs_sent();
        let may_fail = self.relay.tx == TxStatus::Failed || self.relay.syncs_done() < ord;
        self.earlier_now();
        for e in r.iter().filter(|e| e.kind != EarlierKind::End || may_fail) {
            crate::names::keep(&mut self.info.names.earlier, e.at(ord));
        }
    }

    /// A Bind of a statement that writes to a name a statement sent earlier and not yet
    /// answered may redirect: the statement is judged again against those (the server
    /// analyzes it again at this Bind, after them). `Some`: the refusal.
    pub(super) fn bind_after_earlier(&mut self, f: &Frame) -> Option<crate::wire::messages::ProxyMessage> {
        if self.earlier_now().is_empty() {
            return None;
        }
        let (_, stmt) = crate::wire::messages::bind_names(f).ok()?;
        let (text, statements) = if stmt.is_empty() {
            let parse = self.mirror.facts(stmt)?.parse.clone()?;
            let sql = crate::wire::messages::parse_msg(&parse).ok()?.sql.to_vec();
            let statements = self.shared.guard.statements_of(&sql, &self.info, None);
            (sql, statements.to_vec())
        } else {
            let name = String::from_utf8_lossy(stmt).into_owned();
            let text = format!("EXECUTE \"{}\"", name.replace('"', "\"\""));
            (text.into_bytes(), self.info.prepared.get(&name).cloned().unwrap_or_default())
        };
        let earlier = &self.info.names.earlier;
        let redirected = statements.iter().flat_map(|s| &s.writes).any(|w| {
            let row = w.op.is_row_write() || matches!(w.op, crate::analyze::Op::Upsert { .. });
            row && w.target.as_ref().is_some_and(|t| earlier.iter().any(|e| e.redirects(t, true).is_some()))
        });
        if !redirected {
            return None;
        }
        self.info.names.persisting = true;
        let mut verdict = self.judge_sql(&text, None);
        // Not asked (a few rounds: each answer may lead to another question): the statement
        // is judged as what its names may be.
        for _ in 0..4 {
            let crate::guard::Verdict::Resolve(q) = &verdict else { break };
            let q = q.clone();
            self.assume_answers(&q);
            verdict = self.judge_sql(&text, None);
        }
        self.info.names.persisting = false;
        match verdict {
            crate::guard::Verdict::Refuse(m) => Some(m),
            crate::guard::Verdict::Split(m) => Some(*m),
            // Still a question, or too long to analyze here: fail closed.
            crate::guard::Verdict::Resolve(_) | crate::guard::Verdict::Analyze => {
                let why = "it writes to a name that a statement sent earlier and not yet answered may redirect, and blastwall could not judge it again here";
                let d = crate::guard::refusal(
                    "unverifiable",
                    "this Bind".into(),
                    why.into(),
                    "Send the write after the server answered the earlier statement's Sync.",
                    "blastwall",
                    String::from_utf8_lossy(&text).into_owned(),
                );
                Some(crate::guard::refusal_message(&d))
            }
            _ => None,
        }
    }
}

/// A statement blastwall does not know (run by a name it never saw prepared, or by a Bind
/// that runs user code): it may call anything.
fn unknown(name: &str) -> crate::analyze::Statement {
    crate::analyze::Statement {
        text: format!("EXECUTE \"{}\"", name.replace('"', "\"\"")),
        calls_functions: true,
        ..Default::default()
    }
}
