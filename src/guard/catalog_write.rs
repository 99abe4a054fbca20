//! Row writes to PostgreSQL's system catalogs (twelfth adversarial pass M2): a superuser may
//! `UPDATE pg_catalog.pg_sequence SET seqincrement = -1` (a protected sequence reversed
//! without `ALTER SEQUENCE`, which `forbid-setval` refuses), `UPDATE pg_class SET
//! relpersistence = 'u'` (a policy table made unlogged without `ALTER TABLE … SET UNLOGGED`,
//! which `unlogged` refuses), rename a schema in `pg_namespace`, turn a key's `NO ACTION`
//! trigger into a cascade in `pg_trigger`, or move the session's `search_path` by an `UPDATE
//! pg_settings` — every rule blastwall keeps on DDL, undone by hand, with no DDL to judge.
//! So a DELETE, UPDATE, MERGE, INSERT (an upsert too) or `COPY … FROM` whose target is a
//! system catalog is refused with rule `catalog-write` (in the session's mode; waived by the
//! override directive of a role that may override).
//!
//! A system catalog is found two ways. By identity, where the session's names were asked
//! (`names::resolved_oids`: every row write's target once the policy has tables): the DELETE,
//! UPDATE, MERGE or upsert's relation, or one its view reaches at any level, has an OID below
//! 16384 — made by `initdb`, as every relation of `pg_catalog`, `pg_toast` and
//! `information_schema` is, and no relation made later can be (`FirstNormalObjectId`): a view
//! `myseq` over `pg_sequence` is refused as `pg_sequence` is. By name, always (offline, an
//! INSERT or `COPY`, a name not asked): a relation of `pg_catalog` or `pg_toast` named with
//! its schema, or, unqualified, one of `pg_catalog`'s tables (or `pg_settings`, its one
//! writable view): an unqualified name finds `pg_catalog` first unless the session's
//! `search_path` lists it after another schema (a table of the same name there is refused
//! too, the conservative side).
//!
//! Owns: which writes those are, and the finding. Does not own: the override (`plan`).

use crate::analyze::{Op, RelName, Statement, Write};
use crate::policy::{mode_for, Finding, Mode, Policy, SessionView};

const HINT: &str = "Change the catalog through the DDL that owns it (ALTER SEQUENCE, ALTER TABLE, ALTER SCHEMA, …), which blastwall judges; a catalog edited by hand escapes every rule. A DBA who must edit it connects to the server directly.";

/// `pg_catalog`'s tables in PostgreSQL 15 (`postgres.bki`), with `pg_settings`, whose rule
/// writes a setting.
const CATALOGS: &[&str] = &[
    "pg_aggregate",
    "pg_am",
    "pg_amop",
    "pg_amproc",
    "pg_attrdef",
    "pg_attribute",
    "pg_auth_members",
    "pg_authid",
    "pg_cast",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_conversion",
    "pg_database",
    "pg_db_role_setting",
    "pg_default_acl",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_event_trigger",
    "pg_extension",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_foreign_table",
    "pg_index",
    "pg_inherits",
    "pg_init_privs",
    "pg_language",
    "pg_largeobject",
    "pg_largeobject_metadata",
    "pg_namespace",
    "pg_opclass",
    "pg_operator",
    "pg_opfamily",
    "pg_parameter_acl",
    "pg_partitioned_table",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_range",
    "pg_replication_origin",
    "pg_rewrite",
    "pg_seclabel",
    "pg_sequence",
    "pg_settings",
    "pg_shdepend",
    "pg_shdescription",
    "pg_shseclabel",
    "pg_statistic",
    "pg_statistic_ext",
    "pg_statistic_ext_data",
    "pg_subscription",
    "pg_subscription_rel",
    "pg_tablespace",
    "pg_transform",
    "pg_trigger",
    "pg_ts_config",
    "pg_ts_config_map",
    "pg_ts_dict",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_type",
    "pg_user_mapping",
];

/// Whether a written name is a system catalog (see the module's note).
fn is_catalog(t: &RelName) -> bool {
    match t.schema.as_deref() {
        Some(s) => s.eq_ignore_ascii_case("pg_catalog") || s.eq_ignore_ascii_case("pg_toast"),
        None => CATALOGS.contains(&t.name.as_str()),
    }
}

/// Whether a text may write a catalog by name: it names one (`pg_`), read with no parse.
fn mentions_catalogs(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"pg_"))
}

/// `FirstNormalObjectId`: every relation `initdb` made has a lower OID, no other can.
const FIRST_NORMAL_OID: u32 = 16384;

/// What statement `index`'s write resolves to on the session, when asked (its OID and the
/// OIDs a view over it reaches): `names::resolved_oids`.
pub type Resolved<'a> = dyn Fn(usize, &Write) -> Option<Vec<u32>> + 'a;

/// The `catalog-write` findings of a message's statements.
pub fn findings(
    statements: &[Statement],
    who: SessionView<'_>,
    policy: &Policy,
    resolved: &Resolved<'_>,
) -> Vec<Finding> {
    let mode = mode_for(who, policy, None);
    if mode == Mode::Off {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        let row = |op: &Op| op.is_row_write() || matches!(op, Op::Upsert { .. });
        let by_name = mentions_catalogs(&st.text);
        let system = |oids: Vec<u32>| oids.iter().any(|o| (1..FIRST_NORMAL_OID).contains(o));
        let written = st.writes.iter().filter(|w| row(&w.op)).find_map(|w| {
            let t = w.target.as_ref()?;
            let hit = (by_name && is_catalog(t)) || resolved(i, w).is_some_and(system);
            hit.then(|| format!("{} on {t}", w.op.verb()))
        });
        let inserted = || {
            // Only an INSERT, a COPY … FROM or a MERGE … INSERT inserts rows: a text without
            // either keyword (keywords are never escaped, and only ASCII letters fold) has none
            // to find, and is not parsed again for it.
            if !by_name || !(has_word(&st.text, b"insert") || has_word(&st.text, b"copy")) {
                return None;
            }
            crate::contract::inserts(&st.text)
                .into_iter()
                .find(|i| is_catalog(&i.target))
                .map(|i| format!("{} on {}", i.verb, i.target))
        };
        if let Some(what) = written.or_else(inserted) {
            out.push(Finding {
                rule: "catalog-write",
                mode,
                why: "it writes rows of a system catalog by hand: what DDL would change there (a sequence's increment, a table's persistence, a schema's name, a trigger's function) changes without any DDL blastwall judges".into(),
                what,
                hint: HINT,
                source: "blastwall".into(),
                statement: st.text.clone(),
            });
        }
    }
    out
}

/// Whether `text` holds `word` (lower-case ASCII) anywhere, in any ASCII case.
fn has_word(text: &str, word: &[u8]) -> bool {
    text.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(sql: &str) -> Vec<String> {
        let statements = crate::analyze::analyze(sql, crate::analyze::ParseOptions::default());
        let p =
            crate::policy::file::compile(&[(std::path::Path::new("p.toml"), "[[table]]\nname = \"users\"\n")]).unwrap();
        let who = SessionView {
            user: "dba",
            application_name: "",
            session_mode: None,
            columns: None,
            sequence_owners: None,
            seen_in: None,
        };
        findings(&statements, who, &p, &|_, _| None).into_iter().map(|f| f.what).collect()
    }

    #[test]
    fn row_writes_to_catalogs_are_found() {
        for sql in [
            "UPDATE pg_catalog.pg_sequence SET seqincrement = -1 WHERE seqrelid = 'web_user_id_seq'::regclass",
            "update PG_CATALOG.pg_class set relpersistence = 'u' where oid = 'users'::regclass",
            "UPDATE pg_namespace SET nspname = 'public_old' WHERE nspname = 'public'",
            "UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'users'::regclass",
            "WITH x AS (DELETE FROM pg_catalog.pg_depend WHERE false RETURNING 1) SELECT * FROM x",
            "INSERT INTO pg_catalog.pg_description VALUES (1, 2, 0, 'x')",
            "COPY pg_catalog.pg_description FROM STDIN",
            "UPDATE pg_settings SET setting = 'archive' WHERE name = 'search_' || 'path'",
            "MERGE INTO pg_sequence s USING (SELECT 1 AS r) v ON s.seqrelid = v.r WHEN MATCHED THEN DELETE",
            "DELETE FROM pg_toast.pg_toast_2619",
        ] {
            assert_eq!(found(sql).len(), 1, "{sql}");
        }
        for sql in [
            "SELECT * FROM pg_class",
            "UPDATE users SET plan = 'x' WHERE id = 1",
            "UPDATE public.pg_sequence_notes SET n = 1 WHERE id = 1",
            "UPDATE app.pg_class SET x = 1 WHERE id = 1",
            "INSERT INTO users SELECT * FROM pg_catalog.pg_class",
        ] {
            assert!(found(sql).is_empty(), "{sql}");
        }
    }

    /// The texts not parsed for their inserts have none: every insert needs one of the words.
    #[test]
    fn a_text_without_insert_or_copy_inserts_nothing() {
        for sql in [
            "insert into pg_description values (1, 2, 0, 'x')",
            "CoPy pg_catalog.pg_description FROM STDIN",
            "MERGE INTO pg_class c USING t ON c.oid = t.o WHEN NOT MATCHED THEN InSeRt VALUES (1)",
            "PREPARE p AS INSERT INTO pg_class DEFAULT VALUES",
            "WITH x AS (INSERT INTO pg_am VALUES (1) RETURNING 1) SELECT * FROM x",
            "SELECT * FROM pg_class",
            "UPDATE pg_class SET relname = 'insert' WHERE false",
        ] {
            let has = has_word(sql, b"insert") || has_word(sql, b"copy");
            assert!(has || crate::contract::inserts(sql).is_empty(), "{sql}");
            assert_eq!(has, !sql.starts_with("SELECT"), "{sql}");
        }
    }
}
