//! A generator of DELETE/UPDATE/MERGE statements against a table `T(id bigint primary key,
//! k int, s text)` whose `id` is protected, with predicates built from atoms on `id` (point
//! lookups and every spelling of a range), on the unprotected `k`/`s`, and constants, joined by
//! AND/OR/NOT, in plain, aliased, CTE and MERGE forms. Besides the text it records what the
//! generator knows independently of blastwall: how many literal values its `id` atoms name
//! (an upper bound on the rows a point write can change) and whether the target's `id` is
//! mentioned at all. Shared by `tests/fuzz` (the analyzer) and `tests/it/oracle.rs` (the oracle
//! on a real server).

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub struct Generated {
    pub sql: String,
    /// Literal values named by atoms on the target's `id` (each can pin at most one row).
    pub id_literals: usize,
    /// Whether an atom reads the target's `id`.
    pub mentions_id: bool,
    /// Whether atoms on other columns (`k`, `s`) take part.
    pub mentions_other: bool,
}

#[derive(Debug, Clone)]
struct Pred {
    text: String,
    id_literals: usize,
    mentions_id: bool,
    mentions_other: bool,
}

/// The table a statement targets: its name, the ids its rows have (point lookups mostly pick
/// these), atoms on its unprotected columns, and what an UPDATE sets.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub table: &'static str,
    pub ids: &'static [i64],
    pub others: &'static [&'static str],
    pub set: &'static str,
}

const FZ_IDS: [i64; 20] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
const FZ_OTHERS: [&str; 7] =
    ["k = 1", "k < 2", "k <> 0", "k IN (0, 2)", "s LIKE 'row 1%'", "s IS NOT NULL", "k = (SELECT 1)"];

fn lit(ids: &'static [i64]) -> impl Strategy<Value = i64> {
    prop_oneof![8 => proptest::sample::select(ids), 1 => -5i64..0, 1 => 21i64..100]
}

/// An atom on the target's id; `q` is how the target is named (`T`, an alias, …).
fn id_atom(q: String, ids: &'static [i64]) -> impl Strategy<Value = Pred> {
    let lits = proptest::collection::vec(lit(ids), 1..5);
    let ranges: Vec<usize> = (9..44).collect();
    // Point lookups (0..=8) as often as all the range spellings together.
    (
        prop_oneof![0usize..9, proptest::sample::select(ranges)],
        lit(ids),
        lit(ids),
        lits,
        proptest::sample::select(vec!["", "\"id\"", "Q.id"]),
    )
        .prop_map(move |(n, a, b, list, spelling)| {
            let c = match spelling {
                "" => "id".to_string(),
                "Q.id" => format!("{q}.id"),
                s => s.to_string(),
            };
            let l = list.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            let w = 1 + (a ^ b).rem_euclid(24);
            let (text, lits) = match n {
                0 => (format!("{c} = {a}"), 1),
                1 => (format!("{a} = {c}"), 1),
                2 => (format!("{c} IN ({l})"), list.len()),
                3 => (format!("{c} = ANY (ARRAY[{l}])"), list.len()),
                4 => (format!("{c} = ANY ('{{{l}}}')"), list.len()),
                5 => (format!("{c} IS NOT DISTINCT FROM {a}"), 1),
                6 => (format!("{c} = ({a})"), 1),
                7 => (format!("{c} = {a} + 0"), 2),
                8 => (format!("{c} IS NULL"), 0),
                9 => (format!("{c} BETWEEN {a} AND {b}"), 2),
                10 => (format!("{c} < {a}"), 1),
                11 => (format!("{c} >= {a}"), 1),
                12 => (format!("{c} <> {a}"), 1),
                13 => (format!("{c} NOT IN ({l})"), list.len()),
                14 => (format!("{c}::text = '{a}'"), 1),
                15 => (format!("abs({c}) = {a}"), 1),
                16 => (format!("{c} + 0 = {a}"), 2),
                // Series stay short (ids can lie millions apart): `{a}` to `{a} + {w}`.
                17 => (format!("{c} IN (SELECT x FROM generate_series({a}, {a} + {w}) x)"), 2),
                18 => (format!("{c} = (SELECT max(x) FROM generate_series({a} - {w}, {a}) x)"), 1),
                19 => (format!("{c} = {c}"), 0),
                20 => (format!("{c} IS NOT NULL"), 0),
                21 => (format!("{c} = COALESCE(NULL, {c})"), 0),
                22 => (format!("{c} > ALL (ARRAY[{l}])"), list.len()),
                23 => (format!("{c} IS DISTINCT FROM {a}"), 1),
                24 => (format!("({c} = {a}) IS TRUE"), 1),
                25 => (format!("CASE WHEN {c} < {a} THEN true END"), 1),
                26 => (format!("{c} IN ({a}, {c})"), 1),
                27 => (format!("{c}::text LIKE '{a}%'"), 1),
                28 => (format!("{c} = ANY (SELECT x FROM generate_series({a}, {a} + {w}) x)"), 2),
                29 => (format!("{c} % 2 = 0"), 2),
                30 => (format!("{c} IN ({a}) OR {c} IN ({b})"), 2),
                31 => (format!("{c} = GREATEST({a}, {b})"), 2),
                // Arrays and lists whose length the text does not show.
                32 => (format!("{c} = ANY (string_to_array('{l}', ', ')::bigint[])"), 1),
                33 => (format!("{c} = ANY ('{{{l}}}'::bigint[])"), list.len()),
                34 => (format!("{c} = ANY (ARRAY(SELECT x FROM generate_series({a}, {a} + {w}) x))"), 1),
                35 => (format!("{c} = ANY (ARRAY[{a}] || ARRAY[{l}])"), 1 + list.len()),
                36 => (format!("{c} IN (SELECT unnest('{{{l}}}'::bigint[]))"), list.len()),
                37 => (format!("{c} = ANY ((SELECT array_agg(x) FROM generate_series({a}, {a} + {w}) x))"), 1),
                38 => (format!("{c} = ANY (array_fill({a}::bigint, ARRAY[{w}]))"), 2),
                // Spellings of one value.
                39 => (format!("{c} = {a}::bigint"), 1),
                40 => (format!("{c} = '{a}'"), 1),
                41 => (format!("{c} = CAST('{a}' AS bigint)"), 1),
                42 => (format!("({c}) IN (({a}), ({b}))"), 2),
                _ => (format!("ROW({c}) = ROW({a})"), 1),
            };
            Pred { text, id_literals: lits, mentions_id: true, mentions_other: false }
        })
}

fn other_atom(atoms: &'static [&'static str]) -> impl Strategy<Value = Pred> {
    proptest::sample::select(atoms).prop_map(|t| Pred {
        text: t.into(),
        id_literals: 0,
        mentions_id: false,
        mentions_other: true,
    })
}

fn constant_atom() -> impl Strategy<Value = Pred> {
    proptest::sample::select(vec![
        "true",
        "1 = 1",
        "'a' = 'a'",
        "false",
        "NOT false",
        "(SELECT true)",
        "EXISTS (SELECT 1)",
        "random() < 2",
        "now() IS NOT NULL",
        "1 IN (1, 2)",
        "NULL IS NULL",
    ])
    .prop_map(|t| Pred { text: t.into(), id_literals: 0, mentions_id: false, mentions_other: false })
}

fn pred(q: String, schema: Schema) -> impl Strategy<Value = Pred> {
    let leaf = if schema.others.is_empty() {
        prop_oneof![5 => id_atom(q, schema.ids), 1 => constant_atom()].boxed()
    } else {
        prop_oneof![5 => id_atom(q, schema.ids), 2 => other_atom(schema.others), 1 => constant_atom()].boxed()
    };
    // Half the predicates are one atom (most often a point lookup that finds a row), half
    // are trees of atoms.
    let tree = leaf.clone().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            4 => (inner.clone(), inner.clone(), proptest::bool::weighted(0.7)).prop_map(|(a, b, and)| Pred {
                text: format!("({}) {} ({})", a.text, if and { "AND" } else { "OR" }, b.text),
                id_literals: a.id_literals + b.id_literals,
                mentions_id: a.mentions_id || b.mentions_id,
                mentions_other: a.mentions_other || b.mentions_other,
            }),
            1 => inner.prop_map(|a| Pred { text: format!("NOT ({})", a.text), ..a }),
        ]
    });
    prop_oneof![leaf, tree]
}

/// Statements against `table(id, k, s)` with ids 1 to 20 (unqualified name); `others`: whether
/// atoms on `k`/`s` are used.
pub fn statement(table: &'static str, others: bool) -> impl Strategy<Value = Generated> {
    let others: &'static [&'static str] = if others { &FZ_OTHERS } else { &[] };
    statement_on(Schema { table, ids: &FZ_IDS, others, set: "s = 'changed'" })
}

/// Statements against any table with an `id` column.
pub fn statement_on(schema: Schema) -> impl Strategy<Value = Generated> {
    let table = schema.table;
    (0usize..4, 0usize..8, proptest::bool::weighted(0.85)).prop_flat_map(move |(naming, form, has_where)| {
        let (target, q) = match naming {
            0 => (table.to_string(), table.to_string()),
            1 => (format!("public.{table}"), table.to_string()),
            2 => (format!("{table} AS t"), "t".to_string()),
            _ => (format!("ONLY {table} t"), "t".to_string()),
        };
        let merge_alias = if naming >= 2 { "t".to_string() } else { table.to_string() };
        let q = if form >= 6 { merge_alias.clone() } else { q };
        (pred(q.clone(), schema), pred(q, schema), lit(schema.ids)).prop_map(move |(p, when, x)| {
            let w = if has_where { format!(" WHERE {}", p.text) } else { String::new() };
            let set = schema.set;
            let mtarget = if naming >= 2 { format!("{table} t") } else { table.to_string() };
            let (sql, id_literals, mentions_id, mentions_other) = match form {
                0..=5 => {
                    let sql = match form {
                        0 | 1 => format!("DELETE FROM {target}{w}"),
                        2 | 3 => format!("UPDATE {target} SET {set}{w}"),
                        4 => format!("WITH d AS (DELETE FROM {target}{w} RETURNING 1) SELECT count(*) FROM d"),
                        _ => format!("WITH u AS (UPDATE {target} SET {set}{w} RETURNING 1) SELECT count(*) FROM u"),
                    };
                    (sql, p.id_literals, p.mentions_id, p.mentions_other)
                }
                6 => {
                    // MERGE: the ON condition is the predicate, a WHEN condition may narrow it.
                    let and = if has_where { format!(" AND {}", when.text) } else { String::new() };
                    let (l, i, o) = if has_where {
                        (p.id_literals + when.id_literals, p.mentions_id || when.mentions_id, p.mentions_other || when.mentions_other)
                    } else {
                        (p.id_literals, p.mentions_id, p.mentions_other)
                    };
                    (format!("MERGE INTO {mtarget} USING (SELECT {x} AS x) src ON {} WHEN MATCHED{and} THEN DELETE", p.text), l, i, o)
                }
                _ => (
                    // A join with the source (one row: one more value) or the predicate.
                    format!(
                        "MERGE INTO {mtarget} USING (SELECT {x} AS x) src ON {merge_alias}.id = src.x OR ({}) WHEN MATCHED THEN UPDATE SET {set}",
                        p.text
                    ),
                    p.id_literals + 1,
                    true,
                    p.mentions_other,
                ),
            };
            let where_less = !has_where && form <= 5;
            Generated {
                sql,
                id_literals: if where_less { 0 } else { id_literals },
                mentions_id: !where_less && mentions_id,
                mentions_other: !where_less && mentions_other,
            }
        })
    })
}
