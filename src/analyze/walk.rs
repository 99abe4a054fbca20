//! Walks a whole parse tree and records every write, at any depth: CTEs, subqueries, MERGE
//! actions, ON CONFLICT, EXPLAIN ANALYZE, function arguments.
//!
//! Owns: which node kinds write and what they write. Does not own: the WHERE predicate's shape
//! (see `predicate`). The tree is PostgreSQL's raw parse tree as pg_query decodes it, walked in
//! place (no copy). The descent is generic over every field of every node type (`children`,
//! generated, exhaustive), so a node kind added to the grammar cannot hide a write nested
//! inside it.

use super::builtins::{custom_setting, runs_given_code, BUILTINS};
use super::children::{each_child, is_ddl};
use super::nodes::{const_str, items, literal_read, literals_read, opt, start_literal_reads, sval};
use super::predicate::{self, Target};
use super::restrict;
use super::sequences;
use super::{Execute, Op, Opaque, RelName, Statement, Write};
use pg_query::protobuf as pb;
use pg_query::NodeRef as R;

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) fn rangevar(v: &pb::RangeVar) -> Option<RelName> {
    (!v.relname.is_empty()).then(|| RelName { schema: non_empty(&v.schemaname), name: v.relname.clone() })
}

fn rangevar_node(v: R<'_>) -> Option<RelName> {
    match v {
        R::RangeVar(r) => rangevar(r),
        _ => None,
    }
}

/// Walks one statement's tree into `st`; returns whether any fact read a literal's value.
pub(super) fn statement(root: R<'_>, st: &mut Statement) -> bool {
    start_literal_reads();
    visit(root, st);
    sequences::finish(root, st);
    let read = literals_read();
    start_literal_reads();
    read
}

fn visit(v: R<'_>, st: &mut Statement) {
    if handle(v, st) == Descend::Yes {
        each_child(v, &mut |c| visit(c, st));
    }
}

#[derive(PartialEq, Eq)]
enum Descend {
    Yes,
    No,
}

/// The target and how its columns are named; `others`: the statement names other relations.
fn target_of(rel: Option<&pb::RangeVar>, others: bool) -> Option<(RelName, Target)> {
    let rel = rel?;
    let name = rangevar(rel)?;
    let alias = rel.alias.as_ref().map(|a| a.aliasname.as_str()).filter(|a| !a.is_empty());
    let t = Target {
        qualifier: alias.unwrap_or(&name.name).to_string(),
        schema: name.schema.clone(),
        others,
        beside: None,
        mine: Default::default(),
        relation: name.name.clone(),
        selves: Vec::new(),
        self_ctes: Vec::new(),
    };
    Some((name, t))
}

/// What of the statement's `WITH` and `FROM`/`USING` reads the target's relation again
/// (`Target::selves`, `Target::self_ctes`).
fn read_again<'a>(t: &mut Target, from: impl Iterator<Item = R<'a>>, with: Option<&pb::WithClause>) {
    t.self_ctes = with.map(|w| restrict::mirroring_ctes(&w.ctes, t)).unwrap_or_default();
    t.selves = restrict::selves(from, t);
}

/// The relations of a `USING`/`FROM` list when each is a plain relation without column
/// aliases, in a statement without `WITH` (whose names a relation name could mean).
fn beside(list: &[pb::Node], with: bool) -> Option<Vec<RelName>> {
    if with {
        return None;
    }
    items(list)
        .map(|r| match r {
            R::RangeVar(v) if v.alias.as_ref().is_none_or(|a| a.colnames.is_empty()) => rangevar(v),
            _ => None,
        })
        .collect()
}

/// The columns a SET list assigns (`SET (a, b) = …` names each; `SET a[1] = …`, `a.f = …`
/// name the column).
fn set_columns(target_list: &[pb::Node]) -> Vec<String> {
    items(target_list)
        .filter_map(|r| match r {
            R::ResTarget(rt) => Some(rt.name.clone()),
            _ => None,
        })
        .collect()
}

fn handle(v: R<'_>, st: &mut Statement) -> Descend {
    if is_ddl(v) {
        st.ddl = true;
    }
    // A body or a rule's actions: code that did not exist (a trigger, a cast, an operator or a
    // default only wires up functions that exist: their calls are judged as any call).
    st.makes_code |= matches!(v, R::CreateFunctionStmt(_) | R::RuleStmt(_));
    st.makes_view |= matches!(v, R::ViewStmt(_));
    match v {
        R::DeleteStmt(b) => {
            if let Some((rel, mut t)) = target_of(b.relation.as_ref(), !b.using_clause.is_empty()) {
                t.beside = beside(&b.using_clause, b.with_clause.is_some());
                read_again(&mut t, items(&b.using_clause), b.with_clause.as_ref());
                let predicate = predicate::classify(opt(&b.where_clause), &t);
                let only = b.relation.as_ref().is_some_and(|r| !r.inh);
                st.writes.push(Write { op: Op::Delete, target: Some(rel), predicate: Some(predicate), only });
            }
            Descend::Yes
        }
        R::UpdateStmt(b) => {
            if let Some((rel, mut t)) = target_of(b.relation.as_ref(), !b.from_clause.is_empty()) {
                t.beside = beside(&b.from_clause, b.with_clause.is_some());
                read_again(&mut t, items(&b.from_clause), b.with_clause.as_ref());
                let columns = set_columns(&b.target_list);
                let predicate = predicate::classify(opt(&b.where_clause), &t);
                let only = b.relation.as_ref().is_some_and(|r| !r.inh);
                st.writes.push(Write {
                    op: Op::Update { columns },
                    target: Some(rel),
                    predicate: Some(predicate),
                    only,
                });
            }
            Descend::Yes
        }
        R::InsertStmt(b) => {
            if let (Some(c), Some((rel, _))) = (b.on_conflict_clause.as_deref(), target_of(b.relation.as_ref(), false))
            {
                if c.action == pb::OnConflictAction::OnconflictUpdate as i32 {
                    let infer = c.infer.as_deref();
                    // An expression (`ON CONFLICT ((id))`, `(lower(email))`) stands for every column
                    // it names: the overwrite reaches rows matched by those columns' values.
                    let conflict_columns = infer
                        .map(|i| {
                            items(&i.index_elems)
                                .filter_map(|e| match e {
                                    R::IndexElem(ie) => Some(ie),
                                    _ => None,
                                })
                                .flat_map(|ie| {
                                    if !ie.name.is_empty() {
                                        return vec![ie.name.clone()];
                                    }
                                    let mut named = vec!["(expression)".to_string()];
                                    if let Some(n) = ie.expr.as_ref().and_then(|e| e.node.as_ref()) {
                                        for (node, ..) in n.nodes() {
                                            if let R::ColumnRef(c) = node {
                                                if let Some(pb::node::Node::String(last)) =
                                                    c.fields.last().and_then(|f| f.node.as_ref())
                                                {
                                                    named.push(last.sval.clone());
                                                }
                                            }
                                        }
                                    }
                                    named
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let constraint = infer.and_then(|i| non_empty(&i.conname));
                    let columns = set_columns(&c.target_list);
                    st.writes.push(Write {
                        op: Op::Upsert { conflict_columns, constraint, columns },
                        target: Some(rel),
                        predicate: None,
                        only: false,
                    });
                }
            }
            Descend::Yes
        }
        R::MergeStmt(b) => {
            if let Some((rel, mut t)) = target_of(b.relation.as_ref(), true) {
                read_again(&mut t, opt(&b.source_relation).into_iter(), b.with_clause.as_ref());
                for w in items(&b.merge_when_clauses) {
                    let R::MergeWhenClause(wc) = w else { continue };
                    let op = if wc.command_type == pb::CmdType::CmdDelete as i32 {
                        Op::MergeDelete
                    } else if wc.command_type == pb::CmdType::CmdUpdate as i32 {
                        Op::MergeUpdate { columns: set_columns(&wc.target_list) }
                    } else {
                        continue;
                    };
                    let predicate = predicate::classify_merge(opt(&b.join_condition), opt(&wc.condition), &t);
                    let only = b.relation.as_ref().is_some_and(|r| !r.inh);
                    st.writes.push(Write { op, target: Some(rel.clone()), predicate: Some(predicate), only });
                }
            }
            Descend::Yes
        }
        R::TruncateStmt(b) => {
            let cascade = b.behavior == pb::DropBehavior::DropCascade as i32;
            for r in items(&b.relations) {
                let only = matches!(r, R::RangeVar(v) if !v.inh);
                st.writes.push(Write { op: Op::Truncate { cascade }, target: rangevar_node(r), predicate: None, only });
            }
            Descend::No
        }
        R::DropStmt(b) => {
            drop_stmt(b, st);
            Descend::No
        }
        R::DropdbStmt(b) => {
            let target = Some(RelName { schema: None, name: b.dbname.clone() });
            st.writes.push(Write { op: Op::DropDatabase, target, predicate: None, only: false });
            Descend::No
        }
        R::DropOwnedStmt(_) => {
            st.writes.push(Write { op: Op::DropOwned, target: None, predicate: None, only: false });
            Descend::No
        }
        R::AlterTableStmt(b) => {
            let rel = b.relation.as_ref().and_then(rangevar);
            for c in items(&b.cmds) {
                let R::AlterTableCmd(cmd) = c else { continue };
                if cmd.subtype == pb::AlterTableType::AtDropColumn as i32 {
                    let op = Op::DropColumn(cmd.name.clone());
                    st.writes.push(Write { op, target: rel.clone(), predicate: None, only: false });
                }
                // An unlogged sequence is put back to where it stood at `SET UNLOGGED` by crash
                // recovery: a move no statement makes (`ALTER TABLE` reaches sequences too).
                // And an unlogged table is emptied by crash recovery and on every replica.
                if cmd.subtype == pb::AlterTableType::AtSetUnLogged as i32 {
                    st.writes.push(Write { op: Op::AlterSequence, target: rel.clone(), predicate: None, only: false });
                    st.writes.push(Write { op: Op::SetUnlogged, target: rel.clone(), predicate: None, only: false });
                }
            }
            Descend::Yes
        }
        R::CreateStmt(b) if b.relation.as_ref().is_some_and(|r| r.relpersistence == "u") => {
            // An unlogged partition or child of a policy table: the rows routed to it vanish
            // with it at a crash, and it reads as part of the table.
            for r in items(&b.inh_relations) {
                st.writes.push(Write { op: Op::SetUnlogged, target: rangevar_node(r), predicate: None, only: false });
            }
            Descend::Yes
        }
        R::RenameStmt(b) => {
            let rel = b.relation.as_ref().and_then(rangevar);
            let ty = b.rename_type;
            if ty == pb::ObjectType::ObjectTable as i32 {
                st.writes.push(Write { op: Op::RenameTable, target: rel, predicate: None, only: false });
            } else if ty == pb::ObjectType::ObjectColumn as i32 {
                let op = Op::RenameColumn(b.subname.clone());
                st.writes.push(Write { op, target: rel, predicate: None, only: false });
            } else if ty == pb::ObjectType::ObjectSequence as i32 {
                st.writes.push(Write { op: Op::AlterSequence, target: rel, predicate: None, only: false });
            }
            Descend::No
        }
        R::AlterSeqStmt(b) => {
            let target = b.sequence.as_ref().and_then(rangevar);
            st.writes.push(Write { op: Op::AlterSequence, target, predicate: None, only: false });
            Descend::No
        }
        R::FuncCall(b) => {
            let mut names = b.funcname.iter().map(sval);
            let (first, second, third) = (names.next(), names.next(), names.next());
            let builtin = match (first, second, third) {
                // Qualified, a built-in is judged as its name alone is: `pg_catalog` holds functions
                // that run what their caller hands them (SQL text, a type's input or a function's
                // body by OID: `RUNNERS`, seventieth to seventy-second passes), and a list of
                // those fails open for one not found yet; the list of harmless ones fails closed.
                (Some(Some("pg_catalog")), Some(Some(name)), None) => {
                    BUILTINS.contains(&name) && !runs_given_code(name)
                }
                (Some(Some(name)), None, None) => BUILTINS.contains(&name),
                _ => false,
            };
            let is_set_config = matches!(
                (first, second, third),
                (Some(Some("set_config")), None, None) | (Some(Some("pg_catalog")), Some(Some("set_config")), None)
            );
            // `set_config('role', 'name', …)` is `SET ROLE name`: it runs no one's code (a
            // role's name cannot be computed into another setting). A custom setting's
            // (`request.jwt.claim.sub`, read back with `current_setting`) changes nothing a
            // name resolves to and runs no code: see [`custom_setting`]. Its value, computed or
            // not, is visited as any expression. (A user's `set_config` that the session's path
            // finds first is a hidden caller: `catalog::hidden`.)
            let harmless_setting = is_set_config
                && match items(&b.args).next().and_then(const_str) {
                    Some(n) if n.eq_ignore_ascii_case("role") => items(&b.args).nth(1).and_then(const_str).is_some(),
                    Some(n) => custom_setting(n),
                    None => false,
                };
            if !builtin && !harmless_setting {
                st.calls_functions = true;
                // A call qualified with `information_schema` or `pg_catalog` is of a built-in
                // there (no user may create one): counted by its name, as an unqualified one
                // is, not as any user's function.
                let name = match (first, second, third) {
                    (Some(Some(name)), None, None)
                    | (Some(Some("information_schema" | "pg_catalog")), Some(Some(name)), None) => name,
                    _ => {
                        let last = [third, second].into_iter().flatten().flatten().next();
                        if let Some(n) = last.filter(|n| !st.qualified_calls.iter().any(|c| c == n)) {
                            st.qualified_calls.push(n.to_string());
                        }
                        "*"
                    }
                };
                if !st.calls.iter().any(|c| c == name) {
                    st.calls.push(name.to_string());
                }
            }
            let is_setval = matches!(
                (first, second, third),
                (Some(Some("setval")), None, None) | (Some(Some("pg_catalog")), Some(Some("setval")), None)
            );
            // set_config('blastwall.mode', …) is judged like SET: a value that is not a plain
            // string is kept as an empty (invalid) one. A name that is not a plain string may
            // be blastwall.mode (`'blastwall' || '.mode'`, `'blastwall.mode'::text`): judged
            // as that name with a value blastwall cannot read.
            if is_set_config {
                let mut args = items(&b.args);
                let (name, value) = (args.next(), args.next().and_then(const_str));
                match name.map(const_str) {
                    Some(Some(n)) if !n.eq_ignore_ascii_case("blastwall.mode") => {}
                    Some(Some(_)) => st.session_mode = Some(Some(value.unwrap_or_default().to_string())),
                    _ => st.session_mode = Some(Some(String::new())),
                }
            }
            if sequences::is_nextval(&b.funcname) {
                st.nextval.push(items(&b.args).next().and_then(const_regclass));
            }
            if is_setval {
                let target = items(&b.args).next().and_then(const_regclass);
                st.writes.push(Write { op: Op::Setval, target, predicate: None, only: false });
            }
            Descend::Yes
        }
        R::DoStmt(_) => {
            st.opaque.push(Opaque::DoBlock);
            Descend::No
        }
        R::CallStmt(b) => {
            let name = b
                .funccall
                .as_deref()
                .map(|f| f.funcname.iter().filter_map(sval).collect::<Vec<_>>().join("."))
                .unwrap_or_default();
            st.opaque.push(Opaque::Call(name));
            Descend::No
        }
        R::ExplainStmt(b) => {
            if is_explain_analyze(b) {
                let before = (st.writes.len(), st.executes.len());
                if let Some(q) = opt(&b.query) {
                    visit(q, st);
                }
                if st.writes.len() != before.0 {
                    st.opaque.push(Opaque::ExplainAnalyze);
                }
                // An EXECUTE's statement is known only to the session (`guard::prepared`).
                st.executes[before.1..].iter_mut().for_each(|e| e.explained = true);
            } else if let Some(q) = opt(&b.query) {
                // Plain EXPLAIN plans without executing the plan, but planning runs functions:
                // it evaluates EXECUTE's arguments and folds calls marked IMMUTABLE. The
                // statement's writes do not run; its calls are calls.
                let mut planned = Statement::default();
                visit(q, &mut planned);
                st.calls_functions |= planned.calls_functions;
                st.calls.extend(planned.calls);
            }
            Descend::No
        }
        R::PrepareStmt(b) => {
            let mut inner = Statement { text: st.text.clone(), ..Statement::default() };
            if let Some(q) = opt(&b.query) {
                visit(q, &mut inner);
            }
            inner.reads_literals = literals_read();
            st.prepare = Some((b.name.clone(), Box::new(inner)));
            Descend::No
        }
        R::ExecuteStmt(b) => {
            let array_lens = items(&b.params).map(predicate::array_len).collect();
            st.executes.push(Execute { name: b.name.clone(), array_lens, explained: false });
            // The arguments are evaluated when the statement runs (and by EXPLAIN EXECUTE):
            // a function call among them is a call like any other.
            Descend::Yes
        }
        R::DeallocateStmt(b) => {
            st.deallocate = Some(if b.isall { None } else { Some(b.name.clone()) });
            Descend::No
        }
        R::VariableSetStmt(b) if b.name.eq_ignore_ascii_case("blastwall.mode") => {
            let value = items(&b.args).next().and_then(const_str).map(str::to_string);
            let set = b.kind == pb::VariableSetKind::VarSetValue as i32;
            // A value that is not a plain string is kept as an empty (invalid) one.
            st.session_mode = Some(if set { Some(value.unwrap_or_default()) } else { None });
            Descend::No
        }
        // RESET ALL and DISCARD ALL reset blastwall.mode on the server too: judged like
        // `RESET blastwall.mode`.
        R::VariableSetStmt(b) if b.kind == pb::VariableSetKind::VarResetAll as i32 => {
            st.session_mode = Some(None);
            Descend::No
        }
        R::DiscardStmt(b) if b.target == pb::DiscardMode::DiscardAll as i32 => {
            st.session_mode = Some(None);
            // It deallocates every prepared statement too (seventy-sixth pass H2).
            st.deallocate = Some(None);
            Descend::No
        }
        R::TransactionStmt(_) => {
            st.transaction_control = true;
            Descend::No
        }
        R::CopyStmt(b) => {
            if b.is_from {
                literal_read();
            }
            if b.is_from && b.filename.is_empty() {
                st.copy_from_stdin = true;
            }
            Descend::Yes
        }
        // These define code that runs later, not now; what it does is seen when it runs (or
        // not at all, for function bodies — see README, "What blastwall cannot see").
        R::CreateFunctionStmt(_)
        | R::RuleStmt(_)
        | R::CreateTrigStmt(_)
        | R::ViewStmt(_)
        | R::CreateEventTrigStmt(_) => Descend::No,
        _ => Descend::Yes,
    }
}

fn drop_stmt(b: &pb::DropStmt, st: &mut Statement) {
    let ty = b.remove_type;
    let cascade = b.behavior == pb::DropBehavior::DropCascade as i32;
    let op = if ty == pb::ObjectType::ObjectTable as i32 {
        Op::DropTable { cascade }
    } else if ty == pb::ObjectType::ObjectSequence as i32 {
        Op::DropSequence
    } else if ty == pb::ObjectType::ObjectSchema as i32 {
        Op::DropSchema { cascade }
    } else {
        return;
    };
    for o in items(&b.objects) {
        let parts: Vec<&str> = match o {
            R::List(l) => l.items.iter().filter_map(sval).collect(),
            R::String(s) => vec![s.sval.as_str()],
            _ => continue,
        };
        let target = match parts.as_slice() {
            [name] => RelName { schema: None, name: name.to_string() },
            [.., schema, name] => RelName { schema: Some(schema.to_string()), name: name.to_string() },
            [] => continue,
        };
        st.writes.push(Write { op: op.clone(), target: Some(target), predicate: None, only: false });
    }
}

fn is_explain_analyze(b: &pb::ExplainStmt) -> bool {
    items(&b.options).any(|o| {
        let R::DefElem(d) = o else { return false };
        if !d.defname.eq_ignore_ascii_case("analyze") {
            return false;
        }
        if d.arg.is_some() {
            literal_read();
        }
        match opt(&d.arg) {
            None => true,
            Some(R::Boolean(v)) => v.boolval,
            Some(R::String(v)) => !matches!(v.sval.to_ascii_lowercase().as_str(), "false" | "off" | "0" | "no"),
            Some(R::Integer(v)) => v.ival != 0,
            // Anything else: assume it executes.
            Some(_) => true,
        }
    })
}

/// The sequence named by a constant first argument of `setval`: `'name'` or `'name'::regclass`.
fn const_regclass(v: R<'_>) -> Option<RelName> {
    match v {
        R::TypeCast(tc) => opt(&tc.arg).and_then(const_regclass),
        _ => parse_qualified(const_str(v)?),
    }
}

/// Parses a qualified name as `regclass` input does (`stringToQualifiedNameList`, PostgreSQL's
/// `SplitIdentifierString`): dots separate, whitespace around each part is skipped (`'public.
/// web_user_id_seq'` is `public.web_user_id_seq`: seventy-seventh pass H2), double quotes keep
/// case and dots, unquoted parts fold ASCII letters to lower case and end at whitespace or a
/// dot, each part is cut to 63 bytes; one to three parts (a database, a schema, the name).
/// Anything the server would reject — an empty part, text after a part, an unclosed quote —
/// is `None`.
pub fn parse_qualified(s: &str) -> Option<RelName> {
    // PostgreSQL's `scanner_isspace` (with `\v`, which later releases add: a name read
    // with it is only stricter).
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b');
    let mut parts: Vec<String> = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| space(*c)).is_some() {}
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != '.' && !space(*c)) {
                part.push(c.to_ascii_lowercase());
            }
        }
        if part.is_empty() {
            return None;
        }
        let mut cut = part.len().min(63);
        while !part.is_char_boundary(cut) {
            cut -= 1;
        }
        part.truncate(cut);
        parts.push(part);
        while chars.next_if(|c| space(*c)).is_some() {}
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(_) => return None,
        }
    }
    match parts.as_slice() {
        [n] => Some(RelName { schema: None, name: n.clone() }),
        [_, s, n] | [s, n] => Some(RelName { schema: Some(s.clone()), name: n.clone() }),
        _ => None,
    }
}
