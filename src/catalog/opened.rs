//! Names another role may come to own: where a role other than the policy tables' owners (as
//! `code::others` tells them) may create objects. A statement is judged against the catalog as
//! it is when judged, but the server resolves its names while it runs, and a read that waits
//! for a lock (`LOCK TABLE` held by another session, a table its FROM list names first)
//! resolves the names after it only once the lock is granted. A name that led nowhere, or to a
//! built-in, when it was judged may by then lead to a view, function, operator or domain
//! another session committed meanwhile (sixty-seventh pass H1: `SELECT * FROM locked RIGHT
//! JOIN app_own.vv ON true` deleted 20 users through a view made while it waited). So:
//! - a schema such a role may create in (owns it, or holds `CREATE` there by name; not by
//!   `PUBLIC`'s grant: [`open`]) is a hidden caller by its name (`hidden::query`): a text that names it is counted;
//! - a session whose `search_path` lists such a schema, or any session of a database where
//!   such a role may create schemas (it could make one of any name a text or a path names),
//!   is taken as tainted (`taint`): every statement of it is counted, and what cannot be
//!   counted is refused, saying why. The answer is asked with the session's taint, and again
//!   after a message that may change the path (`guard::taint::after_judging`).
//!
//! Owns: that SQL. Does not own: what a mention or a taint leads to (`guard`).

/// The CTEs `o(owners)` (the policy tables' owners) and `x(others)` (the roles of `pg_roles`
/// trusted as they are not: `names::trusted`), listed once per question so that it stays
/// about a millisecond to plan. `PUBLIC`, no role of `pg_roles`, is not among them: `CREATE`
/// granted to `PUBLIC` (`public` in a database made before PostgreSQL 15) is not followed —
/// every statement of every session of such a database would be counted, and PostgreSQL
/// itself calls that usage pattern unsafe (any role may plant a function every caller meets);
/// README says to revoke it. `None` without policy tables.
fn others_cte(policy: &crate::policy::Policy) -> Option<String> {
    let owners = super::code::owners(policy)?;
    Some(format!(
        "o(owners) AS (SELECT {owners}), \
         x(others) AS (SELECT ARRAY(SELECT ro.oid FROM pg_catalog.pg_roles ro \
           WHERE pg_catalog.cardinality(o.owners) OPERATOR(pg_catalog.>) 0 AND NOT {trusted}) FROM o)",
        trusted = crate::names::trusted("ro.oid", "o.owners"),
    ))
}

/// A condition over schema `n` (`pg_namespace`) beside [`others_cte`]'s `x`: one of those
/// roles may create objects in it (owns it, or was granted `CREATE` there). Temporary schemas
/// are their sessions' own; the system's are the superuser's.
fn open(n: &str) -> String {
    format!(
        "(NOT {n}.nspname OPERATOR(pg_catalog.~) '^(pg_(toast_)?temp_|pg_catalog$|pg_toast$|information_schema$)' \
          AND ({n}.nspowner OPERATOR(pg_catalog.=) ANY (x.others) OR EXISTS (SELECT FROM pg_catalog.aclexplode({n}.nspacl) a \
            WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' AND a.grantee OPERATOR(pg_catalog.=) ANY (x.others))))"
    )
}

/// Rows for `hidden::query`'s list of callers (name, kind `o`: read like `r`, and marks the
/// database as having one; no sequence, no namespace, owner): every schema [`open`] to
/// another role, by its name. Empty without policy tables.
pub fn schemas_rows(policy: &crate::policy::Policy) -> String {
    let Some(cte) = others_cte(policy) else { return String::new() };
    format!(
        " UNION ALL (WITH {cte} SELECT n.nspname, 'o'::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.oid, \
           n.nspowner FROM pg_catalog.pg_namespace n, x WHERE {open})",
        open = open("n"),
    )
}

/// A text expression, asked on a client's session: why its names may come to mean objects
/// another role makes (a schema [`open`] to one on its `search_path`, or such a role may
/// create schemas in the database), or null; null without policy tables. The path is read as
/// written (`$user` as the current role), not only as `current_schemas` gives it: that leaves
/// out a schema the role may not use now, and its owner may grant itself the use again while
/// a statement waits (sixty-eighth pass H1: `REVOKE USAGE` on its own schema before the path
/// was asked).
pub fn path_open(policy: &crate::policy::Policy) -> String {
    let Some(cte) = others_cte(policy) else { return "NULL::pg_catalog.text".to_string() };
    let eq = " OPERATOR(pg_catalog.=) ";
    format!(
        "(WITH {cte} \
         SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_database d \
             CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
             WHERE d.datname{eq}pg_catalog.current_database() AND a.privilege_type{eq}'CREATE' \
             AND a.grantee{eq}ANY (x.others)) \
           THEN 'a role other than the policy tables'' owners may create schemas in this database'::pg_catalog.text \
           ELSE (SELECT 'schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) \
               ' is on the search_path, and a role other than the policy tables'' owners may create objects in it' \
             FROM pg_catalog.pg_namespace n \
             WHERE n.nspname{eq}ANY (pg_catalog.current_schemas(false) OPERATOR(pg_catalog.||) ARRAY(SELECT CASE \
                 WHEN pg_catalog.btrim(e.x){eq}ANY (ARRAY['$user', '\"$user\"']) THEN CURRENT_USER \
                 WHEN pg_catalog.left(pg_catalog.btrim(e.x), 1){eq}'\"' \
                   THEN pg_catalog.replace(pg_catalog.btrim(pg_catalog.btrim(e.x), '\"'), '\"\"', '\"') \
                 ELSE pg_catalog.lower(pg_catalog.btrim(e.x)) END::pg_catalog.name \
               FROM pg_catalog.unnest(pg_catalog.string_to_array(pg_catalog.current_setting('search_path'), ',')) e(x))) \
               AND {open} \
             ORDER BY n.nspname LIMIT 1) END FROM x)",
        open = open("n"),
    )
}

/// The question asked when only the path may have changed since the session's taint was
/// learned: one row, [`path_open`]'s answer.
pub fn path_query(policy: &crate::policy::Policy) -> String {
    format!("SELECT {}", path_open(policy))
}
