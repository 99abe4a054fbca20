//! The functions that run SQL in another session, in the hidden callers' answer: which
//! extensions they come from, the query's part that lists them (rows of kind `x`: function,
//! `x`, extension), and reading those rows; and the relations a write to which reaches a
//! foreign table, by OID (rows of kind `y`: a foreign table, a view over one at any depth, a
//! table with a rule that writes one, a partitioned table or parent above one).
//!
//! Owns: that list and its rows. Does not own: what a statement that may call one gets
//! (`guard::remote`).

use super::HiddenCallers;

/// The extensions whose functions run SQL in another session (a connection the server opens,
/// a background worker): `dblink` (`dblink_exec`, `dblink`, `dblink_send_query`, …) and
/// `pg_background`. Their functions are followed like user functions (a view over
/// `dblink_exec` is a hidden caller), and while any is installed a call blastwall would verify
/// by counting cannot be verified (`guard::remote`).
pub const REMOTE_EXTENSIONS: [&str; 2] = ["dblink", "pg_background"];

/// The OIDs of those installed, as an SQL array.
pub(super) fn extensions() -> String {
    let names = REMOTE_EXTENSIONS.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ");
    format!(
        "ARRAY(SELECT x.oid FROM pg_catalog.pg_extension x \
           WHERE x.extname OPERATOR(pg_catalog.=) ANY (ARRAY[{names}]::pg_catalog.name[]))"
    )
}

/// A regular expression matching those extensions' shared libraries in `pg_proc.probin`: a
/// C function declared over one outside its extension (`AS '$libdir/dblink', 'dblink_exec'`),
/// or detached from it (`ALTER EXTENSION dblink DROP FUNCTION …`), runs SQL elsewhere all the
/// same (eleventh adversarial pass H2).
fn libraries() -> String {
    format!("(^|/)({})([.]so)?$", REMOTE_EXTENSIONS.join("|"))
}

/// A `SELECT` of one row per function those extensions own (and per C function over their
/// libraries, whatever extension holds it): name, `x`, the extension; and one
/// per foreign table (`postgres_fdw`'s writes run on the remote server, maybe this one through
/// a loopback definition): name, `x`, null; and one per relation a write to which reaches a
/// foreign table ([`reaching`]): name, `y`, its OID.
pub(super) fn rows() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    format!(
        "SELECT p.proname::pg_catalog.text, 'x', x.extname::pg_catalog.text, NULL, NULL \
           FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_depend e ON e.refobjid{eq}x.oid \
             AND e.refclassid{eq}{ext} AND e.classid{eq}{proc} AND e.deptype{eq}'e'::pg_catalog.\"char\" \
           JOIN pg_catalog.pg_proc p ON p.oid{eq}e.objid WHERE x.oid OPERATOR(pg_catalog.=) ANY ({oids}) \
         UNION ALL SELECT p.proname::pg_catalog.text, 'x', \
             pg_catalog.regexp_replace(p.probin, '^.*/', ''), NULL, NULL \
           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid{eq}p.prolang \
           WHERE l.lanname{eq}'c' AND p.probin OPERATOR(pg_catalog.~) '{libs}' \
         UNION ALL SELECT c.relname::pg_catalog.text, 'x', NULL, NULL, NULL FROM pg_catalog.pg_class c \
           WHERE c.relkind{eq}'f'::pg_catalog.\"char\" \
         UNION ALL SELECT c.relname::pg_catalog.text, 'y', c.oid::pg_catalog.text, NULL, NULL \
           FROM pg_catalog.pg_class c WHERE c.oid{eq}ANY (ARRAY({reaching}))",
        reaching = reaching(),
        ext = cls("pg_extension"),
        proc = cls("pg_proc"),
        oids = extensions(),
        libs = libraries(),
    )
}

/// The OIDs of the relations a write to which reaches a foreign table: the foreign tables, the
/// relations with a rule over one of these (a view's `_RETURN` rule that reads it, a table's
/// `DO ALSO DELETE FROM …`), and their inheritance parents (a foreign partition is written
/// through its partitioned table), at any depth up to 32. A view whose rule only reads one in
/// a subquery is among them too (no write reaches the foreign table then: a false refusal).
fn reaching() -> String {
    let eq = " OPERATOR(pg_catalog.=) ";
    let cls = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    format!(
        "WITH RECURSIVE fr(oid, depth) AS (SELECT c.oid, 0 FROM pg_catalog.pg_class c \
           WHERE c.relkind{eq}'f'::pg_catalog.\"char\" \
         UNION SELECT n.oid, fr.depth OPERATOR(pg_catalog.+) 1 FROM fr CROSS JOIN LATERAL (\
           SELECT w.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid{eq}d.objid \
             WHERE d.classid{eq}{rewrite} AND d.refclassid{eq}{class} AND d.refobjid{eq}fr.oid \
               AND w.ev_class OPERATOR(pg_catalog.<>) fr.oid \
           UNION ALL SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid{eq}fr.oid) n(oid) \
           WHERE fr.depth OPERATOR(pg_catalog.<) 32) \
         SELECT DISTINCT fr.oid FROM fr",
        rewrite = cls("pg_rewrite"),
        class = cls("pg_class"),
    )
}

impl HiddenCallers {
    /// The functions of the database that run SQL in another session, `extension.function`,
    /// and its foreign tables, `foreign table name` (unknown set: one that says so).
    pub fn remote(&self) -> Vec<String> {
        if self.unknown() {
            return vec!["(the database's functions could not be read)".into()];
        }
        self.remote.clone()
    }

    /// Whether a write to the relation `oid` reaches a foreign table ([`reaching`]; unknown
    /// set: it may).
    pub fn reaches_foreign(&self, oid: u32) -> bool {
        self.unknown() || self.foreign.binary_search_by_key(&oid, |(o, _)| *o).is_ok()
    }

    /// Whether a relation called `name` (any schema, case-insensitively) reaches a foreign
    /// table, as [`HiddenCallers::reaches_foreign`]: what a name that cannot be resolved may be.
    pub fn foreign_named(&self, name: &str) -> bool {
        self.unknown() || self.foreign.iter().any(|(_, n)| n.eq_ignore_ascii_case(name))
    }

    /// The names of the relations a write to which reaches a foreign table (unknown set: one,
    /// empty, that every text mentions).
    pub fn foreign_names(&self) -> impl Iterator<Item = &str> {
        let unknown = self.unknown().then_some("");
        unknown.into_iter().chain(self.foreign.iter().map(|(_, n)| n.as_str()))
    }

    /// Whether `text` names one of those relations as a whole identifier, in any case (or has
    /// a `U&` identifier, which may spell one; unknown set: it may).
    pub fn mentions_foreign(&self, text: &str) -> bool {
        if self.foreign.is_empty() && !self.unknown() {
            return false;
        }
        let haystack = super::Haystack::of(text);
        super::has_u_amp(text) || self.foreign_names().any(|n| super::mentions(&haystack, &n.to_ascii_lowercase()))
    }

    /// Adds one row of kind `y` (the relation's OID in `oid`).
    pub(super) fn add_foreign(&mut self, name: &str, oid: Option<String>) {
        let Some(oid) = oid.and_then(|o| o.parse::<u32>().ok()) else { return };
        if let Err(at) = self.foreign.binary_search_by_key(&oid, |(o, _)| *o) {
            self.foreign.insert(at, (oid, name.to_string()));
        }
    }

    /// Adds one row of kind `x`.
    pub(super) fn add_remote(&mut self, function: &str, extension: Option<String>) {
        let f = match extension {
            Some(e) => format!("{e}.{function}"),
            None => format!("foreign table {function}"),
        };
        if let Err(at) = self.remote.binary_search(&f) {
            self.remote.insert(at, f);
        }
    }
}
