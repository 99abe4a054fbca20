//! What the console shows that no other part keeps: the live sessions (who, from where,
//! since when), a bounded ring of recent decisions, and the PAUSE gate.
//!
//! Owns: those records and their bounds. Does not own: the sessions themselves (`session`)
//! or the decisions (`guard`, recorded by `session::checks`).

use crate::listen::{PauseGate, Peer};
use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// How many decisions `SHOW DECISIONS` keeps.
pub const DECISIONS_KEPT: usize = 200;
/// How much of each statement it keeps (bytes): the ring stays small whatever clients send.
pub const STATEMENT_KEPT: usize = 1024;
/// The longest text kept as sent until shown (longer ones are normalized when recorded).
const RAW_KEPT: usize = 16 * 1024;

/// The console's shared state, one per proxy.
pub struct ConsoleState {
    pub sessions: DashMap<u64, SessionRow>,
    /// Each with whether its statement is the text as sent (normalized when shown).
    decisions: Mutex<VecDeque<(DecisionRow, bool)>>,
    pub pause: Arc<PauseGate>,
    pub started: Instant,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user: String,
    pub database: String,
    pub application_name: String,
    pub client: String,
    pub since: SystemTime,
    pub console: bool,
}

#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub time: SystemTime,
    pub session: u64,
    pub user: String,
    pub database: String,
    pub decision: &'static str,
    pub rule: Option<String>,
    pub mode: Option<&'static str>,
    /// Normalized (constants replaced), as the audit trail writes it by default.
    pub statement: String,
    pub message: Option<String>,
}

impl Default for ConsoleState {
    fn default() -> Self {
        ConsoleState {
            sessions: DashMap::new(),
            decisions: Mutex::new(VecDeque::with_capacity(DECISIONS_KEPT)),
            pause: Arc::new(PauseGate::default()),
            started: Instant::now(),
        }
    }
}

impl ConsoleState {
    /// A relayed session has started: listed, and its client's reads now wait while paused.
    pub fn open(&self, id: u64, user: &str, database: &str, application_name: &str, peer: &Peer) {
        peer.control.arm_pause();
        self.sessions.insert(id, SessionRow::new(user, database, application_name, peer, false));
    }

    pub fn open_console(&self, id: u64, user: &str, application_name: &str, peer: &Peer) {
        self.sessions.insert(id, SessionRow::new(user, super::DATABASE, application_name, peer, true));
    }

    pub fn close(&self, id: u64) {
        self.sessions.remove(&id);
    }

    /// Records a decision event (called where every decision is recorded).
    /// The text is normalized when shown (`decisions`), not here: most decisions are never
    /// shown, and normalizing parses the text (a tenth of a counted write's instructions). A
    /// text longer than `RAW_KEPT` is normalized at once, so the ring stays small.
    pub fn decision(&self, session: u64, user: &str, database: &str, facts: &crate::audit::Facts) {
        let raw = facts.statement.len() <= RAW_KEPT;
        let statement = if raw { facts.statement.clone() } else { shown(&facts.statement) };
        let row = DecisionRow {
            time: SystemTime::now(),
            session,
            user: user.to_string(),
            database: database.to_string(),
            decision: facts.decision,
            rule: facts.rule.clone(),
            mode: facts.mode,
            statement,
            message: facts.message.clone(),
        };
        let mut ring = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == DECISIONS_KEPT {
            ring.pop_front();
        }
        ring.push_back((row, raw));
    }

    /// The kept decisions, newest first.
    pub fn decisions(&self) -> Vec<DecisionRow> {
        let kept: Vec<(DecisionRow, bool)> =
            self.decisions.lock().unwrap_or_else(|e| e.into_inner()).iter().rev().cloned().collect();
        kept.into_iter()
            .map(|(mut row, raw)| {
                if raw {
                    row.statement = shown(&row.statement);
                }
                row
            })
            .collect()
    }
}

/// A decision's statement as shown: normalized, and its first `STATEMENT_KEPT` bytes.
fn shown(text: &str) -> String {
    let (_, mut statement) = crate::audit::statement_text(text, false);
    if statement.len() > STATEMENT_KEPT {
        let mut end = STATEMENT_KEPT;
        while !statement.is_char_boundary(end) {
            end -= 1;
        }
        statement.truncate(end);
        statement.push('…');
    }
    statement
}

impl SessionRow {
    fn new(user: &str, database: &str, application_name: &str, peer: &Peer, console: bool) -> Self {
        SessionRow {
            user: user.to_string(),
            database: database.to_string(),
            application_name: application_name.to_string(),
            client: peer.to_string(),
            since: SystemTime::now(),
            console,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_ring_is_bounded_and_newest_first() {
        let s = ConsoleState::default();
        for i in 0..(DECISIONS_KEPT as u64 + 5) {
            let facts = crate::audit::Facts {
                decision: "refused",
                rule: Some("protected-range".into()),
                mode: Some("enforce"),
                statement: format!("DELETE FROM t WHERE id = {i}"),
                targets: vec![],
                message: None,
                override_reason: None,
            };
            s.decision(i, "u", "d", &facts);
        }
        let d = s.decisions();
        assert_eq!(d.len(), DECISIONS_KEPT);
        assert_eq!(d[0].session, DECISIONS_KEPT as u64 + 4);
        assert_eq!(d.last().unwrap().session, 5);
        assert!(d[0].statement.contains("$1"), "normalized: {}", d[0].statement);
        let long = crate::audit::Facts {
            decision: "refused",
            rule: None,
            mode: None,
            statement: format!("DELETE FROM t WHERE {} true", "\"ä\" = 1 AND ".repeat(500)),
            targets: vec![],
            message: None,
            override_reason: None,
        };
        s.decision(1, "u", "d", &long);
        let kept = &s.decisions()[0].statement;
        assert!(kept.len() <= STATEMENT_KEPT + '…'.len_utf8() && kept.ends_with('…'), "{}", kept.len());
    }
}
