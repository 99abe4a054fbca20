//! From a message's decision to its verdict: an override directive (who may use one, and
//! where), what cannot be wrapped in a pre-check (COPY … PROGRAM, a write beside transaction
//! control), a dry run's limits, and the [`CheckPlan`] of a write that must be counted.
//!
//! Owns: turning a [`Decision`] into a [`Verdict`]. Does not own: the decision (`decide`,
//! `policy`), whether a write needs counting (`need`), or the words (`render`).

use super::need::{self, check_need, estimate_text, unverifiable, CheckNeed};
use super::render::render;
use super::words::{effects, note_ignored_directive};
use super::{refusal, Guard, SessionInfo, Verdict};
use crate::analyze::{self, Op, ParseOptions, Statement};
use crate::policy::{Decision, Mode};
use crate::precheck::CheckPlan;

impl Guard {
    pub(super) fn judge_decided(
        &self,
        sql: &[u8],
        scan: &super::Scan,
        statements: &[Statement],
        decision: Decision,
        info: &mut SessionInfo,
    ) -> (Verdict, Decision) {
        let policy = self.policy();
        // An EXECUTE's prepared statements carry its text: each text once.
        let text = || {
            let mut texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
            texts.dedup();
            texts.join("; ")
        };
        // COPY … PROGRAM runs a program on the server: opaque in every mode.
        if !policy.tables.is_empty() && scan.copy && need::copy_program(statements) {
            let why = "COPY … PROGRAM runs a program on the server, which can change anything blastwall protects without a trace it can count".to_string();
            let d = refusal("copy-program", "COPY".into(), why, HINT_COPY_PROGRAM, "blastwall", text());
            return (render(&d), d);
        }
        // A value taken ahead above a run of this block's own moves that a ROLLBACK would put
        // back: the put-back would go under it, and hand it out again (seventy-eighth pass
        // H2: a ROLLBACK after `INSERT` of 2,000 users and `SELECT nextval(…)` put the sequence
        // back 2,001 below an id another session had used).
        // A FETCH of a cursor over `nextval` takes values of every listed sequence ahead.
        let takes_ahead = match super::cursors::reads_ahead(statements, info) {
            true => super::steps::listed(&policy),
            false => super::steps::takes_ahead(statements, &policy),
        };
        if info.moves_beyond_slack && !takes_ahead.is_empty() {
            let d = super::steps::takes_ahead_refusal(&policy, text());
            return (render(&d), d);
        }
        // … and while the sequence's creep budget has no room: refused before it moves it.
        if let Some(d) = super::steps::no_room(&policy, &self.catalog, info, (&takes_ahead, &[]), text) {
            return (render(&d), d);
        }
        let directive = match find_directive(sql, scan, info, statements.len()) {
            Ok(d) => d,
            Err(why) => {
                let d = refusal(
                    "override-directive",
                    "statement".into(),
                    why,
                    HINT_DIRECTIVE,
                    "override directive",
                    text(),
                );
                return (render(&d), d);
            }
        };
        let may_override = policy.roles.get(&info.user).is_some_and(|s| s.may_override)
            || policy.applications.get(&info.application_name).is_some_and(|s| s.may_override);
        // An override waives the rules about the shape and size of one statement, never the
        // forbidden operations or what cannot be seen; other roles get the normal refusal.
        let decision = match &directive {
            Some(_) if may_override => Decision {
                findings: decision
                    .findings
                    .into_iter()
                    .filter(|f| !matches!(f.rule, "protected-range" | "require-where" | "current-of" | "catalog-write"))
                    .collect(),
                ..decision
            },
            _ => decision,
        };
        let ignored_directive = directive.is_some() && !may_override;
        let overriding = directive.filter(|_| may_override);
        let mut verdict = render(&decision);
        let dry_run = decision.mode() == Some(Mode::DryRun);
        if let (Verdict::Refuse(m), false) = (&mut verdict, dry_run) {
            if ignored_directive {
                note_ignored_directive(m, &info.user);
            }
            return (verdict, decision);
        }
        let by_identity = decision.updates_limited_by_identity;
        let need = match check_need(statements, info, &policy, &self.catalog, dry_run, by_identity) {
            Ok(n) => n,
            Err(names) => {
                let questions = names.into_iter().map(crate::catalog::Question::Indirect).collect();
                return (Verdict::Resolve(questions), decision);
            }
        };
        let need = need.or_else(|| {
            overriding.as_ref().map(|_| CheckNeed {
                verb: statements.iter().flat_map(|s| &s.writes).map(|w| w.op.verb()).next().unwrap_or("statement"),
                target: statements.iter().flat_map(|s| &s.writes).find_map(|w| w.target.clone()),
                dry_run,
                known: Vec::new(),
                only_moves: false,
            })
        });
        // A write by a name that led away from the policy table it names, or to a relation
        // another role may swap: counted, so that where the name leads is read again around
        // the run (`precheck::named`).
        let need = need.or_else(|| {
            let w = decision.recheck.then(|| statements.iter().flat_map(|s| &s.writes).find(|w| w.target.is_some()));
            let w = w.flatten()?;
            Some(CheckNeed {
                verb: w.op.verb(),
                target: w.target.clone(),
                dry_run,
                known: Vec::new(),
                only_moves: false,
            })
        });
        let Some(CheckNeed { verb, target, dry_run, mut known, mut only_moves }) = need else {
            return (verdict, decision);
        };
        // Known steps are the only reason to count only when nothing else asks for a count.
        if overriding.is_some() || decision.recheck {
            known.clear();
            only_moves = false;
        }
        let tainted = info.taint.runs_code() && self.calls_matter.load(std::sync::atomic::Ordering::Acquire);
        if let Some(d) = super::taint::refusal(statements, info, &policy, text()).filter(|_| tainted) {
            return (render(&d), d);
        }
        if let Some(why) = unverifiable(statements) {
            let why = format!("it must be counted before it is kept, and {why}");
            // A message of one statement is already alone: the hint says what else to do.
            let hint = match statements {
                [st] if st.copy_from_stdin => HINT_UNVERIFIABLE_COPY,
                [_] => HINT_UNVERIFIABLE_ALONE,
                _ => HINT_UNVERIFIABLE,
            };
            let d = refusal("unverifiable", verb.into(), why, hint, &policy.source_names(), text());
            return match render(&d) {
                Verdict::Refuse(m) if overriding.is_none() && statements.len() > 1 => (Verdict::Split(Box::new(m)), d),
                v => (v, d),
            };
        }
        // A dry run rolls the statement back; a sequence moved by setval() stays moved.
        if dry_run && statements.iter().flat_map(|s| &s.writes).any(|w| matches!(w.op, Op::Setval)) {
            let why = "a dry run is rolled back, but setval() is not undone by a rollback (sequences are not transactional); it was not run".to_string();
            let d = refusal("dry-run", verb.into(), why, HINT_DRY_RUN_SETVAL, &policy.source_names(), text());
            return (render(&d), d);
        }
        if let Some(ov) = &overriding {
            tracing::warn!(user = %info.user, application_name = %info.application_name, rows = ov.rows, reason = %ov.reason, "override directive used");
        }
        let verdict_notice = verdict.notice().cloned();
        let plan = Verdict::Check(Box::new(CheckPlan {
            verb,
            target,
            dry_run,
            dry_run_reason: dry_run.then(|| decision.findings.first().map(|f| f.why.clone())).flatten(),
            statement: text(),
            effects: effects(statements),
            ignored_directive,
            warned_rule: verdict_notice
                .as_ref()
                .and_then(|_| decision.findings.iter().find(|f| f.mode == Mode::Warn))
                .map(|f| f.rule),
            notice: verdict_notice,
            override_rows: overriding,
            estimate_sql: estimate_text(statements, &policy),
            estimate_msgs: None,
            param_types: Vec::new(),
            // A tainted session's code runs wherever it may: never kept uncounted (`taint`).
            point: crate::precheck::point::candidate(statements).filter(|_| !tainted),
            reached: decision.reached.clone(),
            names: decision.names.clone(),
            known_steps: known,
            only_moves,
            takes_ahead,
        }));
        (plan, decision)
    }
}

const HINT_DRY_RUN_SETVAL: &str =
    "Read the sequence's state with SELECT last_value instead; run setval() in enforce mode.";
const HINT_COPY_PROGRAM: &str = "Copy to or from the client instead (COPY … TO STDOUT / FROM STDIN, psql's \\copy).";
const HINT_DIRECTIVE: &str = "Put the directive in a message of one statement, as the README shows.";
const HINT_UNVERIFIABLE: &str =
    "Send the write in a message of its own (psql: one statement per line, or -1 instead of BEGIN/COMMIT in the text).";
const HINT_UNVERIFIABLE_COPY: &str = "COPY … FROM STDIN cannot run inside the check (its rows arrive after it started): load these rows with INSERT (many rows per statement, or INSERT … SELECT from a table COPY filled first), which is counted. A COPY whose only hidden effect is a column default of one nextval() per row is relayed, as is one that supplies that column.";
const HINT_UNVERIFIABLE_ALONE: &str =
    "It is already alone in its message: it cannot be counted in this form; the reason above names one that can.";

/// The override directive of a message, if it has one. It counts only in a message of a
/// single statement, so it cannot be carried over to a second one.
fn find_directive(
    sql: &[u8],
    scan: &super::Scan,
    info: &SessionInfo,
    statements: usize,
) -> Result<Option<analyze::directive::Override>, String> {
    if !scan.blastwall || !sql.windows(10).any(|w| w == b"blastwall:") {
        return Ok(None);
    }
    let Ok(text) = analyze::decode(sql, &info.client_encoding) else { return Ok(None) };
    let opts = ParseOptions { standard_conforming_strings: info.standard_conforming_strings };
    match analyze::directive::find(&text, opts)? {
        Some(_) if statements > 1 => Err("a blastwall directive applies to a message of one statement only".into()),
        d => Ok(d),
    }
}
