//! An empty child let go: `ALTER TABLE p DETACH PARTITION c` or `ALTER TABLE c NO INHERIT p`
//! that takes a child or partition out of a policy table's tree is no loss of rows when the
//! child (with its own children) holds none. The identity check (`identity`) sees the child's
//! storage gone from the tree; this module tells an empty detached child from a lost one
//! (thirty-seventh pass FP2).
//!
//! The child is read after the statement, in the same transaction: the statement holds its
//! `ACCESS EXCLUSIVE` lock on it until the end of the transaction, so no row can be committed
//! into it between the reading and the verdict, and in `READ COMMITTED` the reading's snapshot
//! has every row committed before the lock was taken. In `REPEATABLE READ` or `SERIALIZABLE`
//! the transaction's snapshot may be older than the lock: nothing counts as empty there. A
//! child the role may not read, or whose top has row security (a policy may hide rows from
//! the reading), does not count as empty either. `DROP TABLE` of a child leaves nothing to
//! read: it stays refused, and the refusal says to detach the child first.
//!
//! Owns: which statements may let a child go, the emptiness branch of the snapshot (item
//! `empty`), and whether a gone child is such an empty one. Does not own: the rest of the
//! identity snapshot and its judgement (`identity`).

use pg_query::protobuf as pb;
use pg_query::NodeEnum;

/// The snapshot item that says a relation (and its own children) held no rows after the
/// statement; its value is `true` or `false`.
pub const ITEM: &str = "empty";

/// The relation names a statement's text may take out of an inheritance tree: the partition
/// of `DETACH PARTITION`, the table of `NO INHERIT`. Empty for anything else, a text that does
/// not parse, or a text of several statements: one that empties the child before or after
/// letting it go would have its rows' loss go unseen (the counters read the tree after the
/// statement, which no longer holds the child).
pub fn detached(statement: &str) -> Vec<String> {
    let Ok(tree) = pg_query::parse(statement, pg_query::ParserOptions::DEFAULT) else { return Vec::new() };
    if tree.protobuf.stmts.len() != 1 {
        return Vec::new();
    }
    let mut names = Vec::new();
    for raw in &tree.protobuf.stmts {
        let Some(NodeEnum::AlterTableStmt(a)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else { continue };
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else { continue };
            let detach = [pb::AlterTableType::AtDetachPartition, pb::AlterTableType::AtDetachPartitionFinalize];
            if detach.iter().any(|t| cmd.subtype == *t as i32) {
                if let Some(NodeEnum::PartitionCmd(p)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    names.extend(p.name.as_ref().map(|r| r.relname.clone()));
                }
            } else if cmd.subtype == pb::AlterTableType::AtDropInherit as i32 {
                names.extend(a.relation.as_ref().map(|r| r.relname.clone()));
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The snapshot's branch for the relations named `names` and all their descendants: item
/// [`ITEM`] under an empty object key, by OID, `true` when the named relation read without
/// `ONLY` (so with its descendants) has no row and may be trusted to say so (above).
pub fn sql(names: &[String]) -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    let list: Vec<String> = names.iter().map(|n| super::literal(n)).collect();
    let names = format!("ARRAY[{}]::pg_catalog.name[]", list.join(", "));
    let query = "pg_catalog.format('SELECT pg_catalog.count(*) AS n FROM (SELECT FROM %I.%I LIMIT 1) s', \
        (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) c.relnamespace), c.relname)";
    format!(
        "SELECT ''::pg_catalog.text, d.rel::pg_catalog.text, '{ITEM}'::pg_catalog.text, e.e::pg_catalog.text \
         FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT CASE \
           WHEN pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN false \
           WHEN c.relrowsecurity OR NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN false \
           ELSE pg_catalog.substring(pg_catalog.query_to_xml({query}, true, false, '')::pg_catalog.text, '<n>([^<]*)</n>') {eq} '0' END) e(e) \
         CROSS JOIN LATERAL (WITH RECURSIVE d(rel) AS (SELECT c.oid UNION \
           SELECT i.inhrelid FROM pg_catalog.pg_inherits i, d WHERE i.inhparent {eq} d.rel) SELECT d.rel FROM d) d \
         WHERE c.relname {eq} ANY ({names}) AND c.relkind {eq} ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[])"
    )
}

/// Whether the child `oid`, gone from a policy table's tree, is still a relation that the
/// snapshot after the statement read as empty.
pub fn let_go_empty(after: &super::identity::Identity, oid: &str) -> bool {
    after.get(&(String::new(), oid.to_string(), ITEM.to_string())).map(String::as_str) == Some("true")
}

#[cfg(test)]
mod tests {
    use super::detached;

    #[test]
    fn the_children_a_statement_may_let_go() {
        assert_eq!(detached("ALTER TABLE users DETACH PARTITION users_2019"), ["users_2019"]);
        assert_eq!(detached("ALTER TABLE public.users DETACH PARTITION s.old FINALIZE"), ["old"]);
        assert_eq!(detached("ALTER TABLE old NO INHERIT users"), ["old"]);
        assert_eq!(detached("ALTER TABLE users ATTACH PARTITION p FOR VALUES IN (1)"), Vec::<String>::new());
        assert_eq!(detached("DROP TABLE users_2019"), Vec::<String>::new());
        let none = Vec::<String>::new();
        assert_eq!(detached("ALTER TABLE users DETACH PARTITION p; DELETE FROM p"), none);
        assert_eq!(detached("DELETE FROM p; ALTER TABLE users DETACH PARTITION p"), none);
        assert_eq!(detached("ALTER TABLE users ADD COLUMN x int"), Vec::<String>::new());
    }
}
