//! README.md's examples, run: its configuration and policy blocks parse, its psql transcripts
//! say what the proxy says, its `blastwall check` output is the binary's, its override
//! example runs. The README cannot rot without this failing.

use crate::harness::*;
use std::path::Path;

const README: &str = include_str!("../../README.md");

/// The fenced blocks of a language: (info string, body).
fn blocks(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in README.lines() {
        match &mut cur {
            None if line.trim_start().starts_with("```") && line.trim_start()[3..].trim() == lang => {
                cur = Some(String::new())
            }
            Some(b) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn toml_examples_are_valid() {
    let tomls = blocks("toml");
    assert!(tomls.len() >= 3, "{}", tomls.len());
    for t in tomls {
        let is_policy =
            t.lines().any(|l| l.starts_with("[[table]]") || l.starts_with("[defaults]") || l.starts_with("[opaque]"));
        if is_policy {
            blastwall::policy::file::compile(&[(Path::new("README.md"), t.as_str())])
                .unwrap_or_else(|e| panic!("{e}\n{t}"));
        } else {
            blastwall::config::Config::from_toml(&t, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}\n{t}"));
        }
    }
}

/// Strips psql's `psql:<stdin>:N: ` prefix.
fn unprefixed(line: &str) -> &str {
    match line.strip_prefix("psql:<stdin>:") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, r)| r),
        None => line,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_transcripts_are_what_the_proxy_says() {
    let sessions: Vec<String> = blocks("text").into_iter().filter(|b| b.contains("postgres=# ")).collect();
    assert!(sessions.len() >= 2);
    let db = incident_db();
    let p = proxy().await;
    for block in sessions {
        let statements: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("postgres=# ")).collect();
        let expected: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with("postgres=# ") && !l.starts_with("$ ") && !l.trim().is_empty())
            .collect();
        let (_, out, err) = psql(p.port(), "app", APP_PW, &db, &["-f", "-"], Some(&(statements.join("\n") + "\n")));
        let got: Vec<&str> = out.lines().chain(err.lines()).map(unprefixed).collect();
        for want in expected {
            assert!(got.contains(&want), "README line not produced:\n{want}\n--- got ---\n{}", got.join("\n"));
        }
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_example_runs_for_the_migrator() {
    let sql = blocks("sql").into_iter().find(|b| b.contains("blastwall: allow")).expect("the override example");
    let db = incident_db();
    admin_sql(pg(), &db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO migrator");
    let p = proxy().await;
    let (ok, out, err) = psql(p.port(), "migrator", APP_PW, &db, &["-v", "ON_ERROR_STOP=1", "-f", "-"], Some(&sql));
    assert!(ok && out.contains("DELETE 10"), "{out}{err}");
    let (ok, _, err) = psql(p.port(), "app", APP_PW, &db, &["-f", "-"], Some(&sql));
    assert!(ok && err.contains("rule protected-range"), "other roles get the normal refusal: {err}");
    p.stop().await;
}

#[test]
fn the_check_example_is_the_binarys_output() {
    let block = blocks("console").into_iter().find(|b| b.contains("blastwall check")).expect("the check example");
    let mut lines = block.lines();
    let cmd = lines.next().unwrap().strip_prefix("$ blastwall ").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(cmd.split_whitespace())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected: String = lines.map(|l| format!("{l}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
