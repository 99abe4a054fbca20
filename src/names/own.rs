//! DDL that concerns the sending session alone, so it is not published to other sessions
//! (`earlier::Earlier::for_others`): a DML-only session that leaves such a statement open in a
//! transaction must not get every other session's writes refused, nor their writes in flight
//! cancelled (forty-seventh pass M1, forty-eighth pass M1).
//!
//! Read from the parse tree:
//! - **its own temporary relations**: `CREATE TEMP TABLE|VIEW|SEQUENCE|… AS` (also `OR
//!   REPLACE`), and `DROP TABLE|VIEW|SEQUENCE|INDEX`, `ALTER TABLE|VIEW|SEQUENCE|INDEX`,
//!   renames, `CREATE INDEX`, `CREATE TRIGGER` and `CREATE RULE` whose every relation is
//!   qualified with `pg_temp` (the session's own; `pg_temp_3` may be another session's). No
//!   other session's name can lead there: another session's scan skips this one's temporary
//!   tables (an inheritance child included), and reading them fails; the server refuses the
//!   edges that would make a permanent relation lead to a temporary one (a view over one is
//!   made temporary itself, a materialized view over one is refused, as are a permanent
//!   partition or child of a temporary table and a foreign key between them). `CASCADE` may
//!   still drop what a table's owner hung on a temporary relation (a default, a policy, a rule
//!   action): it only removes code, and the server does the same, unannounced, when the
//!   session ends (it drops its temporary schema with `CASCADE`);
//! - **new temporary objects of other kinds**: `CREATE FUNCTION|PROCEDURE` (not `OR REPLACE`:
//!   a permanent trigger may run the one replaced), `CREATE DOMAIN`, `CREATE TYPE` in
//!   `pg_temp`: nothing existing can refer to an object made now, and no other session
//!   searches this one's temporary schema;
//! - **what only later objects or sessions see**: `ALTER DEFAULT PRIVILEGES` (objects made
//!   later, by DDL that is judged itself), `ALTER ROLE|DATABASE … SET|RESET` (sessions started
//!   later, whose names are asked on them);
//! - **a no-op**: `REASSIGN OWNED BY r TO r`.
//!
//! Unqualified names are not read as temporary (the session's path may lead elsewhere).
//!
//! Owns: that reading. Does not own: publishing DDL (`crate::inflight`, `earlier`).

use pg_query::protobuf as pb;
use pg_query::NodeEnum as N;

const TEMP: &str = "pg_temp";

/// Whether the one statement in `text` concerns the sending session alone (above). `false`
/// when unsure (it does not parse alone, a name is unqualified or in another schema, or its
/// kind is not one of those above).
pub fn concerns_only_itself(text: &str) -> bool {
    crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| {
        let Ok(t) = tree else { return false };
        let [one] = t.protobuf.stmts.as_slice() else { return false };
        one.stmt.as_ref().and_then(|n| n.node.as_ref()).is_some_and(of)
    })
}

fn temporary(r: Option<&pb::RangeVar>) -> bool {
    r.is_some_and(|r| r.relpersistence == "t" || qualified(r))
}

fn qualified(r: &pb::RangeVar) -> bool {
    r.schemaname == TEMP && r.catalogname.is_empty()
}

fn of(node: &N) -> bool {
    use pb::ObjectType as O;
    let relation = [O::ObjectTable, O::ObjectView, O::ObjectSequence, O::ObjectIndex];
    let on_relation = |t: i32| relation.iter().any(|o| *o as i32 == t);
    match node {
        N::CreateStmt(c) => temporary(c.relation.as_ref()),
        N::ViewStmt(v) => temporary(v.view.as_ref()),
        N::CreateSeqStmt(s) => temporary(s.sequence.as_ref()),
        N::CreateTableAsStmt(c) => temporary(c.into.as_ref().and_then(|i| i.rel.as_ref())),
        N::AlterSeqStmt(s) => s.sequence.as_ref().is_some_and(qualified),
        N::IndexStmt(i) => i.relation.as_ref().is_some_and(qualified),
        N::AlterTableStmt(a) => a.relation.as_ref().is_some_and(qualified),
        N::CreateTrigStmt(t) => {
            t.relation.as_ref().is_some_and(qualified) && t.constrrel.as_ref().is_none_or(qualified)
        }
        N::RuleStmt(r) => r.relation.as_ref().is_some_and(qualified),
        N::RenameStmt(r) => r.relation.as_ref().is_some_and(qualified),
        N::DropStmt(d) => on_relation(d.remove_type) && !d.objects.is_empty() && d.objects.iter().all(dropped),
        N::CreateFunctionStmt(f) => !f.replace && in_temp(&f.funcname),
        N::CreateDomainStmt(d) => in_temp(&d.domainname),
        N::CompositeTypeStmt(c) => c.typevar.as_ref().is_some_and(qualified),
        N::CreateEnumStmt(e) => in_temp(&e.type_name),
        N::CreateRangeStmt(r) => in_temp(&r.type_name),
        N::DefineStmt(d) => d.kind == O::ObjectType as i32 && !d.replace && in_temp(&d.defnames),
        N::AlterDefaultPrivilegesStmt(_) | N::AlterRoleSetStmt(_) | N::AlterDatabaseSetStmt(_) => true,
        N::ReassignOwnedStmt(r) => {
            let to = r.newrole.as_ref();
            let same = |n: &pb::Node| matches!((n.node.as_ref(), to), (Some(N::RoleSpec(s)), Some(t)) if s.roletype == t.roletype && s.rolename == t.rolename);
            to.is_some() && !r.roles.is_empty() && r.roles.iter().all(same)
        }
        _ => false,
    }
}

/// A qualified name (a function's, a type's) in `pg_temp`.
fn in_temp(names: &[pb::Node]) -> bool {
    matches!(strings(names).as_deref(), Some([TEMP, _]))
}

fn strings(items: &[pb::Node]) -> Option<Vec<&str>> {
    items
        .iter()
        .map(|i| match i.node.as_ref() {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

/// One object of a `DROP`: `pg_temp.name`.
fn dropped(o: &pb::Node) -> bool {
    matches!(o.node.as_ref(), Some(N::List(l)) if in_temp(&l.items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_concerns_the_session_alone() {
        let own = [
            "CREATE TEMP TABLE users (id bigint)",
            "CREATE TEMPORARY TABLE t () INHERITS (users)",
            "CREATE OR REPLACE TEMP VIEW users AS SELECT 1 AS id",
            "create or replace temporary view v as select * from users",
            "CREATE VIEW pg_temp.v AS SELECT 1",
            "CREATE TEMP SEQUENCE s",
            "CREATE TEMP TABLE x AS SELECT * FROM users",
            "DROP TABLE IF EXISTS pg_temp.users",
            "DROP VIEW IF EXISTS pg_temp.x CASCADE",
            "DROP TABLE pg_temp.a, PG_TEMP.b CASCADE",
            "DROP SEQUENCE pg_temp.s",
            "DROP INDEX pg_temp.i",
            "ALTER TABLE pg_temp.t ADD COLUMN c int",
            "ALTER TABLE pg_temp.t RENAME TO users",
            "ALTER TABLE pg_temp.t RENAME COLUMN a TO id",
            "ALTER SEQUENCE pg_temp.s RESTART",
            "CREATE INDEX ON pg_temp.t (id)",
            "CREATE TRIGGER g BEFORE DELETE ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE RULE r AS ON DELETE TO pg_temp.t DO INSTEAD NOTHING",
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE PROCEDURE pg_temp.p() LANGUAGE sql AS 'SELECT 1'",
            "CREATE DOMAIN pg_temp.d AS int",
            "CREATE TYPE pg_temp.c AS (a int)",
            "CREATE TYPE pg_temp.e AS ENUM ('a')",
            "CREATE TYPE pg_temp.r AS RANGE (subtype = int4)",
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO app",
            "ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA public REVOKE ALL ON TABLES FROM app",
            "ALTER ROLE other SET search_path = public",
            "ALTER ROLE ALL RESET ALL",
            "ALTER DATABASE app SET search_path = archive",
            "REASSIGN OWNED BY other TO other",
            "REASSIGN OWNED BY CURRENT_USER, current_user TO CURRENT_USER",
        ];
        for sql in own {
            assert!(concerns_only_itself(sql), "{sql}");
        }
        let not = [
            "CREATE TABLE t (id int)",
            "CREATE OR REPLACE VIEW users AS SELECT 1 AS id",
            "CREATE VIEW v AS SELECT * FROM pg_temp.t",
            "DROP TABLE users",
            "DROP TABLE IF EXISTS pg_temp.a, public.users CASCADE",
            "DROP TABLE pg_temp_3.users",
            "DROP TABLE \"pg_temp \".users",
            "DROP TABLE mydb.pg_temp.users",
            "DROP FUNCTION pg_temp.f()",
            "DROP TYPE pg_temp.t CASCADE",
            "DROP SCHEMA pg_temp CASCADE",
            "DROP TABLE pg_temp.a; DROP TABLE users",
            "ALTER TABLE users ADD COLUMN c int",
            "ALTER TABLE t RENAME TO users",
            "CREATE TRIGGER g AFTER DELETE ON pg_temp.t FROM users FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE OR REPLACE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE DOMAIN d AS int",
            "CREATE TYPE c AS (a int)",
            "CREATE TYPE pg_temp_3.e AS ENUM ('a')",
            "ALTER TYPE pg_temp.e ADD VALUE 'b'",
            "REASSIGN OWNED BY other TO app",
            "REASSIGN OWNED BY other, app TO app",
            "REASSIGN OWNED BY CURRENT_USER TO other",
            "ALTER ROLE other NOINHERIT",
            "ALTER ROLE other RENAME TO x",
            "ALTER DATABASE app RENAME TO x",
            "GRANT USAGE ON SCHEMA archive TO other",
            "CREATE RULE r AS ON DELETE TO users DO INSTEAD NOTHING",
            "not sql",
        ];
        for sql in not {
            assert!(!concerns_only_itself(sql), "{sql}");
        }
    }
}
