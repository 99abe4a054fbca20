//! The functions that run SQL in another session, in the hidden callers' answer: which
//! extensions they come from, the query's part that lists them (rows of kind `x`: function,
//! `x`, extension), and reading those rows.
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
/// a loopback definition): name, `x`, null.
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
           WHERE c.relkind{eq}'f'::pg_catalog.\"char\"",
        ext = cls("pg_extension"),
        proc = cls("pg_proc"),
        oids = extensions(),
        libs = libraries(),
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
