//! Policy files: TOML as written (raw types), loaded from files and folders, merged, and
//! validated into the compiled [`Policy`]. Every error names the file, the line and the key.
//!
//! Owns: the file format. Does not own: what a compiled policy decides (see `decide`).

use super::{Action, AnomalyKeys, Budget, Creep, Forbid, Mode, Policy, StateConfig, Subject, TablePolicy};
use crate::analyze::RelName;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("policy {path}, line {line}, key {key}: {message}")]
    Value { path: PathBuf, line: usize, key: String, message: String },
    #[error("no policy files found in folder {0} (expected *.toml)")]
    EmptyFolder(PathBuf),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawDefaults>>,
    opaque: Option<Spanned<RawOpaque>>,
    #[serde(default)]
    table: Vec<Spanned<RawTable>>,
    #[serde(default)]
    role: Vec<Spanned<RawSubject>>,
    #[serde(default)]
    application: Vec<Spanned<RawSubject>>,
    state: Option<Spanned<RawState>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    schema: Option<Spanned<String>>,
    create: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    mode: Option<Mode>,
    require_where: Option<bool>,
    max_in_list: Option<Spanned<i64>>,
    max_delete_rows: Option<Spanned<i64>>,
    max_update_rows: Option<Spanned<i64>>,
    anomaly: Option<bool>,
    anomaly_factor: Option<Spanned<i64>>,
    anomaly_runs: Option<Spanned<i64>>,
    anomaly_min_runs: Option<Spanned<i64>>,
    anomaly_floor: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpaque {
    #[serde(rename = "do")]
    do_block: Option<Action>,
    call: Option<Action>,
    explain_analyze: Option<Action>,
    function_call: Option<Action>,
    unparseable: Option<Action>,
    functions: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    #[serde(default)]
    protected_columns: Vec<Spanned<String>>,
    #[serde(default)]
    protected_sequences: Vec<Spanned<String>>,
    max_delete_rows: Option<Spanned<i64>>,
    max_update_rows: Option<Spanned<i64>>,
    #[serde(default)]
    forbid: Vec<Forbid>,
    mode: Option<Mode>,
    require_where: Option<bool>,
    #[serde(default)]
    allow_protected_update: bool,
    budget_delete_rows: Option<Spanned<i64>>,
    budget_update_rows: Option<Spanned<i64>>,
    budget_window: Option<Spanned<String>>,
    sequence_creep: Option<Spanned<i64>>,
    sequence_creep_window: Option<Spanned<String>>,
    anomaly: Option<bool>,
    anomaly_factor: Option<Spanned<i64>>,
    anomaly_runs: Option<Spanned<i64>>,
    anomaly_min_runs: Option<Spanned<i64>>,
    anomaly_floor: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    name: String,
    mode: Option<Mode>,
    #[serde(default)]
    may_override: bool,
}

/// The text and path of each policy file, in load order.
fn collect(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, PolicyError> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| PolicyError::Read { path: p.clone(), source })?;
        let mut list = if meta.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|source| PolicyError::Read { path: p.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if v.is_empty() {
                return Err(PolicyError::EmptyFolder(p.clone()));
            }
            v.sort();
            v
        } else {
            vec![p.clone()]
        };
        for f in list.drain(..) {
            let text = std::fs::read_to_string(&f).map_err(|source| PolicyError::Read { path: f.clone(), source })?;
            files.push((f, text));
        }
    }
    Ok(files)
}

/// What changes when a policy file changes: each file's name, size and modification time
/// (a folder's files included). Used to watch the files without a platform watcher.
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
        } else {
            vec![p.clone()]
        };
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            out.push((f, meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok())));
        }
    }
    out.sort();
    out
}

/// Loads and validates policy files and folders (every `*.toml` in a folder, by name).
pub fn load(paths: &[PathBuf]) -> Result<Policy, PolicyError> {
    let files = collect(paths)?;
    let refs: Vec<(&Path, &str)> = files.iter().map(|(p, t)| (p.as_path(), t.as_str())).collect();
    compile(&refs)
}

/// The built-in policy used when none is configured (the text of `policies/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

pub fn builtin() -> Policy {
    // The embedded file is tested (`builtin_default_is_valid`); failing here is a build defect.
    compile(&[(Path::new("<built-in policies/default.toml>"), DEFAULT_POLICY)]).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the built-in default policy is invalid");
        Policy::empty()
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

/// Compiles policy texts (path, text) into one policy.
pub fn compile(files: &[(&Path, &str)]) -> Result<Policy, PolicyError> {
    let mut policy = Policy::empty();
    let mut defaults_from: Option<PathBuf> = None;
    let mut state_from: Option<PathBuf> = None;
    let mut hasher = Sha256::new();
    let mut seen_tables: HashMap<(String, String), (PathBuf, usize)> = HashMap::new();
    for (path, text) in files {
        hasher.update(path.display().to_string().as_bytes());
        hasher.update(text.as_bytes());
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| PolicyError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
        let err = |span: std::ops::Range<usize>, key: &str, message: String| PolicyError::Value {
            path: path.to_path_buf(),
            line: line_of(text, span.start),
            key: key.to_string(),
            message,
        };
        if let Some(d) = raw.defaults {
            let span = d.span();
            if let Some(prev) = &defaults_from {
                return Err(err(span, "defaults", format!("[defaults] is already set in {}", prev.display())));
            }
            defaults_from = Some(path.to_path_buf());
            let d = d.into_inner();
            if let Some(m) = d.mode {
                policy.mode = m;
            }
            if let Some(r) = d.require_where {
                policy.require_where = r;
            }
            if let Some(n) = d.max_in_list {
                policy.max_in_list = positive(&n, "defaults.max_in_list", 1, &err)?;
            }
            policy.max_delete_rows =
                d.max_delete_rows.map(|n| limit(&n, "defaults.max_delete_rows", &err)).transpose()?;
            policy.max_update_rows =
                d.max_update_rows.map(|n| limit(&n, "defaults.max_update_rows", &err)).transpose()?;
            let keys = [&d.anomaly_factor, &d.anomaly_runs, &d.anomaly_min_runs, &d.anomaly_floor];
            policy.anomaly = anomaly_keys(d.anomaly, keys, "defaults", &err)?;
        }
        if let Some(st) = raw.state {
            let span = st.span();
            if let Some(prev) = &state_from {
                return Err(err(span, "state", format!("[state] is already set in {}", prev.display())));
            }
            state_from = Some(path.to_path_buf());
            let st = st.into_inner();
            if let Some(schema) = st.schema {
                let name = schema.get_ref();
                let ok = !name.is_empty()
                    && name.len() <= 63
                    && !name.starts_with("pg_")
                    && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !ok {
                    return Err(err(
                        schema.span(),
                        "state.schema",
                        format!("{name:?} is not a schema name blastwall can own (lower case letters, digits and _, not pg_…, at most 63 bytes)"),
                    ));
                }
                policy.state.schema = name.clone();
            }
            policy.state = StateConfig { create: st.create.unwrap_or(policy.state.create), ..policy.state };
        }
        if let Some(o) = raw.opaque {
            let o = o.into_inner();
            let a = &mut policy.opaque;
            a.do_block = o.do_block.unwrap_or(a.do_block);
            a.call = o.call.unwrap_or(a.call);
            a.explain_analyze = o.explain_analyze.unwrap_or(a.explain_analyze);
            a.function_call = o.function_call.unwrap_or(a.function_call);
            a.unparseable = o.unparseable.unwrap_or(a.unparseable);
            a.functions = o.functions.unwrap_or(a.functions);
        }
        for t in raw.table {
            let line = line_of(text, t.span().start);
            let t = t.into_inner();
            let name = crate::analyze::parse_qualified(t.name.get_ref())
                .filter(|_| !t.name.get_ref().trim().is_empty() && t.name.get_ref().matches('.').count() <= 1)
                .ok_or_else(|| {
                    err(
                        t.name.span(),
                        "table.name",
                        format!("{:?} is not a table name (schema.table or table)", t.name.get_ref()),
                    )
                })?;
            let schema = name.schema.clone().unwrap_or_else(|| "public".into());
            let key = (schema.clone(), name.name.clone());
            if let Some((p, l)) = seen_tables.get(&key) {
                return Err(err(
                    t.name.span(),
                    "table.name",
                    format!("table {}.{} is already configured in {} line {l}", key.0, key.1, p.display()),
                ));
            }
            seen_tables.insert(key, (path.to_path_buf(), line));
            let mut protected_columns = BTreeSet::new();
            for c in &t.protected_columns {
                let col = c.get_ref().trim();
                if col.is_empty() || !protected_columns.insert(fold(col)) {
                    return Err(err(
                        c.span(),
                        "table.protected_columns",
                        format!("{:?} is empty or listed twice", c.get_ref()),
                    ));
                }
            }
            let mut sequences = Vec::new();
            for s in &t.protected_sequences {
                let seq = crate::analyze::parse_qualified(s.get_ref()).ok_or_else(|| {
                    err(s.span(), "table.protected_sequences", format!("{:?} is not a sequence name", s.get_ref()))
                })?;
                sequences.push(RelName { schema: Some(seq.schema.unwrap_or_else(|| "public".into())), name: seq.name });
            }
            let forbid: BTreeSet<Forbid> = t.forbid.iter().copied().collect();
            if forbid.contains(&Forbid::UpsertOverwrite) && protected_columns.is_empty() {
                return Err(err(
                    t.name.span(),
                    "table.forbid",
                    "upsert_overwrite needs protected_columns: it forbids ON CONFLICT DO UPDATE on them".into(),
                ));
            }
            if forbid.contains(&Forbid::Setval) && sequences.is_empty() && protected_columns.is_empty() {
                return Err(err(
                    t.name.span(),
                    "table.forbid",
                    "setval needs protected_sequences or protected_columns: it forbids setval/ALTER SEQUENCE on the sequences that feed them".into(),
                ));
            }
            if forbid.contains(&Forbid::ExplicitId) && protected_columns.is_empty() {
                return Err(err(
                    t.name.span(),
                    "table.forbid",
                    "explicit_id needs protected_columns: it forbids supplying values for the protected columns a sequence mints".into(),
                ));
            }
            let keys = [&t.anomaly_factor, &t.anomaly_runs, &t.anomaly_min_runs, &t.anomaly_floor];
            let anomaly = anomaly_keys(t.anomaly, keys, "table", &err)?;
            let budget = budget(&t.budget_delete_rows, &t.budget_update_rows, &t.budget_window, t.name.span(), &err)?;
            let creep = creep(&t.sequence_creep, &t.sequence_creep_window, &err)?;
            policy.tables.push(TablePolicy {
                schema,
                name: name.name,
                protected_columns,
                sequences,
                max_delete_rows: t.max_delete_rows.map(|n| limit(&n, "table.max_delete_rows", &err)).transpose()?,
                max_update_rows: t.max_update_rows.map(|n| limit(&n, "table.max_update_rows", &err)).transpose()?,
                forbid,
                mode: t.mode,
                require_where: t.require_where,
                allow_protected_update: t.allow_protected_update,
                anomaly,
                budget,
                creep,
                source: format!("{} line {line}", path.display()),
            });
        }
        for (list, what) in [(raw.role, "role"), (raw.application, "application")] {
            for s in list {
                let span = s.span();
                let s = s.into_inner();
                let map = if what == "role" { &mut policy.roles } else { &mut policy.applications };
                if s.name.is_empty() || map.contains_key(&s.name) {
                    return Err(err(
                        span,
                        &format!("{what}.name"),
                        format!("{:?} is empty or configured twice", s.name),
                    ));
                }
                map.insert(s.name, Subject { mode: s.mode, may_override: s.may_override });
            }
        }
        policy.sources.push(path.to_path_buf());
    }
    policy.hash = hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(policy)
}

/// The anomaly rule's keys of one section (`[defaults]` or a table), each checked.
fn anomaly_keys<E>(
    enabled: Option<bool>,
    [factor, runs, min_runs, floor]: [&Option<Spanned<i64>>; 4],
    section: &str,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> E,
) -> Result<AnomalyKeys, E> {
    let get = |v: &Option<Spanned<i64>>, key: &str, min: i64| -> Result<Option<u64>, E> {
        v.as_ref().map(|n| positive(n, &format!("{section}.{key}"), min, err).map(|v| v as u64)).transpose()
    };
    let keys = AnomalyKeys {
        enabled,
        factor: get(factor, "anomaly_factor", 2)?,
        runs: get(runs, "anomaly_runs", 1)?,
        min_runs: get(min_runs, "anomaly_min_runs", 1)?,
        floor: get(floor, "anomaly_floor", 0)?,
    };
    if let (Some(r), Some(m), Some(span)) = (keys.runs, keys.min_runs, min_runs.as_ref().map(|m| m.span())) {
        if m > r {
            return Err(err(
                span,
                &format!("{section}.anomaly_min_runs"),
                format!("{m} is more than anomaly_runs ({r})"),
            ));
        }
    }
    Ok(keys)
}

/// A table's budget: rows per window, both or neither given.
fn budget<E>(
    delete: &Option<Spanned<i64>>,
    update: &Option<Spanned<i64>>,
    window: &Option<Spanned<String>>,
    table: std::ops::Range<usize>,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> E,
) -> Result<Option<Budget>, E> {
    let delete_rows = delete.as_ref().map(|n| limit(n, "table.budget_delete_rows", err)).transpose()?;
    let update_rows = update.as_ref().map(|n| limit(n, "table.budget_update_rows", err)).transpose()?;
    match (window, delete_rows.is_some() || update_rows.is_some()) {
        (None, false) => Ok(None),
        (None, true) => Err(err(
            table,
            "table.budget_window",
            "a budget needs its window: budget_window = \"1h\" (s, m, h or d)".into(),
        )),
        (Some(w), false) => {
            Err(err(w.span(), "table.budget_window", "a window needs budget_delete_rows or budget_update_rows".into()))
        }
        (Some(w), true) => {
            let window_secs = parse_window(w.get_ref()).ok_or_else(|| {
                err(
                    w.span(),
                    "table.budget_window",
                    format!("{:?} is not a window (a number and s, m, h or d)", w.get_ref()),
                )
            })?;
            Ok(Some(Budget { delete_rows, update_rows, window_secs }))
        }
    }
}

/// A table's creep budget for its protected sequences (`precheck::creep`): steps beyond the
/// rows inserted per window, 10,000 per hour unless set.
fn creep<E>(
    steps: &Option<Spanned<i64>>,
    window: &Option<Spanned<String>>,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> E,
) -> Result<Creep, E> {
    let mut c = Creep::default();
    if let Some(n) = steps {
        c.steps = positive(n, "table.sequence_creep", 0, err)? as u64;
    }
    if let Some(w) = window {
        c.window_secs = parse_window(w.get_ref()).ok_or_else(|| {
            err(
                w.span(),
                "table.sequence_creep_window",
                format!("{:?} is not a window (a number and s, m, h or d)", w.get_ref()),
            )
        })?;
    }
    Ok(c)
}

/// `"90s"`, `"15m"`, `"1h"`, `"7d"` → seconds (at least one second, at most a year).
fn parse_window(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = match s.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    let n: u64 = s[..s.len() - 1].trim().parse().ok()?;
    n.checked_mul(unit).filter(|v| (1..=366 * 86400).contains(v))
}

/// Folds an identifier as PostgreSQL does: unquoted → lower case; `"Quoted"` keeps its case.
fn fold(s: &str) -> String {
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(q) => q.replace("\"\"", "\""),
        None => s.to_lowercase(),
    }
}

fn positive<E>(
    n: &Spanned<i64>,
    key: &str,
    min: i64,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> E,
) -> Result<usize, E> {
    let v = *n.get_ref();
    if v < min {
        return Err(err(n.span(), key, format!("{v} is below the minimum of {min}")));
    }
    usize::try_from(v).map_err(|_| err(n.span(), key, format!("{v} is too large")))
}

fn limit<E>(n: &Spanned<i64>, key: &str, err: &impl Fn(std::ops::Range<usize>, &str, String) -> E) -> Result<u64, E> {
    let v = *n.get_ref();
    u64::try_from(v).map_err(|_| err(n.span(), key, format!("{v} is not a row count (0 or more)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Result<Policy, PolicyError> {
        compile(&[(Path::new("p.toml"), text)])
    }

    #[test]
    fn builtin_default_is_valid() {
        compile(&[(Path::new("default.toml"), DEFAULT_POLICY)]).unwrap();
    }

    #[test]
    fn shipped_policies_are_valid() {
        let p = load(&[PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))]).unwrap();
        assert!(p.tables.iter().any(|t| t.name == "users" && t.protected_columns.contains("id")));
    }

    #[test]
    fn contract_example_is_valid_with_the_default() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
        let p = load(&[dir.join("default.toml"), dir.join("contract/contract.toml")]).unwrap();
        let users = p.tables.iter().find(|t| t.name == "users").unwrap();
        assert!(users.forbid.contains(&Forbid::ExplicitId) && users.budget.is_some());
    }

    #[test]
    fn misspelled_section_names_the_line() {
        let e = c("[defaults]\nmode = \"enforce\"\n\n[[tabel]]\nname = \"users\"\n").unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("line 4") && e.contains("tabel"), "{e}");
    }

    #[test]
    fn impossible_values() {
        let e = c("[[table]]\nname = \"users\"\nmax_delete_rows = -1\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("max_delete_rows"), "{e}");
        let e = c("[defaults]\nmax_in_list = 0\n").unwrap_err().to_string();
        assert!(e.contains("max_in_list"), "{e}");
        assert!(c("[[table]]\nname = \"a.b.c\"\n").is_err());
        assert!(c("[[table]]\nname = \"users\"\nforbid = [\"trunc\"]\n").is_err());
        assert!(c("[[table]]\nname = \"users\"\nforbid = [\"upsert_overwrite\"]\n").is_err());
        assert!(c("[[table]]\nname = \"users\"\nforbid = [\"setval\"]\n").is_err());
        assert!(c("[[table]]\nname = \"users\"\n[[table]]\nname = \"public.users\"\n").is_err());
        assert!(c("[defaults]\nmode = \"loud\"\n").is_err());
        assert!(c("[opaque]\ndo = \"maybe\"\n").is_err());
    }

    #[test]
    fn contract_keys() {
        let p = c("[defaults]\nanomaly = true\nanomaly_factor = 5\n[state]\nschema = \"bw_state\"\ncreate = false\n\
                   [[table]]\nname = \"users\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\n\
                   budget_delete_rows = 200\nbudget_window = \"1h\"\nanomaly_min_runs = 3\n")
        .unwrap();
        assert_eq!(p.anomaly.factor, Some(5));
        assert_eq!(p.state, StateConfig { schema: "bw_state".into(), create: false });
        let t = &p.tables[0];
        assert_eq!(t.budget, Some(Budget { delete_rows: Some(200), update_rows: None, window_secs: 3600 }));
        assert_eq!(t.anomaly.min_runs, Some(3));
        assert_eq!(t.creep, Creep { steps: 10_000, window_secs: 3600 }, "the default creep budget");
        let u =
            &c("[[table]]\nname = \"u\"\nsequence_creep = 50\nsequence_creep_window = \"10m\"\n").unwrap().tables[0];
        assert_eq!(u.creep, Creep { steps: 50, window_secs: 600 });
        assert!(t.forbid.contains(&Forbid::ExplicitId));
        for (text, line, key) in [
            ("[defaults]\nanomaly_factor = 1\n", 2, "defaults.anomaly_factor"),
            ("[defaults]\nanomaly_runs = 3\nanomaly_min_runs = 4\n", 3, "defaults.anomaly_min_runs"),
            ("[[table]]\nname = \"t\"\nbudget_delete_rows = 5\n", 2, "table.budget_window"),
            ("[[table]]\nname = \"t\"\nbudget_delete_rows = 5\nbudget_window = \"1 hour\"\n", 4, "table.budget_window"),
            ("[[table]]\nname = \"t\"\nbudget_window = \"1h\"\n", 3, "table.budget_window"),
            ("[[table]]\nname = \"t\"\nforbid = [\"explicit_id\"]\n", 2, "table.forbid"),
            ("[state]\nschema = \"pg_x\"\n", 2, "state.schema"),
            ("\n[state]\nschemas = \"x\"\n", 3, "schemas"),
            ("[[table]]\nname = \"t\"\nanomaly_flor = 3\n", 3, "anomaly_flor"),
            ("[[table]]\nname = \"t\"\nsequence_creep = -1\n", 3, "table.sequence_creep"),
            ("[[table]]\nname = \"t\"\nsequence_creep_window = \"1 hour\"\n", 3, "table.sequence_creep_window"),
        ] {
            let e = c(text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")) && e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn folds_names() {
        let p = c("[[table]]\nname = \"Users\"\nprotected_columns = [\"ID\", \"\\\"Key\\\"\"]\n").unwrap();
        assert_eq!(p.tables[0].name, "users");
        assert!(p.tables[0].protected_columns.contains("id"));
        assert!(p.tables[0].protected_columns.contains("Key"));
    }
}
