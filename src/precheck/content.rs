//! A policy table rewritten by DDL that keeps its data — `ADD COLUMN … DEFAULT
//! gen_random_uuid()`, `ALTER COLUMN email TYPE varchar(320)`, `SET ACCESS METHOD`, `SET
//! TABLESPACE`, `CLUSTER` — is told from one that changes it (`ALTER … TYPE text USING NULL`,
//! `USING lower(email)`) by its rows' content, not by its storage: the identity check
//! (`identity`) sees a new `relfilenode` (and a column's new type) in both.
//!
//! For a statement that may rewrite (its text: `rewritten`), each policy table whose rewrite or
//! column change would be refused, named by it (or a child of a table named by it), is read
//! before and after the statement, in the counter readings: its row count and, per column that
//! exists (by attnum), two 64-bit sums over its rows of `hashtextextended` of the row's key
//! (its primary key, else a unique index over `NOT NULL` columns without expressions) and the
//! column's text representation. Equal before and after, for every column that existed before:
//! the rewrite and the type changes are not changes of the data, and are not refused (a column
//! renamed or dropped, the table moved, a child gone still are). Different: the change's words
//! say which column's content changed. A table without such a key, with row security, that the
//! role cannot read, or larger than [`CAP`] is not read: the rewrite is refused as before,
//! saying why. The digest guards against mistakes (a `USING` that loses or changes values), not
//! against a table's owner who crafts values whose sums collide.
//!
//! The query is built on the server from the catalog (columns by attnum, names quoted by
//! `format('%I')`) and run by `pg_catalog.query_to_xml`, every function `pg_catalog`'s.
//!
//! Owns: which statements are read by content, the digest's query and the judgement. Does not
//! own: the rest of the identity snapshot (`identity`).

use super::identity::{first_word, Change, Identity, Kind, CHILD_GONE};
use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// A table larger than this (`pg_table_size`, its children's summed) is not read by content.
pub const CAP: u64 = 256 * 1024 * 1024;

/// The relation names a statement's text may rewrite while keeping its rows: `ALTER TABLE` with
/// `ADD COLUMN` carrying a default, identity or generation (any constraint), `ALTER COLUMN …
/// TYPE`, `SET ACCESS METHOD`, `SET TABLESPACE`, `SET LOGGED`/`UNLOGGED`; `CLUSTER`. Empty for
/// anything else, or a text that does not parse.
pub fn rewritten(statement: &str) -> Vec<String> {
    let Ok(tree) = pg_query::parse(statement, pg_query::ParserOptions::DEFAULT) else { return Vec::new() };
    let mut names = Vec::new();
    for raw in &tree.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::AlterTableStmt(a)) if a.objtype == pb::ObjectType::ObjectTable as i32 => {
                let rewrites = a.cmds.iter().any(|c| match c.node.as_ref() {
                    Some(NodeEnum::AlterTableCmd(cmd)) => rewrites(cmd),
                    _ => false,
                });
                if let (true, Some(r)) = (rewrites, &a.relation) {
                    names.push(r.relname.clone());
                }
            }
            Some(NodeEnum::ClusterStmt(c)) => names.extend(c.relation.as_ref().map(|r| r.relname.clone())),
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

fn rewrites(cmd: &pb::AlterTableCmd) -> bool {
    use pb::AlterTableType as T;
    let kind = cmd.subtype;
    let with_constraint = || match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::ColumnDef(d)) => !d.constraints.is_empty() || d.raw_default.is_some(),
        _ => false,
    };
    [T::AtAlterColumnType, T::AtSetAccessMethod, T::AtSetTableSpace, T::AtSetLogged, T::AtSetUnLogged]
        .iter()
        .any(|t| *t as i32 == kind)
        || (kind == T::AtAddColumn as i32 && with_constraint())
}

/// The identity snapshot's branch (over its CTEs `r` and `tree`) that reads each policy table
/// marked `dig`, named by `names` (or whose parent is), by content: item `digest`, value `rows
/// attnum:sum,sum …`, or why it was not read (`no key`, …).
pub fn sql(names: &[String]) -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    let list: Vec<String> = names.iter().map(|n| super::literal(n)).collect();
    let names = format!("ARRAY[{}]::pg_catalog.name[]", list.join(", "));
    // The key: the primary key, else a unique index over NOT NULL columns without expressions
    // or a predicate — the one with the lowest attnums, so that an index rebuilt by the
    // statement (with a new OID) is the same choice.
    let key = format!(
        "(SELECT x.indkey::pg_catalog.int2[] FROM pg_catalog.pg_index x WHERE x.indrelid {eq} r.oid \
           AND x.indisunique AND x.indisvalid AND x.indexprs IS NULL AND x.indpred IS NULL \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid {eq} r.oid \
             AND a.attnum {eq} ANY (x.indkey::pg_catalog.int2[]) AND NOT a.attnotnull) \
           ORDER BY x.indisprimary DESC, x.indkey::pg_catalog.int2[] LIMIT 1)"
    );
    // Per column: the key's text and the column's, by their types' output functions (as
    // `concat` writes them: a `char(10)` padded, unlike a cast to text), and whether it is
    // NULL, hashed twice.
    let value = format!(
        "pg_catalog.format('pg_catalog.concat(%s, pg_catalog.chr(31), t.%I IS NULL, pg_catalog.chr(31), t.%I)', \
           (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', ka.attname), ', pg_catalog.chr(30), ' \
              ORDER BY ka.attnum) FROM pg_catalog.pg_attribute ka WHERE ka.attrelid {eq} r.oid AND ka.attnum {eq} ANY (z.key)), \
           a.attname, a.attname)"
    );
    let columns = format!(
        "(SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.concat(%L, pg_catalog.sum(pg_catalog.hashtextextended(%s, 0)), '','', \
             pg_catalog.sum(pg_catalog.hashtextextended(%s, 1)))', a.attnum::pg_catalog.text OPERATOR(pg_catalog.||) ':', v.v, v.v), \
           ', ' ORDER BY a.attnum) \
         FROM pg_catalog.pg_attribute a CROSS JOIN LATERAL (SELECT {value}) v(v) \
         WHERE a.attrelid {eq} r.oid AND a.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 AND NOT a.attisdropped)"
    );
    let query = format!(
        "pg_catalog.format('SELECT pg_catalog.concat_ws('' '', pg_catalog.count(*), %s) AS d FROM %I.%I t', {columns}, \
           (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid {eq} r.relnamespace), r.relname)"
    );
    format!(
        "SELECT r.k, r.oid::pg_catalog.text, 'digest'::pg_catalog.text, CASE \
           WHEN NOT pg_catalog.has_table_privilege(r.oid, 'SELECT') THEN 'unreadable by the role' \
           WHEN (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid {eq} r.oid) THEN 'row security' \
           WHEN z.key IS NULL THEN 'no key' \
           WHEN z.size OPERATOR(pg_catalog.>) {CAP} THEN pg_catalog.concat('too large ', z.size) \
           ELSE pg_catalog.substring(pg_catalog.query_to_xml({query}, true, false, '')::pg_catalog.text, '<d>([^<]*)</d>') END \
         FROM r CROSS JOIN LATERAL (SELECT {key}, (SELECT pg_catalog.sum(pg_catalog.pg_table_size(tree.rel::pg_catalog.regclass)) \
           FROM tree WHERE tree.root {eq} r.oid)) z(key, size) \
         WHERE r.dig AND (r.relname {eq} ANY ({names}) OR EXISTS (SELECT FROM pg_catalog.pg_inherits i \
           JOIN pg_catalog.pg_class p ON p.oid {eq} i.inhparent WHERE i.inhrelid {eq} r.oid AND p.relname {eq} ANY ({names})))"
    )
}

/// A digest: the row count, and each column's sums by attnum.
type Digest<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// What a digest says, or why there is none.
fn digest(v: &str) -> Result<Digest<'_>, &str> {
    let mut words = v.split(' ');
    let rows = words.next().filter(|r| r.parse::<u64>().is_ok()).ok_or(v)?;
    let cols = words.map(|w| w.split_once(':').ok_or(v)).collect::<Result<Vec<_>, _>>()?;
    Ok((rows, cols))
}

/// Decides by content the rewrites and column type changes of the tables read by content
/// (items `digest` in both snapshots): kept when every column that existed before has the
/// same content, else each such change says which columns' content changed, or why it could
/// not be told.
pub fn judge(before: &Identity, after: &Identity, out: &mut Vec<Change>) {
    for ((object, oid, item), was) in before.iter().filter(|((_, _, i), _)| i == "digest") {
        let mine = |c: &Change| {
            c.object == *object
                && match c.kind {
                    Kind::Rewritten => !c.what.ends_with(CHILD_GONE),
                    Kind::Column => type_only(&c.what),
                    _ => false,
                }
        };
        if !out.iter().any(mine) {
            continue;
        }
        let now = after.get(&(object.clone(), oid.clone(), item.clone()));
        let verdict = match (digest(was), now.map(|n| digest(n))) {
            (Err(why), _) => Err(format!("its content could not be compared ({why})")),
            (_, None) => Err("its content could not be read after the statement".to_string()),
            (_, Some(Err(why))) => Err(format!("its content could not be compared after the statement ({why})")),
            (Ok((rows, cols)), Some(Ok((rows_now, cols_now)))) => {
                let changed: Vec<String> = cols
                    .iter()
                    .filter(|(n, sums)| cols_now.iter().find(|(m, _)| m == n).map(|(_, s)| s) != Some(sums))
                    .map(|(n, _)| column_name(before, object, oid, n))
                    .collect();
                match (rows == rows_now, changed.is_empty()) {
                    (true, true) => Ok(()),
                    (false, _) => Err(format!("its rows changed ({rows} before, {rows_now} after)")),
                    (true, false) => Err(format!("the content of column {} changed", changed.join(", "))),
                }
            }
        };
        // Anything else the statement did to the table (a rename, a move) is judged as it was.
        match verdict {
            Ok(()) => out.retain(|c| !mine(c)),
            Err(why) => out.iter_mut().filter(|c| mine(c)).for_each(|c| c.what = format!("{}; {why}", c.what)),
        }
    }
}

/// `column email text   is now email character varying(320)  `: the same name, identity and
/// generation (the snapshot's last two words, maybe empty), another type.
fn type_only(what: &str) -> bool {
    let Some((was, now)) = what.strip_prefix("column ").and_then(|w| w.split_once(" is now ")) else { return false };
    fn parts(v: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
        let mut p = v.rsplitn(3, ' ');
        let (generated, identity) = (p.next(), p.next());
        (p.next().map(first_word), identity, generated)
    }
    let (a, b) = (parts(was), parts(now));
    a.0.is_some() && a == b
}

/// A column's name by attnum in a snapshot (its attnum when not found).
fn column_name(s: &Identity, object: &str, oid: &str, attnum: &str) -> String {
    s.get(&(object.to_string(), oid.to_string(), format!("column {attnum}")))
        .map_or_else(|| format!("#{attnum}"), |v| first_word(v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_ddl_is_found_by_its_sub_commands() {
        assert_eq!(rewritten("ALTER TABLE users ALTER email TYPE varchar(320)"), ["users"]);
        assert_eq!(rewritten("ALTER TABLE public.users ADD COLUMN g uuid DEFAULT gen_random_uuid()"), ["users"]);
        assert_eq!(rewritten("ALTER TABLE users SET ACCESS METHOD heap; CLUSTER t USING t_pkey"), ["t", "users"]);
        assert!(rewritten("ALTER TABLE users ADD COLUMN g int").is_empty());
        assert!(rewritten("ALTER TABLE users RENAME TO x").is_empty());
        assert!(rewritten("ALTER INDEX i SET TABLESPACE s").is_empty());
        assert!(rewritten("not sql").is_empty());
    }

    fn snap(items: &[(&str, &str)]) -> Identity {
        items.iter().map(|(i, v)| (("public.users".into(), "10".into(), i.to_string()), v.to_string())).collect()
    }

    fn change(kind: Kind, what: &str) -> Change {
        Change { object: "public.users".into(), kind, what: what.into(), sequence_was: None }
    }

    #[test]
    fn the_same_content_keeps_a_rewrite_and_another_names_the_column() {
        let before = snap(&[("column 2", "email text  "), ("digest", "60 1:5,6 2:7,8")]);
        let rewrite = || {
            vec![
                change(Kind::Rewritten, "truncated or rewritten (its storage was replaced)"),
                change(Kind::Column, "column email text   is now email character varying(320)  "),
            ]
        };
        let mut out = rewrite();
        judge(&before, &snap(&[("digest", "60 1:5,6 2:7,8 3:1,1")]), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut out = rewrite();
        judge(&before, &snap(&[("digest", "60 1:5,6 2:7,9")]), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.what.ends_with("the content of column email changed")), "{out:?}");
        // Without a reading by content, or without a key: judged as before, saying why.
        let mut out = rewrite();
        judge(&before, &Identity::new(), &mut out);
        assert!(out[0].what.ends_with("could not be read after the statement"), "{out:?}");
        let mut out = rewrite();
        judge(&snap(&[("digest", "no key")]), &snap(&[("digest", "no key")]), &mut out);
        assert!(out[0].what.ends_with("could not be compared (no key)"), "{out:?}");
        // A rename beside it is judged as it was.
        let mut out = rewrite();
        out.push(change(Kind::Column, "column plan text is now tier text"));
        judge(&before, &snap(&[("digest", "60 1:5,6 2:7,8")]), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].what.contains("tier"), "{out:?}");
        // An identity dropped beside a type change is not a type change.
        assert!(!type_only("column id bigint a  is now id numeric  "));
        assert!(type_only("column email text   is now email character varying(320)  "));
    }
}
