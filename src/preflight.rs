//! Checks an operator runs without starting the proxy: `blastwall config check FILE` (the
//! config, its listen/upstream addresses, its policy files and TLS files, each problem as
//! `file:line: message`) and `blastwall health` (the admin endpoint's `/readyz`, for
//! container HEALTHCHECKs and scripts).
//!
//! Owns: those two commands' logic and output. Does not own: parsing the config (`config`),
//! policies (`policy`), TLS material (`tls`), or serving `/readyz` (`admin`).

use crate::config::{Config, ConfigError};
use std::path::Path;
use std::time::Duration;

/// Validates a config file and everything it names. Prints a summary (stdout) or every
/// problem found (stderr); returns the exit code: 0 valid, 1 not.
pub fn config_check(path: &Path) -> i32 {
    let problems = match check(path) {
        Ok(summary) => {
            println!("{}: ok; {summary}", path.display());
            return 0;
        }
        Err(p) => p,
    };
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!("{}: {} problem(s); blastwall would not start", path.display(), problems.len());
    1
}

fn check(path: &Path) -> Result<String, Vec<String>> {
    let cfg = Config::load(path).map_err(|e| vec![config_problem(path, &e)])?;
    let mut problems = Vec::new();
    let policy = if cfg.policies.is_empty() {
        crate::policy::file::compile(&[(Path::new("<built-in policies/default.toml>"), crate::policy::DEFAULT_POLICY)])
    } else {
        crate::policy::file::load(&cfg.policies)
    };
    let policy = policy.map_err(|e| problems.push(policy_problem(&e))).ok();
    if let Some(t) = &cfg.tls {
        if let Err(e) = crate::tls::acceptor(t) {
            problems.push(format!("{}:{}: [tls] {e}", path.display(), line_of_key(path, "cert").unwrap_or(1)));
        }
    }
    if let Err(e) = crate::tls::connector(&cfg.upstream_tls, &cfg.upstream_host) {
        problems.push(format!("{}:{}: [upstream_tls] {e}", path.display(), line_of_key(path, "mode").unwrap_or(1)));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let listen: Vec<String> = cfg.listen_addresses().unwrap_or_default().iter().map(|a| a.to_string()).collect();
    let policy = policy.map(|p| format!("policy {} ({}, {} table(s))", p.hash, p.source_names(), p.tables.len()));
    Ok(format!(
        "listen {}; upstream {}; {}; console {}",
        listen.join(", "),
        cfg.upstream_display(),
        policy.unwrap_or_default(),
        if cfg.console.is_some() { "on" } else { "off" }
    ))
}

/// `file:line: message` for a config error (line 1 when the error names no place).
fn config_problem(path: &Path, e: &ConfigError) -> String {
    let line = match e {
        ConfigError::Read { .. } => None,
        ConfigError::Invalid { message, .. } => line_in_message(message),
        ConfigError::Value { key, .. } => {
            key.rsplit(['.', '/']).find_map(|k| line_of_key(path, k.trim_start_matches('-')))
        }
    };
    format!("{}:{}: {e}", path.display(), line.unwrap_or(1))
}

fn policy_problem(e: &crate::policy::PolicyError) -> String {
    use crate::policy::PolicyError as P;
    match e {
        P::Value { path, line, .. } => format!("{}:{line}: {e}", path.display()),
        P::Invalid { path, message } => {
            format!("{}:{}: {e}", path.display(), line_in_message(message).unwrap_or(1))
        }
        P::Read { path, .. } => format!("{}: {e}", path.display()),
        P::EmptyFolder(path) => format!("{}: {e}", path.display()),
    }
}

/// The line a TOML parse error names ("… at line 3, column 1").
fn line_in_message(message: &str) -> Option<usize> {
    let rest = &message[message.find("line ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The first line that sets `key` (`key = …`).
fn line_of_key(path: &Path, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .position(|l| l.trim_start().strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')))
        .map(|i| i + 1)
}

/// Asks the admin endpoint's `/readyz`; returns the exit code: 0 when it answers 200.
pub fn health(admin: &str, timeout: Duration) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("blastwall health: {e}");
            return 1;
        }
    };
    match rt.block_on(async { tokio::time::timeout(timeout, readyz(admin)).await }) {
        Ok(Ok((200, body))) => {
            print!("{body}");
            0
        }
        Ok(Ok((status, body))) => {
            eprint!("blastwall health: {admin} answered {status}: {body}");
            1
        }
        Ok(Err(e)) => {
            eprintln!("blastwall health: cannot ask {admin}: {e}");
            1
        }
        Err(_) => {
            eprintln!("blastwall health: {admin} did not answer within {}s", timeout.as_secs());
            1
        }
    }
}

async fn readyz(admin: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await?;
    s.write_all(format!("GET /readyz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bw.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:6432\"\nmax_connections = 0\n").unwrap();
        let p = check(&f).unwrap_err();
        assert!(p[0].starts_with(&format!("{}:2: ", f.display())), "{p:?}");
        std::fs::write(&f, "listen = \"127.0.0.1:6432\"\n\nlsiten = 1\n").unwrap();
        let p = check(&f).unwrap_err();
        assert!(p[0].starts_with(&format!("{}:3: ", f.display())), "{p:?}");
        std::fs::write(dir.path().join("p.toml"), "[[table]]\nname = \"t\"\nmax_delete_rows = \"x\"\n").unwrap();
        std::fs::write(&f, "policies = [\"p.toml\"]\n[tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n").unwrap();
        let p = check(&f).unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("p.toml:3:"), "{p:?}");
        assert!(p[1].contains("bw.toml:3:") && p[1].contains("missing.pem"), "{p:?}");
        std::fs::write(dir.path().join("p.toml"), "[[table]]\nname = \"t\"\nprotected_columns = [\"id\"]\n").unwrap();
        std::fs::write(&f, "policies = [\"p.toml\"]\nupstream = \"/run/postgresql\"\n").unwrap();
        let ok = check(&f).unwrap();

        assert!(ok.contains("/run/postgresql/.s.PGSQL.5432") && ok.contains("1 table"), "{ok}");
    }
}
