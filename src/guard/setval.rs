//! The sequence a `setval` moves, where the text alone does not say it.
//!
//! Given as a string of digits: PostgreSQL's `regclass` input reads a string that is all
//! digits as an OID, not as a name, so `setval('16387', …)` moves the sequence whose OID is
//! 16387 whatever it is called (twenty-seventh pass M1: the protected sequence moved while
//! blastwall judged a relation named `16387`, which it does not protect). Such a `setval` is
//! judged as the name too (a quoted `'"16387"'` is one) and, beside it, as the relation the
//! catalog says has that OID (asked on the client's session); where that cannot be known
//! (offline, the middle of a batch, the catalog unreadable) its sequence is taken as given by
//! an expression, which `forbid-setval` refuses.
//!
//! Given as an unqualified name: judged as the schema and name the session's server resolves
//! it to (its temporary schema first: a temporary sequence named like a protected one is not
//! it; twenty-seventh pass L1), where `names::setval` says that answer stands; else by its name.
//!
//! Owns: that reading of a `setval`'s sequence. Does not own: the questions (`catalog::oids`,
//! `names::setval`), the rule (`policy::decide`).

use super::SessionInfo;
use crate::analyze::{Op, RelName, Statement, Write};
use crate::catalog::{Catalog, OidName, Question};
use std::borrow::Cow;

/// `statements` with each `setval` of a sequence given as an OID also judged as the relation
/// the OID is (a write of its own); a question for each OID not known yet.
pub(super) fn by_oid<'a>(
    statements: Cow<'a, [Statement]>,
    catalog: &Catalog,
    info: &SessionInfo,
    questions: &mut Vec<Question>,
) -> Cow<'a, [Statement]> {
    let oid_of = |w: &Write| matches!(w.op, Op::Setval).then(|| w.target.as_ref()?.as_oid()).flatten();
    if !statements.iter().flat_map(|s| &s.writes).any(|w| oid_of(w).is_some()) {
        return statements;
    }
    let online = !info.database.is_empty();
    let mut out = statements.into_owned();
    for st in &mut out {
        let mut beside = Vec::new();
        for w in &mut st.writes {
            let Some(oid) = oid_of(w) else { continue };
            let answer = match oid {
                Some(oid) if online => info.names.assumed.relation_of_oid(catalog, &info.database, oid),
                _ => Some(OidName::Unknown),
            };
            match (answer, oid) {
                (Some(OidName::Relation(schema, name)), _) => {
                    beside.push(Write { target: Some(RelName { schema: Some(schema), name }), ..w.clone() });
                }
                (Some(OidName::Nothing), _) => {}
                (Some(OidName::Unknown), _) | (None, None) => w.target = None,
                (None, Some(oid)) => {
                    let q = Question::RelationOfOid(oid);
                    if !questions.contains(&q) {
                        questions.push(q);
                    }
                }
            }
        }
        st.writes.extend(beside);
    }
    Cow::Owned(out)
}

/// `statements` with each `setval` of an unqualified name judged as the sequence the session's
/// server resolves it to (`names::setval`). `once` gets the keys of those that the policy lists
/// a sequence of that name for, resolved to another: asked again next time (a temporary sequence
/// dropped, DDL elsewhere, would lead the name back unseen).
pub(super) fn by_name<'a>(
    statements: Cow<'a, [Statement]>,
    changing: &[bool],
    policy: &crate::policy::Policy,
    ids: Option<&crate::names::Identities>,
    info: &SessionInfo,
    once: &mut Vec<String>,
) -> Cow<'a, [Statement]> {
    let unqualified = |w: &Write| matches!(w.op, Op::Setval) && w.target.as_ref().is_some_and(|t| t.schema.is_none());
    if !statements.iter().flat_map(|s| &s.writes).any(unqualified) {
        return statements;
    }
    let mut found = Vec::new();
    let cx =
        crate::names::Context::new(&statements, changing, policy, ids, &info.names).with_others(&info.inflight.others);
    for (i, st) in statements.iter().enumerate() {
        for (j, w) in st.writes.iter().enumerate() {
            if let Some((seq, k)) = crate::names::setval::resolved(&cx, i, w) {
                found.push((i, j, seq, k));
            }
        }
    }
    if found.is_empty() {
        return statements;
    }
    let mut out = statements.into_owned();
    for (i, j, seq, k) in found {
        let Some(w) = out.get_mut(i).and_then(|st| st.writes.get_mut(j)) else { continue };
        let was = w.target.replace(seq.clone()).map(|t| t.name).unwrap_or_default();
        let listed = policy.tables.iter().flat_map(|t| &t.sequences).any(|s| s.name == was && s.schema != seq.schema);
        if listed && !once.contains(&k) {
            once.push(k);
        }
    }
    Cow::Owned(out)
}
