//! Tests of the hidden callers' answer and mention tests, and two measurements run by hand.

use super::*;

#[test]
fn a_mention_is_found_in_any_case_and_writers_only_for_writes() {
    let rows = |v: &[(&str, &str)]| -> Vec<Vec<Option<String>>> {
        v.iter().map(|(n, k)| vec![Some(n.to_string()), Some(k.to_string())]).collect()
    };
    let h = answer(&rows(&[("purging_view", "r"), ("Stamped", "w")]));
    assert!(h.mentioned_in("select * from PURGING_VIEW", false));
    assert!(h.mentioned_in("SELECT * FROM \"purging_view\"", false));
    assert!(!h.mentioned_in("SELECT * FROM stamped", false));
    assert!(h.mentioned_in("INSERT INTO stamped DEFAULT VALUES", true));
    assert!(h.mentioned_in("SELECT * FROM U&\"\\0070urging_view\"", false));
    assert!(!h.mentioned_in("SELECT * FROM users", true));
    assert!(!answer(&[]).mentioned_in("SELECT 1", true) && answer(&[]).is_empty());
    assert!(HiddenCallers::everything().mentioned_in("SELECT 1", false));
    // The assumed set is told from a learned one without making one to compare with.
    assert!(HiddenCallers::everything().is_everything() && !HiddenCallers::default().is_everything());
    let mut learned = HiddenCallers::everything();
    learned.write.push("w".into());
    assert!(!learned.is_everything() && !h.is_everything());
    // A one-letter domain is not found inside other words; an operator is found anywhere.
    let h = answer(&rows(&[("d", "r"), ("###", "r")]));
    assert!(!h.mentioned_in("SELECT id FROM users WHERE plan = 'x'", false));
    assert!(h.mentioned_in("SELECT 1::d", false) && h.mentioned_in("SELECT 'a'OPERATOR(pg_temp.###)'b'", false));
    // PostgreSQL cuts a longer identifier to 63 bytes: its head names the object.
    let long = format!("vd_{}", "a".repeat(60));
    let h = answer(&rows(&[(long.as_str(), "r")]));
    assert!(h.mentioned_in(&format!("SELECT * FROM {long}zzz"), false));
    assert!(h.mentioned_in(&format!("SELECT * FROM \"{long}zzz\""), false));
    assert!(!h.mentioned_in(&format!("SELECT * FROM x{long}"), false));
}

#[test]
fn callers_of_set_config_are_callers_and_sequence_movers_count_for_protected_sequences() {
    let row = |n: &str, k: &str, s: Option<&str>| vec![Some(n.into()), Some(k.into()), s.map(String::from)];
    let h = answer(&[
        row("sp", "r", None),
        row("sq", "w", Some("public.web_user_id_seq")),
        row("ser", "w", Some("public.ser_id_seq")),
        row("anyseq", "r", Some("*")),
    ]);
    let protected = |s: &str| s == "*" || s.ends_with(".web_user_id_seq");
    assert!(h.mentioned_in("SELECT * FROM sp", false));
    assert!(!h.mentioned_in("INSERT INTO sq (y) SELECT 1", true), "a mover is not a caller");
    assert!(h.moves("INSERT INTO sq (y) SELECT g FROM generate_series(1, 9) g", true, &protected));
    assert!(!h.moves("SELECT * FROM sq", false, &protected), "reading sq runs no default");
    assert!(!h.moves("INSERT INTO ser (a) VALUES (1)", true, &protected), "its sequence is not protected");
    assert!(h.moves("SELECT * FROM anyseq", false, &protected));
    assert!(!answer(&[row("ser", "w", Some("public.ser_id_seq"))]).moves("INSERT INTO ser", true, &protected));
    assert!(HiddenCallers::everything().moves("SELECT 1", false, &protected));
    assert!(!h.reading_runs_nothing() && !HiddenCallers::everything().reading_runs_nothing());
    assert!(answer(&[row("ser", "w", Some("public.ser_id_seq")), row("t", "w", None)]).reading_runs_nothing());
}

#[test]
fn types_whose_input_runs_a_function_are_known_by_oid() {
    let rows: Vec<Vec<Option<String>>> = [("16390", "t"), ("16387", "t"), ("hd", "r"), ("x", "t")]
        .iter()
        .map(|(n, k)| vec![Some(n.to_string()), Some(k.to_string())])
        .collect();
    let h = answer(&rows);
    assert!(h.any_input_runs_code() && h.input_runs_code(16387) && h.input_runs_code(16390));
    assert!(!h.input_runs_code(23) && !h.input_runs_code(0));
    // The OIDs are not names: `16387` is mentioned by no text.
    assert!(!h.mentioned_at_all("SELECT 16387") && h.mentioned_at_all("SELECT 1::hd"));
    let none = answer(&rows[2..3]);
    assert!(!none.any_input_runs_code() && !none.input_runs_code(16387));
    // Unknown: every type may.
    assert!(HiddenCallers::everything().input_runs_code(23));
}

/// Prints the query, to time it on a server by hand (`cargo test --lib print_hidden_callers_query
/// -- --ignored --nocapture`).
#[test]
#[ignore = "prints the query for a measurement by hand"]
fn print_hidden_callers_query() {
    println!("{}", query(&crate::demo::incident_policy().unwrap()));
}

/// The lookup a harmless message pays once the set is known (`cargo test --release --lib
/// hidden_callers_lookup_cost -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement run by hand, not a check"]
fn hidden_callers_lookup_cost() {
    let c = crate::catalog::Catalog::default();
    c.learn_hidden_callers("bench", Some(&[]), &mut crate::catalog::OwnTemp::None);
    let n = 400_000u32;
    let t = std::time::Instant::now();
    let mut empty = 0u32;
    for _ in 0..n {
        empty += u32::from(
            c.with_hidden_callers(
                std::hint::black_box("bench"),
                crate::catalog::Whose { temp: &crate::catalog::OwnTemp::None, user: "u" },
                |h| h.is_empty(),
            )
            .unwrap_or(false),
        );
    }
    assert_eq!(empty, n);
    println!("{:.1} ns per lookup", t.elapsed().as_nanos() as f64 / f64::from(n));
}
