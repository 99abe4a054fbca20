use super::*;

fn sql(items: &[Item]) -> Vec<(usize, String)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Sql(c) => Some((c.line, c.sent.sql.trim().to_string())),
            _ => None,
        })
        .collect()
}

fn run(script: &str) -> Vec<Item> {
    items(script, &mut Vars::new())
}

#[test]
fn copy_data_is_not_sql() {
    let s = "\\set x 1\nCOPY users FROM STDIN;\n1\tDELETE FROM users;\n\\.\nDELETE FROM users\n  WHERE id BETWEEN 1 AND 2;\n";
    let c = sql(&run(s));
    assert_eq!(c.len(), 2);
    assert!(c[0].1.starts_with("COPY"));
    assert_eq!(c[1].0, 5);
    assert!(c[1].1.contains("BETWEEN"));
}

#[test]
fn statement_after_copy_is_seen() {
    // Text after COPY … FROM STDIN; on the same line is still SQL.
    let c = sql(&run("COPY t FROM STDIN; DELETE FROM users;\n\\.\nSELECT 2;\n"));
    assert_eq!(
        c.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["COPY t FROM STDIN;", "DELETE FROM users;", "SELECT 2;"]
    );
}

#[test]
fn meta_copy_from_stdin_skips_data() {
    let c = sql(&run("\\copy users from stdin\nDELETE FROM users;\n\\.\nSELECT 1;\n"));
    assert_eq!(c, [(4, "SELECT 1;".to_string())]);
}

#[test]
fn meta_copy_of_a_query_is_judged() {
    let c = sql(&run("\\copy (DELETE FROM users RETURNING id) to 'out.csv'\n"));
    assert_eq!(c, [(1, "DELETE FROM users RETURNING id".to_string())]);
}

#[test]
fn each_statement_is_its_own_query_string() {
    let c = sql(&run("SELECT ';' ; SELECT $$a;b$$; /* ; */ SELECT \"x;\" FROM t;\nDO $f$ BEGIN PERFORM 1; END $f$;\n"));
    assert_eq!(c.len(), 4, "{c:?}");
    assert_eq!(c[3], (2, "DO $f$ BEGIN PERFORM 1; END $f$;".to_string()));
    // Parentheses keep a `;` inside (CREATE RULE … DO (…; …)).
    assert_eq!(run("CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM a; DELETE FROM b);\n").len(), 1);
}

#[test]
fn backslash_semicolon_joins_statements() {
    let c = sql(&run("SELECT 1 \\; DELETE FROM users;\nSELECT 2;\n"));
    assert_eq!(c, [(1, "SELECT 1 ; DELETE FROM users;".to_string()), (2, "SELECT 2;".to_string())]);
}

#[test]
fn unknown_variable_does_not_merge_statements() {
    let items =
        run("SELECT * FROM users WHERE id = :uid;\nDELETE FROM users WHERE id BETWEEN 1 AND 9;\nDELETE FROM users;\n");
    let Item::Sql(first) = &items[0] else { panic!() };
    assert_eq!(first.sent.sql, "SELECT * FROM users WHERE id = :uid;");
    assert_eq!(first.judged.sql, "SELECT * FROM users WHERE id = $1;");
    assert_eq!(first.unset, [":uid"]);
    assert_eq!(sql(&items).len(), 3);
}

#[test]
fn variables_are_substituted_as_psql_does() {
    let mut vars = Vars::new();
    vars.insert("t".into(), "users".into());
    vars.insert("v".into(), "O'Brien".into());
    vars.insert("two".into(), "1; DELETE FROM users".into());
    let items =
        items("DELETE FROM :\"t\" WHERE name = :'v' AND x::int = 1 AND :{?v} AND :{?w};\nSELECT :two;\n", &mut vars);
    let c = sql(&items);
    assert_eq!(c[0].1, "DELETE FROM \"users\" WHERE name = 'O''Brien' AND x::int = 1 AND TRUE AND FALSE;");
    // A plain variable is read as SQL: its `;` ends a statement.
    assert_eq!(c[1].1, "SELECT 1;");
    assert_eq!(c[2].1, "DELETE FROM users;");
    // Not inside literals, identifiers, comments or dollar quotes.
    let c = sql(&run("SELECT ':t', \":t\", $$ :t $$ /* :t */;\n"));
    assert_eq!(c[0].1, "SELECT ':t', \":t\", $$ :t $$ /* :t */;");
}

#[test]
fn set_and_unset_apply_in_order() {
    let mut vars = Vars::new();
    let items = items("\\set id 7\nDELETE FROM users WHERE id = :id;\n\\unset id\nDELETE FROM users WHERE id = :id;\n\\set t `echo users`\nSELECT :t;\n", &mut vars);
    let Item::Sql(a) = &items[0] else { panic!() };
    assert_eq!(a.sent.sql, "DELETE FROM users WHERE id = 7;");
    let Item::Sql(b) = &items[1] else { panic!() };
    assert_eq!(b.unset, [":id"]);
    let Item::Sql(c) = &items[2] else { panic!() };
    assert_eq!(c.unset, [":t"], "a backtick value is not known offline");
}

#[test]
fn recursive_variable_is_not_expanded_forever() {
    let mut vars = Vars::new();
    vars.insert("a".into(), "1 + :a".into());
    assert_eq!(sql(&items("SELECT :a;", &mut vars))[0].1, "SELECT 1 + :a;");
}

#[test]
fn includes_and_meta_commands() {
    let items = run(
        "SELECT 1;\n\\i a.sql\n\\ir 'sub dir/b.sql'\n\\include_relative c.sql\n\\c db app\nSELECT 2 \\gexec\n\\i\n",
    );
    assert_eq!(items[1], Item::Include { path: "a.sql".into(), relative: false, line: 2 });
    assert_eq!(items[2], Item::Include { path: "sub dir/b.sql".into(), relative: true, line: 3 });
    assert_eq!(items[3], Item::Include { path: "c.sql".into(), relative: true, line: 4 });
    assert_eq!(items[4], Item::Connect { user: Some("app".into()), line: 5 });
    assert!(matches!(&items[5], Item::Sql(c) if c.sent.sql.trim() == "SELECT 2"));
    assert_eq!(items[6], Item::Gexec { line: 6 });
    assert!(matches!(&items[7], Item::Error { line: 7, .. }));
}

#[test]
fn meta_command_inside_a_statement_does_not_end_it() {
    let c = sql(&run("DELETE FROM users\n\\set x 1\nWHERE id = :x;\n"));
    assert_eq!(c, [(1, "DELETE FROM users\nWHERE id = 1;".to_string())]);
}

#[test]
fn lines_of_statements_in_one_query_string() {
    let items = run("-- comment\n\nSELECT 1 \\;\n  DELETE FROM users;\n");
    let Item::Sql(c) = &items[0] else { panic!() };
    assert_eq!(c.line, 3);
    let at = c.sent.sql.find("DELETE").unwrap();
    assert_eq!(c.sent.line_at(at - 3), 4);
}

#[test]
fn non_ascii_text_survives() {
    let c = sql(&run("SELECT 'héllo' AS \"naïve\";\n"));
    assert_eq!(c[0].1, "SELECT 'héllo' AS \"naïve\";");
}
