//! Unqualified columns beside other relations (`DELETE … USING u`, `UPDATE … FROM u`): which
//! relation a name is a column of, from the catalog on the client's session. A name that is a
//! column of the target and of none of the relations beside it is the target's — as the
//! server resolves it (a name of both is an error there) — and is judged as if qualified.
//!
//! Owns: placing those names from the resolved relations' columns. Does not own: asking
//! (`super::questions`), the shapes (`analyze::predicate`), the rules (`policy::decide`).

use super::{effective_key, Resolutions, Resolved};
use crate::analyze::{RelName, Statement, Write};

/// The relations beside a write whose WHERE has unqualified names the catalog can place:
/// plain relations only, in a statement with no `WITH` anywhere (a CTE's name would be
/// resolved as a relation's).
pub(super) fn beside_of<'a>(st: &Statement, w: &'a Write) -> &'a [RelName] {
    match w.predicate.as_ref().and_then(|p| p.unqualified_beside()) {
        Some((beside, _)) if !has_with(&st.text) => beside,
        _ => &[],
    }
}

/// Whether a text has the word `WITH` (anywhere: a word in a string or a comment only leaves
/// the names unplaced, as before).
fn has_with(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w.eq_ignore_ascii_case("with"))
}

/// The unqualified names of write `w` (statement `index`, its target resolved under `key`)
/// that are columns of the target and of none of the relations beside it; empty when any of
/// those relations is not resolved to an existing relation.
pub(super) fn mine(
    statements: &[Statement],
    paths: &super::Paths,
    index: usize,
    w: &Write,
    key: &str,
    session: &Resolutions,
) -> Vec<String> {
    let Some(st) = statements.get(index) else { return Vec::new() };
    let beside = beside_of(st, w);
    let Some((_, names)) = w.predicate.as_ref().and_then(|p| p.unqualified_beside()).filter(|_| !beside.is_empty())
    else {
        return Vec::new();
    };
    let columns_of = |k: &str| match session.relation(k) {
        Some(Resolved::Oid { oid, columns, .. }) if *oid != 0 => Some(columns.clone()),
        _ => None,
    };
    let Some(own) = columns_of(key) else { return Vec::new() };
    let mut theirs = Vec::new();
    for b in beside {
        match effective_key(paths, index, b).ok().and_then(|k| columns_of(&k)) {
            Some(c) => theirs.extend(c),
            None => return Vec::new(),
        }
    }
    names
        .into_iter()
        .filter(|n| own.iter().any(|c| c == n) && !theirs.iter().any(|c| c == n))
        .map(str::to_string)
        .collect()
}
