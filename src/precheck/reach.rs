//! Deletes whose reach the catalog proves, counted on a few tables' counters. A DELETE written
//! as nothing but `DELETE FROM [ONLY] [schema.]table WHERE` and columns of a unique index (the
//! point proof's: built-in types, no `=` of a user's) compared with constants, on a plain table
//! whose rows' deletion runs nobody's code but its foreign keys' `ON DELETE CASCADE` — no user
//! trigger, rule, inheritance child or row security on it or on any table those cascades
//! reach, no `SET NULL`/`SET DEFAULT` action into any of them — changes rows of those tables
//! and nothing else: no object is moved, dropped or rewritten, no sequence moves, no prepared
//! statement or cursor appears. Its counter readings then read only those tables (and the
//! policy's limited ones) by OID, without the protected objects' identity: with `[defaults]`
//! limits in a database of 500 tables, every table's counters cost the server about 0.5 ms per
//! reading.
//!
//! The proof is cached beside the point proofs (same lifetime and invalidation) and asserted
//! again in every reading, inside the write's transaction: DDL committed before the write took
//! its locks (a trigger or cascading foreign key added, a table of the same name earlier in the
//! path, a column's type changed) fails the reading, the write is rolled back and refused as
//! unverifiable, and the proof is dropped, so the next one is counted on every table again.
//!
//! Owns: which deletes qualify (`plain_text`), the catalog question, the reading and its
//! assertion. Does not own: the counting (`verify`), the point proof (`point`).

use super::point::{relations, unique_bound, Point, Proof, Proofs, TYPES};
use super::{literal, Backend, CheckPlan, PrecheckError};
use std::sync::Arc;

/// The first column of the assertion's row in a reading.
pub const MARK: &str = "blastwall:reach";

/// The tables a proven DELETE can change, and what the catalog showed of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// (OID, schema, name) of every table it can change, the target's first.
    tables: Vec<(u32, String, String)>,
    /// The relations under the target's name (all of them are in `tables`).
    named: Vec<u32>,
    /// Every trigger on those tables (the cascades' own), to see one added or replaced.
    triggers: Vec<u32>,
    /// The columns the text compares, all of a unique index of built-in types.
    pins: Vec<String>,
    /// Some table it reaches has a deferrable trigger (a deferrable foreign key's or
    /// constraint's): its events may wait for the COMMIT.
    deferrable: bool,
}

/// The catalog's proof of what `p` reaches (from the cache, else asked: one round trip), when
/// the text qualifies. `proof`: the point proof of the same write.
pub async fn proven(
    b: &mut Backend<'_>,
    plan: &CheckPlan,
    proof: Option<&Proof>,
    proofs: &Proofs,
    database: &str,
    generation: u64,
) -> Result<Option<Arc<Reach>>, PrecheckError> {
    let (Some(p), Some(proof)) = (plan.point.as_ref(), proof) else { return Ok(None) };
    let Some((cols, _)) = unique_bound(proof, p) else { return Ok(None) };
    if !p.delete || !p.pins.iter().all(|(c, _)| cols.contains(c)) || !plain_text(&plan.statement, p) {
        return Ok(None);
    }
    if let Some(r) = proofs.reach(database, p, generation) {
        return Ok(r);
    }
    let a = b.query(&proof_sql(p)).await?;
    let reach = match a.error {
        Some(_) => None,
        None => read(&a.rows, &cols),
    };
    proofs.learn_reach(database, p, reach.clone().map(Arc::new), generation);
    Ok(reach.map(Arc::new))
}

/// Whether the text is `DELETE FROM [ONLY] [schema.]name WHERE` followed by nothing but the
/// pinned columns, numbers, plain string literals, `=`, `AND`, `IN (…)`, `ANY (…)` and
/// `ARRAY[…]`: no other column, table, function, operator, cast, subquery or comment.
fn plain_text(text: &str, p: &Point) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains('"') {
        return false;
    }
    let mut words: Vec<String> =
        ["delete", "from", "only", "where", "and", "in", "any", "array"].iter().map(|w| w.to_string()).collect();
    words.push(p.name.to_ascii_lowercase());
    words.extend(p.schema.iter().map(|s| s.to_ascii_lowercase()));
    words.extend(p.pins.iter().map(|(c, _)| c.to_ascii_lowercase()));
    let chars: Vec<char> = lower.chars().collect();
    let mut i = 0;
    let mut seen = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A plain literal; '' inside it is a quote.
            i += 1;
            loop {
                match chars.get(i) {
                    None => return false,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                    Some('\'') => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if !word.chars().all(|c| c.is_ascii_digit()) && !words.contains(&word) {
                return false;
            }
            seen.push(word);
        } else if c.is_whitespace() || "=(),;[]".contains(c) {
            i += 1;
        } else if c == '-' || c == '.' {
            // A minus only as a negative number's sign (folded into the constant, no operator
            // looked up; never a comment); a dot only after the schema's name (no decimal: a
            // numeric comparison is an operator of another type).
            let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
            let sign = c == '-'
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && before.is_some_and(|b| "=(,[".contains(*b));
            let dot = c == '.'
                && i > 0
                && chars[i - 1].is_ascii_alphanumeric()
                && p.schema.as_ref().is_some_and(|s| seen.last() == Some(&s.to_ascii_lowercase()));
            if !(sign || dot) {
                return false;
            }
            i += 1;
        } else {
            return false;
        }
    }
    seen.first().map(String::as_str) == Some("delete") && seen.iter().filter(|w| *w == "where").count() == 1
}

/// The catalog question: every table the name's relations reach through `ON DELETE CASCADE`
/// foreign keys, at any depth, each with whether its rows' deletion runs nobody's code, and its
/// triggers. Every function and operator from `pg_catalog`.
fn proof_sql(p: &Point) -> String {
    let (from, cond) = relations(p);
    let eq = "OPERATOR(pg_catalog.=)";
    format!(
        "WITH RECURSIVE reach(rel) AS (SELECT c.oid FROM {from} WHERE {cond} \
           UNION SELECT f.conrelid FROM pg_catalog.pg_constraint f, reach \
           WHERE f.contype {eq} 'f' AND f.confrelid {eq} reach.rel AND f.confdeltype {eq} 'c') \
         SELECT c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, \
           (c.relkind {eq} 'r' AND NOT c.relhasrules AND NOT c.relhassubclass AND NOT c.relrowsecurity \
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid {eq} c.oid AND NOT t.tgisinternal) \
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint f WHERE f.contype {eq} 'f' AND f.confrelid {eq} c.oid \
              AND f.confdeltype::pg_catalog.text {eq} ANY ('{{n,d}}'::pg_catalog.text[])))::pg_catalog.text, \
           (SELECT pg_catalog.string_agg(t.oid::pg_catalog.text, ',') FROM pg_catalog.pg_trigger t \
             WHERE t.tgrelid {eq} c.oid), \
           (c.oid {eq} ANY (ARRAY(SELECT c.oid FROM {from} WHERE {cond})))::pg_catalog.text, \
           EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid {eq} c.oid AND t.tgdeferrable)::pg_catalog.text \
         FROM reach JOIN pg_catalog.pg_class c ON c.oid {eq} reach.rel \
           JOIN pg_catalog.pg_namespace n ON n.oid {eq} c.relnamespace"
    )
}

/// Reads the catalog's answer: `None` unless every table qualifies.
fn read(rows: &[Vec<Option<String>>], cols: &[String]) -> Option<Reach> {
    let mut reach = Reach { pins: cols.to_vec(), ..Reach::default() };
    for r in rows {
        let get = |i: usize| r.get(i).and_then(|v| v.clone());
        let oid = get(0)?.parse::<u32>().ok()?;
        if get(3).as_deref() != Some("true") {
            return None;
        }
        let entry = (oid, get(1)?, get(2)?);
        match get(5).as_deref() == Some("true") {
            true => {
                reach.named.push(oid);
                reach.tables.insert(0, entry);
            }
            false => reach.tables.push(entry),
        }
        reach.triggers.extend(get(4).unwrap_or_default().split(',').filter_map(|t| t.parse::<u32>().ok()));
        reach.deferrable |= get(6).as_deref() != Some("false");
    }
    reach.named.sort_unstable();
    reach.triggers.sort_unstable();
    (!reach.named.is_empty()).then_some(reach)
}

/// An `oid[]` literal.
fn oids(v: &[u32]) -> String {
    format!("'{{{}}}'::pg_catalog.oid[]", v.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
}

impl Reach {
    /// Its tables: schema and name as literals, and OID.
    pub fn values(&self) -> impl Iterator<Item = (String, String, u32)> + '_ {
        self.tables.iter().map(|(oid, s, n)| (literal(s), literal(n), *oid))
    }

    /// Whether a table it reaches has a deferrable trigger (else nothing it queues waits for
    /// the COMMIT, which the assertion keeps true).
    pub fn defers(&self) -> bool {
        self.deferrable
    }

    /// Its tables: schema, name and OID.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, u32)> + '_ {
        self.tables.iter().map(|(oid, s, n)| (s.as_str(), n.as_str(), *oid))
    }

    /// A reading's row that fails unless the catalog still proves what the write reaches: the
    /// same relations under its name, still plain tables without rules, children or row
    /// security, the same triggers on every table it reaches (a trigger or a foreign key added
    /// or replaced changes them), none deferrable where none was (a constraint altered in
    /// place keeps its triggers), its compared columns of the same built-in types, and no `=`
    /// of a user's. Index lookups, apart from the few `=` operators.
    pub fn assertion(&self, p: &Point) -> String {
        let (from, cond) = relations(p);
        let eq = "OPERATOR(pg_catalog.=)";
        let rels: Vec<u32> = self.tables.iter().map(|t| t.0).collect();
        let deferrable = match self.deferrable {
            true => String::new(),
            false => format!(" AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid {eq} ANY ({}) AND t.tgdeferrable)", oids(&rels)),
        };
        let pins = format!(
            "ARRAY[{}]::pg_catalog.text[]",
            self.pins.iter().map(|c| literal(c)).collect::<Vec<_>>().join(", ")
        );
        format!(
            "SELECT '{MARK}'::pg_catalog.text, (CASE WHEN \
               coalesce((SELECT pg_catalog.array_agg(c.oid ORDER BY c.oid) FROM {from} WHERE {cond}), '{{}}') {eq} {named} \
               AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.oid {eq} ANY ({rels}) \
                 AND c.relkind {eq} 'r' AND NOT c.relhasrules AND NOT c.relhassubclass AND NOT c.relrowsecurity) {eq} {k} \
               AND coalesce((SELECT pg_catalog.array_agg(t.oid ORDER BY t.oid) FROM pg_catalog.pg_trigger t \
                 WHERE t.tgrelid {eq} ANY ({rels})), '{{}}') {eq} {triggers}{deferrable} \
               AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute a WHERE a.attrelid {eq} ANY ({named}) \
                 AND a.attname::pg_catalog.text {eq} ANY ({pins}) AND a.atttypid {eq} ANY ({TYPES}) AND NOT a.attisdropped) \
                 {eq} {cells} \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oprname {eq} '=' \
                 AND o.oprnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace \
                 AND (o.oprleft {eq} ANY ({TYPES}) OR o.oprright {eq} ANY ({TYPES}))) \
             THEN '0' ELSE 'blastwall: the catalog no longer proves what this write reaches' END)::pg_catalog.int4::pg_catalog.text, \
             0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.oid",
            named = oids(&self.named),
            rels = oids(&rels),
            k = rels.len(),
            triggers = oids(&self.triggers),
            cells = self.named.len() * self.pins.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(pins: &[&str]) -> Point {
        Point {
            delete: true,
            schema: None,
            name: "pgbench_guarded".into(),
            pins: pins.iter().map(|c| (c.to_string(), 1)).collect(),
            ops: vec!["=".into()],
        }
    }

    #[test]
    fn only_the_table_its_pinned_columns_and_constants_qualify() {
        let p = point(&["aid"]);
        assert!(plain_text("DELETE FROM pgbench_guarded WHERE aid = 123;", &p));
        assert!(plain_text("delete from only pgbench_guarded where aid in (1, 2) and aid = any ('{3,4}')", &p));
        assert!(plain_text("DELETE FROM pgbench_guarded WHERE aid = ANY (ARRAY[1, -2])", &p));
        for text in [
            "DELETE FROM pgbench_guarded WHERE aid = 1 AND bid = 2",
            "DELETE FROM pgbench_guarded WHERE aid = 1 OR true",
            "DELETE FROM pgbench_guarded WHERE aid @@ 1",
            "DELETE FROM pgbench_guarded WHERE aid = f(1)",
            "DELETE FROM pgbench_guarded WHERE aid = 1::int",
            "DELETE FROM pgbench_guarded WHERE aid IN (SELECT aid FROM v)",
            "DELETE FROM pgbench_guarded USING v WHERE aid = 1",
            "DELETE FROM pgbench_guarded WHERE aid = 1 RETURNING *",
            "DELETE FROM pgbench_guarded WHERE aid = 1 -- x",
            "DELETE FROM pgbench_guarded WHERE aid = 1 /* x */",
            "DELETE FROM pgbench_guarded WHERE aid = 1 - 1",
            "DELETE FROM pgbench_guarded WHERE aid = 1.5",
            "DELETE FROM x.pgbench_guarded WHERE aid = 1",
            "DELETE FROM pgbench_guarded WHERE aid = 'a\\'' OR x = 'b'",
            "DELETE FROM \"pgbench_guarded\" WHERE aid = 1",
            "DELETE FROM pgbench_guarded WHERE aid = 'unterminated",
            "WITH x AS (SELECT 1) DELETE FROM pgbench_guarded WHERE aid = 1",
        ] {
            assert!(!plain_text(text, &p), "{text}");
        }
    }

    #[test]
    fn every_reached_table_must_qualify_and_the_target_comes_first() {
        let row = |oid: &str, ok: &str, named: &str| {
            vec![oid, "public", "t", ok, "7,8", named, "false"]
                .into_iter()
                .map(|s| Some(s.to_string()))
                .collect::<Vec<_>>()
        };
        let cols = vec!["aid".to_string()];
        let r = read(&[row("20", "true", "false"), row("10", "true", "true")], &cols).unwrap();
        assert_eq!((r.tables[0].0, r.named.clone(), r.triggers.len()), (10, vec![10], 4));
        assert!(!r.defers());
        assert!(r.assertion(&point(&["aid"])).contains("AND t.tgdeferrable)"));
        // A deferrable trigger on any of them (or no answer about it).
        let mut deferred = row("20", "true", "false");
        deferred[6] = Some("true".into());
        let r = read(&[deferred, row("10", "true", "true")], &cols).unwrap();
        assert!(r.defers() && !r.assertion(&point(&["aid"])).contains("tgdeferrable"));
        let mut unknown = row("10", "true", "true");
        unknown.truncate(6);
        assert!(read(&[unknown], &cols).unwrap().defers());
        assert!(read(&[row("10", "true", "true"), row("20", "false", "false")], &cols).is_none());
        assert!(read(&[row("20", "true", "false")], &cols).is_none());
    }
}
