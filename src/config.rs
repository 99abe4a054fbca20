//! The proxy's configuration file: TOML parsed into a raw type, then validated into [`Config`].
//!
//! Owns: reading the file, unknown-key and value errors with file/line/key, command-line
//! overrides, and defaults. Does not own: policy files (see `policy`), TLS material loading
//! (see `tls`), or anything done with the values.

use crate::listen::{parse_address, socket_port, Address, DEFAULT_PORT};
use crate::policy::Mode;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("invalid setting {key}: {message}")]
    Value { key: &'static str, message: String },
}

/// The file as written; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<RawListen>,
    upstream: Option<String>,
    mode: Option<Mode>,
    #[serde(default)]
    policies: Vec<PathBuf>,
    watch_policies: Option<bool>,
    max_connections: Option<usize>,
    threads: Option<usize>,
    max_frame_bytes: Option<usize>,
    max_analysis_bytes: Option<usize>,
    connect_timeout_secs: Option<u64>,
    startup_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    precheck_timeout_ms: Option<u64>,
    allow_replication: Option<bool>,
    tls: Option<RawClientTls>,
    upstream_tls: Option<RawUpstreamTls>,
    admin: Option<String>,
    audit: Option<RawAudit>,
    console: Option<RawConsole>,
    identities_file: Option<PathBuf>,
    ddl_notify: Option<RawDdlNotify>,
}

/// `[ddl_notify]`: the role whose connections listen for DDL run on the server directly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDdlNotify {
    user: String,
    /// The environment variable holding its password (none: trust, peer or cert).
    password_env: Option<String>,
}

/// The role blastwall listens as, one connection per database it guards, for the
/// notifications of the event trigger `blastwall init-state` installs (`catalog::listener`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlNotifyConfig {
    pub user: String,
    /// The environment variable holding its password, read at each connection.
    pub password_env: Option<String>,
}

/// `listen = "ADDR"` or `listen = ["ADDR", …]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawListen {
    One(String),
    Many(Vec<String>),
}

/// The admin console (the virtual database `blastwall`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    admins: Vec<String>,
    auth_database: Option<String>,
}

/// Who may use the admin console, and where their passwords are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Roles allowed in; they authenticate against the server as for any database.
    pub admins: Vec<String>,
    /// The database the console's logins authenticate to (the server checks the password,
    /// pg_hba.conf and CONNECT there).
    pub auth_database: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// `stdout`, or a file path.
    output: String,
    max_bytes: Option<u64>,
    keep: Option<usize>,
    #[serde(default)]
    raw_statements: bool,
}

/// Where the audit trail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `None`: standard output.
    pub file: Option<PathBuf>,
    /// Rotate when the file would grow past this (0: never; reopen on SIGHUP instead).
    pub max_bytes: u64,
    pub keep: usize,
    /// Log the statement's raw text instead of its normalized form (constants replaced).
    pub raw_statements: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientTls {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    require: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTls {
    mode: UpstreamSslMode,
    ca: Option<PathBuf>,
    server_name: Option<String>,
}

/// How the proxy secures its connection to the server, with libpq's `sslmode` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamSslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Client-facing TLS: certificate chain and key files, and whether plaintext is refused.
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require: bool,
}

#[derive(Debug, Clone)]
pub struct UpstreamTlsConfig {
    pub mode: UpstreamSslMode,
    pub ca: Option<PathBuf>,
    /// The name checked against the server certificate (defaults to the upstream host).
    pub server_name: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect: one address, or several separated by commas. Each is
    /// `HOST:PORT`, a Unix socket path, or a folder (socket `.s.PGSQL.<port>` in it, the port of
    /// the first TCP address, else 6432). See [`Config::listen_addresses`].
    pub listen: String,
    /// The server's host, or its Unix socket: the socket file, or the folder holding
    /// `.s.PGSQL.<upstream_port>` (a path starting with `/` or `.`).
    pub upstream_host: String,
    pub upstream_port: u16,
    pub mode: Option<Mode>,
    pub policies: Vec<PathBuf>,
    /// Reload the policy files when they change (checked every two seconds); SIGHUP always does.
    pub watch_policies: bool,
    pub max_connections: usize,
    /// Session event loops, one thread each: 0 = one per core; 1 = everything on one thread
    /// (as PgBouncer).
    pub threads: usize,
    pub max_frame_bytes: usize,
    /// What all parses running at one time may take (`analyze::budget`).
    pub max_analysis_bytes: usize,
    pub connect_timeout: Duration,
    pub startup_timeout: Duration,
    /// `None`: idle sessions are kept as long as the client likes, as on the server.
    pub idle_timeout: Option<Duration>,
    pub shutdown_grace: Duration,
    /// `statement_timeout` for statements run inside a pre-check transaction that blastwall
    /// opened (`None`: the session's own).
    pub precheck_timeout: Option<Duration>,
    /// The most bytes of counted writes' replies held across all sessions (`precheck::hold`).
    pub max_held_bytes: usize,
    pub allow_replication: bool,
    pub tls: Option<ClientTlsConfig>,
    pub upstream_tls: UpstreamTlsConfig,
    /// The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); off when `None`.
    pub admin: Option<String>,
    /// The audit trail; off when `None`.
    pub audit: Option<AuditConfig>,
    /// The admin console; off when `None`.
    pub console: Option<ConsoleConfig>,
    /// Where the OIDs of policy tables are kept across restarts (JSON lines), so that a table
    /// renamed while blastwall was not running keeps its rules; `None`: kept in memory only.
    pub identities_file: Option<PathBuf>,
    /// Listen for DDL run on the server directly (`[ddl_notify]`); `None`: learned within 30 s.
    pub ddl_notify: Option<DdlNotifyConfig>,
}

/// Overrides given on the command line; each wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub policies: Vec<PathBuf>,
    pub mode: Option<Mode>,
    pub admin: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:6432".into(),
            upstream_host: "127.0.0.1".into(),
            upstream_port: 5432,
            mode: None,
            policies: Vec::new(),
            watch_policies: true,
            max_connections: 1000,
            threads: 0,
            max_frame_bytes: 64 * 1024 * 1024,
            max_analysis_bytes: crate::analyze::budget::DEFAULT_LIMIT,
            connect_timeout: Duration::from_secs(5),
            startup_timeout: Duration::from_secs(60),
            idle_timeout: None,
            shutdown_grace: Duration::from_secs(30),
            precheck_timeout: None,
            max_held_bytes: crate::precheck::hold::TOTAL_HOLD,
            allow_replication: false,
            tls: None,
            upstream_tls: UpstreamTlsConfig { mode: UpstreamSslMode::Prefer, ca: None, server_name: None },
            admin: None,
            audit: None,
            console: None,
            identities_file: None,
            ddl_notify: None,
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative policy and TLS paths are taken relative
    /// to the file's folder, so a config works from any working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Invalid { path: path.to_owned(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut c = Config::default();
        match raw.listen {
            Some(RawListen::One(l)) => c.listen = l,
            Some(RawListen::Many(l)) => c.listen = l.join(","),
            None => {}
        }
        if let Some(u) = raw.upstream {
            (c.upstream_host, c.upstream_port) = split_upstream(&u, "upstream")?;
        }
        c.mode = raw.mode;
        c.policies = raw.policies.into_iter().map(rel).collect();
        c.watch_policies = raw.watch_policies.unwrap_or(true);
        if let Some(n) = raw.max_connections {
            c.max_connections = n;
        }
        if let Some(n) = raw.threads {
            c.threads = n;
        }
        if let Some(n) = raw.max_frame_bytes {
            c.max_frame_bytes = n;
        }
        if let Some(n) = raw.max_analysis_bytes {
            c.max_analysis_bytes = n;
        }
        if let Some(s) = raw.connect_timeout_secs {
            c.connect_timeout = Duration::from_secs(s);
        }
        if let Some(s) = raw.startup_timeout_secs {
            c.startup_timeout = Duration::from_secs(s);
        }
        c.idle_timeout = raw.idle_timeout_secs.filter(|&s| s > 0).map(Duration::from_secs);
        if let Some(s) = raw.shutdown_grace_secs {
            c.shutdown_grace = Duration::from_secs(s);
        }
        c.allow_replication = raw.allow_replication.unwrap_or(false);
        c.precheck_timeout = raw.precheck_timeout_ms.filter(|&m| m > 0).map(Duration::from_millis);
        c.tls = raw.tls.map(|t| ClientTlsConfig { cert: rel(t.cert), key: rel(t.key), require: t.require });
        if let Some(u) = raw.upstream_tls {
            c.upstream_tls = UpstreamTlsConfig { mode: u.mode, ca: u.ca.map(rel), server_name: u.server_name };
        }
        c.admin = raw.admin;
        c.identities_file = raw.identities_file.map(rel);
        c.ddl_notify = raw.ddl_notify.map(|n| DdlNotifyConfig { user: n.user, password_env: n.password_env });
        c.console = raw.console.map(|k| ConsoleConfig {
            admins: k.admins,
            auth_database: k.auth_database.unwrap_or_else(|| "postgres".into()),
        });
        c.audit = raw.audit.map(|a| AuditConfig {
            file: (a.output != "stdout").then(|| rel(PathBuf::from(&a.output))),
            max_bytes: a.max_bytes.unwrap_or(100 * 1024 * 1024),
            keep: a.keep.unwrap_or(5),
            raw_statements: a.raw_statements,
        });
        c.validate()?;
        Ok(c)
    }

    /// Applies command-line overrides and validates the result again.
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(l) = o.listen {
            self.listen = l;
        }
        if let Some(u) = o.upstream {
            (self.upstream_host, self.upstream_port) = split_upstream(&u, "--upstream")?;
        }
        if !o.policies.is_empty() {
            self.policies = o.policies;
        }
        if o.mode.is_some() {
            self.mode = o.mode;
        }
        if o.admin.is_some() {
            self.admin = o.admin;
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen_addresses()?;
        if listen.is_empty() {
            return Err(ConfigError::Value { key: "listen", message: "needs at least one address".into() });
        }
        if let Some(a) = &self.admin {
            split_host_port(a, "admin")?;
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Value { key: "max_connections", message: "must be at least 1".into() });
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > 1 << 30 {
            return Err(ConfigError::Value {
                key: "max_frame_bytes",
                message: "must be between 1024 and 1073741824 (the server's own limit is 1 GiB)".into(),
            });
        }
        if self.max_analysis_bytes < 1 << 20 {
            return Err(ConfigError::Value {
                key: "max_analysis_bytes",
                message: "must be at least 1048576 (1 MiB)".into(),
            });
        }
        if self.connect_timeout.is_zero() || self.startup_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: "connect_timeout_secs/startup_timeout_secs",
                message: "must be at least 1 second".into(),
            });
        }
        let m = self.upstream_tls.mode;
        if matches!(m, UpstreamSslMode::VerifyCa | UpstreamSslMode::VerifyFull) && self.upstream_tls.ca.is_none() {
            return Err(ConfigError::Value {
                key: "upstream_tls.ca",
                message: "verify-ca and verify-full need a CA file".into(),
            });
        }
        Ok(())
    }

    pub fn upstream_display(&self) -> String {
        self.upstream_address().to_string()
    }

    /// The server's address: TCP, or its Unix socket.
    pub fn upstream_address(&self) -> Address {
        upstream_address(&self.upstream_host, self.upstream_port)
    }

    /// The listen addresses, in order.
    pub fn listen_addresses(&self) -> Result<Vec<Address>, ConfigError> {
        let parts: Vec<&str> = self.listen.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        let tcp_port = parts.iter().find_map(|p| match parse_address(p, None) {
            Ok(Address::Tcp { port, .. }) => Some(port),
            _ => None,
        });
        parts
            .iter()
            .map(|p| {
                // A folder takes the TCP port; a TCP address must give its own.
                let folder_port = (p.starts_with('/') || p.starts_with('.')).then_some(tcp_port.unwrap_or(6432));
                parse_address(p, folder_port).map_err(|message| ConfigError::Value { key: "listen", message })
            })
            .collect()
    }
}

/// The server's address from the config's host and port: a host starting with `/` is a Unix
/// socket file, or the folder that holds `.s.PGSQL.<port>`.
pub fn upstream_address(host: &str, port: u16) -> Address {
    if is_socket_path(host) {
        if let Ok(a) = parse_address(host, Some(port)) {
            return a;
        }
    }
    Address::Tcp { host: host.to_string(), port }
}

/// Whether an upstream host is a Unix socket (a path) rather than a host name.
pub fn is_socket_path(host: &str) -> bool {
    host.starts_with('/') || host.starts_with('.')
}

/// `upstream` as written: `HOST:PORT`, `HOST` (port 5432), or a Unix socket path or folder.
/// Returns the host (a socket file path for Unix sockets) and the port.
fn split_upstream(s: &str, key: &'static str) -> Result<(String, u16), ConfigError> {
    match parse_address(s, Some(DEFAULT_PORT)).map_err(|message| ConfigError::Value { key, message })? {
        Address::Tcp { host, port } => Ok((host, port)),
        // A folder stays a folder: the port (5432 unless set) picks the socket in it.
        Address::Unix(_) => Ok((s.trim().to_string(), socket_port(Path::new(s.trim())).unwrap_or(DEFAULT_PORT))),
    }
}

/// Splits `host:port` (or `[v6]:port`).
pub fn split_host_port(s: &str, key: &'static str) -> Result<(String, u16), ConfigError> {
    let bad = || ConfigError::Value { key, message: format!("{s:?} is not HOST:PORT") };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_line_and_key() {
        let e = Config::from_toml("listen = \"127.0.0.1:1\"\nlsiten = 3\n", Path::new("x.toml")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("x.toml") && s.contains("line 2") && s.contains("lsiten"), "{s}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::from_toml(
            "upstream = \"db:5433\"\npolicies = [\"p\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
            Path::new("/etc/bw/bw.toml"),
        )
        .unwrap();
        assert_eq!(c.policies, vec![PathBuf::from("/etc/bw/p")]);
        assert_eq!(c.upstream_port, 5433);
        assert_eq!(c.tls.unwrap().cert, PathBuf::from("/etc/bw/c.pem"));
    }

    #[test]
    fn bad_values() {
        assert!(Config::from_toml("upstream = \"nope:x\"", Path::new("a")).is_err());
        assert!(Config::from_toml("listen = \"nope\"", Path::new("a")).is_err());
        assert!(Config::from_toml("mode = \"loud\"", Path::new("a")).is_err());
        assert!(Config::from_toml("[upstream_tls]\nmode = \"verify-full\"", Path::new("a")).is_err());
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn upstream_default_port_and_unix_sockets() {
        let c = Config::from_toml("upstream = \"db.internal\"", Path::new("a")).unwrap();
        assert_eq!(c.upstream_address(), Address::Tcp { host: "db.internal".into(), port: 5432 });
        let c = Config::from_toml("upstream = \"/var/run/postgresql\"", Path::new("a")).unwrap();
        assert_eq!(c.upstream_address(), Address::Unix("/var/run/postgresql/.s.PGSQL.5432".into()));
        let c = Config::from_toml("upstream = \"/tmp/.s.PGSQL.5433\"", Path::new("a")).unwrap();
        assert_eq!(c.upstream_address(), Address::Unix("/tmp/.s.PGSQL.5433".into()));
        assert_eq!(c.upstream_port, 5433);
    }

    #[test]
    fn several_listen_addresses() {
        let c = Config::from_toml("listen = [\"127.0.0.1:7000\", \"/run/bw\"]", Path::new("a")).unwrap();
        assert_eq!(
            c.listen_addresses().unwrap(),
            vec![Address::Tcp { host: "127.0.0.1".into(), port: 7000 }, Address::Unix("/run/bw/.s.PGSQL.7000".into())]
        );
    }
}
