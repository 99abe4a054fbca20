//! Whose hidden callers a session counts. A temporary object exists only on the server
//! connection that made it: another session cannot resolve a name to it (nor, without being a
//! superuser, name its `pg_temp_N` schema), so one session's temporary view named `users`, or
//! its `pg_temp.lower`, must not send every other session's `users` or `lower` through the
//! pre-check. The database's answer (`hidden::query`, asked on one session, shared by all) is
//! kept in two parts: the callers outside temporary schemas, which every session counts, and
//! those of each temporary schema, grouped by schema and by the roles that own them (with the
//! roles that are members of those).
//!
//! A session counts a temporary schema's callers when the schema is its own (learned on its
//! own connection: `pg_my_temp_schema()`, asked again after each message of it that may have
//! made one — DDL, a function call — and before its next statement is judged, so that what it
//! made, committed or not, is known), or when its role owns them or is a member of their
//! owner: a pooler between blastwall and the server (PgBouncer pools by database and role) may
//! hand it the connection another session of that role filled. Others' callers stay reachable
//! only by a text that names their schema, or a Bind that declares one of their types by OID.
//!
//! Owns: that split, the session's record of its temporary schema ([`OwnTemp`]), and the
//! merged set each kind of session sees. Does not own: the query or the mention tests
//! (`hidden`), nor when a session asks (`guard`).

use super::hidden::{self, HiddenCallers};
use std::sync::Arc;

/// A session's temporary schema, as far as hidden callers care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OwnTemp {
    /// It has none: a new server session has none until it makes a temporary object.
    #[default]
    None,
    /// `pg_temp_N`, learned on the session.
    Named(String),
    /// It ran something that may have made one since it last asked: ask before judging.
    Unknown,
    /// It could not be asked (a failed transaction, mid-batch): every temporary schema's
    /// callers count as its own until this time ([`hidden::coarse_ms`]), then it is asked.
    Assumed(u64),
}

impl OwnTemp {
    /// After a message that may create or drop objects (DDL, a function call): the session's
    /// temporary objects are asked for again before its next statement is judged.
    pub fn may_have_changed(&mut self) {
        *self = OwnTemp::Unknown;
    }

    /// Whether the session must ask before its answer can be used.
    pub(super) fn must_ask(&self) -> bool {
        match self {
            OwnTemp::Unknown => true,
            OwnTemp::Assumed(until) => hidden::coarse_ms() >= *until,
            _ => false,
        }
    }
}

/// Who is asking: the session's temporary schema and its role (`SessionInfo::user`).
#[derive(Debug, Clone, Copy)]
pub struct Whose<'a> {
    pub temp: &'a OwnTemp,
    pub user: &'a str,
}

/// A database's hidden callers as learned, split as the module says.
#[derive(Debug, Default)]
pub struct Answer {
    /// What every session counts: the callers outside temporary schemas, and the others'
    /// schemas and type OIDs (`HiddenCallers::note_foreign`).
    base: Arc<HiddenCallers>,
    /// Per temporary schema (`pg_temp_N`, its toast schema folded in) and owner: the roles
    /// that own them or are members of their owner, and the callers.
    temp: Vec<(String, Vec<String>, HiddenCallers)>,
    /// The sets merged for a kind of session, made when first asked: (schema, role) → set.
    merged: dashmap::DashMap<(String, String), Arc<HiddenCallers>>,
}

impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base && self.temp == other.temp
    }
}

impl Answer {
    /// The answer assumed when the catalog cannot be asked: every text mentions one.
    pub fn everything() -> Self {
        Answer { base: Arc::new(HiddenCallers::everything()), ..Default::default() }
    }

    /// Reads the rows of `hidden::query` (name, kind, sequence, temporary schema, its owner;
    /// rows of kind `g`: a role, `g`, a role granted to it; and one row of kind `m`: the asking
    /// session's temporary schema, or empty): the answer, and the asking session's schema.
    pub fn read(rows: &[Vec<Option<String>>]) -> (Answer, OwnTemp) {
        let mut base = HiddenCallers::default();
        let mut temp: Vec<(String, Vec<String>, HiddenCallers)> = Vec::new();
        let mut mine = OwnTemp::None;
        let col = |r: &[Option<String>], i: usize| r.get(i).and_then(|v| v.as_deref()).map(str::to_string);
        let grants: Vec<(String, String)> = rows
            .iter()
            .filter(|r| col(r, 1).as_deref() == Some("g"))
            .filter_map(|r| Some((col(r, 0)?, col(r, 2)?)))
            .collect();
        for r in rows {
            let col = |i: usize| col(r, i);
            match col(1).as_deref() {
                Some("g") => continue,
                Some("m") => {
                    mine = col(0).filter(|s| !s.is_empty()).map_or(OwnTemp::None, OwnTemp::Named);
                    continue;
                }
                _ => {}
            }
            let Some(schema) = col(3) else {
                base.add(r);
                continue;
            };
            let schema = schema.replacen("pg_toast_temp_", "pg_temp_", 1);
            let owners = members(col(4).unwrap_or_default(), &grants);
            match temp.iter_mut().find(|(s, o, _)| *s == schema && *o == owners) {
                Some((_, _, h)) => h.add(r),
                None => {
                    let mut h = HiddenCallers::default();
                    h.add(r);
                    temp.push((schema, owners, h));
                }
            }
        }
        temp.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (schema, _, h) in &temp {
            base.note_foreign(schema, h);
        }
        (Answer { base: Arc::new(base), temp, merged: Default::default() }, mine)
    }

    /// `f` of the set a session counts.
    pub fn with<R>(&self, whose: Whose<'_>, f: impl FnOnce(&HiddenCallers) -> R) -> R {
        if self.temp.is_empty() {
            return f(&self.base);
        }
        f(&self.set_for(whose))
    }

    /// The set a session counts (see [`Answer::with`]), shared.
    pub fn set_for(&self, whose: Whose<'_>) -> Arc<HiddenCallers> {
        if self.temp.is_empty() {
            return self.base.clone();
        }
        let (schema, everyone) = match whose.temp {
            OwnTemp::Named(s) => (s.as_str(), false),
            OwnTemp::Assumed(_) | OwnTemp::Unknown => ("", true),
            OwnTemp::None => ("", false),
        };
        let counts = |(s, owners, _): &&(String, Vec<String>, HiddenCallers)| {
            everyone || s == schema || owners.iter().any(|o| o == whose.user)
        };
        if !self.temp.iter().any(|t| counts(&t)) {
            return self.base.clone();
        }
        let key = (if everyone { "*" } else { schema }.to_string(), whose.user.to_string());
        if let Some(set) = self.merged.get(&key) {
            return set.clone();
        }
        let mut set = HiddenCallers::clone(&self.base);
        for (_, _, h) in self.temp.iter().filter(counts) {
            set.absorb(h);
        }
        let set = Arc::new(set);
        self.merged.insert(key, set.clone());
        set
    }
}

/// `owner` and the roles that are members of it, directly or through other roles (`grants`:
/// member, role granted), sorted.
fn members(owner: String, grants: &[(String, String)]) -> Vec<String> {
    let mut found = vec![owner];
    let mut i = 0;
    while let Some(role) = found.get(i).cloned() {
        for (member, _) in grants.iter().filter(|(_, granted)| *granted == role) {
            if !found.contains(member) {
                found.push(member.clone());
            }
        }
        i += 1;
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: &str, schema: Option<&str>, owners: Option<&str>) -> Vec<Option<String>> {
        vec![Some(name.into()), Some(kind.into()), None, schema.map(String::from), owners.map(String::from)]
    }

    #[test]
    fn a_sessions_temporary_callers_count_for_it_and_its_role_only() {
        let grant =
            |member: &str, role: &str| vec![Some(member.into()), Some("g".into()), Some(role.into()), None, None];
        let rows = vec![
            row("purging", "r", None, None),
            row("users", "r", Some("pg_temp_3"), Some("app")),
            row("lower", "r", Some("pg_temp_3"), Some("app")),
            row("16999", "t", Some("pg_temp_3"), Some("app")),
            row("orders", "w", Some("pg_toast_temp_4"), Some("etl")),
            vec![Some("pg_temp_4".into()), Some("m".into()), None, None, None],
            // app_admin is a member of app through staff; reporting of nothing.
            grant("staff", "app"),
            grant("app_admin", "staff"),
            grant("reporting", "readers"),
        ];
        let (a, mine) = Answer::read(&rows);
        assert_eq!(mine, OwnTemp::Named("pg_temp_4".into()));
        let sees = |temp: &OwnTemp, user: &str, text: &str, writes: bool| {
            a.with(Whose { temp, user }, |h| h.mentioned_in(text, writes))
        };
        // Another role's session with no temporary schema: only the permanent caller, and a
        // text that names another session's schema.
        let none = OwnTemp::None;
        assert!(sees(&none, "reporting", "SELECT * FROM purging", false));
        assert!(!sees(&none, "reporting", "SELECT lower(email) FROM users", false));
        assert!(!sees(&none, "reporting", "INSERT INTO orders VALUES (1)", true));
        assert!(sees(&none, "postgres", "SELECT * FROM pg_temp_3.users", false));
        assert!(!sees(&none, "reporting", "SELECT * FROM pg_temp_30", false));
        // Its owner's role, or a member of that role: a pooler may hand it that connection.
        assert!(sees(&none, "app", "SELECT * FROM users", false));
        assert!(sees(&none, "app_admin", "SELECT lower('x')", false));
        assert!(!sees(&none, "readers", "SELECT * FROM users", false));
        // The session whose schema it is (pg_toast_temp_4 is pg_temp_4's), whatever its role.
        let own = OwnTemp::Named("pg_temp_4".into());
        assert!(sees(&own, "postgres", "INSERT INTO orders VALUES (1)", true));
        assert!(!sees(&own, "postgres", "SELECT * FROM orders", false));
        // Assumed: everyone's count.
        assert!(sees(&OwnTemp::Assumed(u64::MAX), "x", "SELECT * FROM users", false));
        // Types: another session's only by OID, never as "some type runs code".
        let types = |temp: &OwnTemp, user: &str| {
            a.with(Whose { temp, user }, |h| (h.input_runs_code(16999), h.any_input_runs_code()))
        };
        assert_eq!(types(&none, "reporting"), (true, false));
        assert_eq!(types(&none, "app"), (true, true));
    }

    #[test]
    fn a_session_that_ran_ddl_asks_again_and_an_assumption_lasts_until_its_time() {
        let mut t = OwnTemp::Named("pg_temp_3".into());
        assert!(!t.must_ask());
        t.may_have_changed();
        assert!(t.must_ask());
        assert!(!OwnTemp::Assumed(u64::MAX).must_ask() && OwnTemp::Assumed(0).must_ask());
        assert!(!OwnTemp::None.must_ask());
        // Without temporary callers every session sees the same set.
        let (a, mine) = Answer::read(&[row("v", "r", None, None)]);
        assert_eq!(mine, OwnTemp::None);
        assert!(a.with(Whose { temp: &OwnTemp::None, user: "x" }, |h| h.mentioned_in("SELECT * FROM v", false)));
        assert!(a.merged.is_empty());
    }
}
