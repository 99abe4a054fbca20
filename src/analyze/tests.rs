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
