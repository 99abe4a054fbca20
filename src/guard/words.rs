//! The words of blastwall's own judgements about a session: which `SET blastwall.mode` a
//! session may make and what its refusal suggests (never what it refuses), the note that an
//! override directive was ignored, and what a dry run says a TRUNCATE or DDL would do.
//!
//! Owns: those words and the session-mode rule. Does not own: the policy's rules (`policy`).

use crate::analyze::{Op, Statement};
use crate::policy::Mode;
use crate::wire::messages::ProxyMessage;

const HINT_SESSION_MODE: &str = "A session may ask for SET blastwall.mode = 'enforce' or 'dry-run', never for less.";
const HINT_SESSION_ENFORCE: &str =
    "In enforce mode a session may still ask for SET blastwall.mode = 'dry-run', the only stricter mode.";
const HINT_SESSION_DRY_RUN: &str =
    "dry-run is the strictest mode and lasts until the session ends: open a new session to change data.";

pub(super) const HINT_LONE_MODE: &str =
    "Send SET blastwall.mode in a message of its own, outside a transaction block (psql: on a line of its own, before BEGIN).";

/// Why a change of the session's mode to `m` cannot be made here, if it cannot: it must be
/// a message of its own (the rest was judged under the old mode, and a dry run's rollback
/// would undo it on the server) and outside a transaction block (a ROLLBACK would undo it on
/// the server while blastwall kept it).
pub(super) fn lone_mode_change(statements: usize, in_transaction: bool, m: Option<Mode>) -> Option<String> {
    let to = m.map_or("its default", |m| m.as_str());
    if statements > 1 {
        Some(format!("a change of blastwall.mode (to {to}) must be a message of its own"))
    } else if in_transaction {
        Some(format!("a change of blastwall.mode (to {to}) cannot be made inside a transaction block"))
    } else {
        None
    }
}

/// Validates `SET blastwall.mode`: a session may ask for `enforce` or `dry-run`, never for
/// less than it has (dry-run is the strictest); `RESET` is a no-op unless it would loosen.
/// `Err`: why not, and a HINT that suggests only what would be accepted.
pub(super) fn session_mode_change(
    current: Option<Mode>,
    requested: Option<&str>,
) -> Result<Option<Mode>, (String, &'static str)> {
    let strictness = |m: Option<Mode>| match m {
        None => 0,
        Some(Mode::Off) | Some(Mode::Warn) => 0,
        Some(Mode::Enforce) => 1,
        Some(Mode::DryRun) => 2,
    };
    let hint = match current {
        Some(Mode::DryRun) => HINT_SESSION_DRY_RUN,
        Some(Mode::Enforce) => HINT_SESSION_ENFORCE,
        _ => HINT_SESSION_MODE,
    };
    let wanted = match requested {
        None => None,
        Some("") => {
            let why = "blastwall.mode may be changed only to a constant string (a set_config whose name or value is computed may change it to a value blastwall cannot read)";
            return Err((why.to_string(), hint));
        }
        Some(v) => Some(v.parse::<Mode>().map_err(|e| (format!("blastwall.mode: {e}"), hint))?),
    };
    if matches!(wanted, Some(Mode::Off) | Some(Mode::Warn)) {
        let m = wanted.map_or("", |m| m.as_str());
        return Err((format!("blastwall.mode cannot be set to {m} by a session"), hint));
    }
    if strictness(wanted) < strictness(current) {
        let cur = current.map_or("", |m| m.as_str());
        let asked = wanted.map_or_else(|| "its default (RESET)".to_string(), |m| m.as_str().to_string());
        let strictest = if current == Some(Mode::DryRun) { ", the strictest mode" } else { "" };
        return Err((
            format!("this session's blastwall.mode is {cur}{strictest}; {asked} is less strict, and a session can only make its mode stricter"),
            hint,
        ));
    }
    Ok(wanted.or(current))
}

/// Adds to a refusal that the statement's override directive was not used: the role (and
/// the application) may not override.
pub fn note_ignored_directive(m: &mut ProxyMessage, user: &str) {
    let note = format!(
        "its blastwall override directive was ignored: neither role {user} nor the application has may_override in the policy"
    );
    m.detail = Some(match m.detail.take() {
        Some(d) => format!("{d}; {note}"),
        None => note,
    });
}

/// What statements do beyond the rows the counters count, in a DBA's words: TRUNCATE empties
/// a table (its rows are not counted as deleted), DDL drops or changes objects.
pub(super) fn effects(statements: &[Statement]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in statements.iter().flat_map(|s| &s.writes) {
        let target = w.target.as_ref().map_or_else(|| "an object blastwall cannot name".to_string(), |t| t.to_string());
        let cascade = |c: bool| if c { " and what depends on it (CASCADE)" } else { "" };
        let e = match &w.op {
            Op::Truncate { cascade: c } => {
                format!(
                    "remove every row of {target}{}",
                    if *c { " and of the tables that reference it (CASCADE)" } else { "" }
                )
            }
            Op::DropTable { cascade: c } => format!("drop table {target}{}", cascade(*c)),
            Op::DropSchema { cascade: c } => format!("drop schema {target}{}", cascade(*c)),
            Op::DropSequence => format!("drop sequence {target}"),
            Op::DropOwned => "drop every object the role owns".to_string(),
            Op::DropDatabase => format!("drop database {target}"),
            Op::DropColumn(c) => format!("drop column {c} of {target}"),
            Op::RenameTable => format!("rename {target}"),
            Op::RenameColumn(c) => format!("rename column {c} of {target}"),
            Op::Setval | Op::AlterSequence => format!("move sequence {target}"),
            Op::SetUnlogged => format!("make {target} unlogged (emptied by a crash or a failover)"),
            _ => continue,
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// The StartupMessage for the server, with `blastwall.mode` set to the mode blastwall
/// enforces for the session (replacing one the client sent), so that `SHOW blastwall.mode`,
/// `current_setting` and `RESET` on the server report what blastwall enforces.
pub fn startup_with_mode(packet: &[u8], mode: Mode) -> Vec<u8> {
    let Some(body) = packet.get(8..) else { return packet.to_vec() };
    let mut out = packet[..8].to_vec();
    let mut fields = body.split(|b| *b == 0);
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            break;
        }
        if !k.eq_ignore_ascii_case(b"blastwall.mode") {
            for f in [k, v] {
                out.extend_from_slice(f);
                out.push(0);
            }
        }
    }
    for f in [&b"blastwall.mode"[..], mode.as_str().as_bytes()] {
        out.extend_from_slice(f);
        out.push(0);
    }
    out.push(0);
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX).to_be_bytes();
    out[..4].copy_from_slice(&len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_told_the_mode_and_never_the_clients_own() {
        let mut p = vec![0, 0, 0, 0, 0, 3, 0, 0];
        p.extend_from_slice(b"user\0app\0BlastWall.Mode\0off\0database\0d\0\0");
        let n = p.len() as u32;
        p[..4].copy_from_slice(&n.to_be_bytes());
        let out = startup_with_mode(&p, Mode::DryRun);
        assert_eq!(&out[8..], b"user\0app\0database\0d\0blastwall.mode\0dry-run\0\0");
        assert_eq!(u32::from_be_bytes(out[..4].try_into().unwrap()) as usize, out.len());
    }

    #[test]
    fn a_refused_mode_change_never_suggests_what_it_refuses() {
        for (current, asked) in [
            (Some(Mode::DryRun), Some("enforce")),
            (Some(Mode::DryRun), None),
            (Some(Mode::DryRun), Some("off")),
            (Some(Mode::Enforce), None),
            (Some(Mode::Enforce), Some("warn")),
            (None, Some("off")),
        ] {
            let (why, hint) = session_mode_change(current, asked).unwrap_err();
            if let Some(a) = asked {
                assert!(!hint.contains(&format!("'{a}'")), "{current:?} → {a}: {why} / {hint}");
            }
            if current == Some(Mode::DryRun) {
                assert!(!hint.contains("'enforce'") && hint.contains("strictest"), "{why} / {hint}");
            }
        }
        assert_eq!(session_mode_change(Some(Mode::Enforce), Some("dry-run")), Ok(Some(Mode::DryRun)));
    }
}
