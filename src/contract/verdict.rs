//! Reads the answer of the contract SQL into findings: an anomaly when the write changed more
//! than k × the median of its last kept runs (after a minimum history, above a floor); a
//! budget finding when what was spent in the window before it, plus its own rows, is over the
//! budget; a `contract-state` finding when the SQL failed (the state is missing or not
//! writable): the write's transaction is then aborted, so that finding always refuses.
//!
//! Owns: the arithmetic of the two rules and the words of their messages. Does not own: the
//! SQL (`sql`) or what a finding does on the wire (`guard`, pre-check).

use super::{Check, Item, Kind};
use crate::policy::{Decision, Finding, Mode};

const HINT_ANOMALY: &str = "If this many rows is what you mean, say so with an override from a role allowed to use it: /* blastwall: allow rows<=N reason=\"…\" */. Nothing was changed.";
const HINT_BUDGET: &str = "The table's budget of rows per window is shared by every session and every blastwall instance: wait until earlier changes leave the window, or ask for a role whose policy allows it. Nothing was changed.";
const HINT_STATE: &str = "Run `blastwall init-state` as the owner of the database (it creates blastwall's schema and its two functions) and grant the application's role USAGE on the schema and EXECUTE on the functions (`blastwall init-state --grant ROLE`). Nothing was changed.";

fn words(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::Delete => ("deleted", "deletes", "delete"),
        Kind::Update => ("updated", "updates", "update"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A window in the words a policy wrote it with: `1h`, `15m`, `90s`.
pub fn window_words(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The anomaly finding's reason, if the run is one: `None` below the minimum history, at or
/// below the floor, or within k × the usual.
pub fn anomaly_why(item: &Item, runs: u64, median: u64) -> Option<String> {
    let a = item.anomaly?;
    if runs < a.min_runs || item.rows <= a.floor || item.rows <= a.factor.saturating_mul(median) {
        return None;
    }
    let (past, present, _) = words(item.kind);
    Some(format!(
        "{past} {} row{} of {}; this statement usually {present} {median} (median of {runs} run{}), and {} is more than {} × {median}",
        item.rows,
        plural(item.rows),
        item.table,
        plural(runs),
        item.rows,
        a.factor
    ))
}

/// The budget finding's reason, if the write overspends: `spent` rows of the window before it.
pub fn budget_why(item: &Item, spent: u64) -> Option<String> {
    let b = item.budget?;
    if spent.saturating_add(item.rows) <= b.limit {
        return None;
    }
    let (past, _, verb) = words(item.kind);
    let w = window_words(b.window_secs);
    Some(format!(
        "would {verb} {} row{} of {}, over its budget of {} rows {past} per {w}: {spent} already {past} in the last {w} ({} left)",
        item.rows,
        plural(item.rows),
        item.table,
        b.limit,
        b.limit.saturating_sub(spent)
    ))
}

/// The numbers a stop carries: (item, spent, runs, median).
fn stop_numbers(error: &str) -> Option<(usize, u64, u64, u64)> {
    let rest = &error[error.find(super::STOP)? + super::STOP.len()..];
    let mut n = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u64>().ok());
    let (i, spent, runs, median) = (n.next()??, n.next()??, n.next()??, n.next()??);
    Some((usize::try_from(i).ok()?, spent, runs, median))
}

impl Check {
    /// The findings of the contract SQL's answer: `rows` are the answer's rows (rows not tagged
    /// with [`super::TAG`] are ignored), `error` the server's message if any statement of the
    /// Query failed — the contract's own stop, the state being unusable, or a keep sent behind
    /// it (see [`Check::keep_failed`]).
    pub fn judge(&self, rows: &[Vec<Option<String>>], error: Option<&str>) -> Decision {
        let mut d = Decision::default();
        let finding = |item: &Item, rule: &'static str, mode: Mode, why: String, hint: &'static str| Finding {
            rule,
            mode,
            what: format!("{} on {}", self.verb, item.table),
            why,
            hint,
            source: item.source.clone(),
            statement: self.statement.clone(),
        };
        let judge_item = |item: &Item, spent: u64, runs: u64, median: u64, d: &mut Decision| {
            if let Some(why) = budget_why(item, spent) {
                d.findings.push(finding(item, "budget", item.mode, why, HINT_BUDGET));
            }
            let waived = self.override_rows.is_some_and(|n| item.rows <= n);
            if let Some(why) = anomaly_why(item, runs, median).filter(|_| !waived) {
                d.findings.push(finding(item, "anomaly", item.mode, why, HINT_ANOMALY));
            }
        };
        // The SQL stopped the write itself: one item's numbers are in the error.
        if let Some((i, spent, runs, median)) = error.and_then(stop_numbers) {
            if let Some(item) = self.items.get(i) {
                judge_item(item, spent, runs, median, &mut d);
                if d.findings.iter().any(|f| matches!(f.mode, Mode::Enforce | Mode::DryRun)) {
                    return d;
                }
                // Stopped for no rule: the table was not found by its name (renamed since
                // the counts named it), so its history and budget cannot be kept.
                let why = format!(
                    "blastwall cannot find {} by its name to record its anomaly history and budget",
                    item.table
                );
                let mode = if item.mode == Mode::DryRun { Mode::DryRun } else { Mode::Enforce };
                return Decision {
                    findings: vec![finding(item, "contract-state", mode, why, HINT_STATE)],
                    ..Default::default()
                };
            }
        }
        let answer = self.answer(rows);
        if answer.len() != self.items.len() {
            // Aborted (or unreadable): it cannot be kept, whatever the rules' modes say.
            let all_dry = self.items.iter().all(|i| i.mode == Mode::DryRun);
            let mode = if all_dry { Mode::DryRun } else { Mode::Enforce };
            let tables: Vec<&str> = self.items.iter().map(|i| i.table.as_str()).collect();
            let why = format!(
                "blastwall cannot record the anomaly history and budgets of {} in schema {}: {}",
                tables.join(", "),
                self.schema,
                error.unwrap_or("the answer was incomplete")
            );
            d.findings.push(finding(&self.items[0], "contract-state", mode, why, HINT_STATE));
            return d;
        }
        for (item, row) in self.items.iter().zip(answer) {
            let num = |i: usize| row.get(i).and_then(|v| v.as_deref()).and_then(|v| v.parse::<u64>().ok());
            judge_item(item, num(2).unwrap_or(0), num(3).unwrap_or(0), num(4).unwrap_or(0), &mut d);
        }
        d
    }

    /// With a keep (COMMIT / RELEASE SAVEPOINT) sent behind [`Check::sql`] in the same Query:
    /// the keep's own error (a deferred constraint at COMMIT), when the contract answered in
    /// full and did not stop the write. The pre-check reports it as it reports a failed COMMIT.
    pub fn keep_failed<'e>(&self, rows: &[Vec<Option<String>>], error: Option<&'e str>) -> Option<&'e str> {
        error.filter(|e| stop_numbers(e).is_none() && self.answer(rows).len() == self.items.len())
    }

    fn answer<'r>(&self, rows: &'r [Vec<Option<String>>]) -> Vec<&'r Vec<Option<String>>> {
        rows.iter().filter(|r| r.first().and_then(|v| v.as_deref()) == Some(super::TAG)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AnomalyRule, BudgetRule};
    use super::*;

    fn item(rows: u64) -> Item {
        Item {
            table: "public.users".into(),
            relid: String::new(),
            kind: Kind::Delete,
            rows,
            budget: Some(BudgetRule { limit: 200, window_secs: 3600 }),
            anomaly: Some(AnomalyRule { factor: 10, runs: 20, min_runs: 5, floor: 10 }),
            mode: Mode::Enforce,
            source: "p.toml line 1".into(),
        }
    }

    #[test]
    fn anomaly_needs_history_and_a_floor() {
        assert_eq!(
            anomaly_why(&item(900), 14, 3).unwrap(),
            "deleted 900 rows of public.users; this statement usually deletes 3 (median of 14 runs), and 900 is more than 10 × 3"
        );
        assert!(anomaly_why(&item(30), 14, 3).is_none(), "within 10 ×");
        assert!(anomaly_why(&item(900), 4, 3).is_none(), "too little history");
        assert!(anomaly_why(&item(3), 14, 0).is_none(), "0 → 3 is under the floor");
        assert!(anomaly_why(&item(11), 14, 0).is_some(), "0 → 11 is over the floor");
    }

    #[test]
    fn budget_counts_what_was_spent() {
        assert!(budget_why(&item(2), 198).is_none());
        let why = budget_why(&item(3), 198).unwrap();
        assert!(why.contains("198 already deleted in the last 1h (2 left)"), "{why}");
        assert_eq!(window_words(900), "15m");
        let e = format!("invalid input syntax for type integer: \"{} 2 198 14 3\"", super::super::STOP);
        assert_eq!(stop_numbers(&e), Some((2, 198, 14, 3)));
        assert_eq!(stop_numbers("permission denied for schema blastwall"), None);
    }
}
