//! Foreign-key actions: which tables a write to a relation name changes through the `ON UPDATE`
//! and `ON DELETE` actions (`CASCADE`, `SET NULL`, `SET DEFAULT`) of the foreign keys that
//! reference it, at any depth — a lookup table `plans` whose key `users.plan` references with
//! `ON UPDATE CASCADE` makes `UPDATE plans SET name = …` an update of every user on that plan.
//! An UPDATE fires the `ON UPDATE` actions, each an update of the referencing rows (which fires
//! theirs); a DELETE fires the `ON DELETE` actions: `CASCADE` a delete of the referencing rows
//! (which fires their `ON DELETE` actions), `SET NULL`/`SET DEFAULT` an update of them (which
//! fires their `ON UPDATE` actions). Inheritance children and partitions of a relation are
//! followed both ways: a write to a parent writes its children's rows (whose own keys act), and
//! a table reached is reported with its ancestors (a policy table's partition is the policy
//! table's rows).
//!
//! Learned by OID from `pg_constraint` (`confrelid`, `confupdtype`, `confdeltype`) in the same
//! catalog question as the relation's other indirect effects (`super::query`), cached and
//! forgotten with them (DDL through blastwall, the TTL). A table reached whose own rows' change
//! runs anyone's code — user triggers, rules, row security, a default, `CHECK` or index
//! expression over a function or operator outside `pg_catalog`, a column of a domain — is marked:
//! that code may write anywhere, so the write is counted whatever it reaches.
//!
//! Owns: the query's column, its answer, its cache, and whether an answer reaches a table the
//! policy guards. Does not own: asking (`session`) or what follows (`guard::need`: the write is
//! counted like one to the table it reaches).

use crate::policy::{Policy, TablePolicy};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A policy table's protected columns as (policy name, name now), when the catalog said.
pub type ColumnNames<'a> = dyn Fn(&TablePolicy) -> Option<Vec<(String, String)>> + 'a;

/// What a write's foreign-key actions reach, for one kind of write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reached {
    /// (OID, schema, name) of each table the actions change, and of their ancestors.
    pub tables: Vec<(u32, String, String)>,
    /// Some table reached runs code when its rows change (or the answer is unknown).
    pub code: bool,
    /// The columns foreign keys' actions set on the way (`CASCADE` of an update, `SET NULL`,
    /// `SET DEFAULT`): judged like an UPDATE's `SET` of them.
    pub assigns: Vec<Assign>,
}

/// One foreign key's action that sets columns of a table a write reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assign {
    /// The key whose action sets them, and the action (`ON UPDATE CASCADE`).
    pub constraint: String,
    pub action: String,
    /// The first key on the way from the written relation (the same key when direct).
    pub first: String,
    /// The written relation's columns that key references: an UPDATE fires it only by
    /// setting one of them (a DELETE always does).
    pub fires_on: Vec<String>,
    /// The columns set, as the table names them.
    pub columns: Vec<String>,
    /// (OID, schema, name) of the table, then of its ancestors (a partition's rows are its
    /// parent's).
    pub table: Vec<(u32, String, String)>,
    /// The OID of the relation written that fires it (a name is asked for every relation so
    /// called: only the one the name resolves to fires; 0: not said, any).
    pub written: u32,
}

/// A protected column of a policy table that a write's foreign-key actions set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedColumn {
    /// The policy table (its index in `policy.tables`).
    pub table: usize,
    /// The column's name in the policy, and now.
    pub policy_name: String,
    pub column: String,
    pub by: Assign,
}

/// What an UPDATE and a DELETE of a relation name reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cascades {
    pub on_update: Reached,
    pub on_delete: Reached,
}

impl Cascades {
    /// Assumed when the catalog cannot tell: anything.
    pub fn everything() -> Self {
        let all = Reached { tables: Vec::new(), code: true, assigns: Vec::new() };
        Cascades { on_update: all.clone(), on_delete: all }
    }
}

/// (database, relation name) → its cascades, when learned.
#[derive(Default)]
pub(super) struct Cache(DashMap<(String, String), (Arc<Cascades>, Instant)>);

impl Cache {
    pub(super) fn learn(&self, database: &str, name: &str, c: Cascades, at: Instant) {
        self.0.insert((database.to_string(), name.to_string()), (Arc::new(c), at));
    }

    /// The answer, when learned within the catalog's TTL.
    pub(super) fn fresh(&self, database: &str, name: &str) -> Option<Arc<Cascades>> {
        self.last(database, name, super::TTL)
    }

    /// The last answer learned within `usable` (of any age below it), for [`super::Assumed::assume_indirect`].
    pub(super) fn last(&self, database: &str, name: &str, usable: Duration) -> Option<Arc<Cascades>> {
        let e = self.0.get(&super::namekey::of(database, name) as &dyn super::namekey::Parts<2>)?;
        (e.1.elapsed() < usable).then(|| e.0.clone())
    }

    pub(super) fn forget(&self, database: &str) {
        self.0.retain(|(db, _), _| db != database);
    }
}

impl super::Catalog {
    /// Whether a write to `name` (a DELETE when `delete`, else an UPDATE, MERGE or upsert)
    /// changes, through foreign-key actions, rows of a table the policy guards (its row limits,
    /// anomaly or budget rules, protected columns; under `[defaults]` limits, any table) or
    /// runs code on the way; `None` when not known and fresh (ask [`super::Question::Indirect`]).
    pub fn cascades_reach_guarded(&self, database: &str, name: &str, delete: bool, policy: &Policy) -> Option<bool> {
        let e = self.cascades.fresh(database, name)?;
        Some(self.reach_guarded(&e, database, delete, policy))
    }

    /// [`super::Catalog::cascades_reach_guarded`] of a known answer (`super::Assumed`: one
    /// assumed for a judgement).
    pub(super) fn reach_guarded(&self, c: &Cascades, database: &str, delete: bool, policy: &Policy) -> bool {
        let reached = if delete { &c.on_delete } else { &c.on_update };
        if reached.code {
            return true;
        }
        if reached.tables.is_empty() {
            return false;
        }
        let everything = policy.max_delete_rows.is_some()
            || policy.max_update_rows.is_some()
            || policy.anomaly.enabled == Some(true);
        if everything {
            return true;
        }
        let found = self.policy_tables_in(database, policy, &reached.tables);
        found.into_iter().any(|i| guards(&policy.tables[i]))
    }

    /// The policy tables (indices) that a write to `name` (a DELETE when `delete`, else an
    /// UPDATE, MERGE or upsert) changes through foreign keys' actions, and whether a table on the
    /// way runs code (it may write anywhere), as last answered (of any age: in the middle of a
    /// batch too); `None` when never answered.
    pub fn cascades_into_policy(
        &self,
        database: &str,
        name: &str,
        delete: bool,
        policy: &Policy,
    ) -> Option<(bool, Vec<usize>)> {
        let e = self.cascades.last(database, name, Duration::MAX)?;
        let reached = if delete { &e.on_delete } else { &e.on_update };
        Some((reached.code, self.policy_tables_in(database, policy, &reached.tables)))
    }

    /// The policy tables among `tables` ((OID, schema, name) rows), by the OIDs blastwall knows
    /// for them (first seen, and now) or by their names.
    pub fn policy_tables_in(&self, database: &str, policy: &Policy, tables: &[(u32, String, String)]) -> Vec<usize> {
        if tables.is_empty() {
            return Vec::new();
        }
        let identities = self.identities(database, policy);
        let found = policy.tables.iter().enumerate().filter(|(i, t)| {
            let first = self.oid_of(database, &t.schema, &t.name);
            let now = identities.as_ref().and_then(|ids| ids.oids.get(*i)).cloned().unwrap_or_default();
            tables.iter().any(|(oid, schema, table)| {
                (*schema == t.schema && *table == t.name) || first == Some(*oid) || now.contains(oid)
            })
        });
        found.map(|(i, _)| i).collect()
    }

    /// The protected columns of policy tables (`allow_protected_update` off) that a write to
    /// `name` sets through foreign keys' actions: a DELETE (when `delete`) fires every
    /// `ON DELETE SET NULL`/`SET DEFAULT`, an UPDATE (MERGE, upsert) the `ON UPDATE` actions
    /// of the keys that reference a column it sets (`assigned`), then their chains. A table
    /// is matched by the OIDs blastwall knows for it or by its name, a column by the name
    /// the catalog says it has now (`columns`: `None` until learned, then ask for it). `None`
    /// when the answer is not known and fresh (ask [`super::Question::Indirect`]).
    pub fn fk_assignments(
        &self,
        database: &str,
        name: &str,
        delete: bool,
        assigned: &[String],
        policy: &Policy,
        columns: &ColumnNames<'_>,
    ) -> Option<Result<Vec<AssignedColumn>, usize>> {
        let e = self.cascades.fresh(database, name)?;
        Some(self.assignments(&e, database, delete, assigned, policy, columns))
    }

    /// [`super::Catalog::fk_assignments`] of a known answer (`super::Assumed`).
    pub(super) fn assignments(
        &self,
        c: &Cascades,
        database: &str,
        delete: bool,
        assigned: &[String],
        policy: &Policy,
        columns: &ColumnNames<'_>,
    ) -> Result<Vec<AssignedColumn>, usize> {
        let reached = if delete { &c.on_delete } else { &c.on_update };
        let fires = |a: &&Assign| delete || a.fires_on.iter().any(|c| c == "*" || assigned.contains(c));
        let fired = reached.assigns.iter().filter(fires);
        let identities = self.identities(database, policy);
        let mut found = Vec::new();
        for a in fired {
            for (i, t) in policy.tables.iter().enumerate() {
                if t.protected_columns.is_empty() || t.allow_protected_update {
                    continue;
                }
                let first = self.oid_of(database, &t.schema, &t.name);
                let now = identities.as_ref().and_then(|ids| ids.oids.get(i)).cloned().unwrap_or_default();
                let is_t = |(oid, schema, table): &(u32, String, String)| {
                    (*schema == t.schema && *table == t.name) || first == Some(*oid) || now.contains(oid)
                };
                if !a.table.iter().any(is_t) {
                    continue;
                }
                let Some(named) = columns(t) else { return Err(i) };
                for (policy_name, column) in named.into_iter().filter(|(_, c)| a.columns.contains(c)) {
                    found.push(AssignedColumn { table: i, policy_name, column, by: a.clone() });
                }
            }
        }
        Ok(found)
    }
}

/// Whether a change of a policy table's rows matters to a rule: row limits, anomaly or budget
/// rules, protected columns.
fn guards(t: &TablePolicy) -> bool {
    t.max_delete_rows.is_some()
        || t.max_update_rows.is_some()
        || crate::contract::applies(t)
        || !t.protected_columns.is_empty()
}

/// The column of `super::query` (grouped by `c.relname`): a JSON array of `[kind, oid, schema,
/// name, code]`, one per table an UPDATE (`u`) or a DELETE (`d`) of a relation named
/// `c.relname` changes through foreign-key actions (and their ancestors), or NULL for none.
/// Every operator and function is `pg_catalog`'s.
pub(super) fn column() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass");
    // The tables whose rows' change runs code — one set, read once (a check per table
    // reached would make the planner's estimate of the recursion's size cost seconds of JIT
    // compilation).
    let code = code_cte();
    // A row of `r`: a relation whose rows a write of the first kind (`first`) changes, how
    // (`ev`), whether through a foreign key's action (`acted`), which columns of it change
    // (`cols`, NULL: any, or the rows are deleted), and for a row that a key's action updates
    // (`via`, the constraint; `how`, its action): the referenced columns of the first key on
    // the way (`top`, in the written relation: an UPDATE that sets none of them fires
    // nothing) and that key's name (`topcon`). Only the keys whose referenced columns change
    // act (`confkey && cols`); every value comes from a finite set, so the recursion ends.
    // `seed`: the relation of that name written (each relation so called is a start of its
    // own). An `ON DELETE SET NULL`/`SET DEFAULT` sets the columns it lists (`keys`).
    // A view written (before any key acted) writes the relations its rule reads: followed,
    // with `top` = `*` (its columns' names need not be theirs: any UPDATE of it may fire).
    let text = |v: &str| format!("'{v}'::pg_catalog.text");
    let ch = |v: &str| format!("'{v}'::pg_catalog.\"char\"");
    let action = format!("(CASE WHEN r.ev{eq}{u} THEN k.confupdtype ELSE k.confdeltype END)", u = text("u"));
    format!(
        "(WITH RECURSIVE \
           r(first, rel, ev, acted, cols, top, topcon, via, how, seed) AS (\
             SELECT e.ev, s.oid, e.ev, false, NULL::pg_catalog.int2[], NULL::pg_catalog.text[] COLLATE pg_catalog.\"C\", NULL::pg_catalog.text COLLATE pg_catalog.\"C\", \
               NULL::pg_catalog.oid, NULL::pg_catalog.text, s.oid \
               FROM pg_catalog.pg_class s CROSS JOIN (VALUES ({u}), ({d})) e(ev) WHERE s.relname{eq}c.relname \
             UNION \
             SELECT r.first, n.rel, n.ev, n.acted OR r.acted, n.cols, n.top, n.topcon, n.via, n.how, r.seed FROM r CROSS JOIN LATERAL (\
               SELECT k.conrelid, CASE WHEN r.ev{eq}{d} AND k.confdeltype{eq}{c} THEN {d} ELSE {u} END, true, \
                 CASE WHEN r.ev{eq}{d} AND k.confdeltype{eq}{c} THEN NULL::pg_catalog.int2[] \
                   WHEN r.ev{eq}{d} THEN {set_columns} ELSE k.conkey END, \
                 COALESCE(r.top, (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum) \
                   FROM pg_catalog.pg_attribute a WHERE a.attrelid{eq}r.rel AND a.attnum{eq}ANY (k.confkey))), \
                 COALESCE(r.topcon, k.conname::pg_catalog.text), k.oid, \
                 CASE WHEN r.ev{eq}{u} THEN 'ON UPDATE '::pg_catalog.text ELSE 'ON DELETE '::pg_catalog.text END \
                   OPERATOR(pg_catalog.||) CASE WHEN {action}{eq}{c} THEN 'CASCADE'::pg_catalog.text \
                   WHEN {action}{eq}{n} THEN 'SET NULL'::pg_catalog.text ELSE 'SET DEFAULT'::pg_catalog.text END \
               FROM pg_catalog.pg_constraint k WHERE k.contype{eq}{f} AND k.confrelid{eq}r.rel \
                 AND {action}{eq}ANY ('{{c,n,d}}'::pg_catalog.\"char\"[]) \
                 AND (r.cols IS NULL OR k.confkey OPERATOR(pg_catalog.&&) r.cols) \
               UNION ALL \
               SELECT i.inhrelid, r.ev, false, \
                 (SELECT pg_catalog.array_agg(ca.attnum ORDER BY ca.attnum) FROM pg_catalog.pg_attribute pa \
                   JOIN pg_catalog.pg_attribute ca ON ca.attname{eq}pa.attname \
                   WHERE pa.attrelid{eq}r.rel AND pa.attnum{eq}ANY (r.cols) AND ca.attrelid{eq}i.inhrelid), \
                 r.top, r.topcon, NULL::pg_catalog.oid, NULL::pg_catalog.text \
               FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}r.rel \
               UNION ALL \
               SELECT d.refobjid, r.ev, false, NULL::pg_catalog.int2[], \
                 COALESCE(r.top, ARRAY['*'::pg_catalog.text COLLATE pg_catalog.\"C\"]), r.topcon, NULL::pg_catalog.oid, NULL::pg_catalog.text \
               FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d ON d.classid{eq}{rewrite} AND d.objid{eq}w.oid \
                 AND d.refclassid{eq}{class} \
               WHERE w.ev_class{eq}r.rel AND NOT r.acted AND d.refobjid OPERATOR(pg_catalog.<>) r.rel \
                 AND EXISTS (SELECT FROM pg_catalog.pg_class v WHERE v.oid{eq}r.rel AND v.relkind{eq}{v})\
             ) n(rel, ev, acted, cols, top, topcon, via, how)), \
           up(first, rel) AS (\
             SELECT r.first, r.rel FROM r WHERE r.acted \
             UNION SELECT up.first, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid{eq}up.rel), \
           fk(first, rel, cols, top, topcon, via, how, seed) AS (\
             SELECT DISTINCT r.first, r.rel, r.cols, r.top, r.topcon, r.via, r.how, r.seed FROM r \
             WHERE r.via IS NOT NULL AND r.ev{eq}{u}), \
           anc(rel, a) AS (\
             SELECT DISTINCT fk.rel, fk.rel FROM fk \
             UNION SELECT anc.rel, i.inhparent FROM anc JOIN pg_catalog.pg_inherits i ON i.inhrelid{eq}anc.a), \
           {code} \
         SELECT pg_catalog.json_agg(q.x)::pg_catalog.text FROM (\
           SELECT pg_catalog.json_build_array(up.first, t.oid, n.nspname, t.relname, \
             t.oid OPERATOR(pg_catalog.=) ANY (SELECT code.rel FROM code)) x \
           FROM up JOIN pg_catalog.pg_class t ON t.oid{eq}up.rel \
             JOIN pg_catalog.pg_namespace n ON n.oid{eq}t.relnamespace \
           UNION ALL \
           SELECT pg_catalog.json_build_array({a} OPERATOR(pg_catalog.||) fk.first, k.conname, fk.how, fk.topcon, fk.top, \
             (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
               WHERE a.attrelid{eq}fk.rel AND (fk.cols IS NULL OR a.attnum{eq}ANY (fk.cols)) AND a.attnum OPERATOR(pg_catalog.>) 0 \
                 AND NOT a.attisdropped), \
             (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(t.oid, n.nspname, t.relname) ORDER BY t.oid{eq}fk.rel DESC) \
               FROM anc JOIN pg_catalog.pg_class t ON t.oid{eq}anc.a JOIN pg_catalog.pg_namespace n ON n.oid{eq}t.relnamespace \
               WHERE anc.rel{eq}fk.rel), fk.seed) \
           FROM fk JOIN pg_catalog.pg_constraint k ON k.oid{eq}fk.via) q)",
        set_columns = super::keys::set_columns("k"),
        u = text("u"),
        d = text("d"),
        a = text("a"),
        c = ch("c"),
        n = ch("n"),
        f = ch("f"),
        v = ch("v"),
        rewrite = cls("pg_rewrite"),
        class = cls("pg_class"),
    )
}

/// The CTE `code(rel)`: the relations whose rows' change runs someone's code — user triggers,
/// row security, a column of a domain, a default, `CHECK` or index over a function or operator
/// outside `pg_catalog`, rules — every operator and function `pg_catalog`'s.
fn code_cte() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "code(rel) AS (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE NOT g.tgisinternal \
           UNION SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relhasrules OR t.relrowsecurity \
           UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type y ON y.oid{eq}a.atttypid \
             WHERE y.typtype{eq}'d'::pg_catalog.\"char\" AND NOT a.attisdropped \
           UNION {stored})",
        stored = super::code::stored_expressions(),
    )
}

/// Reads the column (`None`: NULL, or no row for the name — nothing reached; what cannot be
/// read: anything).
pub(super) fn answer(json: Option<&str>) -> Cascades {
    let Some(json) = json else { return Cascades::default() };
    let Ok(serde_json::Value::Array(rows)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Cascades::everything();
    };
    let mut c = Cascades::default();
    for row in rows {
        let get = |i: usize| row.get(i);
        let text = |i: usize| get(i).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(kind @ ("au" | "ad")) = text(0).as_deref() {
            let Some(a) = assign(&row) else { return Cascades::everything() };
            let reached = if kind == "au" { &mut c.on_update } else { &mut c.on_delete };
            reached.assigns.push(a);
            continue;
        }
        let oid = oid(get(1));
        let reached = match text(0).as_deref() {
            Some("u") => &mut c.on_update,
            Some("d") => &mut c.on_delete,
            _ => return Cascades::everything(),
        };
        let (Some(oid), Some(schema), Some(name), Some(code)) =
            (oid, text(2), text(3), get(4).and_then(|v| v.as_bool()))
        else {
            return Cascades::everything();
        };
        reached.code |= code;
        reached.tables.push((oid, schema, name));
    }
    c
}

/// An OID as the JSON answer writes it (a number or a string).
fn oid(v: Option<&serde_json::Value>) -> Option<u32> {
    v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).and_then(|o| u32::try_from(o).ok())
}

/// A row `[kind, constraint, action, first constraint, [fires on], [columns], [[oid, schema,
/// name], …], written oid]` (the table first, then its ancestors; the relation written whose
/// write fires it).
fn assign(row: &serde_json::Value) -> Option<Assign> {
    let text = |i: usize| row.get(i)?.as_str().map(str::to_string);
    let names = |i: usize| -> Option<Vec<String>> {
        match row.get(i)? {
            serde_json::Value::Null => Some(Vec::new()),
            v => v.as_array()?.iter().map(|n| n.as_str().map(str::to_string)).collect(),
        }
    };
    let table = row
        .get(6)?
        .as_array()?
        .iter()
        .map(|t| Some((oid(t.get(0))?, t.get(1)?.as_str()?.to_string(), t.get(2)?.as_str()?.to_string())))
        .collect::<Option<Vec<_>>>()?;
    let a = Assign {
        constraint: text(1)?,
        action: text(2)?,
        first: text(3)?,
        fires_on: names(4)?,
        columns: names(5)?,
        table,
        written: oid(row.get(7)).unwrap_or(0),
    };
    (!a.table.is_empty()).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_kind_and_fail_closed() {
        let a = answer(Some(r#"[["u", "16385", "public", "users", false], ["d", 7, "s", "t", true]]"#));
        let users = (16385, "public".to_string(), "users".to_string());
        assert_eq!(a.on_update, Reached { tables: vec![users.clone()], code: false, assigns: vec![] });
        assert_eq!(a.on_delete, Reached { tables: vec![(7, "s".into(), "t".into())], code: true, assigns: vec![] });
        let a = answer(Some(
            r#"[["u", 16385, "public", "users", false],
                ["au", "users_id_fkey", "ON UPDATE CASCADE", "people_id_fkey", ["k"], ["id"], [["16385", "public", "users"]]]]"#,
        ));
        let by = Assign {
            constraint: "users_id_fkey".into(),
            action: "ON UPDATE CASCADE".into(),
            first: "people_id_fkey".into(),
            fires_on: vec!["k".into()],
            columns: vec!["id".into()],
            table: vec![users],
            written: 0,
        };
        assert_eq!(a.on_update.assigns, vec![by]);
        assert_eq!(
            answer(Some(r#"[["ad", "k", "ON DELETE SET NULL", "k", null, ["x"], []]]"#)),
            Cascades::everything()
        );
        assert_eq!(answer(None), Cascades::default());
        assert_eq!(answer(Some("nonsense")), Cascades::everything());
        assert_eq!(answer(Some(r#"[["x", 1, "s", "t", false]]"#)), Cascades::everything());
    }
}
