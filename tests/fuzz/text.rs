//! Text-level targets: the override directive (placed in real comments, string literals,
//! dollar quotes, nested comments; well-formed and not), the psql script chunker (statements,
//! meta-commands, COPY … FROM STDIN data that looks like SQL), and the analyzer on generated
//! DELETE/UPDATE/MERGE statements.

#[path = "sqlgen.rs"]
#[allow(dead_code)] // the oracle in tests/it reads what the analyzer target does not
mod sqlgen;

use blastwall::analyze::{self, directive, script, Op, ParseOptions};
use proptest::prelude::*;

/// Where a piece of text is placed in a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    BlockComment,
    NestedComment,
    LineComment,
    StringLiteral,
    DollarQuote,
}

#[derive(Debug, Clone)]
struct Directive {
    /// `Ok((rows, reason))` when well-formed.
    want: Result<(u64, String), ()>,
    text: String,
}

fn directive_text() -> impl Strategy<Value = Directive> {
    let reason = "[a-z0-9][a-z0-9 #.-]{0,20}";
    prop_oneof![
        4 => (any::<u64>(), reason, 0usize..3).prop_map(|(rows, reason, spaces)| {
            let sp = " ".repeat(spaces);
            Directive {
                text: format!("blastwall:{sp} allow{sp} rows<={rows}{sp} reason=\"{reason}\"{sp}"),
                want: Ok((rows, reason.trim().to_string())),
            }
        }),
        1 => proptest::sample::select(vec![
            "blastwall: allow everything",
            "blastwall: allow rows<=5",
            "blastwall: allow rows<=-5 reason=\"x\"",
            "blastwall: allow rows<=99999999999999999999999 reason=\"x\"",
            "blastwall: allow rows<=5 reason=\"\"",
            "blastwall: allow rows<=5 reason=\"x",
            "blastwall: allow rows<=5 reason=\"x\" and more",
            "blastwall: deny rows<=5 reason=\"x\"",
        ])
        .prop_map(|t| Directive { text: t.into(), want: Err(()) }),
    ]
}

fn place(text: &str, p: Place) -> String {
    match p {
        Place::BlockComment => format!("/* {text} */"),
        // A comment that only mentions a directive further in is not one.
        Place::NestedComment => format!("/* note /* {text} */ */"),
        Place::LineComment => format!("-- {text}\n"),
        Place::StringLiteral => format!("'{}'", format!("/* {text} */").replace('\'', "''")),
        Place::DollarQuote => format!("$q$ -- {text}\n $q$"),
    }
}

fn placement() -> impl Strategy<Value = Place> {
    proptest::sample::select(vec![
        Place::BlockComment,
        Place::NestedComment,
        Place::LineComment,
        Place::StringLiteral,
        Place::DollarQuote,
    ])
}

/// A DELETE with directives placed before, inside and after it.
fn with_directives() -> impl Strategy<Value = (String, Vec<(Directive, Place)>)> {
    proptest::collection::vec((directive_text(), placement()), 0..3).prop_map(|ds| {
        let mut sql = String::new();
        for (i, (d, p)) in ds.iter().enumerate() {
            let piece = place(&d.text, *p);
            match (i, p) {
                (_, Place::StringLiteral | Place::DollarQuote) => {
                    sql.push_str(&format!("SELECT {piece};\n"));
                }
                (0, _) => sql.push_str(&format!("{piece} ")),
                _ => sql.push_str(&format!("SELECT 1 {piece};\n")),
            }
        }
        sql.push_str("DELETE FROM users WHERE id BETWEEN 1 AND 2");
        (sql, ds)
    })
}

#[derive(Debug, Clone)]
enum Line {
    /// A statement deleting from `target_N`, on one or more lines.
    Statement(usize, bool),
    Meta(&'static str),
    /// COPY … FROM STDIN (SQL or `\copy`), then data lines that look like SQL, then `\.`.
    Copy {
        meta: bool,
        decoys: Vec<usize>,
    },
    Blank,
}

fn script_lines() -> impl Strategy<Value = Vec<Line>> {
    let line = prop_oneof![
        4 => (0usize..1000, any::<bool>()).prop_map(|(n, split)| Line::Statement(n, split)),
        1 => proptest::sample::select(vec!["\\set x 1", "\\echo hello", "\\timing on", "\\c"]).prop_map(Line::Meta),
        2 => (any::<bool>(), proptest::collection::vec(0usize..1000, 0..4)).prop_map(|(meta, decoys)| Line::Copy { meta, decoys }),
        1 => Just(Line::Blank),
    ];
    proptest::collection::vec(line, 0..12)
}

fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        match l {
            Line::Statement(n, false) => out.push_str(&format!("DELETE FROM target_{n} WHERE id = 1;\n")),
            Line::Statement(n, true) => out.push_str(&format!("DELETE FROM target_{n}\n  WHERE id = 1;\n")),
            Line::Meta(m) => out.push_str(&format!("{m}\n")),
            Line::Copy { meta, decoys } => {
                out.push_str(if *meta { "\\copy t from stdin\n" } else { "COPY t FROM STDIN;\n" });
                for d in decoys {
                    out.push_str(&format!("DELETE FROM decoy_{d};\n"));
                }
                out.push_str("\\.\n");
            }
            Line::Blank => out.push('\n'),
        }
    }
    out
}

fn deletes(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for st in analyze::analyze(sql, ParseOptions::default()) {
        for w in st.writes {
            if let Some(t) = w.target {
                out.push(t.name);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(crate::config(512))]

    /// The directive counts in real comments only, exactly once, and says what was written.
    #[test]
    fn directive_agrees_with_its_placement((sql, ds) in with_directives()) {
        let real: Vec<&Directive> = ds
            .iter()
            .filter(|(_, p)| matches!(p, Place::BlockComment | Place::LineComment))
            .map(|(d, _)| d)
            .collect();
        let got = directive::find(&sql, ParseOptions::default());
        match real.as_slice() {
            [] => prop_assert_eq!(got, Ok(None), "{}", sql),
            [one] => match &one.want {
                Ok((rows, reason)) => {
                    let o = got.expect("a well-formed directive").expect("found");
                    prop_assert_eq!((o.rows, &o.reason), (*rows, reason));
                }
                Err(()) => prop_assert!(got.is_err(), "{}", sql),
            },
            _ => prop_assert!(got.is_err(), "two directives: {}", sql),
        }
        // With standard_conforming_strings off and a backslash, no directive counts.
        let off = directive::find(&format!("{sql} -- \\"), ParseOptions { standard_conforming_strings: false });
        prop_assert_eq!(off, Ok(None));
    }

    /// Every statement of a script is in some chunk, with its line; COPY data never is.
    #[test]
    fn chunker_keeps_statements_and_drops_copy_data(lines in script_lines()) {
        let text = render(&lines);
        let chunks: Vec<(usize, String)> = script::items(&text, &mut Default::default())
            .into_iter()
            .filter_map(|i| match i { script::Item::Sql(c) => Some((c.line, c.sent.sql)), _ => None })
            .collect();
        let script_lines: Vec<&str> = text.lines().collect();
        let mut found = Vec::new();
        for (line, sql) in &chunks {
            let line = *line;
            prop_assert!(line >= 1 && line <= script_lines.len(), "line {} of {}", line, script_lines.len());
            let first = sql.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            prop_assert!(script_lines[line - 1..].iter().any(|l| l.contains(first.trim())), "chunk at {} starts later: {:?}", line, sql);
            found.extend(deletes(sql));
        }
        let want: Vec<String> = lines.iter().filter_map(|l| match l { Line::Statement(n, _) => Some(format!("target_{n}")), _ => None }).collect();
        prop_assert_eq!(found.iter().filter(|t| t.starts_with("target_")).cloned().collect::<Vec<_>>(), want);
        prop_assert!(!found.iter().any(|t| t.starts_with("decoy_")), "COPY data read as SQL: {:?}", found);
    }

    /// The analyzer finds the one write of each generated statement, on its target, with a
    /// predicate; its statement offsets point into the text; the guard judges without panic.
    #[test]
    fn analyzer_finds_every_generated_write(g in sqlgen::statement("fz_p", true), scs in any::<bool>()) {
        let stmts = analyze::analyze(&g.sql, ParseOptions { standard_conforming_strings: scs });
        prop_assert_eq!(stmts.len(), 1, "{}", g.sql);
        let st = &stmts[0];
        prop_assert!(g.sql[st.offset..].starts_with(&st.text));
        let writes: Vec<_> = st.writes.iter().filter(|w| !matches!(w.op, Op::Upsert { .. })).collect();
        prop_assert_eq!(writes.len(), 1, "{} → {:?}", g.sql, st.writes);
        let w = writes[0];
        prop_assert_eq!(w.target.as_ref().map(|t| t.name.as_str()), Some("fz_p"));
        prop_assert!(matches!(w.op, Op::Delete | Op::Update { .. } | Op::MergeDelete | Op::MergeUpdate { .. }), "{:?}", w.op);
        prop_assert!(w.predicate.is_some());
        static GUARD: std::sync::OnceLock<blastwall::guard::Guard> = std::sync::OnceLock::new();
        let guard = GUARD.get_or_init(|| blastwall::guard::Guard::new(blastwall::demo::incident_policy().unwrap(), None));
        let _ = guard.judge_sql(g.sql.as_bytes(), &mut blastwall::guard::SessionInfo::new("app", ""));
    }
}

/// The kind of a verdict and the rule that decided it, for comparing two judgements.
fn verdict_kind(g: &blastwall::guard::Guard, sql: &str) -> String {
    use blastwall::guard::{SessionInfo, Verdict};
    let mut info = SessionInfo::new("app", "");
    let mut v = g.judge_sql(sql.as_bytes(), &mut info);
    if v == Verdict::Analyze {
        // A long text: analyzed first (off the event loop in a session), then judged again.
        let pre = g.preanalyze(sql.as_bytes(), "", true, true);
        v = g.judge(sql.as_bytes(), &mut info, Some(&pre)).verdict;
    }
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Check(_) => "check".into(),
        Verdict::Resolve(_) => "resolve".into(),
        Verdict::Analyze => "analyze twice".into(),
        Verdict::Split(_) => "split".into(),
        Verdict::Refuse(m) | Verdict::Notice(m) => {
            let rule = m.detail.as_deref().unwrap_or("").split(';').next().unwrap_or("").to_string();
            format!("{:?} {rule}", m.severity)
        }
    }
}

proptest! {
    #![proptest_config(crate::config(128))]

    /// A long text takes another path (analyzed off the event loop, then judged again): the
    /// same statement padded past that threshold with a comment gets the same verdict.
    #[test]
    fn long_texts_are_judged_like_short_ones(g in sqlgen::statement("users", true)) {
        static GUARD: std::sync::OnceLock<blastwall::guard::Guard> = std::sync::OnceLock::new();
        let guard = GUARD.get_or_init(|| blastwall::guard::Guard::new(blastwall::demo::incident_policy().unwrap(), None));
        let padded = format!("{} /* {} */", g.sql, "x".repeat(blastwall::guard::ANALYZE_OFF_LOOP_BYTES));
        prop_assert_eq!(verdict_kind(guard, &padded), verdict_kind(guard, &g.sql), "{}", g.sql);
    }
}

/// The generators reach deep states: directives in real comments, well-formed and not;
/// scripts with COPY data and statements after it; statements of every form that parse.
#[test]
fn text_generators_reach_deep_states() {
    let ds = crate::sample(&with_directives(), 1000);
    let found =
        ds.iter().filter(|(sql, _)| matches!(directive::find(sql, ParseOptions::default()), Ok(Some(_)))).count();
    let refused = ds.iter().filter(|(sql, _)| directive::find(sql, ParseOptions::default()).is_err()).count();
    assert!(found > 200 && refused > 100, "found {found}, refused {refused}");
    let scripts = crate::sample(&script_lines(), 500);
    let copy_then_statement = scripts
        .iter()
        .filter(|ls| {
            let first_copy = ls.iter().position(|l| matches!(l, Line::Copy { decoys, .. } if !decoys.is_empty()));
            first_copy.is_some_and(|i| ls[i..].iter().any(|l| matches!(l, Line::Statement(..))))
        })
        .count();
    assert!(copy_then_statement > 100, "{copy_then_statement}");
    let stmts = crate::sample(&sqlgen::statement("fz_p", true), 1000);
    let parsed = stmts.iter().filter(|g| pg_query::parse(&g.sql, pg_query::ParserOptions::DEFAULT).is_ok()).count();
    let merges = stmts.iter().filter(|g| g.sql.starts_with("MERGE")).count();
    let ctes = stmts.iter().filter(|g| g.sql.starts_with("WITH")).count();
    assert!(parsed == 1000 && merges > 150 && ctes > 150, "parsed {parsed}, merges {merges}, ctes {ctes}");
}
