//! The words the client sees for a decision, and the facts the audit trail keeps of it.
//!
//! Owns: message, DETAIL and HINT of refusals and warnings. Does not own: the rules (`policy`),
//! the messages' SQLSTATE and severity (`said`).

use super::Verdict;
use crate::policy::{Decision, Mode};
use crate::wire::messages::ProxyMessage;

/// Turns findings into the client's message.
pub fn render(d: &Decision) -> Verdict {
    let Some(mode) = d.mode() else {
        return Verdict::Allow;
    };
    let Some(first) = d.findings.iter().find(|f| f.mode == mode) else {
        return Verdict::Allow;
    };
    // Fingerprinting parses the text (a long one's was made off the event loop: `audit::texts`);
    // a text too large to analyze is not fingerprinted either.
    let fingerprint = crate::audit::texts::fingerprint(&first.statement);
    let others = d.findings.len() - 1;
    let mut detail = format!(
        "rule {}; policy {}; mode {}; statement fingerprint {}",
        first.rule,
        first.source,
        mode.as_str(),
        fingerprint
    );
    if others > 0 {
        let rest: Vec<String> =
            d.findings.iter().filter(|f| !std::ptr::eq(*f, first)).map(|f| format!("{}: {}", f.what, f.why)).collect();
        detail.push_str(&format!("; also: {}", rest.join("; ")));
    }
    match mode {
        Mode::Off => Verdict::Allow,
        Mode::Warn => Verdict::Notice(crate::said::warning(
            format!("blastwall: would refuse {}: {} (warn mode: allowed)", first.what, first.why),
            detail,
            first.hint,
        )),
        // A dry run is carried out by the pre-check (see `judge_sql`); what cannot be run
        // there is refused with the same words as in enforce mode.
        Mode::DryRun | Mode::Enforce => Verdict::Refuse(crate::said::refusal(
            format!("blastwall: refused {}: {}", first.what, first.why),
            detail,
            first.hint,
        )),
    }
}

/// The ErrorResponse of a decision that refuses (an enforce-mode finding at least).
pub fn refusal_message(d: &Decision) -> ProxyMessage {
    match render(d) {
        Verdict::Refuse(m) => m,
        // No enforce-mode finding: not reached by a decision that refuses.
        _ => crate::said::refusal("blastwall: refused".into(), "no finding".into(), ""),
    }
}

/// The audit facts of a verdict (none for a plain allow), from the decision that led to it.
pub(super) fn audit_facts(
    verdict: &Verdict,
    d: &Decision,
    statement: String,
    targets: Vec<String>,
) -> Option<Box<crate::audit::Facts>> {
    let first = d.mode().and_then(|m| d.findings.iter().find(|f| f.mode == m));
    let rule = first.map(|f| f.rule.to_string());
    let mode = first.map(|f| f.mode.as_str());
    let (decision, message, override_reason) = match verdict {
        // A split Query is recorded by the session, statement by statement or as refused.
        Verdict::Allow | Verdict::Resolve(_) | Verdict::Analyze | Verdict::Split(_) => return None,
        Verdict::Refuse(m) => ("refused", Some(m.message.clone()), None),
        Verdict::Notice(m) => ("warned", Some(m.message.clone()), None),
        Verdict::Check(p) => {
            let decision = if p.override_rows.is_some() {
                "overridden"
            } else if p.dry_run {
                "dry-run"
            } else {
                "checked"
            };
            (decision, None, p.override_rows.as_ref().map(|o| o.reason.clone()))
        }
    };
    let (rule, mode) = if matches!(verdict, Verdict::Check(_)) { (None, None) } else { (rule, mode) };
    Some(Box::new(crate::audit::Facts { decision, rule, mode, statement, targets, message, override_reason }))
}
