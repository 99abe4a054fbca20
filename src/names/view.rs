//! What a write to a relation reaches besides it, as `super::sql::relations_query` answers:
//! a view's bases at every level and their inheritance relatives, its columns followed to
//! theirs, and the views on the way whose INSTEAD OF trigger or rule takes a write over.
//!
//! Owns: [`View`] and reading it from the answer. Does not own: the SQL (`super::sql`), what
//! the reach means for the rules (`super::reach`, `policy::decide`).

use crate::analyze::Op;

/// What a write to a relation reaches besides the relation itself: through a view, the
/// relations its rule reads at every level (a view over a view over a table), and for a table
/// (or a view's base) its inheritance parents and children and partitions, whose rows a write
/// to it changes (or that share its rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Every relation reached (by OID).
    pub bases: Vec<u32>,
    /// Its columns as (its column, relation reached, that relation's column): a view's column
    /// followed through every level to the column it shows (by attnum), and on to the column of
    /// that name of each inheritance relative.
    pub columns: Vec<(String, u32, String)>,
    /// The views on the way (the relation itself included) with an INSTEAD OF trigger or a
    /// rule, as (the writes it takes over: `i`, `u`, `d`; the view's schema.name): a write of
    /// those kinds goes wherever the trigger or rule says, not through the view's columns.
    pub instead: Vec<(String, String)>,
    /// The relation's own inheritance children and partitions (among `bases`): `ONLY` does
    /// not write them.
    pub below: Vec<u32>,
    /// Every relation a view's rule reads, at every level, as (schema, name, its definition
    /// as `pg_get_viewdef` prints it: `None` for a relation that is not a view, or whose
    /// definition could not be read): what `super::expand` follows from the view written to
    /// its base table. Empty for a relation that is not a view.
    pub defs: Vec<Def>,
}

/// A relation a view reads: (schema, name, its definition when it is a view).
pub type Def = (String, String, Option<String>);

impl View {
    /// The view on the way whose trigger or rule takes over a write of this kind, if any.
    pub fn taken_over(&self, op: &Op) -> Option<&str> {
        let kinds: &[char] = match op {
            Op::Delete | Op::MergeDelete => &['d'],
            Op::Update { .. } | Op::MergeUpdate { .. } => &['u'],
            Op::Upsert { .. } => &['i', 'u'],
            _ => &[],
        };
        self.instead.iter().find(|(ops, _)| ops.contains(kinds)).map(|(_, v)| v.as_str())
    }
}

/// Reads a [`View`] from the answer of [`relations_query`] (`None`: it reaches nothing else).
pub(super) fn reaches_answer(bases: Option<&str>, columns: Option<&str>, instead: Option<&str>) -> Option<View> {
    let bases: Vec<u32> = bases.unwrap_or("").split(',').filter_map(|b| b.trim().parse().ok()).collect();
    let instead: Vec<(String, String)> = instead
        .unwrap_or("")
        .split('\u{1e}')
        .filter_map(|e| e.split_once('\u{1f}'))
        .map(|(ops, v)| (ops.to_string(), v.to_string()))
        .collect();
    if bases.is_empty() && instead.is_empty() {
        return None;
    }
    let columns = columns
        .unwrap_or("")
        .split('\u{1e}')
        .filter_map(|e| {
            let mut f = e.splitn(3, '\u{1f}');
            let (col, rel, base) = (f.next()?, f.next()?.parse().ok()?, f.next()?);
            Some((col.to_string(), rel, base.to_string()))
        })
        .collect();
    Some(View { bases, columns, instead, defs: Vec::new(), below: Vec::new() })
}

impl View {
    /// With the relations its rule reads, from the `defs` column of [`relations_query`]
    /// (see [`View::defs`]).
    pub(super) fn with_defs(mut self, defs: Option<&str>) -> View {
        self.defs = read_defs(defs);
        self
    }
}

fn read_defs(defs: Option<&str>) -> Vec<Def> {
    // `kind,schema,name,definition` per relation, each field hex (a name or a definition
    // may hold any character); an entry that does not read is a view whose definition is
    // unknown (`None`), so that following it fails closed.
    defs.unwrap_or("")
        .split(';')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let f: Vec<Option<String>> = e.split(',').map(unhex).collect();
            match f.as_slice() {
                [Some(kind), Some(schema), Some(name), def] => {
                    (schema.clone(), name.clone(), if kind == "v" { def.clone().or(Some(String::new())) } else { None })
                }
                _ => (String::new(), String::new(), Some(String::new())),
            }
        })
        .collect()
}

/// Hex (`pg_catalog.encode(…, 'hex')`) back to text; `None` when it is not hex of UTF-8.
fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    String::from_utf8(bytes?).ok()
}
