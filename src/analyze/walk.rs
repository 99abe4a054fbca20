//! Walks a whole parse tree and records every write, at any depth: CTEs, subqueries, MERGE
//! actions, ON CONFLICT, EXPLAIN ANALYZE, function arguments.
//!
//! Owns: which node kinds write and what they write. Does not own: the WHERE predicate's shape
//! (see `predicate`). The tree is PostgreSQL's raw parse tree, as pg_query serialises it; the
//! walk is generic over every field, so a node kind added to the grammar cannot hide a write
//! nested inside it.

use super::predicate::{self, Target};
use super::{Execute, Op, Opaque, RelName, Statement, Write};
use pg_query::protobuf as pb;
use serde_json::Value;

/// Unwraps `{"node": {"Kind": body}}` into `(Kind, body)`.
pub(super) fn node(v: &Value) -> Option<(&str, &Value)> {
    let inner = v.get("node")?.as_object()?;
    let (k, b) = inner.iter().next()?;
    Some((k.as_str(), b))
}

/// The string value of a `String` node.
pub(super) fn sval(v: &Value) -> Option<&str> {
    match node(v) {
        Some(("String", b)) => b.get("sval").and_then(Value::as_str),
        _ => None,
    }
}

pub(super) fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) fn rangevar(v: &Value) -> Option<RelName> {
    let name = text(v, "relname");
    (!name.is_empty()).then(|| RelName { schema: non_empty(text(v, "schemaname")), name: name.to_string() })
}

pub(super) fn statement(root: &Value, st: &mut Statement) {
    visit(root, st);
}

fn visit(v: &Value, st: &mut Statement) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| visit(i, st)),
        Value::Object(map) => {
            if let Some((kind, body)) = node(v) {
                if handle(kind, body, st) == Descend::Yes {
                    visit(body, st);
                }
                return;
            }
            map.values().for_each(|c| visit(c, st));
        }
        _ => {}
    }
}

#[derive(PartialEq, Eq)]
enum Descend {
    Yes,
    No,
}

fn target_of(v: &Value) -> Option<(RelName, Target)> {
    let rel = v.get("relation")?;
    let name = rangevar(rel)?;
    let alias = rel.get("alias").map(|a| text(a, "aliasname")).filter(|a| !a.is_empty());
    let t = Target { qualifier: alias.unwrap_or(&name.name).to_string(), schema: name.schema.clone() };
    Some((name, t))
}

fn handle(kind: &str, b: &Value, st: &mut Statement) -> Descend {
    if ["Create", "Alter", "Drop", "Rename", "Rule", "View"].iter().any(|p| kind.starts_with(p))
        && kind.ends_with("Stmt")
    {
        st.ddl = true;
    }
    match kind {
        "DeleteStmt" => {
            if let Some((rel, t)) = target_of(b) {
                let predicate = predicate::classify(b.get("where_clause"), &t);
                st.writes.push(Write { op: Op::Delete, target: Some(rel), predicate: Some(predicate) });
            }
            Descend::Yes
        }
        "UpdateStmt" => {
            if let Some((rel, t)) = target_of(b) {
                let columns = list(b, "target_list")
                    .iter()
                    .filter_map(|r| node(r).map(|(_, rt)| text(rt, "name").to_string()))
                    .collect();
                let predicate = predicate::classify(b.get("where_clause"), &t);
                st.writes.push(Write { op: Op::Update { columns }, target: Some(rel), predicate: Some(predicate) });
            }
            Descend::Yes
        }
        "InsertStmt" => {
            let conflict = b.get("on_conflict_clause").filter(|c| !c.is_null());
            if let (Some(c), Some((rel, _))) = (conflict, target_of(b)) {
                if int(c, "action") == pb::OnConflictAction::OnconflictUpdate as i64 {
                    let infer = c.get("infer").filter(|i| !i.is_null());
                    let conflict_columns = infer
                        .map(|i| {
                            list(i, "index_elems")
                                .iter()
                                .filter_map(|e| node(e).map(|(_, ie)| text(ie, "name")))
                                .map(|n| if n.is_empty() { "(expression)".to_string() } else { n.to_string() })
                                .collect()
                        })
                        .unwrap_or_default();
                    let constraint = infer.and_then(|i| non_empty(text(i, "conname")));
                    st.writes.push(Write {
                        op: Op::Upsert { conflict_columns, constraint },
                        target: Some(rel),
                        predicate: None,
                    });
                }
            }
            Descend::Yes
        }
        "MergeStmt" => {
            if let Some((rel, t)) = target_of(b) {
                for w in list(b, "merge_when_clauses") {
                    let Some((_, wc)) = node(w) else { continue };
                    let cmd = int(wc, "command_type");
                    let op = if cmd == pb::CmdType::CmdDelete as i64 {
                        Op::MergeDelete
                    } else if cmd == pb::CmdType::CmdUpdate as i64 {
                        Op::MergeUpdate
                    } else {
                        continue;
                    };
                    let predicate = predicate::classify_merge(b.get("join_condition"), wc.get("condition"), &t);
                    st.writes.push(Write { op, target: Some(rel.clone()), predicate: Some(predicate) });
                }
            }
            Descend::Yes
        }
        "TruncateStmt" => {
            let cascade = int(b, "behavior") == pb::DropBehavior::DropCascade as i64;
            for r in list(b, "relations") {
                if let Some((_, rv)) = node(r) {
                    st.writes.push(Write { op: Op::Truncate { cascade }, target: rangevar(rv), predicate: None });
                }
            }
            Descend::No
        }
        "DropStmt" => {
            drop_stmt(b, st);
            Descend::No
        }
        "DropdbStmt" => {
            let target = Some(RelName { schema: None, name: text(b, "dbname").to_string() });
            st.writes.push(Write { op: Op::DropDatabase, target, predicate: None });
            Descend::No
        }
        "DropOwnedStmt" => {
            st.writes.push(Write { op: Op::DropOwned, target: None, predicate: None });
            Descend::No
        }
        "AlterTableStmt" => {
            let rel = b.get("relation").and_then(rangevar);
            for c in list(b, "cmds") {
                let Some((_, cmd)) = node(c) else { continue };
                if int(cmd, "subtype") == pb::AlterTableType::AtDropColumn as i64 {
                    let op = Op::DropColumn(text(cmd, "name").to_string());
                    st.writes.push(Write { op, target: rel.clone(), predicate: None });
                }
            }
            Descend::Yes
        }
        "RenameStmt" => {
            let rel = b.get("relation").and_then(rangevar);
            let ty = int(b, "rename_type");
            if ty == pb::ObjectType::ObjectTable as i64 {
                st.writes.push(Write { op: Op::RenameTable, target: rel, predicate: None });
            } else if ty == pb::ObjectType::ObjectColumn as i64 {
                let op = Op::RenameColumn(text(b, "subname").to_string());
                st.writes.push(Write { op, target: rel, predicate: None });
            } else if ty == pb::ObjectType::ObjectSequence as i64 {
                st.writes.push(Write { op: Op::AlterSequence, target: rel, predicate: None });
            }
            Descend::No
        }
        "AlterSeqStmt" => {
            let target = b.get("sequence").and_then(rangevar);
            st.writes.push(Write { op: Op::AlterSequence, target, predicate: None });
            Descend::No
        }
        "FuncCall" => {
            let names: Vec<&str> = list(b, "funcname").iter().filter_map(sval).collect();
            let is_setval = matches!(names.as_slice(), ["setval"] | ["pg_catalog", "setval"]);
            match names.as_slice() {
                ["pg_catalog", _] => {}
                [name] if BUILTINS.contains(name) => {}
                _ => st.calls_functions = true,
            }
            // set_config('blastwall.mode', …) is judged like SET: a value that is not a plain
            // string is kept as an empty (invalid) one.
            if matches!(names.as_slice(), ["set_config"] | ["pg_catalog", "set_config"]) {
                let args = list(b, "args");
                let string = |a: Option<&Value>| match a.and_then(node) {
                    Some(("AConst", c)) => c.get("val")?.get("Sval")?.get("sval")?.as_str().map(str::to_string),
                    _ => None,
                };
                if string(args.first()).is_some_and(|n| n.eq_ignore_ascii_case("blastwall.mode")) {
                    st.session_mode = Some(Some(string(args.get(1)).unwrap_or_default()));
                }
            }
            if is_setval {
                let target = list(b, "args").first().and_then(const_regclass);
                st.writes.push(Write { op: Op::Setval, target, predicate: None });
            }
            Descend::Yes
        }
        "DoStmt" => {
            st.opaque.push(Opaque::DoBlock);
            Descend::No
        }
        "CallStmt" => {
            let name = b
                .get("funccall")
                .map(|f| list(f, "funcname").iter().filter_map(sval).collect::<Vec<_>>().join("."))
                .unwrap_or_default();
            st.opaque.push(Opaque::Call(name));
            Descend::No
        }
        "ExplainStmt" => {
            if is_explain_analyze(b) {
                let before = (st.writes.len(), st.executes.len());
                if let Some(q) = b.get("query") {
                    visit(q, st);
                }
                if (st.writes.len(), st.executes.len()) != before {
                    st.opaque.push(Opaque::ExplainAnalyze);
                }
            }
            // Plain EXPLAIN plans without executing: nothing inside it runs.
            Descend::No
        }
        "PrepareStmt" => {
            let mut inner = Statement { text: st.text.clone(), ..Statement::default() };
            if let Some(q) = b.get("query") {
                visit(q, &mut inner);
            }
            st.prepare = Some((text(b, "name").to_string(), Box::new(inner)));
            Descend::No
        }
        "ExecuteStmt" => {
            let array_lens = list(b, "params").iter().map(predicate::array_len).collect();
            st.executes.push(Execute { name: text(b, "name").to_string(), array_lens });
            Descend::No
        }
        "DeallocateStmt" => {
            st.deallocate = Some(if b.get("isall").and_then(Value::as_bool).unwrap_or(false) {
                None
            } else {
                Some(text(b, "name").to_string())
            });
            Descend::No
        }
        "VariableSetStmt" if text(b, "name").eq_ignore_ascii_case("blastwall.mode") => {
            let value = list(b, "args").first().and_then(|a| match node(a) {
                Some(("AConst", c)) => c.get("val")?.get("Sval")?.get("sval")?.as_str().map(str::to_string),
                _ => None,
            });
            let set = int(b, "kind") == pb::VariableSetKind::VarSetValue as i64;
            // A value that is not a plain string is kept as an empty (invalid) one.
            st.session_mode = Some(if set { Some(value.unwrap_or_default()) } else { None });
            Descend::No
        }
        // RESET ALL and DISCARD ALL reset blastwall.mode on the server too: judged like
        // `RESET blastwall.mode`.
        "VariableSetStmt" if int(b, "kind") == pb::VariableSetKind::VarResetAll as i64 => {
            st.session_mode = Some(None);
            Descend::No
        }
        "DiscardStmt" if int(b, "target") == pb::DiscardMode::DiscardAll as i64 => {
            st.session_mode = Some(None);
            Descend::No
        }
        "TransactionStmt" => {
            st.transaction_control = true;
            Descend::No
        }
        "CopyStmt" => {
            let from = b.get("is_from").and_then(Value::as_bool).unwrap_or(false);
            if from && text(b, "filename").is_empty() {
                st.copy_from_stdin = true;
            }
            Descend::Yes
        }
        // These define code that runs later, not now; what it does is seen when it runs (or
        // not at all, for function bodies — see README, "What blastwall cannot see").
        "CreateFunctionStmt" | "RuleStmt" | "CreateTrigStmt" | "ViewStmt" | "CreateEventTrigStmt" => Descend::No,
        _ => Descend::Yes,
    }
}

/// Built-in functions that do not write, called unqualified in everyday SQL. Any other call
/// may be a user function whose body writes (see `[opaque] functions`).
const BUILTINS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_length",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "ceil",
    "ceiling",
    "char_length",
    "clock_timestamp",
    "coalesce",
    "concat",
    "concat_ws",
    "count",
    "current_date",
    "current_setting",
    "currval",
    "date_part",
    "date_trunc",
    "decode",
    "encode",
    "every",
    "exp",
    "extract",
    "floor",
    "format",
    "gen_random_uuid",
    "generate_series",
    "greatest",
    "json_agg",
    "json_build_object",
    "jsonb_agg",
    "jsonb_build_object",
    "lag",
    "lead",
    "least",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "md5",
    "min",
    "mod",
    "now",
    "nullif",
    "pg_backend_pid",
    "pg_sleep",
    "position",
    "power",
    "random",
    "rank",
    "regexp_replace",
    "replace",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "sqrt",
    "statement_timestamp",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "timezone",
    "to_char",
    "to_date",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "trim",
    "trunc",
    "unnest",
    "upper",
    "version",
    "nextval",
    "setval",
    "dense_rank",
    "first_value",
    "last_value",
    "ntile",
    "percent_rank",
    "cume_dist",
    "nth_value",
    "array_to_string",
    "string_to_array",
    "split_part",
    "initcap",
    "repeat",
    "reverse",
    "uuid_generate_v4",
    "row_to_json",
];

fn drop_stmt(b: &Value, st: &mut Statement) {
    let ty = int(b, "remove_type");
    let cascade = int(b, "behavior") == pb::DropBehavior::DropCascade as i64;
    let op = if ty == pb::ObjectType::ObjectTable as i64 {
        Op::DropTable { cascade }
    } else if ty == pb::ObjectType::ObjectSequence as i64 {
        Op::DropSequence
    } else if ty == pb::ObjectType::ObjectSchema as i64 {
        Op::DropSchema { cascade }
    } else {
        return;
    };
    for o in list(b, "objects") {
        let parts: Vec<String> = match node(o) {
            Some(("List", l)) => list(l, "items").iter().filter_map(sval).map(str::to_string).collect(),
            Some(("String", s)) => vec![text(s, "sval").to_string()],
            _ => continue,
        };
        let target = match parts.as_slice() {
            [name] => RelName { schema: None, name: name.clone() },
            [.., schema, name] => RelName { schema: Some(schema.clone()), name: name.clone() },
            [] => continue,
        };
        st.writes.push(Write { op: op.clone(), target: Some(target), predicate: None });
    }
}

fn is_explain_analyze(b: &Value) -> bool {
    list(b, "options").iter().any(|o| {
        let Some((_, d)) = node(o) else { return false };
        if !text(d, "defname").eq_ignore_ascii_case("analyze") {
            return false;
        }
        match d.get("arg").and_then(node) {
            None => true,
            Some(("Boolean", v)) => v.get("boolval").and_then(Value::as_bool).unwrap_or(false),
            Some(("String", v)) => {
                !matches!(text(v, "sval").to_ascii_lowercase().as_str(), "false" | "off" | "0" | "no")
            }
            Some(("Integer", v)) => int(v, "ival") != 0,
            // Anything else: assume it executes.
            Some(_) => true,
        }
    })
}

/// The sequence named by a constant first argument of `setval`: `'name'` or `'name'::regclass`.
fn const_regclass(v: &Value) -> Option<RelName> {
    let s = match node(v)? {
        ("AConst", c) => c.get("val")?.get("Sval")?.get("sval")?.as_str()?,
        ("TypeCast", tc) => return const_regclass(tc.get("arg")?),
        _ => return None,
    };
    parse_qualified(s)
}

/// Parses a qualified name as `regclass` input does: dots separate, double quotes keep case,
/// unquoted parts fold to lower case.
pub fn parse_qualified(s: &str) -> Option<RelName> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c if quoted => cur.push(c),
            c => cur.extend(c.to_lowercase()),
        }
    }
    parts.push(cur);
    match parts.as_slice() {
        [n] if !n.is_empty() => Some(RelName { schema: None, name: n.clone() }),
        [.., s, n] if !n.is_empty() => Some(RelName { schema: Some(s.clone()), name: n.clone() }),
        _ => None,
    }
}
