//! The readings of a delete whose reach the catalog proves (`reach`), built once per session
//! for what they are built from, not at every write: their SQL (a few KiB, every name and
//! literal quoted) and what the one-round-trip assertion asserts (`once`) were a quarter of a
//! counted point DELETE's instructions in blastwall.
//!
//! What they are built from is the whole key, compared in full on every write: the policy (by
//! the digest of its sources), the proof (`Reach`, by value), the write's point, the OIDs the
//! catalog has learned for the policy's tables and the names it has learned for the reached
//! OIDs, whether the counters start at zero, whether the assertion may ask for them to be
//! reported, and whether the write may be kept in one round trip. Anything else that changes
//! a reading (dry run, override, anomaly or budget rules, a dry-run session) builds it anew
//! each time, as before.
//!
//! Owns: that memo. Does not own: the readings (`stats`, `once`, `reach`).

use super::once::{self, Once};
use super::point::Point;
use super::reach::Reach;
use super::{stats, CheckPlan};
use crate::policy::{Mode, Policy, SessionView};
use std::sync::Arc;

/// How many built readings a session keeps (one per shape of proven delete it sends).
const KEEP: usize = 4;

/// The readings of one proven delete.
#[derive(Debug)]
pub struct Built {
    /// What a write kept in one round trip asserts (`None`: counted with two).
    pub once: Option<Once>,
    /// The reading after the write.
    pub after: String,
    /// The reading before it (`None`: the counters start at zero, or it is the same text).
    pub before: Option<String>,
}

/// What a [`Built`] is built from.
#[derive(Debug, PartialEq)]
pub struct Key {
    policy: String,
    reach: Reach,
    point: Point,
    known: Vec<Option<u32>>,
    named: Vec<Option<(String, String)>>,
    zero: bool,
    flush: bool,
    once: bool,
}

/// The memo of a session (kept with its prepared readings).
#[derive(Debug, Default)]
pub struct Memo {
    kept: Vec<(Key, Arc<Built>)>,
}

/// What the readings of one write are built from.
pub struct Inputs<'a> {
    pub policy: &'a Policy,
    pub plan: &'a CheckPlan,
    pub who: SessionView<'a>,
    pub known: &'a dyn Fn(&str, &str) -> Option<u32>,
    pub named: &'a dyn Fn(u32) -> Option<(String, String)>,
    pub reach: &'a Reach,
    pub point: &'a Point,
    /// It may be kept in one round trip (no estimate first, a first try).
    pub once: bool,
    /// The counters start at zero (`once::Flushed`).
    pub zero: bool,
    /// The assertion may ask for the counters to be reported.
    pub flush: bool,
}

impl Memo {
    /// The readings for `i`: from the memo when built from the same, else built (and kept when
    /// nothing per statement changes them).
    pub fn readings(memo: Option<&mut Memo>, i: &Inputs<'_>) -> Arc<Built> {
        let p = i.policy;
        let plain = !i.plan.dry_run
            && i.plan.override_rows.is_none()
            && p.anomaly.enabled != Some(true)
            && !crate::contract::enabled(p)
            && i.who.session_mode != Some(Mode::DryRun)
            && !p.hash.is_empty();
        let Some(memo) = memo.filter(|_| plain) else { return Arc::new(build(i)) };
        let key = Key {
            policy: p.hash.clone(),
            reach: i.reach.clone(),
            point: i.point.clone(),
            known: p.tables.iter().map(|t| (i.known)(&t.schema, &t.name)).collect(),
            named: i.reach.tables().map(|(_, _, oid)| (i.named)(oid)).collect(),
            zero: i.zero,
            flush: i.flush,
            once: i.once,
        };
        if let Some(at) = memo.kept.iter().position(|(k, _)| *k == key) {
            let hit = memo.kept.remove(at);
            let built = hit.1.clone();
            memo.kept.push(hit);
            return built;
        }
        let built = Arc::new(build(i));
        if memo.kept.len() >= KEEP {
            memo.kept.remove(0);
        }
        memo.kept.push((key, built.clone()));
        built
    }
}

/// Builds the readings of `i` (what `verify` did at every write before).
fn build(i: &Inputs<'_>) -> Built {
    let (r, p) = (i.reach, i.point);
    // Only the row limits of the tables it reaches can refuse it: asserted on the server, and
    // kept at once behind it (`once`).
    let mut once = match i.once {
        true => once::limits(&once::Case {
            policy: i.policy,
            plan: i.plan,
            who: i.who,
            reached: r.tables().map(|(s, n, oid)| (s.to_string(), n.to_string(), oid)).collect(),
            others: stats::unreached(i.policy, i.known, r),
            named: i.named,
        }),
        false => None,
    };
    if let Some(o) = once.as_mut() {
        o.flush = i.flush;
        o.from_zero = i.zero;
    }
    let from_zero = once.as_ref().is_some_and(|o| o.from_zero);
    let after = stats::reach_sql(i.policy, i.plan, i.known, r, p, true, once.as_ref());
    let before = (!from_zero).then(|| stats::reach_sql(i.policy, i.plan, i.known, r, p, false, once.as_ref()));
    let before = before.filter(|b| *b != after);
    Built { once, after, before }
}
