//! What a write to a relation name may run besides its own statement, for `guard::reached`:
//! - whether it runs someone's code that may write anywhere: an enabled user trigger, a
//!   row-security policy, a domain's constraint, a default, `CHECK` or index that calls a
//!   function or operator outside `pg_catalog`, a foreign table — on any relation of that name,
//!   on its inheritance children and partitions (at any depth), or on a table a view of that
//!   name reads (at any depth). A disabled trigger, a built-in domain, row security with no
//!   such policy run nothing (fourteenth adversarial pass F1: each switched the count's check
//!   off);
//! - the relations the rules on the way write or read, by the event of the first rule (`ev_type`:
//!   `2` UPDATE, `3` INSERT, `4` DELETE, `*` any; a view's `_RETURN` rule is a SELECT and not
//!   listed), following foreign keys' actions, views and rule chains (`chain`): a rule's actions
//!   are statements the server runs in the write's place, whose text blastwall does not judge,
//!   so a rule that reaches a policy table with text rules refuses the write before it runs
//!   (`unjudged-write`; fifteenth pass N2–N4: a key's cascade into a table with a rule, a rule
//!   writing a table whose rule writes `users`, a rule writing a view over `users`).
//!
//! Asked in the same catalog question as the relation's other indirect effects (`super::query`),
//! cached and forgotten with them.
//!
//! Owns: the query's columns, their answers and their cache. Does not own: what follows
//! (`guard::reached`).

use dashmap::DashMap;
use std::time::Instant;

/// What a write to a name may run: code, and its rules' (event, relation OID) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runs {
    /// Code runs when it is written (an INSERT, UPDATE, MERGE).
    pub code: bool,
    /// Code runs when its rows are deleted.
    pub code_on_delete: bool,
    pub rules: Vec<(u8, u32)>,
}

/// (database, relation name) → what a write to it runs, when learned.
#[derive(Default)]
pub(super) struct Cache(DashMap<(String, String), (Runs, Instant)>);

impl Cache {
    pub(super) fn learn(&self, database: &str, name: &str, runs: Runs, at: Instant) {
        self.0.insert((database.to_string(), name.to_string()), (runs, at));
    }

    pub(super) fn fresh(&self, database: &str, name: &str) -> Option<Runs> {
        let e = self.0.get(&(database.to_string(), name.to_string()))?;
        (e.1.elapsed() < super::TTL).then(|| e.0.clone())
    }

    pub(super) fn forget(&self, database: &str) {
        self.0.retain(|(db, _), _| db != database);
    }
}

/// `w(rel)`: the relations of the name (`c`), their descendants, and what views among them read,
/// at any depth.
fn written() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "w(rel) AS (SELECT c2.oid FROM pg_catalog.pg_class c2 WHERE c2.relname{eq}c.relname \
         UNION SELECT n.rel FROM w CROSS JOIN LATERAL (\
           SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}w.rel \
           UNION ALL SELECT d.refobjid FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
             ON d.classid{eq}'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid{eq}r.oid \
             AND d.refclassid{eq}'pg_catalog.pg_class'::pg_catalog.regclass \
           WHERE r.ev_class{eq}w.rel AND d.refobjid OPERATOR(pg_catalog.<>) w.rel \
             AND EXISTS (SELECT FROM pg_catalog.pg_class v WHERE v.oid{eq}w.rel AND v.relkind{eq}'v'::pg_catalog.\"char\")\
         ) n(rel))"
    )
}

/// A `pg_depend` row `d` on a function or operator outside `pg_catalog`.
pub(super) fn user_dependency() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass");
    format!(
        "((d.refclassid{eq}{proc} AND EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.oid{eq}d.refobjid \
             AND p.pronamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid)) \
         OR (d.refclassid{eq}{op} AND EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oid{eq}d.refobjid \
             AND o.oprnamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid)))",
        proc = cls("pg_proc"),
        op = cls("pg_operator"),
    )
}

/// `code(rel, del)`: the relations whose rows' change runs code that may write (see the module),
/// and whether a DELETE runs it (a trigger on DELETE, a row-security policy; a default, a
/// domain's or table's `CHECK`, an index expression and a trigger on other events run only on
/// an INSERT or UPDATE: fifteenth pass N8).
fn code() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass");
    let user = user_dependency();
    format!(
        "code(rel, del) AS (SELECT g.tgrelid, (g.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 8) OPERATOR(pg_catalog.<>) 0 \
             FROM pg_catalog.pg_trigger g WHERE NOT g.tgisinternal \
             AND g.tgenabled OPERATOR(pg_catalog.<>) 'D'::pg_catalog.\"char\" \
           UNION SELECT a.attrelid, false FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_constraint k \
             ON k.contypid{eq}a.atttypid JOIN pg_catalog.pg_depend d ON d.classid{eq}{con} AND d.objid{eq}k.oid \
             WHERE NOT a.attisdropped AND {user} \
           UNION SELECT p.polrelid, true FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_depend d \
             ON d.classid{eq}{pol} AND d.objid{eq}p.oid WHERE {user} \
           UNION SELECT s.rel, false FROM ({stored}) s(rel))",
        stored = stored_expressions(),
        con = cls("pg_constraint"),
        pol = cls("pg_policy"),
    )
}

/// A query of the tables whose default, `CHECK` or index expression
/// calls a function or operator outside `pg_catalog`.
pub(super) fn stored_expressions() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass");
    let user = user_dependency();
    format!(
        "SELECT ad.adrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad \
           ON d.classid{eq}{attrdef} AND d.objid{eq}ad.oid WHERE {user} \
         UNION SELECT k.conrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_constraint k \
           ON d.classid{eq}{con} AND d.objid{eq}k.oid WHERE {user} \
         UNION SELECT x.indrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_index x \
           ON d.classid{eq}{class} AND d.objid{eq}x.indexrelid WHERE {user}",
        attrdef = cls("pg_attrdef"),
        con = cls("pg_constraint"),
        class = cls("pg_class"),
    )
}

/// The two columns of `super::query` (grouped by `c.relname`): whether code runs (see the
/// module), and the rules' `event:oid` pairs, comma-separated. Every operator and function is
/// `pg_catalog`'s.
pub(super) fn columns() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "(WITH RECURSIVE {code}, {w}, f(rel) AS (SELECT w.rel FROM w JOIN pg_catalog.pg_class t ON t.oid{eq}w.rel \
             WHERE t.relkind{eq}'f'::pg_catalog.\"char\") \
           SELECT pg_catalog.concat(EXISTS (SELECT FROM w WHERE w.rel{eq}ANY (SELECT code.rel FROM code UNION ALL SELECT f.rel FROM f))::pg_catalog.text, \
             ',', EXISTS (SELECT FROM w WHERE w.rel{eq}ANY (SELECT code.rel FROM code WHERE code.del UNION ALL SELECT f.rel FROM f))::pg_catalog.text)), \
         (WITH RECURSIVE {chain} SELECT pg_catalog.string_agg(DISTINCT pg_catalog.concat(x.ev, ':', x.rel), ',') \
           FROM x WHERE NOT x.ev{eq}ANY (ARRAY['0', 'f']::pg_catalog.text[]))",
        code = code(),
        w = written(),
        chain = chain(),
    )
}

/// `x(rel, ev)`: every relation a write to the name (`c`) may reach — its relations, their
/// descendants, what views among them read, the tables foreign keys' actions change, and what
/// rules write or read — with how: `0` the write itself, `f` after a foreign key's action,
/// else the event of the first rule on the way (`2`, `3`, `4`; `*`: a rule reached after a
/// foreign key's action, of any event). Rules chain (a rule's action fires the rules of what
/// it writes) and reach through views and keys; a rule's references to its own table (`OLD`,
/// `NEW`) are not listed, nor a disabled rule (`ALTER TABLE … DISABLE RULE`: fifteenth pass
/// FP2; one enabled again in the same message is left to the count).
fn chain() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let rule_dep = format!(
        "pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ON d.classid{eq}'pg_catalog.pg_rewrite'::pg_catalog.regclass \
           AND d.objid{eq}r.oid AND d.refclassid{eq}'pg_catalog.pg_class'::pg_catalog.regclass"
    );
    format!(
        "x(rel, ev) AS (SELECT c2.oid, '0'::pg_catalog.text FROM pg_catalog.pg_class c2 WHERE c2.relname{eq}c.relname \
         UNION SELECT n.rel, n.ev FROM x CROSS JOIN LATERAL (\
           SELECT i.inhrelid, x.ev FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}x.rel \
           UNION ALL SELECT d.refobjid, x.ev FROM {rule_dep} \
             WHERE r.ev_class{eq}x.rel AND r.ev_type{eq}'1'::pg_catalog.\"char\" AND d.refobjid OPERATOR(pg_catalog.<>) x.rel \
           UNION ALL SELECT k.conrelid, CASE WHEN x.ev{eq}'0' THEN 'f' ELSE x.ev END FROM pg_catalog.pg_constraint k \
             WHERE k.contype{eq}'f'::pg_catalog.\"char\" AND k.confrelid{eq}x.rel \
             AND (k.confdeltype{eq}ANY ('{{c,n,d}}'::pg_catalog.\"char\"[]) OR k.confupdtype{eq}ANY ('{{c,n,d}}'::pg_catalog.\"char\"[])) \
           UNION ALL SELECT d.refobjid, CASE WHEN x.ev{eq}'0' THEN r.ev_type::pg_catalog.text WHEN x.ev{eq}'f' THEN '*' ELSE x.ev END \
             FROM {rule_dep} WHERE r.ev_class{eq}x.rel AND r.ev_type OPERATOR(pg_catalog.<>) '1'::pg_catalog.\"char\" \
             AND r.ev_enabled OPERATOR(pg_catalog.<>) 'D'::pg_catalog.\"char\" \
             AND d.refobjid OPERATOR(pg_catalog.<>) r.ev_class\
         ) n(rel, ev))"
    )
}

/// Reads the columns (`exists`: the name has a row). What cannot be read: code runs, and a
/// rule of every event reaches OID 0 (no table: judged as reaching every one).
pub(super) fn answer(code: Option<&str>, rules: Option<&str>, exists: bool) -> Runs {
    if !exists {
        return Runs::default();
    }
    // `any,on delete` (`true`/`false` each); anything else: code runs.
    let (any, del) = code.and_then(|c| c.split_once(',')).unwrap_or(("true", "true"));
    let mut out = Runs { code: any != "false", code_on_delete: del != "false", rules: Vec::new() };
    for pair in rules.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        match pair.split_once(':').and_then(|(e, o)| Some((e.bytes().next()?, o.parse::<u32>().ok()?))) {
            Some(p) => out.rules.push(p),
            None => out.rules.extend([(b'2', 0), (b'3', 0), (b'4', 0)]),
        }
    }
    out
}

impl super::Catalog {
    /// What a write to `name` may run (see the module); `None` when not known and fresh (ask
    /// [`super::Question::Indirect`]).
    pub fn runs(&self, database: &str, name: &str) -> Option<Runs> {
        self.code.fresh(database, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_what_cannot_be_read_reaches_everything() {
        assert_eq!(answer(Some("true"), None, false), Runs::default());
        assert_eq!(answer(Some("false,false"), Some("4:16384,*:16390"), true).rules, [(b'4', 16384), (b'*', 16390)]);
        let r = answer(Some("true,false"), None, true);
        assert!(r.code && !r.code_on_delete);
        assert!(!answer(Some("false,false"), None, true).code);
        assert!(answer(None, None, true).code_on_delete);
        assert_eq!(answer(Some("false,false"), Some("x"), true).rules, [(b'2', 0), (b'3', 0), (b'4', 0)]);
    }
}
