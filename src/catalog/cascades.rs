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

/// What a write's foreign-key actions reach, for one kind of write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reached {
    /// (OID, schema, name) of each table the actions change, and of their ancestors.
    pub tables: Vec<(u32, String, String)>,
    /// Some table reached runs code when its rows change (or the answer is unknown).
    pub code: bool,
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
        let all = Reached { tables: Vec::new(), code: true };
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

    /// The last answer learned within `usable` (of any age below it), for [`super::Catalog::assume_indirect`].
    pub(super) fn last(&self, database: &str, name: &str, usable: Duration) -> Option<Arc<Cascades>> {
        let e = self.0.get(&(database.to_string(), name.to_string()))?;
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
        let e = self.cascades.0.get(&(database.to_string(), name.to_string()))?;
        if e.1.elapsed() >= super::TTL {
            return None;
        }
        let reached = if delete { &e.0.on_delete } else { &e.0.on_update };
        if reached.code {
            return Some(true);
        }
        if reached.tables.is_empty() {
            return Some(false);
        }
        let everything = policy.max_delete_rows.is_some()
            || policy.max_update_rows.is_some()
            || policy.anomaly.enabled == Some(true);
        if everything {
            return Some(true);
        }
        let identities = self.identities(database, policy);
        let mut guarded = policy.tables.iter().enumerate().filter(|(_, t)| guards(t));
        Some(guarded.any(|(i, t)| {
            let first = self.oid_of(database, &t.schema, &t.name);
            let now = identities.as_ref().and_then(|ids| ids.oids.get(i)).cloned().unwrap_or_default();
            reached.tables.iter().any(|(oid, schema, table)| {
                (*schema == t.schema && *table == t.name) || first == Some(*oid) || now.contains(oid)
            })
        }))
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
    // The tables whose rows' change runs code: user triggers, rules, row security, a column
    // of a domain, a default, CHECK or index over a user's function or operator — one set,
    // read once (a check per table reached would make the planner's estimate of the
    // recursion's size cost seconds of JIT compilation).
    let user = format!(
        "((d.refclassid{eq}{proc} AND EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.oid{eq}d.refobjid \
             AND p.pronamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid)) \
         OR (d.refclassid{eq}{op} AND EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oid{eq}d.refobjid \
             AND o.oprnamespace OPERATOR(pg_catalog.<>) 11::pg_catalog.oid)))",
        proc = cls("pg_proc"),
        op = cls("pg_operator"),
    );
    let code = format!(
        "code(rel) AS (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE NOT g.tgisinternal \
           UNION SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relhasrules OR t.relrowsecurity \
           UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type y ON y.oid{eq}a.atttypid \
             WHERE y.typtype{eq}'d'::pg_catalog.\"char\" AND NOT a.attisdropped \
           UNION SELECT ad.adrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad \
             ON d.classid{eq}{attrdef} AND d.objid{eq}ad.oid WHERE {user} \
           UNION SELECT k.conrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_constraint k \
             ON d.classid{eq}{con} AND d.objid{eq}k.oid WHERE {user} \
           UNION SELECT x.indrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_index x \
             ON d.classid{eq}{class} AND d.objid{eq}x.indexrelid WHERE {user})",
        attrdef = cls("pg_attrdef"),
        con = cls("pg_constraint"),
        class = cls("pg_class"),
    );
    format!(
        "(WITH RECURSIVE \
           r(first, rel, ev, acted) AS (\
             SELECT e.ev, s.oid, e.ev, false FROM pg_catalog.pg_class s CROSS JOIN (VALUES ('u'::pg_catalog.text), ('d'::pg_catalog.text)) e(ev) \
               WHERE s.relname{eq}c.relname \
             UNION \
             SELECT r.first, n.rel, n.ev, n.acted OR r.acted FROM r CROSS JOIN LATERAL (\
               SELECT k.conrelid, CASE WHEN r.ev{eq}'d'::pg_catalog.text AND k.confdeltype{eq}'c'::pg_catalog.\"char\" \
                 THEN 'd'::pg_catalog.text ELSE 'u'::pg_catalog.text END, true \
               FROM pg_catalog.pg_constraint k WHERE k.contype{eq}'f'::pg_catalog.\"char\" AND k.confrelid{eq}r.rel \
                 AND (CASE WHEN r.ev{eq}'u'::pg_catalog.text THEN k.confupdtype ELSE k.confdeltype END)\
                   {eq}ANY ('{{c,n,d}}'::pg_catalog.\"char\"[]) \
               UNION ALL \
               SELECT i.inhrelid, r.ev, false FROM pg_catalog.pg_inherits i WHERE i.inhparent{eq}r.rel\
             ) n(rel, ev, acted)), \
           up(first, rel) AS (\
             SELECT r.first, r.rel FROM r WHERE r.acted \
             UNION SELECT up.first, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid{eq}up.rel), \
           {code} \
         SELECT pg_catalog.json_agg(pg_catalog.json_build_array(up.first, t.oid, n.nspname, t.relname, \
           t.oid IN (SELECT code.rel FROM code)))::pg_catalog.text \
         FROM up JOIN pg_catalog.pg_class t ON t.oid{eq}up.rel \
           JOIN pg_catalog.pg_namespace n ON n.oid{eq}t.relnamespace)"
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
        let oid =
            get(1).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).and_then(|o| u32::try_from(o).ok());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_kind_and_fail_closed() {
        let a = answer(Some(r#"[["u", "16385", "public", "users", false], ["d", 7, "s", "t", true]]"#));
        assert_eq!(a.on_update, Reached { tables: vec![(16385, "public".into(), "users".into())], code: false });
        assert_eq!(a.on_delete, Reached { tables: vec![(7, "s".into(), "t".into())], code: true });
        assert_eq!(answer(None), Cascades::default());
        assert_eq!(answer(Some("nonsense")), Cascades::everything());
        assert_eq!(answer(Some(r#"[["x", 1, "s", "t", false]]"#)), Cascades::everything());
    }
}
