//! Whether the session's role may run a DDL statement (ninth adversarial pass D2): the
//! question asked on the session before its DDL holds other sessions' writes
//! (`crate::inflight::first`). It answers false only where the server is certain to refuse
//! the statement (or run it as a no-op) for lack of privilege, by the same checks the server
//! makes:
//! - `ALTER TABLE|VIEW|INDEX|SEQUENCE …` (any action, a rename of it or of its columns,
//!   constraints, triggers, rules, policies; `SET SCHEMA`), `CREATE RULE|POLICY|STATISTICS
//!   … ON t`, `ALTER POLICY`: ownership of the relation (`pg_has_role(owner, 'USAGE')`, what
//!   the server's ownership check is); `CREATE TRIGGER … ON t`: the `TRIGGER` privilege on it;
//!   `DROP TABLE|VIEW|…`: ownership of a relation or of its schema; a relation that does not
//!   exist is refused (or skipped with `IF EXISTS`);
//! - `CREATE TABLE|VIEW|SEQUENCE|MATERIALIZED VIEW|FOREIGN TABLE`, `CREATE TABLE … AS`:
//!   `CREATE` on the schema it is made in (the one named, or the session's `current_schema()`;
//!   a `search_path` that names `pg_temp` is not judged);
//! - `ALTER SCHEMA s RENAME`: ownership of the schema;
//! - `GRANT|REVOKE … ON SCHEMA`: a grant option on one of the schemas (without one nothing
//!   is granted or revoked); `GRANT|REVOKE role`: `CREATEROLE`, or the admin option on one
//!   of the roles, or one of them being the session's own user (which PostgreSQL 15 lets
//!   administer itself).
//!
//! Superusers may run everything. In a transaction block that is not `READ COMMITTED` the
//! catalog read here would see the transaction's snapshot, not what the DDL will see: not
//! judged. Every other statement is not judged (`None`): the caller waits, as before. Every
//! function and operator is qualified with `pg_catalog`; the query cannot fail on a name
//! (a schema the role may not use, one that does not exist), so it never fails the
//! client's transaction.
//!
//! Also whether DDL by unqualified names changes only the session's own temporary relations
//! ([`own_temporary_query`]).
//!
//! Owns: those questions. Does not own: when they are asked and what follows from the answer.

use pg_query::protobuf as pb;
use pg_query::NodeEnum as N;

/// The query (one row, one boolean column) whose `f` says the role cannot run `text`, the
/// first statement of its message; `in_block`: the session is in a transaction block.
/// `None` when the statement is not one judged here.
pub fn may_run_query(text: &str, in_block: bool) -> Option<String> {
    if text.contains('\\') || text.len() > 64 << 10 {
        return None;
    }
    let expr = crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| {
        let t = tree.ok()?;
        match t.protobuf.stmts.as_slice() {
            [one] => one.stmt.as_ref().and_then(|n| n.node.as_ref()).and_then(of),
            _ => None,
        }
    })?;
    let snapshot = match in_block {
        true => "pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed'",
        false => "false",
    };
    Some(format!(
        "SELECT CASE WHEN {snapshot} THEN true \
         WHEN pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.=) 'on' THEN true \
         ELSE COALESCE(({expr}), true) END"
    ))
}

/// The query (one row, one boolean column) whose `t` says that `text`, a `DROP` or `ALTER`
/// of relations by names without `pg_temp` (`super::own` reads those that have it), changes
/// only temporary relations of the session itself (forty-eighth pass M1: `CREATE TEMP TABLE
/// t …; DROP TABLE t CASCADE` held every other session's writes): every name resolves to a
/// relation in the session's temporary schema, and the session's `search_path` does not name
/// `pg_temp` (so it is searched first, and no other session's DDL can put another relation of
/// that name before it). `None` for other statements.
pub fn own_temporary_query(text: &str) -> Option<String> {
    if text.contains('\\') || text.len() > 64 << 10 {
        return None;
    }
    let names = crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| {
        let t = tree.ok()?;
        let [one] = t.protobuf.stmts.as_slice() else { return None };
        relations(one.stmt.as_ref()?.node.as_ref()?)
    })?;
    let oids: Vec<String> = names.iter().map(oid).collect::<Option<_>>()?;
    Some(format!(
        "SELECT pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.!~*) 'pg_temp' \
         AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY[{}]::pg_catalog.oid[]) \
         AND c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()) OPERATOR(pg_catalog.=) {}",
        oids.join(", "),
        oids.len()
    ))
}

/// The relations a `DROP TABLE|VIEW|SEQUENCE|INDEX` or an `ALTER` of a relation (an action, a
/// rename of it or of what is on it) names.
fn relations(node: &N) -> Option<Vec<pb::RangeVar>> {
    use pb::ObjectType as O;
    let kinds = [O::ObjectTable, O::ObjectView, O::ObjectSequence, O::ObjectIndex];
    let is = |t: i32| kinds.iter().any(|o| *o as i32 == t);
    let on_relation = [O::ObjectColumn, O::ObjectTabconstraint, O::ObjectTrigger, O::ObjectRule];
    match node {
        N::DropStmt(d) if is(d.remove_type) && !d.objects.is_empty() => d
            .objects
            .iter()
            .map(|o| {
                let Some(N::List(l)) = o.node.as_ref() else { return None };
                let parts: Vec<String> = l.items.iter().map(sval).collect::<Option<_>>()?;
                match parts.as_slice() {
                    [n] => Some(pb::RangeVar { relname: n.clone(), ..Default::default() }),
                    _ => None,
                }
            })
            .collect(),
        N::AlterTableStmt(a) if is(a.objtype) => unqualified(a.relation.as_ref()?),
        N::RenameStmt(r) if is(r.rename_type) || on_relation.iter().any(|o| *o as i32 == r.rename_type) => {
            unqualified(r.relation.as_ref()?)
        }
        _ => None,
    }
}

fn unqualified(r: &pb::RangeVar) -> Option<Vec<pb::RangeVar>> {
    (r.schemaname.is_empty() && r.catalogname.is_empty()).then(|| vec![r.clone()])
}

/// The expression (true: the role may run it) for one statement.
fn of(node: &N) -> Option<String> {
    use pb::ObjectType as O;
    let relation = [O::ObjectTable, O::ObjectView, O::ObjectMatview, O::ObjectForeignTable, O::ObjectSequence];
    let on_relation = [O::ObjectColumn, O::ObjectTabconstraint, O::ObjectTrigger, O::ObjectPolicy, O::ObjectRule];
    let is = |os: &[O], t: i32| os.iter().any(|o| *o as i32 == t);
    match node {
        N::AlterTableStmt(a) => owns(a.relation.as_ref()?),
        N::RenameStmt(r) if r.rename_type == O::ObjectSchema as i32 => Some(owns_schema(&r.subname)),
        N::RenameStmt(r) if is(&relation, r.rename_type) || is(&on_relation, r.rename_type) => {
            owns(r.relation.as_ref()?)
        }
        N::RenameStmt(r) if r.rename_type == O::ObjectIndex as i32 => owns(r.relation.as_ref()?),
        N::AlterObjectSchemaStmt(s) if is(&relation, s.object_type) => owns(s.relation.as_ref()?),
        N::RuleStmt(r) => owns(r.relation.as_ref()?),
        N::CreatePolicyStmt(p) => owns(p.table.as_ref()?),
        N::AlterPolicyStmt(p) => owns(p.table.as_ref()?),
        N::CreateStatsStmt(s) => match s.relations.as_slice() {
            [one] => match one.node.as_ref()? {
                N::RangeVar(r) => owns(r),
                _ => None,
            },
            _ => None,
        },
        N::CreateTrigStmt(t) => {
            Some(format!("pg_catalog.has_table_privilege({}, 'TRIGGER')", oid(t.relation.as_ref()?)?))
        }
        N::DropStmt(d) if is(&relation, d.remove_type) || d.remove_type == O::ObjectIndex as i32 => drops(d),
        N::CreateStmt(c) => creates(c.relation.as_ref()?),
        N::CreateForeignTableStmt(f) => creates(f.base_stmt.as_ref()?.relation.as_ref()?),
        N::ViewStmt(v) => creates(v.view.as_ref()?),
        N::CreateSeqStmt(s) => creates(s.sequence.as_ref()?),
        N::CreateTableAsStmt(c) => creates(c.into.as_ref()?.rel.as_ref()?),
        N::GrantStmt(g)
            if g.targtype == pb::GrantTargetType::AclTargetObject as i32 && g.objtype == O::ObjectSchema as i32 =>
        {
            let names: Vec<String> = g.objects.iter().map(sval).collect::<Option<_>>()?;
            let any = names
                .iter()
                .map(|n| {
                    format!(
                        "pg_catalog.has_schema_privilege({}, 'USAGE WITH GRANT OPTION, CREATE WITH GRANT OPTION')",
                        namespace(n)
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            Some(format!("COALESCE({any}, false)"))
        }
        N::GrantRoleStmt(g) => {
            let roles: Vec<String> = g
                .granted_roles
                .iter()
                .map(|n| match n.node.as_ref()? {
                    N::AccessPriv(p) if !p.priv_name.is_empty() => Some(crate::catalog::literal(&p.priv_name)),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            Some(format!(
                "EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER \
                 AND r.rolcreaterole) OR EXISTS (SELECT FROM pg_catalog.pg_roles g \
                 WHERE g.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[{}]::pg_catalog.name[]) \
                 AND (pg_catalog.pg_has_role(g.oid, 'MEMBER WITH ADMIN OPTION') \
                 OR g.rolname OPERATOR(pg_catalog.=) CURRENT_USER OR g.rolname OPERATOR(pg_catalog.=) SESSION_USER))",
                roles.join(", ")
            ))
        }
        _ => None,
    }
}

fn sval(n: &pb::Node) -> Option<String> {
    match n.node.as_ref()? {
        N::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// The OID of a schema named `name` (NULL when there is none).
fn namespace(name: &str) -> String {
    format!("pg_catalog.to_regnamespace({})", crate::catalog::literal(&super::quote("", name)))
}

/// The OID the relation `r` resolves to on the session, as the server resolves it (NULL when
/// there is none, or when its schema is named and the role may not use it: the server then
/// refuses the statement). `None` for a name with a database part.
fn oid(r: &pb::RangeVar) -> Option<String> {
    if !r.catalogname.is_empty() || r.relname.is_empty() {
        return None;
    }
    let rel = format!("pg_catalog.to_regclass({})", crate::catalog::literal(&super::quote(&r.schemaname, &r.relname)));
    Some(match r.schemaname.is_empty() {
        true => rel,
        false => {
            format!("CASE WHEN pg_catalog.has_schema_privilege({}, 'USAGE') THEN {rel} END", namespace(&r.schemaname))
        }
    })
}

/// Whether the role owns (is a member with the owner's privileges of) the relation `r`.
fn owns(r: &pb::RangeVar) -> Option<String> {
    Some(format!(
        "EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) {} \
         AND pg_catalog.pg_has_role(c.relowner, 'USAGE'))",
        oid(r)?
    ))
}

/// Whether the role owns the schema named `name`.
fn owns_schema(name: &str) -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) {} \
         AND pg_catalog.pg_has_role(n.nspowner, 'USAGE'))",
        namespace(name)
    )
}

/// `DROP` of relations: whether the role owns one of them or its schema.
fn drops(d: &pb::DropStmt) -> Option<String> {
    let mut any = Vec::new();
    for o in &d.objects {
        let Some(N::List(l)) = o.node.as_ref() else { return None };
        let parts: Vec<String> = l.items.iter().map(sval).collect::<Option<_>>()?;
        let (schemaname, relname) = match parts.as_slice() {
            [n] => (String::new(), n.clone()),
            [s, n] => (s.clone(), n.clone()),
            _ => return None,
        };
        let r = pb::RangeVar { schemaname, relname, ..Default::default() };
        any.push(format!(
            "EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) {} \
             AND (pg_catalog.pg_has_role(c.relowner, 'USAGE') OR pg_catalog.pg_has_role(n.nspowner, 'USAGE')))",
            oid(&r)?
        ));
    }
    (!any.is_empty()).then(|| any.join(" OR "))
}

/// Whether the role may create the relation `r` (`CREATE` on the schema it is made in); a
/// temporary one concerns no other session (true: not judged).
fn creates(r: &pb::RangeVar) -> Option<String> {
    if !r.catalogname.is_empty() || r.relpersistence == "t" {
        return None;
    }
    let schema = match r.schemaname.is_empty() {
        false => namespace(&r.schemaname),
        // `current_schema()` would make the temporary schema when the path starts with it.
        true => "CASE WHEN pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.~*) 'pg_temp' THEN NULL \
                 ELSE (SELECT n.oid FROM pg_catalog.pg_namespace n \
                 WHERE n.nspname OPERATOR(pg_catalog.=) pg_catalog.current_schema()) END"
            .to_string(),
    };
    Some(format!(
        "CASE WHEN pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.~*) 'pg_temp' THEN true \
         ELSE COALESCE(pg_catalog.has_schema_privilege({schema}, 'CREATE'), false) END"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statements_are_judged() {
        for sql in [
            "ALTER TABLE users RENAME TO members",
            "ALTER TABLE public.users ADD COLUMN x int",
            "ALTER SCHEMA archive RENAME TO old",
            "GRANT USAGE ON SCHEMA archive, public TO app",
            "REVOKE USAGE ON SCHEMA archive FROM app",
            "GRANT migrator TO app",
            "CREATE TABLE archive.users (id int)",
            "CREATE VIEW members AS SELECT * FROM users",
            "DROP TABLE users, archive.users",
            "CREATE TRIGGER t AFTER UPDATE ON users EXECUTE FUNCTION f()",
        ] {
            let q = may_run_query(sql, true).unwrap_or_else(|| panic!("{sql}"));
            assert!(q.contains("transaction_isolation") && q.contains("is_superuser"), "{q}");
        }
        for sql in [
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO app",
            "CREATE TEMP VIEW v AS SELECT 1",
            "ALTER TABLE a RENAME TO b; SELECT 1",
            "ALTER TABLE \"a\\\" RENAME TO b",
        ] {
            assert!(may_run_query(sql, false).is_none(), "{sql}");
        }
        // Own temporary relations: names without a schema only.
        for sql in [
            "DROP TABLE t4 CASCADE",
            "DROP TABLE IF EXISTS a, b",
            "DROP INDEX i",
            "ALTER TABLE t4 INHERIT users",
            "ALTER TABLE t4 RENAME COLUMN a TO b",
        ] {
            let q = own_temporary_query(sql).unwrap_or_else(|| panic!("{sql}"));
            assert!(q.contains("pg_my_temp_schema()") && q.contains("!~*"), "{q}");
        }
        let q = own_temporary_query("DROP TABLE a, \"B\"").unwrap();
        assert!(q.contains(r#"to_regclass(E'"a"'), pg_catalog.to_regclass(E'"B"')"#) && q.ends_with("=) 2"), "{q}");
        for sql in [
            "DROP TABLE public.t4",
            "DROP TABLE pg_temp.t4",
            "DROP TABLE a, public.b",
            "DROP FUNCTION f()",
            "DROP TYPE t",
            "ALTER TABLE public.t ADD COLUMN c int",
            "ALTER SCHEMA s RENAME TO t",
            "CREATE TABLE t (a int)",
            "DROP TABLE a; DROP TABLE b",
        ] {
            assert!(own_temporary_query(sql).is_none(), "{sql}");
        }
        let q = may_run_query("ALTER TABLE \"Odd\"\"Name\".x RENAME TO y", false).unwrap();
        assert!(q.contains(r#"'"Odd""Name"'"#) && q.contains(r#"'"Odd""Name"."x"'"#), "{q}");
    }
}
