//! The `blastwall` command as a user runs it: the real binary, its exit statuses, what it
//! prints on stdout and stderr. `check` over psql scripts (variables, includes, `\;`), the
//! help texts, the generated manual page and completions, error and log output.

mod demo;
mod packaging;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `blastwall ARGS` in `dir` with `stdin`.
pub fn blastwall(args: &[&str], stdin: &str, dir: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(args)
        .current_dir(dir)
        .env_remove("BLASTWALL_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that fails before reading its input (a missing file) closes the pipe early.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `blastwall check --policy policies/ EXTRA… -` over `sql`.
fn check_stdin(sql: &str, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--policy", POLICIES, "--format", "json"];
    args.extend_from_slice(extra);
    args.push("-");
    blastwall(&args, sql, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The JSON findings of a run: (line, rule, verdict).
fn findings(r: &Run) -> Vec<(u64, String, String)> {
    r.out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["line"].as_u64().unwrap(), v["rule"].as_str().unwrap().into(), v["verdict"].as_str().unwrap().into())
        })
        .collect()
}

fn files(list: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in list {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn check_exit_status_is_0_clean_1_refused_2_error() {
    let r = check_stdin("SELECT 1;\nDELETE FROM users WHERE auth_source = 'test';\n", &[]);
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    let r = check_stdin("DELETE FROM users WHERE id BETWEEN 1 AND 9;\n", &[]);
    assert_eq!(r.code, 1, "{}", r.err);
    let dir = files(&[("bad.toml", "[[tabel]]\nname = \"x\"\n")]);
    let r = blastwall(&["check", "--policy", "bad.toml", "-"], "SELECT 1;", dir.path());
    assert_eq!(r.code, 2, "an invalid policy: {}", r.err);
    assert!(r.err.contains("bad.toml"), "{}", r.err);
}

#[test]
fn a_missing_script_is_an_error_naming_it() {
    let dir = files(&[]);
    let r = blastwall(&["check", "nowhere/cleanup.sql"], "", dir.path());
    assert_eq!(r.code, 2);
    assert!(r.err.contains("nowhere/cleanup.sql") && r.err.contains("No such file"), "{}", r.err);
    assert_eq!(r.err.matches("No such file").count(), 1, "the cause is said once: {}", r.err);
}

#[test]
fn json_findings_carry_every_field() {
    let r = check_stdin("SELECT 1;\n\nDELETE FROM users\n WHERE id BETWEEN -91111200 AND -91111100;\n", &[]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.out);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["file"], "<stdin>");
    assert_eq!(v["line"], 3);
    assert_eq!(v["verdict"], "refused");
    assert_eq!(v["rule"], "protected-range");
    assert_eq!(v["mode"], "enforce");
    assert!(v["message"].as_str().unwrap().contains("BETWEEN"));
    assert!(v["hint"].as_str().unwrap().contains("auth_source"));
    assert!(v["policy"].as_str().unwrap().contains("incident.toml line"));
    assert!(v["statement"].as_str().unwrap().starts_with("DELETE FROM users"));
}

#[test]
fn user_and_application_name_choose_the_mode() {
    let sql = "DELETE FROM users WHERE id BETWEEN 1 AND 9;\n";
    // policies/incident.toml: the role migrator is in warn mode.
    let r = check_stdin(sql, &["--user", "migrator"]);
    assert_eq!((r.code, findings(&r)), (0, vec![(1, "protected-range".into(), "warning".into())]), "{}", r.err);
    let dir = files(&[("app.toml", "[[application]]\nname = \"nightly\"\nmode = \"warn\"\n")]);
    let policy = dir.path().join("app.toml");
    let p = policy.to_str().unwrap();
    let args = |app: &'static str| vec!["check", "--policy", POLICIES, "--policy", p, "--application-name", app, "-"];
    let r = blastwall(&args("nightly"), "DELETE FROM users;", dir.path());
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("warning"), "{}", r.out);
    let r = blastwall(&args("other"), "DELETE FROM users;", dir.path());
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
}

#[test]
fn an_unknown_variable_does_not_hide_the_statements_after_it() {
    // The bypass: `:uid` made every following statement one unparseable chunk, passed with
    // `unparseable = "warn"`.
    let dir = files(&[("warn.toml", "[opaque]\nunparseable = \"warn\"\n")]);
    let policy = dir.path().join("warn.toml");
    let sql = "SELECT * FROM users WHERE id = :uid;\nDELETE FROM users WHERE id BETWEEN 1 AND 9;\nDELETE FROM users;\n";
    let r = blastwall(&["check", "--policy", policy.to_str().unwrap(), "--format", "json", "-"], sql, dir.path());
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert_eq!(findings(&r), vec![(3, "require-where".to_string(), "refused".to_string())]);
    let r = check_stdin(sql, &[]);
    let rules: Vec<_> = findings(&r).into_iter().map(|(l, rule, _)| (l, rule)).collect();
    assert_eq!(rules, vec![(2, "protected-range".to_string()), (3, "require-where".to_string())]);
}

#[test]
fn an_unset_variable_in_a_write_is_refused_and_a_set_one_is_judged() {
    let sql = "SELECT name FROM users WHERE id = :uid;\nDELETE FROM users WHERE id = :uid;\n";
    let r = check_stdin(sql, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(findings(&r), vec![(2, "unset-variable".to_string(), "refused".to_string())], "only the write");
    // Even where the policy would let the statement's text through.
    let r = check_stdin(sql, &["--user", "migrator"]);
    assert_eq!(r.code, 1, "{}", r.out);
    for set in [["-v", "uid=42"], ["--set", "uid=42"]] {
        let r = check_stdin(sql, &set);
        assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    }
    // The value is read as SQL, as psql does.
    let r = check_stdin(sql, &["-v", "uid=1 OR true"]);
    assert_eq!(r.code, 1, "{}", r.out);
    let r = check_stdin("DELETE FROM users WHERE id BETWEEN :lo AND :hi;\n", &["-v", "lo=1", "-v", "hi=9"]);
    assert_eq!(findings(&r), vec![(1, "protected-range".to_string(), "refused".to_string())]);
}

#[test]
fn quoted_variables_are_literals_and_identifiers() {
    let r = check_stdin("DELETE FROM users WHERE auth_source = :'src';\n", &["-v", "src=test"]);
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    let r = check_stdin("DELETE FROM users WHERE auth_source = :'src';\n", &[]);
    assert_eq!(findings(&r), vec![(1, "unset-variable".to_string(), "refused".to_string())]);
    let r = check_stdin("TRUNCATE :\"t\";\n", &["-v", "t=users"]);
    assert_eq!(findings(&r), vec![(1, "forbid-truncate".to_string(), "refused".to_string())]);
    let r = check_stdin("\\set t users\nTRUNCATE :\"t\";\n\\unset t\nTRUNCATE :\"t\";\n", &[]);
    let rules: Vec<_> = findings(&r).into_iter().map(|(l, rule, _)| (l, rule)).collect();
    assert_eq!(rules, vec![(2, "forbid-truncate".to_string()), (4, "unset-variable".to_string())]);
}

#[test]
fn includes_are_followed_relative_to_the_script_or_the_directory() {
    let dir = files(&[
        ("main.sql", "SELECT 1;\n\\ir parts/cleanup.sql\n\\i top.sql\nSELECT 2;\n"),
        ("parts/cleanup.sql", "-- cleanup\nDELETE FROM users;\n\\include_relative more.sql\n"),
        ("parts/more.sql", "DELETE FROM users WHERE id BETWEEN 1 AND 9;\n"),
        ("top.sql", "\\include parts/more.sql\n"),
    ]);
    let r = blastwall(&["check", "--policy", POLICIES, "--format", "json", "main.sql"], "", dir.path());
    assert_eq!(r.code, 1, "{}", r.err);
    let got: Vec<(String, u64, String)> = r
        .out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (v["file"].as_str().unwrap().to_string(), v["line"].as_u64().unwrap(), v["rule"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("parts/cleanup.sql".to_string(), 2, "require-where".to_string()),
            ("parts/more.sql".to_string(), 1, "protected-range".to_string()),
            ("parts/more.sql".to_string(), 1, "protected-range".to_string()),
        ]
    );
    assert!(r.err.contains("checked 5 statements in 5 files"), "{}", r.err);
}

#[test]
fn an_include_cycle_and_a_missing_include_are_errors() {
    let dir = files(&[("a.sql", "SELECT 1;\n\\ir b.sql\n"), ("b.sql", "\\ir a.sql\n"), ("c.sql", "\\i gone.sql\n")]);
    let r = blastwall(&["check", "a.sql"], "", dir.path());
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("include cycle: a.sql → b.sql → a.sql"), "{}", r.err);
    let r = blastwall(&["check", "c.sql"], "", dir.path());
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("c.sql:1") && r.err.contains("gone.sql") && r.err.contains("No such file"), "{}", r.err);
}

#[test]
fn backslash_semicolon_joins_statements_that_are_each_judged() {
    let r = check_stdin("SELECT 1 \\; DELETE FROM users;\n", &[]);
    assert_eq!(findings(&r), vec![(1, "require-where".to_string(), "refused".to_string())], "{}", r.err);
    assert!(r.err.contains("checked 2 statements in 1 file: 1 finding, 1 refused"), "{}", r.err);
}

#[test]
fn the_count_of_statements_checked_is_printed() {
    let r =
        check_stdin("SELECT 1;\nSELECT 2;\n\\set x 1\nSELECT :x;\nCOPY t FROM STDIN;\nDELETE FROM users;\n\\.\n", &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.err.contains("checked 4 statements in 1 file: 0 findings, 0 refused"), "{}", r.err);
}

#[test]
fn gexec_is_refused() {
    let r = check_stdin("SELECT format('DELETE FROM %I', 'users') \\gexec\n", &[]);
    assert_eq!(findings(&r), vec![(1, "gexec".to_string(), "refused".to_string())]);
}

#[test]
fn help_texts_say_what_the_options_do() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let h = blastwall(&["check", "--help"], "", &dir).out;
    assert!(!h.contains("[default: \"\"]"), "{h}");
    let format = h.lines().skip_while(|l| !l.contains("--format")).take(3).collect::<Vec<_>>().join(" ");
    assert!(format.contains("json") && format.contains("one JSON object per"), "{h}");
    assert!(h.contains("--set <NAME=VALUE>") && h.contains("Exits 0"), "{h}");
    let h = blastwall(&["serve", "--help"], "", &dir).out;
    assert!(h.contains("Replaces the policy's `[defaults] mode`"), "{h}");
}

#[test]
fn man_page_and_completions_come_from_the_command_definitions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let man = blastwall(&["generate", "man"], "", &dir);
    assert_eq!(man.code, 0, "{}", man.err);
    assert!(
        man.out.starts_with(".ie") || man.out.contains(".TH blastwall 1"),
        "{}",
        &man.out[..200.min(man.out.len())]
    );
    for sub in ["serve", "check", "demo", "generate"] {
        assert!(man.out.contains(sub), "man page lacks {sub}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let c = blastwall(&["generate", "completions", shell], "", &dir);
        assert_eq!(c.code, 0, "{}", c.err);
        assert!(c.out.contains("serve") && c.out.contains("check") && c.out.contains("policy"), "{shell}: {}", c.out);
    }
}

#[test]
fn an_os_error_is_said_once_and_logs_have_no_colour_codes() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let r = blastwall(&["serve", "--listen", &addr, "--upstream", "127.0.0.1:1"], "", &dir);
    assert_ne!(r.code, 0);
    assert_eq!(r.err.matches("os error 98").count(), 1, "{}", r.err);
    assert!(r.err.contains("policy loaded"), "a log line is written: {}", r.err);
    assert!(!r.err.contains('\u{1b}'), "colour codes in a log that is not a terminal: {:?}", r.err);
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn pointers_into_the_readme_name_sections_that_exist() {
    let readme = repo_file("README.md");
    let headings: Vec<&str> =
        readme.lines().filter_map(|l| l.strip_prefix('#')).map(|l| l.trim_start_matches('#').trim()).collect();
    for file in
        ["policies/default.toml", "policies/incident.toml", "examples/incident-cleanup.sql", "docker/compose.yml"]
    {
        let text = repo_file(file);
        for (i, _) in text.match_indices("README") {
            let rest = &text[i..text[i..].find('\n').map_or(text.len(), |n| i + n)];
            if let Some(q) = rest.find('"') {
                let section = rest[q + 1..].split('"').next().unwrap();
                assert!(
                    headings.contains(&section),
                    "{file} points to README section {section:?}, which does not exist"
                );
            }
        }
    }
}

#[test]
fn shipped_policy_says_what_dry_run_does() {
    let text = repo_file("policies/default.toml");
    assert!(!text.contains("never run"), "dry-run runs the statement and rolls it back");
    assert!(text.contains("roll it back"));
}

#[test]
fn readme_transcripts_show_the_superusers_prompt() {
    // The demo connects as postgres, a superuser: psql's prompt ends in `=#`.
    let readme = repo_file("README.md");
    assert!(readme.contains("postgres=# DELETE"));
    assert!(!readme.contains("postgres=> "), "psql shows postgres=# for a superuser");
}

/// `scripts/install-deps --dry-run` on a machine whose only libraries are `libs` and whose
/// tools are all present.
fn install_deps_missing(libs: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    for tool in ["cc", "clang", "initdb", "psql", "cargo", "ldconfig"] {
        let p = bin.join(tool);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        Command::new("chmod").arg("755").arg(&p).status().unwrap();
    }
    for l in libs {
        std::fs::write(lib.join(l), "").unwrap();
    }
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps"))
        .arg("--dry-run")
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("INSTALL_DEPS_LIB_DIRS", &lib)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn install_deps_does_not_take_libclang_cpp_for_libclang() {
    assert!(install_deps_missing(&["libclang-cpp.so.14"]).contains("libclang-dev"));
    assert!(install_deps_missing(&["libclang-14.so.1", "libclang-cpp.so.14"]).contains("nothing missing"));
    assert!(install_deps_missing(&["libclang.so"]).contains("nothing missing"));
}
