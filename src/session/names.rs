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
//! Owns: that bookkeeping. Does not own: judging an EXECUTE (`guard`), the extended
//! protocol's mirror of counted statements and portals (`statements`).

use super::Session;
use crate::policy::Mode;
use std::collections::{HashMap, VecDeque};

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
}

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
        if std::mem::take(&mut self.info.changes_names) {
            self.names.changes_names = Some(ord);
        }
        for (name, n) in std::mem::take(&mut self.info.unprepared) {
            if sent {
                self.names.queue.push_back((ord, name, n));
            }
        }
        self.cursors_after_judging(sent, ord);
    }

    /// A plain DECLARE waits for its sync point's answer; a name forgotten meanwhile (or all of
    /// them, marked by an empty name) voids what waits for it.
    fn cursors_after_judging(&mut self, sent: bool, ord: u64) {
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
        }
        c.cursors.iter().for_each(|n| self.info.cursors.forget(n));
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
        let marker = crate::analyze::Statement {
            text: format!("EXECUTE \"{}\"", name.replace('"', "\"\"")),
            calls_functions: true,
            ..Default::default()
        };
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
            self.shared.guard.catalog.forget(&self.info.database);
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
