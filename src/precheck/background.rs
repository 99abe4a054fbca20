//! Code the server runs on its own, later, as a table's owner: autovacuum's `ANALYZE`
//! evaluates every expression and partial index's predicate, every extended statistics
//! expression, and the `subtype_diff` function of a column of a range type (or a domain over one, as
//! `pg_depend` shows the column's type), of every permanent
//! table it samples — outside any session, so outside anything blastwall counts. A role that
//! owns a table (in a schema of its own) and may write a policy table could otherwise leave a
//! statistics object over a function that deletes users, insert rows, and let autovacuum run
//! it (sixty-third pass H1: `CREATE STATISTICS app_own.st ON (app_own.w(x)) FROM app_own.t`,
//! `w` labelled `IMMUTABLE` and calling a function that deleted 20 users and rewrote every
//! email, about 15 s later).
//!
//! So every statement whose protected objects' identity is read whole (DDL, a call of code)
//! also reads this code: each such expression (by the index, statistics object or range type)
//! with what it runs — a function it calls, directly or as an operator's, that is not a
//! built-in (nor a C or internal function that is not volatile, which only a superuser
//! installs), or a type outside `pg_catalog` it casts to that checks values (a domain, whose
//! `CHECK` may call a function or get one later, a composite, range or multirange type, or an
//! array of one: sixty-fourth pass H1) — by its row version, and the table's owner, where the
//! table or what it runs belongs to a role other than the policy tables' owners; and, while
//! there is any, the row versions of every function and type such a role owns and of every
//! domain constraint (one function may call another by name, a domain may get a `CHECK`). A
//! statement after which there is an entry that was not there before, or that changed those
//! while there is one, made or changed code autovacuum would run unseen: refused (rule
//! `identity`). Entries made on a direct connection stay outside blastwall's reach ("What
//! blastwall cannot see").
//!
//! Owns: that reading (a branch of the identity snapshot, `identity::sql`) and its comparison.

/// The snapshot item of this reading.
pub const ITEM: &str = "background code";

/// The branch of the identity snapshot (`r`: the policy tables found, as in `identity::sql`):
/// one row, item [`ITEM`], value `entries|digest`.
pub fn branch() -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    let owners = "coalesce((SELECT pg_catalog.array_agg(c.relowner) FROM pg_catalog.pg_class c \
                  WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT r.oid FROM r))), ARRAY[]::pg_catalog.oid[])";
    // The trusted roles, once: the owners, superusers, `pg_database_owner` where trusted.
    let trusted = crate::names::trusted("ro.oid", owners);
    let routine = |f: &str| {
        format!(
            "{f}.pronamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid AND NOT ({f}.provolatile OPERATOR(pg_catalog.<>) 'v'::pg_catalog.\"char\" \
             AND {f}.prolang {eq} ANY (ARRAY(SELECT l.oid FROM pg_catalog.pg_language l \
               WHERE l.lanname {eq} ANY (ARRAY['internal', 'c']::pg_catalog.name[]))))"
        )
    };
    format!(
        "SELECT ''::pg_catalog.text, '0'::pg_catalog.text, '{ITEM}'::pg_catalog.text, pg_catalog.concat(e.list, '|', \
           CASE WHEN e.list OPERATOR(pg_catalog.<>) '' THEN (SELECT pg_catalog.md5(pg_catalog.string_agg(v.v, ',' ORDER BY v.v)) \
             FROM (SELECT pg_catalog.concat('f', f.oid, ':', f.xmin) FROM pg_catalog.pg_proc f \
                 WHERE f.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid AND NOT f.proowner {eq} ANY (tr.ids) \
               UNION ALL SELECT pg_catalog.concat('t', t.oid, ':', t.xmin) FROM pg_catalog.pg_type t \
                 WHERE t.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid AND NOT t.typowner {eq} ANY (tr.ids) \
               UNION ALL SELECT pg_catalog.concat('c', k.oid, ':', k.xmin) FROM pg_catalog.pg_constraint k \
                 WHERE k.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
                 AND k.contypid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid) v(v)) END) \
         FROM (SELECT coalesce(pg_catalog.array_agg(ro.oid), ARRAY[]::pg_catalog.oid[]) FROM pg_catalog.pg_roles ro \
           WHERE {trusted}) tr(ids) CROSS JOIN LATERAL (SELECT coalesce(pg_catalog.string_agg(DISTINCT pg_catalog.concat(x.kind, ' ', x.obj, ' ', k.id, ' ', \
             c.relowner, pg_catalog.chr(31), x.kind, ' ', x.shown, ' of ', c.oid::pg_catalog.regclass, ' runs ', k.what), \
             pg_catalog.chr(30)), '') \
           FROM (SELECT 'index'::pg_catalog.text, i.indexrelid, i.indexrelid::pg_catalog.regclass::pg_catalog.text, i.indrelid, \
               d.refclassid, d.refobjid FROM pg_catalog.pg_index i JOIN pg_catalog.pg_depend d \
               ON d.classid {eq} 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid {eq} i.indexrelid \
               WHERE i.indexprs IS NOT NULL OR i.indpred IS NOT NULL \
             UNION ALL SELECT 'statistics', s.oid, s.stxname::pg_catalog.text, s.stxrelid, d.refclassid, d.refobjid \
               FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_depend d \
               ON d.classid {eq} 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass AND d.objid {eq} s.oid \
               WHERE s.stxexprs IS NOT NULL \
             UNION ALL SELECT 'column of range type', y.rng, pg_catalog.concat(a.attname, ' ', \
                 pg_catalog.format_type(a.atttypid, a.atttypmod)), a.attrelid, \
               'pg_catalog.pg_proc'::pg_catalog.regclass, y.subdiff \
               FROM (WITH RECURSIVE y(t, rng, subdiff) AS ( \
                   SELECT g.rngtypid, g.rngtypid, sd.oid FROM pg_catalog.pg_range g \
                     JOIN pg_catalog.pg_proc sd ON sd.oid {eq} g.rngsubdiff::pg_catalog.oid WHERE {sd_routine} \
                   UNION SELECT d.objid, y.rng, y.subdiff FROM pg_catalog.pg_depend d JOIN y ON d.refobjid {eq} y.t \
                     WHERE d.refclassid {eq} 'pg_catalog.pg_type'::pg_catalog.regclass \
                     AND d.classid {eq} 'pg_catalog.pg_type'::pg_catalog.regclass) \
                 SELECT y.t, y.rng, y.subdiff FROM y) y \
               JOIN pg_catalog.pg_depend d ON d.refclassid {eq} 'pg_catalog.pg_type'::pg_catalog.regclass \
                 AND d.refobjid {eq} y.t AND d.classid {eq} 'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.objsubid OPERATOR(pg_catalog.>) 0 \
               JOIN pg_catalog.pg_attribute a ON a.attrelid {eq} d.objid AND a.attnum {eq} d.objsubid::pg_catalog.int2 \
             ) x(kind, obj, shown, rel, refclassid, refobjid) \
           CROSS JOIN LATERAL (SELECT pg_catalog.concat('f', f.oid, ':', f.xmin), f.proowner, \
               f.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc f WHERE f.oid {eq} CASE \
                 WHEN x.refclassid {eq} 'pg_catalog.pg_proc'::pg_catalog.regclass THEN x.refobjid \
                 WHEN x.refclassid {eq} 'pg_catalog.pg_operator'::pg_catalog.regclass THEN \
                   (SELECT o.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator o WHERE o.oid {eq} x.refobjid) END \
                 AND {f_routine} \
             UNION ALL SELECT pg_catalog.concat('t', ty.oid, ':', ty.xmin), ty.typowner, \
               pg_catalog.concat('what type ', ty.oid::pg_catalog.regtype, ' checks') FROM pg_catalog.pg_type ty \
               WHERE x.refclassid {eq} 'pg_catalog.pg_type'::pg_catalog.regclass AND ty.oid {eq} x.refobjid \
                 AND NOT (SELECT n.nspname {eq} ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
                   FROM pg_catalog.pg_namespace n WHERE n.oid {eq} ty.typnamespace) \
                 AND (ty.typtype {eq} ANY ({kinds}) OR EXISTS (SELECT FROM pg_catalog.pg_type el \
                   WHERE el.oid {eq} ty.typelem AND el.typtype {eq} ANY ({kinds})))) k(id, owner, what) \
           JOIN pg_catalog.pg_class c ON c.oid {eq} x.rel AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\" \
           WHERE NOT (c.relowner {eq} ANY (tr.ids) AND k.owner {eq} ANY (tr.ids)) AND EXISTS (SELECT FROM r)) e(list)",
        kinds = "ARRAY['d', 'c', 'r', 'm']::pg_catalog.\"char\"[]",
        f_routine = routine("f"),
        sd_routine = routine("sd"),
    )
}

/// What a statement changed of that code, from the values read before and after it; `None`:
/// nothing it may not.
pub fn change(was: &str, now: &str) -> Option<String> {
    let split = |v: &str| {
        let (list, digest) = v.rsplit_once('|').unwrap_or((v, ""));
        let entries: Vec<(String, String)> = list
            .split('\u{1e}')
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (key, shown) = e.split_once('\u{1f}').unwrap_or((e, e));
                (key.to_string(), shown.to_string())
            })
            .collect();
        (entries, digest.to_string())
    };
    let ((before, was_digest), (after, now_digest)) = (split(was), split(now));
    if let Some((_, shown)) = after.iter().find(|(k, _)| !before.iter().any(|(b, _)| b == k)) {
        return Some(format!(
            "the statement made or changed code that autovacuum's ANALYZE runs on its own, as the table's owner, where blastwall cannot count it: the {shown}"
        ));
    }
    let first = after.first()?;
    (was_digest != now_digest).then(|| {
        format!(
            "the statement changed a function of a role other than the policy tables' owners while code autovacuum's ANALYZE runs on its own calls such a function (the {})",
            first.1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, shown: &str) -> String {
        format!("{key}\u{1f}{shown}")
    }

    #[test]
    fn new_code_or_a_changed_function_beside_it_is_a_change() {
        let a = entry("statistics 1 2 3 10", "statistics st of t calls w(integer)");
        let b = entry("index 4 2 3 10", "index t_w of t calls w(integer)");
        assert_eq!(change("|", "|"), None);
        // Made by the statement.
        let c = change("|", &format!("{a}|d1")).unwrap();
        assert!(c.contains("statistics st of t calls w(integer)"), "{c}");
        // The function replaced: its row version is in the key.
        assert!(change(&format!("{a}|d1"), &format!("{}|d2", a.replace(" 3 ", " 9 "))).is_some());
        // There before, and the functions unchanged: not this statement's doing.
        assert_eq!(change(&format!("{a}|d1"), &format!("{a}|d1")), None);
        // There before, and some function of such a role changed.
        assert!(change(&format!("{a}|d1"), &format!("{a}|d2")).is_some());
        // Gone, or fewer: nothing made.
        assert_eq!(change(&format!("{a}\u{1e}{b}|d1"), &format!("{a}|d1")), None);
        assert_eq!(change(&format!("{a}|d1"), "|"), None);
    }
}
