//! The decision: a pure function from analysis facts, the session's identity and the policy to
//! the findings each rule makes, each with the mode it applies in.
//!
//! Owns: the rules and the words of their messages. Does not own: what a finding does on the
//! wire (see `guard`), or how facts are found (see `analyze`).

use super::{Action, Forbid, Mode, Policy, TablePolicy};
use crate::analyze::{Op, RangeKind, RelName, Statement, Where, Write};

/// Rows changed in one table by one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub schema: String,
    pub name: String,
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
}

impl TableCount {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The current names of a table's protected columns: (policy name, name now).
pub type ColumnNames<'a> = dyn Fn(&TablePolicy) -> Option<Vec<(String, String)>> + Sync + 'a;

/// The (schema, table, column) owning a sequence (`OWNED BY`, serial, identity).
pub type SequenceOwners<'a> = dyn Fn(&RelName) -> Option<Vec<(String, String, String)>> + Sync + 'a;

/// Whether a database may hold a policy table: blastwall has seen it there (learned its OID,
/// kept across restarts with `identities_file`), or knows nothing of the database — only one
/// created through blastwall and never seen holding it does not (`Catalog::may_hold`).
pub type SeenIn<'a> = dyn Fn(&str, &TablePolicy) -> bool + Sync + 'a;

/// A view's columns as (view column, base column).
pub type ViewColumns = Vec<(String, String)>;

/// What one write reaches as the server resolves its name (see `crate::names`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The policy tables (indices) it reaches, each with (view column, base column) names when
    /// written through a view over it.
    pub tables: Vec<(usize, Option<ViewColumns>)>,
    /// Why its name could not be resolved before the message runs (then `tables` is every
    /// table it may be).
    pub unresolved: Option<String>,
    /// The columns of its `ON CONFLICT ON CONSTRAINT` constraint, when the catalog said.
    pub constraint_columns: Option<Vec<String>>,
    /// Why the write cannot be followed to the tables it reaches (a view on the way whose
    /// INSTEAD OF trigger or rule takes it over): refused as `opaque` for each of them.
    pub taken_over: Option<String>,
    /// Unqualified names of its WHERE that the catalog says are the target's columns and
    /// none of the relations' beside it (`UPDATE … FROM`, `DELETE … USING`).
    pub mine: Vec<String>,
    /// Through a view: the WHERE the write really applies, in the base table's columns (the
    /// statement's WHERE and every level's view WHERE, view columns replaced by what they
    /// show; see `crate::names`), judged instead of the statement's own.
    pub predicate: Option<Where>,
}

/// What write `w` of statement `index` reaches (`None`: judged by its name).
pub type TablesOf<'a> = dyn Fn(usize, &Write) -> Option<Reach> + 'a;

/// Who is asking, as far as the policy cares.
#[derive(Clone, Copy)]
pub struct SessionView<'a> {
    pub user: &'a str,
    pub application_name: &'a str,
    /// A mode the session asked for (`SET blastwall.mode`); only ever stricter.
    pub session_mode: Option<Mode>,
    /// The protected columns of a table as (policy name, name now), when the catalog said
    /// (`None`: the policy's names).
    pub columns: Option<&'a ColumnNames<'a>>,
    /// The (schema, table, column) that own a sequence, when the catalog said.
    pub sequence_owners: Option<&'a SequenceOwners<'a>>,
    /// In which databases blastwall has seen the policy tables (`None`: not known, as
    /// offline — any database may hold them).
    pub seen_in: Option<&'a SeenIn<'a>>,
}

impl<'a> SessionView<'a> {
    /// A session as the policy sees it with nothing learned from the catalog (as offline).
    pub fn offline(user: &'a str, application_name: &'a str, session_mode: Option<Mode>) -> Self {
        SessionView { user, application_name, session_mode, columns: None, sequence_owners: None, seen_in: None }
    }
}

/// One rule's objection to one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A stable rule name, documented in README.md.
    pub rule: &'static str,
    pub mode: Mode,
    /// e.g. `DELETE on public.users`.
    pub what: String,
    /// e.g. `range predicate (BETWEEN) on protected column id`.
    pub why: String,
    pub hint: &'static str,
    /// Where the rule comes from: `policies/incident.toml line 12`, or the defaults.
    pub source: String,
    /// The statement's text, for its fingerprint.
    pub statement: String,
}

/// All findings for a query string, in statement order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub findings: Vec<Finding>,
    /// The policy tables (schema, name) whose text rules the judgement applied to what the
    /// message writes (and those foreign keys' actions reach from it), when nothing else can
    /// change a policy table's rows (`guard::reached`); `None`: not known.
    pub reached: Option<Vec<super::ReachedTable>>,
    /// Some update it judged reaches a policy table whose updates are limited under another
    /// name than the policy's (by its OID: renamed, swapped out, moved): counted like one
    /// naming it (`guard::need`).
    pub updates_limited_by_identity: bool,
    /// The names its writes were judged by and the relation each led to (`precheck::named`).
    pub names: Vec<(String, u32)>,
    /// A write's name that a policy table is called by led elsewhere (a shadowing table,
    /// another schema first on the path), or leads to a relation another role may swap
    /// (`names::movable`): counted, so that where it leads is read again around its run
    /// (`precheck::named`).
    pub recheck: bool,
}

impl Decision {
    /// The strictest mode among the findings, if any.
    pub fn mode(&self) -> Option<Mode> {
        self.findings.iter().map(|f| f.mode).max()
    }
}

const HINT_RANGE: &str = "Select rows by an attribute instead of an id range (for example WHERE auth_source = 'test'), or list the exact ids (WHERE id IN (…) or id = ANY($1)).";
const HINT_WHERE: &str = "Add a WHERE clause that names the rows to change. To empty a table on purpose, use a role whose policy mode allows it.";
const HINT_UPSERT: &str =
    "Use a plain INSERT, so that a collision with an existing row fails loudly, or ON CONFLICT … DO NOTHING.";
const HINT_FORBIDDEN: &str = "The policy forbids this operation on this table. Change it through a role whose policy mode allows it (for example a migrator role in warn mode).";
const HINT_OPAQUE: &str = "blastwall cannot see what this statement writes. Run the statements it contains directly, or ask for a role whose policy allows it.";
pub(super) const HINT_LIMIT: &str = "Change fewer rows per statement (narrow the WHERE clause, or work in batches), or ask for a role whose policy allows it. Nothing was changed.";
/// The same limit in warn mode: the statement ran, and its changes stay.
pub(super) const HINT_LIMIT_WARN: &str = "Change fewer rows per statement (narrow the WHERE clause, or work in batches). Warn mode let this statement run: its changes were kept.";
const HINT_ASSIGN: &str = "A protected column identifies rows; changing it moves a row's identity (an id range shifted into or out of a test window). Change it through a role or table whose policy sets allow_protected_update = true.";
const HINT_CURSOR: &str = "Write the row's key explicitly (WHERE id = …) instead of WHERE CURRENT OF.";

/// The decision for the statements of one message.
pub fn decide(statements: &[Statement], who: SessionView<'_>, policy: &Policy) -> Decision {
    decide_resolved(statements, who, policy, None)
}

/// [`decide`], with each write's relation as the server resolves it (`reach`; without it, or
/// where it says `None`, a name matches the policy's table of that name — offline).
pub fn decide_resolved(
    statements: &[Statement],
    who: SessionView<'_>,
    policy: &Policy,
    reach: Option<&TablesOf<'_>>,
) -> Decision {
    let mut d = Decision::default();
    for (i, st) in statements.iter().enumerate() {
        for w in &st.writes {
            let r = reach.and_then(|f| f(i, w));
            write_findings(w, st, r.as_ref(), who, policy, &mut d);
        }
        if st.calls_functions {
            let mode = match policy.opaque.functions {
                Action::Block => Some(Mode::Enforce),
                Action::Warn => Some(Mode::Warn),
                Action::Allow | Action::Verify => None,
            };
            if let Some(mode) = mode {
                let f = Finding {
                    rule: "opaque",
                    mode,
                    what: "statement".into(),
                    why: "a call of a function that is not a well-known built-in (its body is not visible to the parser) (opaque.functions)".into(),
                    hint: HINT_OPAQUE,
                    source: defaults_source(policy),
                    statement: st.text.clone(),
                };
                push(&mut d, who, policy, None, f);
            }
        }
        for o in &st.opaque {
            let mode = match policy.opaque.for_key(o.key()) {
                Action::Block => Mode::Enforce,
                Action::Warn => Mode::Warn,
                // Verified by the pre-check instead (see guard::check_need).
                Action::Allow | Action::Verify => continue,
            };
            push(
                &mut d,
                who,
                policy,
                None,
                Finding {
                    rule: "opaque",
                    mode,
                    what: "statement".into(),
                    why: format!(
                        "{} (opaque.{} = {})",
                        o.describe(),
                        o.key(),
                        if mode == Mode::Enforce { "block" } else { "warn" }
                    ),
                    hint: HINT_OPAQUE,
                    source: defaults_source(policy),
                    statement: st.text.clone(),
                },
            );
        }
    }
    d
}

pub(super) fn defaults_source(policy: &Policy) -> String {
    format!("defaults of {}", policy.source_names())
}

/// The mode a rule applies in: the role's, else the application's, else the table's, else
/// the defaults'; a session may only make it stricter.
pub fn mode_for(who: SessionView<'_>, policy: &Policy, table: Option<&TablePolicy>) -> Mode {
    let base = policy
        .roles
        .get(who.user)
        .and_then(|s| s.mode)
        .or_else(|| policy.applications.get(who.application_name).and_then(|s| s.mode))
        .or_else(|| table.and_then(|t| t.mode))
        .unwrap_or(policy.mode);
    match who.session_mode {
        // A session in dry-run changes nothing at all, whatever the rules say.
        Some(Mode::DryRun) => Mode::DryRun,
        Some(s) => base.max(s),
        None => base,
    }
}

fn push(d: &mut Decision, who: SessionView<'_>, policy: &Policy, table: Option<&TablePolicy>, mut f: Finding) {
    let mode = mode_for(who, policy, table);
    // A finding capped at warn (a warn-level opaque action) stays at most warn.
    f.mode = if f.mode == Mode::Warn { mode.min(Mode::Warn) } else { mode };
    if f.mode != Mode::Off {
        d.findings.push(f);
    }
}

/// The row limits that apply to a table as the server named it: its own, else the defaults.
pub fn limits_for<'p>(
    policy: &'p Policy,
    schema: &str,
    name: &str,
) -> (Option<u64>, Option<u64>, Option<&'p TablePolicy>) {
    let t = policy.tables.iter().find(|t| t.schema == schema && t.name == name);
    (
        t.and_then(|t| t.max_delete_rows).or(policy.max_delete_rows),
        t.and_then(|t| t.max_update_rows).or(policy.max_update_rows),
        t,
    )
}

/// "delete 20 rows from public.users, 20 from public.subscriptions and update 3 rows in …"
pub fn describe_counts(counts: &[TableCount]) -> String {
    let list = |items: Vec<(u64, String)>, verb: &str, prep: &str| -> Option<String> {
        let mut it = items.into_iter().filter(|(n, _)| *n > 0);
        let (n0, t0) = it.next()?;
        let mut s = format!("{verb} {n0} row{} {prep} {t0}", if n0 == 1 { "" } else { "s" });
        for (n, t) in it {
            s.push_str(&format!(", {n} {prep} {t}"));
        }
        Some(s)
    };
    let dels = list(counts.iter().map(|c| (c.deleted, c.qualified())).collect(), "delete", "from");
    let upds = list(counts.iter().map(|c| (c.updated, c.qualified())).collect(), "update", "in");
    let ins = list(counts.iter().map(|c| (c.inserted, c.qualified())).collect(), "insert", "into");
    let parts: Vec<String> = [dels, upds, ins].into_iter().flatten().collect();
    if parts.is_empty() {
        "change no rows".into()
    } else {
        parts.join("; ")
    }
}

fn write_findings(
    w: &Write,
    st: &Statement,
    reach: Option<&Reach>,
    who: SessionView<'_>,
    policy: &Policy,
    d: &mut Decision,
) {
    // Only a finding names it (most writes have none: not built for them).
    let what = || {
        let target = w.target.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "an unnamed object".into());
        format!("{} on {target}", w.op.verb())
    };
    // The view a write goes through, per policy table it reaches that way.
    let through_view = |t: &TablePolicy| {
        let r = reach?;
        r.tables.iter().find(|(i, _)| policy.tables.get(*i).is_some_and(|p| std::ptr::eq(p, t)))?.1.as_ref()
    };
    let mut finding = |table: Option<&TablePolicy>, rule: &'static str, why: String, hint: &'static str| {
        let source = table.map(|t| t.source.clone()).unwrap_or_else(|| defaults_source(policy));
        // Name the table the policy protects when the statement's name resolved to it.
        let what = match table {
            Some(t) if through_view(t).is_some() => format!("{} (which reaches {})", what(), t.qualified()),
            Some(t) if reach.is_some_and(|r| r.unresolved.is_none()) => format!("{} on {}", w.op.verb(), t.qualified()),
            Some(t) if w.target.as_ref().is_some_and(|x| t.matches(x)) => {
                format!("{} on {}", w.op.verb(), t.qualified())
            }
            _ => what(),
        };
        let why = match reach.and_then(|r| r.unresolved.as_ref()) {
            Some(u) if table.is_some() => format!("{why} ({u})"),
            _ => why,
        };
        let f = Finding { rule, mode: Mode::Enforce, what, why, hint, source, statement: st.text.clone() };
        push(d, who, policy, table, f);
    };
    let tables: Vec<&TablePolicy> = match (&w.target, reach) {
        (_, Some(r)) => r.tables.iter().filter_map(|(i, _)| policy.tables.get(*i)).collect(),
        (Some(t), None) => policy.tables.iter().filter(|p| p.matches(t)).collect(),
        (None, None) => Vec::new(),
    };
    // The current names of a table's protected columns, with their policy names; through a
    // view, the view's names of the protected columns it shows (`uid` for `users.id`).
    let current = |t: &TablePolicy| -> Vec<(String, String)> {
        who.columns
            .and_then(|f| f(t))
            .unwrap_or_else(|| t.protected_columns.iter().map(|c| (c.clone(), c.clone())).collect())
    };
    // With the table's own current name of each: (policy name, name here, the table's name).
    let protected_named = |t: &TablePolicy| -> Vec<(String, String, String)> {
        let named = current(t);
        match through_view(t) {
            Some(map) => named
                .into_iter()
                .flat_map(|(p, now)| {
                    map.iter()
                        .filter(|(_, base)| *base == now)
                        .map(|(v, _)| (p.clone(), v.clone(), now.clone()))
                        .collect::<Vec<_>>()
                })
                .collect(),
            None => named.into_iter().map(|(p, now)| (p, now.clone(), now)).collect(),
        }
    };
    let protected =
        |t: &TablePolicy| -> Vec<(String, String)> { protected_named(t).into_iter().map(|(p, v, _)| (p, v)).collect() };
    // What a protected column named `col` here is: a view's alias of the table's column, that
    // column renamed since the policy named it, or both.
    let which = |t: &TablePolicy, policy_name: &str, col: &str| -> String {
        let base = protected_named(t)
            .into_iter()
            .find(|(p, v, _)| p == policy_name && v == col)
            .map_or_else(|| col.to_string(), |(_, _, now)| now);
        let renamed = (policy_name != base).then(|| format!("{policy_name} in the policy, renamed since"));
        match (base != col, renamed) {
            (true, Some(r)) => format!(" (the view's name for {}.{base}: {r})", t.qualified()),
            (true, None) => format!(" (the view's name for {}.{base})", t.qualified()),
            (false, Some(r)) => format!(" ({r})"),
            (false, None) => String::new(),
        }
    };
    // Judged through a view in the base's names: the view's own names of a column.
    let shown = |t: &TablePolicy, col: &str| -> String {
        let mut names: Vec<&str> = match (reach.and_then(|r| r.predicate.as_ref()), through_view(t)) {
            (Some(_), Some(map)) => map.iter().filter(|(v, b)| b == col && v != col).map(|(v, _)| v.as_str()).collect(),
            _ => Vec::new(),
        };
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            String::new()
        } else {
            format!(" (through the view: {})", names.join(", "))
        }
    };
    if let Some(why) = reach.and_then(|r| r.taken_over.as_ref()) {
        for t in &tables {
            finding(Some(t), "opaque", why.clone(), HINT_OPAQUE);
        }
    }
    for t in tables.iter().filter(|t| !t.allow_protected_update) {
        for (policy_name, col) in protected(t).iter().filter(|(_, col)| w.op.assigned().contains(col)) {
            let why = format!("SET of protected column {col}{}", which(t, policy_name, col));
            finding(Some(t), "protected-assign", why, HINT_ASSIGN);
        }
    }
    match &w.op {
        op if op.is_row_write() => {
            // Through a view, what it really applies to the base table, in the base's names.
            let expanded = reach.and_then(|r| r.predicate.as_ref());
            let pred = w.predicate.as_ref().unwrap_or(&Where::Absent);
            let pred = &*pred.resolved(reach.map_or(&[][..], |r| &r.mine[..]));
            let pred = expanded.unwrap_or(pred);
            // A tautology over a protected column is named by the more precise rule.
            let mut ranged = false;
            for t in tables.iter().filter(|t| !t.protected_columns.is_empty()) {
                match pred {
                    Where::CurrentOf => finding(
                        Some(t),
                        "current-of",
                        "WHERE CURRENT OF cannot be checked against protected columns".into(),
                        HINT_CURSOR,
                    ),
                    Where::Cond(c) => {
                        let named = if expanded.is_some() { current(t) } else { protected(t) };
                        for (policy_name, col) in &named {
                            let kind = match (c.points.get(col), c.range_of(col)) {
                                (Some(Some(n)), _) if *n > policy.max_in_list => Some(RangeKind::LongList(*n)),
                                (Some(_), _) => None,
                                (None, Some(k)) => Some(k.clone()),
                                (None, None) => None,
                            };
                            if let Some(k) = kind {
                                ranged = true;
                                let why = format!(
                                    "range predicate ({k}) on protected column {col}{}{}",
                                    which(t, policy_name, col),
                                    shown(t, col)
                                );
                                finding(Some(t), "protected-range", why, HINT_RANGE);
                            }
                        }
                    }
                    Where::Absent | Where::Constant => {}
                }
            }
            if !(pred.restricts() || ranged && pred.names_columns()) {
                let required = match tables.first() {
                    Some(t) => t.require_where.unwrap_or(policy.require_where),
                    None => policy.require_where,
                };
                if required {
                    let why = if *pred == Where::Absent {
                        "no WHERE clause (every row)".to_string()
                    } else if pred.names_columns() {
                        "a WHERE clause that names the table's columns but does not restrict them: it compares the row with itself (t.id = t.id, or its table read again unrestricted: id IN (SELECT id FROM t)), has a branch true for every row (true OR …, a < 5 OR a >= 5), or a shape blastwall cannot show to restrict (IS NOT TRUE, CASE, a comparison inside a comparison); it may match every row".to_string()
                    } else if matches!(pred, Where::Cond(_)) {
                        "a WHERE clause that names none of the table's columns for sure (a name inside a subquery, or beside another relation, may be another relation's), so it may match every row; qualify the table's own columns with its name".to_string()
                    } else {
                        "a WHERE clause that does not restrict the table's rows (every row)".to_string()
                    };
                    finding(tables.first().copied(), "require-where", why, HINT_WHERE);
                }
            }
        }
        Op::Upsert { conflict_columns, constraint, .. } => {
            for t in tables.iter().filter(|t| t.forbid.contains(&Forbid::UpsertOverwrite)) {
                let covered = reach.and_then(|r| r.constraint_columns.as_ref()).filter(|c| !c.is_empty());
                if let (Some(c), Some(cols)) = (constraint, covered) {
                    let now: Vec<String> = who
                        .columns
                        .and_then(|f| f(t))
                        .map(|v| v.into_iter().map(|(_, n)| n).collect())
                        .unwrap_or_else(|| t.protected_columns.iter().cloned().collect());
                    if let Some(col) = cols.iter().find(|c| now.contains(c)) {
                        let why = format!("ON CONFLICT ON CONSTRAINT {c} DO UPDATE overwrites existing rows that share the protected column {col}");
                        finding(Some(t), "upsert-overwrite", why, HINT_UPSERT);
                    }
                } else if let Some(c) = constraint {
                    let why = format!("ON CONFLICT ON CONSTRAINT {c} may overwrite rows matched by protected columns, and cannot be checked statically");
                    finding(Some(t), "upsert-overwrite", why, HINT_UPSERT);
                } else if let Some(col) =
                    conflict_columns.iter().find(|c| protected(t).iter().any(|(_, now)| now == *c))
                {
                    let why = format!(
                        "ON CONFLICT ({col}) DO UPDATE overwrites existing rows that share the protected column {col}"
                    );
                    finding(Some(t), "upsert-overwrite", why, HINT_UPSERT);
                }
            }
        }
        Op::Truncate { cascade } => {
            for t in tables.iter().filter(|t| t.forbid.contains(&Forbid::Truncate)) {
                finding(
                    Some(t),
                    "forbid-truncate",
                    format!("TRUNCATE is forbidden on {}", t.qualified()),
                    HINT_FORBIDDEN,
                );
            }
            if *cascade {
                for t in policy
                    .tables
                    .iter()
                    .filter(|t| t.forbid.contains(&Forbid::Truncate) && !tables.iter().any(|m| std::ptr::eq(*m, *t)))
                {
                    let why = format!(
                        "TRUNCATE … CASCADE may also truncate {}, whose truncation is forbidden",
                        t.qualified()
                    );
                    finding(Some(t), "forbid-truncate", why, HINT_FORBIDDEN);
                }
            }
        }
        Op::SetUnlogged => {
            // Crash recovery empties an unlogged table, every streaming replica has it empty
            // and WAL-based backups leave its rows out: a truncation postponed.
            let guarded = |t: &&&TablePolicy| {
                t.forbid.contains(&Forbid::Truncate)
                    || t.forbid.contains(&Forbid::Drop)
                    || t.max_delete_rows.is_some()
                    || t.max_update_rows.is_some()
                    || !t.protected_columns.is_empty()
            };
            for t in tables.iter().filter(guarded) {
                let why = format!(
                    "{} would make {} (or a part of it) unlogged: crash recovery empties an unlogged table, a replica has none of its rows and WAL-based backups leave them out, which truncates it later",
                    w.op.verb(),
                    t.qualified()
                );
                finding(Some(t), "unlogged", why, HINT_FORBIDDEN);
            }
        }
        Op::DropTable { .. } => {
            for t in tables.iter().filter(|t| t.forbid.contains(&Forbid::Drop)) {
                finding(Some(t), "forbid-drop", format!("DROP is forbidden on {}", t.qualified()), HINT_FORBIDDEN);
            }
        }
        Op::DropSchema { cascade: true } => {
            let schema = w.target.as_ref().map(|t| t.name.as_str()).unwrap_or("");
            for t in policy.tables.iter().filter(|t| t.schema == schema && t.forbid.contains(&Forbid::Drop)) {
                let why = format!("DROP SCHEMA … CASCADE would drop {}, whose DROP is forbidden", t.qualified());
                finding(Some(t), "forbid-drop", why, HINT_FORBIDDEN);
            }
        }
        Op::DropSchema { cascade: false } => {}
        Op::DropDatabase => {
            // The policy names tables, not databases: a database created through blastwall
            // and never seen holding a policy table does not hold it; any other may.
            let db = w.target.as_ref().map_or("", |t| t.name.as_str());
            let held = |t: &TablePolicy| who.seen_in.is_none_or(|seen| seen(db, t));
            for t in policy.tables.iter().filter(|t| t.forbid.contains(&Forbid::Drop) && held(t)) {
                let where_ = if who.seen_in.is_some() {
                    "blastwall has seen it there, or did not create that database"
                } else {
                    "any database may hold it"
                };
                let why = format!("DROP DATABASE {db} may drop {} ({where_}), whose DROP is forbidden", t.qualified());
                finding(Some(t), "forbid-drop", why, HINT_FORBIDDEN);
            }
        }
        Op::DropOwned => {
            for t in policy.tables.iter().filter(|t| t.forbid.contains(&Forbid::Drop)) {
                let why = format!("{} may drop {}, whose DROP is forbidden", w.op.verb(), t.qualified());
                finding(Some(t), "forbid-drop", why, HINT_FORBIDDEN);
            }
        }
        Op::DropColumn(col) => {
            for t in tables.iter().filter(|t| t.forbid.contains(&Forbid::AlterDropColumn)) {
                let why = format!("dropping column {col} of {} is forbidden", t.qualified());
                finding(Some(t), "forbid-alter-drop-column", why, HINT_FORBIDDEN);
            }
        }
        Op::RenameTable | Op::RenameColumn(_) => {
            for t in tables.iter().filter(|t| t.forbid.contains(&Forbid::Rename)) {
                finding(
                    Some(t),
                    "forbid-rename",
                    format!("renaming {} or its columns is forbidden", t.qualified()),
                    HINT_FORBIDDEN,
                );
            }
        }
        Op::Setval | Op::AlterSequence | Op::DropSequence => {
            for t in policy.tables.iter().filter(|t| t.forbid.contains(&Forbid::Setval)) {
                let hit = match &w.target {
                    None => Some("a sequence given by an expression, which may be".to_string()),
                    Some(seq) => t
                        .sequences
                        .iter()
                        .find(|s| {
                            s.name == seq.name && seq.schema.as_ref().is_none_or(|x| Some(x) == s.schema.as_ref())
                        })
                        .map(|s| format!("sequence {}", s))
                        .or_else(|| {
                            // A sequence the catalog says a protected column owns.
                            let owners = who.sequence_owners.and_then(|f| f(seq))?;
                            owners
                                .iter()
                                .find(|(s, tb, col)| {
                                    *s == t.schema && *tb == t.name && t.protected_columns.contains(col)
                                })
                                .map(|(_, _, col)| format!("sequence {seq} (owned by protected column {col})"))
                        }),
                };
                if let Some(h) = hit {
                    let why = format!("{h} feeding a protected column of {} (moving it can hand real ids to test rows, or the reverse)", t.qualified());
                    finding(Some(t), "forbid-setval", why, HINT_FORBIDDEN);
                }
            }
        }
        _ => {}
    }
}
