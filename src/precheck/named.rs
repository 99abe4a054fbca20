//! The names a counted write was judged by, read again around its run: the relation each
//! leads to on the client's session (`to_regclass`, under the session's own path) and that
//! relation's catalog row version (`pg_class.xmin`), read before the statement and after it,
//! and compared with what the judgement was told.
//!
//! A name is resolved again by the server when the statement runs, and again after a lock
//! wait (PostgreSQL looks a name up once more when invalidations arrived while it waited for
//! the relation's lock). DDL another session commits in that time — a function's body that
//! renames the relation a name shadowed a policy table with, a view put in a table's place —
//! leads the write to another relation than the one whose rules were applied (fifty-second
//! pass H1: `DELETE FROM users WHERE id BETWEEN …` judged as one of `archive.users`, waiting
//! on a lock of another session's, which renamed `archive.users` away: the rows came out of
//! `public.users`, and a trigger on `archive.users` made the count explain them as its own).
//! So: a name that led elsewhere before the run than when judged, or elsewhere after it, or to
//! a relation whose catalog row changed meanwhile (renamed away and back), or any schema of
//! the database changed meanwhile (a path entry that does not exist may have existed in
//! between), refuses the statement, whatever code it runs (rule `identity`).
//!
//! Owns: that reading and the comparison. Does not own: which names a judgement used
//! (`names::judged_key`), the readings' I/O (`precheck`).

use super::identity::Identity;

/// The first part of the object of a name's row in an identity reading (`as_reading`): never
/// a policy object's name (those are `schema.table`).
const PREFIX: &str = "\u{3}";

/// The object of the row of the session's path (its schemas, each with its row version).
const PATH: &str = "\u{4}path";

/// The rows of the names `names` ((key as `to_regclass` reads it, OID judged)) in the
/// identity snapshot's shape (object, OID, item, value), or `None` when there are none.
pub fn sql(names: &[(String, u32)]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let lit = super::literal;
    let values: Vec<String> = names
        .iter()
        .map(|(k, _)| format!("({}::pg_catalog.text, {}::pg_catalog.text)", lit(&format!("{PREFIX}{k}")), lit(k)))
        .collect();
    // Per name: the relation, its row version and its schema's; and once, the schemas of the
    // session's path with theirs, and the role memberships the session's role holds, at any
    // depth, with theirs (a privilege on a schema, or a membership that gives one, taken away
    // hides it from the lookup: fifty-fourth and fifty-fifth passes); and the row versions of
    // every schema of the database but the temporary ones, which also show one the path lists
    // that did not exist at either reading but existed between them (fifty-sixth pass H1: a
    // schema renamed to the path's first, absent entry while the write waited, holding a view
    // over `public.users`, and renamed back before it ended; a rename takes no lock).
    Some(format!(
        "SELECT x.k, coalesce(pg_catalog.to_regclass(x.q)::pg_catalog.oid, 0::pg_catalog.oid)::pg_catalog.text, \
         'resolves'::pg_catalog.text, coalesce((SELECT pg_catalog.concat(c.xmin, ' ', n.xmin) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(x.q)::pg_catalog.oid), '') \
         FROM (VALUES {}) x(k, q) \
         UNION ALL SELECT {path}::pg_catalog.text, '0'::pg_catalog.text, 'resolves'::pg_catalog.text, \
         pg_catalog.concat(coalesce((SELECT pg_catalog.string_agg(pg_catalog.concat(n.oid, ':', n.xmin), ',' ORDER BY s.o) \
         FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY s(nsp, o) \
         JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) s.nsp), ''), ' ', \
         (WITH RECURSIVE m(r) AS (SELECT CURRENT_USER::pg_catalog.regrole::pg_catalog.oid UNION \
           SELECT a.roleid FROM pg_catalog.pg_auth_members a JOIN m ON a.member OPERATOR(pg_catalog.=) m.r) \
          SELECT pg_catalog.string_agg(pg_catalog.concat(a.roleid, ':', a.xmin), ',' ORDER BY a.roleid, a.member) \
          FROM pg_catalog.pg_auth_members a JOIN m ON a.member OPERATOR(pg_catalog.=) m.r), ' ', \
         (SELECT pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat(n.oid, ':', n.xmin), ',' ORDER BY n.oid)) \
          FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_'))",
        values.join(", "),
        path = lit(PATH),
    ))
}

/// Where each name led in a snapshot: key → (OID, row version).
fn led(snapshot: &Identity) -> Vec<(&str, &str, &str)> {
    snapshot
        .iter()
        .filter(|((k, _, item), _)| item == "resolves" && k.starts_with(PREFIX))
        .map(|((k, oid, _), v)| (&k[PREFIX.len()..], oid.as_str(), v.as_str()))
        .collect()
}

/// What changed for the names: each `(key, why)`.
pub fn redirected(names: &[(String, u32)], before: &Identity, after: &Identity) -> Vec<(String, String)> {
    let (was, now) = (led(before), led(after));
    let mut out = Vec::new();
    for (key, judged) in names {
        let b = was.iter().find(|(k, _, _)| k == key);
        let a = now.iter().find(|(k, _, _)| k == key);
        let (Some((_, b_oid, b_row)), Some((_, a_oid, a_row))) = (b, a) else {
            // Not read (a reading without it): nothing to compare.
            continue;
        };
        let shown =
            |oid: &str| if oid == "0" { "no relation".to_string() } else { format!("the relation of OID {oid}") };
        if *b_oid != judged.to_string() {
            out.push((
                key.clone(),
                format!(
                    "it was judged as a write to the relation of OID {judged}, but led to {} when it ran",
                    shown(b_oid)
                ),
            ));
        } else if a_oid != b_oid {
            out.push((
                key.clone(),
                format!(
                    "it led to {} when it ran and to {} after (DDL committed while it ran)",
                    shown(b_oid),
                    shown(a_oid)
                ),
            ));
        } else if a_row != b_row {
            out.push((
                key.clone(),
                format!(
                    "the relation it leads to (OID {b_oid}) or its schema was changed by DDL committed while it ran"
                ),
            ));
        }
    }
    // The schemas the lookup went through (fifty-third pass H1: a schema's privilege taken
    // away while the write waited for a lock, and given back before the reading after it).
    let path = |s: &Identity| s.get(&(PATH.to_string(), "0".to_string(), "resolves".to_string())).cloned();
    if let (Some(key), Some(b), Some(a)) = (names.first(), path(before), path(after)) {
        if a != b {
            let why = "the schemas of the session's path, a privilege on one of them, the role memberships of the session's role, or a schema of the database (made, renamed, dropped: one the path names may have existed meanwhile) changed while it ran (DDL or GRANT/REVOKE committed meanwhile)";
            out.push((key.0.clone(), why.to_string()));
        }
    }
    out
}

const HINT: &str = "The write reached another relation than the one it was judged for: DDL committed elsewhere while it ran changed where its name leads. It was rolled back; send it again once that DDL is done, or write the relation by its qualified name.";

/// The findings of rule `identity` for names that led elsewhere: in the session's mode.
pub fn findings(
    names: &[(String, u32)],
    before: &Identity,
    after: &Identity,
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    statement: &str,
    verb: &str,
) -> Vec<crate::policy::Finding> {
    redirected(names, before, after)
        .into_iter()
        .map(|(key, why)| crate::policy::Finding {
            rule: "identity",
            mode: crate::policy::mode_for(who, policy, None),
            what: format!("{verb} on {key}"),
            why: format!("the name {key}: {why}"),
            hint: HINT,
            source: policy.source_names(),
            statement: statement.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(&str, &str, &str)]) -> Identity {
        items
            .iter()
            .map(|(k, o, v)| ((format!("{PREFIX}{k}"), o.to_string(), "resolves".to_string()), v.to_string()))
            .collect()
    }

    #[test]
    fn a_path_whose_schemas_changed_while_it_ran_is_found() {
        let names = vec![("\"users\"".to_string(), 700)];
        let at = |path: &str| {
            let mut s = snap(&[("\"users\"", "700", "9 4")]);
            s.insert((PATH.to_string(), "0".to_string(), "resolves".to_string()), path.to_string());
            s
        };
        assert!(redirected(&names, &at("2200:5,99:7"), &at("2200:5,99:7")).is_empty());
        assert_eq!(redirected(&names, &at("2200:5,99:7"), &at("2200:5,99:12")).len(), 1);
        assert_eq!(redirected(&names, &at("2200:5,99:7"), &at("2200:5")).len(), 1);
    }

    #[test]
    fn a_name_that_led_elsewhere_before_during_or_after_the_run_is_found() {
        let names = vec![("\"users\"".to_string(), 700)];
        let at = |o: &str, v: &str| snap(&[("\"users\"", o, v)]);
        assert!(redirected(&names, &at("700", "9"), &at("700", "9")).is_empty());
        // Elsewhere before the run than when judged.
        assert_eq!(redirected(&names, &at("500", "9"), &at("500", "9")).len(), 1);
        // Elsewhere after it.
        assert_eq!(redirected(&names, &at("700", "9"), &at("500", "3")).len(), 1);
        assert_eq!(redirected(&names, &at("700", "9"), &at("0", "")).len(), 1);
        // Renamed away and back: the same relation, another row version.
        assert_eq!(redirected(&names, &at("700", "9"), &at("700", "12")).len(), 1);
        // Not read: nothing to compare.
        assert!(redirected(&names, &Identity::new(), &Identity::new()).is_empty());
        // Another snapshot's objects are not names.
        let mut b = at("700", "9");
        b.insert(("public.users".into(), "700".into(), "name".into()), "public.users".into());
        assert!(redirected(&names, &b, &at("700", "9")).is_empty());
    }

    #[test]
    fn the_reading_reads_each_name_under_the_sessions_path() {
        let sql = sql(&[("\"users\"".to_string(), 700), ("\"archive\".\"users\"".to_string(), 701)]).unwrap();
        assert!(sql.contains("pg_catalog.to_regclass(x.q)"), "{sql}");
        assert!(sql.contains("E'\"archive\".\"users\"'") || sql.contains("'\"archive\".\"users\"'"), "{sql}");
        assert!(super::sql(&[]).is_none());
    }
}
