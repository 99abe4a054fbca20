//! What a check hands back to the client: the held replies as they were (`held_bytes`), as a
//! dry run shows them (`as_dry_run`: rows dropped, counts zero), with a dry run's report
//! before them (`dry_run_outcome`), or ending in an error raised after the statement ran
//! (`failed_at_end`: a deferred constraint or a failed COMMIT).
//!
//! Owns: those byte streams. Does not own: the check itself (`precheck::verify`).

use super::{CheckPlan, Held, Outcome, TableCount};
use crate::policy::Decision;
use crate::wire::messages::{self, be, ErrorFields, TxStatus};
use bytes::{BufMut, BytesMut};

/// What a dry run (undone) would have done.
pub(super) fn dry_run_outcome(
    plan: &CheckPlan,
    held: &Held,
    counts: Vec<TableCount>,
    decision: &Decision,
    status: TxStatus,
) -> Outcome {
    let counted = crate::policy::describe_counts(&counts);
    let did = match (&plan.effects[..], counts.iter().any(|c| c.deleted + c.updated + c.inserted > 0)) {
        ([], _) => counted,
        (effects, false) => effects.join("; "),
        (effects, true) => format!("{}; {counted}", effects.join("; ")),
    };
    let mut text = format!("blastwall: dry-run of {}: would {did}; rolled back, nothing changed", plan.verb);
    let over_limit = decision.findings.first().map(|f| f.why.clone());
    if let Some(r) = plan.dry_run_reason.clone().or(over_limit) {
        text.push_str(&format!(" (in enforce mode it would be refused: {r})"));
    }
    let notice = crate::said::dry_run_report(text);
    let mut bytes = BytesMut::from(&notice.encode()[..]);
    let mut shown = as_dry_run(held);
    replace_ready(&mut shown, status);
    bytes.extend_from_slice(&shown);
    Outcome::Deliver { bytes, status, counts, kept: None }
}

fn replace_ready(bytes: &mut BytesMut, status: TxStatus) {
    let n = bytes.len();
    if n >= 6 && bytes[n - 6] == be::READY_FOR_QUERY {
        bytes[n - 1] = status.byte();
    }
}

/// The held replies as a dry run shows them: rows dropped, every command tag's count zero,
/// so no client can take them for a real write.
pub fn as_dry_run(held: &Held) -> BytesMut {
    let mut out = BytesMut::new();
    for f in &held.frames {
        match f.tag {
            b'D' | b'd' => {}
            b'C' => {
                let tag = String::from_utf8_lossy(f.body().strip_suffix(&[0]).unwrap_or(f.body())).into_owned();
                let mut body = zero_count(&tag).into_bytes();
                body.push(0);
                out.put_slice(&crate::wire::encode(b'C', &body));
            }
            _ => out.put_slice(&f.bytes),
        }
    }
    out
}

/// `DELETE 13` → `DELETE 0`; `INSERT 0 5` → `INSERT 0 0`; tags without a count stay.
fn zero_count(tag: &str) -> String {
    match tag.rsplit_once(' ') {
        Some((head, n)) if n.bytes().all(|b| b.is_ascii_digit()) => format!("{head} 0"),
        _ => tag.to_string(),
    }
}

/// Concatenates held frames, replacing the final ReadyForQuery with `status`.
pub fn held_bytes(held: &Held, status: TxStatus) -> BytesMut {
    let mut out = BytesMut::with_capacity(held.bytes + 8);
    for f in &held.frames {
        if f.tag == be::READY_FOR_QUERY {
            out.put_slice(&messages::ready_for_query(status));
        } else {
            out.put_slice(&f.bytes);
        }
    }
    out
}

/// The held replies without their ReadyForQuery, then the server's error `e` (raised after
/// the statement: a deferred constraint trigger, a failed COMMIT), then ReadyForQuery (idle:
/// blastwall's own transaction was rolled back), as the end of an implicit transaction shows it.
pub(super) fn failed_at_end(held: &Held, e: ErrorFields) -> BytesMut {
    let mut bytes = held_bytes(held, TxStatus::Idle);
    bytes.truncate(bytes.len().saturating_sub(6));
    bytes.extend_from_slice(&crate::said::commit_failed(&e.code, e.message).encode());
    bytes.extend_from_slice(&messages::ready_for_query(TxStatus::Idle));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_zeroes_counts() {
        assert_eq!(zero_count("DELETE 13"), "DELETE 0");
        assert_eq!(zero_count("INSERT 0 5"), "INSERT 0 0");
        assert_eq!(zero_count("MERGE 2"), "MERGE 0");
        assert_eq!(zero_count("BEGIN"), "BEGIN");
    }
}
