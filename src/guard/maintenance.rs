//! Maintenance commands that evaluate a table's expressions without writing its rows:
//! `ANALYZE` (statistics of expression indexes and of extended statistics), `VACUUM FULL` and
//! `VACUUM (ANALYZE)`, `REINDEX`, `CLUSTER` and `REFRESH MATERIALIZED VIEW` (they rebuild
//! indexes). An index expression that calls a user function makes its table a writing hidden
//! caller (`catalog::HiddenCallers`): these commands run that function as an INSERT would, so
//! they are judged like a write of the tables they name — and like a write of every table
//! when they name none (`ANALYZE;`, `REINDEX SCHEMA …`, a bare `CLUSTER`).
//!
//! Owns: recognising those commands (by their parse tree, after a cheap word test) and whether
//! they can run inside the pre-check's transaction. Does not own: the set of hidden callers
//! (`catalog`) or what a mention leads to (`need`).

/// A maintenance command, as far as the hidden-caller rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Maintenance {
    /// It evaluates every index and statistics expression of its tables (plain `VACUUM` only
    /// a BRIN index's, when it summarizes new page ranges).
    pub(super) evaluates: bool,
    /// It names no relation: it processes every table the role may maintain.
    pub(super) every_table: bool,
    /// PostgreSQL refuses to run it inside a transaction block (`VACUUM`, `REINDEX SCHEMA`,
    /// `… CONCURRENTLY`, a bare `CLUSTER`): it cannot be counted in the pre-check.
    pub(super) outside_blocks: bool,
    /// `REFRESH MATERIALIZED VIEW`: it runs the view's query.
    pub(super) refresh: bool,
}

/// Whether a statement's text may be a maintenance command: its first word is one of theirs,
/// in any case (behind a leading comment, the one-pass scan looks at every word: a false
/// positive costs a parse).
pub(super) fn word_in(text: &[u8]) -> bool {
    const WORDS: [&[u8]; 6] = [b"analyze", b"analyse", b"vacuum", b"reindex", b"cluster", b"refresh"];
    let t = text.trim_ascii_start();
    if t.starts_with(b"--") || t.starts_with(b"/*") {
        return super::prefilter::scan(text).maintenance;
    }
    let first = t.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    WORDS.iter().any(|w| t[..first].eq_ignore_ascii_case(w))
}

/// The maintenance command a statement's text is, if it is one.
pub(super) fn of(text: &str) -> Option<Maintenance> {
    use pg_query::protobuf::ReindexObjectType as R;
    use pg_query::NodeEnum as N;
    if !word_in(text.as_bytes()) {
        return None;
    }
    let parsed = crate::analyze::budget::parse(text, 0).ok()?;
    let node = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let option = |params: &[pg_query::protobuf::Node], name: &str| {
        params.iter().any(|p| match p.node.as_ref() {
            Some(N::DefElem(d)) => d.defname.eq_ignore_ascii_case(name) && !is_false(d.arg.as_deref()),
            _ => false,
        })
    };
    match node {
        N::VacuumStmt(v) => {
            let evaluates = !v.is_vacuumcmd || option(&v.options, "full") || option(&v.options, "analyze");
            Some(Maintenance {
                evaluates,
                every_table: v.rels.is_empty(),
                outside_blocks: v.is_vacuumcmd,
                refresh: false,
            })
        }
        N::ReindexStmt(r) => {
            let named = matches!(R::try_from(r.kind), Ok(R::ReindexObjectIndex | R::ReindexObjectTable));
            Some(Maintenance {
                evaluates: true,
                every_table: !named,
                outside_blocks: !named || option(&r.params, "concurrently"),
                refresh: false,
            })
        }
        N::ClusterStmt(c) => {
            let every_table = c.relation.is_none();
            Some(Maintenance { evaluates: true, every_table, outside_blocks: every_table, refresh: false })
        }
        N::RefreshMatViewStmt(_) => {
            Some(Maintenance { evaluates: true, every_table: false, outside_blocks: false, refresh: true })
        }
        _ => None,
    }
}

/// A `CREATE INDEX` evaluates only what its own text names (its expressions, predicate and
/// operator classes), never the table's defaults, checks, triggers, policies or other
/// indexes: its text with the indexed table's name blanked out, for the hidden-caller mention
/// test, and whether it is `CONCURRENTLY` (PostgreSQL cannot run it in a transaction).
/// `None`: not a `CREATE INDEX`.
pub(super) fn index_build(text: &str) -> Option<(String, bool)> {
    use pg_query::NodeEnum as N;
    let t = text.trim_ascii_start();
    let first = t.bytes().take_while(u8::is_ascii_alphabetic).count();
    let commented = t.starts_with("--") || t.starts_with("/*");
    if !(commented || t[..first].eq_ignore_ascii_case("create")) || !text.to_ascii_lowercase().contains("index") {
        return None;
    }
    let parsed = crate::analyze::budget::parse(text, 0).ok()?;
    let Some(N::IndexStmt(i)) = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref() else { return None };
    let mut out = text.to_string();
    if let Some(at) = i.relation.as_ref().and_then(|r| usize::try_from(r.location).ok()) {
        let len = qualified_name_len(text.as_bytes().get(at..).unwrap_or_default());
        out.replace_range(at..at + len, &" ".repeat(len));
    }
    Some((out, i.concurrent))
}

/// The length of the (possibly qualified, possibly quoted) name at the head of `t`: words and
/// `"…"` identifiers joined by dots, with spaces around the dots.
fn qualified_name_len(t: &[u8]) -> usize {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut i = 0;
    loop {
        if t.get(i) == Some(&b'"') {
            i += 1;
            while i < t.len() {
                if t[i] == b'"' && t.get(i + 1) != Some(&b'"') {
                    break;
                }
                i += if t[i] == b'"' { 2 } else { 1 };
            }
            i = (i + 1).min(t.len());
        } else {
            while t.get(i).is_some_and(|b| ident(*b)) {
                i += 1;
            }
        }
        let mut j = i;
        while t.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if t.get(j) != Some(&b'.') {
            return i;
        }
        i = j + 1;
        while t.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
    }
}

/// Whether an option's argument turns it off (`VACUUM (FULL false)`).
fn is_false(arg: Option<&pg_query::protobuf::Node>) -> bool {
    use pg_query::NodeEnum as N;
    match arg.and_then(|a| a.node.as_ref()) {
        Some(N::String(s)) => matches!(s.sval.to_ascii_lowercase().as_str(), "false" | "off" | "0" | "no"),
        Some(N::Integer(i)) => i.ival == 0,
        Some(N::Boolean(b)) => !b.boolval,
        Some(N::AConst(c)) => {
            matches!(
                c.val.as_ref(),
                Some(pg_query::protobuf::a_const::Val::Boolval(b)) if !b.boolval
            ) || matches!(c.val.as_ref(), Some(pg_query::protobuf::a_const::Val::Ival(i)) if i.ival == 0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_that_evaluate_expressions_are_found() {
        let m = |every_table, outside_blocks| {
            Some(Maintenance { evaluates: true, every_table, outside_blocks, refresh: false })
        };
        let plain =
            |every_table| Some(Maintenance { evaluates: false, every_table, outside_blocks: true, refresh: false });
        assert_eq!(of("ANALYZE t"), m(false, false));
        assert_eq!(of("analyse verbose t"), m(false, false));
        assert_eq!(of("ANALYZE"), m(true, false));
        assert_eq!(of("VACUUM (ANALYZE) t"), m(false, true));
        assert_eq!(of("VACUUM FULL t"), m(false, true));
        assert_eq!(of("vacuum full analyze"), m(true, true));
        assert_eq!(of("VACUUM t"), plain(false));
        assert_eq!(of("VACUUM"), plain(true));
        assert_eq!(of("VACUUM (FULL false) t"), plain(false));
        assert_eq!(of("REINDEX TABLE t"), m(false, false));
        assert_eq!(of("REINDEX INDEX t_i"), m(false, false));
        assert_eq!(of("REINDEX (CONCURRENTLY) TABLE t"), m(false, true));
        assert_eq!(of("REINDEX TABLE CONCURRENTLY t"), m(false, true));
        assert_eq!(of("REINDEX SCHEMA pg_temp_3"), m(true, true));
        assert_eq!(of("CLUSTER t USING t_i"), m(false, false));
        assert_eq!(of("CLUSTER"), m(true, true));
        let refresh = Some(Maintenance { evaluates: true, every_table: false, outside_blocks: false, refresh: true });
        assert_eq!(of("REFRESH MATERIALIZED VIEW mv"), refresh);
        assert_eq!(of("SELECT 'analyze'"), None);
        assert_eq!(of("SELECT 1"), None);
        assert!(word_in(b"  AnAlYzE t") && word_in(b"/* c */ vacuum full") && !word_in(b"SELECT analyze FROM t"));
    }

    #[test]
    fn an_index_build_is_judged_without_its_tables_name() {
        let b = |t: &str| {
            index_build(t).map(|(text, concurrent)| (text.split_whitespace().collect::<Vec<_>>().join(" "), concurrent))
        };
        assert_eq!(
            b("CREATE INDEX CONCURRENTLY u_e ON users (email)"),
            Some(("CREATE INDEX CONCURRENTLY u_e ON (email)".into(), true))
        );
        assert_eq!(
            b("create index on public . \"Users\"\"x\" using btree (lower(email)) where users_flag"),
            Some(("create index on using btree (lower(email)) where users_flag".into(), false))
        );
        assert_eq!(
            b("CREATE UNIQUE INDEX i ON ONLY s.t(a)"),
            Some(("CREATE UNIQUE INDEX i ON ONLY (a)".into(), false))
        );
        assert_eq!(b("CREATE TABLE index_t (a int)"), None);
        assert_eq!(b("SELECT 1"), None);
    }
}
