//! What a DDL statement the server runs before a write can do to the relation that write's
//! name leads to, read from its parse tree (`earlier`): nothing, only to the relations it
//! names, or to any name.
//!
//! A write is judged by what its name resolves to and, for a view, by the relations and
//! columns the view's rule leads to (`names`), and counted by what it changes on the server
//! (`precheck`). DDL sent before it and not yet answered changes the catalog after blastwall's
//! answers were asked, so what blastwall knows may be stale in three ways:
//! - **Edges between relations**: a view's definition (`CREATE OR REPLACE VIEW`), inheritance
//!   and partitions (`INHERIT`, `ATTACH PARTITION`, `CREATE TABLE … PARTITION OF`), a table
//!   turned into a view (`CREATE RULE … ON SELECT`), schemas renamed or dropped, anything
//!   `CASCADE` drops, functions, types, operators and the rest: a name blastwall does not see
//!   named may now lead to a policy table. [`Class::Any`]: every later write is refused.
//! - **Code or names on the relations it names**: `ALTER TABLE t` with a default, `CHECK`,
//!   acting foreign key, trigger, rule or row-security switch; `CREATE TRIGGER|POLICY|RULE …
//!   ON t`; `CREATE STATISTICS`; a column, constraint, trigger, index or relation renamed or
//!   moved to another schema; `DROP TABLE|VIEW|TRIGGER …` without `CASCADE`; a new view. These
//!   change no edge between relations: only writes naming one of its names are refused
//!   ([`Class::Named`]). A write that reaches such a relation under another name — through a
//!   view over it (always counted), as its inheritance parent (counted: it has children), by a
//!   foreign key's cascade (the cascades were forgotten with the DDL and are assumed to reach
//!   everything until asked again) — is counted, as it would be alone, so whatever the new
//!   code does is measured against the row limits.
//! - **Nothing a write reaches**: `CREATE INDEX`, `COMMENT`, `GRANT` (not DDL to begin with),
//!   `CREATE TABLE` of a new table (no `INHERITS`, no `PARTITION OF`) or `… AS`, `CREATE|ALTER
//!   SEQUENCE`, `DROP INDEX|SEQUENCE|STATISTICS` without `CASCADE`, and `ALTER TABLE` whose
//!   every action is one of: `ADD COLUMN` of a built-in type whose default is a constant (or
//!   `now()`-like) and whose constraints are `NOT NULL`, `PRIMARY KEY`, `UNIQUE` or a foreign
//!   key that takes no action; `SET|DROP NOT NULL`, `DROP DEFAULT`, `DROP COLUMN`, `DROP
//!   CONSTRAINT` without `CASCADE`; `ADD PRIMARY KEY|UNIQUE|FOREIGN KEY` (no action),
//!   `VALIDATE CONSTRAINT`, `SET DEFAULT` a constant, `ALTER COLUMN … TYPE` a built-in type,
//!   identity,
//!   statistics, storage, compression, clustering, tablespace, logging, replica identity
//!   ([`Class::Nothing`]). A statement that calls a function other than a well-known built-in
//!   is a call (`earlier::Kind::Call`), whatever its kind.
//!
//! A text that does not parse here alone, longer than 64 KiB, or has a backslash (whose reading depends on
//! `standard_conforming_strings`), is [`Class::Any`]. Names are compared as the parser reads
//! them (`U&"\0075sers"` is `users`; a name longer than 63 bytes is cut as the server cuts it).
//!
//! Owns: that classification. Does not own: keeping the statements (`earlier`,
//! `crate::session`), counting (`precheck`).

use pg_query::protobuf as pb;
use pg_query::NodeEnum as N;
use std::cell::RefCell;
use std::sync::Arc;

/// What a DDL statement may do to the relations later writes reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// It cannot change what any write's name leads to, nor what a write there runs.
    Nothing,
    /// It may change only the relations of these names (and what these names lead to).
    Named(Arc<[String]>),
    /// It may change what any name leads to; the names it is known to touch.
    Any(Arc<[String]>),
}

/// How many classifications a thread keeps (a message of many writes after one DDL asks for
/// the same text once per write).
const KEPT: usize = 32;

thread_local! {
    static SEEN: RefCell<Vec<(Arc<str>, Class)>> = const { RefCell::new(Vec::new()) };
}

/// The longest text classified (longer DDL — a `CREATE TABLE … AS` of a long `VALUES` list —
/// is taken as [`Class::Any`] unread, so the kept texts stay small).
const LONGEST: usize = 64 << 10;

/// The class of one statement's text (a DDL statement).
pub fn classify(text: &str) -> Class {
    if text.len() > LONGEST {
        return Class::Any(Arc::from([]));
    }
    if let Some(c) = SEEN.with(|s| s.borrow().iter().find(|(t, _)| **t == *text).map(|(_, c)| c.clone())) {
        return c;
    }
    let c = crate::analyze::deep::with_parse(text, pg_query::ParserOptions::DEFAULT, |tree| match tree {
        Ok(t) => match t.protobuf.stmts.as_slice() {
            [one] => one.stmt.as_ref().and_then(|n| n.node.as_ref()).map_or(Class::Any(Arc::from([])), of),
            _ => Class::Any(Arc::from([])),
        },
        Err(_) => Class::Any(Arc::from([])),
    });
    // Read with standard_conforming_strings on, which the session may not have: its names are
    // kept, its class is not trusted.
    let c = match c {
        Class::Named(n) if text.contains('\\') => Class::Any(n),
        Class::Nothing if text.contains('\\') => Class::Any(Arc::from([])),
        c => c,
    };
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= KEPT {
            s.remove(0);
        }
        s.push((text.into(), c.clone()));
    });
    c
}

fn named(names: Vec<String>) -> Class {
    Class::Named(names.into())
}

fn any(names: Vec<String>) -> Class {
    Class::Any(names.into())
}

fn rel(r: Option<&pb::RangeVar>) -> Vec<String> {
    r.map(|r| r.relname.clone()).into_iter().filter(|n| !n.is_empty()).collect()
}

fn cascade(behavior: i32) -> bool {
    behavior == pb::DropBehavior::DropCascade as i32
}

/// The class of one parsed statement.
fn of(node: &N) -> Class {
    use pb::ObjectType as O;
    match node {
        N::CreateStmt(c) => create_table(c),
        N::CreateForeignTableStmt(f) => f.base_stmt.as_ref().map_or_else(|| any(Vec::new()), create_table),
        N::CreateTableAsStmt(_) | N::CreateSeqStmt(_) | N::AlterSeqStmt(_) => Class::Nothing,
        N::AlterTableStmt(a) => alter_table(a),
        N::CreateTrigStmt(t) => named([rel(t.relation.as_ref()), rel(t.constrrel.as_ref())].concat()),
        N::CreatePolicyStmt(p) => named(rel(p.table.as_ref())),
        N::AlterPolicyStmt(p) => named(rel(p.table.as_ref())),
        N::CreateStatsStmt(s) => named(s.relations.iter().filter_map(range_var).collect()),
        // A rule ON SELECT turns a table into a view over whatever it selects.
        N::RuleStmt(r) if r.event == pb::CmdType::CmdSelect as i32 => any(rel(r.relation.as_ref())),
        N::RuleStmt(r) => named(rel(r.relation.as_ref())),
        // A new view has no dependants: only its own name leads somewhere new. One replaced
        // changes what every view over it reaches.
        N::ViewStmt(v) if !v.replace => named(rel(v.view.as_ref())),
        N::ViewStmt(v) => any(rel(v.view.as_ref())),
        N::DropStmt(d) => drop(d),
        N::RenameStmt(r) => {
            let mut names = rel(r.relation.as_ref());
            names.push(r.newname.clone());
            let t = r.rename_type;
            let relation = [O::ObjectTable, O::ObjectView, O::ObjectMatview, O::ObjectForeignTable, O::ObjectSequence];
            let on_relation =
                [O::ObjectColumn, O::ObjectTabconstraint, O::ObjectTrigger, O::ObjectPolicy, O::ObjectRule];
            if relation.iter().chain(&on_relation).chain(&[O::ObjectIndex]).any(|o| *o as i32 == t) {
                named(names)
            } else {
                any(names)
            }
        }
        N::AlterObjectSchemaStmt(s) => {
            let relation = [O::ObjectTable, O::ObjectView, O::ObjectMatview, O::ObjectForeignTable, O::ObjectSequence];
            let names = rel(s.relation.as_ref());
            if relation.iter().any(|o| *o as i32 == s.object_type) && !names.is_empty() {
                named(names)
            } else {
                any(names)
            }
        }
        _ => any(Vec::new()),
    }
}

fn range_var(n: &pb::Node) -> Option<String> {
    match n.node.as_ref()? {
        N::RangeVar(r) if !r.relname.is_empty() => Some(r.relname.clone()),
        _ => None,
    }
}

/// A new table reaches nothing; one made a child or partition of another is an edge.
fn create_table(c: &pb::CreateStmt) -> Class {
    if c.inh_relations.is_empty() && c.partbound.is_none() {
        Class::Nothing
    } else {
        any(rel(c.relation.as_ref()))
    }
}

/// `DROP` without `CASCADE`: of an index, sequence or statistics, nothing a write reaches; of a
/// relation, trigger, rule or policy, the relations it names (a name dropped leads elsewhere).
fn drop(d: &pb::DropStmt) -> Class {
    use pb::ObjectType as O;
    let names: Vec<String> = d
        .objects
        .iter()
        .flat_map(|o| match o.node.as_ref() {
            Some(N::List(l)) => l.items.iter().filter_map(sval).collect(),
            Some(N::String(s)) => vec![s.sval.clone()],
            _ => Vec::new(),
        })
        .collect();
    if cascade(d.behavior) {
        return any(names);
    }
    let t = d.remove_type;
    let is = |os: &[O]| os.iter().any(|o| *o as i32 == t);
    if is(&[O::ObjectIndex, O::ObjectSequence, O::ObjectStatisticExt]) {
        Class::Nothing
    } else if is(&[
        O::ObjectTable,
        O::ObjectView,
        O::ObjectMatview,
        O::ObjectForeignTable,
        O::ObjectTrigger,
        O::ObjectRule,
        O::ObjectPolicy,
    ]) {
        named(names)
    } else {
        any(names)
    }
}

fn sval(n: &pb::Node) -> Option<String> {
    match n.node.as_ref()? {
        N::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// How far one `ALTER TABLE` action reaches.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    Nothing,
    Named,
    Any,
}

fn alter_table(a: &pb::AlterTableStmt) -> Class {
    let mut names = rel(a.relation.as_ref());
    let mut worst = Reach::Nothing;
    for cmd in &a.cmds {
        let reach = match cmd.node.as_ref() {
            Some(N::AlterTableCmd(c)) => alter_cmd(c, &mut names),
            _ => Reach::Any,
        };
        worst = worst.max(reach);
    }
    match worst {
        _ if names.is_empty() => any(names),
        Reach::Nothing => Class::Nothing,
        Reach::Named => named(names),
        Reach::Any => any(names),
    }
}

/// One `ALTER TABLE` action (`names`: the relations it names, the altered one first).
fn alter_cmd(c: &pb::AlterTableCmd, names: &mut Vec<String>) -> Reach {
    use pb::AlterTableType as T;
    if cascade(c.behavior) {
        return Reach::Any;
    }
    let Ok(t) = T::try_from(c.subtype) else { return Reach::Any };
    let def = c.def.as_deref().and_then(|d| d.node.as_ref());
    match t {
        T::AtAddColumn => match def {
            Some(N::ColumnDef(col)) => column(col, names),
            _ => Reach::Any,
        },
        // DROP DEFAULT takes code away; SET DEFAULT of anything but a constant adds what an
        // INSERT runs.
        T::AtColumnDefault => match c.def.as_deref() {
            None => Reach::Nothing,
            Some(d) if constant(d) => Reach::Nothing,
            Some(_) => Reach::Named,
        },
        T::AtAddConstraint => match def {
            Some(N::Constraint(k)) => constraint(k, names),
            _ => Reach::Any,
        },
        // `USING` runs once, during the ALTER itself (a user function there makes it a call);
        // a later write runs only what the new type brings.
        T::AtAlterColumnType => match def {
            Some(N::ColumnDef(col)) if col.coll_clause.is_none() && builtin_type(col.type_name.as_ref()) => {
                Reach::Nothing
            }
            _ => Reach::Named,
        },
        T::AtDropNotNull
        | T::AtSetNotNull
        | T::AtDropExpression
        | T::AtSetStatistics
        | T::AtSetOptions
        | T::AtResetOptions
        | T::AtSetStorage
        | T::AtSetCompression
        | T::AtDropColumn
        | T::AtValidateConstraint
        | T::AtAddIndexConstraint
        | T::AtDropConstraint
        | T::AtClusterOn
        | T::AtDropCluster
        | T::AtSetLogged
        | T::AtSetUnLogged
        | T::AtDropOids
        | T::AtSetTableSpace
        | T::AtReplicaIdentity
        | T::AtAddIdentity
        | T::AtSetIdentity
        | T::AtDropIdentity => Reach::Nothing,
        // Edges between relations.
        T::AtAddInherit
        | T::AtDropInherit
        | T::AtAttachPartition
        | T::AtDetachPartition
        | T::AtDetachPartitionFinalize
        | T::Undefined => Reach::Any,
        // Code that writes to the table run (defaults, generated expressions, triggers, rules,
        // row security and whose it is, access method, options such as `security_invoker`).
        _ => Reach::Named,
    }
}

/// A column added: nothing when its type is built in, its default a constant and its
/// constraints run nothing on a write.
fn column(col: &pb::ColumnDef, names: &mut Vec<String>) -> Reach {
    let mut reach = if builtin_type(col.type_name.as_ref())
        && col.coll_clause.is_none()
        && col.generated.is_empty()
        && col.raw_default.as_deref().is_none_or(constant)
    {
        Reach::Nothing
    } else {
        Reach::Named
    };
    for k in &col.constraints {
        reach = reach.max(match k.node.as_ref() {
            Some(N::Constraint(k)) => constraint(k, names),
            _ => Reach::Any,
        });
    }
    reach
}

/// A constraint added: `NOT NULL`, a constant default, `PRIMARY KEY`, `UNIQUE` (of columns)
/// and a foreign key that takes no action run nothing on a write to this table; a foreign key
/// with an action changes what a write to the referenced table reaches (named too).
fn constraint(k: &pb::Constraint, names: &mut Vec<String>) -> Reach {
    use pb::ConstrType as C;
    let Ok(t) = C::try_from(k.contype) else { return Reach::Any };
    match t {
        C::ConstrNull
        | C::ConstrNotnull
        | C::ConstrIdentity
        | C::ConstrAttrDeferrable
        | C::ConstrAttrNotDeferrable
        | C::ConstrAttrDeferred
        | C::ConstrAttrImmediate => Reach::Nothing,
        C::ConstrDefault if k.raw_expr.as_deref().is_none_or(constant) => Reach::Nothing,
        C::ConstrPrimary | C::ConstrUnique if k.where_clause.is_none() && k.exclusions.is_empty() => Reach::Nothing,
        C::ConstrForeign => {
            names.extend(rel(k.pktable.as_ref()));
            let none = |a: &str| matches!(a, "" | "a" | "r");
            if none(&k.fk_upd_action) && none(&k.fk_del_action) {
                Reach::Nothing
            } else {
                Reach::Named
            }
        }
        _ => Reach::Named,
    }
}

/// A default that runs no code: a constant (cast to a built-in type), `CURRENT_TIMESTAMP` and
/// the like, or one of a few argument-less built-ins.
fn constant(n: &pb::Node) -> bool {
    match n.node.as_ref() {
        Some(N::AConst(_)) | Some(N::SqlvalueFunction(_)) => true,
        Some(N::TypeCast(c)) => builtin_type(c.type_name.as_ref()) && c.arg.as_deref().is_some_and(constant),
        Some(N::FuncCall(f)) => {
            const NOW: &[&str] =
                &["now", "gen_random_uuid", "clock_timestamp", "statement_timestamp", "transaction_timestamp"];
            let name: Vec<String> = f.funcname.iter().filter_map(sval).collect();
            let plain = matches!(name.as_slice(), [n] | [_, n] if NOW.contains(&n.as_str()))
                && (name.len() == 1 || name[0] == "pg_catalog");
            plain && f.args.is_empty() && f.agg_filter.is_none() && f.over.is_none()
        }
        _ => false,
    }
}

/// A type of `pg_catalog` that runs no user code (no domain, no user type).
fn builtin_type(t: Option<&pb::TypeName>) -> bool {
    const BUILTIN: &[&str] = &[
        "text",
        "varchar",
        "bpchar",
        "char",
        "name",
        "bool",
        "boolean",
        "int2",
        "int4",
        "int8",
        "smallint",
        "integer",
        "int",
        "bigint",
        "float4",
        "float8",
        "real",
        "numeric",
        "decimal",
        "money",
        "date",
        "time",
        "timetz",
        "timestamp",
        "timestamptz",
        "interval",
        "uuid",
        "json",
        "jsonb",
        "bytea",
        "inet",
        "cidr",
        "macaddr",
        "xml",
        "tsvector",
        "serial",
        "bigserial",
        "smallserial",
        "serial2",
        "serial4",
        "serial8",
        "bit",
        "varbit",
        "oid",
    ];
    let Some(t) = t else { return false };
    if t.setof || t.pct_type {
        return false;
    }
    let names: Vec<String> = t.names.iter().filter_map(sval).collect();
    match names.as_slice() {
        [schema, _] if schema == "pg_catalog" => true,
        [name] => BUILTIN.contains(&name.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &Class) -> Vec<&str> {
        match c {
            Class::Nothing => Vec::new(),
            Class::Named(n) | Class::Any(n) => n.iter().map(String::as_str).collect(),
        }
    }

    #[test]
    fn what_ddl_can_reach() {
        let nothing = [
            "CREATE TABLE t (id int PRIMARY KEY, note text DEFAULT 'x' NOT NULL)",
            "CREATE TEMP TABLE users (id bigint)",
            "CREATE TABLE t2 AS SELECT 1",
            "CREATE SEQUENCE s1",
            "ALTER SEQUENCE s1 RESTART",
            "ALTER TABLE staging ADD COLUMN c int",
            "ALTER TABLE staging ADD COLUMN c2 text DEFAULT 'a' NOT NULL, ADD COLUMN c3 timestamptz DEFAULT now()",
            "ALTER TABLE staging ADD COLUMN c4 bigserial PRIMARY KEY",
            "ALTER TABLE staging ADD COLUMN u bigint REFERENCES users (id)",
            "ALTER TABLE staging ALTER COLUMN note SET NOT NULL, ALTER COLUMN c DROP DEFAULT",
            "ALTER TABLE staging ALTER COLUMN note TYPE varchar(320)",
            "ALTER TABLE \"staging\" ALTER COLUMN \"note\" TYPE varchar(200) USING \"note\"::varchar(200)",
            "ALTER TABLE staging ALTER COLUMN c SET DEFAULT 0, ALTER COLUMN at SET DEFAULT CURRENT_TIMESTAMP",
            "ALTER TABLE \"app_x\" ADD COLUMN \"y_id\" bigint NULL CONSTRAINT \"fk\" REFERENCES \"app_y\"(\"id\") DEFERRABLE INITIALLY DEFERRED",
            "ALTER TABLE \"users\" ADD \"created_at\" timestamp(6) NOT NULL, ADD \"x\" character varying",
            "ALTER TABLE staging ADD CONSTRAINT k UNIQUE (note)",
            "ALTER TABLE staging DROP COLUMN c, DROP CONSTRAINT k",
            "ALTER TABLE staging ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id) ON DELETE RESTRICT",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "DROP SEQUENCE s1",
        ];
        for sql in nothing {
            assert_eq!(classify(sql), Class::Nothing, "{sql}");
        }
        let named_ = [
            ("ALTER TABLE staging ALTER COLUMN note SET DEFAULT md5('x')", &["staging"][..]),
            ("ALTER TABLE staging ADD COLUMN d mydomain", &["staging"]),
            ("ALTER TABLE staging ADD CONSTRAINT c CHECK (id > 0)", &["staging"]),
            ("ALTER TABLE staging ADD FOREIGN KEY (u) REFERENCES users ON DELETE CASCADE", &["staging", "users"]),
            ("ALTER TABLE staging ENABLE TRIGGER ALL", &["staging"]),
            ("ALTER TABLE staging ALTER COLUMN note TYPE mytype", &["staging"]),
            ("ALTER TABLE staging ALTER COLUMN note SET DEFAULT lower(note2)", &["staging"]),
            ("CREATE TRIGGER t BEFORE UPDATE ON staging FOR EACH ROW EXECUTE FUNCTION f()", &["staging"]),
            ("CREATE RULE r AS ON UPDATE TO staging DO INSTEAD NOTHING", &["staging"]),
            ("CREATE POLICY p ON staging USING (true)", &["staging"]),
            ("CREATE VIEW sv AS SELECT * FROM staging", &["sv"]),
            ("ALTER TABLE staging RENAME TO old", &["staging", "old"]),
            ("ALTER TABLE users RENAME COLUMN id TO uid", &["users", "uid"]),
            ("ALTER TABLE archive.users SET SCHEMA other", &["users"]),
            ("DROP TABLE IF EXISTS a.tmp, tmp2", &["a", "tmp", "tmp2"]),
            ("DROP TRIGGER t ON staging", &["staging", "t"]),
        ];
        for (sql, want) in named_ {
            let c = classify(sql);
            assert!(matches!(c, Class::Named(_)), "{sql}: {c:?}");
            assert_eq!(names(&c), want, "{sql}");
        }
        let every = [
            "CREATE OR REPLACE VIEW v AS SELECT * FROM users",
            "CREATE RULE \"_RETURN\" AS ON SELECT TO t DO INSTEAD SELECT * FROM users",
            "ALTER TABLE users INHERIT staging",
            "ALTER TABLE p ATTACH PARTITION users FOR VALUES IN (1)",
            "CREATE TABLE c () INHERITS (staging)",
            "CREATE TABLE c PARTITION OF p FOR VALUES IN (1)",
            "ALTER SCHEMA s1 RENAME TO s9",
            "ALTER TABLE staging DROP COLUMN c CASCADE",
            "DROP TABLE t CASCADE",
            "DROP TYPE d",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE SCHEMA s",
            "ALTER TABLE staging ADD COLUMN c int; ALTER TABLE users INHERIT staging",
            "not sql at all",
        ];
        for sql in every {
            assert!(matches!(classify(sql), Class::Any(_)), "{sql}");
        }
        // Names as the parser reads them.
        let escaped = classify("ALTER VIEW U&\"\\0076\" RENAME TO w");
        assert_eq!((matches!(escaped, Class::Any(_)), names(&escaped)), (true, vec!["v", "w"]));
        let long = format!("CREATE VIEW {}x AS SELECT 1", "a".repeat(63));
        assert_eq!(names(&classify(&long)), vec!["a".repeat(63).as_str()]);
        let uescape = classify("CREATE VIEW U&\"!0076\" UESCAPE '!' AS SELECT 1");
        assert_eq!((matches!(uescape, Class::Named(_)), names(&uescape)), (true, vec!["v"]));
    }
}
