//! A throwaway PostgreSQL server from the installed server binaries: initdb into a temporary
//! folder, a free port on 127.0.0.1, scram-sha-256, optional TLS; stopped and removed on drop.
//! Used by `blastwall demo` and by the integration tests.
//!
//! Owns: finding the binaries, running them as the `postgres` user when we are root, and the
//! server's life. Does not own: what is loaded into it.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PgError {
    #[error("PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) or put their folder on PATH")]
    NotFound,
    #[error("{step} failed: {message}")]
    Step { step: String, message: String },
}

/// What the throwaway server should look like.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// The superuser `postgres`'s password (used over TCP with scram-sha-256).
    pub password: String,
    /// Certificate and key files (PEM) to enable `ssl = on`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// pg_hba.conf lines placed before the default `host all all 127.0.0.1/32 scram-sha-256`.
    pub hba: Vec<String>,
    /// Extra postgresql.conf lines.
    pub conf: Vec<String>,
}

pub struct TempPostgres {
    pub port: u16,
    pub bindir: PathBuf,
    pub socket_dir: PathBuf,
    data: PathBuf,
    dir: Option<tempfile::TempDir>,
    as_postgres: bool,
    running: bool,
}

fn is_root() -> bool {
    // SAFETY-free check: root's home and uid through `id -u`, to avoid a libc dependency.
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// The folder holding initdb and pg_ctl.
pub fn find_bindir() -> Result<PathBuf, PgError> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if has(&d) {
            return Ok(d);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|d| has(d)).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    if let Some(d) = versions.pop() {
        return Ok(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has(&d) {
                return Ok(d);
            }
        }
    }
    Err(PgError::NotFound)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

impl TempPostgres {
    pub fn start(opts: &PgOptions) -> Result<TempPostgres, PgError> {
        let bindir = find_bindir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("blastwall-pg-")
            .tempdir()
            .map_err(|e| PgError::Step { step: "creating a temporary folder".into(), message: e.to_string() })?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir_all(&socket_dir).map_err(|e| step("mkdir", e))?;
        let pwfile = dir.path().join("pw");
        write_private(&pwfile, &format!("{}\n", opts.password)).map_err(|e| step("writing the password file", e))?;
        let mut pg =
            TempPostgres { port: free_port(), bindir, socket_dir, data, dir: Some(dir), as_postgres, running: false };
        if as_postgres {
            let d = pg.root().display().to_string();
            run(Command::new("chown").args(["-R", "postgres:postgres", &d]), "chown")?;
        }
        let data = pg.data.display().to_string();
        let pw = pwfile.display().to_string();
        pg.run_pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--pwfile",
                &pw,
                "-A",
                "scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let mut conf = vec![
            format!("port = {}", pg.port),
            "listen_addresses = '127.0.0.1'".into(),
            format!("unix_socket_directories = '{}'", pg.socket_dir.display()),
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "full_page_writes = off".into(),
            "max_connections = 300".into(),
            "password_encryption = 'scram-sha-256'".into(),
        ];
        if let Some((cert, key)) = &opts.tls {
            let c = pg.data.join("server.crt");
            let k = pg.data.join("server.key");
            std::fs::copy(cert, &c).map_err(|e| step("copying the certificate", e))?;
            std::fs::copy(key, &k).map_err(|e| step("copying the key", e))?;
            run(Command::new("chmod").args(["600", &k.display().to_string()]), "chmod")?;
            if as_postgres {
                run(
                    Command::new("chown").args([
                        "postgres:postgres",
                        &c.display().to_string(),
                        &k.display().to_string(),
                    ]),
                    "chown",
                )?;
            }
            conf.push("ssl = on".into());
        }
        conf.extend(opts.conf.iter().cloned());
        append(&pg.data.join("postgresql.conf"), &conf.join("\n"))?;
        let mut hba = vec!["local all all trust".to_string()];
        hba.extend(opts.hba.iter().cloned());
        hba.push("host all all 127.0.0.1/32 scram-sha-256".into());
        std::fs::write(pg.data.join("pg_hba.conf"), hba.join("\n") + "\n")
            .map_err(|e| step("writing pg_hba.conf", e))?;
        pg.start_on_a_free_port()?;
        Ok(pg)
    }

    /// Starts the server. The port was free when it was picked, but initdb takes seconds and
    /// another process (a second demo, a parallel test) may have bound it since: when the
    /// server says it could not bind, a new port is picked (a later `port` line in
    /// postgresql.conf wins) and it is started again. Any other failure says what the log says.
    fn start_on_a_free_port(&mut self) -> Result<(), PgError> {
        let data = self.data.display().to_string();
        let log_path = self.root().join("server.log");
        let log = log_path.display().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seen = std::fs::read_to_string(&log_path).map(|l| l.len()).unwrap_or(0);
            match self.run_pg("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "start"]) {
                Ok(_) => {
                    self.running = true;
                    return Ok(());
                }
                Err(PgError::Step { step, message }) => {
                    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let this_try = text.get(seen..).unwrap_or_default();
                    if attempt < 5 && port_was_taken(this_try) {
                        self.port = free_port();
                        append(&self.data.join("postgresql.conf"), &format!("port = {}", self.port))?;
                        continue;
                    }
                    let tail: Vec<&str> = this_try.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(PgError::Step { step, message: format!("{message}server log:\n{}", tail.join("\n")) });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }

    /// Runs one of the server's binaries, as `postgres` when we are root.
    fn run_pg(&self, bin: &str, args: &[&str]) -> Result<Output, PgError> {
        let exe = self.bindir.join(bin).display().to_string();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.root());
        run(&mut cmd, bin)
    }

    /// A libpq connection string for the superuser over the Unix socket (trust).
    pub fn admin_conninfo(&self, db: &str) -> String {
        format!("host={} port={} user=postgres dbname={}", self.socket_dir.display(), self.port, db)
    }

    /// The server log, for diagnostics.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("server.log")).unwrap_or_default()
    }

    /// The folder that holds the server's files (removed on drop).
    pub fn dir(&self) -> &Path {
        self.root()
    }

    /// Keeps the files after the server stops (for debugging a failed test).
    pub fn keep(&mut self) -> PathBuf {
        self.dir.take().map(|d| d.keep()).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            let _ = self.run_pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Stops the server and removes its folder once `pid` is gone: a watchdog for servers
    /// whose owner never runs its destructor (a `static` in the tests, a demo killed with
    /// SIGKILL). It polls once a second.
    pub fn stop_when_process_exits(&self, pid: u32) {
        let data = self.data.display().to_string();
        let pg_ctl = self.bindir.join("pg_ctl").display().to_string();
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {pg_ctl} -D {data} -m immediate stop")
        } else {
            format!("{pg_ctl} -D {data} -m immediate stop")
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.root().display()
        );
        // Its own process group: Ctrl-C or a closed terminal, sent to the owner's group, must
        // not end the watchdog before it has done its work.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a file only its owner may read (mode 0600), as a password file must be.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Whether a server's log says it could not listen on its port because another process had it.
fn port_was_taken(log: &str) -> bool {
    let said = ["could not bind", "Address already in use", "could not create any TCP/IP sockets"];
    said.iter().any(|s| log.contains(s))
}

fn step(what: &str, e: std::io::Error) -> PgError {
    PgError::Step { step: what.into(), message: e.to_string() }
}

fn append(path: &Path, text: &str) -> Result<(), PgError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| step("opening postgresql.conf", e))?;
    writeln!(f, "\n{text}").map_err(|e| step("writing postgresql.conf", e))
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, PgError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| PgError::Step { step: what.into(), message: format!("{program}: {e}") })?;
    if !out.status.success() {
        return Err(PgError::Step {
            step: what.into(),
            message: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(out)
}
