//! A portal's age: what the catalog and the session's temporary schema were when it was bound,
//! so that an Execute under another picture of them is judged again (sixth adversarial pass
//! F1).
//!
//! A portal's plan is fixed at its Bind, but the executor of an `INSERT`, `UPDATE`, `DELETE`
//! or `MERGE` starts at the first Execute: the triggers, `CHECK` constraints, foreign keys and
//! index expressions it runs are the catalog's *then*. A portal judged harmless at its Bind
//! (a plain `INSERT` into a plain temporary table) and executed after DDL that gave its table
//! a trigger — sent in between, answered or not, in the same batch or a later one of the same
//! transaction — runs that trigger. So each bound portal keeps the catalog's generation and
//! the count of the session's schema changes ([`crate::catalog::Taint::changes`]) at its
//! Bind, and the text it runs; an Execute of a portal not counted anyway, when either moved
//! since, is judged again from that text under the catalog as it is now (a write to a table
//! that has gained a trigger is counted, every statement of a session that became tainted is
//! counted), and counted, refused or relayed by that verdict. A portal judged again is
//! current until the next change.
//!
//! Owns: the ages and the judging again. Does not own: the mirror of plans (`statements`),
//! the counting (`counting`, `precheck`).

use super::checks::Pending;
use super::statements::Op;
use super::Session;
use crate::guard::Verdict;
use crate::wire::messages::{self, TxStatus};
use crate::wire::Frame;
use std::collections::HashMap;
use std::sync::Arc;

/// How many portals' ages a session keeps; past it, a bound portal without one is judged again
/// at its Execute (fail closed).
const KEPT: usize = 1024;

/// Rounds of catalog questions one Execute may wait for.
const ASK_ROUNDS: u8 = 4;

/// What a portal was bound with.
#[derive(Debug, Clone)]
struct Age {
    /// The catalog's generation and the session's schema changes at its Bind.
    at: (u64, u64),
    /// What it runs: the client's Parse of the unnamed statement or of a counted one, else the
    /// name of the statement (judged as `EXECUTE` of it, every text prepared under it).
    runs: Runs,
}

#[derive(Debug, Clone)]
enum Runs {
    Parse(Frame),
    Named(Vec<u8>),
}

/// The bound portals' ages.
#[derive(Debug, Default)]
pub(super) struct Ages {
    /// The unnamed portal's, kept apart (bound for nearly every statement by many drivers: no
    /// hashing, no allocation).
    unnamed: Option<Age>,
    portals: HashMap<Vec<u8>, Age>,
    /// Ages were dropped past [`KEPT`]: a portal without one is taken as old.
    lost: bool,
    /// Rounds of questions the Execute being judged waited for.
    asked: u8,
}

impl Ages {
    fn get(&self, portal: &[u8]) -> Option<&Age> {
        if portal.is_empty() {
            return self.unnamed.as_ref();
        }
        self.portals.get(portal)
    }

    fn get_mut(&mut self, portal: &[u8]) -> Option<&mut Age> {
        if portal.is_empty() {
            return self.unnamed.as_mut();
        }
        self.portals.get_mut(portal)
    }

    fn set(&mut self, portal: &[u8], age: Age) {
        if portal.is_empty() {
            self.unnamed = Some(age);
            return;
        }
        if self.portals.len() >= KEPT && !self.portals.contains_key(portal) {
            self.portals.clear();
            self.lost = true;
        }
        match self.portals.get_mut(portal) {
            Some(a) => *a = age,
            None => {
                self.portals.insert(portal.to_vec(), age);
            }
        }
    }

    /// The transaction is over: no portal outlives it.
    fn clear(&mut self) {
        self.unnamed = None;
        if !self.portals.is_empty() {
            self.portals.clear();
        }
        self.lost = false;
    }
}

impl Session {
    /// Where the catalog and the session's schema stand now.
    fn now(&self) -> (u64, u64) {
        (self.shared.guard.catalog.generation(), self.info.taint.changes())
    }

    /// A Bind goes to the server (forwarded, held or parked): its portal's age.
    pub(super) fn bound_age(&mut self, f: &Frame) {
        let Ok((portal, stmt)) = messages::bind_names(f) else { return };
        let runs = match self.mirror.facts(stmt).and_then(|facts| facts.parse.clone()) {
            Some(parse) => Runs::Parse(parse),
            None => Runs::Named(stmt.to_vec()),
        };
        let at = self.now();
        let ages = &mut self.mirror.ages;
        if self.relay.tx == TxStatus::Idle && !self.relay.is_busy() {
            ages.clear();
        }
        ages.set(portal, Age { at, runs });
    }

    /// An Execute of a bound portal that is not counted: judged again when the catalog or the
    /// session's schema changed since its Bind. Returns the Execute back when it goes its
    /// ordinary way (relayed); else it was counted, refused, or waits for the catalog.
    pub(super) fn execute_if_current(&mut self, f: Frame, portal: &[u8]) -> Option<Frame> {
        // In a failed transaction the server refuses the Execute before it runs anything.
        if self.relay.tx == TxStatus::Failed {
            return Some(f);
        }
        let now = self.now();
        let ages = &self.mirror.ages;
        let text = match ages.get(portal) {
            Some(age) if age.at == now => return Some(f),
            Some(Age { runs: Runs::Parse(parse), .. }) => match messages::parse_msg(parse) {
                Ok(msg) => msg.sql.to_vec(),
                Err(_) => execute_text(b""),
            },
            Some(Age { runs: Runs::Named(name), .. }) => execute_text(name),
            None if ages.lost => execute_text(portal),
            // Bound where no age was kept (its transaction is over): the server has no such
            // portal and answers its own error.
            None => return Some(f),
        };
        let (f, verdict) = self.judge_execute(f, &text, true)?;
        match verdict {
            Verdict::Check(mut plan) => {
                if let Some(Age { runs: Runs::Parse(parse), .. }) = self.mirror.ages.get(portal) {
                    if let Ok(msg) = messages::parse_msg(parse) {
                        plan.param_types = msg.param_types.clone();
                    }
                }
                let plan = self.in_session_mode(Arc::new(*plan));
                if self.can_hold() {
                    self.start_held(f, Op::Execute, plan, false);
                } else {
                    self.count_where_it_stands(f, plan);
                }
                None
            }
            Verdict::Refuse(m) => {
                self.refuse_in_batch(m);
                None
            }
            Verdict::Split(m) => {
                self.refuse_in_batch(*m);
                None
            }
            Verdict::Resolve(_) | Verdict::Analyze => {
                let d = crate::guard::refusal(
                    "unverifiable",
                    "Execute".into(),
                    "its portal was bound before DDL or a change of the session's temporary schema, and what it runs now needs a catalog lookup that cannot run in a batch".into(),
                    "Bind the portal again after the change, or execute it first in its batch.",
                    "blastwall",
                    String::from_utf8_lossy(&text).into_owned(),
                );
                self.refuse_in_batch(crate::guard::refusal_message(&d));
                None
            }
            Verdict::Allow | Verdict::Notice(_) => {
                // Current until the next change.
                if let Some(age) = self.mirror.ages.get_mut(portal) {
                    age.at = now;
                }
                Some(f)
            }
        }
    }

    /// Judges `text`, what an Execute `f` runs: at the start of its batch the catalog is asked
    /// first (`None`: the Execute waits for the answers, then is judged again); in the middle
    /// of a batch the worst is assumed (a few rounds: each answer may lead to another
    /// question), and what still cannot be judged is counted like a call.
    pub(super) fn judge_execute(&mut self, f: Frame, text: &[u8], persisting: bool) -> Option<(Frame, Verdict)> {
        let asked = std::mem::take(&mut self.mirror.ages.asked);
        self.info.names.persisting = persisting;
        let mut verdict = self.judge_sql(text, None);
        if let Verdict::Resolve(q) = &verdict {
            if asked < ASK_ROUNDS && self.can_hold() {
                self.info.names.persisting = false;
                self.mirror.ages.asked = asked + 1;
                self.pending = Some(Pending::Resolve(f, q.clone()));
                return None;
            }
        }
        for _ in 0..ASK_ROUNDS {
            let Verdict::Resolve(q) = &verdict else { break };
            let q = q.clone();
            self.assume_answers(&q);
            verdict = self.judge_sql(text, None);
        }
        self.info.names.persisting = false;
        let verdict = match verdict {
            Verdict::Resolve(_) | Verdict::Analyze => {
                let judged = self.shared.guard.judge_as_call(text, &mut self.info);
                self.recorded(judged)
            }
            v => v,
        };
        Some((f, verdict))
    }
}

/// `EXECUTE "name"`: how a statement known by its name is judged.
fn execute_text(name: &[u8]) -> Vec<u8> {
    format!("EXECUTE \"{}\"", String::from_utf8_lossy(name).replace('"', "\"\"")).into_bytes()
}
