//! Point writes the catalog proves small: a DELETE or UPDATE pinned by `=`, a short `IN` or
//! `= ANY` of a literal array on every column of a unique index, of a plain table with no user
//! triggers, no rules, no children and no foreign key that cascades from it, whose text and
//! table run no user's code (`plain`, `code_free`: an operator of a user's beside the pin, a
//! user's `=` found first on the search_path, a cast to a domain, a CHECK, default, generated
//! column or index expression of an UPDATE, row security), changes at most as many rows as the
//! values listed, and nothing else. When that many is within every limit the
//! write is relayed without counting: the client's text as extended-protocol messages of its
//! own, one assertion of the proof behind it and the check that the assertion's prepared
//! statement is blastwall's (`prepared::Prepared::check_unnamed`), one Sync (one implicit
//! transaction), so that a
//! proof broken meanwhile by DDL
//! through another connection makes the server roll the write back, and blastwall counts it as
//! before.
//!
//! Owns: which statements qualify (`candidate`), the catalog proof and its cache (`Proofs`,
//! kept by the guard, dropped whenever the catalog forgets its answers), and that uncounted run (`verify`, which falls
//! back to the counted `super::verify`). Does not own: the limits (`policy`) or the counting.

use super::{Backend, CheckPlan, Outcome, PrecheckError, Request, TableCount};
use crate::analyze::{Op, Statement, Where};
use crate::policy::{Decision, Policy};
use crate::wire::messages::{be, fe, TxStatus};
use bytes::{BufMut, BytesMut};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a proof is trusted (the assertion behind each write checks it again anyway).
const TTL: Duration = Duration::from_secs(30);

/// A lone DELETE or UPDATE without RETURNING (its replies are small): its relation as written
/// and, when its WHERE is plain enough to prove it small (`plain_tail`), the columns it pins
/// with how many values each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub delete: bool,
    pub schema: Option<String>,
    pub name: String,
    pub pins: Vec<(String, usize)>,
    /// The operators its text uses (`plain::operators`): no user's operator of these names
    /// may exist for the proof to hold.
    pub ops: Vec<String>,
}

/// What the catalog says about every relation of a name.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    relations: Vec<Rel>,
}

/// One relation of the name.
#[derive(Debug, Clone, Default)]
struct Rel {
    schema: String,
    /// A plain table whose writes reach no other rows (`table_ok`).
    ok: bool,
    oid: u32,
    /// Every trigger on it (foreign keys' included), to see one added or replaced since.
    triggers: Vec<u32>,
    /// Its usable unique indexes (`index_ok`) and their columns, sorted.
    indexes: Vec<(u32, Vec<String>)>,
}

/// (database, schema as written, name, a DELETE, the operators of its text).
type Key = (String, Option<String>, String, bool, Vec<String>);

/// The proofs learned, when, and under which generation of the catalog's answers: a proof
/// learned before the catalog last forgot anything (DDL passed through blastwall) is not used.
#[derive(Default)]
pub struct Proofs {
    map: DashMap<Key, (Arc<Proof>, Instant, u64)>,
    /// What deletes reach (`reach`; `None`: not proven), kept alike.
    reach: DashMap<Key, (Option<Arc<super::reach::Reach>>, Instant, u64)>,
}

impl Proofs {
    fn get(&self, db: &str, p: &Point, generation: u64) -> Option<Arc<Proof>> {
        let e = self.map.get(&key(db, p))?;
        (e.1.elapsed() < TTL && e.2 == generation).then(|| e.0.clone())
    }

    fn learn(&self, db: &str, p: &Point, proof: Proof, generation: u64) {
        self.map.insert(key(db, p), (Arc::new(proof), Instant::now(), generation));
    }

    fn drop_one(&self, db: &str, p: &Point) {
        self.map.remove(&key(db, p));
    }

    /// The cached answer of `reach` (`Some(None)`: asked, not proven).
    pub(super) fn reach(&self, db: &str, p: &Point, generation: u64) -> Option<Option<Arc<super::reach::Reach>>> {
        let e = self.reach.get(&key(db, p))?;
        (e.1.elapsed() < TTL && e.2 == generation).then(|| e.0.clone())
    }

    pub(super) fn learn_reach(&self, db: &str, p: &Point, r: Option<Arc<super::reach::Reach>>, generation: u64) {
        self.reach.insert(key(db, p), (r, Instant::now(), generation));
    }

    /// A reading's assertion failed: asked again next time.
    pub(super) fn drop_reach(&self, db: &str, p: &Point) {
        self.reach.remove(&key(db, p));
    }
}

fn key(db: &str, p: &Point) -> Key {
    (db.to_string(), p.schema.clone(), p.name.clone(), p.delete, p.ops.clone())
}

/// The write of a message, when it may qualify: one DELETE or UPDATE statement, nothing opaque,
/// no `RETURNING`; pins only without a function call, `COLLATE` or nested array after its
/// WHERE (a volatile function is evaluated per row; a nested array holds more values than its
/// top level shows).
pub fn candidate(statements: &[Statement]) -> Option<Point> {
    let [st] = statements else { return None };
    let [w] = &st.writes[..] else { return None };
    let simple = st.opaque.is_empty()
        && st.executes.is_empty()
        && st.prepare.is_none()
        && !st.transaction_control
        && !st.copy_from_stdin
        && !st.ddl
        && !st.calls_functions
        && st.session_mode.is_none();
    let delete = match w.op {
        Op::Delete => true,
        Op::Update { .. } => false,
        _ => return None,
    };
    let Some(Where::Cond(c)) = &w.predicate else { return None };
    let target = w.target.as_ref()?;
    if !simple || st.text.to_ascii_lowercase().contains("returning") {
        return None;
    }
    // Pinned only when nothing of the text runs code of its own (`plain`).
    let ops = super::plain::operators(&st.text).filter(|_| super::plain::tail(&st.text));
    let pins = match ops {
        Some(_) => c.points.iter().filter_map(|(k, n)| Some((k.clone(), (*n)?))).collect(),
        None => Vec::new(),
    };
    let ops = ops.unwrap_or_default();
    Some(Point { delete, schema: target.schema.clone(), name: target.name.clone(), pins, ops })
}

/// The relations named like the write's target (relations a DELETE or UPDATE can name), all
/// of which must be proven: the FROM items and the condition on `c` and `n`.
pub(super) fn relations(p: &Point) -> (&'static str, String) {
    let schema = match &p.schema {
        Some(s) => format!(" AND n.nspname OPERATOR(pg_catalog.=) {}", super::literal(s)),
        None => String::new(),
    };
    (
        "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace",
        format!(
            "c.relname OPERATOR(pg_catalog.=) {}{schema} \
             AND c.relkind::pg_catalog.text OPERATOR(pg_catalog.=) ANY ('{{r,p,v,f,m}}'::pg_catalog.text[])",
            super::literal(&p.name)
        ),
    )
}

/// The kinds of column an index may have: int2, int4, int8, text, varchar, uuid.
pub(super) const TYPES: &str = "'{21,23,20,25,1043,2950}'::pg_catalog.oid[]";

/// `c` is a plain table whose writes reach no other rows: no rules, no children, no user
/// trigger, no foreign key from another table whose action for this kind of write
/// cascades, sets null or a default, and runs no user's code (`code_free`).
fn table_ok(p: &Point) -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    let action = if p.delete { "f.confdeltype" } else { "f.confupdtype" };
    format!(
        "(c.relkind {eq} 'r' AND NOT c.relhasrules AND NOT c.relhassubclass \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid {eq} c.oid AND NOT t.tgisinternal) \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint f WHERE f.confrelid {eq} c.oid AND f.contype {eq} 'f' \
           AND {action}::pg_catalog.text {eq} ANY ('{{c,n,d}}'::pg_catalog.text[])) \
         AND {})",
        code_free(p)
    )
}

/// Nothing of a write of `p` on `c` runs a user's code: no operator of a user's (any schema,
/// any types: one earlier on the search_path is found first, and a cast reaches others) named
/// like one the text uses; no row security (its policies' expressions run per row); and for
/// an UPDATE, no CHECK or exclusion constraint, default, generated column or index of the
/// table whose expression calls anything but built-in functions and operators, and no column
/// of a type of a user's but an enum (a domain's CHECK runs on assignment) — built-ins are
/// pinned, so any dependency recorded on a function, operator or type is a user's.
fn code_free(p: &Point) -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    let ops: Vec<String> = p.ops.iter().map(|o| super::literal(o)).collect();
    let operators = format!(
        "NOT EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oprname {eq} ANY (ARRAY[{}]::pg_catalog.name[]) \
         AND o.oprnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace)",
        ops.join(", ")
    );
    if p.delete {
        return format!("{operators} AND NOT c.relrowsecurity");
    }
    let class = |c: &str| format!("'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid");
    let code = format!("ARRAY[{}, {}, {}]", class("pg_proc"), class("pg_operator"), class("pg_type"));
    let on = |catalog: &str, id: &str, of: &str| {
        format!(
            "NOT EXISTS (SELECT FROM pg_catalog.{catalog} x JOIN pg_catalog.pg_depend d ON d.classid {eq} {} \
             AND d.objid {eq} x.{id} WHERE x.{of} {eq} c.oid AND d.refclassid {eq} ANY ({code}))",
            class(if catalog == "pg_index" { "pg_class" } else { catalog })
        )
    };
    format!(
        "{operators} AND NOT c.relrowsecurity AND {} AND {} AND {} \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid {eq} {} AND d.objid {eq} c.oid \
           AND d.objsubid OPERATOR(pg_catalog.>) 0 AND d.refclassid {eq} {} \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid {eq} t.typelem \
             WHERE t.oid {eq} d.refobjid AND (t.typtype {eq} 'e' OR e.typtype {eq} 'e')))",
        on("pg_constraint", "oid", "conrelid"),
        on("pg_attrdef", "oid", "adrelid"),
        on("pg_index", "indexrelid", "indrelid"),
        class("pg_class"),
        class("pg_type"),
    )
}

/// `i` is a unique index of `c` whose equality is the column's: valid, checked at once, not
/// partial, no expressions, default operator classes, every column NOT NULL, of a type in
/// `TYPES` and with a deterministic collation (in the column and in the index).
fn index_ok() -> String {
    let eq = "OPERATOR(pg_catalog.=)";
    format!(
        "(i.indrelid {eq} c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indislive \
         AND i.indpred IS NULL AND i.indexprs IS NULL \
         AND NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indclass::pg_catalog.oid[]) k(oc) \
           JOIN pg_catalog.pg_opclass op ON op.oid {eq} k.oc WHERE NOT op.opcdefault) \
         AND NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indcollation::pg_catalog.oid[]) k(co) \
           JOIN pg_catalog.pg_collation cl ON cl.oid {eq} k.co WHERE NOT cl.collisdeterministic) \
         AND NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) k(at) \
           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid {eq} c.oid AND a.attnum {eq} k.at \
           LEFT JOIN pg_catalog.pg_collation cl ON cl.oid {eq} a.attcollation \
           WHERE a.attname IS NULL OR NOT a.attnotnull OR NOT a.atttypid {eq} ANY ({TYPES}) \
             OR NOT coalesce(cl.collisdeterministic, true)))"
    )
}

/// The catalog question: one row per relation, usable unique index and column.
fn proof_sql(p: &Point) -> String {
    let (from, cond) = relations(p);
    format!(
        "SELECT n.nspname::pg_catalog.text, {}::pg_catalog.text, i.indexrelid::pg_catalog.text, \
           a.attname::pg_catalog.text, c.oid::pg_catalog.text, \
           (SELECT pg_catalog.string_agg(t.oid::pg_catalog.text, ',') FROM pg_catalog.pg_trigger t \
             WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid) FROM {from} \
         LEFT JOIN pg_catalog.pg_index i ON {} \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid \
           AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[]) \
         WHERE {cond}",
        table_ok(p),
        index_ok()
    )
}

/// Reads the catalog's answer.
fn read_proof(rows: &[Vec<Option<String>>]) -> Proof {
    let mut proof = Proof::default();
    for r in rows {
        let get = |i: usize| r.get(i).and_then(|v| v.clone());
        let (Some(schema), Some(Ok(oid))) = (get(0), get(4).map(|o| o.parse::<u32>())) else { continue };
        if !proof.relations.iter().any(|r| r.oid == oid) {
            let triggers = get(5).unwrap_or_default().split(',').filter_map(|t| t.parse().ok()).collect();
            proof.relations.push(Rel { schema, ok: get(1).as_deref() == Some("true"), oid, triggers, indexes: vec![] });
        }
        let Some(rel) = proof.relations.iter_mut().find(|r| r.oid == oid) else { continue };
        if let (Some(Ok(ix)), Some(col)) = (get(2).map(|i| i.parse::<u32>()), get(3)) {
            match rel.indexes.iter_mut().find(|(i, _)| *i == ix) {
                Some(e) => e.1.push(col),
                None => rel.indexes.push((ix, vec![col])),
            }
        }
    }
    for rel in &mut proof.relations {
        rel.indexes.iter_mut().for_each(|(_, cols)| cols.sort());
    }
    proof
}

/// The unique column set every relation of the name has and the write pins, with the most
/// rows it can change (the product of the values listed per column); the fewest wins.
fn bound(proof: &Proof, p: &Point) -> Option<(Vec<String>, u64)> {
    if proof.relations.iter().any(|r| !r.ok) {
        return None;
    }
    unique_bound(proof, p)
}

/// [`bound`] for the rows of the relation itself, whatever its writes reach beyond them.
pub(super) fn unique_bound(proof: &Proof, p: &Point) -> Option<(Vec<String>, u64)> {
    if proof.relations.is_empty() {
        return None;
    }
    let pinned = |cols: &Vec<String>| -> Option<u64> {
        cols.iter().try_fold(1u64, |acc, c| {
            let n = p.pins.iter().find(|(k, _)| k == c)?.1;
            acc.checked_mul(n as u64)
        })
    };
    let has = |r: &Rel, cols: &Vec<String>| r.indexes.iter().any(|(_, c)| c == cols);
    proof.relations[0]
        .indexes
        .iter()
        .map(|(_, cols)| cols)
        .filter(|cols| proof.relations.iter().all(|r| has(r, cols)))
        .filter_map(|cols| Some((cols.clone(), pinned(cols)?)))
        .min_by_key(|(_, n)| *n)
}

/// An `oid[]` literal.
fn oids(list: impl Iterator<Item = u32>) -> String {
    let mut v: Vec<u32> = list.collect();
    v.sort_unstable();
    format!("'{{{}}}'::pg_catalog.oid[]", v.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
}

/// The assertion sent behind the write: fails (and so rolls the write back) unless the catalog
/// is as it was when the proof was made — the same relations under the name, still plain
/// tables without rules or children, the same triggers (a trigger or foreign key added or
/// replaced changes them), the unique indexes on `cols` still there and valid, and no user's
/// code the write would run (`code_free`). Index lookups only, so that it costs little on
/// every write.
fn assertion(p: &Point, proof: &Proof, cols: &[String]) -> String {
    let (from, cond) = relations(p);
    let eq = "OPERATOR(pg_catalog.=)";
    let rels = oids(proof.relations.iter().map(|r| r.oid));
    let triggers = oids(proof.relations.iter().flat_map(|r| r.triggers.iter().copied()));
    let indexes =
        oids(proof.relations.iter().flat_map(|r| r.indexes.iter().filter(|(_, c)| c == cols).map(|(i, _)| *i)));
    let k = proof.relations.len();
    let code = code_free(p);
    format!(
        "SELECT (CASE WHEN \
           coalesce((SELECT pg_catalog.array_agg(c.oid ORDER BY c.oid) FROM {from} WHERE {cond}), '{{}}') {eq} {rels} \
           AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.oid {eq} ANY ({rels}) \
             AND c.relkind {eq} 'r' AND NOT c.relhasrules AND NOT c.relhassubclass) {eq} {k} \
           AND coalesce((SELECT pg_catalog.array_agg(t.oid ORDER BY t.oid) FROM pg_catalog.pg_trigger t \
             WHERE t.tgrelid {eq} ANY ({rels})), '{{}}') {eq} {triggers} \
           AND (SELECT pg_catalog.count(DISTINCT i.indrelid) FROM pg_catalog.pg_index i WHERE i.indexrelid {eq} ANY ({indexes}) \
             AND i.indrelid {eq} ANY ({rels}) AND i.indisvalid AND i.indimmediate AND i.indislive) {eq} {k} \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid {eq} ANY ({rels}) AND NOT ({code})) \
         THEN '0' ELSE 'blastwall: the catalog no longer proves this write small' END)::pg_catalog.int4"
    )
}

/// Runs the write uncounted when the catalog proves it within every limit, else counts it.
/// Pinned to a few rows of a unique index, its EXPLAIN estimate (one round trip, a plan) is
/// skipped: the planner could not put its own rows far over a limit, and what it reaches
/// beyond them (cascades) is not in a plan but in the count.
pub async fn verify(b: &mut Backend<'_>, req: Request<'_>) -> Result<Outcome, PrecheckError> {
    let (few, proof) = match uncounted(b, &req).await? {
        Tried::Kept(o) => return Ok(o),
        Tried::Count { few, proof } => (few, proof),
    };
    // What a delete can reach, when the catalog proves it (`reach`): only those counters read.
    let reach = match req.tx == TxStatus::Idle && req.msgs.first() == Some(&fe::QUERY) {
        true => {
            let generation = req.catalog.generation();
            super::reach::proven(b, req.plan, proof.as_deref(), req.proofs, req.database, generation).await?
        }
        false => None,
    };
    match few && req.plan.estimate_sql.is_some() {
        true => {
            let plan = CheckPlan { estimate_sql: None, ..req.plan.clone() };
            super::verify_with(b, Request { plan: &plan, ..req }, reach.as_deref()).await
        }
        false => super::verify_with(b, req, reach.as_deref()).await,
    }
}

/// The most rows of its own relation a write pinned by a unique index may change and still
/// skip the EXPLAIN estimate (as a protected column pinned to as many values does, `guard`).
const FEW: u64 = 10;

/// What the uncounted path did.
enum Tried {
    /// Ran uncounted: the client's answer.
    Kept(Outcome),
    /// To be counted; `few`: the catalog proves it changes at most `FEW` rows of its relation;
    /// `proof`: the catalog's answer about it, when asked.
    Count { few: bool, proof: Option<Arc<Proof>> },
}

/// Whether nothing but the row limits judge this write (no dry run, override, warning, anomaly
/// or budget rule).
fn only_limits(plan: &CheckPlan, p: &Point, policy: &Policy) -> bool {
    let rel = crate::analyze::RelName { schema: p.schema.clone(), name: p.name.clone() };
    !plan.dry_run
        && plan.override_rows.is_none()
        && !plan.ignored_directive
        && plan.notice.is_none()
        && policy.anomaly.enabled != Some(true)
        && !policy.tables.iter().any(|t| t.matches(&rel) && crate::contract::applies(t))
}

async fn uncounted(b: &mut Backend<'_>, req: &Request<'_>) -> Result<Tried, PrecheckError> {
    let Request { msgs, tx, plan, policy, who, catalog, proofs, database, .. } = *req;
    let few = false;
    let Some(p) = plan.point.as_ref() else { return Ok(Tried::Count { few, proof: None }) };
    if p.pins.is_empty() || tx != TxStatus::Idle || msgs.first() != Some(&fe::QUERY) {
        return Ok(Tried::Count { few, proof: None });
    }
    let Some(text) = msgs.get(5..msgs.len().saturating_sub(1)) else { return Ok(Tried::Count { few, proof: None }) };
    let generation = catalog.generation();
    let proof = match proofs.get(database, p, generation) {
        Some(proof) => proof,
        None => {
            let a = b.query(&proof_sql(p)).await?;
            if a.error.is_some() {
                return Ok(Tried::Count { few, proof: None });
            }
            proofs.learn(database, p, read_proof(&a.rows), generation);
            proofs.get(database, p, generation).unwrap_or_default()
        }
    };
    let few = unique_bound(&proof, p).is_some_and(|(_, most)| most <= FEW);
    if !only_limits(plan, p, policy) {
        return Ok(Tried::Count { few, proof: Some(proof.clone()) });
    }
    let Some((cols, most)) = bound(&proof, p) else { return Ok(Tried::Count { few, proof: Some(proof.clone()) }) };
    let count = |schema: &str, n: u64| TableCount {
        schema: schema.to_string(),
        name: p.name.clone(),
        deleted: if p.delete { n } else { 0 },
        updated: if p.delete { 0 } else { n },
        inserted: 0,
    };
    let within = proof.relations.iter().all(|r| {
        crate::policy::judge_counts(plan.measured(), vec![count(&r.schema, most)], who, policy).1.findings.is_empty()
    });
    if !within {
        return Ok(Tried::Count { few, proof: Some(proof.clone()) });
    }
    // The client's text as a message of its own (never spliced into a string of blastwall's),
    // on the unnamed statement and portal, which its Query would have destroyed anyway; then
    // the assertion on blastwall's own name; one Sync: one implicit transaction, so a failed
    // assertion rolls the write back.
    let Ok(text) = std::str::from_utf8(text) else { return Ok(Tried::Count { few, proof: Some(proof.clone()) }) };
    let mut msg = super::own::client_text(text);
    // Prepared once per session, and checked behind it in the same transaction, on the
    // unnamed statement (`prepared`).
    let sql = assertion(p, &proof, &cols);
    let prepared = b.prepared.as_deref_mut().map(|pr| {
        let r = pr.reading(&sql);
        let n = pr.check_unnamed(&[&r]);
        (r, n)
    });
    match (&prepared, b.prepared.as_deref()) {
        (Some((r, n)), Some(pr)) => {
            msg.put_slice(&r.first);
            pr.unnamed_messages(*n).iter().for_each(|m| msg.put_slice(m));
            msg.put_slice(&crate::wire::encode(fe::SYNC, &[]));
        }
        _ => msg.put_slice(&super::own::messages(&sql)),
    }
    let held = b.run_held(&msg, req.opts.max_hold).await?;
    // The client's replies end at its CommandComplete; what follows is the assertion's. The
    // extended protocol's completions (Parse, Bind, Close), which a Query does not send, go.
    let mut out = BytesMut::new();
    let mut done: Option<u64> = None;
    let mut failed = false;
    for f in held.frames.iter().filter(|f| !matches!(f.tag, b'1' | b'2' | b'3')) {
        match (done.is_some(), f.tag) {
            (false, b'C') => {
                done = Some(tag_count(f.body()));
                out.put_slice(&f.bytes);
            }
            (false, _) | (true, be::READY_FOR_QUERY) => out.put_slice(&f.bytes),
            (true, be::ERROR_RESPONSE) => failed = true,
            (true, _) => {}
        }
    }
    if failed || (held.overflowed && held.error) {
        // Rolled back by the server (the proof no longer holds, its statement was replaced,
        // or the statement failed and its answer was too large to hold): counted as before.
        proofs.drop_one(database, p);
        b.forget_prepared();
        tracing::info!(database, table = %p.name, "a point write was rolled back by its assertion; counted instead");
        return Ok(Tried::Count { few: false, proof: None });
    }
    if held.overflowed {
        let msg = super::kept_unheld(&held, req.opts.max_hold, &b.holding);
        out.clear();
        out.put_slice(&msg.encode());
        out.put_slice(&crate::wire::messages::ready_for_query(TxStatus::Idle));
    }
    b.confirm_prepared(prepared.as_ref().map(|(r, _)| r));
    if let (Some((_, u)), Some(pr)) = (&prepared, b.prepared.as_deref_mut()) {
        pr.flushed.unnamed_kept(*u);
    }
    tracing::info!(database, table = %p.name, most, "point write kept uncounted: the catalog proves it small");
    let status = held.status.unwrap_or(TxStatus::Idle);
    let counts = match (done, proof.relations.as_slice()) {
        (Some(n), [r]) if n > 0 => vec![count(&r.schema, n)],
        _ => vec![],
    };
    Ok(Tried::Kept(Outcome::Deliver { bytes: out, status, counts, kept: Some(Decision::default()) }))
}

/// The row count of a CommandComplete tag (`DELETE 3` → 3).
fn tag_count(body: &[u8]) -> u64 {
    let tag = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body)).into_owned();
    tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_the_product_over_the_fewest_index() {
        let p = Point {
            delete: true,
            schema: None,
            name: "t".into(),
            pins: vec![("a".into(), 2), ("b".into(), 3)],
            ops: vec!["=".into()],
        };
        let rel = |ok: bool, indexes: Vec<Vec<&str>>| Proof {
            relations: vec![Rel {
                schema: "public".into(),
                ok,
                oid: 1,
                triggers: vec![],
                indexes: indexes.into_iter().map(|c| (2, c.into_iter().map(String::from).collect())).collect(),
            }],
        };
        assert_eq!(bound(&rel(true, vec![vec!["a", "b"], vec!["b"]]), &p), Some((vec!["b".into()], 3)));
        assert_eq!(bound(&rel(false, vec![vec!["a"]]), &p), None);
        // Whatever it reaches beyond its own rows (a cascade), its own rows stay bounded.
        assert_eq!(unique_bound(&rel(false, vec![vec!["a"]]), &p), Some((vec!["a".into()], 2)));
        assert_eq!(bound(&rel(true, vec![vec!["c"]]), &p), None);
    }
}
