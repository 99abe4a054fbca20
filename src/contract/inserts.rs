//! Which columns an INSERT, `INSERT … SELECT`, upsert, MERGE … INSERT or `COPY … FROM`
//! supplies values for, read from pg_query's parse tree (statements inside CTEs, PREPARE and
//! EXPLAIN included). A VALUES position that is `DEFAULT` in every row supplies nothing.
//!
//! Owns: that reading, self-contained on pg_query's protobuf (not the `analyze` facts). Does
//! not own: which columns are minted (the catalog) or what the rule decides (`explicit_id`).

use crate::analyze::RelName;
use pg_query::protobuf::{self, CmdType, OverridingKind};
use pg_query::{NodeEnum, NodeRef};

/// The columns a write supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supplied {
    /// By name (a column list), as the parser folded them.
    Named(Vec<String>),
    /// By position, without a column list: the table's columns at these 0-based positions.
    Positions(Vec<usize>),
    /// Every column (COPY without a column list, `SELECT *`).
    Every,
}

/// One write that inserts rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    /// `INSERT`, `COPY` or `MERGE`.
    pub verb: &'static str,
    pub target: RelName,
    pub supplied: Supplied,
    /// `OVERRIDING SYSTEM VALUE`: identity columns take the supplied value.
    pub overriding_system: bool,
    /// `OVERRIDING USER VALUE`: identity columns ignore the supplied value.
    pub overriding_user: bool,
    /// How many rows it inserts, when its text says (`VALUES` lists without `ON CONFLICT`,
    /// `DEFAULT VALUES`): each row inserted or the statement fails.
    pub rows: Option<usize>,
}

fn rel(r: &protobuf::RangeVar) -> RelName {
    RelName { schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()), name: r.relname.clone() }
}

fn names(cols: &[protobuf::Node]) -> Vec<String> {
    cols.iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::ResTarget(t)) => Some(t.name.clone()),
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

fn is_default(n: &protobuf::Node) -> bool {
    matches!(n.node, Some(NodeEnum::SetToDefault(_)))
}

/// The positions a VALUES list supplies: those not `DEFAULT` in every row.
fn value_positions(rows: &[&[protobuf::Node]]) -> Vec<usize> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    (0..width).filter(|&i| rows.iter().any(|r| r.get(i).is_some_and(|n| !is_default(n)))).collect()
}

/// What a source query supplies by position: `None` for every column (`*`).
fn select_positions(s: &protobuf::SelectStmt) -> Option<Vec<usize>> {
    if !s.values_lists.is_empty() {
        let rows: Vec<Vec<protobuf::Node>> = s
            .values_lists
            .iter()
            .map(|l| match l.node.as_ref() {
                Some(NodeEnum::List(l)) => l.items.clone(),
                _ => Vec::new(),
            })
            .collect();
        let refs: Vec<&[protobuf::Node]> = rows.iter().map(|r| r.as_slice()).collect();
        return Some(value_positions(&refs));
    }
    if s.target_list.is_empty() {
        // A set operation: its left branch names the columns.
        return match s.larg.as_deref() {
            Some(l) => select_positions(l),
            None => Some(Vec::new()),
        };
    }
    let star = s.target_list.iter().any(|t| match t.node.as_ref() {
        Some(NodeEnum::ResTarget(r)) => match r.val.as_deref().and_then(|v| v.node.as_ref()) {
            Some(NodeEnum::ColumnRef(c)) => c.fields.iter().any(|f| matches!(f.node, Some(NodeEnum::AStar(_)))),
            _ => false,
        },
        _ => false,
    });
    (!star).then(|| (0..s.target_list.len()).collect())
}

/// Named columns when there is a list, else positions; `positions: None` means every column.
fn supplied(cols: Vec<String>, positions: Option<Vec<usize>>) -> Supplied {
    match (cols.is_empty(), positions) {
        (true, None) => Supplied::Every,
        (true, Some(p)) => Supplied::Positions(p),
        (false, None) => Supplied::Named(cols),
        (false, Some(p)) => Supplied::Named(p.iter().filter_map(|&i| cols.get(i).cloned()).collect()),
    }
}

fn overriding(kind: i32) -> (bool, bool) {
    (kind == OverridingKind::OverridingSystemValue as i32, kind == OverridingKind::OverridingUserValue as i32)
}

fn visit(node: NodeRef<'_>, out: &mut Vec<Insert>) {
    match node {
        NodeRef::InsertStmt(s) => {
            let Some(r) = s.relation.as_ref() else { return };
            let positions = match s.select_stmt.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::SelectStmt(sel)) => select_positions(sel),
                // DEFAULT VALUES.
                _ => Some(Vec::new()),
            };
            let (system, user) = overriding(s.r#override);
            let rows = match s.select_stmt.as_deref().and_then(|n| n.node.as_ref()) {
                _ if s.on_conflict_clause.is_some() => None,
                Some(NodeEnum::SelectStmt(sel)) if sel.op == pg_query::protobuf::SetOperation::SetopNone as i32 => {
                    (!sel.values_lists.is_empty()).then_some(sel.values_lists.len())
                }
                Some(_) => None,
                None => Some(1),
            };
            out.push(Insert {
                verb: "INSERT",
                target: rel(r),
                supplied: supplied(names(&s.cols), positions),
                overriding_system: system,
                overriding_user: user,
                rows,
            });
        }
        NodeRef::CopyStmt(s) if s.is_from => {
            let Some(r) = s.relation.as_ref() else { return };
            let cols = names(&s.attlist);
            let supplied = if cols.is_empty() { Supplied::Every } else { Supplied::Named(cols) };
            out.push(Insert {
                verb: "COPY",
                target: rel(r),
                supplied,
                overriding_system: false,
                overriding_user: false,
                rows: None,
            });
        }
        NodeRef::MergeStmt(m) => {
            let Some(r) = m.relation.as_ref() else { return };
            for w in &m.merge_when_clauses {
                let Some(NodeEnum::MergeWhenClause(c)) = w.node.as_ref() else { continue };
                if c.command_type != CmdType::CmdInsert as i32 {
                    continue;
                }
                let (system, user) = overriding(c.r#override);
                out.push(Insert {
                    verb: "MERGE",
                    target: rel(r),
                    supplied: supplied(names(&c.target_list), Some(value_positions(&[c.values.as_slice()]))),
                    overriding_system: system,
                    overriding_user: user,
                    rows: None,
                });
            }
        }
        NodeRef::PrepareStmt(p) => {
            if let Some(q) = p.query.as_deref().and_then(|n| n.node.as_ref()) {
                for (n, ..) in q.nodes() {
                    visit(n, out);
                }
            }
        }
        _ => {}
    }
}

/// Every insert of a query string (empty when it does not parse: the proxy refuses or judges
/// such text elsewhere).
pub fn inserts(sql: &str) -> Vec<Insert> {
    crate::analyze::deep::with_parse(sql, 0.into(), |parsed| match parsed {
        Ok(parsed) => supplied_in(&parsed),
        Err(_) => Vec::new(),
    })
}

fn supplied_in(parsed: &pg_query::ParseResult) -> Vec<Insert> {
    let mut out = Vec::new();
    for (n, ..) in parsed.protobuf.nodes() {
        visit(n, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Insert {
        let v = inserts(sql);
        assert_eq!(v.len(), 1, "{sql}: {v:?}");
        v.into_iter().next().unwrap()
    }

    fn named(v: &[&str]) -> Supplied {
        Supplied::Named(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn columns_supplied() {
        assert_eq!(one("INSERT INTO users (ID, name) VALUES (-91111101, 'x')").supplied, named(&["id", "name"]));
        assert_eq!(
            one("INSERT INTO users (id, name) VALUES (DEFAULT, 'x'), (DEFAULT, 'y')").supplied,
            named(&["name"])
        );
        assert_eq!(
            one("INSERT INTO users (id, name) VALUES (DEFAULT, 'x'), (5, 'y')").supplied,
            named(&["id", "name"])
        );
        assert_eq!(one("INSERT INTO users VALUES (1, 'x')").supplied, Supplied::Positions(vec![0, 1]));
        assert_eq!(one("INSERT INTO users DEFAULT VALUES").supplied, Supplied::Positions(vec![]));
        assert_eq!(one("INSERT INTO users SELECT * FROM old_users").supplied, Supplied::Every);
        assert_eq!(one("INSERT INTO users (id) SELECT id FROM old_users UNION SELECT 1").supplied, named(&["id"]));
        assert_eq!(one("COPY users FROM STDIN").supplied, Supplied::Every);
        assert_eq!(one("COPY users (name) FROM STDIN").supplied, named(&["name"]));
        assert!(inserts("COPY users TO STDOUT").is_empty());
        let o = one("INSERT INTO s.users (id) OVERRIDING SYSTEM VALUE VALUES (1) ON CONFLICT DO NOTHING");
        assert!(o.overriding_system && o.target.schema.as_deref() == Some("s"));
    }

    #[test]
    fn nested_inserts() {
        assert_eq!(inserts("WITH x AS (INSERT INTO users (id) VALUES (1) RETURNING id) SELECT * FROM x").len(), 1);
        assert_eq!(inserts("PREPARE p AS INSERT INTO users (id) VALUES ($1)").len(), 1);
        assert_eq!(inserts("EXPLAIN ANALYZE INSERT INTO users (id) VALUES (1)").len(), 1);
        let m = one("MERGE INTO users u USING src s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)");
        assert_eq!((m.verb, m.supplied), ("MERGE", named(&["id", "name"])));
    }
}
