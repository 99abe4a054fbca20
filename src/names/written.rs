//! What a write's name resolves to for a question that is not about the policy tables (a
//! foreign table behind it: `guard::remote`): the relation's OID as the session's answer says,
//! or why it cannot be known before the message runs, and whether a statement the server runs
//! first may make the name another relation altogether.
//!
//! Owns: that reading of the session's answers. Does not own: asking them (`super::questions`),
//! what a statement earlier may redirect (`super::earlier`).

use super::{earlier, effective_key, prepared_earlier, relevant, Context, Resolved};
use crate::analyze::Write;

/// What a written name leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// This relation (0: none). `persisting`: the text is a protocol Parse, which the server
    /// resolves again at each run, under whatever `search_path` the session has then.
    Oid { oid: u32, persisting: bool },
    /// Not known before the message runs (why): any relation of that name.
    Unresolved(String),
    /// A statement the server runs first may make it any relation (why).
    Redirected(String),
}

/// What write `w` of statement `index` names, as the server will resolve it (`None`: it names
/// no relation — a sequence, a schema, an unnamed target).
pub fn written(cx: &Context<'_>, index: usize, w: &Write) -> Option<Written> {
    let target = relevant(w)?;
    let mine = cx.redirected(index, target);
    if let Some(by) = mine.or_else(|| earlier::redirected_by_others(cx.others, target, false)) {
        return Some(Written::Redirected(format!("{target} may name another relation once {by} has run")));
    }
    if prepared_earlier(cx.statements, index) {
        let why = "a prepared statement resolves names again when it runs, under the search_path the session has then";
        return Some(Written::Unresolved(why.into()));
    }
    let k = match effective_key(&cx.paths, index, target) {
        Ok(k) => k,
        Err(why) => return Some(Written::Unresolved(why)),
    };
    Some(match cx.session.relation(&k) {
        Some(Resolved::Oid { oid, .. }) => Written::Oid { oid: *oid, persisting: cx.session.persisting },
        Some(Resolved::Assumed(why)) => Written::Unresolved(why.clone()),
        None => Written::Unresolved("the catalog was not asked".into()),
    })
}

/// The key write `w` of statement `index` was resolved by on the session and the relation it
/// led to when judged, for the pre-check to read again around the run (`precheck::named`):
/// `None` when it names no relation, was not asked, or resolves under a path set earlier in
/// its own message.
pub fn judged_key(cx: &Context<'_>, index: usize, w: &Write) -> Option<(String, u32)> {
    let target = relevant(w)?;
    if prepared_earlier(cx.statements, index) {
        return None;
    }
    let k = effective_key(&cx.paths, index, target).ok().filter(|k| !super::is_path_key(k))?;
    match cx.session.relation(&k)? {
        Resolved::Oid { oid, .. } => Some((k, *oid)),
        Resolved::Assumed(_) => None,
    }
}

/// Whether the relation write `w` of statement `index` was resolved to may be made to lead
/// elsewhere by a role that does not own the policy tables (`sql::movable`).
pub fn movable(cx: &Context<'_>, index: usize, w: &Write) -> bool {
    let Some(target) = relevant(w) else { return false };
    let Ok(k) = effective_key(&cx.paths, index, target) else { return false };
    matches!(cx.session.relation(&k), Some(Resolved::Oid { movable: true, .. }))
}

/// Whether write `w` of statement `index` was resolved to a relation no role but the policy
/// tables' owners may make lead elsewhere (resolved, and not [`movable`]): not so for one
/// resolved by no answer (the middle of a batch, a name redirected earlier in the message).
pub fn pinned(cx: &Context<'_>, index: usize, w: &Write) -> bool {
    let Some(target) = relevant(w) else { return true };
    if prepared_earlier(cx.statements, index) {
        return false;
    }
    let Ok(k) = effective_key(&cx.paths, index, target) else { return false };
    matches!(cx.session.relation(&k), Some(Resolved::Oid { movable: false, .. }))
}

/// The relation write `w` of statement `index` names, when known for every run of it: not a
/// protocol Parse (resolved again at each run), nothing earlier that may redirect it.
pub fn written_oid(cx: &Context<'_>, index: usize, w: &Write) -> Option<u32> {
    match written(cx, index, w)? {
        Written::Oid { oid, persisting: false } => Some(oid),
        _ => None,
    }
}
