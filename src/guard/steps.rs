//! Ids taken ahead: the steps a SELECT of a few `nextval` calls moves the protected sequences
//! by, known from its text, and their spending from each sequence's creep budget
//! (`precheck::creep`) — at judgement for a Query, at each Execute for a protocol Parse
//! (`session::extended`) — so that such a statement is relayed uncounted while they fit.
//!
//! Also the steps a rolled-back block leaves moved within its allowance, spent by OID
//! (`spend_by_oid`, for `session::undone`); which protected sequences a statement takes values
//! of ahead (`takes_ahead`), and its refusal before it runs where a block's rollback would put
//! the sequence back under them or the sequence's budget has no room for them (`no_room`).
//!
//! Owns: which steps are known, and spending them. Does not own: whether a statement is
//! counted otherwise (`need`), the budget's windows (`precheck::creep`).

use super::SessionInfo;
use crate::analyze::Statement;
use crate::policy::{self, Policy};
use crate::precheck::KnownSteps;

/// Spends known steps from each sequence's creep budget, as the policy now lists it (the
/// sequence's learned OID, its table's budget); false when one does not fit or is no longer
/// known (then the statement is counted). The steps of those before it stay spent, as the
/// counted run spends them again by what it really moved: never less than it took.
pub(super) fn spend_known(
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    database: &str,
    known: &[KnownSteps],
) -> bool {
    known.iter().all(|k| {
        let listed = |t: &&policy::TablePolicy| {
            t.sequences.iter().any(|p| p.name == k.name && p.schema.as_deref().unwrap_or(&t.schema) == k.schema)
        };
        let Some(t) = policy.tables.iter().find(listed) else { return false };
        let Some(oid) = catalog.oid_of(database, &k.schema, &k.name) else { return false };
        catalog.creep.take(database, oid, k.steps, t.creep.steps, t.creep.window_secs).is_ok()
    })
}

/// The steps a statement moves the protected sequences by, when its text says (each listed
/// sequence as the policy lists it, the steps): a SELECT of `nextval` calls each run once
/// (`analyze::sequences`) of sequences named as the policy lists them. In a Query outside a
/// block with remembered moves (`SessionInfo::moves_remembered`) they are spent at once; a
/// protocol Parse's at each Execute, where the block is looked at. Spent once the sequences'
/// OIDs are learned (a counted run learns them: until then it is counted). Such an id taken
/// ahead is then relayed uncounted: counting it cost about 8 ms against 0.1 ms directly (two
/// counter readings).
pub(super) fn known_steps(st: &Statement, info: &SessionInfo, policy: &Policy) -> Option<Vec<KnownSteps>> {
    let remembered = info.moves_remembered && !info.names.persisting;
    if !st.nextval_bounded || remembered || info.database.is_empty() {
        return None;
    }
    let mut out: Vec<KnownSteps> = Vec::new();
    for s in &st.nextval {
        let s = s.as_ref().filter(|s| s.as_oid().is_none())?;
        let (t, p) = policy.tables.iter().find_map(|t| {
            let p = t
                .sequences
                .iter()
                .find(|p| p.name == s.name && s.schema.as_ref().is_none_or(|x| Some(x) == p.schema.as_ref()))?;
            Some((t, p))
        })?;
        let schema = p.schema.as_deref().unwrap_or(&t.schema);
        match out.iter_mut().find(|k| k.schema == schema && k.name == p.name) {
            Some(k) => k.steps += 1,
            None => out.push(KnownSteps { schema: schema.to_string(), name: p.name.clone(), steps: 1 }),
        }
    }
    Some(out)
}

impl super::Guard {
    /// Spends a prepared statement's known sequence steps at its Execute (`spend_known`).
    pub fn spend_known(&self, database: &str, known: &[KnownSteps]) -> bool {
        spend_known(&self.policy(), &self.catalog, database, known)
    }

    /// [`no_room`] under the policy in force, for a prepared statement's Execute.
    pub fn no_room(
        &self,
        info: &SessionInfo,
        ahead: &[(String, String)],
        known: &[KnownSteps],
        statement: &str,
    ) -> Option<crate::policy::Decision> {
        no_room(&self.policy(), &self.catalog, info, (ahead, known), || statement.to_string())
    }

    /// [`takes_ahead_refusal`] under the policy in force.
    pub fn takes_ahead_refusal(&self, statement: String) -> crate::policy::Decision {
        takes_ahead_refusal(&self.policy(), statement)
    }

    /// Spends `steps` of the protected sequence `oid` (learned under the name its policy
    /// lists) from its table's creep budget: false when they do not fit. `force`: spent
    /// whatever the budget holds (steps that stay moved, `precheck::creep::charge`). A
    /// sequence no policy table lists by that OID spends nothing.
    pub fn spend_by_oid(&self, database: &str, oid: u32, steps: u64, force: bool) -> bool {
        let policy = self.policy();
        let listed = policy.tables.iter().find(|t| {
            t.sequences
                .iter()
                .any(|s| self.catalog.oid_of(database, s.schema.as_deref().unwrap_or(&t.schema), &s.name) == Some(oid))
        });
        let Some(t) = listed else { return true };
        if force {
            self.catalog.creep.charge(database, oid, steps, t.creep.window_secs);
            return true;
        }
        self.catalog.creep.take(database, oid, steps, t.creep.steps, t.creep.window_secs).is_ok()
    }
}

/// The protected sequences (schema, name, as the policy lists them) whose values a statement
/// takes ahead: it calls `nextval` of one (by a listed name; by an OID or a name the text does
/// not give: of every one) and inserts into no policy table that lists protected sequences
/// (whose rows would hold the values, and go with them at a rollback). Such values are the
/// client's: a block's put-back must never go under them.
pub(super) fn takes_ahead(statements: &[Statement], policy: &Policy) -> Vec<(String, String)> {
    let holds = |t: &crate::analyze::RelName| policy.tables.iter().any(|p| !p.sequences.is_empty() && p.matches(t));
    let mut out: Vec<(String, String)> = Vec::new();
    for st in statements.iter().filter(|st| !super::need::inserts_in(st).iter().any(|i| holds(&i.target))) {
        for t in &policy.tables {
            for p in &t.sequences {
                let key = (p.schema.clone().unwrap_or_else(|| t.schema.clone()), p.name.clone());
                if !out.contains(&key) && st.calls_nextval_of(|s| s.name == p.name) {
                    out.push(key);
                }
            }
        }
    }
    out
}

/// Every protected sequence the policy lists (schema, name).
pub(super) fn listed(policy: &Policy) -> Vec<(String, String)> {
    let each = |t: &policy::TablePolicy| {
        t.sequences
            .iter()
            .map(|p| (p.schema.clone().unwrap_or_else(|| t.schema.clone()), p.name.clone()))
            .collect::<Vec<_>>()
    };
    let mut out: Vec<(String, String)> = policy.tables.iter().flat_map(each).collect();
    out.dedup();
    out
}

/// The refusal, before it runs, of a statement that takes values of a protected sequence
/// ahead (`ahead`, [`takes_ahead`]; `known`: the steps its text is known to take, else one)
/// while the sequence's creep budget has no room for them — spent, or overdrawn by a move
/// that could not be put back (`precheck::creep::charge`). Run, it would be refused by what it
/// moved, and while other sessions take values its move could not be put back: sessions
/// each under the budget at once went past it again and again (seventy-eighth pass M2: 12
/// concurrent statements of 60 calls left +660 against 300). `None` in a mode that does not
/// enforce (the count warns there), and for a sequence whose OID is not learned yet.
pub(super) fn no_room(
    policy: &Policy,
    catalog: &crate::catalog::Catalog,
    info: &SessionInfo,
    (ahead, known): (&[(String, String)], &[KnownSteps]),
    statement: impl FnOnce() -> String,
) -> Option<crate::policy::Decision> {
    let who = policy::SessionView {
        user: &info.user,
        application_name: &info.application_name,
        session_mode: info.session_mode,
        columns: None,
        sequence_owners: None,
        seen_in: None,
    };
    let (t, (schema, name), room) = ahead.iter().find_map(|(schema, name)| {
        let t = policy.tables.iter().find(|t| {
            t.sequences.iter().any(|p| p.name == *name && p.schema.as_deref().unwrap_or(&t.schema) == schema)
        })?;
        let oid = catalog.oid_of(&info.database, schema, name)?;
        let steps = known.iter().find(|k| k.schema == *schema && k.name == *name).map_or(1, |k| k.steps);
        let room = catalog.creep.room(&info.database, oid, t.creep.steps, t.creep.window_secs);
        (room < steps && policy::mode_for(who, policy, Some(t)) == policy::Mode::Enforce).then_some((
            t,
            (schema, name),
            room,
        ))
    })?;
    let why = format!(
        "it takes values of the protected sequence {schema}.{name} ahead, and its creep budget has {room} steps left (sequence_creep = {} per {} s, spent by earlier statements, or by a refused move that could not be put back because another session took values after it)",
        t.creep.steps, t.creep.window_secs
    );
    let hint = "Wait until earlier steps leave the window, insert the rows that use the ids instead of taking them ahead, or raise sequence_creep for the table.";
    Some(super::refusal("identity", "statement".into(), why, hint, &t.source, statement()))
}

/// The refusal of a statement that takes values ahead (`takes_ahead`) above a run of the
/// client's block's own moves that a rollback would put back (rule `identity`).
pub(super) fn takes_ahead_refusal(policy: &Policy, statement: String) -> crate::policy::Decision {
    let why = "it takes values of a protected sequence ahead after this transaction's own writes moved it beyond the slack, and a ROLLBACK puts those writes' moves back: the values taken now would lie under where it goes back to, and be handed out again".to_string();
    let hint = "Take ids ahead before the transaction's bulk writes, or in a transaction of their own.";
    super::refusal("identity", "statement".into(), why, hint, &policy.source_names(), statement)
}
