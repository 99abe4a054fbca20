//! The table-driven corpus: statements → the verdict of the shipped policies (default.toml +
//! incident.toml), the incident's own statements first. No server: this is what the analyzer
//! and the policy decide from the text alone.

use blastwall::guard::{Guard, SessionInfo, Verdict};

/// `A`: forwarded silently, nothing to count. `C`: allowed by the static rules and forwarded
/// inside a pre-check that counts the rows it changes against the row limits — every write to
/// the incident's tables (users, subscriptions, chat_sessions, web_messages: all limited), so
/// a write that should be counted and is not fails here. `P`: a write to a table without a
/// policy, forwarded without a word, counted or not (whether it is depends on what the
/// catalog says about it). `K` (only ever got, never wanted): the catalog must be asked first.
/// `R(rule)`: refused by that rule. `W(rule)`: forwarded with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    A,
    C,
    P,
    K,
    R(&'static str),
    W(&'static str),
}
use V::*;

const RANGE: V = R("protected-range");
const WHERE: V = R("require-where");
const OPAQUE: V = R("opaque");

#[rustfmt::skip]
const CORPUS: &[(&str, V)] = &[
    // The incident, in the order it happened.
    ("INSERT INTO users (id, auth_source, plan) VALUES (-91111101, 'test', 'free') ON CONFLICT (id) DO UPDATE SET plan = EXCLUDED.plan, auth_source = EXCLUDED.auth_source", R("upsert-overwrite")),
    ("SELECT setval('web_user_id_seq', GREATEST(-MIN(id), currval('web_user_id_seq'))) FROM users", R("forbid-setval")),
    ("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100", RANGE),
    ("DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100;", RANGE),
    // … and what the RCA's authors do now.
    ("DELETE FROM users WHERE auth_source = 'test'", C),
    ("SELECT id FROM users WHERE auth_source = 'test'", A),
    ("SELECT id FROM users ORDER BY id LIMIT 5", A),
    ("INSERT INTO users (id, auth_source) VALUES (1000000001, 'test')", P),
    // An id taken ahead from a protected sequence: counted, its step spent from the creep budget.
    ("SELECT nextval('web_user_id_seq')", C),
    // Offline, what another sequence feeds is not known (it may be the protected one, renamed).
    ("SELECT nextval('some_other_seq')", C),
    // Range predicates on the protected column, in every spelling.
    ("DELETE FROM users WHERE id BETWEEN SYMMETRIC -91111100 AND -91111200", RANGE),
    ("DELETE FROM users WHERE id NOT BETWEEN 1 AND 1000000", RANGE),
    ("DELETE FROM users WHERE id < -91111100", RANGE),
    ("DELETE FROM users WHERE id <= -91111100", RANGE),
    ("DELETE FROM users WHERE id > -91111200", RANGE),
    ("DELETE FROM users WHERE id >= -91111200 AND id <= -91111100", RANGE),
    ("DELETE FROM users WHERE id <> 5", RANGE),
    ("DELETE FROM users WHERE id != 5", RANGE),
    ("DELETE FROM users WHERE id NOT IN (1, 2, 3)", RANGE),
    ("DELETE FROM users WHERE -91111100 >= id", RANGE),
    ("DELETE FROM users WHERE id + 0 = 5", RANGE),
    ("DELETE FROM users WHERE -id = 91111101", RANGE),
    ("DELETE FROM users WHERE id::text = '-91111101'", RANGE),
    ("DELETE FROM users WHERE id::text LIKE '-911111%'", RANGE),
    ("DELETE FROM users WHERE CAST(id AS text) ILIKE '-9111%'", RANGE),
    ("DELETE FROM users WHERE id::text SIMILAR TO '-9111%'", RANGE),
    ("DELETE FROM users WHERE id::text ~ '^-9111'", RANGE),
    ("DELETE FROM users WHERE abs(id) = 91111101", RANGE),
    ("DELETE FROM users WHERE id IS DISTINCT FROM 5", RANGE),
    ("DELETE FROM users WHERE id IN (SELECT user_id FROM test_accounts)", RANGE),
    ("DELETE FROM users WHERE id = ANY (SELECT user_id FROM test_accounts)", RANGE),
    ("DELETE FROM users WHERE EXISTS (SELECT 1 FROM test_accounts t WHERE t.user_id = users.id)", RANGE),
    ("DELETE FROM users WHERE id = (SELECT min(id) FROM users)", RANGE),
    ("DELETE FROM users WHERE id = 1 OR auth_source = 'test'", RANGE),
    ("DELETE FROM users WHERE id = 1 OR id > 100", RANGE),
    ("DELETE FROM users WHERE NOT (id = 1)", RANGE),
    ("DELETE FROM users WHERE id IS NOT NULL", RANGE),
    ("DELETE FROM users WHERE id < ANY (ARRAY[1, 2])", RANGE),
    ("DELETE FROM users WHERE id = ALL (ARRAY[1])", RANGE),
    ("DELETE FROM users WHERE id = id", RANGE),
    ("DELETE FROM users WHERE id IN (1, 2, id)", RANGE),
    ("DELETE FROM users WHERE \"id\" BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM \"users\" WHERE id BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM PUBLIC.USERS WHERE ID BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM public.users WHERE users.id BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM public.users WHERE public.users.id BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM users AS u WHERE u.id BETWEEN 1 AND 2", RANGE),
    ("DELETE FROM ONLY users WHERE id < 0", RANGE),
    ("DELETE FROM users WHERE auth_source = 'test' AND id < 0", RANGE),
    ("DELETE FROM users WHERE (id > -91111200) AND (id < -91111100) RETURNING *", RANGE),
    ("DELETE FROM users u USING test_accounts t WHERE u.id = t.user_id", RANGE),
    ("DELETE FROM users WHERE id = COALESCE(NULL, id)", RANGE),
    ("DELETE FROM users WHERE CASE WHEN id < 0 THEN true END", RANGE),
    ("DELETE FROM users WHERE (id BETWEEN 1 AND 2) IS TRUE", RANGE),
    ("UPDATE users SET plan = 'free' WHERE id BETWEEN -91111200 AND -91111100", RANGE),
    ("UPDATE users SET plan = 'free' WHERE id < 0", RANGE),
    ("UPDATE users u SET plan = s.plan FROM subscriptions s WHERE u.id = s.user_id", RANGE),
    ("UPDATE ONLY public.users SET auth_source = 'x' WHERE id::text LIKE '-9%'", RANGE),
    // A list longer than max_in_list (100) is a sweep, not a lookup.
    ("__LONG_IN_LIST__", R("protected-range")),
    // Point lookups: allowed, and counted (users has row limits).
    ("DELETE FROM users WHERE id = -91111105", C),
    ("DELETE FROM users WHERE -91111105 = id", C),
    ("DELETE FROM users WHERE id = $1", C),
    ("DELETE FROM users WHERE id = $1::bigint", C),
    ("DELETE FROM users WHERE id IN (1, 2, 3)", C),
    ("DELETE FROM users WHERE id IN ($1, $2)", C),
    ("DELETE FROM users WHERE id = ANY (ARRAY[1, 2, 3])", C),
    ("DELETE FROM users WHERE id = ANY ($1)", C),
    ("DELETE FROM users WHERE id = ANY ($1::bigint[])", C),
    ("DELETE FROM users WHERE id = ANY ('{1,2,3}')", C),
    ("DELETE FROM users WHERE id = 1 OR id = 2", C),
    ("DELETE FROM users WHERE (id = 1 AND plan = 'x') OR id = 2", C),
    ("DELETE FROM users WHERE id = 1 AND auth_source = 'test'", C),
    ("DELETE FROM users WHERE id = 5 AND id BETWEEN 1 AND 10", C),
    ("DELETE FROM users WHERE \"id\" = 5", C),
    ("DELETE FROM users u WHERE u.id = 5", C),
    ("DELETE FROM users WHERE id IS NULL", C),
    ("DELETE FROM users WHERE id = (5)", C),
    ("DELETE FROM users WHERE id = 5 + 1", C),
    ("DELETE FROM users WHERE id IS NOT DISTINCT FROM 5", C),
    ("DELETE FROM users WHERE id = 5 RETURNING id, plan", C),
    ("UPDATE users SET plan = 'premium' WHERE id = $1", C),
    ("UPDATE users SET plan = $2 WHERE id = ANY($1)", C),
    ("UPDATE users SET plan = 'x' WHERE auth_source = 'test' AND plan = 'free'", C),
    ("WITH x AS (SELECT 1) DELETE FROM users WHERE id = 1", C),
    // No WHERE, or one that restricts nothing: refused everywhere (require_where).
    ("DELETE FROM users", WHERE),
    ("DELETE FROM users WHERE true", WHERE),
    ("DELETE FROM users WHERE 1 = 1", WHERE),
    ("DELETE FROM users WHERE 'a' = 'a'", WHERE),
    ("UPDATE users SET plan = 'free'", WHERE),
    ("UPDATE users SET plan = 'free' WHERE true OR false", WHERE),
    ("DELETE FROM subscriptions", WHERE),
    ("DELETE FROM some_log", WHERE),
    ("UPDATE some_log SET seen = true", WHERE),
    ("DELETE FROM users USING test_accounts t WHERE t.flag", WHERE),
    ("DELETE FROM some_log WHERE (SELECT count(*) FROM other) > 0", WHERE),
    ("MERGE INTO users u USING staging s ON true WHEN MATCHED THEN DELETE", WHERE),
    // Ranges on unprotected tables and columns: allowed (row limits are the next line of defence).
    ("DELETE FROM subscriptions WHERE user_id BETWEEN -91111200 AND -91111100", C),
    ("DELETE FROM some_log WHERE at < now() - interval '30 days'", P),
    ("UPDATE users SET plan = 'free' WHERE email LIKE '%@example.test'", C),
    ("DELETE FROM chat_sessions WHERE user_id < 0", C),
    // Other tables that only look like users.
    ("DELETE FROM \"Users\" WHERE id BETWEEN 1 AND 2", P),
    ("DELETE FROM archive.users WHERE id BETWEEN 1 AND 2", P),
    ("DELETE FROM public.\"Users\" WHERE id < 0", P),
    ("DELETE FROM users_archive WHERE id < 0", P),
    // Decoys: writes inside strings, comments and dollar quotes are not writes.
    ("SELECT 'DELETE FROM users WHERE id BETWEEN 1 AND 2'", A),
    ("SELECT E'DELETE FROM users\\' WHERE true'", A),
    ("-- DELETE FROM users\nSELECT 1", A),
    ("/* DROP TABLE users; */ SELECT 1", A),
    ("/* nested /* TRUNCATE users */ comment */ SELECT 1", A),
    ("SELECT $$DELETE FROM users$$", A),
    ("SELECT $tag$ TRUNCATE users; $tag$", A),
    ("SELECT * FROM users WHERE id BETWEEN 1 AND 100", A),
    ("SELECT * FROM users WHERE id < 0 FOR UPDATE", A),
    ("SELECT update_count, delete_flag FROM stats", A),
    ("INSERT INTO audit SELECT * FROM users WHERE id < 0", P),
    // DDL in a protected database runs inside the pre-check (its reach is verified on the server).
    ("CREATE TABLE snapshot AS SELECT * FROM users WHERE id < 0", C),
    ("CREATE VIEW v AS SELECT * FROM users WHERE id < 0", C),
    ("COPY users TO STDOUT", A),
    ("COPY users FROM STDIN", P),
    // Writes nested anywhere are seen.
    ("WITH d AS (DELETE FROM users WHERE id BETWEEN 1 AND 2 RETURNING *) SELECT * FROM d", RANGE),
    ("WITH a AS (WITH b AS (DELETE FROM users RETURNING id) SELECT * FROM b) SELECT * FROM a", WHERE),
    ("WITH u AS (UPDATE users SET plan = 'x' WHERE id < 0 RETURNING id) INSERT INTO log SELECT id FROM u", RANGE),
    ("SELECT * FROM (WITH d AS (DELETE FROM users WHERE id > 0 RETURNING 1) SELECT * FROM d) s", RANGE),
    ("COPY (DELETE FROM users WHERE id < 0 RETURNING *) TO STDOUT", RANGE),
    ("WITH s AS (INSERT INTO users (id) VALUES (5) ON CONFLICT (id) DO UPDATE SET plan = 'x' RETURNING id) SELECT * FROM s", R("upsert-overwrite")),
    // One refused statement refuses the whole message.
    ("SELECT 1; DELETE FROM users WHERE id > 0", RANGE),
    // A write whose rows are counted beside BEGIN/COMMIT is counted statement by statement.
    ("BEGIN; DELETE FROM users WHERE id = 1; COMMIT", C),
    ("BEGIN; DELETE FROM some_log WHERE id = 1; COMMIT", C),
    ("BEGIN; UPDATE some_log SET seen = true WHERE id = 1; COMMIT", P),
    ("BEGIN; DELETE FROM users WHERE id = 1; DELETE FROM users WHERE id < 0; COMMIT", RANGE),
    ("COPY users FROM STDIN; DELETE FROM users WHERE id < 0", RANGE),
    ("SET search_path = public; DELETE FROM users", WHERE),
    // TRUNCATE.
    ("TRUNCATE users", R("forbid-truncate")),
    ("TRUNCATE TABLE public.users RESTART IDENTITY", R("forbid-truncate")),
    ("TRUNCATE ONLY users", R("forbid-truncate")),
    ("TRUNCATE some_log, users", R("forbid-truncate")),
    ("TRUNCATE subscriptions", R("forbid-truncate")),
    ("TRUNCATE some_log", P),
    ("TRUNCATE some_log CASCADE", R("forbid-truncate")),
    // DROP.
    ("DROP TABLE users", R("forbid-drop")),
    ("DROP TABLE IF EXISTS public.users CASCADE", R("forbid-drop")),
    ("DROP TABLE tmp_import, web_messages", R("forbid-drop")),
    ("DROP TABLE tmp_import", P),
    ("DROP SCHEMA public CASCADE", R("forbid-drop")),
    ("DROP SCHEMA scratch CASCADE", P),
    ("DROP SCHEMA public", P),
    ("DROP DATABASE honeychat", R("forbid-drop")),
    ("DROP OWNED BY app", R("forbid-drop")),
    ("DROP SEQUENCE web_user_id_seq", R("forbid-setval")),
    ("DROP VIEW v", P),
    ("DROP INDEX users_auth_source_idx", P),
    // ALTER.
    ("ALTER TABLE users DROP COLUMN plan", R("forbid-alter-drop-column")),
    ("ALTER TABLE users DROP COLUMN IF EXISTS email CASCADE", R("forbid-alter-drop-column")),
    ("ALTER TABLE users ADD COLUMN note text, DROP COLUMN plan", R("forbid-alter-drop-column")),
    ("ALTER TABLE users RENAME TO users_old", R("forbid-rename")),
    ("ALTER TABLE users RENAME COLUMN id TO uid", R("forbid-rename")),
    ("ALTER TABLE users ADD COLUMN note text", P),
    ("ALTER TABLE subscriptions DROP COLUMN plan", P),
    ("ALTER TABLE some_log RENAME TO some_log_old", P),
    ("ALTER SEQUENCE web_user_id_seq RESTART WITH 91111101", R("forbid-setval")),
    ("ALTER SEQUENCE public.web_user_id_seq INCREMENT BY 10", R("forbid-setval")),
    ("ALTER SEQUENCE other_seq RESTART", P),
    ("ALTER SEQUENCE web_user_id_seq SET UNLOGGED", R("forbid-setval")),
    ("ALTER TABLE public.web_user_id_seq SET UNLOGGED", R("forbid-setval")),
    ("ALTER SEQUENCE other_seq SET UNLOGGED", P),
    // setval.
    ("SELECT setval('public.web_user_id_seq', 1)", R("forbid-setval")),
    ("SELECT pg_catalog.setval('web_user_id_seq'::regclass, 5, true)", R("forbid-setval")),
    ("SELECT setval('\"web_user_id_seq\"', 5)", R("forbid-setval")),
    ("SELECT setval(pg_get_serial_sequence('users', 'id'), 1)", R("forbid-setval")),
    ("SELECT 1 FROM users WHERE id = setval('web_user_id_seq', 7)", R("forbid-setval")),
    ("SELECT setval('other_seq', 1)", P),
    ("SELECT setval('archive.web_user_id_seq', 1)", P),
    // Upserts.
    ("INSERT INTO users (id) VALUES (5) ON CONFLICT (id) DO NOTHING", P),
    ("INSERT INTO users (id) VALUES (5) ON CONFLICT DO NOTHING", P),
    ("INSERT INTO users (id) VALUES (5) ON CONFLICT ON CONSTRAINT users_pkey DO UPDATE SET plan = 'x'", R("upsert-overwrite")),
    // An expression conflict target stands for the columns it names (red team).
    ("INSERT INTO users (id) VALUES (-91111101) ON CONFLICT ((id)) DO UPDATE SET email = 'x'", R("upsert-overwrite")),
    ("INSERT INTO users AS u (id) SELECT id FROM users WHERE plan = 'premium' ON CONFLICT (((id))) DO UPDATE SET email = 'x'", R("upsert-overwrite")),
    ("INSERT INTO users (id, email) VALUES (5, 'a') ON CONFLICT (email) DO UPDATE SET plan = 'x'", P),
    ("INSERT INTO users AS u (id) VALUES ($1) ON CONFLICT (\"id\") DO UPDATE SET plan = EXCLUDED.plan", R("upsert-overwrite")),
    ("INSERT INTO subscriptions (id, user_id, plan) VALUES (1, 1, 'x') ON CONFLICT (id) DO UPDATE SET plan = 'y'", P),
    // MERGE.
    ("MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE", RANGE),
    ("MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN UPDATE SET plan = s.plan", RANGE),
    ("MERGE INTO users u USING (SELECT 5 AS id) s ON u.id = 5 WHEN MATCHED THEN UPDATE SET plan = 'x'", C),
    ("MERGE INTO users u USING staging s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)", P),
    ("MERGE INTO users u USING staging s ON u.email = s.email WHEN MATCHED AND u.id < 0 THEN DELETE", RANGE),
    // EXPLAIN: plans are harmless, ANALYZE executes.
    ("EXPLAIN DELETE FROM users", A),
    ("EXPLAIN (FORMAT JSON) DELETE FROM users WHERE id BETWEEN 1 AND 2", A),
    ("EXPLAIN (ANALYZE false) DELETE FROM users WHERE id BETWEEN 1 AND 2", A),
    ("EXPLAIN ANALYZE DELETE FROM users WHERE id = 1", OPAQUE),
    ("EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET plan = 'x' WHERE id BETWEEN 1 AND 2", RANGE),
    ("EXPLAIN ANALYZE SELECT * FROM users", A),
    // What no parser can see into.
    ("DO $$ BEGIN DELETE FROM users; END $$", OPAQUE),
    ("DO LANGUAGE plpgsql 'BEGIN PERFORM 1; END'", OPAQUE),
    ("CALL cleanup_test_users()", OPAQUE),
    ("EXECUTE not_prepared_here", OPAQUE),
    ("PREPARE d(bigint, bigint) AS DELETE FROM users WHERE id BETWEEN $1 AND $2; EXECUTE d(-91111200, -91111100)", OPAQUE),
    ("PREPARE q AS SELECT 1", A),
    ("DELETE FROM users WHRE id = 1", OPAQUE),
    ("TRUNCATE users extra garbage", OPAQUE),
    ("SELEC 1", A),
    ("DELET FROM users", A),
    ("SELECT 'unterminated", A),
    // Definitions run later, not now (see README: what blastwall cannot see).
    ("CREATE FUNCTION wipe() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM users; END", P),
    ("CREATE RULE r AS ON INSERT TO some_log DO ALSO DELETE FROM users", P),
    ("SELECT cleanup_users()", P),
    // Cursors.
    ("DELETE FROM users WHERE CURRENT OF c", R("current-of")),
    ("UPDATE users SET plan = 'x' WHERE CURRENT OF c", R("current-of")),
    ("DELETE FROM some_log WHERE CURRENT OF c", P),
    // Everyday traffic.
    ("SELECT 1", A),
    ("BEGIN", A),
    ("COMMIT", A),
    ("ROLLBACK", A),
    ("SET search_path = archive, public", A),
    ("SHOW standard_conforming_strings", A),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", A),
    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", P),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", P),
    ("VACUUM ANALYZE users", A),
    ("LISTEN chan", A),
    ("NOTIFY chan, 'DELETE FROM users'", A),
];

fn guard() -> Guard {
    Guard::new(blastwall::demo::incident_policy().unwrap(), None)
}

fn verdict(g: &Guard, sql: &str, user: &str) -> V {
    let mut info = SessionInfo::new(user, "corpus");
    let mut verdict = g.judge_sql(sql.as_bytes(), &mut info);
    if verdict == Verdict::Analyze {
        // A long text: analyzed first (off the event loop in a session), then judged again.
        let pre = g.preanalyze(sql.as_bytes(), "", true, true);
        verdict = g.judge(sql.as_bytes(), &mut info, Some(&pre)).verdict;
    }
    match verdict {
        Verdict::Allow => A,
        // A split Query is counted statement by statement (`session::simple`).
        Verdict::Check(_) | Verdict::Split(_) => C,
        Verdict::Resolve(_) => K,
        Verdict::Analyze => panic!("analyzed twice: {sql}"),
        Verdict::Refuse(m) => R(rule_of(m.detail.as_deref().unwrap_or(""))),
        Verdict::Notice(m) => W(rule_of(m.detail.as_deref().unwrap_or(""))),
    }
}

fn rule_of(detail: &str) -> &'static str {
    let rule = detail.strip_prefix("rule ").and_then(|r| r.split(';').next()).unwrap_or("?");
    // The corpus names rules as &'static str; leak the few distinct ones.
    Box::leak(rule.to_string().into_boxed_str())
}

fn long_in_list() -> String {
    let list: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    format!("DELETE FROM users WHERE id IN ({})", list.join(", "))
}

#[test]
fn corpus_verdicts() {
    assert!(CORPUS.len() >= 150, "the corpus has {} statements", CORPUS.len());
    let g = guard();
    let mut wrong = Vec::new();
    for (sql, want) in CORPUS {
        let sql = if *sql == "__LONG_IN_LIST__" { long_in_list() } else { sql.to_string() };
        let got = verdict(&g, &sql, "app");
        let passes = *want == P && matches!(got, A | C | K);
        if got != *want && !passes {
            wrong.push(format!("{sql}\n    want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {} wrong:\n{}", wrong.len(), CORPUS.len(), wrong.join("\n"));
}

#[test]
fn roles_change_the_mode() {
    let g = guard();
    // The migrator role runs in warn mode: the statement goes through with a warning.
    // (it runs in the pre-check, whose identity check verifies what it did, with the warning)
    let mut info = SessionInfo::new("migrator", "corpus");
    let warned = |v: Verdict| matches!(v, Verdict::Check(p) if p.warned_rule == Some("forbid-drop"));
    assert!(warned(g.judge_sql(b"DROP TABLE users", &mut info)));
    assert_eq!(verdict(&g, "DROP TABLE users", "app"), R("forbid-drop"));
}

#[test]
fn prepared_statements_are_judged_at_execute() {
    let g = guard();
    let mut info = SessionInfo::new("app", "");
    let prep = "PREPARE d(bigint, bigint) AS DELETE FROM users WHERE id BETWEEN $1 AND $2";
    assert_eq!(g.judge_sql(prep.as_bytes(), &mut info), Verdict::Allow);
    assert!(matches!(g.judge_sql(b"EXECUTE d(-91111200, -91111100)", &mut info), Verdict::Refuse(_)));
    // A second PREPARE of the same name cannot launder the first.
    assert_eq!(g.judge_sql(b"PREPARE d AS SELECT 1", &mut info), Verdict::Allow);
    assert!(matches!(g.judge_sql(b"EXECUTE d", &mut info), Verdict::Refuse(_)));
    assert_eq!(g.judge_sql(b"DEALLOCATE d", &mut info), Verdict::Allow);
    assert!(matches!(g.judge_sql(b"EXECUTE d", &mut info), Verdict::Refuse(_)), "unknown after DEALLOCATE");
    assert_eq!(g.judge_sql(b"PREPARE one(bigint) AS DELETE FROM users WHERE id = $1", &mut info), Verdict::Allow);
    // Allowed in shape, and counted like the DELETE it runs.
    assert!(matches!(g.judge_sql(b"EXECUTE one(-91111105)", &mut info), Verdict::Check(_)));
}

#[test]
fn standard_conforming_strings_off_is_read_as_the_server_reads_it() {
    let g = guard();
    // With standard_conforming_strings = off, \' does not end the string: the DELETE is a
    // statement of its own. A parser that assumed `on` would see one harmless SELECT.
    let sql = "SELECT 'a\\', '; DELETE FROM users; --'";
    let mut on = SessionInfo::new("app", "");
    assert_eq!(g.judge_sql(sql.as_bytes(), &mut on), Verdict::Allow, "with scs on it is one string");
    let mut off = SessionInfo::new("app", "");
    off.standard_conforming_strings = false;
    assert!(matches!(g.judge_sql(sql.as_bytes(), &mut off), Verdict::Refuse(_)));
    // While a statement that may change the setting is in flight, both readings are judged.
    let mut unsure = SessionInfo::new("app", "");
    unsure.settings_certain = false;
    assert!(matches!(g.judge_sql(sql.as_bytes(), &mut unsure), Verdict::Refuse(_)));
}

#[test]
fn encodings_that_could_hide_a_quote_are_refused() {
    let g = guard();
    let mut info = SessionInfo::new("app", "");
    info.client_encoding = "SJIS".into();
    let mut sql = b"DELETE FROM users WHERE id = 1 AND email = '".to_vec();
    sql.extend_from_slice(&[0x82, 0x5c]);
    sql.extend_from_slice(b"'");
    assert!(matches!(g.judge_sql(&sql, &mut info), Verdict::Refuse(_)));
    info.client_encoding = "LATIN1".into();
    assert!(matches!(g.judge_sql(&sql, &mut info), Verdict::Check(_)), "read as LATIN1: a point delete, counted live");
}

#[test]
fn refusal_message_reads_well() {
    let g = guard();
    let mut info = SessionInfo::new("app", "");
    let Verdict::Refuse(m) = g.judge_sql(b"DELETE FROM users WHERE id BETWEEN -91111200 AND -91111100", &mut info)
    else {
        panic!("not refused")
    };
    assert_eq!(m.code, "42501");
    assert_eq!(
        m.message,
        "blastwall: refused DELETE on public.users: range predicate (BETWEEN) on protected column id"
    );
    let detail = m.detail.unwrap();
    assert!(detail.starts_with("rule protected-range; policy policies/incident.toml line "), "{detail}");
    assert!(detail.contains("statement fingerprint "), "{detail}");
    assert!(m.hint.unwrap().contains("auth_source = 'test'"));
}
