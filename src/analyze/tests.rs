//! Analyzer tests: facts for a few shapes, and properties over generated SQL — the analyzer
//! never panics, and text that may write but cannot be analyzed is refused in enforce mode.

use super::*;
use proptest::prelude::*;

fn one(sql: &str) -> Statement {
    let mut v = analyze(sql, ParseOptions::default());
    assert_eq!(v.len(), 1, "{sql}");
    v.remove(0)
}

#[test]
fn finds_nested_writes() {
    let st = one("WITH a AS (DELETE FROM t WHERE x = 1 RETURNING *) SELECT * FROM a");
    assert_eq!(st.writes.len(), 1);
    assert_eq!(st.writes[0].op, Op::Delete);
    let st = one("SELECT * FROM (WITH d AS (UPDATE users SET a = 1 RETURNING id) SELECT * FROM d) s");
    assert!(matches!(st.writes[0].op, Op::Update { .. }));
}

#[test]
fn statement_offsets_point_at_each_statement() {
    let sql = "SELECT 1;\n  DELETE FROM t WHERE a = 1;";
    let v = analyze(sql, ParseOptions::default());
    assert_eq!(v.len(), 2);
    assert_eq!(&sql[v[1].offset..v[1].offset + 6], "DELETE");
}

#[test]
fn unparseable_only_matters_when_it_may_write() {
    assert!(one("SELEC 1").opaque.is_empty());
    assert_eq!(one("DELETE FROM users WHRE id = 1").opaque.len(), 1);
}

const WORDS: &[&str] = &[
    "DELETE",
    "FROM",
    "users",
    "WHERE",
    "id",
    "BETWEEN",
    "AND",
    "OR",
    "NOT",
    "IN",
    "(",
    ")",
    ",",
    ";",
    "=",
    "<",
    "1",
    "-91111100",
    "'x'",
    "$$",
    "$1",
    "UPDATE",
    "SET",
    "WITH",
    "AS",
    "SELECT",
    "*",
    "RETURNING",
    "INSERT",
    "INTO",
    "VALUES",
    "ON",
    "CONFLICT",
    "DO",
    "NOTHING",
    "MERGE",
    "USING",
    "TRUNCATE",
    "DROP",
    "TABLE",
    "--",
    "/*",
    "*/",
    "\\",
    "'",
    "\"",
    "E'",
    "setval",
    "EXPLAIN",
    "ANALYZE",
    "PREPARE",
    "EXECUTE",
    "COPY",
    "STDIN",
    "::",
    "text",
];

fn sqlish() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(WORDS), 0..24).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn analyzer_never_panics(sql in sqlish(), scs in any::<bool>()) {
        let _ = analyze(&sql, ParseOptions { standard_conforming_strings: scs });
    }

    #[test]
    fn analyzer_never_panics_on_any_text(sql in "\\PC{0,200}") {
        let _ = analyze(&sql, ParseOptions::default());
    }

    /// Whatever the analyzer cannot parse, if it contains a word that writes, is refused.
    #[test]
    fn unanalyzable_writes_are_refused(sql in sqlish()) {
        let guard = crate::guard::Guard::new(crate::demo::incident_policy().unwrap(), None);
        let parses = pg_query::parse(&sql, 0).is_ok();
        let mut info = crate::guard::SessionInfo::new("app", "");
        let verdict = guard.judge_sql(sql.as_bytes(), &mut info);
        let writes_word = sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| ["DELETE", "UPDATE", "INSERT", "MERGE", "TRUNCATE", "DROP", "DO", "EXECUTE", "COPY", "setval"].contains(&w));
        // Refused: text that does not parse, whose tokens (or whose failing scan) may hide a
        // write, and that contains a word that writes at all.
        if !parses && writes_word && may_write(&sql, ParseOptions::default()) {
            prop_assert!(matches!(verdict, crate::guard::Verdict::Refuse(_)), "{sql}");
        }
    }
}

/// Struct bodies in pg_query's JSON form of a tree: every object that is neither a `{"node": …}`
/// wrapper nor a one-key `{"Kind": …}` tag.
fn json_bodies(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => a.iter().map(json_bodies).sum(),
        serde_json::Value::Object(m) => {
            let tag = m.len() == 1 && m.keys().all(|k| k == "node" || k.starts_with(|c: char| c.is_ascii_uppercase()));
            usize::from(!tag) + m.values().map(json_bodies).sum::<usize>()
        }
        _ => 0,
    }
}

fn visited(v: pg_query::NodeRef<'_>) -> usize {
    // A constant's value is a leaf the walk need not enter (it holds no node); the JSON
    // counts its body.
    let own = match v {
        pg_query::NodeRef::AConst(c) => 1 + usize::from(c.val.is_some()),
        _ => 1,
    };
    let mut n = own;
    children::each_child(v, &mut |c| n += visited(c));
    n
}

/// The generated walk reaches every node of the tree: as many as pg_query's own serialization
/// holds, for statements that use most of the grammar's corners.
#[test]
fn the_walk_reaches_every_node() {
    let statements = [
        "WITH a AS (DELETE FROM t WHERE x = 1 RETURNING *), b AS MATERIALIZED (SELECT * FROM a) SELECT * FROM b",
        "MERGE INTO users u USING src s ON u.id = s.id WHEN MATCHED AND s.x > 1 THEN DELETE WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id) RETURNING merge_action(), u.*",
        "INSERT INTO users (id, plan) SELECT id, 'x' FROM old ON CONFLICT ((lower(email))) WHERE id > 0 DO UPDATE SET plan = EXCLUDED.plan WHERE users.id <> 5",
        "EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET a = (SELECT max(b) FROM c WHERE c.id = users.id) WHERE id IN (1, 2, 3)",
        "PREPARE p (int) AS DELETE FROM users WHERE id = $1",
        "COPY (SELECT * FROM users WHERE id = ANY ('{1,2}'::int[])) TO STDOUT WITH (FORMAT csv)",
        "SELECT json_object('a' : 1 RETURNING jsonb), json_arrayagg(x ORDER BY x), json_objectagg(k : v) FROM JSON_TABLE(j, '$.a[*]' COLUMNS (x int PATH '$.x')) jt",
        "SELECT xmlelement(name a, xmlattributes(1 AS b)), CASE WHEN a THEN 1 ELSE 2 END, a[1:2], row(1, 2), array[1] FROM t TABLESAMPLE system (1) GROUP BY ROLLUP (a, b) HAVING count(*) > 1 WINDOW w AS (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
        "CREATE TABLE t (id int PRIMARY KEY DEFAULT nextval('s'), b text CHECK (b <> '') REFERENCES u (x) ON DELETE CASCADE) PARTITION BY RANGE (id)",
        "ALTER TABLE users ALTER email TYPE text USING NULL, DROP COLUMN x, ADD CONSTRAINT c CHECK (id > 0)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM users RETURNING 1 $$",
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD (DELETE FROM users; UPDATE users SET a = 1)",
        "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW WHEN (OLD.a IS DISTINCT FROM NEW.a) EXECUTE FUNCTION f()",
        "GRANT SELECT (a, b) ON t TO r WITH GRANT OPTION",
        "ALTER SYSTEM SET work_mem = '1MB'",
        "SELECT setval(' public . s ', 5), f(a => 1, VARIADIC ARRAY[1]), a COLLATE \"C\", b::int[], c IS NOT TRUE, d BETWEEN SYMMETRIC 1 AND 2 FROM t FOR UPDATE OF t SKIP LOCKED",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SEARCH DEPTH FIRST BY n SET ord CYCLE n SET c USING p SELECT * FROM r",
        "UPDATE t SET (a, b) = (SELECT 1, 2), c = DEFAULT FROM u WHERE CURRENT OF cur",
        "DO $$ BEGIN DELETE FROM users; END $$",
        "CALL p(1, (SELECT 2))",
        "CREATE VIEW v AS SELECT * FROM users WITH CHECK OPTION",
        "DECLARE c CURSOR FOR SELECT * FROM t; FETCH 1 FROM c; CLOSE c",
        "SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY[1])) WITH ORDINALITY AS x(a, b, c), LATERAL (SELECT a) y",
    ];
    for sql in statements {
        let parsed = pg_query::parse(sql, 0).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let json = serde_json::to_value(&parsed.protobuf).unwrap();
        let raw = parsed.protobuf.stmts.len();
        let walked: usize = parsed.protobuf.stmts.iter().filter_map(|s| super::nodes::opt(&s.stmt)).map(visited).sum();
        // The JSON also holds the ParseResult and each RawStmt.
        assert_eq!(json_bodies(&json), walked + 1 + raw, "{sql}");
    }
}

/// Literals of every kind, some of whose values change a verdict.
const LITERALS: &[&str] = &[
    "'web_user_id_seq'",
    "'other_seq'",
    "' public . web_user_id_seq '",
    "'{1,2,3}'",
    "'{1}'",
    "'{}'",
    "'enforce'",
    "'dry-run'",
    "'off'",
    "'on'",
    "''",
    "'x'",
    "0",
    "1",
    "2",
    "-5",
    "1.5",
    "99999999999",
    "B'101'",
    "X'1F'",
    "E'a\\\\b'",
    "$$d$$",
];

/// Statement templates: `{}` is a literal.
const TEMPLATES: &[&str] = &[
    "SELECT setval({}, {})",
    "SELECT pg_catalog.setval({}::regclass, 5)",
    "DELETE FROM users WHERE id = ANY ({}::int[])",
    "DELETE FROM users WHERE id = {}",
    "DELETE FROM users WHERE id IN ({}, {})",
    "DELETE FROM users WHERE {} = {}",
    "DELETE FROM users WHERE {} = {} OR id = {}",
    "SET blastwall.mode = {}",
    "SET search_path = {}",
    "EXPLAIN (ANALYZE {}) DELETE FROM users WHERE id = {}",
    "EXECUTE p({}, {})",
    "COPY users FROM {}",
    "UPDATE users SET plan = {} WHERE id BETWEEN {} AND {}",
    "PREPARE q AS DELETE FROM users WHERE id = ANY ({})",
    "INSERT INTO users (id) VALUES ({}) ON CONFLICT (id) DO UPDATE SET plan = {}",
    "SELECT {}; DELETE FROM users WHERE id = {};",
    "/* c */ DELETE FROM t WHERE a = {} -- {}\n",
    "UPDATE users SET id = {} WHERE id = ANY (ARRAY[{}, {}])",
    "DELETE FROM t WHERE id < {} OR id > {}",
    "DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT {})",
];

fn fill(template: &str, literals: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in template.split("{}").enumerate() {
        if i > 0 {
            out.push_str(literals[(i - 1) % literals.len()]);
        }
        out.push_str(part);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Analysis by shape gives the facts (and so the verdict) a full analysis gives, for a
    /// text whose shape was first seen with other literals.
    #[test]
    fn shape_cache_agrees_with_full_analysis(
        t in proptest::sample::select(TEMPLATES),
        first in proptest::collection::vec(proptest::sample::select(LITERALS), 3),
        second in proptest::collection::vec(proptest::sample::select(LITERALS), 3),
        scs in any::<bool>(),
    ) {
        let shapes = Shapes::default();
        let opts = ParseOptions { standard_conforming_strings: scs };
        let (a, b) = (fill(t, &first), fill(t, &second));
        prop_assert_eq!(shapes.analyze(&a, opts), analyze(&a, opts));
        let cached = shapes.analyze(&b, opts);
        let full = analyze(&b, opts);
        prop_assert_eq!(&cached, &full, "{} after {}", b, a);
        let policy = crate::demo::incident_policy().unwrap();
        let who = crate::guard::SessionInfo::new("app", "");
        prop_assert_eq!(
            format!("{:?}", crate::policy::decide(&cached, who.view(), &policy)),
            format!("{:?}", crate::policy::decide(&full, who.view(), &policy))
        );
    }
}

#[test]
fn only_is_part_of_the_shape() {
    let shapes = Shapes::default();
    let o = ParseOptions::default();
    assert!(shapes.analyze("DELETE FROM ONLY pu WHERE id = 1", o)[0].writes[0].only);
    assert!(!shapes.analyze("DELETE FROM pu WHERE id = 2", o)[0].writes[0].only);
    assert!(shapes.analyze("UPDATE ONLY pu SET a = 1 WHERE id = 3", o)[0].writes[0].only);
    assert!(!shapes.analyze("UPDATE pu SET a = 1 WHERE id = 4", o)[0].writes[0].only);
    // ONLY belongs to each name: `TRUNCATE ONLY a, b` truncates b's children.
    let t = shapes.analyze("TRUNCATE ONLY a, b", o);
    assert_eq!(t[0].writes.iter().map(|w| w.only).collect::<Vec<_>>(), [true, false]);
    assert!(!shapes.analyze("TRUNCATE a, b", o)[0].writes.iter().any(|w| w.only));
}

#[test]
fn shapes_are_shared_only_without_literal_reads() {
    let shapes = Shapes::default();
    let o = ParseOptions::default();
    shapes.analyze("UPDATE t SET a = 1 WHERE id = 5", o);
    shapes.analyze("SELECT setval('a', 1)", o);
    assert_eq!(shapes.analyze("UPDATE t SET a = 2 WHERE id = 6", o)[0].text, "UPDATE t SET a = 2 WHERE id = 6");
    let b = shapes.analyze("SELECT setval('b', 1)", o);
    assert_eq!(b[0].writes[0].target.as_ref().unwrap().name, "b");
}

/// The rule the incident policy refuses a text by, if it refuses it.
fn refused_by(sql: &str) -> Option<String> {
    let guard = crate::guard::Guard::new(crate::demo::incident_policy().unwrap(), None);
    let mut info = crate::guard::SessionInfo::new("app", "");
    match guard.judge_sql(sql.as_bytes(), &mut info) {
        crate::guard::Verdict::Refuse(m) => Some(format!("{m:?}")),
        _ => None,
    }
}

/// Ranges on a protected column in disguise: through the whole row, in functional notation,
/// as an outer reference from a subquery with no FROM of its own.
#[test]
fn disguised_ranges_are_ranges() {
    for sql in [
        "DELETE FROM users WHERE (users).id BETWEEN -91111200 AND -91111100",
        "DELETE FROM users u WHERE (u).id BETWEEN -91111200 AND -91111100",
        "DELETE FROM users WHERE id(users) < 0",
        "DELETE FROM users WHERE EXISTS (SELECT 1 WHERE id BETWEEN -91111200 AND -91111100)",
        "DELETE FROM users u WHERE (to_jsonb(u)->>'id')::bigint BETWEEN -91111200 AND -91111100",
        "DELETE FROM users WHERE row_to_json(users.*)::text LIKE '%-9111%'",
        "UPDATE users SET plan = 'free' WHERE (users).id < 0 OR (users).id > 1000000",
    ] {
        let why = refused_by(sql).unwrap_or_else(|| panic!("allowed: {sql}"));
        assert!(why.contains("protected-range") || why.contains("range predicate"), "{sql}: {why}");
    }
    // A point is still a point, and a subquery over its own table names its own columns.
    for sql in [
        "DELETE FROM users WHERE id = 5 AND (users).plan = 'free'",
        "DELETE FROM chat_sessions WHERE user_id IN (SELECT id FROM users WHERE plan = 'free')",
    ] {
        assert_eq!(refused_by(sql), None, "{sql}");
    }
}

/// A value a function computes pins nothing: the server may evaluate it for each row, so
/// `id = -nextval('cycling')` walks the ids one row at a time (forty-third pass L1). Constants,
/// parameters, casts and built-in operators still pin.
#[test]
fn a_value_computed_per_row_is_a_range() {
    for sql in [
        "DELETE FROM users WHERE id = -nextval('cyc')",
        "DELETE FROM users WHERE id = -91111111 - floor(random() * 10)::bigint",
        "DELETE FROM users WHERE -pg_catalog.nextval('cyc') = id",
        "UPDATE users SET email = 'x' WHERE id = -nextval('cyc')",
        "DELETE FROM users WHERE id IN (-nextval('cyc'), 0)",
        "DELETE FROM users WHERE id = ANY (ARRAY[-nextval('cyc')])",
        "DELETE FROM users WHERE id IS NOT DISTINCT FROM -nextval('cyc')",
        "DELETE FROM users WHERE id = 5 OPERATOR(public.+) 1",
        "MERGE INTO users u USING (SELECT 1) s ON u.id = -nextval('cyc') WHEN MATCHED THEN DELETE",
    ] {
        let why = refused_by(sql).unwrap_or_else(|| panic!("allowed: {sql}"));
        assert!(why.contains("protected-range") && why.contains("may differ for each row"), "{sql}: {why}");
    }
    for sql in [
        "DELETE FROM users WHERE id = -91111111",
        "DELETE FROM users WHERE id = -91111111 + 1",
        "DELETE FROM users WHERE id = '-91111111'::bigint",
        "DELETE FROM users WHERE id = CAST(-5 AS bigint) AND plan = lower('FREE')",
        "DELETE FROM users WHERE id IN (1, 2, 3)",
    ] {
        assert_eq!(refused_by(sql), None, "{sql}");
    }
}

/// `system_user` is a keyword of the parser's grammar (PostgreSQL 16 and later), a plain name
/// for PostgreSQL 15: a column of that name is read as the older server reads it.
#[test]
fn system_user_is_a_name_for_older_servers() {
    let sql = "INSERT INTO t (SYSTEM_USER) VALUES (1); UPDATE t SET system_user = 'x' WHERE id BETWEEN 1 AND 2";
    let v = analyze(sql, ParseOptions::default());
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|s| s.opaque.is_empty()), "{v:?}");
    assert_eq!(v[1].writes[0].op, Op::Update { columns: vec!["system_user".into()] });
    assert_eq!(&sql[v[1].offset..], v[1].text);
    assert_eq!(v[0].text, "INSERT INTO t (SYSTEM_USER) VALUES (1)");
    assert_eq!(refused_by("UPDATE users SET system_user = 'x' WHERE id = 5"), None);
    // Still a range where it is one.
    assert!(refused_by("UPDATE users SET system_user = 'x' WHERE id BETWEEN 1 AND 2").is_some());
}

/// Deep statements parse (prost's nesting limit of 100 would make them "not parse"), and one
/// past PostgreSQL's own stack-depth limit neither parses nor overflows our stack: it is
/// refused only when it may write, and the refusal says why.
#[test]
fn deep_statements_parse_and_deeper_ones_fail_cleanly() {
    let concat = format!("UPDATE t SET name = 'a'{} WHERE id = 1", " || 'a'".repeat(60));
    let st = one(&concat);
    assert!(st.opaque.is_empty(), "{:?}", st.opaque);
    assert!(matches!(st.writes[0].op, Op::Update { .. }));
    let union = format!("INSERT INTO t (id) SELECT 1{}", " UNION ALL SELECT 1".repeat(100));
    assert!(one(&union).opaque.is_empty());
    let merge_deep = format!("DELETE FROM t WHERE id = 1 AND x = 0{}", " + 1".repeat(300));
    assert!(one(&merge_deep).writes.len() == 1);
    // Far past the server's own limit: not a crash, an honest refusal when it may write.
    let too_deep = format!("DELETE FROM t WHERE x = 0{}", " + 1".repeat(100_000));
    let st = one(&too_deep);
    assert_eq!(st.opaque.len(), 1, "{st:?}");
    assert!(st.opaque[0].describe().contains("may disagree"), "{}", st.opaque[0].describe());
    assert!(one(&format!("SELECT 0{}", " + 1".repeat(100_000))).opaque.is_empty(), "a SELECT cannot write");
}

/// The cost of the deep stack: a hand-off to a parsing thread per cold analysis off the event
/// loops (`cargo test --lib deep_stack_cost -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement run by hand, not a check"]
fn deep_stack_cost() {
    let sql = "UPDATE users SET plan = 'premium' WHERE id = 81723 AND auth_source = 'oauth'";
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(analyze_here(sql, ParseOptions::default()));
    }
    let here = t.elapsed() / n;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(analyze(sql, ParseOptions::default()));
    }
    let deep = t.elapsed() / n;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(deep::on_deep_stack(|| 1));
    }
    let spawn = t.elapsed() / n;
    eprintln!("analysis here {here:?}, on the deep stack {deep:?}, an empty deep-stack call {spawn:?}");
}

#[test]
fn nextval_is_bounded_only_in_a_select_of_constants() {
    let st = one("SELECT nextval('web_user_id_seq'), 1 + 2");
    for sql in ["SELECT -nextval('s') AS id", "SELECT nextval('s') = ANY('{1,2}')", "SELECT nullif(nextval('s'), 0)"] {
        assert!(one(sql).nextval_bounded, "{sql}: each operand once");
    }
    assert_eq!(st.nextval, vec![Some(RelName { schema: None, name: "web_user_id_seq".into() })]);
    assert!(st.nextval_bounded && !st.moves_sequences(|_| true));
    for sql in [
        "SELECT nextval('s') FROM generate_series(1, 100000000)",
        "SELECT nextval('s'), generate_series(1, 10)",
        "SELECT (SELECT nextval('s') FROM t LIMIT 1)",
        "WITH g AS (SELECT 1) SELECT nextval('s') FROM g",
        "INSERT INTO t SELECT nextval('s') FROM t",
        "SELECT nextval('s') UNION ALL SELECT nextval('s')",
        // Once per group: up to 4,096 rows without a FROM (seventy-fifth pass H1).
        "SELECT nextval('s') GROUP BY GROUPING SETS ((), (), ()) OFFSET 2",
        "SELECT nextval('s') GROUP BY CUBE (1, 2)",
        "SELECT nextval('s') GROUP BY ROLLUP (1)",
        "SELECT nextval('s') GROUP BY () HAVING true",
        "SELECT DISTINCT nextval('s')",
        "SELECT nextval('s') WINDOW w AS ()",
        "SELECT nextval('s') ORDER BY (SELECT max(nextval('s')) FROM generate_series(1, 1000))",
        "SELECT nextval('s') LIMIT (SELECT count(nextval('s')) FROM generate_series(1, 1000))",
        // The server copies these operands: 2, 4 and one per item (seventy-sixth pass H1).
        "SELECT nextval('s') BETWEEN 0 AND 1",
        "SELECT ((nextval('s') NOT BETWEEN SYMMETRIC 0 AND 1) NOT BETWEEN SYMMETRIC false AND false)",
        "SELECT nextval('s') NOT BETWEEN 0 AND 1",
        "SELECT nextval('s') IN (1, 2.5, 3::int8, '4')",
        "SELECT 1 WHERE nextval('s') IN (1, 2)",
        // Once per column of the composite.
        "SELECT (COALESCE(ROW(nextval('s'), 2)::t, NULL)).*",
    ] {
        let st = one(sql);
        assert!(!st.nextval_bounded && st.moves_sequences(|s| s.name == "s"), "{sql}");
        assert!(!st.moves_sequences(|_| false), "{sql}: an unprotected sequence");
    }
    // A name the text does not give, or an OID, may be any sequence.
    assert!(one("SELECT nextval(relname::regclass) FROM pg_class").moves_sequences(|_| false));
    assert!(one("SELECT nextval('16384') FROM t").moves_sequences(|_| false));
}

#[test]
fn a_setval_sequence_of_digits_may_be_an_oid() {
    let target = |sql: &str| one(sql).writes[0].target.clone().unwrap();
    assert_eq!(target("SELECT setval('0016387', 5)").as_oid(), Some(Some(16387)));
    assert_eq!(target("SELECT setval('16387'::regclass, 5)").as_oid(), Some(Some(16387)));
    assert_eq!(target("SELECT setval('99999999999', 5)").as_oid(), Some(None));
    assert_eq!(target("SELECT setval('public.16387', 5)").as_oid(), None);
    assert_eq!(target("SELECT setval('s16387', 5)").as_oid(), None);
}

#[test]
fn set_config_of_the_role_to_a_constant_runs_no_code() {
    assert!(!one("SELECT set_config('role', 'r', false)").calls_functions);
    assert!(!one("SELECT pg_catalog.set_config('ROLE', 'r', true)").calls_functions);
    // Any other setting, or a computed name or value: as before, a call to count.
    assert!(one("SELECT set_config('search_path', 'x', false)").calls_functions);
    assert!(one("SELECT set_config('role', current_user || 'x', false)").calls_functions);
    assert!(one("SELECT set_config(lower('ROLE'), 'r', false)").calls_functions);
}

#[test]
fn calls_are_named_as_the_server_looks_them_up() {
    assert_eq!(one("DELETE FROM t WHERE id = 1 AND txid_current() > 0").calls, ["txid_current"]);
    assert_eq!(one("SELECT s.f(), \"G\"(), g()").calls, ["*", "G", "g"]);
    // Qualified, a built-in outside the harmless list is counted by its name, as unqualified.
    assert_eq!(one("SELECT pg_catalog.txid_current(), upper('a')").calls, ["txid_current"]);
    assert!(one("SELECT pg_catalog.upper('a'), pg_catalog.now()").calls.is_empty());
    // A `pg_catalog` function outside the harmless list is a call, whatever it is (a list of
    // those known to run code would miss the next one: seventy-second pass H1).
    assert!(one("SELECT pg_catalog.fmgr_sql_validator(16400)").calls_functions);
    assert!(one("SELECT pg_catalog.a_function_of_a_later_release(1)").calls_functions);
    assert_eq!(one("EXPLAIN SELECT f()").calls, ["f"]);
}

#[test]
fn a_qualified_name_is_read_as_regclass_input_reads_it() {
    let q = |s: &str| parse_qualified(s).map(|r| (r.schema, r.name));
    let seq = Some((Some("public".to_string()), "web_user_id_seq".to_string()));
    // Whitespace around each part is skipped (seventy-seventh pass H2).
    for s in [
        "public.web_user_id_seq",
        "public. web_user_id_seq",
        "public . web_user_id_seq",
        " public. web_user_id_seq ",
        "public.\tweb_user_id_seq",
        "\"public\" . \"web_user_id_seq\"",
        "incident.public. web_user_id_seq",
        "PUBLIC.Web_User_Id_Seq",
    ] {
        assert_eq!(q(s), seq, "{s:?}");
    }
    assert_eq!(q("\"Web\"\"Seq\""), Some((None, "Web\"Seq".to_string())));
    assert_eq!(q("\"a.b\".c"), Some((Some("a.b".to_string()), "c".to_string())));
    // Only ASCII letters fold, as in a UTF-8 database.
    assert_eq!(q("ÉTÉ"), Some((None, "ÉtÉ".to_string())));
    // Cut to 63 bytes.
    assert_eq!(q(&"s".repeat(70)), Some((None, "s".repeat(63))));
    // What the server rejects.
    for s in ["", " ", "public.", ".s", "a b", "\"open", "\"\"", "a..b", "a.b.c.d"] {
        assert_eq!(q(s), None, "{s:?}");
    }
}
