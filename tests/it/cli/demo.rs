//! `blastwall demo` as a user runs it: it takes its port before initdb, its instructions work
//! from where it was started, and however it is stopped (Ctrl-C, `kill`, a closed terminal,
//! `kill -9`) its PostgreSQL and its folder go away.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Demo {
    child: Child,
    dir: PathBuf,
    pg_port: u16,
    text: String,
}

impl Demo {
    /// Sends `signal` to the demo and waits for it to exit.
    fn stop(&mut self, signal: &str) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Demo {
    /// A failed test still stops its demo.
    fn drop(&mut self) {
        self.stop("-TERM");
    }
}

/// Starts the demo on a free port in `cwd`, with `blastwall` not on PATH, and reads its
/// instructions.
fn start(cwd: &Path) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .current_dir(cwd)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Press Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the demo ended early: {text}");
        }
        text.push_str(&line);
    }
    // Keep reading (and discarding) so the demo never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let dir = text.split("(throwaway, ").nth(1).unwrap().split(')').next().unwrap();
    let pg_port = text.split(") on 127.0.0.1:").nth(1).unwrap().split(|c: char| !c.is_ascii_digit()).next().unwrap();
    Demo { child, dir: PathBuf::from(dir), pg_port: pg_port.parse().unwrap(), text }
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle) && !c.contains("while kill -0"))
        .collect()
}

fn stopped_by(signal: &str, wait: Duration) {
    let cwd = tempfile::tempdir().unwrap();
    let mut demo = start(cwd.path());
    let data = demo.dir.join("data").display().to_string();
    assert!(demo.dir.is_dir());
    assert!(!processes_mentioning(&data).is_empty(), "the demo's PostgreSQL runs");
    demo.stop(signal);
    let deadline = Instant::now() + wait;
    while (demo.dir.exists() || !processes_mentioning(&data).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!demo.dir.exists(), "{signal}: the demo's folder {} is left", demo.dir.display());
    assert_eq!(processes_mentioning(&data), Vec::<String>::new(), "{signal}: its PostgreSQL still runs");
    assert!(std::net::TcpStream::connect(("127.0.0.1", demo.pg_port)).is_err(), "{signal}: port still open");
}

#[test]
fn demo_cleans_up_on_sigint() {
    stopped_by("-INT", Duration::from_secs(20));
}

#[test]
fn demo_cleans_up_on_sigterm() {
    stopped_by("-TERM", Duration::from_secs(20));
}

#[test]
fn demo_cleans_up_on_sighup() {
    stopped_by("-HUP", Duration::from_secs(20));
}

#[test]
fn demo_killed_outright_is_cleaned_up_by_its_watchdog() {
    stopped_by("-KILL", Duration::from_secs(30));
}

#[test]
fn demo_instructions_work_from_where_it_was_started_and_its_password_file_is_private() {
    let cwd = tempfile::tempdir().unwrap();
    let mut demo = start(cwd.path());
    let mode =
        std::fs::metadata(demo.dir.join("pw")).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    let line = demo.text.lines().find(|l| l.contains(" check --policy ")).unwrap().trim().to_string();
    assert!(!line.contains("| blastwall "), "blastwall is not on PATH here: {line}");
    let o = Command::new("sh")
        .args(["-c", &line])
        .current_dir(cwd.path())
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    demo.stop("-TERM");
    assert_eq!(o.status.code(), Some(1), "{line}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rule protected-range"));
    assert_eq!(mode.unwrap() & 0o777, 0o600, "the password file is readable by others");
}

#[test]
fn demo_with_its_port_taken_fails_before_initdb_and_names_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_blastwall")).args(["demo", "--listen", &addr]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--listen") && err.contains(&addr), "{err}");
    assert!(!err.contains("starting a throwaway PostgreSQL"), "it went on to initdb: {err}");
}

/// The throwaway server's port is picked before initdb, which takes seconds: when another
/// process has bound it meanwhile (a second demo, a parallel test — CI saw it), the server is
/// started on another port rather than the demo ending with "pg_ctl failed".
#[test]
fn a_throwaway_server_whose_port_was_taken_meanwhile_starts_on_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let opts = blastwall::pgtemp::PgOptions {
        password: "pw".into(),
        conf: vec![format!("port = {busy}")],
        ..Default::default()
    };
    let pg = blastwall::pgtemp::TempPostgres::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(pg.port, busy);
    assert!(pg.log().contains("could not bind"), "the first start met the taken port:\n{}", pg.log());
    let out = Command::new(crate::harness::psql_path())
        .args(["-X", "-At", "-d", &pg.admin_conninfo("postgres"), "-c", "SHOW port"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        pg.port.to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
