//! What a message's judgement did not look at, and the rule `unjudged-write` that keeps it from
//! changing a policy table's rows unjudged:
//! - before it runs ([`rule_findings`]): a write to a relation whose rules (for that event)
//!   reach a policy table with text rules is refused — a rule's actions are statements the
//!   server runs in the write's place (`DO ALSO DELETE FROM users WHERE id BETWEEN …`), whose
//!   text blastwall does not judge (`catalog::code` lists the relations each rule reaches);
//! - after it ran ([`reached`], judged in `policy::counts`): the policy tables its row writes
//!   resolve to (their text rules were applied to those rows) and the tables foreign keys'
//!   actions reach from them. Rows of another policy table with text rules changed mean that
//!   the server wrote a relation the judgement did not look at: a name led there by the time
//!   the statement ran (DDL committed in between, by a function's body in another session or
//!   on a direct connection), a rule the catalog did not show yet (made earlier in the same
//!   message). Only code may explain such rows: a statement that calls a function of a name the
//!   database has outside `pg_catalog` (or one qualified with another schema) or hides what it
//!   does (`DO`, `CALL`), a written relation whose change runs someone's code for that event
//!   (an enabled trigger, …: `catalog::code`), or a table a key's action changes that runs code
//!   — then the counts are
//!   judged by the row limits alone, as a function's or trigger's writes always are. An answer
//!   the catalog has not given counts as no code (the check stays on); code another role wrote
//!   explains nothing, nor does any code when a row write was judged as a relation another
//!   role may make lead elsewhere, or as none known (`names::pinned`: a view's rule replaced,
//!   a membership given and taken away while the write waits, which the readings around it do
//!   not see; a name the middle of a batch left unasked);
//! - what makes the policy table's own write explain nothing: written beside another relation
//!   whose rules were not asked about for this judgement ([`beside`]), or by a name the
//!   session's own DDL named since its rules were last known ([`shadowed`]) — a count cannot
//!   tell their rules' rows from the write's own (rows inserted by `VALUES` lists excepted);
//! - what explains nothing at all: the session's own temporary code, when it includes a user
//!   function (`catalog::Taint::holds_functions`), or code the message itself makes — the
//!   client wrote it, and no text of it was judged, and PostgreSQL runs it from more places
//!   than a text shows (twenty-first pass H1–H5: `query_to_xml`, `ANALYZE`, `array_in` with a
//!   domain's OID, a cursor's `FETCH`, a Bind's parameter type); every text-ruled table is
//!   then taken as changed by it.
//!
//! Owns: which tables are reached and how, which relations leave a count unexplained, and the
//! refusal of rules that reach a policy table. Does not own: the judgement of the counts
//! (`policy::counts`), the catalog's answers (`catalog`), asking them (`guard::decide`).

use crate::analyze::{Op, Statement, Write};
use crate::policy::{mode_for, Finding, Mode, Policy, Reach, ReachedTable, SessionView};

/// What a count cannot tell from the judged writes' own rows.
pub(super) struct Unknown<'a> {
    /// Relations written beside a policy table whose rules could not be asked about now
    /// ([`beside`], [`shadowed`]).
    pub unverified: &'a [String],
    /// The session's temporary schema, when it holds a user function.
    pub own: Option<&'a crate::catalog::Taint>,
    /// A row write of the message was judged as a relation a role other than the policy
    /// tables' owners may make lead elsewhere while it waits, or as no known relation
    /// (`names::pinned`).
    pub movable: bool,
    /// The session's temporary schema may hold a view (or another relation with rules): a
    /// name code writes without a schema may lead there, and on to a policy table
    /// (`catalog::Taint::may_redirect`, or a view the message itself makes).
    pub redirects: bool,
}

/// Every policy table the judgement of `statements` reached, with how (deleted, updated), or
/// `None` when code may explain changes elsewhere (a function, `DO`/`CALL`, code on a written
/// relation): then only the row limits judge its counts.
pub(super) fn reached(
    statements: &[Statement],
    reach: &dyn Fn(usize, &Write) -> Option<Reach>,
    catalog: &crate::catalog::Catalog,
    database: &str,
    policy: &Policy,
    unknown: Unknown<'_>,
    minted: &dyn Fn(&str, &str) -> Option<Vec<crate::catalog::TableColumn>>,
) -> Option<Vec<ReachedTable>> {
    let Unknown { unverified, own, movable, redirects } = unknown;
    if database.is_empty() || !policy.tables.iter().any(|t| t.judges_text()) {
        return None;
    }
    let runs_code = |name: &str, delete: bool| {
        catalog.runs_with(database, name, |r| if delete { r.code_on_delete } else { r.code }) == Some(true)
    };
    // A call can be a user's function only by a name the database has one of (a qualified
    // one, or one not known: it may), as last answered, of any age: a function made since is
    // taken for a built-in, and what it writes is refused (sixteenth pass N1: in the middle of
    // a batch no answer was fresh).
    let ids = catalog.last_identities(database);
    let user_functions = ids.as_ref().and_then(|i| i.user_functions.as_deref());
    // Code explains such rows only while every function, trigger and rule of the database was
    // written by the policy tables' owners (`names::sql::untrusted_code`; unknown: not), and
    // no row write was judged as a relation another role may make lead elsewhere: its view's
    // rule replaced, a membership that shows an earlier schema of the path given and taken
    // away while it waits — neither of which the readings around the run see — and the rows
    // were the policy table's, not the code's (fifty-seventh pass H1, H2); nor while the
    // session's temporary schema may hold a view, which code that writes a name without a
    // schema writes instead, first on the path (fifty-eighth pass H3: the owner's trigger's
    // upsert of its log table went through a temporary view of that name to `public.users`).
    // Only code that writes a name without a schema and searches it first can be led there
    // (fifty-ninth pass FP-1: any temporary view withdrew it from code that qualifies).
    let steered = redirects && ids.as_ref().is_none_or(|i| i.temp_steerable);
    let excusable = ids.as_ref().is_some_and(|i| !i.untrusted_code) && !movable && !steered;
    let calls_code = |st: &Statement| {
        st.calls_functions
            && (st.calls.is_empty()
                || st.calls.iter().any(|c| c == "*" || user_functions.is_none_or(|u| u.binary_search(c).is_ok())))
    };
    // Code whose caller can steer what it writes explains nothing either (`names::sql::steered`:
    // dynamic SQL, the temporary schema, a path or role set in its body — sixtieth pass H1,
    // H2): a call of such a function by name (or of one not named), or a written relation's
    // code while some trigger function is one or a stored object uses one (sixty-first pass
    // H1: a table's `CHECK` that calls it).
    let steered = ids.as_ref().and_then(|i| i.steered.as_deref());
    // A built-in that runs what its caller gives it (SQL text, a type's input by OID:
    // `analyze::RUNNERS`) is such code, whatever the database holds (seventy-first pass F4).
    let runs_given =
        |st: &Statement| st.calls.iter().chain(&st.qualified_calls).any(|c| crate::analyze::runs_given_code(c));
    let steers = |st: &Statement| {
        runs_given(st)
            || st.calls_functions
                && (st.calls.is_empty()
                    || st.calls.iter().any(|c| match c.as_str() {
                        // A call qualified with a schema: by its function's name (of any schema:
                        // the list is by name), or any of them when it has none.
                        "*" if !st.qualified_calls.is_empty() => steered.is_none_or(|u| {
                            st.qualified_calls.iter().any(|c| u.binary_search_by(|n| n.as_str().cmp(c)).is_ok())
                        }),
                        "*" => steered.is_none_or(|u| !u.is_empty()),
                        c => steered.is_none_or(|u| u.binary_search_by(|n| n.as_str().cmp(c)).is_ok()),
                    }))
    };
    let triggers_excuse = excusable && ids.as_ref().is_some_and(|i| !i.steered_triggers);
    // An UPDATE may move a row to another partition: a deletion there, and an insertion.
    let moves = |name: &str| catalog.runs_with(database, name, |r| r.partitioned).unwrap_or(true);
    // (policy table, deletes, updates, inserts, at most how many rows inserted: `None` any)
    let mut out: Vec<(usize, bool, bool, bool, Option<u64>)> = Vec::new();
    // The session's own code (its temporary schema's user functions) explains nothing: it was
    // never judged, and any statement may run it. Every text-ruled table is taken as changed
    // by it (below).
    let mut own_ran = own.is_some();
    // Code made by the message itself (a function, a rule: twentieth pass N5) is
    // the session's own too, whatever the last answer about its schema said.
    let made_here = statements.iter().any(|s| s.makes_code);
    let own_tables = own.is_some() || made_here;
    for (i, st) in statements.iter().enumerate() {
        if calls_code(st) || !st.opaque.is_empty() {
            match own_tables {
                false if (excusable && !steers(st)) || !st.opaque.is_empty() => return None,
                false => {}
                true => own_ran = true,
            }
        }
        for w in &st.writes {
            // (its rows deleted, updated, inserted); a MERGE's other actions may do either.
            let (del, upd, ins) = match &w.op {
                Op::Delete => (true, false, false),
                Op::Update { .. } => {
                    let moved = w.target.as_ref().is_none_or(|t| moves(&t.name));
                    (moved, true, moved)
                }
                Op::Upsert { .. } => (false, true, true),
                Op::MergeDelete | Op::MergeUpdate { .. } => (true, true, false),
                // DDL, setval, TRUNCATE: judged by name and by identity; no rows of their own.
                _ => continue,
            };
            let Some(target) = w.target.as_ref() else { continue };
            match reach(i, w) {
                Some(r) => out.extend(r.tables.iter().map(|(t, _)| (*t, del, upd, ins, None))),
                None => out.extend(
                    policy
                        .tables
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.matches(target))
                        .map(|(i, _)| (i, del, upd, ins, None)),
                ),
            }
            if runs_code(&target.name, matches!(w.op, Op::Delete)) {
                match own_tables {
                    false if triggers_excuse => return None,
                    false => {}
                    true => own_ran = true,
                }
            }
            // A foreign key's action deletes (CASCADE) or updates (SET NULL, SET DEFAULT, an
            // update's CASCADE): either.
            for kind in [(del, true), (upd, false)].into_iter().filter(|(on, _)| *on).map(|(_, k)| k) {
                match catalog.cascades_into_policy(database, &target.name, kind, policy) {
                    // A table a key's action changes runs code (it may write anywhere).
                    Some((true, _)) if !own_tables && triggers_excuse => return None,
                    Some((true, acted)) if !own_tables => {
                        out.extend(acted.into_iter().map(|t| (t, true, true, false, Some(0))))
                    }
                    Some((true, _)) => own_ran = true,
                    Some((false, acted)) => out.extend(acted.into_iter().map(|t| (t, true, true, false, Some(0)))),
                    None => {}
                }
            }
        }
        let inserts = super::need::inserts_in(st);
        if inserts.iter().any(|ins| runs_code(&ins.target.name, false)) {
            match own_tables {
                false if triggers_excuse => return None,
                false => {}
                true => own_ran = true,
            }
        }
        // Rows inserted by its INSERTs (COPY, MERGE's): `explicit-id` judged them, by the name
        // written or what the catalog says its columns stand for (a view's, a child's).
        for ins in inserts.iter() {
            let schema = ins.target.schema.as_deref().unwrap_or("");
            let cols = minted(schema, &ins.target.name).unwrap_or_default();
            let stands = |t: &crate::policy::TablePolicy| {
                cols.iter().flat_map(|c| &c.origins).any(|(s, n, _)| *s == t.schema && *n == t.name)
            };
            let named = policy.tables.iter().enumerate().filter(|(_, t)| t.matches(&ins.target) || stands(t));
            let rows = ins.rows.map(|n| n as u64);
            out.extend(named.map(|(i, _)| (i, false, false, true, rows)));
        }
    }
    // Written beside relations whose rules could not be asked about now: what their rules
    // changed in these tables cannot be told from what the judged writes changed.
    let beside = (!unverified.is_empty()).then(|| unverified.join(", "));
    let mut tables: Vec<ReachedTable> = Vec::new();
    for (i, del, upd, ins, rows) in out {
        let Some(t) = policy.tables.get(i) else { continue };
        match tables.iter_mut().find(|r| r.schema == t.schema && r.name == t.name) {
            Some(r) => {
                (r.deletes, r.updates, r.inserts) = (r.deletes || del, r.updates || upd, r.inserts || ins);
                r.inserts_at_most = r.inserts_at_most.zip(rows).map(|(a, b)| a + b);
            }
            None => tables.push(ReachedTable {
                schema: t.schema.clone(),
                name: t.name.clone(),
                deletes: del,
                updates: upd,
                inserts: ins,
                inserts_at_most: rows,
                beside: beside.clone(),
                own_code: None,
            }),
        }
    }
    // A session whose temporary schema holds user functions: any statement may run them (a
    // call, a trigger or rule of its temporary tables, a domain's check, a built-in that runs
    // SQL text), and what they changed in a text-ruled table cannot be told from the judged
    // writes' rows (eighteenth pass X2: a temporary function's body deleted the incident's
    // ten users, within the row limit).
    if own_ran {
        let objects = own.map_or_else(|| "code this message makes".to_string(), |t| t.what());
        tables.retain(|r| !policy.tables.iter().any(|t| t.judges_text() && r.schema == t.schema && r.name == t.name));
        tables.extend(policy.tables.iter().filter(|t| t.judges_text()).map(|t| ReachedTable {
            schema: t.schema.clone(),
            name: t.name.clone(),
            deletes: true,
            updates: true,
            inserts: true,
            inserts_at_most: None,
            beside: None,
            own_code: Some(objects.clone()),
        }));
    }
    Some(tables)
}

/// The relations a message writes beside a policy table with text rules — row writes and
/// INSERTs of names that are not such a table's own — when a write of it may explain its
/// changes: their rules run in the same count, and what those write into the table cannot be
/// told from what the judged write changed (seventeenth pass M5, V1, V2, V4: in `WITH x AS
/// (UPDATE users … WHERE id = 0) DELETE FROM st`, `st`'s rule deleted ten real users). The
/// judgement asks the catalog about their rules now, or takes the count as unexplained
/// (`policy::counts`) where it cannot ask — except a view that is the write's own way to the
/// table, resolved by the session's answer (which says its rules: one that takes the write
/// over is refused as `opaque`), in the middle of a batch, where that answer stands in for
/// the view as it does for the name (fifteenth pass FP1: an ORM's pipelined point UPDATE
/// through a view over `users`). Each name comes with whether it is only such a way.
pub(super) fn beside(
    statements: &[Statement],
    reach: &dyn Fn(usize, &Write) -> Option<Reach>,
    policy: &Policy,
) -> Vec<(String, bool)> {
    if !policy.tables.iter().any(|t| t.judges_text()) {
        return Vec::new();
    }
    let text_ruled =
        |target: &crate::analyze::RelName| policy.tables.iter().any(|t| t.judges_text() && t.matches(target));
    let mut explains = false;
    let mut others: Vec<(String, bool)> = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        for w in st.writes.iter().filter(|w| w.op.is_row_write() || matches!(w.op, Op::Upsert { .. })) {
            let Some(target) = w.target.as_ref() else { continue };
            let r = reach(i, w);
            let text = |t: &usize| policy.tables.get(*t).is_some_and(|t| t.judges_text());
            explains |= match &r {
                Some(r) => r.tables.iter().any(|(t, _)| text(t)),
                None => text_ruled(target),
            };
            let route = r.is_some_and(|r| {
                r.unresolved.is_none() && r.taken_over.is_none() && r.tables.iter().any(|(t, v)| v.is_some() && text(t))
            });
            if !text_ruled(target) {
                others.push((target.name.clone(), route));
            }
        }
        // An INSERT into such a table explains rows inserted there (eighteenth pass E2: a
        // signup in a WITH beside a table whose rule inserts hand-picked ids).
        let inserts = super::need::inserts_in(st);
        explains |= inserts.iter().any(|i| text_ruled(&i.target));
        others.extend(inserts.iter().filter(|i| !text_ruled(&i.target)).map(|i| (i.target.name.clone(), false)));
    }
    if !explains {
        return Vec::new();
    }
    // A name that is another write's relation beside, anywhere in the message, is not only a way.
    others.sort();
    let mut out: Vec<(String, bool)> = Vec::new();
    for (name, route) in others {
        match out.last_mut() {
            Some((n, r)) if *n == name => *r &= route,
            _ => out.push((name, route)),
        }
    }
    out
}

/// The policy tables with text rules that a write names while blastwall has no answer about
/// the rules of that name (in the middle of a batch, after DDL dropped the answers) and the
/// session's own DDL named it since (`unknown`): the name may lead to the session's temporary
/// table of that name, whose rule writes the policy table in the statement's place, and a
/// count cannot tell those rows from the write's own (eighteenth pass T1: `CREATE TEMP TABLE
/// users …` with an INSTEAD rule into `public.users`, then a point `DELETE FROM users` in a
/// pipeline deleted the ten real users). Each is named as a relation written beside them.
pub(super) fn shadowed(statements: &[Statement], policy: &Policy, unknown: &dyn Fn(&str) -> bool) -> Vec<String> {
    let text_ruled = |t: &crate::analyze::RelName| policy.tables.iter().any(|p| p.judges_text() && p.matches(t));
    let mut out: Vec<String> = Vec::new();
    for st in statements {
        let writes = st.writes.iter().filter(|w| w.op.is_row_write() || matches!(w.op, Op::Upsert { .. }));
        let targets = writes.filter_map(|w| w.target.clone());
        let inserts = super::need::inserts_in(st);
        for t in targets.chain(inserts.iter().map(|i| i.target.clone())) {
            if text_ruled(&t) && unknown(&t.name) {
                let name = format!("{} (this session's DDL named it since blastwall last knew its rules)", t.name);
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Refusals of writes to relations whose rules, for the write's event, reach a policy table
/// with text rules (as the catalog last said; a rule it has not shown yet is left to the count).
pub(super) fn rule_findings(
    statements: &[Statement],
    catalog: &crate::catalog::Catalog,
    database: &str,
    who: SessionView<'_>,
    policy: &Policy,
) -> Vec<Finding> {
    if database.is_empty() || !policy.tables.iter().any(|t| t.judges_text()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for st in statements {
        let writes = st.writes.iter().filter_map(|w| {
            let events: &[u8] = match w.op {
                Op::Delete | Op::MergeDelete => b"4",
                Op::Update { .. } | Op::MergeUpdate { .. } => b"2",
                Op::Upsert { .. } => b"32",
                _ => return None,
            };
            Some((w.op.verb(), events, w.target.as_ref()?.name.clone()))
        });
        let inserts = super::need::inserts_in(st);
        let inserted =
            inserts.iter().filter(|i| i.verb == "INSERT").map(|i| ("INSERT", b"3".as_slice(), i.target.name.clone()));
        for (verb, events, name) in writes.chain(inserted) {
            let Some(runs) = catalog.runs(database, &name) else { continue };
            let oids: Vec<(u32, String, String)> = runs
                .rules
                .iter()
                .filter(|(e, _)| events.contains(e) || *e == b'*')
                .map(|(_, oid)| {
                    let named = runs.names.iter().find(|(o, ..)| o == oid);
                    named.map_or((*oid, String::new(), String::new()), |(o, s, n)| (*o, s.clone(), n.clone()))
                })
                .collect();
            if oids.is_empty() {
                continue;
            }
            let mut hit = catalog.policy_tables_in(database, policy, &oids);
            if oids.iter().any(|(o, ..)| *o == 0) {
                hit = (0..policy.tables.len()).collect();
            }
            let found = hit
                .into_iter()
                .filter_map(|i| policy.tables.get(i))
                .filter(|t| t.judges_text() && mode_for(who, policy, Some(t)) != Mode::Off)
                .max_by_key(|t| mode_for(who, policy, Some(t)));
            let Some(t) = found else { continue };
            out.push(Finding {
                rule: "unjudged-write",
                mode: mode_for(who, policy, Some(t)),
                what: format!("{verb} on {name}"),
                why: format!(
                    "a rule fired by {verb} on {name} (its own, or one of a table its foreign keys' actions, views or rules reach) writes or reads {}: the server runs the rule's actions in this statement's place, and blastwall does not apply {}'s text rules to them",
                    t.qualified(),
                    t.qualified()
                ),
                hint: HINT_RULE,
                source: t.source.clone(),
                statement: st.text.clone(),
            });
        }
    }
    out
}

const HINT_RULE: &str = "Write the protected table by its own name, so that its rules apply, or drop the rule (a DBA: write the table the rule writes).";
