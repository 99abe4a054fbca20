//! The row counters the pre-check reads (`precheck::stats`), straight against the server: they
//! report what the view `pg_stat_xact_user_tables` reports, and nothing in the client's
//! `search_path` — operators and functions of the same names earlier in the path — changes
//! what they say.

use crate::harness::*;
use blastwall::precheck::{snapshot, stats_sql, CheckPlan, STATS_SQL};
use std::collections::BTreeMap;

type Counts = BTreeMap<(String, String), (u64, u64, u64)>;

async fn read(c: &tokio_postgres::Client, sql: &str) -> Option<Counts> {
    let mut rows = Vec::new();
    for m in c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")) {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect::<Vec<_>>());
        }
    }
    snapshot(&rows, &|_| None).map(|(s, _)| s)
}

/// The same objects a counter query names, defined in a schema the client puts first: each
/// answers wrongly (every comparison false, counting off, every counter 0).
const DECOYS: &str = "CREATE SCHEMA decoy;
    CREATE FUNCTION decoy.no(int8, int4) RETURNS bool LANGUAGE sql AS 'SELECT false';
    CREATE OPERATOR decoy.<> (LEFTARG = int8, RIGHTARG = int4, FUNCTION = decoy.no);
    CREATE FUNCTION decoy.no(oid, oid) RETURNS bool LANGUAGE sql AS 'SELECT false';
    CREATE OPERATOR decoy.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = decoy.no);
    CREATE OPERATOR decoy.<> (LEFTARG = oid, RIGHTARG = oid, FUNCTION = decoy.no);
    CREATE FUNCTION decoy.no(\"char\", \"char\") RETURNS bool LANGUAGE sql AS 'SELECT false';
    CREATE OPERATOR decoy.= (LEFTARG = \"char\", RIGHTARG = \"char\", FUNCTION = decoy.no);
    CREATE FUNCTION decoy.no(name, name) RETURNS bool LANGUAGE sql AS 'SELECT false';
    CREATE OPERATOR decoy.= (LEFTARG = name, RIGHTARG = name, FUNCTION = decoy.no);
    CREATE FUNCTION decoy.current_setting(text) RETURNS text LANGUAGE sql AS 'SELECT ''off''';
    CREATE FUNCTION decoy.pg_stat_get_xact_tuples_deleted(oid) RETURNS int8 LANGUAGE sql AS 'SELECT 0::int8';
    CREATE FUNCTION decoy.pg_stat_get_xact_tuples_updated(oid) RETURNS int8 LANGUAGE sql AS 'SELECT 0::int8';
    CREATE FUNCTION decoy.pg_stat_get_xact_tuples_inserted(oid) RETURNS int8 LANGUAGE sql AS 'SELECT 0::int8';
    CREATE FUNCTION decoy.to_regclass(text) RETURNS regclass LANGUAGE sql AS 'SELECT NULL::regclass';
    GRANT USAGE ON SCHEMA decoy TO PUBLIC;";

#[tokio::test]
async fn counters_are_the_views_and_immune_to_search_path() {
    let db = fresh_db("stats");
    admin_sql(pg(), &db, DECOYS);
    admin_sql(
        pg(),
        &db,
        "CREATE TABLE t1 (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY, v int); \
         CREATE TABLE idle (id int); \
         INSERT INTO t1 SELECT generate_series(1, 10); INSERT INTO t2 SELECT generate_series(1, 10), 0; \
         GRANT ALL ON t1, t2, idle TO app",
    );
    let policy = blastwall::policy::file::compile(&[(
        std::path::Path::new("limits.toml"),
        "[[table]]\nname = \"public.t1\"\nmax_delete_rows = 5\n\n[[table]]\nname = \"public.t2\"\nmax_update_rows = 5\n",
    )])
    .unwrap();
    let plan = CheckPlan {
        verb: "DELETE",
        target: None,
        dry_run: false,
        dry_run_reason: None,
        statement: String::new(),
        notice: None,
        override_rows: None,
        estimate_sql: None,
        estimate_msgs: None,
        param_types: Vec::new(),
        effects: Vec::new(),
        ignored_directive: false,
        warned_rule: None,
        point: None,
        reached: None,
        names: Vec::new(),
        known_steps: Vec::new(),
        only_moves: false,
        takes_ahead: Vec::new(),
    };
    let limited = stats_sql(&policy, &plan, &|_, _| None, true);
    assert_ne!(limited, STATS_SQL, "per-table limits read only those tables");

    let c = direct("app", APP_PW, &db).await;
    c.batch_execute(
        "BEGIN; DELETE FROM t1 WHERE id <= 3; UPDATE t2 SET v = 1 WHERE id <= 2; INSERT INTO t2 VALUES (11, 0)",
    )
    .await
    .unwrap();
    let expected: Counts =
        [(("public".to_string(), "t1".to_string()), (3, 0, 0)), (("public".to_string(), "t2".to_string()), (0, 2, 1))]
            .into();
    // What the statistics view says, tables without changes left out.
    let view = read(
        &c,
        "SELECT 'track_counts', 'on', 0::int8, 0::int8, 0::int8, 0::oid UNION ALL \
         SELECT schemaname::text, relname::text, n_tup_del, n_tup_upd, n_tup_ins, relid \
         FROM pg_stat_xact_user_tables WHERE n_tup_del + n_tup_upd + n_tup_ins > 0",
    )
    .await
    .unwrap();
    assert_eq!(view, expected);
    assert_eq!(read(&c, STATS_SQL).await, Some(expected.clone()));
    assert_eq!(read(&c, &limited).await, Some(expected.clone()));

    // The decoys are armed: unqualified, they lie.
    c.batch_execute("SET search_path = decoy, public, pg_catalog").await.unwrap();
    let lies = c
        .simple_query(
            "SELECT current_setting('track_counts'), 1::int8 <> 0, pg_stat_get_xact_tuples_deleted('t1'::regclass)",
        )
        .await
        .unwrap();
    let Some(tokio_postgres::SimpleQueryMessage::Row(r)) =
        lies.iter().find(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
    else {
        panic!("no row")
    };
    assert_eq!((r.get(0), r.get(1), r.get(2)), (Some("off"), Some("f"), Some("0")));
    // The counter queries do not.
    assert_eq!(read(&c, STATS_SQL).await, Some(expected.clone()));
    assert_eq!(read(&c, &limited).await, Some(expected));
    c.batch_execute("ROLLBACK").await.unwrap();
}
