//! What a row written into a relation name evaluates that may move a sequence: each column's
//! default that mentions `nextval` or `setval` (with the column's name and the expression as
//! `pg_get_expr` prints it), and every other expression the write may evaluate that mentions
//! one — a table `CHECK`, a row-security policy, a trigger's definition, an index, a `CHECK` of
//! a column's domain (or of the domain that one is over). `guard::copies` reads it to let a
//! `COPY … FROM STDIN` (which cannot be wrapped in a pre-check) through when the only sequence
//! it moves is moved by a default it evaluates once per row, as an INSERT's identity check
//! allows.
//!
//! Asked in the same catalog question as the relation's other indirect effects (`super::query`),
//! for every relation of the name in any schema, cached and forgotten with them.
//!
//! Owns: the query's column, its answer and its cache. Does not own: the judgement
//! (`guard::copies`).

use dashmap::DashMap;
use std::sync::Arc;
use std::time::Instant;

/// The sequence-moving expressions a row written into a name may evaluate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowMoves {
    /// (column, its default's expression) for each default that mentions `nextval`/`setval`.
    pub defaults: Vec<(String, String)>,
    /// Some other expression mentions one (or the answer could not be read).
    pub other: bool,
}

/// (database, relation name) → its row moves, when learned.
#[derive(Default)]
pub(super) struct Cache(DashMap<(String, String), (Arc<RowMoves>, Instant)>);

impl Cache {
    pub(super) fn learn(&self, database: &str, name: &str, m: RowMoves, at: Instant) {
        self.0.insert((database.to_string(), name.to_string()), (Arc::new(m), at));
    }

    pub(super) fn forget(&self, database: &str) {
        self.0.retain(|(db, _), _| db != database);
    }
}

impl super::Catalog {
    /// What a row written into `name` may evaluate that moves a sequence, when known and fresh
    /// (else ask [`super::Question::Indirect`]).
    pub fn row_moves(&self, database: &str, name: &str) -> Option<Arc<RowMoves>> {
        let e = self.copies.0.get(&super::namekey::of(database, name) as &dyn super::namekey::Parts<2>)?;
        (e.1.elapsed() < super::TTL).then(|| e.0.clone())
    }
}

/// The worst answer: something that cannot be judged moves a sequence.
pub(super) fn unknown() -> RowMoves {
    RowMoves { defaults: Vec::new(), other: true }
}

/// The column of `super::query` (grouped by `c.relname`): a JSON array of `[column, expression]`
/// (a default) or `[null, expression]` (anything else) for every expression of the relations
/// named `c.relname` that mentions `nextval` or `setval`, or NULL for none.
///
/// `OFFSET 0` keeps the planner from pushing that test on `e.expr` down to the scans of
/// `pg_attrdef`, `pg_index`, …, where it would print the expressions of every relation in the
/// database before the join keeps those named `c.relname`: printing opens the relation, and
/// opening a temporary one (a temporary table's TOAST index, its default) marks the client's
/// transaction as having used temporary objects, which `PREPARE TRANSACTION` then refuses.
pub(super) fn column() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let mentions = "OPERATOR(pg_catalog.~*) '(nextval|setval)'::pg_catalog.text";
    let expr = |e: &str, rel: &str| format!("pg_catalog.pg_get_expr({e}, {rel})");
    format!(
        "(SELECT pg_catalog.json_agg(pg_catalog.json_build_array(e.col, e.expr))::pg_catalog.text FROM (\
           SELECT a.attname::pg_catalog.text, {def} FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_attrdef ad ON ad.adrelid{eq}x.oid \
             JOIN pg_catalog.pg_attribute a ON a.attrelid{eq}x.oid AND a.attnum{eq}ad.adnum \
             WHERE x.relname{eq}c.relname \
           UNION ALL SELECT NULL, {check} FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_constraint k ON k.conrelid{eq}x.oid WHERE x.relname{eq}c.relname AND k.conbin IS NOT NULL \
           UNION ALL SELECT NULL, pg_catalog.concat_ws(' ', {qual}, {with}) FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_policy p ON p.polrelid{eq}x.oid WHERE x.relname{eq}c.relname \
           UNION ALL SELECT NULL, pg_catalog.pg_get_triggerdef(g.oid) FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_trigger g ON g.tgrelid{eq}x.oid WHERE x.relname{eq}c.relname \
           UNION ALL SELECT NULL, pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_index i ON i.indrelid{eq}x.oid WHERE x.relname{eq}c.relname \
           UNION ALL SELECT NULL, pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_class x \
             JOIN pg_catalog.pg_attribute a ON a.attrelid{eq}x.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
             JOIN pg_catalog.pg_type y ON y.oid{eq}a.atttypid AND y.typtype{eq}'d'::pg_catalog.\"char\" \
             JOIN pg_catalog.pg_constraint k ON k.contypid{eq}y.oid OR k.contypid{eq}y.typbasetype \
             WHERE x.relname{eq}c.relname \
           OFFSET 0\
         ) e(col, expr) WHERE e.expr {mentions} OR e.expr IS NULL)",
        def = expr("ad.adbin", "ad.adrelid"),
        check = expr("k.conbin", "k.conrelid"),
        qual = expr("p.polqual", "p.polrelid"),
        with = expr("p.polwithcheck", "p.polrelid"),
    )
}

/// Reads the column (`None`: NULL, or no row for the name — nothing moves; what cannot be
/// read: [`unknown`]).
pub(super) fn answer(json: Option<&str>) -> RowMoves {
    let Some(json) = json else { return RowMoves::default() };
    let Ok(serde_json::Value::Array(rows)) = serde_json::from_str::<serde_json::Value>(json) else {
        return unknown();
    };
    let mut m = RowMoves::default();
    for row in rows {
        match (row.get(0), row.get(1).and_then(|v| v.as_str())) {
            (Some(serde_json::Value::String(col)), Some(expr)) => m.defaults.push((col.clone(), expr.to_string())),
            _ => m.other = true,
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kept_apart_and_the_unreadable_is_the_worst() {
        let m = answer(Some(r#"[["id", "(- nextval('s'::regclass))"], [null, "CHECK (nextval('s') > 0)"]]"#));
        assert_eq!(m.defaults, vec![("id".to_string(), "(- nextval('s'::regclass))".to_string())]);
        assert!(m.other);
        assert_eq!(answer(None), RowMoves::default());
        assert_eq!(answer(Some("[[\"id\", null]]")), unknown());
        assert_eq!(answer(Some("{")), unknown());
    }
}
