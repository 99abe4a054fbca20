//! README.md's examples, run: its configuration and policy blocks parse, its psql transcripts
//! are what `blastwall demo` answers, line for line and in order, run as the README's user with
//! the command the demo prints, its `blastwall check` output is the binary's, its override
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

/// `blastwall demo`, the binary, on a free port: the README's transcripts run against it.
struct Demo {
    child: std::process::Child,
    port: u16,
    /// What it printed for the user, up to "Press Ctrl-C".
    instructions: String,
}

impl Demo {
    fn start() -> Demo {
        let port = blastwall::pgtemp::free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
            .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The demo prints its instructions once the proxy listens.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut instructions = String::new();
        use std::io::BufRead;
        while !instructions.contains("Press Ctrl-C") {
            assert!(out.read_line(&mut instructions).unwrap() > 0, "the demo exited before it was running");
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Demo { child, port, instructions }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Ctrl-C: the demo stops and removes its throwaway server.
        let _ = std::process::Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Runs statements with psql as the transcript's `$ PGPASSWORD=… psql "…"` line says, on
/// `port`; returns what it printed, stdout and stderr in one stream as on a terminal, with
/// psql's `psql:<stdin>:N: ` prefixes removed.
fn run_transcript_psql(command: &str, port: u16, statements: &str) -> Vec<String> {
    let command = command.strip_prefix("$ ").expect("a shell line");
    let (env, rest) = command.split_once(' ').unwrap();
    let password = env.strip_prefix("PGPASSWORD=").expect("PGPASSWORD=…");
    let conninfo = rest.strip_prefix("psql \"").and_then(|r| r.strip_suffix('"')).expect("psql \"conninfo\"");
    let conninfo = conninfo.replace("port=6432", &format!("port={port}"));
    // One pipe for both streams, as a terminal shows them; -X ignores any ~/.psqlrc.
    let script = format!("exec '{}' -X '{conninfo}' -f - 2>&1", psql_path().display());
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(statements.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| unprefixed(l).to_string()).collect()
}

/// The README's psql sessions, run as they are written — the demo, its user, its password —
/// print exactly the README's lines, in the README's order.
#[test]
fn psql_transcripts_are_what_the_demo_says() {
    let sessions: Vec<String> = blocks("text").into_iter().filter(|b| b.contains("postgres=# ")).collect();
    assert!(sessions.len() >= 2);
    let demo = Demo::start();
    for block in sessions {
        let command = block.lines().next().unwrap();
        // The command is the one the demo tells its user to run.
        let told = command.strip_prefix("$ ").unwrap().replace("port=6432", &format!("port={}", demo.port));
        assert!(demo.instructions.contains(&told), "{told}\nis not in what the demo prints:\n{}", demo.instructions);
        let statements: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("postgres=# ")).collect();
        let expected: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with("postgres=# ") && !l.starts_with("$ ") && !l.trim().is_empty())
            .collect();
        let got = run_transcript_psql(command, demo.port, &(statements.join("\n") + "\n"));
        let got: Vec<&str> = got.iter().map(String::as_str).filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(got, expected, "README transcript:\n{block}");
    }
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
