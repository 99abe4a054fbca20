//! The identities file (`identities_file`): each policy table's OID, each protected column's
//! attnum, each database's OID, appended as JSON lines the first time blastwall learns them,
//! and read back at start so that what was renamed while blastwall was not running keeps its
//! rules.
//!
//! Owns: the file's lines, written and read. Does not own: what they mean (`catalog`,
//! `incarnation`).

use super::Catalog;

impl Catalog {
    /// Appends an identity to the identities file, when one is configured.
    pub(super) fn record(&self, line: &serde_json::Value) {
        let Some(path) = &self.persist else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "could not record a policy table's identity");
        }
    }

    /// Keeps the identities of policy tables in `path` (JSON lines: each table's OID, each
    /// protected column's attnum, as first seen), and reads those recorded there before: a
    /// table or column renamed while blastwall was not running keeps its rules.
    pub fn persist_to(&mut self, path: std::path::PathBuf) {
        if let Ok(text) = std::fs::read_to_string(&path) {
            for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                let oid = v.get("oid").and_then(|x| x.as_u64()).and_then(|o| u32::try_from(o).ok());
                let attnum = v.get("attnum").and_then(|x| x.as_i64());
                if let (Some(db), Some(oid), None) = (s("database"), v.get("incarnation"), s("name")) {
                    if let Some(oid) = oid.as_u64().and_then(|o| u32::try_from(o).ok()) {
                        self.read_incarnation(db, oid);
                    }
                    continue;
                }
                let (Some(db), Some(schema), Some(name)) = (s("database"), s("schema"), s("name")) else { continue };
                if let (Some(oid), true) = (oid, v.get("replaces").is_some()) {
                    let key = (db, schema, name);
                    self.oids.insert(key.clone(), oid);
                    self.columns.remove(&key);
                } else if let Some(oid) = oid {
                    self.oids.entry((db, schema, name)).or_insert(oid);
                } else if let (Some(column), Some(attnum)) = (s("column"), attnum) {
                    let mut e = self.columns.entry((db, schema, name)).or_default();
                    if !e.attnums.iter().any(|(c, _)| *c == column) {
                        e.attnums.push((column, attnum));
                    }
                }
            }
        }
        self.persist = Some(path);
    }
}
