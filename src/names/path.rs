//! A `search_path` set earlier in the same message: which list the names after it resolve
//! against (`Paths`), and the key they are asked under (`effective_key`; the SQL that
//! answers it is `sql::relations_query`).
//!
//! Owns: reading `SET [LOCAL] search_path TO …` and the path keys. Does not own: asking or
//! caching the answers (`super`).

use super::{key, may_change_path};
use crate::analyze::{RelName, Statement};

/// What the names of each statement of a message resolve against, found in one pass (a message
/// of thousands of statements must not cost thousands of passes over the ones before each):
/// the session's path as it is now (`Ok(None)`), or the list a plain `SET [LOCAL] search_path
/// TO …` earlier in the same message installs (`Ok(Some(list))`); `Err(why)` when a statement
/// before it may change what names resolve to in a way blastwall cannot follow (any other path
/// change, DDL, a role's membership or a schema's privileges or owner changed, a transaction end that undoes a `SET LOCAL`, a function call, or what the guard
/// says of it in `changing`: an object it mentions runs `set_config` or a user function, an
/// `EXECUTE` or `FETCH` runs a statement that may).
pub struct Paths(Vec<Result<Option<Vec<String>>, String>>);

impl Paths {
    pub fn of(statements: &[Statement], changing: &[bool]) -> Paths {
        let mut out = Vec::with_capacity(statements.len() + 1);
        let mut now: Result<Option<Vec<String>>, String> = Ok(None);
        for (i, s) in statements.iter().enumerate() {
            out.push(now.clone());
            // What the last one does is for no statement of the message (most messages hold
            // one): not read.
            if i + 1 == statements.len() {
                break;
            }
            // A `ROLLBACK TO` a savepoint set earlier in the message (and nothing between
            // them that may leave it naming an older one: `savepoints::returns_to`) brings back
            // what names resolved against when it was set: whatever ran since, `SET`s and
            // DDL included, is undone.
            if s.transaction_control {
                if let Some(j) = super::savepoints::returns_to(statements, i) {
                    now = out[j + 1].clone();
                    continue;
                }
            }
            let unseen = s.calls_functions || !s.opaque.is_empty() || changing.get(i).copied().unwrap_or(false);
            if now.is_err() || !(may_change_path(s.text.as_bytes()) || unseen) {
                continue;
            }
            // A privilege on a table, a function, … changes no lookup (one on a schema, a
            // role's membership, owners do: not followed).
            if !unseen && super::earlier::reach_of_privileges(&s.text) == Some(false) {
                continue;
            }
            // Not parsed when it cannot count as a plain SET anyway (a text too large to parse).
            now = match (!unseen).then(|| set_search_path(&s.text)).flatten() {
                Some(list) => Ok(Some(list)),
                None => {
                    let head: String = s.text.trim().chars().take(60).collect();
                    Err(format!("a statement before it in the same message may change what names resolve to ({head}); send that statement in a message of its own"))
                }
            };
        }
        Paths(out)
    }

    /// What statement `index` of the message resolves against (past the end: not known).
    pub fn before(&self, index: usize) -> &Result<Option<Vec<String>>, String> {
        static PAST_THE_END: Result<Option<Vec<String>>, String> = Err(String::new());
        self.0.get(index).unwrap_or(&PAST_THE_END)
    }
}

/// The schemas of `SET [LOCAL] search_path TO a, b` (constants only: not `DEFAULT`, not a
/// name holding a control character blastwall uses as a separator).
fn set_search_path(text: &str) -> Option<Vec<String>> {
    use pg_query::protobuf::{a_const::Val, VariableSetKind};
    use pg_query::NodeEnum;
    let text = text.to_string();
    crate::analyze::deep::with_parse(&text, pg_query::ParserOptions::DEFAULT, |parsed| {
        let parsed = parsed.ok()?;
        let [raw] = &parsed.protobuf.stmts[..] else { return None };
        let Some(NodeEnum::VariableSetStmt(v)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else { return None };
        if v.kind != VariableSetKind::VarSetValue as i32 || !v.name.eq_ignore_ascii_case("search_path") {
            return None;
        }
        v.args
            .iter()
            .map(|a| match a.node.as_ref() {
                Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
                    Some(Val::Sval(s)) if !s.sval.contains(['\u{1}', '\u{2}']) => Some(s.sval.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    })
}

/// The key a written name is resolved under before statement `index` (see [`Paths`]):
/// an unqualified name after a `SET search_path` in the same message is resolved against that
/// list (`path\u{2}name`, the path's schemas joined by `\u{1}`).
pub(super) fn effective_key(paths: &Paths, index: usize, t: &RelName) -> Result<String, String> {
    match paths.before(index) {
        Err(why) => Err(why.clone()),
        Ok(Some(list)) if t.schema.is_none() => Ok(format!("{}\u{2}{}", list.join("\u{1}"), t.name)),
        Ok(_) => Ok(key(t)),
    }
}

/// Whether a key is resolved against a path of its own (`effective_key`).
pub fn is_path_key(k: &str) -> bool {
    k.contains('\u{2}')
}
