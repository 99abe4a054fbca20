//! The catalog queries of name resolution (`super`), on a client's own session: every
//! function, operator and type qualified with `pg_catalog`, every string an `E''` literal; and
//! reading a view's definition into its column names.
//!
//! Owns: that SQL text, and the view definition's reading. Does not own: the answers' meaning
//! (`super`).

use super::quote;
use crate::policy::Policy;

/// `OPERATOR(pg_catalog.=)`, for queries on a client's session.
const EQ: &str = " OPERATOR(pg_catalog.=) ";

/// The identity query: for every policy table (`remembered`: the OID first seen under its
/// name, 0 when none), rows `t, index, oid, relname` for the relation its name resolves to now
/// and the remembered one if it still exists, and `v, index, oid, relname` for each relation
/// a write to which may reach it: a view whose rule reads it or such a relation (at any
/// depth), its inheritance parents and children, and views over those (`p` instead of `v` for
/// its parents: `ONLY parent` does not reach it); `g, index, oid, ''` when the remembered OID
/// is no longer any relation's (the table was dropped: one its name leads to now is its
/// successor); and one row `f, 0, true|false, ''`: whether a function of the database may
/// itself run DDL ([`ddl_functions`]).
pub fn identities_query(policy: &Policy, remembered: &dyn Fn(&str, &str) -> Option<u32>) -> String {
    let values: Vec<String> = policy
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "({i}, {}::pg_catalog.text, {}::pg_catalog.oid)",
                crate::catalog::literal(&quote(&t.schema, &t.name)),
                remembered(&t.schema, &t.name).unwrap_or(0)
            )
        })
        .collect();
    if values.is_empty() {
        return "SELECT 'none'::pg_catalog.text WHERE false".into();
    }
    format!(
        "WITH RECURSIVE p(i, q, r) AS (VALUES {values}), \
         t AS (SELECT DISTINCT p.i, c.oid, c.relname FROM p JOIN pg_catalog.pg_class c \
           ON c.oid{EQ}pg_catalog.to_regclass(p.q)::pg_catalog.oid OR c.oid{EQ}p.r), \
         r(i, oid, dir, depth) AS (SELECT t.i, t.oid, 0, 0 FROM t UNION \
           SELECT r.i, n.oid, n.dir, r.depth OPERATOR(pg_catalog.+) 1 FROM r CROSS JOIN LATERAL ( \
             SELECT v.oid, 3 FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_rewrite w ON w.oid{EQ}d.objid \
               JOIN pg_catalog.pg_class v ON v.oid{EQ}w.ev_class AND v.relkind{EQ}'v'::pg_catalog.\"char\" \
               WHERE d.classid{EQ}'pg_catalog.pg_rewrite'::pg_catalog.regclass \
               AND d.refclassid{EQ}'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid{EQ}r.oid \
               AND v.oid OPERATOR(pg_catalog.<>) r.oid UNION ALL \
             SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i \
               WHERE i.inhparent{EQ}r.oid AND r.dir OPERATOR(pg_catalog.<=) 1 UNION ALL \
             SELECT i.inhparent, 2 FROM pg_catalog.pg_inherits i \
               WHERE i.inhrelid{EQ}r.oid AND r.dir OPERATOR(pg_catalog.=) ANY (ARRAY[0, 2])) n(oid, dir) \
           WHERE r.depth OPERATOR(pg_catalog.<) 64) \
         SELECT 't'::pg_catalog.text, t.i::pg_catalog.text, t.oid::pg_catalog.text, t.relname::pg_catalog.text FROM t \
         UNION ALL \
         SELECT DISTINCT CASE WHEN r.dir{EQ}2 THEN 'p' ELSE 'v' END::pg_catalog.text, r.i::pg_catalog.text, c.oid::pg_catalog.text, c.relname::pg_catalog.text \
         FROM r JOIN pg_catalog.pg_class c ON c.oid{EQ}r.oid WHERE r.dir OPERATOR(pg_catalog.<>) 0 \
         UNION ALL SELECT 'g'::pg_catalog.text, p.i::pg_catalog.text, p.r::pg_catalog.text, ''::pg_catalog.text FROM p \
           WHERE p.r OPERATOR(pg_catalog.<>) 0::pg_catalog.oid \
             AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid{EQ}p.r) \
         UNION ALL SELECT 'f'::pg_catalog.text, '0'::pg_catalog.text, ({functions})::pg_catalog.text, ''::pg_catalog.text \
         UNION ALL SELECT 'u'::pg_catalog.text, '0'::pg_catalog.text, ({named})::pg_catalog.text, ''::pg_catalog.text \
         UNION ALL SELECT 'x'::pg_catalog.text, '0'::pg_catalog.text, ({untrusted})::pg_catalog.text, ''::pg_catalog.text \
         UNION ALL SELECT 'z'::pg_catalog.text, '0'::pg_catalog.text, ({temp})::pg_catalog.text, ''::pg_catalog.text \
         UNION ALL SELECT 'y'::pg_catalog.text, '0'::pg_catalog.text, ({steered_names})::pg_catalog.text, ''::pg_catalog.text \
         UNION ALL SELECT 'w'::pg_catalog.text, '0'::pg_catalog.text, ({steered_triggers})::pg_catalog.text, ''::pg_catalog.text",
        values = values.join(", "),
        functions = ddl_functions(),
        named = user_function_names(),
        untrusted = untrusted_code(),
        temp = temp_steerable(),
        steered_names = steered("SELECT coalesce(pg_catalog.string_agg(DISTINCT f.name::pg_catalog.text, ','), '')", "true"),
        steered_triggers = steered(
            "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0",
            "(f.ret OPERATOR(pg_catalog.=) 'pg_catalog.trigger'::pg_catalog.regtype \
             OR EXISTS (SELECT FROM pg_catalog.pg_depend d \
               WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass \
               AND d.refobjid OPERATOR(pg_catalog.=) f.oid \
               AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_proc'::pg_catalog.regclass))"
        ),
    )
}

/// Whether the database has code a role other than the policy tables' owners wrote (a
/// superuser, and `pg_database_owner` where the database's owner is trusted, count as them:
/// `trusted`): a function or procedure outside `pg_catalog` and `information_schema` it owns,
/// or a trigger or rule on a relation it owns. Temporary code is a session's own, which counts
/// for that session only (`catalog::taint`): another session's makes no difference here. Such code does not explain rows of a policy
/// table a count finds changed where the judgement did not reach (`guard::reached`): a
/// trigger of the writer's own table made those rows look like its doing while the write's
/// name, or its table's rule or view, led it to the policy table as it ran (fifty-second to
/// fifty-fourth passes). The owners' own code counts as such too when a function of it
/// ([`writer`]) writes a relation by a name without a schema (or runs dynamic SQL, or its body
/// cannot be read) and sets no `search_path` that no other role can steer ([`path_safe`]) —
/// it resolves names under the caller's path, or under `$user` — while another role may
/// create schemas in the database, or may create in a schema (owns it, or holds `CREATE`
/// there) that has no relation of a name the function writes (or the body runs dynamic SQL,
/// or cannot be read): the caller can put that schema first and shadow the name with a view
/// over a policy table (fifty-eighth pass H3, by a permanent schema). A schema the owners'
/// side owns that already has a relation of that name they own cannot shadow it (`public`,
/// open to all in a database made before PostgreSQL 15, beside the owner's own tables in it).
fn untrusted_code() -> String {
    let not_trusted = |r: &str| format!("NOT {}", trusted(r, "o.owners"));
    format!(
        "WITH o(owners) AS (SELECT pg_catalog.array_agg(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid{EQ}ANY \
           (ARRAY(SELECT t.oid FROM t))) \
         SELECT o.owners IS NULL OR EXISTS (SELECT FROM pg_catalog.pg_proc f \
             JOIN pg_catalog.pg_namespace n ON n.oid{EQ}f.pronamespace \
             WHERE NOT n.nspname{EQ}ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
             AND NOT n.nspname OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_' AND {fun}) \
           OR EXISTS (SELECT FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid{EQ}g.tgrelid \
             WHERE NOT g.tgisinternal AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\" AND {rel}) \
           OR EXISTS (SELECT FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class c ON c.oid{EQ}w.ev_class \
             WHERE w.rulename OPERATOR(pg_catalog.<>) '_RETURN'::pg_catalog.name \
             AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\" AND {rel}) \
           OR EXISTS (SELECT FROM pg_catalog.pg_proc f WHERE {writer} AND NOT {path_safe} AND ({db_create} \
             OR EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE {open} \
               AND (f.prosrc OPERATOR(pg_catalog.~*) {exec}::pg_catalog.text \
                 OR NOT EXISTS (SELECT FROM pg_catalog.pg_language l WHERE l.oid{EQ}f.prolang \
                   AND l.lanname{EQ}ANY (ARRAY['sql', 'plpgsql']::pg_catalog.name[])) \
                 OR NOT {nsp_owner} \
                 OR EXISTS (SELECT FROM pg_catalog.regexp_matches(f.prosrc, {named}::pg_catalog.text, 'gi') m(w) \
                   WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace{EQ}n.oid AND {rel_owner} \
                     AND c.relname{EQ}CASE WHEN pg_catalog.left(m.w[1], 1){EQ}'\"' \
                       THEN pg_catalog.replace(pg_catalog.btrim(m.w[1], '\"'), '\"\"', '\"') \
                       ELSE pg_catalog.lower(m.w[1]) END)))))) FROM o",
        fun = not_trusted("f.proowner"),
        rel = not_trusted("c.relowner"),
        writer = writer("f"),
        path_safe = path_safe("f"),
        open = open_schema("n"),
        db_create = db_create(),
        named = crate::catalog::literal(WRITTEN_NAME),
        exec = crate::catalog::literal(r"\mexecute\M"),
        nsp_owner = trusted("n.nspowner", "o.owners"),
        rel_owner = trusted("c.relowner", "o.owners"),
    )
}

/// Each name a function body writes without a schema, as its one group (see
/// [`UNQUALIFIED_WRITE`]).
const WRITTEN_NAME: &str = r#"\m(?:insert\s+into|update|delete\s+from|merge\s+into)\s+(?:only\s+)?(?!(?:set|of|nowait|skip)\M)("[^"]*"|[[:alpha:]_][[:alnum:]_$]*)(?![[:alnum:]_$])(?!\s*\.)"#;

/// Whether function `f` (not in C) writes a relation by a name without a schema or runs
/// dynamic SQL (its body matches [`UNQUALIFIED_WRITE`], or is in a language whose body
/// blastwall cannot read): where such a name leads is the path's doing.
fn writer(f: &str) -> String {
    format!(
        "{f}.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid AND EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_language l ON l.oid{EQ}{f}.prolang \
           WHERE n.oid{EQ}{f}.pronamespace \
           AND NOT n.nspname{EQ}ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
           AND NOT n.nspname OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_' \
           AND l.lanname OPERATOR(pg_catalog.<>) ALL (ARRAY['c', 'internal']::pg_catalog.name[]) \
           AND (l.lanname OPERATOR(pg_catalog.<>) ALL (ARRAY['sql', 'plpgsql']::pg_catalog.name[]) \
             OR {f}.prosrc OPERATOR(pg_catalog.~*) {writes}::pg_catalog.text))",
        writes = crate::catalog::literal(UNQUALIFIED_WRITE),
    )
}

/// Whether schema `n` is one a role other than the policy tables' owners (`o.owners`) may
/// create in: it owns it, or holds `CREATE` on it (`PUBLIC` too). Not a temporary or system
/// schema.
fn open_schema(n: &str) -> String {
    format!(
        "NOT {n}.nspname OPERATOR(pg_catalog.~) '^(pg_(toast_)?temp_|pg_catalog$|pg_toast$|information_schema$)' \
         AND (NOT {own} OR EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE({n}.nspacl, \
           pg_catalog.acldefault('n', {n}.nspowner))) a WHERE a.privilege_type{EQ}'CREATE' AND NOT {grantee}))",
        own = trusted(&format!("{n}.nspowner"), "o.owners"),
        grantee = trusted("a.grantee", "o.owners"),
    )
}

/// Whether a role other than the policy tables' owners may create schemas in the database.
fn db_create() -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.pg_database d CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(d.datacl, \
           pg_catalog.acldefault('d', d.datdba))) a WHERE d.datname{EQ}pg_catalog.current_database() \
         AND a.privilege_type{EQ}'CREATE' AND NOT {grantee})",
        grantee = trusted("a.grantee", "o.owners"),
    )
}

/// Whether function `f` sets a `search_path` of its own that no other role can steer: none of
/// its entries is `$user` (the caller's own schema, fifty-ninth pass H1: `SET search_path FROM
/// CURRENT` stores `"$user", public`), a schema another role may create in
/// ([`open_schema`]), or — where another role may create schemas — one that does not exist.
fn path_safe(f: &str) -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.unnest({f}.proconfig) g(s) WHERE g.s OPERATOR(pg_catalog.~~) 'search_path=%' \
           AND NOT EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(pg_catalog.substr(g.s, 13), ',')) e(x) \
             WHERE pg_catalog.btrim(e.x){EQ}ANY (ARRAY['\"$user\"', '$user']) \
             OR EXISTS (SELECT FROM pg_catalog.pg_namespace n \
               WHERE pg_catalog.quote_ident(n.nspname){EQ}pg_catalog.btrim(e.x) AND {open}) \
             OR (NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n \
               WHERE pg_catalog.quote_ident(n.nspname){EQ}pg_catalog.btrim(e.x)) AND {db_create})))",
        open = open_schema("n"),
        db_create = db_create(),
    )
}

/// Whether some function of the database writes a name without a schema ([`writer`]) and
/// does not search the temporary schema last (`pg_temp` listed last in its own `search_path`):
/// PostgreSQL searches a session's temporary schema first for relations unless the path lists
/// it, so the caller's temporary view of that name is what it writes (fifty-eighth pass H3).
fn temp_steerable() -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.pg_proc f WHERE {writer} \
           AND NOT EXISTS (SELECT FROM pg_catalog.unnest(f.proconfig) g(s) \
             WHERE g.s OPERATOR(pg_catalog.~~) 'search_path=%' \
             AND pg_catalog.btrim((pg_catalog.string_to_array(g.s, ','))[pg_catalog.cardinality(pg_catalog.string_to_array(g.s, ','))]) \
               OPERATOR(pg_catalog.=) ANY (ARRAY['pg_temp', 'search_path=pg_temp'])))",
        writer = writer("f"),
    )
}

/// A function body that writes a relation by a name without a schema (`INSERT INTO t`,
/// `UPDATE t`, `DELETE FROM t`, `MERGE INTO t`; not `DO UPDATE SET`, `FOR UPDATE OF`), or
/// runs dynamic SQL (`EXECUTE`): a regular expression for PostgreSQL (`~*`). It errs towards
/// a match (a write named in a comment or a string counts).
const UNQUALIFIED_WRITE: &str = r#"\m(insert\s+into|update|delete\s+from|merge\s+into)\s+(only\s+)?(?!(set|of|nowait|skip)\M)("[^"]*"|[[:alpha:]_][[:alnum:]_$]*)(?![[:alnum:]_$])(?!\s*\.)|\mexecute\M"#;

/// Whether role `r` is trusted as the policy tables' owners (`owners`, an array) are: one of
/// them, a superuser, or `pg_database_owner` where the database's owner is one of those.
pub(crate) fn trusted(r: &str, owners: &str) -> String {
    let owner = |r: &str| {
        format!(
            "({r} OPERATOR(pg_catalog.=) ANY ({owners}) OR EXISTS (SELECT FROM pg_catalog.pg_roles g WHERE g.oid{EQ}{r} AND g.rolsuper))"
        )
    };
    format!(
        "({} OR ({r}{EQ}'pg_database_owner'::pg_catalog.regrole::pg_catalog.oid AND (SELECT {} FROM pg_catalog.pg_database d \
           WHERE d.datname{EQ}pg_catalog.current_database())))",
        owner(r),
        owner("d.datdba")
    )
}

/// `select` over the functions outside `pg_catalog` and `information_schema` (temporary ones
/// aside) whose caller can steer what they write, whoever wrote them, and that meet `and`:
/// a body that runs dynamic SQL (`EXECUTE`, its text may come from the arguments or a setting
/// the caller chose), names the temporary schema or makes a temporary table (the caller's own
/// temporary view of that name comes first: sixtieth pass H1, a scratch table `work` made `IF
/// NOT EXISTS` and written under `SET search_path = public, pg_temp`), or changes the path or
/// the role (`set_config`, `SET search_path`, `SET ROLE`: sixtieth pass H2, a tenant's name
/// from an argument); or a body in a language other than SQL and PL/pgSQL (not C); and,
/// at any depth, the functions whose body names one of those (a trigger function that calls
/// one: sixtieth pass H1 through the owner's trigger).
fn steered(select: &str, and: &str) -> String {
    let scope = |f: &str| {
        format!(
            "{f}.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
             AND EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.oid{EQ}{f}.pronamespace \
               AND NOT n.nspname{EQ}ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) \
               AND NOT n.nspname OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_')"
        )
    };
    format!(
        "WITH RECURSIVE s(oid, name, ret) AS (SELECT f.oid, f.proname, f.prorettype FROM pg_catalog.pg_proc f \
           JOIN pg_catalog.pg_language l ON l.oid{EQ}f.prolang WHERE {direct} \
           AND l.lanname OPERATOR(pg_catalog.<>) ALL (ARRAY['c', 'internal']::pg_catalog.name[]) \
           AND (l.lanname OPERATOR(pg_catalog.<>) ALL (ARRAY['sql', 'plpgsql']::pg_catalog.name[]) \
             OR f.prosrc OPERATOR(pg_catalog.~*) {steer}::pg_catalog.text) \
         UNION SELECT g.oid, g.proname, g.prorettype FROM s JOIN pg_catalog.pg_proc g \
           ON g.prosrc OPERATOR(pg_catalog.~*) ({wb} OPERATOR(pg_catalog.||) s.name::pg_catalog.text OPERATOR(pg_catalog.||) {we}) \
           WHERE {callers}) \
         {select} FROM s f WHERE {and}",
        direct = scope("f"),
        callers = scope("g"),
        steer = crate::catalog::literal(STEERED),
        wb = crate::catalog::literal(r"\m"),
        we = crate::catalog::literal(r"\M"),
    )
}

/// What makes a function body one its caller can steer ([`steered`]), for `~*`.
const STEERED: &str = r"\mexecute\M|\mpg_temp|\mcreate\s+(temp|temporary|local\s+temp|local\s+temporary|global\s+temp|global\s+temporary|unlogged)?\s*table|\mset_config\M|\mset\s+(local\s+|session\s+)?(search_path|role|session\s+authorization)\M";

/// The names of every function and procedure outside `pg_catalog` and `information_schema`
/// (an extension's and another session's temporary ones too), comma-separated: a call of any
/// other name can only be a built-in's (`guard::reached`).
fn user_function_names() -> String {
    format!(
        "SELECT coalesce(pg_catalog.string_agg(DISTINCT f.proname::pg_catalog.text, ','), '') FROM pg_catalog.pg_proc f \
           JOIN pg_catalog.pg_namespace n ON n.oid{EQ}f.pronamespace \
           WHERE NOT n.nspname{EQ}ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[])"
    )
}

/// Whether some function or procedure outside `pg_catalog` and `information_schema` may
/// itself run DDL (so that a call of any user function may, through it): one in SQL or
/// PL/pgSQL whose body has `CREATE`, `ALTER`, `DROP`, `EXECUTE` (dynamic SQL) or `IMPORT`;
/// one in any other language but C and `internal` (its body cannot be read); one in C or
/// `internal` that no extension installed.
fn ddl_functions() -> String {
    format!(
        "EXISTS (SELECT FROM pg_catalog.pg_proc f \
           JOIN pg_catalog.pg_namespace n ON n.oid{EQ}f.pronamespace \
           JOIN pg_catalog.pg_language l ON l.oid{EQ}f.prolang \
           WHERE NOT n.nspname{EQ}ANY (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) AND CASE \
             WHEN l.lanname{EQ}ANY (ARRAY['sql', 'plpgsql']::pg_catalog.name[]) \
               THEN f.prosrc OPERATOR(pg_catalog.~*) E'\\\\m(create|alter|drop|execute|import)\\\\M'::pg_catalog.text \
             WHEN l.lanname{EQ}ANY (ARRAY['c', 'internal']::pg_catalog.name[]) \
               THEN NOT EXISTS (SELECT FROM pg_catalog.pg_depend d \
                 WHERE d.classid{EQ}'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid{EQ}f.oid \
                 AND d.deptype{EQ}'e'::pg_catalog.\"char\") \
             ELSE true END)"
    )
}

/// The resolution query for names written by a session (keys as [`key`] makes them): rows
/// `ordinal, oid, reached, columns, taken over, schema, name, its own columns, below, defs,
/// system, stale` (`stale`: [`stale_path`]; see
/// [`reaches_sql`]; its columns separated by `\x1f`, in attnum order).
pub fn relations_query(keys: &[String], policy_oids: &[u32]) -> String {
    let list = keys.iter().map(|k| crate::catalog::literal(k)).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT x.i::pg_catalog.text, c.oid::pg_catalog.text, r.reached, r.columns, r.instead, \
           (SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n WHERE n.oid{EQ}c.relnamespace), \
           c.relname::pg_catalog.text, \
           (SELECT pg_catalog.string_agg(a.attname::pg_catalog.text, E'\\037' ORDER BY a.attnum) \
            FROM pg_catalog.pg_attribute a WHERE a.attrelid{EQ}c.oid AND a.attnum{GT}0 AND NOT a.attisdropped), \
           r.below, r.defs, r.system, ({stale}), ({movable}) \
         FROM pg_catalog.unnest(ARRAY[{list}]::pg_catalog.text[]) WITH ORDINALITY x(n, i) \
         LEFT JOIN pg_catalog.pg_class c ON c.oid{EQ}CASE WHEN pg_catalog.strpos(x.n, E'\\002'){GT}0 \
           THEN ({in_path}) ELSE pg_catalog.to_regclass(x.n)::pg_catalog.oid END \
         LEFT JOIN LATERAL ({reaches}) r ON true",
        in_path = in_path("x.n"),
        reaches = reaches_sql("c.oid"),
        stale = stale_path("x.n"),
        movable = movable("x.n", policy_oids),
    )
}

/// Whether a role that does not own the policy tables (`policy_oids`' owners) may make the
/// name `k`, resolved to relation `c`, lead elsewhere by DDL of its own while a write to it
/// waits for a lock (fifty-third pass H2: a table swapped for a view over `public.users`): it
/// owns the relation or its schema (rename, drop, revoke a privilege on the schema), or a
/// view the write goes through at any depth (its rule replaced: fifty-eighth pass H2), or may
/// create in a schema the session's path searches before it (an unqualified name), or the
/// path lists a schema the role may not use now (a membership given meanwhile shows it, and
/// taken away before the reading after the run hides it again: fifty-seventh pass H2). Such a
/// write is counted, so that where its name leads is read again around its run
/// (`precheck::named`). Trusted as the policy tables' owners are: superusers, and
/// `pg_database_owner` (the `public` schema's owner) where the database's owner is trusted. No
/// policy table known: none.
fn movable(k: &str, policy_oids: &[u32]) -> String {
    if policy_oids.is_empty() {
        return "false".into();
    }
    let oids: Vec<String> = policy_oids.iter().map(u32::to_string).collect();
    let trusted = |r: &str| trusted(r, "o.owners");
    format!(
        "WITH o(owners) AS (SELECT pg_catalog.array_agg(p.relowner) FROM pg_catalog.pg_class p \
           WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[{oids}]::pg_catalog.oid[])) \
         SELECT c.oid IS NOT NULL AND o.owners IS NOT NULL AND (NOT {rel} \
           OR NOT (SELECT {nsp} FROM pg_catalog.pg_namespace n WHERE n.oid{EQ}c.relnamespace) \
           OR EXISTS (WITH RECURSIVE vw(oid) AS (SELECT c.oid UNION SELECT d.refobjid FROM vw \
               JOIN pg_catalog.pg_rewrite w ON w.ev_class{EQ}vw.oid \
               JOIN pg_catalog.pg_depend d ON d.classid{EQ}'pg_catalog.pg_rewrite'::pg_catalog.regclass \
                 AND d.objid{EQ}w.oid AND d.refclassid{EQ}'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.refobjid OPERATOR(pg_catalog.<>) vw.oid) \
             SELECT FROM vw JOIN pg_catalog.pg_class v ON v.oid{EQ}vw.oid \
             WHERE v.relkind{EQ}'v'::pg_catalog.\"char\" AND NOT {view}) \
           OR (pg_catalog.strpos({k}, E'\\002'){EQ}0 AND pg_catalog.cardinality(pg_catalog.parse_ident({k})){EQ}1 \
             AND EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(pg_catalog.current_setting('search_path'), ',')) e(s) \
               JOIN pg_catalog.pg_namespace n ON CASE WHEN pg_catalog.btrim(e.s){EQ}ANY (ARRAY['\"$user\"', '$user']) \
                 THEN n.nspname{EQ}CURRENT_USER ELSE pg_catalog.quote_ident(n.nspname){EQ}pg_catalog.btrim(e.s) END \
               WHERE n.oid OPERATOR(pg_catalog.<>) c.relnamespace AND NOT pg_catalog.has_schema_privilege(n.oid, 'USAGE'))) \
           OR (pg_catalog.strpos({k}, E'\\002'){EQ}0 AND pg_catalog.cardinality(pg_catalog.parse_ident({k})){EQ}1 \
             AND EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY s(nsp, i) \
               JOIN pg_catalog.pg_namespace n ON n.nspname{EQ}s.nsp \
               CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a \
               WHERE a.privilege_type{EQ}'CREATE' AND NOT {grantee} \
                 AND n.oid OPERATOR(pg_catalog.<>) c.relnamespace \
                 AND s.i OPERATOR(pg_catalog.<) COALESCE((SELECT t.i FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) \
                   WITH ORDINALITY t(nsp, i) JOIN pg_catalog.pg_namespace m ON m.nspname{EQ}t.nsp \
                   WHERE m.oid{EQ}c.relnamespace), 0)))) FROM o",
        oids = oids.join(", "),
        rel = trusted("c.relowner"),
        nsp = trusted("n.nspowner"),
        grantee = trusted("a.grantee"),
        view = trusted("v.relowner"),
    )
}

/// Whether the session's server would resolve the unqualified name `k` otherwise once it
/// computes its search path again: PostgreSQL keeps the path it computed (which `to_regclass`
/// and `current_schemas` read) until a `pg_namespace` change, not when a role's membership or
/// a schema's privilege is revoked, and any session can make such a change (its first
/// temporary table). The path read again keeps only the schemas the role may use now
/// (`has_schema_privilege` reads the memberships of the moment); a name it leads elsewhere is
/// judged as every relation it may be. A privilege granted since only adds schemas, away from
/// what the kept path reads (judged then by the stricter answer).
fn stale_path(k: &str) -> String {
    format!(
        "CASE WHEN pg_catalog.strpos({k}, E'\\002'){GT}0 THEN false \
           WHEN pg_catalog.cardinality(pg_catalog.parse_ident({k})) OPERATOR(pg_catalog.<>) 1 THEN false \
           ELSE COALESCE(pg_catalog.to_regclass({k})::pg_catalog.oid, 0::pg_catalog.oid) \
             OPERATOR(pg_catalog.<>) COALESCE((SELECT r.oid \
               FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY s(nsp, o) \
               JOIN pg_catalog.pg_namespace n ON n.nspname{EQ}s.nsp \
               JOIN pg_catalog.pg_class r ON r.relnamespace{EQ}n.oid \
                 AND r.relname{EQ}(pg_catalog.parse_ident({k}))[1]::pg_catalog.name \
               WHERE pg_catalog.has_schema_privilege(n.oid, 'USAGE') ORDER BY s.o LIMIT 1), 0::pg_catalog.oid) END"
    )
}

/// What a write to relation `rel` reaches besides it (read by `super::reaches_answer`):
/// - `reached`: the relations a view's rule reads, at every level (`ch`, by `pg_depend`), and
///   the inheritance parents and children (partitions) of each of those and of `rel` (`fam`);
/// - `columns`: `column \x1f relation \x1f column` per column of `rel` and each relation it
///   shows a column of: a view's column followed level by level to the column it comes from
///   (the `_RETURN` rule's `resorigtbl`/`resorigcol`, a plain column reference; every match of
///   the attnum counts, so a subquery's column of the same number only adds names) and on to
///   each inheritance relative's column of that name;
/// - `instead`: `kinds \x1f schema.view` per view on the way with an INSTEAD OF trigger or a
///   rule other than its `_RETURN` (`i`, `u`, `d`: the writes they take over);
/// - `below`: the inheritance children and partitions of `rel` itself, at every level (what
///   `ONLY rel` does not write).
/// - `system`: whether a view's rule, at any level, reads a relation `initdb` made (OID below
///   16384, on which the server records no dependency: a system catalog), by the `:relid`
///   of its range table entries;
/// - `defs` (when `rel` is a view): `kind,schema,name,definition` per relation its rule reads
///   at every level (`v` a view, with `pg_get_viewdef`; `r` any other), `;` between them, each
///   field hex of its UTF-8: what `super::expand` follows down to the base table.
fn reaches_sql(rel: &str) -> String {
    let and =
        |a: &str, b: &str| format!("(({a})::pg_catalog.int4 OPERATOR(pg_catalog.&) {b}) OPERATOR(pg_catalog.<>) 0");
    let return_rule = "w.rulename OPERATOR(pg_catalog.=) '_RETURN'::pg_catalog.name";
    let ns = |c: &str| format!("(SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_namespace n WHERE n.oid{EQ}{c})");
    let hex = |t: &str| format!("pg_catalog.encode(pg_catalog.convert_to(({t})::pg_catalog.text, 'UTF8'), 'hex')");
    format!(
        "WITH RECURSIVE ch(rel, depth) AS (SELECT {rel}, 0 UNION \
           SELECT d.refobjid, ch.depth OPERATOR(pg_catalog.+) 1 FROM ch \
           JOIN pg_catalog.pg_rewrite w ON w.ev_class{EQ}ch.rel AND {return_rule} \
           JOIN pg_catalog.pg_depend d ON d.classid{EQ}'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid{EQ}w.oid \
             AND d.refclassid{EQ}'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid OPERATOR(pg_catalog.<>) ch.rel \
           WHERE ch.depth OPERATOR(pg_catalog.<) 64), \
         co(top, rel, att, depth) AS (SELECT a.attname, {rel}, a.attnum, 0 FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid{EQ}{rel} AND a.attnum{GT}0 AND NOT a.attisdropped UNION \
           SELECT co.top, m[2]::pg_catalog.oid, m[3]::pg_catalog.int2, co.depth OPERATOR(pg_catalog.+) 1 FROM co \
           JOIN pg_catalog.pg_rewrite w ON w.ev_class{EQ}co.rel AND {return_rule} \
           CROSS JOIN LATERAL pg_catalog.regexp_matches(w.ev_action::pg_catalog.text, \
             E':resno (\\\\d+) :resname (?:[^ \\\\\\\\]|\\\\\\\\.)* :ressortgroupref \\\\d+ :resorigtbl (\\\\d+) :resorigcol (\\\\d+)', 'g') m \
           WHERE m[1]::pg_catalog.int4{EQ}co.att AND m[2] OPERATOR(pg_catalog.<>) '0'::pg_catalog.text \
             AND co.depth OPERATOR(pg_catalog.<) 64), \
         fam(root, rel, dir) AS (SELECT ch.rel, ch.rel, 0 FROM ch UNION \
           SELECT fam.root, n.rel, n.dir FROM fam CROSS JOIN LATERAL ( \
             SELECT i.inhrelid, 1 FROM pg_catalog.pg_inherits i \
               WHERE i.inhparent{EQ}fam.rel AND fam.dir OPERATOR(pg_catalog.<>) 2 UNION ALL \
             SELECT i.inhparent, 2 FROM pg_catalog.pg_inherits i \
               WHERE i.inhrelid{EQ}fam.rel AND fam.dir OPERATOR(pg_catalog.<>) 1) n(rel, dir)), \
         tk(depth, name, ops) AS (SELECT ch.depth, pg_catalog.concat({vns}, '.', v.relname), pg_catalog.concat( \
             (SELECT pg_catalog.string_agg(o.op, '') FROM pg_catalog.pg_trigger g CROSS JOIN LATERAL (VALUES \
               (CASE WHEN {ins} THEN 'i' END), (CASE WHEN {del} THEN 'd' END), (CASE WHEN {upd} THEN 'u' END)) o(op) \
              WHERE g.tgrelid{EQ}v.oid AND {instead_of}), \
             (SELECT pg_catalog.string_agg(CASE WHEN w.ev_type{EQ}'2' THEN 'u' WHEN w.ev_type{EQ}'3' THEN 'i' \
               WHEN w.ev_type{EQ}'4' THEN 'd' ELSE 'iud' END, '') FROM pg_catalog.pg_rewrite w \
              WHERE w.ev_class{EQ}v.oid AND w.rulename OPERATOR(pg_catalog.<>) '_RETURN'::pg_catalog.name)) \
           FROM ch JOIN pg_catalog.pg_class v ON v.oid{EQ}ch.rel AND v.relkind{EQ}'v'::pg_catalog.\"char\") \
         SELECT (SELECT pg_catalog.string_agg(DISTINCT fam.rel::pg_catalog.text, ',') FROM fam \
             WHERE fam.rel OPERATOR(pg_catalog.<>) {rel}) AS reached, \
           (SELECT pg_catalog.string_agg(DISTINCT pg_catalog.concat_ws(E'\\037', co.top, f.rel, a.attname), E'\\036') \
             FROM co JOIN pg_catalog.pg_attribute a ON a.attrelid{EQ}co.rel AND a.attnum{EQ}co.att \
             JOIN fam f ON f.root{EQ}co.rel) AS columns, \
           (SELECT pg_catalog.string_agg(pg_catalog.concat(tk.ops, E'\\037', tk.name), E'\\036' ORDER BY tk.depth) \
             FROM tk WHERE tk.ops OPERATOR(pg_catalog.<>) '') AS instead, \
           (SELECT pg_catalog.string_agg(DISTINCT fam.rel::pg_catalog.text, ',') FROM fam \
             WHERE fam.root{EQ}{rel} AND fam.dir{EQ}1) AS below, \
           (SELECT pg_catalog.string_agg(pg_catalog.concat({kind}, ',', {schema}, ',', {name}, ',', {def}), ';') \
             FROM (SELECT DISTINCT ch.rel FROM ch) r JOIN pg_catalog.pg_class d ON d.oid{EQ}r.rel \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class x WHERE x.oid{EQ}{rel} \
               AND x.relkind{EQ}'v'::pg_catalog.\"char\")) AS defs, \
           (SELECT pg_catalog.bool_or(m[1]::pg_catalog.oid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid \
               AND m[1]::pg_catalog.oid OPERATOR(pg_catalog.>) 0::pg_catalog.oid) FROM ch \
             JOIN pg_catalog.pg_rewrite w ON w.ev_class{EQ}ch.rel AND {return_rule} \
             CROSS JOIN LATERAL pg_catalog.regexp_matches(w.ev_action::pg_catalog.text, E':relid (\\\\d+)', 'g') m) AS system",
        vns = ns("v.relnamespace"),
        kind = hex("CASE WHEN d.relkind OPERATOR(pg_catalog.=) 'v'::pg_catalog.\"char\" THEN 'v' ELSE 'r' END"),
        schema = hex(&ns("d.relnamespace")),
        name = hex("d.relname::pg_catalog.text"),
        def = hex("CASE WHEN d.relkind OPERATOR(pg_catalog.=) 'v'::pg_catalog.\"char\" THEN pg_catalog.pg_get_viewdef(d.oid) END"),
        ins = and("g.tgtype", "4"),
        del = and("g.tgtype", "8"),
        upd = and("g.tgtype", "16"),
        instead_of = and("g.tgtype", "64"),
    )
}

/// `OPERATOR(pg_catalog.>)`.
const GT: &str = " OPERATOR(pg_catalog.>) ";

/// The OID a key `path\u{2}name` (see `super::effective_key`) resolves to, as the server
/// resolves an unqualified relation name under that `search_path`: the session's temporary
/// schema first and `pg_catalog` next unless the path lists them, then the path's schemas in
/// order (`$user` the role's, `pg_temp` the session's temporary schema), skipping those that do
/// not exist or lack USAGE; the first schema holding a relation of that name.
fn in_path(k: &str) -> String {
    let path = format!("pg_catalog.string_to_array(pg_catalog.split_part({k}, E'\\002', 1), E'\\001')");
    let name = format!("pg_catalog.split_part({k}, E'\\002', 2)");
    format!(
        "WITH listed AS (SELECT n.oid AS ns, s.o FROM pg_catalog.unnest({path}) WITH ORDINALITY s(nsp, o) \
           JOIN pg_catalog.pg_namespace n ON n.nspname{EQ}CASE \
             WHEN s.nsp{EQ}'$user' THEN CURRENT_USER::pg_catalog.text \
             WHEN s.nsp{EQ}'pg_temp' THEN (SELECT t.nspname::pg_catalog.text FROM pg_catalog.pg_namespace t \
               WHERE t.oid{EQ}pg_catalog.pg_my_temp_schema()) \
             ELSE s.nsp END \
           WHERE pg_catalog.has_schema_privilege(n.oid, 'USAGE')), \
         searched AS (SELECT ns, o FROM listed \
           UNION ALL SELECT 'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid, -1 \
             WHERE NOT EXISTS (SELECT 1 FROM listed WHERE listed.ns{EQ}'pg_catalog'::pg_catalog.regnamespace::pg_catalog.oid) \
           UNION ALL SELECT pg_catalog.pg_my_temp_schema(), -2 \
             WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0::pg_catalog.oid \
             AND NOT EXISTS (SELECT 1 FROM listed WHERE listed.ns{EQ}pg_catalog.pg_my_temp_schema())) \
         SELECT r.oid FROM searched JOIN pg_catalog.pg_class r ON r.relnamespace{EQ}searched.ns \
           AND r.relname{EQ}{name}::pg_catalog.name ORDER BY searched.o LIMIT 1"
    )
}

/// The columns of a constraint of the relation `key` resolves to, in key order.
pub fn constraint_query(key: &str, constraint: &str) -> String {
    format!(
        "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_constraint k \
         CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, o) \
         JOIN pg_catalog.pg_attribute a ON a.attrelid{EQ}k.conrelid AND a.attnum{EQ}u.n \
         WHERE k.conrelid{EQ}pg_catalog.to_regclass({})::pg_catalog.oid AND k.conname{EQ}{}::pg_catalog.name \
         ORDER BY u.o",
        crate::catalog::literal(key),
        crate::catalog::literal(constraint)
    )
}

/// The SQL of a question this module answers.
pub fn question_sql(
    q: &crate::catalog::Question,
    policy: &Policy,
    remembered: &dyn Fn(&str, &str) -> Option<u32>,
) -> Option<String> {
    use crate::catalog::Question;
    match q {
        Question::Identities => Some(identities_query(policy, remembered)),
        Question::Relations(keys) => {
            let oids: Vec<u32> = policy.tables.iter().filter_map(|t| remembered(&t.schema, &t.name)).collect();
            Some(relations_query(keys, &oids))
        }
        Question::Constraint { relation, constraint } => Some(constraint_query(relation, constraint)),
        _ => None,
    }
}
