//! The console's commands and their output as PostgreSQL result sets: RowDescription (every
//! column `text` or `int8`), DataRows, CommandComplete.
//!
//! Owns: the command words and the columns of each SHOW. Does not own: the records shown
//! (`state`, `metrics`, the policy) or the actions taken (`server`).

use crate::shared::Shared;
use crate::wire::messages::ProxyMessage;
use bytes::{BufMut, BytesMut};
use std::sync::Arc;
use std::time::SystemTime;

/// Runs every `;`-separated command of a simple query; stops at the first error, as the
/// server stops a multi-statement query.
pub(super) fn run(shared: &Arc<Shared>, sql: &str, out: &mut BytesMut) {
    let commands: Vec<&str> = sql.split(';').map(str::trim).filter(|c| !c.is_empty()).collect();
    if commands.is_empty() {
        out.extend_from_slice(&message(b'I', &[]));
        return;
    }
    for c in commands {
        if let Err(e) = one(shared, c, out) {
            out.extend_from_slice(&e.encode());
            return;
        }
    }
}

fn one(shared: &Arc<Shared>, command: &str, out: &mut BytesMut) -> Result<(), ProxyMessage> {
    let words: Vec<String> = command.split_whitespace().map(|w| w.to_ascii_uppercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["SHOW", "SESSIONS"] => sessions(shared).encode("SHOW", out),
        ["SHOW", "POLICY"] => policy(shared).encode("SHOW", out),
        ["SHOW", "DECISIONS"] => decisions(shared).encode("SHOW", out),
        ["SHOW", "STATS"] => stats(shared).encode("SHOW", out),
        ["SHOW", "HELP"] => help().encode("SHOW", out),
        ["RELOAD"] => {
            shared.reload_all().map_err(crate::said::console_reload_failed)?;
            complete("RELOAD", out);
        }
        ["PAUSE"] => {
            shared.console.pause.set(true);
            tracing::warn!("paused from the console: relayed sessions' next queries wait until RESUME");
            complete("PAUSE", out);
        }
        ["RESUME"] => {
            shared.console.pause.set(false);
            tracing::info!("resumed from the console");
            complete("RESUME", out);
        }
        ["KILL", id] => {
            let n: u64 = id.parse().map_err(|_| crate::said::console_kill_not_a_number(id))?;
            if !shared.console.sessions.contains_key(&n) || !shared.phase.kill(n) {
                return Err(crate::said::console_no_session(n));
            }
            tracing::warn!(session = n, "session killed from the console");
            complete("KILL", out);
        }
        _ => return Err(crate::said::console_unknown_command(command)),
    }
    Ok(())
}

/// The commands and what they do (`SHOW HELP`).
const COMMANDS: &[(&str, &str)] = &[
    ("SHOW SESSIONS", "client sessions: id, user, database, application_name, client, since"),
    ("SHOW POLICY", "the policy in force: defaults, tables, roles, applications, with files and lines"),
    ("SHOW DECISIONS", "recent guarded decisions, newest first"),
    ("SHOW STATS", "counters since start"),
    ("SHOW HELP", "this list"),
    ("RELOAD", "reload policy files, TLS certificate and key, reopen the audit file (as SIGHUP)"),
    ("PAUSE", "relayed sessions' next queries wait until RESUME"),
    ("RESUME", "let paused sessions go on"),
    ("KILL <session>", "end one session now (57P01), cancelling its running query"),
];

fn help() -> Table {
    let mut t = Table::new(&[("command", Type::Text), ("description", Type::Text)]);
    t.rows = COMMANDS.iter().map(|(c, d)| vec![text(*c), text(*d)]).collect();
    t
}

#[derive(Clone, Copy)]
enum Type {
    Text,
    Int8,
}

struct Table {
    columns: Vec<(&'static str, Type)>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    fn new(columns: &[(&'static str, Type)]) -> Self {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    fn encode(&self, tag: &str, out: &mut BytesMut) {
        let mut desc = BytesMut::new();
        desc.put_i16(self.columns.len() as i16);
        for (name, ty) in &self.columns {
            desc.put_slice(name.as_bytes());
            desc.put_u8(0);
            desc.put_i32(0);
            desc.put_i16(0);
            let (oid, len) = match ty {
                Type::Text => (25, -1),
                Type::Int8 => (20, 8),
            };
            desc.put_u32(oid);
            desc.put_i16(len);
            desc.put_i32(-1);
            desc.put_i16(0);
        }
        out.extend_from_slice(&message(b'T', &desc));
        for row in &self.rows {
            let mut d = BytesMut::new();
            d.put_i16(row.len() as i16);
            for v in row {
                match v {
                    None => d.put_i32(-1),
                    Some(v) => {
                        d.put_i32(v.len() as i32);
                        d.put_slice(v.as_bytes());
                    }
                }
            }
            out.extend_from_slice(&message(b'D', &d));
        }
        complete(&format!("{tag} {}", self.rows.len()), out);
    }
}

fn complete(tag: &str, out: &mut BytesMut) {
    let mut b = tag.as_bytes().to_vec();
    b.push(0);
    out.extend_from_slice(&message(b'C', &b));
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(tag);
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn text(s: impl Into<String>) -> Option<String> {
    Some(s.into())
}

fn sessions(shared: &Shared) -> Table {
    use Type::*;
    let mut t = Table::new(&[
        ("session", Int8),
        ("user", Text),
        ("database", Text),
        ("application_name", Text),
        ("client", Text),
        ("connected_at", Text),
        ("seconds", Int8),
    ]);
    let mut rows: Vec<_> = shared.console.sessions.iter().map(|e| (*e.key(), e.value().clone())).collect();
    rows.sort_by_key(|(id, _)| *id);
    for (id, s) in rows {
        let secs = s.since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
        t.rows.push(vec![
            text(id.to_string()),
            text(s.user),
            text(s.database),
            text(s.application_name),
            text(s.client),
            text(time(s.since)),
            text(secs.to_string()),
        ]);
    }
    t
}

fn policy(shared: &Shared) -> Table {
    use Type::*;
    let p = shared.guard.policy();
    let mut t = Table::new(&[
        ("kind", Text),
        ("name", Text),
        ("mode", Text),
        ("require_where", Text),
        ("max_delete_rows", Int8),
        ("max_update_rows", Int8),
        ("protected_columns", Text),
        ("forbid", Text),
        ("source", Text),
    ]);
    let n = |v: Option<u64>| v.map(|v| v.to_string());
    t.rows.push(vec![
        text("defaults"),
        text(format!("policy {}", p.hash)),
        text(p.mode.as_str()),
        text(p.require_where.to_string()),
        n(p.max_delete_rows),
        n(p.max_update_rows),
        None,
        None,
        text(p.source_names()),
    ]);
    for tp in &p.tables {
        t.rows.push(vec![
            text("table"),
            text(tp.qualified()),
            tp.mode.map(|m| m.as_str().to_string()),
            tp.require_where.map(|b| b.to_string()),
            n(tp.max_delete_rows),
            n(tp.max_update_rows),
            text(tp.protected_columns.iter().cloned().collect::<Vec<_>>().join(", ")),
            text(tp.forbid.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>().join(", ")),
            text(tp.source.clone()),
        ]);
    }
    // What is done with statements no parser can see into ([opaque]): the action as the mode.
    for key in ["do", "call", "explain_analyze", "function_call", "functions", "unparseable"] {
        let action = format!("{:?}", p.opaque.for_key(key)).to_lowercase();
        t.rows.push(vec![text("opaque"), text(key), text(action), None, None, None, None, None, None]);
    }
    let mut subjects: Vec<_> = p.roles.iter().map(|(k, v)| ("role", k, v)).collect();
    subjects.extend(p.applications.iter().map(|(k, v)| ("application", k, v)));
    subjects.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (kind, name, s) in subjects {
        let overrides = if s.may_override { "may_override" } else { "" };
        t.rows.push(vec![
            text(kind),
            text(name.clone()),
            s.mode.map(|m| m.as_str().to_string()),
            None,
            None,
            None,
            None,
            text(overrides),
            None,
        ]);
    }
    t
}

fn decisions(shared: &Shared) -> Table {
    use Type::*;
    let mut t = Table::new(&[
        ("time", Text),
        ("session", Int8),
        ("user", Text),
        ("database", Text),
        ("decision", Text),
        ("rule", Text),
        ("mode", Text),
        ("statement", Text),
        ("message", Text),
    ]);
    for d in shared.console.decisions() {
        t.rows.push(vec![
            text(time(d.time)),
            text(d.session.to_string()),
            text(d.user),
            text(d.database),
            text(d.decision),
            d.rule,
            d.mode.map(str::to_string),
            text(d.statement),
            d.message,
        ]);
    }
    t
}

fn stats(shared: &Shared) -> Table {
    use Type::*;
    let m = &shared.metrics;
    let outcome = |o: &str| -> u64 {
        m.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "blastwall_decisions_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|x| x.get_label().iter().any(|l| l.name() == "outcome" && l.value() == o))
            .map(|x| x.get_counter().get_value() as u64)
            .sum()
    };
    let reloads = |r: &str| m.policy_reloads_total.with_label_values(&[r]).get();
    let count = m.precheck_seconds.get_sample_count();
    let avg_us = if count == 0 { 0 } else { (m.precheck_seconds.get_sample_sum() * 1e6 / count as f64) as u64 };
    let cols = [
        ("uptime_seconds", shared.console.started.elapsed().as_secs()),
        ("sessions_open", m.sessions_open.get().max(0) as u64),
        ("sessions_total", m.sessions_total.get()),
        ("statements_total", m.statements_total.get()),
        ("refused", outcome("refused")),
        ("warned", outcome("warned")),
        ("verified", outcome("verified")),
        ("dry_run", outcome("dry-run")),
        ("overridden", outcome("overridden")),
        ("prechecks", count),
        ("precheck_avg_us", avg_us),
        ("upstream_connect_errors", m.upstream_connect_errors_total.get()),
        ("policy_reloads_ok", reloads("ok")),
        ("policy_reloads_failed", reloads("failed")),
    ];
    let mut columns: Vec<(&'static str, Type)> = cols.iter().map(|(n, _)| (*n, Int8)).collect();
    columns.push(("paused", Text));
    let mut t = Table::new(&columns);
    let mut row: Vec<Option<String>> = cols.iter().map(|(_, v)| text(v.to_string())).collect();
    row.push(text(shared.console.pause.is_paused().to_string()));
    t.rows.push(row);
    t
}
