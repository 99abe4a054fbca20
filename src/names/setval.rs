//! The sequence a `setval('name', …)` moves, as the session's server resolves the name: the
//! `regclass` input finds relations on the session's path, its temporary schema first, so
//! after `CREATE TEMP SEQUENCE web_user_id_seq` the name is the temporary sequence, not the
//! protected one (twenty-seventh pass L1: refused as a setval of `public.web_user_id_seq`).
//!
//! An unqualified name is asked with the written relations' names (`Question::Relations`,
//! `to_regclass` on the client's session) and judged as the schema and name it resolves to.
//! It stays judged by its name (a listed sequence of that name in any schema) wherever that
//! answer cannot stand for what the server will do: a statement before it in the message (or
//! sent earlier and not answered) may change the path or the relation, it runs a statement
//! prepared earlier, it is a protocol Parse (resolved again at each run), or the name could
//! not be asked (the middle of a batch) or leads to no relation.
//!
//! Owns: which `setval` names are asked, and reading their answers. Does not own: the rule
//! (`policy::decide`, `forbid-setval`).

use super::path::{effective_key, Paths};
use super::{earlier, prepared_earlier, Context, Resolutions, Resolved};
use crate::analyze::{Op, RelName, Statement, Write};

/// The name of a `setval` the session's answer may resolve: unqualified, not an OID's digits.
fn asked(w: &Write) -> Option<&RelName> {
    let t = w.target.as_ref()?;
    (matches!(w.op, Op::Setval) && t.schema.is_none() && t.as_oid().is_none()).then_some(t)
}

/// The keys to ask for the `setval` names of `statements` (not asked yet).
pub(super) fn keys(statements: &[Statement], paths: &Paths, session: &Resolutions, keys: &mut Vec<String>) {
    if session.persisting {
        return;
    }
    for (i, st) in statements.iter().enumerate() {
        for t in st.writes.iter().filter_map(asked) {
            let Ok(k) = effective_key(paths, i, t) else { continue };
            if session.relation(&k).is_none() && !keys.contains(&k) && !prepared_earlier(statements, i) {
                keys.push(k);
            }
        }
    }
}

/// The sequence `setval` write `w` of statement `index` moves, as the session's server will
/// resolve its name, with the key it was asked under; `None`: judged by its name.
pub fn resolved(cx: &Context<'_>, index: usize, w: &Write) -> Option<(RelName, String)> {
    let t = asked(w)?;
    if cx.session.persisting || prepared_earlier(cx.statements, index) {
        return None;
    }
    if cx.redirected(index, t).is_some() || earlier::redirected_by_others(cx.others, t, false).is_some() {
        return None;
    }
    let k = effective_key(&cx.paths, index, t).ok()?;
    match cx.session.relation(&k)? {
        Resolved::Oid { oid, name: Some((schema, name)), .. } if *oid != 0 => {
            Some((RelName { schema: Some(schema.clone()), name: name.clone() }, k))
        }
        _ => None,
    }
}
