//! SQL-level prepared statements as the guard sees them: what an `EXECUTE name` runs (every
//! statement prepared under that name since its DEALLOCATE), remembered from `PREPARE` at once
//! and forgotten on `DEALLOCATE` once the server confirms it (`session::names`).
//!
//! Also what a protocol Bind of a prepared statement may run before any Execute (issue 11,
//! red-team F4): the server converts the parameters' values to their types at Bind — a domain
//! whose `CHECK` calls a user function runs it — and plans the statement there, folding calls
//! of functions marked `IMMUTABLE` (a user function may be mislabeled). Such a Bind is judged
//! and counted like a call of a function ([`Guard::binds_code`], [`Guard::judge_as_call`]).
//!
//! Owns: `SessionInfo::prepared` and `unprepared`'s updates, and which Binds run code. Does not
//! own: the protocol-level statements and portals (`session::statements`).

use super::{Guard, SessionInfo};
use crate::analyze::{Opaque, Statement};
use std::sync::atomic::Ordering;

/// The statements with every SQL-level EXECUTE followed by what it runs (all statements ever
/// prepared under that name since its DEALLOCATE), or by an opaque item when it is unknown.
pub(super) fn with_prepared(statements: &[Statement], info: &SessionInfo) -> Vec<Statement> {
    let mut expanded: Vec<Statement> = Vec::with_capacity(statements.len());
    for st in statements {
        expanded.push(st.clone());
        for ex in &st.executes {
            match info.prepared.get(&ex.name) {
                Some(list) => {
                    expanded.extend(list.iter().map(|p| {
                        let mut p = Statement { text: st.text.clone(), offset: st.offset, ..p.clone() };
                        // `EXPLAIN ANALYZE EXECUTE` of a write executes it.
                        if ex.explained && !p.writes.is_empty() {
                            p.opaque.push(Opaque::ExplainAnalyze);
                        }
                        p
                    }));
                    // And each one's own text (the PREPARE's, or the Parse's), with nothing
                    // else: what it mentions and inserts into is judged against the catalog as
                    // it is now, not as it was when it was prepared (red-team F7, F8).
                    expanded.extend(list.iter().filter(|p| p.text != st.text).map(|p| Statement {
                        text: p.text.clone(),
                        offset: st.offset,
                        ..Default::default()
                    }));
                }
                None => expanded.push(Statement {
                    text: st.text.clone(),
                    offset: st.offset,
                    opaque: vec![Opaque::UnknownPrepared(ex.name.clone())],
                    ..Default::default()
                }),
            }
        }
    }
    expanded
}

/// A PREPARE is remembered at once (judging one statement too many is only stricter); a
/// DEALLOCATE only once the server confirms it (see `session::names`).
pub(super) fn remember_prepared(statements: &[Statement], info: &mut SessionInfo) {
    for st in statements {
        if let Some((name, inner)) = &st.prepare {
            let list = info.prepared.entry(name.clone()).or_default();
            if !list.contains(inner) {
                list.push((**inner).clone());
            }
        }
        match &st.deallocate {
            Some(Some(name)) => {
                let n = info.prepared.get(name).map_or(0, Vec::len);
                info.unprepared.push((name.clone(), n));
            }
            Some(None) => {
                let all: Vec<(String, usize)> = info.prepared.iter().map(|(k, v)| (k.clone(), v.len())).collect();
                info.unprepared.extend(all);
                // Every name, also those blastwall keeps no text of (`session::names`).
                info.unprepared.push((String::new(), 0));
            }
            None => {}
        }
    }
}

impl Guard {
    /// Whether a protocol Bind of the statement `sql` (a Parse's text with its declared
    /// parameter types, or a `PREPARE`'s text) may run a user function before any Execute:
    /// it mentions a hidden caller of one (read or written: a view whose column calls a
    /// function mislabeled `IMMUTABLE` is folded at Bind too), or calls one (`counted`: the
    /// statement was judged to be counted, the only way a call of a user function is judged),
    /// or a parameter's type converts its value by running one — declared by OID, or, in a
    /// database that has such types at all, inferred by the server (the inferred type is not in
    /// the client's text: fail closed). Nothing is looked at while the policy judges no calls,
    /// and in a database with no hidden callers one lookup decides.
    pub fn binds_code(&self, sql: &[u8], param_types: &[u32], info: &SessionInfo, counted: bool) -> bool {
        if info.database.is_empty() || !self.calls_matter.load(Ordering::Acquire) {
            return false;
        }
        if info.taint.runs_code() && super::taint::may_run_code(sql) {
            return true;
        }
        let whose = super::hidden::whose(info);
        let by_set = self
            .catalog
            .binds_code_cached(&info.database, whose, &info.hidden, sql, param_types, |set| {
                if set.is_empty() {
                    return false;
                }
                // A type declared by OID may be another session's temporary one, which no
                // name of this session reaches (seventy-first pass F3): looked up whatever
                // this session's own set holds.
                let converts = param_types.iter().any(|t| set.input_runs_code(*t))
                    || (set.any_input_runs_code() && param_types.len() < highest_parameter(sql));
                converts || set.mentioned_at_all(&String::from_utf8_lossy(sql))
            })
            .unwrap_or(true);
        by_set || (counted && self.statements_of(sql, info, None).iter().any(|s| s.calls_functions))
    }

    /// Whether the server's analysis of a protocol Parse of `sql` may run a user function
    /// (third adversarial pass F5): parse analysis converts a literal to the type it is cast
    /// to, compared with or assigned to (`coerce_type` → the type's input function), and the
    /// input of an array, row or range type over a domain runs the domain's `CHECK`
    /// (`'{1}'::d[]`, `'(1)'::t`). Only the statements the server analyzes at Parse can
    /// (queries, EXPLAIN, DECLARE, CREATE TABLE AS, CALL; other utility statements are
    /// analyzed when they run). In a database that has such a type, one whose text mentions a
    /// hidden caller (the type, a relation with a column of it, anything over it: by name in
    /// any case, as the session's search path may resolve it) or calls a function (an
    /// argument converted to its parameter's type) may, when it has a string literal (the only
    /// thing the input of a type reads at Parse). When the database's set is not known
    /// (not asked yet, or `unsure` in this batch, where DDL before it may have made such a
    /// type), any such statement with a string literal may; a set learned but stale is used
    /// where `stale_ok` (the middle of a batch, where nothing can be asked: as every other
    /// judgement there assumes it, `catalog::Catalog::assume_hidden_callers`). The planner
    /// does not run at Parse: the rest is the Bind's (`binds_code`).
    pub fn parses_code(&self, sql: &[u8], info: &SessionInfo, unsure: bool, stale_ok: bool) -> bool {
        if !self.code_matters(info) {
            return false;
        }
        let judge = |set: &crate::catalog::HiddenCallers| {
            let unknown = set.is_everything();
            (!unsure && !unknown).then(|| {
                let converts = set.any_input_runs_code();
                (converts, converts && set.mentioned_at_all(&String::from_utf8_lossy(sql)))
            })
        };
        let whose = super::hidden::whose(info);
        let known = match self.catalog.with_hidden_callers_cached(&info.database, whose, &info.hidden, judge) {
            Some(known) => known,
            None if stale_ok => self.catalog.with_last_hidden_callers(&info.database, whose, judge).flatten(),
            None => None,
        };
        let may = match known {
            Some((false, _)) => false,
            Some((true, true)) => true,
            Some((true, false)) => self.statements_of(sql, info, None).iter().any(|s| s.calls_functions),
            None => has_string_literal(sql),
        };
        // Only a string literal is converted by a type's input at Parse (a parameter has no
        // value yet; a number is cast when the statement runs): a text without one runs
        // nothing there (seventy-seventh pass FP: asyncpg's Parse, Describe, Flush of `DELETE
        // … WHERE email = $2`, beside a domain `email`, was refused).
        may && has_string_literal(sql) && analyzed_at_parse(sql)
    }

    /// Whether a Parse of `sql` may need the database's hidden callers to be judged for what
    /// its analysis runs (`parses_code`): a statement analyzed at Parse with a string literal.
    pub fn parse_may_convert(&self, sql: &[u8], info: &SessionInfo) -> bool {
        self.code_matters(info) && has_string_literal(sql) && analyzed_at_parse(sql)
    }

    /// Whether the session's database may have a type whose input runs a user function (not
    /// known: yes; a stale answer where `stale_ok`, as in `parses_code`), while the policy
    /// judges calls.
    pub fn inputs_run_code(&self, info: &SessionInfo, stale_ok: bool) -> bool {
        let (database, whose) = (&info.database, super::hidden::whose(info));
        let runs = |set: &crate::catalog::HiddenCallers| set.any_input_runs_code();
        let known = match self.catalog.with_hidden_callers_cached(database, whose, &info.hidden, runs) {
            None if stale_ok => self.catalog.with_last_hidden_callers(database, whose, runs),
            known => known,
        };
        self.code_matters(info) && known.unwrap_or(true)
    }

    /// Whether the code a statement may run matters to the judgement: the session has a
    /// database and the policy judges calls.
    pub fn code_matters(&self, info: &SessionInfo) -> bool {
        !info.database.is_empty() && self.calls_matter.load(Ordering::Acquire)
    }

    /// Whether the session's database's hidden callers are known and fresh for this session
    /// (else they are to be asked before a judgement that needs them).
    pub fn hidden_callers_known(&self, info: &SessionInfo) -> bool {
        super::hidden::with_callers(&self.catalog, info, |_| ()).is_some()
    }

    /// Judges a statement as a call of a function whose body is unseen: what a Bind that runs
    /// code is (`binds_code`), whatever the statement's own verdict.
    pub fn judge_as_call(&self, sql: &[u8], info: &mut SessionInfo) -> super::Judged {
        self.judge_as_code(sql, info, false)
    }

    /// [`Guard::judge_as_call`] of a statement whose Parse or Bind converts a value by a type
    /// the client may give by OID (`binds_code`, `parses_code`): whoever's code that type runs
    /// — another role's domain, another session's temporary one — the caller steered to it, as
    /// with `pg_catalog.domain_in` (`analyze::RUNNERS`): what it changes in a table with text
    /// rules is explained by nothing (seventy-first pass F3, F4: a Bind typed as such a domain
    /// deleted ten users of a range, within the row limit, and was kept).
    pub fn judge_as_conversion(&self, sql: &[u8], info: &mut SessionInfo) -> super::Judged {
        self.judge_as_code(sql, info, true)
    }

    fn judge_as_code(&self, sql: &[u8], info: &mut SessionInfo, steered: bool) -> super::Judged {
        let mut st =
            Statement { text: String::from_utf8_lossy(sql).into_owned(), calls_functions: true, ..Default::default() };
        if steered {
            st.calls = vec!["*".to_string()];
            st.qualified_calls = vec!["domain_in".to_string()];
        }
        let statements = std::slice::from_ref(&st);
        let policy = self.policy();
        let mut decision = crate::policy::decide(statements, info.view(), &policy);
        if steered {
            let unknown = super::reached::Unknown {
                unverified: &[],
                own: info.taint.holds_functions().then_some(&info.taint),
                movable: false,
                redirects: info.taint.may_redirect(),
            };
            let none = |_: &str, _: &str| None;
            decision.reached = super::reached::reached(
                statements,
                &|_, _| None,
                &self.catalog,
                &info.database,
                &policy,
                unknown,
                &none,
            );
        }
        let scan = super::Scan::UNKNOWN;
        let (verdict, decision) = self.judge_decided(sql, &scan, statements, decision, info);
        let facts = super::render::audit_facts(&verdict, &decision, st.text.clone(), Vec::new());
        super::Judged { verdict, facts, scan }
    }
}

/// Whether the server analyzes a statement of `sql` when it is parsed (`transformStmt`):
/// queries, EXPLAIN, DECLARE, CREATE TABLE AS and CALL; other utility statements only when
/// they run. `PREPARE name AS …` (a text `SessionInfo::prepared` keeps) by the statement it
/// prepares. A text that does not parse here counts as one that is.
fn analyzed_at_parse(sql: &[u8]) -> bool {
    use pg_query::NodeEnum as N;
    fn analyzed(node: Option<&N>) -> bool {
        match node {
            Some(N::PrepareStmt(p)) => analyzed(p.query.as_ref().and_then(|q| q.node.as_ref())),
            None => true,
            Some(n) => matches!(
                n,
                N::SelectStmt(_)
                    | N::InsertStmt(_)
                    | N::UpdateStmt(_)
                    | N::DeleteStmt(_)
                    | N::MergeStmt(_)
                    | N::ExplainStmt(_)
                    | N::DeclareCursorStmt(_)
                    | N::CreateTableAsStmt(_)
                    | N::CallStmt(_)
            ),
        }
    }
    let Ok(parsed) = crate::analyze::budget::parse(&String::from_utf8_lossy(sql), 0) else { return true };
    parsed.protobuf.stmts.iter().any(|s| analyzed(s.stmt.as_ref().and_then(|n| n.node.as_ref())))
}

/// Whether a text may hold a string constant (a quote, or a dollar quote: `$$`, `$tag$`;
/// `$1` is a parameter): what parse analysis converts with a type's input function
/// (conservative: also inside comments and identifiers).
fn has_string_literal(sql: &[u8]) -> bool {
    sql.contains(&b'\'')
        || sql
            .windows(2)
            .any(|w| w[0] == b'$' && (w[1] == b'$' || w[1].is_ascii_alphabetic() || w[1] == b'_' || w[1] >= 0x80))
}

/// The highest `$n` a text refers to (conservative: also inside strings and comments); `n`
/// past 65,535 counts as 65,535.
fn highest_parameter(sql: &[u8]) -> usize {
    let mut highest = 0usize;
    let mut i = 0;
    while let Some(at) = sql[i..].iter().position(|b| *b == b'$') {
        let start = i + at + 1;
        let digits = sql[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let n = sql[start..start + digits].iter().fold(0usize, |n, d| (n * 10 + usize::from(d - b'0')).min(65_535));
        highest = highest.max(n);
        i = start + digits;
    }
    highest
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_analysis_and_string_literals_are_told() {
        assert!(super::analyzed_at_parse(b"SELECT '{1}'::d[]") && super::analyzed_at_parse(b"EXPLAIN SELECT 1"));
        assert!(super::analyzed_at_parse(b"CREATE TABLE t AS SELECT 1") && super::analyzed_at_parse(b"CALL p('x')"));
        assert!(super::analyzed_at_parse(b"INSERT INTO t VALUES ('{1}')") && super::analyzed_at_parse(b"not sql"));
        assert!(!super::analyzed_at_parse(b"CREATE DOMAIN d AS int CHECK (f(VALUE))"));
        assert!(
            !super::analyzed_at_parse(b"CREATE VIEW v AS SELECT '{1}'::d[]") && !super::analyzed_at_parse(b"SET x = 1")
        );
        assert!(super::analyzed_at_parse(b"PREPARE p AS SELECT 1"));
        assert!(super::has_string_literal(b"SELECT '1'") && super::has_string_literal(b"SELECT $$1$$"));
        assert!(super::has_string_literal(b"SELECT $q$1$q$") && !super::has_string_literal(b"SELECT $1::int, 2"));
    }

    #[test]
    fn the_highest_parameter_is_found_anywhere() {
        assert_eq!(super::highest_parameter(b"SELECT 1"), 0);
        assert_eq!(super::highest_parameter(b"SELECT $1, $12::int, $$x$$, $2"), 12);
        assert_eq!(super::highest_parameter(b"SELECT $99999999999999999999"), 65_535);
        assert_eq!(super::highest_parameter(b"$"), 0);
    }
}
