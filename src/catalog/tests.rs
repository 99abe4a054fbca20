//! Tests of the catalog's answers: expiry, forgetting, assumed answers, and that every
//! catalog question is immune to the session's `search_path`.

use super::*;

/// The operators, functions and types of `sql` that the session's `search_path` could
/// resolve (not qualified by `pg_catalog`).
pub(crate) fn unqualified(sql: &str) -> Vec<String> {
    use pg_query::NodeRef as N;
    let names = |ns: &[pg_query::protobuf::Node]| -> Vec<String> {
        ns.iter()
            .filter_map(|n| match n.node.as_ref() {
                Some(pg_query::NodeEnum::String(s)) => Some(s.sval.clone()),
                _ => None,
            })
            .collect()
    };
    let qualified = |n: &[String]| n.len() == 2 && n[0] == "pg_catalog";
    let tree = pg_query::parse(sql, 0).unwrap_or_else(|e| panic!("{e}: {sql}"));
    let mut out = Vec::new();
    for (node, ..) in tree.protobuf.nodes() {
        let found = match node {
            N::AExpr(e) => names(&e.name),
            N::FuncCall(f) => names(&f.funcname),
            N::TypeCast(t) => t.type_name.as_ref().map(|t| names(&t.names)).unwrap_or_default(),
            // `x IN (SELECT …)`, `x = ANY (SELECT …)`: the operator is looked up by name.
            // (`IN (SELECT …)` leaves the name out: the server takes `=`.)
            N::SubLink(l) if !l.oper_name.is_empty() => names(&l.oper_name),
            N::SubLink(l) if l.sub_link_type == pg_query::protobuf::SubLinkType::AnySublink as i32 => {
                vec!["IN (SELECT …)".to_string()]
            }
            // A simple CASE compares its operand with each WHEN by `=`, looked up by name
            // (sixty-ninth pass F1: a role's `=` on the path ran inside these questions).
            N::CaseExpr(c) if c.arg.is_some() => vec!["CASE x WHEN".to_string()],
            // `JOIN … USING`, `NATURAL JOIN`: `=` looked up by name.
            N::JoinExpr(j) if !j.using_clause.is_empty() || j.is_natural => vec!["JOIN USING".to_string()],
            N::SortBy(b) if !b.use_op.is_empty() => names(&b.use_op),
            _ => continue,
        };
        if !qualified(&found) {
            out.push(found.join("."));
        }
    }
    out
}

/// Red-team L3: every catalog question blastwall asks on a client's session is immune to
/// that session's search_path (`attnum > 0` and `::oid` were not).
#[test]
fn every_catalog_question_is_qualified() {
    for sql in [
        query(&["users".into()], &crate::demo::incident_policy().unwrap()),
        columns_query("public", "users", Some(1)),
        owners_query("public.users_id_seq"),
        minted_query("public", "users", Some(1)),
        crate::names::relations_query(&["public.users".into(), "users".into(), "a\u{1}b\u{2}users".into()], &[16384]),
        crate::names::constraint_query("public.users", "users_email_key"),
        crate::names::identities_query(&crate::demo::incident_policy().unwrap(), &|_, _| Some(1)),
        hidden_callers_query(&crate::demo::incident_policy().unwrap()),
        taint_query(&crate::demo::incident_policy().unwrap()),
        taint_first_query(&crate::demo::incident_policy().unwrap()),
        path_query(&crate::demo::incident_policy().unwrap()),
    ] {
        assert_eq!(unqualified(&sql), Vec::<String>::new(), "{sql}");
    }
    // The forms that look an operator up by name without writing it.
    for sql in [
        "SELECT CASE c.relkind WHEN 'r' THEN 1 END FROM pg_catalog.pg_class c",
        "SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT i.indrelid FROM pg_catalog.pg_index i)",
        "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class d USING (oid)",
        "SELECT 1 FROM pg_catalog.pg_class c NATURAL JOIN pg_catalog.pg_class d",
        "SELECT c.oid FROM pg_catalog.pg_class c ORDER BY c.oid USING <",
        "SELECT 1 WHERE 1 BETWEEN 0 AND 2",
        "SELECT 1 WHERE 1 IN (1, 2)",
        "SELECT NULLIF(1, 2)",
    ] {
        assert_ne!(unqualified(sql), Vec::<String>::new(), "{sql}");
    }
}

#[test]
fn answers_expire_and_are_forgotten() {
    let c = Catalog::default();
    assert_eq!(c.is_indirect("db", "v"), None);
    learn_answer(&c, "db", &["v".into(), "t".into()], &[vec![Some("v".into()), Some("true".into())]]);
    assert_eq!(c.is_indirect("db", "v"), Some(true));
    assert_eq!(c.is_indirect("db", "t"), Some(false));
    // A trigger on DELETE only: a write may reach other rows, an INSERT may not.
    learn_answer(&c, "db", &["d".into()], &[vec![Some("d".into()), Some("true".into()), Some("false".into())]]);
    assert_eq!((c.is_indirect("db", "d"), c.is_indirect_insert("db", "d")), (Some(true), Some(false)));
    c.forget("db");
    assert_eq!(c.is_indirect("db", "v"), None);
    assert!(query(&["o'brien".into()], &crate::demo::incident_policy().unwrap()).contains("E'o\\'brien'"));
}

/// When blastwall cannot ask, the last answer stands in (an expired one too, within its
/// limit), else the worst; either only for the judgement that assumed it, never as an answer
/// in the shared cache, where another session would take it for a real one.
#[test]
fn an_assumed_answer_is_the_last_one_or_the_worst_and_stays_with_its_judgement() {
    let c = Catalog::default();
    let policy = crate::policy::Policy::empty();
    let mut a = Assumed::default();
    a.assume_indirect(&c, "db", "new");
    assert_eq!((a.is_indirect(&c, "db", "new"), a.is_indirect_insert(&c, "db", "new")), (Some(true), Some(true)));
    assert_eq!(a.cascades_reach_guarded(&c, "db", "new", true, &policy), Some(true), "the worst: anything");
    assert!(a.row_moves(&c, "db", "new").is_some_and(|m| m.other));
    assert_eq!(c.is_indirect("db", "new"), None, "nothing shared was learned");
    assert_eq!(c.cascades_reach_guarded("db", "new", true, &policy), None);
    learn_answer(&c, "db", &["t".into()], &[]);
    let long_ago = Instant::now().checked_sub(TTL + Duration::from_secs(5)).unwrap();
    c.indirect.insert(("db".into(), "t".into()), (false, false, long_ago));
    assert_eq!(c.is_indirect_insert("db", "t"), None, "expired");
    a.assume_indirect(&c, "db", "t");
    assert_eq!(a.is_indirect_insert(&c, "db", "t"), Some(false), "the last answer");
    assert_eq!(c.is_indirect_insert("db", "t"), None, "still expired for everyone else");
    let too_old = Instant::now().checked_sub(LAST_ANSWER_USABLE + Duration::from_secs(1)).unwrap();
    c.indirect.insert(("db".into(), "t".into()), (false, false, too_old));
    a.assume_indirect(&c, "db", "t");
    assert_eq!(a.is_indirect_insert(&c, "db", "t"), Some(true), "too old: the worst");
    // Kept while the judgement's other rounds decide its names; gone at its verdict.
    a.decided();
    assert_eq!(a.is_indirect(&c, "db", "new"), Some(true));
    a.judged();
    assert_eq!(a.is_indirect(&c, "db", "new"), None);
}

/// An answer assumed for one judgement (the protected columns' names: by the policy's and by
/// the last known) is never stored where another judgement takes it for a real one (sixth
/// adversarial pass F7).
#[test]
fn assumed_columns_stay_with_their_judgement() {
    let c = Catalog::default();
    let protected: std::collections::BTreeSet<String> = ["id".to_string()].into();
    let rows = |n: &str| vec![vec![Some(n.to_string()), Some("1".to_string())]];
    c.learn_columns("db", "public", "users", &protected, &rows("id"));
    c.learn_columns("db", "public", "users", &protected, &rows("uid"));
    c.forget("db");
    assert_eq!(c.columns_of("db", "public", "users"), None);
    let mut a = Assumed::default();
    a.assume_columns(&c, "db", "public", "users", &protected);
    let names = a.columns_of(&c, "db", "public", "users").unwrap();
    assert_eq!(names, vec![("id".to_string(), "id".to_string()), ("id".to_string(), "uid".to_string())]);
    assert_eq!(c.columns_of("db", "public", "users"), None, "nothing shared was learned");
    assert_eq!(Assumed::default().columns_of(&c, "db", "public", "users"), None);
}

/// A policy table dropped and created again: an identities answer that says the remembered OID
/// is no relation's any more replaces it with the one the name has now (and forgets the old
/// table's attnums), in memory and in the identities file, read back over the older lines.
#[test]
fn a_dropped_policy_tables_successor_replaces_its_oid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ids.jsonl");
    let policy = crate::demo::incident_policy().unwrap();
    let mut c = Catalog::default();
    c.persist_to(file.clone());
    c.learn_oid("db", "public", "users", 100);
    let protected: std::collections::BTreeSet<String> = ["id".to_string()].into();
    let col = |n: &str, a: &str| vec![Some(n.to_string()), Some(a.to_string())];
    c.learn_columns("db", "public", "users", &protected, &[col("id", "1")]);
    let row = |k: &str, oid: &str| vec![Some(k.into()), Some("0".into()), Some(oid.into()), Some("users".into())];
    // The remembered table still exists: another table called so now does not replace it.
    c.learn_identities("db", &policy, &[row("t", "200"), row("t", "100")], (0, 0));
    assert_eq!(c.oid_of("db", "public", "users"), Some(100));
    c.learn_identities("db", &policy, &[row("t", "200"), row("g", "100")], (0, 0));
    assert_eq!(c.oid_of("db", "public", "users"), Some(200));
    assert_eq!(c.columns_of("db", "public", "users"), None);
    c.learn_columns("db", "public", "users", &protected, &[col("x", "1"), col("id", "2")]);
    let mut again = Catalog::default();
    again.persist_to(file);
    assert_eq!(again.oid_of("db", "public", "users"), Some(200));
    again.learn_columns("db", "public", "users", &protected, &[col("uid", "2"), col("id", "3")]);
    assert_eq!(again.columns_of("db", "public", "users"), Some(vec![("id".into(), "uid".into())]));
}

/// A database dropped and created again (another OID under its name, `incarnation`): the
/// policy tables' OIDs and every answer of the old one go, in memory at once and in the
/// identities file when read back; the same OID seen again keeps them.
#[test]
fn a_database_made_again_forgets_what_was_known_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ids.jsonl");
    let mut c = Catalog::default();
    c.persist_to(file.clone());
    assert!(!c.learn_incarnation("db", 5000));
    c.learn_oid("db", "public", "users", 100);
    c.learn_oid("other", "public", "users", 300);
    c.learn("db", "users", false);
    c.learn_state_ready("db", "blastwall", true);
    assert!(!c.learn_incarnation("db", 5000), "the same database");
    assert_eq!(c.oid_of("db", "public", "users"), Some(100));
    // Read back by a restart before the database was made again: the OID stands.
    let mut restarted = Catalog::default();
    restarted.persist_to(file.clone());
    assert_eq!(restarted.oid_of("db", "public", "users"), Some(100));
    let generation = c.identity_generation();
    assert!(c.learn_incarnation("db", 6000), "another database under the name");
    assert_eq!(c.oid_of("db", "public", "users"), None);
    assert_eq!(c.is_indirect("db", "users"), None);
    assert!(!c.state_ready("db", "blastwall"));
    assert!(c.identity_generation() > generation);
    assert_eq!(c.oid_of("other", "public", "users"), Some(300), "other databases keep theirs");
    c.learn_oid("db", "public", "users", 200);
    let mut again = Catalog::default();
    again.persist_to(file);
    assert_eq!(again.oid_of("db", "public", "users"), Some(200), "the new database's, read back");
    assert_eq!(again.incarnation("db"), Some(6000));
    assert_eq!(again.oid_of("other", "public", "users"), Some(300));
}
