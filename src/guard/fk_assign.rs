//! Foreign-key actions that set a protected column: `UPDATE people SET id = …` where
//! `users.id REFERENCES people ON UPDATE CASCADE` moves users' ids as surely as
//! `UPDATE users SET id = …` does, and is judged by the same rule (`protected-assign`), naming
//! the key, the table it changes and why. So are `ON UPDATE`/`ON DELETE SET NULL` and
//! `SET DEFAULT` into a protected column (only the columns an `ON DELETE SET NULL (col, …)`
//! lists), and chains of keys (`a` → `b ON UPDATE CASCADE` → `users.id`) — those of the
//! relation the write's name resolves to on the session (by OID; where it cannot be resolved,
//! every relation of that name).
//!
//! Owns: which catalog answers a message's writes need for it, and its findings. Does not own:
//! what the keys reach (`catalog::cascades`) or the rule's other half (`policy`: a `SET` in the
//! text).

use crate::analyze::{Op, Statement, Write};
use crate::catalog::{AssignedColumn, Catalog, Question};
use crate::policy::{self, Finding, Mode, Policy, SessionView, TablePolicy};

/// A policy table's protected columns' names now: (policy name, name now).
type Columns<'a> = dyn Fn(&TablePolicy) -> Option<Vec<(String, String)>> + 'a;

/// Whether a write may fire foreign keys' actions that set columns (a DELETE when `Some(true)`).
fn kind(w: &Write) -> Option<bool> {
    match w.op {
        Op::Delete | Op::MergeDelete => Some(true),
        Op::Update { .. } | Op::MergeUpdate { .. } | Op::Upsert { .. } => Some(false),
        _ => None,
    }
}

/// Whether some policy table has protected columns its policy does not let anyone set.
fn matters(policy: &Policy) -> bool {
    policy.tables.iter().any(|t| !t.protected_columns.is_empty() && !t.allow_protected_update)
}

/// The findings of a message's writes whose keys' actions set protected columns; `Err`: the
/// catalog must be asked first (what a relation name's keys reach, a table's column names).
/// `resolved`: the relation a write names, when known (`names::written_oid`): only its keys
/// act, not those of another schema's relation of that name.
/// `columns`: a policy table's protected columns' names now, as the judgement knows them.
pub(super) fn findings(
    statements: &[Statement],
    resolved: &dyn Fn(usize, &Write) -> Option<u32>,
    info: &super::SessionInfo,
    policy: &Policy,
    catalog: &Catalog,
    columns: &Columns<'_>,
) -> Result<Vec<Finding>, Vec<Question>> {
    let (who, db, assumed) = (info.view(), info.database.as_str(), &info.names.assumed);
    if db.is_empty() || !matters(policy) {
        return Ok(Vec::new());
    }
    let (mut found, mut questions) = (Vec::new(), Vec::new());
    for (i, st) in statements.iter().enumerate() {
        for w in &st.writes {
            let (Some(delete), Some(target)) = (kind(w), &w.target) else { continue };
            let question =
                match assumed.fk_assignments(catalog, db, &target.name, delete, w.op.assigned(), policy, columns) {
                    None => Question::Indirect(target.name.clone()),
                    Some(Err(i)) => {
                        let t = &policy.tables[i];
                        Question::Columns { schema: t.schema.clone(), table: t.name.clone() }
                    }
                    Some(Ok(hits)) => {
                        let oid = resolved(i, w);
                        let fired = |h: &&AssignedColumn| h.by.written == 0 || oid.is_none_or(|o| o == h.by.written);
                        found.extend(hits.iter().filter(fired).filter_map(|h| finding(h, w, delete, st, who, policy)));
                        continue;
                    }
                };
            if !questions.contains(&question) {
                questions.push(question);
            }
        }
    }
    if questions.is_empty() {
        Ok(found)
    } else {
        Err(questions)
    }
}

/// The finding of one protected column set by a key's action (`None` where the table's mode
/// is off).
fn finding(
    h: &AssignedColumn,
    w: &Write,
    delete: bool,
    st: &Statement,
    who: SessionView<'_>,
    policy: &Policy,
) -> Option<Finding> {
    let t = &policy.tables[h.table];
    let mode = policy::mode_for(who, policy, Some(t));
    if mode == Mode::Off {
        return None;
    }
    let target = w.target.as_ref()?;
    let a = &h.by;
    let (_, schema, name) = a.table.first()?;
    let renamed = if h.policy_name == h.column {
        String::new()
    } else {
        format!(" ({} in the policy, renamed since)", h.policy_name)
    };
    let through = if a.first == a.constraint {
        String::new()
    } else {
        format!(", reached through foreign key {} (the first key on the way)", a.first)
    };
    let fires = if delete {
        format!("deleting rows of {target} fires it")
    } else if a.fires_on.iter().any(|c| c == "*") {
        format!("an UPDATE of {target}, a view over the key's table, may fire it")
    } else {
        let set: Vec<&str> = a.fires_on.iter().filter(|c| w.op.assigned().contains(c)).map(String::as_str).collect();
        format!("setting {} of {target} fires it", set.join(", "))
    };
    let part =
        if (schema, name) == (&t.schema, &t.name) { String::new() } else { format!(" (rows of {})", t.qualified()) };
    let why = format!(
        "foreign key {} ({}) sets protected column {}{renamed} of {schema}.{name}{part}: {fires}{through}",
        a.constraint, a.action, h.column
    );
    Some(Finding {
        rule: "protected-assign",
        mode,
        what: format!("{} on {target}", w.op.verb()),
        why,
        hint: HINT,
        source: t.source.clone(),
        statement: st.text.clone(),
    })
}

const HINT: &str = "A foreign key's action changes the protected column as an UPDATE of it would (it moves rows' identities). Change the referenced key through a role or table whose policy sets allow_protected_update = true, or change the foreign key's action.";
