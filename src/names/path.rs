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
            // A `SELECT set_config('search_path', 'a, b', …)` of constants calls nothing but
            // the setting (a user's `set_config` the server may pick instead is a hidden
            // caller: `changing`).
            let calls = s.calls_functions && !sets_path_only(s);
            let unseen = calls || !s.opaque.is_empty() || changing.get(i).copied().unwrap_or(false);
            if now.is_err() || !(may_change_path(s.text.as_bytes()) || unseen) {
                continue;
            }
            // A privilege on a table, a function, … changes no lookup (one on a schema, a
            // role's membership, owners do: not followed).
            if !unseen && super::earlier::reach_of_privileges(&s.text) == Some(false) {
                continue;
            }
            // Not parsed when it cannot count as a plain SET anyway (a text too large to parse).
            now = match (!unseen).then(|| setting_set(&s.text)).flatten() {
                Some(Set::Path(list)) => Ok(Some(list)),
                // A custom setting (`app.tenant`) changes no lookup.
                Some(Set::Custom) => continue,
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

/// Whether a statement that calls functions calls only `set_config` with constants, of
/// `search_path` (`SELECT set_config('search_path', 'archive, public', false)`, followed as a
/// `SET` is) or of a custom setting (`set_config('app.tenant', '42', false)`, which changes no
/// lookup).
pub fn sets_path_only(s: &Statement) -> bool {
    s.calls_functions
        && s.opaque.is_empty()
        && s.text.len() < 4096
        && s.text.as_bytes().windows(10).any(|w| w.eq_ignore_ascii_case(b"set_config"))
        && setting_set(&s.text).is_some()
}

/// What a plain setting statement sets ([`setting_set`]).
#[derive(Debug, PartialEq)]
enum Set {
    /// `search_path`, to these schemas.
    Path(Vec<String>),
    /// A custom setting (a name with a dot: `app.tenant`), by `set_config` with constants:
    /// no lookup reads one (what an extension's own setting does is not a name's resolution
    /// either).
    Custom,
}

/// The schemas of `SET [LOCAL] search_path TO a, b` (constants only: not `DEFAULT`, not a
/// name holding a control character blastwall uses as a separator), or of `SELECT
/// set_config('search_path', 'a, "B"', true)` with constants (its value split as the server
/// splits a list of names: unquoted names folded to lower case, quoted ones kept).
#[cfg(test)]
fn set_search_path(text: &str) -> Option<Vec<String>> {
    match setting_set(text)? {
        Set::Path(list) => Some(list),
        Set::Custom => None,
    }
}

/// What a plain `SET search_path` or a constant `SELECT set_config(…)` alone sets.
fn setting_set(text: &str) -> Option<Set> {
    use pg_query::protobuf::{a_const::Val, VariableSetKind};
    use pg_query::NodeEnum;
    let text = text.to_string();
    crate::analyze::deep::with_parse(&text, pg_query::ParserOptions::DEFAULT, |parsed| {
        let parsed = parsed.ok()?;
        let [raw] = &parsed.protobuf.stmts[..] else { return None };
        let plain = |s: &str| !s.contains(['\u{1}', '\u{2}']);
        match raw.stmt.as_ref().and_then(|n| n.node.as_ref())? {
            NodeEnum::VariableSetStmt(v) => {
                if v.kind != VariableSetKind::VarSetValue as i32 || !v.name.eq_ignore_ascii_case("search_path") {
                    return None;
                }
                v.args
                    .iter()
                    .map(|a| match a.node.as_ref() {
                        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
                            Some(Val::Sval(s)) if plain(&s.sval) => Some(s.sval.clone()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect::<Option<Vec<String>>>()
                    .map(Set::Path)
            }
            NodeEnum::SelectStmt(q) => {
                let bare = super::expand::plain_select(q)
                    && q.from_clause.is_empty()
                    && q.where_clause.is_none()
                    && q.into_clause.is_none()
                    && q.values_lists.is_empty()
                    && q.sort_clause.is_empty()
                    && q.locking_clause.is_empty();
                let [target] = &q.target_list[..] else { return None };
                let Some(NodeEnum::ResTarget(t)) = target.node.as_ref() else { return None };
                let Some(NodeEnum::FuncCall(f)) = t.val.as_ref().and_then(|v| v.node.as_ref()) else { return None };
                let name: Vec<&str> = f
                    .funcname
                    .iter()
                    .map(|n| match n.node.as_ref() {
                        Some(NodeEnum::String(s)) => s.sval.as_str(),
                        _ => "",
                    })
                    .collect();
                let plain_call = f.agg_filter.is_none()
                    && f.over.is_none()
                    && f.agg_order.is_empty()
                    && !f.agg_star
                    && !f.agg_distinct
                    && !f.func_variadic;
                if !bare || !plain_call || !matches!(name[..], ["set_config"] | ["pg_catalog", "set_config"]) {
                    return None;
                }
                let arg = |i: usize| match f.args.get(i).and_then(|a| a.node.as_ref()) {
                    Some(NodeEnum::AConst(c)) => c.val.as_ref(),
                    _ => None,
                };
                match (f.args.len(), arg(0), arg(1), arg(2)) {
                    (3, Some(Val::Sval(n)), Some(Val::Sval(v)), Some(Val::Boolval(_)))
                        if n.sval.eq_ignore_ascii_case("search_path") && plain(&v.sval) =>
                    {
                        split_names(&v.sval).map(Set::Path)
                    }
                    (3, Some(Val::Sval(n)), Some(Val::Sval(_)), Some(Val::Boolval(_))) if custom(&n.sval) => {
                        Some(Set::Custom)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    })
}

/// Whether a setting's name is a custom one (`app.tenant`): a dot, and around it names
/// of letters, digits, `_` and `$` only (what the server takes as a placeholder's or an
/// extension's setting, never one of its own).
fn custom(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$'))
}

/// A list of names as the server splits a list setting's value (`SplitIdentifierString`):
/// separated by commas, whitespace around them dropped, `"…"` kept as written (`""` is a
/// quote), any other name folded to lower case (ASCII only; an unquoted name with another
/// letter is not read: a server in a single-byte encoding folds it by its locale).
/// `None` where the server would refuse it, a name is empty or longer than it keeps (63
/// bytes), or the list is empty.
fn split_names(value: &str) -> Option<Vec<String>> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The server's `scanner_isspace`: not a vertical tab (`archive\v` is a name of its own).
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    loop {
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        let mut name = Vec::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        name.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        name.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !space(b[i]) && b[i] != b',' {
                // A server in a single-byte encoding folds other letters by its locale.
                if !b[i].is_ascii() {
                    return None;
                }
                name.push(b[i].to_ascii_lowercase());
                i += 1;
            }
        }
        if name.is_empty() || name.len() > 63 {
            return None;
        }
        out.push(String::from_utf8(name).ok()?);
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        match b.get(i) {
            None => return Some(out),
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
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

/// Whether catalog questions for `statements`, in the middle of a batch that ran something
/// (`session::questions`: each round waits for the server to answer the batch so far), can
/// change a judgement made with the worst assumed: a name they write is a policy table's or
/// one of its relatives' (its views, children, parents), as the stand-in answer about their
/// identities says. Any other name, taken as unresolved, reaches no policy table either way,
/// and its batch does not wait.
pub fn worth_asking_in_batch(
    statements: &[Statement],
    policy: &crate::policy::Policy,
    ids: Option<&super::Identities>,
) -> bool {
    statements
        .iter()
        .flat_map(|s| &s.writes)
        .filter_map(super::relevant)
        .any(|t| !super::unresolved_reach(policy, ids, t, false).is_empty())
}

/// Whether a key is resolved against a path of its own (`effective_key`).
pub fn is_path_key(k: &str) -> bool {
    k.contains('\u{2}')
}

#[cfg(test)]
mod tests {
    use super::{set_search_path, setting_set, split_names, Set};

    #[test]
    fn a_list_setting_is_split_as_the_server_splits_it() {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(split_names("archive, public"), v(&["archive", "public"]));
        assert_eq!(split_names(" ARCHIVE ,\tPublic "), v(&["archive", "public"]));
        assert_eq!(split_names(r#""$user", "My ""S""""#), v(&["$user", r#"My "S""#]));
        assert_eq!(split_names("$user,pg_temp"), v(&["$user", "pg_temp"]));
        assert_eq!(split_names("\"Émile\""), v(&["Émile"]));
        assert_eq!(split_names("archive\x0b, public"), v(&["archive\x0b", "public"]));
        assert_eq!(split_names("a,\x0cb"), v(&["a", "b"]));
        for bad in ["", " ", "a,", ",a", "a b", r#""a"#, r#""""#, "a,,b", &"x".repeat(64), "Émile"] {
            assert_eq!(split_names(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_constant_set_config_of_search_path_is_read() {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(set_search_path("SELECT set_config('search_path', 'a, B', true)"), v(&["a", "b"]));
        assert_eq!(set_search_path("select pg_catalog.set_config('SEARCH_PATH', '\"A\"', false)"), v(&["A"]));
        assert_eq!(set_search_path("SET search_path TO a, \"B\""), v(&["a", "B"]));
        for other in [
            "SELECT set_config('search_path', $1, true)",
            "SELECT set_config('search_path', 'a' || 'b', true)",
            "SELECT set_config('search_path', 'a', $1)",
            "SELECT set_config('search_path', 'a', true), 1",
            "SELECT set_config('search_path', 'a', true) FROM t",
            "SELECT set_config('search_path', 'a', true) INTO x",
            "SELECT set_config('search_path', 'a', true) UNION SELECT 'b'",
            "SELECT s.set_config('search_path', 'a', true)",
            "SELECT set_config('role', 'a', true)",
            "SELECT set_config('app.tenant', 'a', true)",
            "SELECT set_config('search_path', 'a', true); SELECT 1",
            "SELECT set_config('search_path', E'a\\u0001b', true)",
        ] {
            assert_eq!(set_search_path(other), None, "{other}");
        }
    }

    #[test]
    fn a_constant_set_config_of_a_custom_setting_changes_no_lookup() {
        for t in
            ["SELECT set_config('app.tenant', '42', false)", "select pg_catalog.set_config('myapp.user_id', '', true)"]
        {
            assert_eq!(setting_set(t), Some(Set::Custom), "{t}");
        }
        for t in [
            "SELECT set_config('role', 'a', true)",
            "SELECT set_config('session_authorization', 'a', true)",
            "SELECT set_config('app.', 'a', true)",
            "SELECT set_config('.x', 'a', true)",
            "SELECT set_config('app.tenant', $1, true)",
            "SELECT set_config('app.tenant', 'a', true), 1",
            "SELECT set_config('app.tenant', 'a', true) FROM users",
            "SELECT f.set_config('app.tenant', 'a', true)",
            "SELECT set_config('search_path', 'a', true), set_config('app.x', 'a', true)",
        ] {
            assert_eq!(setting_set(t), None, "{t}");
        }
    }
}
