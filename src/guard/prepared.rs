//! SQL-level prepared statements as the guard sees them: what an `EXECUTE name` runs (every
//! statement prepared under that name since its DEALLOCATE), remembered from `PREPARE` at once
//! and forgotten on `DEALLOCATE` once the server confirms it (`session::names`).
//!
//! Owns: `SessionInfo::prepared` and `unprepared`'s updates. Does not own: the protocol-level
//! statements and portals (`session::statements`).

use super::SessionInfo;
use crate::analyze::{Opaque, Statement};

/// The statements with every SQL-level EXECUTE followed by what it runs (all statements ever
/// prepared under that name since its DEALLOCATE), or by an opaque item when it is unknown.
pub(super) fn with_prepared(statements: &[Statement], info: &SessionInfo) -> Vec<Statement> {
    let mut expanded: Vec<Statement> = Vec::with_capacity(statements.len());
    for st in statements {
        expanded.push(st.clone());
        for ex in &st.executes {
            match info.prepared.get(&ex.name) {
                Some(list) => expanded.extend(list.iter().map(|p| {
                    let mut p = Statement { text: st.text.clone(), offset: st.offset, ..p.clone() };
                    // `EXPLAIN ANALYZE EXECUTE` of a write executes it.
                    if ex.explained && !p.writes.is_empty() {
                        p.opaque.push(Opaque::ExplainAnalyze);
                    }
                    p
                })),
                None => expanded.push(Statement {
                    text: st.text.clone(),
                    offset: st.offset,
                    opaque: vec![Opaque::UnknownPrepared(ex.name.clone())],
                    ..Default::default()
                }),
            }
        }
    }
    expanded
}

/// A PREPARE is remembered at once (judging one statement too many is only stricter); a
/// DEALLOCATE only once the server confirms it (see `session::names`).
pub(super) fn remember_prepared(statements: &[Statement], info: &mut SessionInfo) {
    for st in statements {
        if let Some((name, inner)) = &st.prepare {
            let list = info.prepared.entry(name.clone()).or_default();
            if !list.contains(inner) {
                list.push((**inner).clone());
            }
        }
        match &st.deallocate {
            Some(Some(name)) => {
                let n = info.prepared.get(name).map_or(0, Vec::len);
                info.unprepared.push((name.clone(), n));
            }
            Some(None) => {
                let all: Vec<(String, usize)> = info.prepared.iter().map(|(k, v)| (k.clone(), v.len())).collect();
                info.unprepared.extend(all);
            }
            None => {}
        }
    }
}
