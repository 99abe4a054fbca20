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
    /// A partitioned table is among its relations: an UPDATE may move a row to another
    /// partition (deleted from one, inserted into another).
    pub partitioned: bool,
    pub rules: Vec<(u8, u32)>,
    /// The names those relations had when asked (OID, schema, name): a policy table is found
    /// by its name too, where the OIDs blastwall knows for it are another database's (one
    /// dropped and made again under the same name: sixteenth pass A7d).
    pub names: Vec<(u32, String, String)>,
    /// The catalog could not be read (the question failed): nothing above is known.
    pub unanswered: bool,
}

/// (database, relation name) → what a write to it runs, when learned.
#[derive(Default)]
pub(super) struct Cache(DashMap<(String, String), (Runs, Instant)>);

impl Cache {
    pub(super) fn learn(&self, database: &str, name: &str, runs: Runs, at: Instant) {
        self.0.insert((database.to_string(), name.to_string()), (runs, at));
    }

    /// Whether the answer was learned at or after `since` (`Some(false)`: but the catalog
    /// could not be read); `None`: not learned since.
    pub(super) fn answered_since(&self, database: &str, name: &str, since: Instant) -> Option<bool> {
        let e = self.0.get(&super::namekey::of(database, name) as &dyn super::namekey::Parts<2>)?;
        (e.1 >= since).then_some(!e.0.unanswered)
    }

    /// The last answer, of any age (DDL through blastwall forgets it; a rule added since on a
    /// direct connection is left to the count).
    pub(super) fn last(&self, database: &str, name: &str) -> Option<Runs> {
        self.0.get(&super::namekey::of(database, name) as &dyn super::namekey::Parts<2>).map(|e| e.0.clone())
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
             AND g.tgenabled OPERATOR(pg_catalog.<>) ALL ('{{D,R}}'::pg_catalog.\"char\"[]) \
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
/// module), and the rules' `event:oid:schema` + US + `name` entries, separated by RS (the
/// names may hold any character but those). Every operator and function is `pg_catalog`'s.
pub(super) fn columns() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "(WITH RECURSIVE {code}, {w}, f(rel) AS (SELECT w.rel FROM w JOIN pg_catalog.pg_class t ON t.oid{eq}w.rel \
             WHERE t.relkind{eq}'f'::pg_catalog.\"char\") \
           SELECT pg_catalog.concat(EXISTS (SELECT FROM w WHERE w.rel{eq}ANY (SELECT code.rel FROM code UNION ALL SELECT f.rel FROM f))::pg_catalog.text, \
             ',', EXISTS (SELECT FROM w WHERE w.rel{eq}ANY (SELECT code.rel FROM code WHERE code.del UNION ALL SELECT f.rel FROM f))::pg_catalog.text, \
             ',', EXISTS (SELECT FROM w JOIN pg_catalog.pg_class p ON p.oid{eq}w.rel WHERE p.relkind{eq}'p'::pg_catalog.\"char\")::pg_catalog.text)), \
         (WITH RECURSIVE {chain} SELECT pg_catalog.string_agg(DISTINCT pg_catalog.concat(x.first, ':', x.rel, ':', \
             (SELECT pg_catalog.concat(n.nspname, pg_catalog.chr(31), t.relname) FROM pg_catalog.pg_class t \
              JOIN pg_catalog.pg_namespace n ON n.oid{eq}t.relnamespace WHERE t.oid{eq}x.rel)), pg_catalog.chr(30)) \
           FROM x WHERE x.ruled)",
        code = code(),
        w = written(),
        chain = chain(),
    )
}

/// `x(rel, first, ev, ruled)`: every relation a write to the name (`c`) may reach, for each
/// event the write may be (`first`: `2` UPDATE, `3` INSERT, `4` DELETE) — its relations, their
/// descendants, what views among them read, the tables foreign keys' actions change (only for
/// the event arriving there: a DELETE fires `ON DELETE` actions, `CASCADE` a DELETE and
/// `SET NULL`/`SET DEFAULT` an UPDATE of the referencing rows; an UPDATE its `ON UPDATE`
/// actions; an INSERT none), and what rules for the event arriving at a relation write or
/// read (`*`: any event after a rule, whose actions may be any) — and whether a rule was on
/// the way (`ruled`). A rule's references to its own table (`OLD`, `NEW`) are not listed, nor
/// a disabled rule (`ALTER TABLE … DISABLE RULE`: fifteenth pass FP2; one enabled again in
/// the same message is left to the count); sixteenth pass FPa/FPb: a key's action was
/// followed for every event, into rules of every event.
fn chain() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let rule_dep = format!(
        "pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ON d.classid{eq}'pg_catalog.pg_rewrite'::pg_catalog.regclass \
           AND d.objid{eq}r.oid AND d.refclassid{eq}'pg_catalog.pg_class'::pg_catalog.regclass"
    );
    let ch = |v: &str| format!("'{v}'::pg_catalog.\"char\"");
    let (c, a) = (ch("c"), "ANY ('{c,n,d}'::pg_catalog.\"char\"[])");
    format!(
        "x(rel, first, ev, ruled) AS (SELECT c2.oid, e.e, e.e, false FROM pg_catalog.pg_class c2 \
           CROSS JOIN (VALUES ('2'::pg_catalog.text), ('3'), ('4')) e(e) WHERE c2.relname{eq}c.relname \
         UNION SELECT n.rel, x.first, n.ev, n.ruled FROM x CROSS JOIN LATERAL (\
           SELECT i.inhrelid, x.ev, x.ruled FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}x.rel \
           UNION ALL SELECT d.refobjid, x.ev, x.ruled FROM {rule_dep} \
             WHERE r.ev_class{eq}x.rel AND r.ev_type{eq}{one} AND d.refobjid OPERATOR(pg_catalog.<>) x.rel \
           UNION ALL SELECT k.conrelid, CASE WHEN k.confdeltype{eq}{c} THEN '4' ELSE '2' END, x.ruled \
             FROM pg_catalog.pg_constraint k WHERE k.contype{eq}{f} AND k.confrelid{eq}x.rel \
             AND x.ev{eq}ANY (ARRAY['4', '*']::pg_catalog.text[]) AND k.confdeltype{eq}{a} \
           UNION ALL SELECT k.conrelid, '2', x.ruled \
             FROM pg_catalog.pg_constraint k WHERE k.contype{eq}{f} AND k.confrelid{eq}x.rel \
             AND x.ev{eq}ANY (ARRAY['2', '*']::pg_catalog.text[]) AND k.confupdtype{eq}{a} \
           UNION ALL SELECT d.refobjid, '*', true FROM {rule_dep} \
             WHERE r.ev_class{eq}x.rel AND r.ev_type OPERATOR(pg_catalog.<>) {one} \
             AND (r.ev_type::pg_catalog.text{eq}x.ev OR x.ev{eq}'*') \
             AND r.ev_enabled OPERATOR(pg_catalog.<>) ALL ({dis}) AND d.refobjid OPERATOR(pg_catalog.<>) r.ev_class\
         ) n(rel, ev, ruled))",
        one = ch("1"),
        f = ch("f"),
        // Disabled, or enabled for replication only: a session fires those only under
        // `session_replication_role = replica`, which only a superuser may set (and a count
        // that finds what one changed takes it as unjudged).
        dis = "'{D,R}'::pg_catalog.\"char\"[]",
    )
}

/// Reads the columns (`exists`: the name has a row). What cannot be read: code runs, and a
/// rule of every event reaches OID 0 (no table: judged as reaching every one).
pub(super) fn answer(code: Option<&str>, rules: Option<&str>, exists: bool) -> Runs {
    if !exists {
        return Runs::default();
    }
    // `any,on delete,partitioned` (`true`/`false` each); anything else: code runs, rows move.
    let mut flags = code.unwrap_or_default().split(',');
    let mut flag = || flags.next() != Some("false");
    let (any, del, partitioned) = (flag(), flag(), flag());
    let mut out = Runs { code: any, code_on_delete: del, partitioned, ..Runs::default() };
    for entry in rules.unwrap_or_default().split('\u{1e}').filter(|p| !p.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let (e, o, named) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        match e.and_then(|e| e.bytes().next()).zip(o.and_then(|o| o.parse::<u32>().ok())) {
            Some((e, oid)) => {
                out.rules.push((e, oid));
                if let Some((schema, name)) = named.split_once('\u{1f}') {
                    out.names.push((oid, schema.to_string(), name.to_string()));
                }
            }
            None => out.rules.extend([(b'2', 0), (b'3', 0), (b'4', 0)]),
        }
    }
    out
}

impl super::Catalog {
    /// What a write to `name` may run (see the module), as last answered — in the middle of a
    /// batch too, where it cannot be asked (sixteenth pass N1); `None`: never answered.
    pub fn runs(&self, database: &str, name: &str) -> Option<Runs> {
        self.code.last(database, name)
    }

    /// `f` of [`super::Catalog::runs`]'s answer, read in place (no copy of its lists).
    pub fn runs_with<R>(&self, database: &str, name: &str, f: impl FnOnce(&Runs) -> R) -> Option<R> {
        self.code.0.get(&super::namekey::of(database, name) as &dyn super::namekey::Parts<2>).map(|e| f(&e.0))
    }

    /// Whether what a write to `name` may run was answered by the catalog at or after `since`
    /// (`Some(false)`: asked, but the catalog could not be read); `None`: not since.
    pub fn runs_answered_since(&self, database: &str, name: &str, since: std::time::Instant) -> Option<bool> {
        self.code.answered_since(database, name, since)
    }
}

/// Whether a role other than the policy tables' owners may give permanent relation `c` code (it
/// owns it, or holds `TRIGGER` on it): a condition over `c` (`pg_class`) for [`super::query`].
/// Such code may be committed by another session while a write waits for the relation's lock,
/// and runs in that write (sixty-fourth pass). A temporary relation is its session's alone (no
/// other session may touch it; what the session itself gives it is `taint`'s). No policy
/// table (in the policy, or in this database): `false`.
pub fn others_may_give(policy: &crate::policy::Policy) -> String {
    let Some(untrusted) = others(policy) else { return "false".to_string() };
    format!(
        "(c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\" AND ({owner} \
           OR EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a \
             WHERE a.privilege_type OPERATOR(pg_catalog.=) 'TRIGGER' AND {grantee})))",
        owner = untrusted("c.relowner"),
        grantee = untrusted("a.grantee"),
    )
}

/// Rows for the hidden callers' search (`hidden::query`'s `reach`: class, OID, kind, depth,
/// sequence) that start it from what a role other than the policy tables' owners owns: its
/// permanent relations (a view's rule it may replace, a row-security policy it may create),
/// its permanent domains (a `CHECK` it may add) and composite types (an attribute of such a
/// domain it may add: a literal of the type is read after the locks of the FROM list are
/// taken; a table's row type is named as the table, a seed already) run code on reading
/// whatever they have now. A temporary one is its session's own (`taint`). A read judged
/// while they had none waits for a lock, and runs what another session committed meanwhile
/// (sixty-sixth pass H1: a view replaced while `SELECT * FROM locked, v` waited deleted 20
/// users). So they, and the views and parents over them, are callers. Empty without policy
/// tables.
pub fn others_seeds(policy: &crate::policy::Policy, class: &str, typ: &str) -> String {
    let Some(untrusted) = others(policy) else { return String::new() };
    format!(
        " UNION ALL SELECT {class}, c.oid, ''::pg_catalog.text, 1, NULL::pg_catalog.text FROM pg_catalog.pg_class c \
           WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f']::pg_catalog.\"char\"[]) \
             AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\" AND {rel} \
         UNION ALL SELECT {typ}, t.oid, 'r'::pg_catalog.text, 1, NULL::pg_catalog.text FROM pg_catalog.pg_type t \
           WHERE (t.typtype OPERATOR(pg_catalog.=) 'd'::pg_catalog.\"char\" \
               OR EXISTS (SELECT FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) t.typrelid \
                 AND k.relkind OPERATOR(pg_catalog.=) 'c'::pg_catalog.\"char\")) \
             AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace s WHERE s.oid OPERATOR(pg_catalog.=) t.typnamespace \
               AND s.nspname OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_') AND {ty}",
        rel = untrusted("c.relowner"),
        ty = untrusted("t.typowner"),
    )
}

/// A condition over a role column: that role is not trusted as the policy tables' owners are
/// (`names::trusted`), in a database that has policy tables. `None` when the policy names no
/// table.
pub fn others(policy: &crate::policy::Policy) -> Option<impl Fn(&str) -> String> {
    let owners = owners(policy)?;
    Some(move |r: &str| {
        format!(
            "(pg_catalog.cardinality({owners}) OPERATOR(pg_catalog.>) 0 AND NOT {})",
            crate::names::trusted(r, &owners)
        )
    })
}

/// The policy tables' owners in this database, an `oid[]` expression (empty where none of
/// them exists); `None` when the policy names no table.
pub fn owners(policy: &crate::policy::Policy) -> Option<String> {
    if policy.tables.is_empty() {
        return None;
    }
    let tables: Vec<String> = policy
        .tables
        .iter()
        .map(|t| {
            let q = format!("\"{}\".\"{}\"", t.schema.replace('"', "\"\""), t.name.replace('"', "\"\""));
            format!("pg_catalog.to_regclass({})::pg_catalog.oid", super::literal(&q))
        })
        .collect();
    Some(format!(
        "coalesce((SELECT pg_catalog.array_agg(p.relowner) FROM pg_catalog.pg_class p \
         WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[{}]::pg_catalog.oid[])), ARRAY[]::pg_catalog.oid[])",
        tables.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_what_cannot_be_read_reaches_everything() {
        assert_eq!(answer(Some("true"), None, false), Runs::default());
        let r = answer(Some("false,false"), Some("4:16384:public\u{1f}users\u{1e}*:16390:"), true);
        assert_eq!(r.rules, [(b'4', 16384), (b'*', 16390)]);
        assert_eq!(r.names, [(16384, "public".to_string(), "users".to_string())]);
        let r = answer(Some("true,false,false"), None, true);
        assert!(r.code && !r.code_on_delete && !r.partitioned);
        assert!(!answer(Some("false,false,false"), None, true).code);
        assert!(answer(Some("false,false"), None, true).partitioned);
        assert!(answer(None, None, true).code_on_delete);
        assert_eq!(answer(Some("false,false"), Some("x"), true).rules, [(b'2', 0), (b'3', 0), (b'4', 0)]);
    }
}
