//! The identity of the protected objects, read on the server before and after a checked
//! statement and compared: DDL whose reach the text cannot prove (a schema renamed and then
//! dropped with `CASCADE`, a table moved to another schema, a type dropped with `CASCADE`, a
//! column rewritten by `ALTER … TYPE … USING`, a table attached as a child of a new parent, a
//! trigger that truncates) is judged by what it did to the objects themselves.
//!
//! A policy table is found by its name and by the OID blastwall learned for it (both, when they
//! differ: a dropped and re-created table is found by its name again); a protected sequence
//! the same way, and also as the sequence a protected column's default takes from, whatever
//! it is called now (seventy-fourth pass H1: renamed, it was read nowhere). Per table the snapshot
//! holds its schema-qualified name, the storage file of it and of every inheritance child and
//! partition (`relfilenode`: TRUNCATE and table rewrites change it), every column's name and
//! type, the defaults of its protected columns, and its inheritance parents; per protected
//! sequence its name, position and definition; and how many objects call `setval()` (a view,
//! rule, operator or cast over it). Every function and operator is named with its schema, so
//! the client's `search_path` cannot change the answer.
//!
//! Owns: that query, reading it, and the comparison (`changes`). Does not own: when it runs
//! (`precheck::verify`) or what a change means for the verdict (`identity_findings`).

use std::collections::BTreeMap;

/// One snapshot: (policy object, OID, item) → value.
pub type Identity = BTreeMap<(String, String, String), String>;

/// What kind of change, which decides the policy rule it breaks (`findings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Dropped, or no longer found (its rows are gone): `forbid drop` or a delete limit.
    Gone,
    /// Renamed or moved to another schema: `forbid rename`.
    Moved,
    /// Its storage (or a child's) replaced — TRUNCATE, a rewrite: `forbid truncate` or a limit.
    Rewritten,
    /// A column dropped or changed: `forbid alter_drop_column` or `rename`.
    Column,
    /// The default of a protected column changed.
    Default,
    /// A new inheritance parent (whose TRUNCATE or DROP reaches it): `forbid truncate`/`drop`.
    Parents,
    /// A protected sequence moved or was redefined, or a hidden caller of setval was created.
    Sequence,
    /// Code autovacuum runs unseen was made or changed (`background`).
    Background,
}

/// A protected object that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The policy's name of the object (`public.users`), empty for the database as a whole.
    pub object: String,
    pub kind: Kind,
    pub what: String,
    /// A protected sequence moved: its OID, where it stood before and where it stands now
    /// (`None`: never called); put back by `putback`.
    pub sequence_was: Option<(u32, Option<i128>, Option<i128>)>,
}

/// `||` and `=` of `pg_catalog`, spelled out so that nothing in the client's path is used.
const EQ: &str = "OPERATOR(pg_catalog.=)";

/// How many objects of the database's own (OID from 16384 on) call `setval` without a call
/// in the text that runs them: views and rules, column defaults, check constraints, row
/// security policies (their expression trees name the function by OID), operators, casts and
/// aggregates. PostgreSQL records no dependency on a built-in function, so the trees are read.
const SETVAL_CALLERS: &str = "WITH f(ids) AS (SELECT pg_catalog.array_agg(p.oid) FROM pg_catalog.pg_proc p \
     WHERE p.proname OPERATOR(pg_catalog.=) 'setval'::pg_catalog.name AND p.pronamespace OPERATOR(pg_catalog.=) 11::pg_catalog.oid), \
     re(re) AS (SELECT pg_catalog.concat(':(op)?funcid (', pg_catalog.array_to_string(f.ids, '|'), ') ') FROM f) \
     SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_rewrite w, re WHERE w.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
       AND (w.ev_action::pg_catalog.text OPERATOR(pg_catalog.~) re.re OR w.ev_qual::pg_catalog.text OPERATOR(pg_catalog.~) re.re)) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attrdef a, re WHERE a.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
       AND a.adbin::pg_catalog.text OPERATOR(pg_catalog.~) re.re) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_constraint c, re WHERE c.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
       AND c.conbin::pg_catalog.text OPERATOR(pg_catalog.~) re.re) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_policy y, re \
       WHERE pg_catalog.concat(y.polqual, y.polwithcheck) OPERATOR(pg_catalog.~) re.re) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_operator o, f \
       WHERE o.oprcode::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (f.ids)) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cast k, f WHERE k.castfunc OPERATOR(pg_catalog.=) ANY (f.ids)) \
     OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_aggregate g, f \
       WHERE g.aggtransfn::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (f.ids) OR g.aggfinalfn::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (f.ids))";

/// The snapshot query of the protected objects of `policy`; `known` gives the OID learned for
/// a policy object. `None` when the policy protects no table.
pub fn sql(
    policy: &crate::policy::Policy,
    known: &dyn Fn(&str, &str) -> Option<u32>,
    full: bool,
    deferred: bool,
    rewritten: &[String],
    detached: &[String],
) -> Option<String> {
    if policy.tables.is_empty() {
        return None;
    }
    let lit = super::literal;
    let oid =
        |s: &str, n: &str| known(s, n).map_or("NULL::pg_catalog.oid".to_string(), |o| format!("{o}::pg_catalog.oid"));
    let quoted = |s: &str, n: &str| lit(&format!("\"{}\".\"{}\"", s.replace('"', "\"\""), n.replace('"', "\"\"")));
    let tables: Vec<String> = policy
        .tables
        .iter()
        .map(|t| {
            let cols: Vec<String> = t.protected_columns.iter().map(|c| lit(c)).collect();
            // Read by content only where a rewrite or a type change would be refused.
            let dig = !rewritten.is_empty() && (breaks(t, Kind::Rewritten) || breaks(t, Kind::Column));
            format!(
                "({}::pg_catalog.text, {}::pg_catalog.text, {}, ARRAY[{}]::pg_catalog.text[], {dig})",
                lit(&format!("{}.{}", t.schema, t.name)),
                quoted(&t.schema, &t.name),
                oid(&t.schema, &t.name),
                cols.join(", ")
            )
        })
        .collect();
    let mut seqs: Vec<String> = Vec::new();
    for t in &policy.tables {
        for s in &t.sequences {
            let schema = s.schema.clone().unwrap_or_else(|| t.schema.clone());
            let cols: Vec<String> = t.protected_columns.iter().map(|c| lit(c)).collect();
            let row = format!(
                "({}::pg_catalog.text, {}::pg_catalog.text, {}, {}::pg_catalog.text, ARRAY[{}]::pg_catalog.text[])",
                lit(&format!("{schema}.{}", s.name)),
                quoted(&schema, &s.name),
                oid(&schema, &s.name),
                lit(&format!("{}.{}", t.schema, t.name)),
                cols.join(", ")
            );
            if !seqs.contains(&row) {
                seqs.push(row);
            }
        }
    }
    if seqs.is_empty() {
        seqs.push(
            "(NULL::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.oid, NULL::pg_catalog.text, NULL::pg_catalog.text[])"
                .into(),
        );
    }
    let text = "::pg_catalog.text";
    let header = format!(
        "WITH RECURSIVE t(k, q, known, prot, dig) AS (VALUES {tables}), \
         sq(k, q, known, tk, prot) AS (VALUES {seqs}), \
         r AS (SELECT t.k, c.oid, c.relname, c.relnamespace, c.relfilenode, t.prot, t.dig FROM t, pg_catalog.pg_class c \
           WHERE c.oid {EQ} ANY (ARRAY[pg_catalog.to_regclass(t.q)::pg_catalog.oid, t.known])), \
         s AS (SELECT DISTINCT sq.k, c.oid, c.relname, c.relnamespace FROM sq, pg_catalog.pg_class c \
           WHERE c.oid {EQ} ANY (ARRAY[pg_catalog.to_regclass(sq.q)::pg_catalog.oid, sq.known]) \
           OR c.oid {EQ} ANY (ARRAY(SELECT d.refobjid FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_attrdef f ON f.oid {EQ} d.objid \
             JOIN pg_catalog.pg_attribute a ON a.attrelid {EQ} f.adrelid AND a.attnum {EQ} f.adnum \
             JOIN r ON r.oid {EQ} f.adrelid AND r.k {EQ} sq.tk \
             WHERE d.classid {EQ} 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
             AND d.refclassid {EQ} 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND a.attname::pg_catalog.text {EQ} ANY (sq.prot))) AND c.relkind {EQ} 'S'::pg_catalog.\"char\"), \
         tree(k, root, rel) AS (SELECT r.k, r.oid, r.oid FROM r UNION \
           SELECT tree.k, tree.root, i.inhrelid FROM pg_catalog.pg_inherits i, tree WHERE i.inhparent {EQ} tree.rel) \
",
        tables = tables.join(", "),
        seqs = seqs.join(", "),
    );
    // (branch, whether only the full snapshot reads it)
    let branches: [(String, bool); 10] = [
        (format!("SELECT r.k, r.oid{text}, 'name'{text}, pg_catalog.concat_ws('.', \
           (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid {EQ} r.relnamespace), r.relname) FROM r"), false),
        // Each file looked up by its OID (a join let the planner scan all of pg_class).
        (format!("SELECT z.k, z.root{text}, pg_catalog.concat('file ', z.rel{text}), z.f{text} FROM (SELECT tree.k, \
           tree.root, tree.rel, (SELECT c.relfilenode FROM pg_catalog.pg_class c WHERE c.oid {EQ} tree.rel) FROM tree) \
           z(k, root, rel, f) WHERE z.f IS NOT NULL"), false),
        (format!("SELECT r.k, r.oid{text}, pg_catalog.concat('column ', a.attnum{text}), \
           pg_catalog.concat(pg_catalog.concat_ws(' ', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), \
             a.attidentity, a.attgenerated), pg_catalog.chr(31), a.atttypid, ' ', a.atttypmod) \
           FROM r, pg_catalog.pg_attribute a WHERE a.attrelid {EQ} r.oid AND a.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 \
           AND NOT a.attisdropped"), true),
        (format!("SELECT r.k, r.oid{text}, pg_catalog.concat('default ', a.attnum{text}), \
           pg_catalog.concat(CASE WHEN a.attname{text} {EQ} ANY (r.prot) THEN 'p ' ELSE '- ' END, a.attname, ' ', \
           pg_catalog.regexp_replace(d.adbin{text}, ' :location -?[0-9]+', '', 'g'), pg_catalog.chr(31), \
           pg_catalog.pg_get_expr(d.adbin, d.adrelid)) FROM r \
           JOIN pg_catalog.pg_attribute a ON a.attrelid {EQ} r.oid AND NOT a.attisdropped \
             AND a.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 \
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid {EQ} a.attrelid AND d.adnum {EQ} a.attnum"), true),
        (format!("SELECT r.k, r.oid{text}, 'parents'{text}, coalesce((SELECT pg_catalog.string_agg(i.inhparent{text}, ',' \
           ORDER BY i.inhparent) FROM pg_catalog.pg_inherits i WHERE i.inhrelid {EQ} r.oid), '') FROM r"), true),
        (format!("SELECT s.k, s.oid{text}, 'name'{text}, pg_catalog.concat_ws('.', \
           (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid {EQ} s.relnamespace), s.relname) FROM s"), false),
        // Read for every check: a function a write calls can move a protected sequence (a
        // wrapper over setval in a DELETE's WHERE).
        (format!("SELECT s.k, s.oid{text}, 'position'{text}, CASE \
           WHEN pg_catalog.has_sequence_privilege(s.oid, 'SELECT,USAGE') \
           THEN coalesce(pg_catalog.pg_sequence_last_value(s.oid::pg_catalog.regclass){text}, 'unset') \
           ELSE 'unreadable' END FROM s"), false),
        // Its persistence too: crash recovery puts an unlogged sequence back.
        (format!("SELECT s.k, s.oid{text}, 'definition'{text}, pg_catalog.concat_ws(' ', q.seqincrement, q.seqmin, \
           q.seqmax, q.seqcycle, (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid {EQ} s.oid)) \
           FROM s, pg_catalog.pg_sequence q WHERE q.seqrelid {EQ} s.oid"), true),
        (format!("SELECT ''{text}, '0'{text}, 'setval callers'{text}, ({SETVAL_CALLERS}){text}"), true),
        (super::background::branch(), true),
    ];
    let mut selected: Vec<&str> = branches.iter().filter(|(_, f)| full || !f).map(|(b, _)| b.as_str()).collect();
    // Only where they fire after the count (`deferred_findings`). A deferrable foreign key's
    // triggers are internal, and run no user code — except where the session attached code to
    // its own temporary tables (the check's query is planned over them: `catalog::taint`).
    // Another session's temporary tables fire nothing in this one (twentieth pass N3: one
    // session's temporary constraint trigger refused every session's writes in a block).
    let deferrable = format!(
        "SELECT ''{text}, '0'{text}, 'deferrable triggers'{text}, pg_catalog.count(*){text} \
         FROM pg_catalog.pg_trigger g WHERE g.tgdeferrable \
           AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid {EQ} g.tgrelid \
             AND (c.relnamespace {EQ} pg_catalog.pg_my_temp_schema() \
               OR (NOT g.tgisinternal AND c.relpersistence OPERATOR(pg_catalog.<>) 't'::pg_catalog.\"char\")))"
    );
    if deferred {
        selected.push(&deferrable);
    }
    let digest = super::content::sql(rewritten);
    if !rewritten.is_empty() {
        selected.push(&digest);
    }
    let empty = super::detach::sql(detached);
    if !detached.is_empty() {
        selected.push(&empty);
    }
    Some(format!("{header}{}", selected.join(" UNION ALL ")))
}

/// The first column of the snapshot's rows in a counter reading (`as_reading`).
pub const MARK: &str = "blastwall:identity";

/// The snapshot `sql` as rows of a counter reading (six columns: the mark, the object, item
/// and value joined by U+0001, three zero counters, the OID), so that it rides in the same
/// statement as the counters — one statement, as a reading in the middle of a batch must be.
pub fn as_reading(sql: &str) -> String {
    format!(
        "SELECT '{MARK}'::pg_catalog.text, pg_catalog.concat_ws(pg_catalog.chr(1), x.k, x.item, x.v), \
         0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, x.o::pg_catalog.oid FROM ({sql}) x(k, o, item, v)"
    )
}

/// Reads a snapshot from a counter reading's rows (the others are left alone).
pub fn read(rows: &[Vec<Option<String>>]) -> Identity {
    rows.iter()
        .filter(|r| r.len() == 6 && r[0].as_deref() == Some(MARK))
        .filter_map(|r| {
            let joined = r[1].as_deref().unwrap_or_default();
            let mut parts = joined.splitn(3, '\u{1}');
            let (k, item, v) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            let oid = r[5].clone().unwrap_or_default();
            Some(((k.to_string(), oid, item.to_string()), v.to_string()))
        })
        .collect()
}

/// [`deferred_findings`] from a raw reading (a write counted in the middle of a batch, whose
/// deferred triggers fire at the batch's end or the client's COMMIT, after the count).
pub fn deferred_in(
    before: &[Vec<Option<String>>],
    after: &[Vec<Option<String>>],
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    plan: &super::CheckPlan,
) -> Vec<crate::policy::Finding> {
    deferred_findings(&read(before), &read(after), who, policy, &plan.statement, plan.verb)
}

/// The OID of the policy object `key` when a snapshot found it under that very name (to be
/// learned, so that a later rename or move is reported as one).
pub fn found_as(snapshot: &Identity, key: &str) -> Option<u32> {
    snapshot
        .iter()
        .find(|((k, _, item), v)| k == key && item == "name" && *v == key)
        .and_then(|((_, o, _), _)| o.parse().ok())
}

/// Learns the OIDs of the policy's tables and protected sequences from a reading's identity
/// snapshot (`identity::read`): a protected sequence is read by that OID once renamed or
/// moved (seventy-fourth pass H1), and its known steps are spent by it (`guard::need`).
pub(crate) fn learn_oids(
    catalog: &crate::catalog::Catalog,
    database: &str,
    policy: &crate::policy::Policy,
    identity: &Identity,
) {
    for t in &policy.tables {
        if let Some(oid) = found_as(identity, &format!("{}.{}", t.schema, t.name)) {
            catalog.learn_oid(database, &t.schema, &t.name, oid);
        }
        for s in &t.sequences {
            let schema = s.schema.as_deref().unwrap_or(&t.schema);
            if let Some(oid) = found_as(identity, &format!("{schema}.{}", s.name)) {
                catalog.learn_oid(database, schema, &s.name, oid);
            }
        }
    }
}

/// The end of a change's words when a child or partition is gone (not a rewrite of rows that
/// are still there: never decided by content).
pub(super) const CHILD_GONE: &str = "is gone or let go with rows (an empty one may be let go: DETACH PARTITION or NO INHERIT it in a statement of its own, then drop it)";

/// How far a protected sequence may move forward during one statement without a verdict:
/// its own inserted rows take values, and so may other sessions meanwhile.
const SEQUENCE_SLACK: i128 = 1000;

/// What changed between two snapshots: every item of `before` must be in `after` unchanged,
/// apart from what a statement may do in the normal course (add a column, a child, take
/// `inserted` values of a sequence plus others' meanwhile, drop an object that calls setval).
pub fn changes(before: &Identity, after: &Identity, inserted: u64) -> Vec<Change> {
    let mut out = Vec::new();
    // The objects found before (each once, by OID) that cannot be found after.
    let gone: Vec<&(String, String, String)> =
        before.keys().filter(|k| k.2 == "name" && !after.contains_key(*k)).collect();
    for (key @ (object, oid, item), was) in before {
        let now = after.get(key);
        let change = |kind: Kind, what: String| Change { object: object.clone(), kind, what, sequence_was: None };
        match (item.as_str(), now) {
            (_, None) if gone.iter().any(|g| g.0 == *object && g.1 == *oid) => {}
            ("setval callers", Some(now))
                if now.parse::<u64>().unwrap_or(u64::MAX) > was.parse::<u64>().unwrap_or(0) =>
            {
                out.push(change(
                    Kind::Sequence,
                    "an object that calls setval() was created (a view, rule, operator, cast or default)".into(),
                ));
            }
            ("setval callers" | "deferrable triggers" | super::detach::ITEM, _) => {}
            (super::background::ITEM, now) => {
                if let Some(what) = super::background::change(was, now.map_or("|", String::as_str)) {
                    out.push(change(Kind::Background, what));
                }
            }
            ("name", Some(now)) if now != was => {
                out.push(change(Kind::Moved, format!("moved or renamed: {was} is now {now}")))
            }
            ("position", Some(now)) if now != was => {
                let step = before
                    .get(&(object.clone(), oid.clone(), "definition".into()))
                    .and_then(|d| d.split(' ').next()?.parse::<i128>().ok())
                    .unwrap_or(1);
                let (w, n) = (was.parse::<i128>().ok(), now.parse::<i128>().ok());
                let forward = match (w, n) {
                    (Some(w), Some(n)) => (n - w) * step.signum(),
                    (None, Some(_)) => 1,
                    _ => -1,
                };
                let bound = (i128::from(inserted) + SEQUENCE_SLACK) * step.abs();
                if forward < 0 || forward > bound {
                    out.push(Change {
                        object: object.clone(),
                        kind: Kind::Sequence,
                        what: format!("sequence moved from {was} to {now}"),
                        sequence_was: oid.parse().ok().map(|o| (o, w, n)),
                    });
                }
            }
            (i, Some(now)) if i.starts_with("file ") && now != was => out.push(change(
                Kind::Rewritten,
                if i == format!("file {oid}") {
                    "truncated or rewritten (its storage was replaced)".into()
                } else {
                    format!("a child or partition (OID {}) was truncated or rewritten", &i[5..])
                },
            )),
            // A child let go by DETACH PARTITION or NO INHERIT, empty (`detach`).
            (i, None) if i.starts_with("file ") && super::detach::let_go_empty(after, &i[5..]) => {}
            (i, None) if i.starts_with("file ") => {
                out.push(change(Kind::Rewritten, format!("a child or partition (OID {}) {CHILD_GONE}", &i[5..])))
            }
            (i, now) if i.starts_with("column ") && now.map(|n| column_parts(n).1) != Some(column_parts(was).1) => out
                .push(change(
                    Kind::Column,
                    match now {
                        None => format!("column {} was dropped", first_word(was)),
                        Some(now) => format!("column {} is now {}", column_parts(was).0, column_parts(now).0),
                    },
                )),
            // `p name tree\x1fexpr` (a protected column's, by its name before) or `- name …`:
            // the expression's stored tree compared without its locations — by the OIDs it
            // names, not by its text, which reads differently under another `search_path` or
            // beside a temporary sequence of the same name (nineteenth pass FPt) — so that a
            // renamed column keeps its default. Its text is what a refusal shows.
            (i, Some(now)) if i.starts_with("default ") && was.starts_with("p ") => {
                let part = |v: &str, shown: bool| {
                    let rest = v.splitn(3, ' ').nth(2).unwrap_or("");
                    let (tree, text) = rest.split_once('\u{1f}').unwrap_or((rest, rest));
                    if shown { text } else { tree }.to_string()
                };
                if part(was, false) != part(now, false) {
                    let (w, n) = (part(was, true), part(now, true));
                    let none = |e: String| if e.is_empty() { "none".to_string() } else { e };
                    let col = was.split(' ').nth(1).unwrap_or("");
                    out.push(change(
                        Kind::Default,
                        format!("the default of {col} changed from {} to {}", none(w), none(n)),
                    ))
                }
            }
            ("parents", Some(now)) if now != was => out.push(change(
                Kind::Parents,
                "it was made a child or partition of another table (or stopped being one)".into(),
            )),
            ("definition", Some(now)) if now != was => {
                out.push(change(Kind::Sequence, "sequence definition changed".into()))
            }
            _ => {}
        }
    }
    for (object, _, _) in gone {
        out.push(Change {
            object: object.clone(),
            kind: Kind::Gone,
            what: "dropped, renamed or moved (it can no longer be found)".into(),
            sequence_was: None,
        });
    }
    out.dedup();
    super::content::judge(before, after, &mut out);
    out
}

/// A column's snapshot value as shown (`name type identity generated`, the type as this
/// session prints it) and as compared: its name, identity, generation and its type by OID and
/// modifier — a temporary type called `text` makes `text` print as `pg_catalog.text` without
/// changing any column (twentieth pass FPv).
fn column_parts(v: &str) -> (&str, String) {
    match v.split_once('\u{1f}') {
        Some((shown, typ)) => {
            let mut p = shown.rsplitn(3, ' ');
            let (generated, identity) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
            (shown, format!("{} {identity} {generated} {typ}", first_word(shown)))
        }
        None => (v, v.to_string()),
    }
}

pub(super) fn first_word(s: &str) -> &str {
    s.split(' ').next().unwrap_or(s)
}

/// Whether a change of this kind breaks a rule of the table's policy.
pub(super) fn breaks(t: &crate::policy::TablePolicy, kind: Kind) -> bool {
    use crate::policy::Forbid;
    let limited = t.max_delete_rows.is_some() || t.max_update_rows.is_some();
    match kind {
        Kind::Gone => t.forbid.contains(&Forbid::Drop) || limited,
        Kind::Moved => t.forbid.contains(&Forbid::Rename),
        Kind::Rewritten => t.forbid.contains(&Forbid::Truncate) || limited,
        Kind::Column => t.forbid.contains(&Forbid::AlterDropColumn) || t.forbid.contains(&Forbid::Rename),
        Kind::Default => !t.protected_columns.is_empty(),
        Kind::Parents => t.forbid.contains(&Forbid::Truncate) || t.forbid.contains(&Forbid::Drop),
        Kind::Sequence => t.forbid.contains(&Forbid::Setval) || !t.sequences.is_empty(),
        // Such code may write any policy table: any rule of one stands.
        Kind::Background => limited || !t.forbid.is_empty() || !t.protected_columns.is_empty(),
    }
}

const HINT_IDENTITY: &str = "The statement reached a protected object in a way its text does not show (in enforce mode it is rolled back). Change protected objects through a role whose policy mode allows it (for example a migrator role in warn mode).";

const HINT_BACKGROUND: &str = "In enforce mode it is rolled back. Index, statistics and range-type expressions of a table another role than the policy tables' owners owns may call built-in functions only (or C functions that are not volatile); make such objects, and the functions they call, through the policy tables' owner.";

/// The findings of rule `identity` for what changed, each in the mode of its object's policy.
pub fn findings(
    changes: &[Change],
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    statement: &str,
    verb: &str,
) -> Vec<crate::policy::Finding> {
    let mut out = Vec::new();
    for c in changes {
        let table = policy.tables.iter().find(|t| {
            let own = format!("{}.{}", t.schema, t.name) == c.object;
            let seq = t
                .sequences
                .iter()
                .any(|s| format!("{}.{}", s.schema.as_deref().unwrap_or(&t.schema), s.name) == c.object);
            let whole = c.object.is_empty() && (c.kind == Kind::Background || !t.sequences.is_empty());
            own || seq || whole
        });
        let Some(table) = table.filter(|t| breaks(t, c.kind)) else { continue };
        let subject = match (c.object.is_empty(), c.kind) {
            (true, Kind::Background) => "the policy tables".to_string(),
            (true, _) => "a protected sequence".to_string(),
            _ => c.object.clone(),
        };
        out.push(crate::policy::Finding {
            rule: "identity",
            mode: crate::policy::mode_for(who, policy, Some(table)),
            what: format!("{verb} reaching {subject}"),
            why: if c.kind == Kind::Background { c.what.clone() } else { format!("{subject}: {}", c.what) },
            hint: if c.kind == Kind::Background { HINT_BACKGROUND } else { HINT_IDENTITY },
            source: table.source.clone(),
            statement: statement.to_string(),
        });
    }
    out
}

const HINT_DEFERRED: &str = "Send the write outside a transaction block (blastwall then fires deferred triggers before it counts), or through a role whose policy mode allows it.";

/// Inside the client's own transaction block, a deferred constraint trigger fires at its
/// COMMIT, after blastwall counted: while the database has user-defined deferrable
/// constraint triggers, a checked write there is refused (rule `deferred-trigger`) — read
/// before the write and after it: one another session committed while the write waited for a
/// lock fires too (sixty-fourth pass H2).
pub fn deferred_findings(
    before: &Identity,
    after: &Identity,
    who: crate::policy::SessionView<'_>,
    policy: &crate::policy::Policy,
    statement: &str,
    verb: &str,
) -> Vec<crate::policy::Finding> {
    let key = (String::new(), "0".to_string(), "deferrable triggers".to_string());
    let n = |s: &Identity| s.get(&key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // DDL queues no trigger event of its own (it may make the trigger: the block's next write
    // is refused then).
    let n = if verb == "DDL" { n(before) } else { n(before).max(n(after)) };
    if n == 0 {
        return Vec::new();
    }
    vec![crate::policy::Finding {
        rule: "deferred-trigger",
        mode: crate::policy::mode_for(who, policy, None),
        what: verb.to_string(),
        why: format!(
            "inside a transaction block, and the database has {n} user-defined deferrable constraint trigger(s): what they do at COMMIT would not be counted"
        ),
        hint: HINT_DEFERRED,
        source: policy.source_names(),
        statement: statement.to_string(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(&str, &str, &str, &str)]) -> Identity {
        items.iter().map(|(a, b, c, d)| ((a.to_string(), b.to_string(), c.to_string()), d.to_string())).collect()
    }

    /// Twentieth pass FPv: a column's type is compared by OID, not by how it prints.
    #[test]
    fn a_columns_type_is_compared_by_its_oid() {
        let at = |shown: &str, typ: &str| snap(&[("public.users", "10", "column 4", &format!("{shown}\u{1f}{typ}"))]);
        let before = at("email text  ", "25 -1");
        assert!(changes(&before, &at("email pg_catalog.text  ", "25 -1"), 0).is_empty());
        let c = changes(&before, &at("email character varying(320)  ", "1043 324"), 0);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].what, "column email text   is now email character varying(320)  ");
        assert_eq!(changes(&before, &at("mail text  ", "25 -1"), 0).len(), 1, "renamed");
    }

    /// Nineteenth pass FPt: a default that names the same objects is the same default, however
    /// it reads; another tree is a change, shown by its text.
    #[test]
    fn a_default_is_compared_by_its_tree_not_its_text() {
        let tree = "{FUNCEXPR :funcid 1574 :args ({CONST :consttype 2205 :constvalue 4 [ 1 2 0 0 ]})}";
        let at = |t: &str, text: &str| snap(&[("public.users", "10", "default 1", &format!("p id {t}\u{1f}{text}"))]);
        let before = at(tree, "nextval('web_user_id_seq'::regclass)");
        let requalified = at(tree, "nextval('public.web_user_id_seq'::regclass)");
        assert!(changes(&before, &requalified, 0).is_empty());
        let other = at(&tree.replace("[ 1 2", "[ 9 2"), "nextval('web_user_id_seq'::regclass)");
        let c = changes(&before, &other, 0);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].what.contains("changed from nextval('web_user_id_seq'::regclass)"), "{c:?}");
    }

    #[test]
    fn a_moved_table_a_dropped_column_and_a_rewrite_are_changes() {
        let before = snap(&[
            ("public.users", "10", "name", "public.users"),
            ("public.users", "10", "file 10", "100"),
            ("public.users", "10", "column 4", "email text"),
            ("public.users", "10", "default 1", "p id "),
        ]);
        let same = changes(&before, &before, 0);
        assert!(same.is_empty(), "{same:?}");
        let mut after = before.clone();
        after.insert(("public.users".into(), "10".into(), "name".into()), "archive.users".into());
        after.insert(("public.users".into(), "10".into(), "file 10".into()), "101".into());
        after.remove(&("public.users".into(), "10".into(), "column 4".into()));
        after.insert(("public.users".into(), "10".into(), "column 5".into()), "z e".into());
        let c = changes(&before, &after, 0);
        let whats: Vec<&str> = c.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(whats.len(), 3, "{whats:?}");
        assert!(whats.iter().any(|w| w.contains("archive.users")) && whats.iter().any(|w| w.contains("email")));
        // Gone altogether: one change, not one per item.
        let c = changes(&before, &Identity::new(), 0);
        assert_eq!(c.len(), 1, "{c:?}");
    }

    #[test]
    fn a_sequence_may_move_forward_by_what_was_inserted_only() {
        let before = snap(&[("s", "7", "position", "100"), ("s", "7", "definition", "1 1 9 f")]);
        let at = |v: &str| snap(&[("s", "7", "position", v), ("s", "7", "definition", "1 1 9 f")]);
        assert!(changes(&before, &at("105"), 5).is_empty());
        assert_eq!(changes(&before, &at("5"), 0)[0].sequence_was, Some((7, Some(100), Some(5))));
        assert_eq!(changes(&before, &at("unset"), 0).len(), 1);
        assert_eq!(changes(&before, &at("100000"), 5).len(), 1);
    }
}
