//! Issue 11, red-team pass 2 F4 and F7/F8: what a protocol Bind runs, and prepared statements
//! whose verdict outlived the catalog. Each attack runs through blastwall in enforce mode with
//! the shipped policies, as a DML-only role (temporary functions, domains, views and tables
//! only), and the data is checked directly on the server. Controls: ordinary Parse/Bind/
//! Execute flows run no count of blastwall's (its counter reading is never prepared on the
//! session) and are not refused.

use crate::batches::{b, describe, e, flush, p, q, sync};
use crate::harness::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The raw-protocol role (trust), DML-only.
pub(crate) const RAW: &str = "trust_user";

pub(crate) fn setup() -> String {
    let db = incident_db();
    admin_sql(
        pg(),
        &db,
        &format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
             GRANT USAGE ON SCHEMA public TO {RAW}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RAW}; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {RAW};"
        ),
    );
    db
}

async fn proxy() -> Proxy {
    proxy_with(base_config(), shipped_policy()).await
}

/// On the server, not through blastwall.
async fn server_value(db: &str, sql: &str) -> i64 {
    let c = direct("postgres", SUPERUSER_PW, db).await;
    c.query_one(sql, &[]).await.unwrap().get(0)
}

async fn messages(db: &str) -> i64 {
    server_value(db, "SELECT count(*) FROM web_messages").await
}

/// Parse with declared parameter types (by OID).
fn close(name: &str) -> Vec<u8> {
    let mut m = describe(b'S', name);
    m[0] = b'C';
    m
}

fn parse_typed(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in [name, sql] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.extend_from_slice(&(types.len() as i16).to_be_bytes());
    types.iter().for_each(|t| body.extend_from_slice(&t.to_be_bytes()));
    msg(b'P', &body)
}

async fn send(s: &mut TcpStream, parts: &[Vec<u8>]) -> Replies {
    s.write_all(&parts.concat()).await.unwrap();
    replies(s).await
}

/// A Query that must run (through blastwall).
async fn run(s: &mut TcpStream, sql: &str) -> Replies {
    let r = send(s, &[q(sql)]).await;
    assert!(r.codes.is_empty(), "{sql}: {}", r.errors);
    r
}

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("blastwall: refused"), "{what} was not refused: {r:?}");
}

/// The OID of a type, through blastwall on the session (temporary types are the session's).
async fn type_oid(s: &mut TcpStream, name: &str) -> u32 {
    let text = format!("SELECT '{name}'::regtype::oid::int4");
    s.write_all(&[p("", &text), b("", "", &[]), e("", 0), sync()].concat()).await.unwrap();
    let mut head = [0u8; 5];
    use tokio::io::AsyncReadExt;
    let mut oid = None;
    loop {
        s.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        if head[0] == b'D' {
            let n = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
            oid = std::str::from_utf8(&body[6..6 + n]).unwrap().parse().ok();
        }
        if head[0] == b'Z' {
            return oid.expect("the type's OID");
        }
    }
}

const PURGE: &str = "CREATE FUNCTION pg_temp.f(x int) RETURNS boolean LANGUAGE sql AS \
    $$ DELETE FROM public.web_messages WHERE true; SELECT true $$";

/// F4, F4b, F4d: a Bind with no Execute converts its parameters, and a domain's CHECK calls a
/// writing function — declared by OID in the Parse, inferred from a cast in its text, or
/// declared by SQL `PREPARE`; first in its batch or in the middle of one. Every one is counted
/// and refused at the row limit; nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_that_converts_a_parameter_through_a_writing_domain_is_counted() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, PURGE).await;
    run(&mut s, "CREATE DOMAIN pg_temp.hd AS int CHECK (pg_temp.f(VALUE))").await;
    let hd = type_oid(&mut s, "pg_temp.hd").await;
    // F4: declared by OID, the text names nothing.
    let r = send(&mut s, &[parse_typed("x", "SELECT $1", &[hd]), b("", "x", &["1"]), sync()]).await;
    refused(&r, "Parse typed by OID + Bind");
    assert_eq!(messages(&db).await, 360);
    // The Parse stays on the server (a rollback keeps prepared statements): bound alone.
    refused(&send(&mut s, &[b("", "x", &["1"]), sync()]).await, "Bind of a statement typed by OID");
    // An array of the domain converts each element through it.
    let arr = type_oid(&mut s, "pg_temp.hd[]").await;
    refused(&send(&mut s, &[parse_typed("", "SELECT $1", &[arr]), b("", "", &["{1}"]), sync()]).await, "array");
    assert_eq!(messages(&db).await, 360);
    // The row type of a view over a table with a column of the domain (composite input
    // converts each column).
    run(&mut s, "CREATE TEMP TABLE rt (a pg_temp.hd); CREATE TEMP VIEW rv AS SELECT a FROM rt").await;
    let rv = type_oid(&mut s, "rv").await;
    refused(&send(&mut s, &[parse_typed("", "SELECT $1", &[rv]), b("", "", &["(1)"]), sync()]).await, "row type");
    assert_eq!(messages(&db).await, 360);
    // F4b: inferred from the text's cast.
    let r = send(&mut s, &[p("y", "SELECT $1::pg_temp.hd"), b("", "y", &["1"]), sync()]).await;
    refused(&r, "Parse with a cast + Bind");
    // F4d: declared by SQL PREPARE, bound by protocol; and SQL EXECUTE of it.
    run(&mut s, "PREPARE qd(pg_temp.hd) AS SELECT $1").await;
    refused(&send(&mut s, &[b("", "qd", &["1"]), sync()]).await, "Bind of an SQL-prepared statement");
    refused(&send(&mut s, &[q("EXECUTE qd(1)")]).await, "EXECUTE");
    assert_eq!(messages(&db).await, 360);
    // In the middle of a batch: counted with its Execute, or refused without one.
    let ok = [p("", "SELECT 1"), b("", "", &[]), e("", 0)].concat();
    let r = send(&mut s, &[ok.clone(), b("p", "x", &["1"]), describe(b'P', "p"), e("p", 0), sync()]).await;
    refused(&r, "Bind + Execute after another statement");
    let r = send(&mut s, &[ok, b("p", "x", &["1"]), sync()]).await;
    refused(&r, "Bind alone after another statement");
    assert!(r.errors.contains("not followed by its Execute"), "{}", r.errors);
    assert_eq!(messages(&db).await, 360);
    // A driver's batch of several Bind/Execute pairs of the statement (as pgjdbc sends).
    let r = send(
        &mut s,
        &[parse_typed("j", "SELECT $1", &[hd]), b("", "j", &["1"]), e("", 0), b("", "j", &["2"]), e("", 0), sync()],
    )
    .await;
    refused(&r, "a batch of Bind/Execute pairs");
    assert_eq!(messages(&db).await, 360);
    // The session goes on.
    run(&mut s, "SELECT 1").await;
    px.stop().await;
}

/// F4c and README's old gap: a function mislabeled IMMUTABLE is folded when a Bind plans the
/// statement; here it moves the protected sequence. Counted, refused, the sequence put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_that_folds_a_mislabeled_immutable_function_is_counted() {
    let db = setup();
    let px = proxy().await;
    let seq = "SELECT last_value FROM web_user_id_seq";
    let before = server_value(&db, seq).await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(
        &mut s,
        "CREATE FUNCTION pg_temp.imm(x int) RETURNS int IMMUTABLE LANGUAGE sql AS \
         $$ SELECT (pg_catalog.setval('public.web_user_id_seq', 5) * 0)::int + x $$",
    )
    .await;
    let r = send(&mut s, &[p("z", "SELECT pg_temp.imm(1) + $1::int"), b("", "z", &["1"]), sync()]).await;
    refused(&r, "Bind folding an IMMUTABLE function");
    assert_eq!(server_value(&db, seq).await, before);
    // A domain whose CHECK moves it, through a cast in the text.
    run(
        &mut s,
        "CREATE FUNCTION pg_temp.mv(x int) RETURNS boolean LANGUAGE sql AS \
         $$ SELECT pg_catalog.setval('public.web_user_id_seq', 5) > 0 $$",
    )
    .await;
    run(&mut s, "CREATE DOMAIN pg_temp.md AS int CHECK (pg_temp.mv(VALUE))").await;
    refused(&send(&mut s, &[p("", "SELECT $1::pg_temp.md"), b("", "", &["1"]), sync()]).await, "F4c");
    assert_eq!(server_value(&db, seq).await, before);
    px.stop().await;
}

/// F7: a statement prepared over a temporary view, the view then replaced to call a writing
/// function — SQL EXECUTE, a protocol Bind of the name, and of the unnamed statement (the
/// view replaced by an extended-protocol batch, which keeps the unnamed statement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_before_its_view_was_replaced_is_judged_again() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, PURGE).await;
    run(&mut s, "CREATE TEMP VIEW v AS SELECT 1 AS z").await;
    run(&mut s, "PREPARE pv AS SELECT * FROM v").await;
    assert!(send(&mut s, &[p("s2", "SELECT * FROM v"), sync()]).await.codes.is_empty());
    assert!(send(&mut s, &[p("", "SELECT * FROM v"), sync()]).await.codes.is_empty());
    // Bound before the view changes: plain, not counted (and that judgement is remembered).
    refused_not(&send(&mut s, &[b("", "s2", &[]), e("", 0), sync()]).await);
    refused_not(&send(&mut s, &[b("", "", &[]), e("", 0), sync()]).await);
    // Replaced by a protocol batch: a Query would drop the unnamed statement.
    let replace = "CREATE OR REPLACE TEMP VIEW v AS SELECT pg_temp.f(1)::int AS z";
    let r = send(&mut s, &[p("r", replace), b("", "r", &[]), e("", 0), sync()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    refused(&send(&mut s, &[b("", "", &[]), e("", 0), sync()]).await, "Bind of the unnamed statement");
    refused(&send(&mut s, &[b("", "s2", &[]), e("", 0), sync()]).await, "Bind of s2");
    refused(&send(&mut s, &[q("EXECUTE pv")]).await, "EXECUTE pv");
    assert_eq!(messages(&db).await, 360);
    px.stop().await;
}

/// F8: an INSERT prepared into a temporary table, a trigger added afterwards that deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_prepared_before_its_trigger_was_added_is_judged_again() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP TABLE tt (a int)").await;
    run(&mut s, "PREPARE ins AS INSERT INTO tt VALUES (1)").await;
    run(&mut s, "EXECUTE ins").await;
    assert!(send(&mut s, &[p("pi", "INSERT INTO tt VALUES (1)"), sync()]).await.codes.is_empty());
    refused_not(&send(&mut s, &[b("", "pi", &[]), e("", 0), sync()]).await);
    run(
        &mut s,
        "CREATE FUNCTION pg_temp.tf() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN DELETE FROM public.web_messages WHERE true; RETURN NEW; END $$",
    )
    .await;
    run(&mut s, "CREATE TRIGGER trg BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION pg_temp.tf()").await;
    refused(&send(&mut s, &[q("EXECUTE ins")]).await, "EXECUTE ins");
    refused(&send(&mut s, &[b("", "pi", &[]), e("", 0), sync()]).await, "Bind of pi");
    assert_eq!(messages(&db).await, 360);
    // The trigger added by another session (the table's owner), to a table of the database.
    admin_sql(
        pg(),
        &db,
        &format!("SET ROLE app; CREATE TABLE public.notes (a int); GRANT INSERT ON public.notes TO {RAW}"),
    );
    assert!(send(&mut s, &[p("pn", "INSERT INTO notes VALUES (1)"), sync()]).await.codes.is_empty());
    refused_not(&send(&mut s, &[b("", "pn", &[]), e("", 0), sync()]).await);
    let owner = connect(px.port(), "app", APP_PW, &db).await;
    owner
        .batch_execute(
            "CREATE FUNCTION public.nf() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN DELETE FROM public.web_messages WHERE true; RETURN NEW; END $$",
        )
        .await
        .unwrap();
    owner
        .batch_execute("CREATE TRIGGER nt BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION public.nf()")
        .await
        .unwrap();
    refused(&send(&mut s, &[b("", "pn", &[]), e("", 0), sync()]).await, "Bind of pn");
    assert_eq!(messages(&db).await, 360);
    px.stop().await;
}

fn refused_not(r: &Replies) {
    assert!(r.codes.is_empty(), "{r:?}");
}

/// Controls: ordinary flows — a driver's prepared statements with parameters, pipelined Binds,
/// a Bind alone, SQL PREPARE/EXECUTE, and DDL in between — are neither refused nor counted in
/// a database without types whose input runs a function (the audit trail records every count;
/// only the DDL is); in one with such a type, parameters the client declared as ordinary types
/// are not counted, and a driver whose parameter types the server infers still works (then
/// counted: blastwall does not see the types the server infers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_binds_are_neither_refused_nor_counted() {
    let db = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config();
    let audit = audit_to(&mut cfg, &dir);
    let px = proxy_with(cfg, shipped_policy()).await;
    let events = || std::fs::read_to_string(&audit).unwrap_or_default();
    let mut s = startup(px.port(), RAW, &db).await;
    let sel = "SELECT id FROM users WHERE id = $1";
    let r = send(&mut s, &[p("o", sel), b("", "o", &["1"]), e("", 0), sync()]).await;
    refused_not(&r);
    let pipelined = [
        b("a", "o", &["1"]),
        e("a", 0),
        b("b", "o", &["2"]),
        describe(b'P', "b"),
        e("b", 0),
        b("", "o", &["3"]),
        sync(),
    ];
    refused_not(&send(&mut s, &pipelined).await);
    run(&mut s, "PREPARE sp(int) AS SELECT $1 + 1").await;
    run(&mut s, "EXECUTE sp(1)").await;
    refused_not(&send(&mut s, &[b("", "sp", &["1"]), e("", 0), sync()]).await);
    assert_eq!(events(), "", "an ordinary flow was counted");
    // DDL passes (counted itself): the statements are judged again, and still not counted.
    run(&mut s, "CREATE TEMP TABLE scratch (a int)").await;
    let after_ddl = events().lines().count();
    refused_not(&send(&mut s, &[b("", "o", &["1"]), e("", 0), sync()]).await);
    refused_not(&send(&mut s, &pipelined).await);
    refused_not(&send(&mut s, &[b("", "sp", &["1"]), e("", 0), sync()]).await);
    run(&mut s, "EXECUTE sp(1)").await;
    assert_eq!(events().lines().count(), after_ddl, "counted after DDL: {}", events());
    // A driver (tokio-postgres: Parse with inferred types, Describe, Bind, Execute).
    let c = connect(px.port(), "app", APP_PW, &db).await;
    let st = c.prepare("SELECT count(*) FROM web_messages WHERE id > $1").await.unwrap();
    let n: i64 = c.query_one(&st, &[&0i64]).await.unwrap().get(0);
    assert_eq!(n, 360);
    assert_eq!(events().lines().count(), after_ddl, "a driver's statement was counted: {}", events());
    // With a type whose input runs a function in the database (a DBA's, in public).
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.positive(x int) RETURNS boolean LANGUAGE sql AS $$ SELECT x > 0 $$; \
         CREATE DOMAIN public.pos AS int CHECK (public.positive(VALUE));",
    );
    let mut s = startup(px.port(), RAW, &db).await;
    let int8 = 20;
    let r = send(&mut s, &[parse_typed("t", sel, &[int8]), b("", "t", &["1"]), e("", 0), sync()]).await;
    refused_not(&r);
    assert_eq!(events().lines().count(), after_ddl, "declared ordinary types were counted: {}", events());
    let n: i64 = c.query_one(&st, &[&0i64]).await.unwrap().get(0);
    assert_eq!(n, 360);
    // A driver's batch of Bind/Execute pairs, counted, answers as the server does directly.
    let batch = [p("k", "SELECT $1::int + 1"), b("", "k", &["1"]), e("", 0), b("", "k", &["2"]), e("", 0), sync()];
    let through = send(&mut s, &batch).await;
    let mut d = startup(pg().server.port, RAW, &db).await;
    let direct = send(&mut d, &batch).await;
    assert_eq!((through.tags.as_str(), through.errors.as_str()), (direct.tags.as_str(), direct.errors.as_str()));
    let st2 = c.prepare("SELECT $1::text").await.unwrap();
    let t: String = c.query_one(&st2, &[&"x"]).await.unwrap().get(0);
    assert_eq!(t, "x");
    px.stop().await;
}

async fn oauth_users(db: &str) -> i64 {
    server_value(db, "SELECT count(*) FROM users WHERE auth_source = 'oauth'").await
}

/// Third pass F6: a statement prepared on a temporary table that is then dropped and replaced
/// by a temporary view over `users` — the server analyzes the name again at EXECUTE / Bind and
/// deletes the incident's ten real users. blastwall judges it again after the DDL, as every
/// policy table the name may reach; a name that reaches `users` only as a view over it maps
/// columns blastwall cannot follow there, so the write is refused (fail closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_before_its_table_became_a_view_over_users_is_judged_again() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    let before = oauth_users(&db).await;
    let email = "SELECT email FROM users WHERE id = -91111111";
    let c = direct("postgres", SUPERUSER_PW, &db).await;
    let email_before: String = c.query_one(email, &[]).await.unwrap().get(0);
    run(&mut s, "CREATE TEMP TABLE u (k bigint PRIMARY KEY, e text)").await;
    run(&mut s, "PREPARE p AS DELETE FROM u WHERE k BETWEEN -91111120 AND -91111111").await;
    run(&mut s, "PREPARE up AS INSERT INTO u (k, e) VALUES (-91111111, 'overwritten@evil') ON CONFLICT (k) DO UPDATE SET e = EXCLUDED.e").await;
    let range = "DELETE FROM u WHERE k BETWEEN -91111120 AND -91111111";
    assert!(send(&mut s, &[p("s", range), sync()]).await.codes.is_empty());
    run(&mut s, "DROP TABLE u").await;
    run(&mut s, "CREATE TEMP VIEW u AS SELECT id AS k, email AS e FROM public.users").await;
    refused(&send(&mut s, &[q("EXECUTE p")]).await, "EXECUTE p");
    refused(&send(&mut s, &[b("", "s", &[]), e("", 0), sync()]).await, "Bind of s");
    refused(&send(&mut s, &[q("EXECUTE up")]).await, "EXECUTE up");
    assert_eq!(oauth_users(&db).await, before);
    let email_after: String = c.query_one(email, &[]).await.unwrap().get(0);
    assert_eq!(email_after, email_before);
    px.stop().await;
}

/// Third pass F5: parse analysis converts a typed literal with its type's input function — a
/// domain's CHECK for `'{1}'::d[]` — so a protocol Parse alone (no Bind, no Execute) may run a
/// writing function: counted like the statement first in its batch (refused at the row
/// limit), refused anywhere else. Variants: the temporary domain found by the search path, a
/// domain over an array of it, the row type of a table with a column of it, a literal
/// converted to a column's type without naming any type, a function's argument, EXPLAIN, an
/// INSERT; a Parse held and then released by a Flush. Controls: the same shapes over ordinary
/// types are neither refused nor counted, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_that_converts_a_literal_through_a_writing_domain_is_counted() {
    let db = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config();
    let audit = audit_to(&mut cfg, &dir);
    let px = proxy_with(cfg, shipped_policy()).await;
    let events = || std::fs::read_to_string(&audit).unwrap_or_default().lines().count();
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, PURGE).await;
    run(&mut s, "CREATE DOMAIN pg_temp.d1 AS int CHECK (pg_temp.f(VALUE))").await;
    run(&mut s, "CREATE DOMAIN pg_temp.da AS pg_temp.d1[]").await;
    run(&mut s, "CREATE TEMP TABLE rt1 (a pg_temp.d1)").await;
    run(&mut s, "CREATE TEMP TABLE rt2 (a pg_temp.d1[])").await;
    run(&mut s, "CREATE FUNCTION pg_temp.g(x pg_temp.d1[]) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$").await;
    let texts = [
        "SELECT '{1}'::pg_temp.d1[] WHERE false",
        "SELECT '{1}'::d1[] WHERE false",
        "SELECT '{1}'::pg_temp.da WHERE false",
        "SELECT '(1)'::rt1 WHERE false",
        "SELECT 1 FROM rt2 WHERE a = '{1}'",
        "SELECT pg_temp.g('{1}') WHERE false",
        "EXPLAIN SELECT '{1}'::d1[]",
        "INSERT INTO rt2 VALUES ('{1}')",
    ];
    for (i, text) in texts.iter().enumerate() {
        let r = send(&mut s, &[p(&format!("s{i}"), text), sync()]).await;
        assert_eq!(messages(&db).await, 360, "a Parse first in its batch ran the CHECK: {text}");
        refused(&r, &format!("a Parse first in its batch: {text}"));
        let r = send(&mut s, &[p("a", "SELECT 1"), p(&format!("t{i}"), text), sync()]).await;
        assert_eq!(messages(&db).await, 360, "a Parse in the middle of its batch ran the CHECK: {text}");
        refused(&r, &format!("a Parse in the middle of its batch: {text}"));
        // Closed by protocol: in this session (its temporary schema holds code) a
        // `DEALLOCATE ALL` is counted, and drops the pre-check's own prepared readings.
        let names = [close("a"), close(&format!("s{i}")), close(&format!("t{i}")), sync()];
        refused_not(&send(&mut s, &names).await);
    }
    // The same texts as a Query are counted too.
    refused(&send(&mut s, &[q("SELECT 1 FROM rt2 WHERE a = '{1}'")]).await, "a Query");
    assert_eq!(messages(&db).await, 360);
    // A domain made earlier in the same batch.
    let made = "CREATE DOMAIN pg_temp.dz AS int CHECK (pg_temp.f(VALUE))";
    let r = send(
        &mut s,
        &[p("", made), b("", "", &[]), e("", 0), p("z", "SELECT '{1}'::pg_temp.dz[] WHERE false"), sync()],
    )
    .await;
    assert_eq!(messages(&db).await, 360, "a Parse after the DDL that made its domain, in one batch: {r:?}");
    refused(&r, "a Parse after the DDL that made its domain, in one batch");
    // Held, then released by a Flush (it cannot be counted where it stands).
    let text = texts[0];
    s.write_all(&[p("h", text), describe(b'S', "h"), flush()].concat()).await.unwrap();
    s.write_all(&sync()).await.unwrap();
    refused(&replies(&mut s).await, "a Parse released by a Flush");
    // With its Bind and Execute: counted whole.
    refused(&send(&mut s, &[p("", text), b("", "", &[]), e("", 0), sync()]).await, "Parse/Bind/Execute");
    // In a failed transaction the server refuses it unanalyzed.
    run(&mut s, "BEGIN").await;
    assert_eq!(send(&mut s, &[q("SELECT 1/0")]).await.codes, ["22012"]);
    assert_eq!(send(&mut s, &[p("f", text), sync()]).await.codes, ["25P02"]);
    run(&mut s, "ROLLBACK").await;
    assert_eq!(messages(&db).await, 360);
    // Controls: ordinary types, the same shapes, in a database with a type whose input runs a
    // function (a DBA's), on a session whose temporary schema holds no code (in this one every
    // statement is counted, and after a counted statement in the batch a literal is refused:
    // the session's code may have made a type).
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.positive(x int) RETURNS boolean LANGUAGE sql AS $$ SELECT x > 0 $$; \
         CREATE DOMAIN public.pos AS int CHECK (public.positive(VALUE));",
    );
    let mut s = startup(px.port(), RAW, &db).await;
    let before = events();
    for text in ["SELECT '{1}'::int[] WHERE false", "SELECT '[1,2)'::int4range WHERE false", "SELECT $1::int[]"] {
        refused_not(&send(&mut s, &[p("c", text), sync()]).await);
        refused_not(&send(&mut s, &[p("a", "SELECT 1"), p("", text), sync()]).await);
        s.write_all(&[p("", text), describe(b'S', ""), flush()].concat()).await.unwrap();
        s.write_all(&sync()).await.unwrap();
        refused_not(&replies(&mut s).await);
        refused_not(&send(&mut s, &[close("a"), close("c"), sync()]).await);
    }
    assert_eq!(events(), before, "an ordinary Parse was counted");
    run(&mut s, "SELECT 1").await;
    px.stop().await;
}

/// The server analyzes a prepared statement again when its plan was invalidated (a changed
/// `search_path`, DDL it depends on) — at its Bind, and at a Describe of the statement (the
/// row description is made from the statement analyzed again): a statement harmless when it
/// was prepared (the domain's CHECK then deleted nothing) converts its literal again there.
/// A Describe of such a statement — prepared by protocol or by SQL — is counted like its
/// Parse alone in its batch (refused here at the row limit), and refused anywhere else.
/// Control: a Describe of an ordinary statement goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_that_analyzes_a_statement_again_is_counted() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    run(&mut s, "CREATE TEMP TABLE flag (on_ boolean)").await;
    run(
        &mut s,
        "CREATE FUNCTION pg_temp.del(x int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
         IF EXISTS (SELECT 1 FROM pg_temp.flag WHERE on_) THEN DELETE FROM public.web_messages WHERE true; END IF; \
         RETURN true; END $$",
    )
    .await;
    run(&mut s, "CREATE DOMAIN pg_temp.dd AS int CHECK (pg_temp.del(VALUE))").await;
    let text = "SELECT '{1}'::pg_temp.dd[] AS x WHERE false";
    // Prepared while the CHECK deletes nothing: counted, kept.
    refused_not(&send(&mut s, &[p("s", text), sync()]).await);
    run(&mut s, &format!("PREPARE sp AS {text}")).await;
    refused_not(&send(&mut s, &[p("plain", "SELECT 1 AS x"), sync()]).await);
    run(&mut s, "INSERT INTO flag VALUES (true)").await;
    // A changed search_path invalidates the session's plans (a counted Describe analyzed the
    // statement again inside the check: each case changes it anew).
    let mut paths = ["public, pg_temp, pg_catalog", "pg_temp, public, pg_catalog", "pg_catalog, public, pg_temp"]
        .into_iter()
        .chain(["pg_catalog, pg_temp, public", "public, pg_catalog, pg_temp", "pg_temp, pg_catalog, public"]);
    let mut new_path = async |s: &mut TcpStream| {
        run(s, &format!("SET search_path = {}", paths.next().unwrap())).await;
    };
    for name in ["s", "sp"] {
        new_path(&mut s).await;
        let r = send(&mut s, &[describe(b'S', name), sync()]).await;
        assert_eq!(messages(&db).await, 360, "a Describe of {name} alone ran the CHECK: {r:?}");
        refused(&r, &format!("a Describe of {name} alone"));
        new_path(&mut s).await;
        let r = send(&mut s, &[p("a", "SELECT 1"), describe(b'S', name), sync()]).await;
        assert_eq!(messages(&db).await, 360, "a Describe of {name} in the middle of its batch ran the CHECK: {r:?}");
        refused(&r, &format!("a Describe of {name} in the middle of its batch"));
        run(&mut s, "DEALLOCATE a").await;
        new_path(&mut s).await;
        s.write_all(&[describe(b'S', name), flush()].concat()).await.unwrap();
        s.write_all(&sync()).await.unwrap();
        let r = replies(&mut s).await;
        assert_eq!(messages(&db).await, 360, "a Describe of {name} and a Flush ran the CHECK: {r:?}");
        refused(&r, &format!("a Describe of {name} and a Flush"));
    }
    let r = send(&mut s, &[p("a", "SELECT 1"), describe(b'S', "plain"), sync()]).await;
    assert_eq!(r.tags, "1tTZ", "{r:?}");
    run(&mut s, "SELECT 1").await;
    px.stop().await;
}

/// Control: DDL and a write with a string literal pipelined in one batch (a migration tool)
/// run as directly in a database without types whose input runs a user function; in one with
/// such a type, the write after the DDL is refused (the DDL may have made a type over it: a
/// table with a column of the domain's array, and a literal converted to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_and_literals_in_one_batch_run_where_no_input_runs_code() {
    let db = setup();
    let px = proxy().await;
    let mut s = startup(px.port(), RAW, &db).await;
    let batch = |t: &str| {
        let ddl = format!("CREATE TEMP TABLE {t} (a text)");
        let ins = format!("INSERT INTO {t} VALUES ('a')");
        [p("", &ddl), b("", "", &[]), e("", 0), p("", &ins), b("", "", &[]), e("", 0), sync()]
    };
    refused_not(&send(&mut s, &batch("m1")).await);
    run(&mut s, PURGE).await;
    // A domain made earlier in the batch, where the database had no such type: refused.
    let (ddl, sel) =
        ("CREATE DOMAIN pg_temp.dn AS int CHECK (pg_temp.f(VALUE))", "SELECT '{1}'::pg_temp.dn[] WHERE false");
    let r = send(&mut s, &[p("", ddl), b("", "", &[]), e("", 0), p("", sel), sync()]).await;
    assert_eq!(messages(&db).await, 360, "{r:?}");
    refused(&r, "a literal converted to a domain made earlier in the batch");
    run(&mut s, "CREATE DOMAIN pg_temp.dm AS int CHECK (pg_temp.f(VALUE))").await;
    // With one, any literal after DDL in the batch is refused (its type may be new).
    refused(&send(&mut s, &batch("m2")).await, "a literal after DDL, with a type whose input runs code");
    // A table with a column of the domain's array, and a literal converted to it.
    let (ddl, ins) = ("CREATE TEMP TABLE m3 (a pg_temp.dm[])", "INSERT INTO m3 VALUES ('{1}')");
    let r = send(&mut s, &[p("", ddl), b("", "", &[]), e("", 0), p("", ins), b("", "", &[]), e("", 0), sync()]).await;
    assert_eq!(messages(&db).await, 360, "{r:?}");
    refused(&r, "a literal converted to a type made earlier in the batch");
    px.stop().await;
}
