//! Eighteenth pass X1, X2: the DML-only role's own temporary code — a function, or a trigger
//! on its temporary table — writes `users`. Such code is the client's, never judged: in a
//! session whose temporary schema holds a user function — or that made code earlier in the same
//! message or batch — nothing a count finds changed in a policy table with text rules is
//! explained by any statement (`guard::reached`, rule `unjudged-write`): PostgreSQL runs such
//! code from more places than a statement's text shows.
//! Before, the count's row limit alone judged it, and the incident's range DELETE ran from a
//! DML-only role in two statements. Data checked directly on the server; the controls show
//! what still runs (the same session once its code is gone, a session without such code).

use crate::batches::q;
use crate::batchnames::{run, send};
use crate::binds::RAW;
use crate::harness::*;

const WINDOW: &str = "SELECT count(*) FROM public.users WHERE id BETWEEN -91111120 AND -91111111";

fn db() -> String {
    let db = crate::binds::setup();
    admin_sql(pg(), &db, &format!("GRANT TEMPORARY ON DATABASE {db} TO {RAW}"));
    db
}

fn refused(r: &Replies, what: &str) {
    assert!(r.errors.contains("unjudged-write"), "{what} was not refused as unjudged-write: {r:?}");
    assert!(r.errors.contains("temporary schema holds code"), "{what}: says why: {}", r.errors);
}

/// X2: a temporary SQL function whose body is the incident's range DELETE, called by a plain
/// Query (and inside a point DELETE's WHERE); X1's shape with a DELETE: a trigger on the
/// role's temporary table, fired by an INSERT into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_own_temporary_code_explains_no_change_of_a_protected_table() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(
        &mut c,
        "CREATE FUNCTION pg_temp.f() RETURNS void LANGUAGE sql \
         AS $$ DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111 $$",
    )
    .await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    refused(&send(&mut c, &[q("SELECT pg_temp.f()")]).await, "the call");
    let point = "DELETE FROM users WHERE id = 0 AND (SELECT pg_temp.f()) IS NULL";
    refused(&send(&mut c, &[q(point)]).await, "a point DELETE that calls it");
    run(
        &mut c,
        "CREATE TEMP TABLE st3 (id bigint); \
         CREATE FUNCTION pg_temp.tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111; RETURN NEW; END $$; \
         CREATE TRIGGER t AFTER INSERT ON st3 FOR EACH ROW EXECUTE FUNCTION pg_temp.tf()",
    )
    .await;
    refused(&send(&mut c, &[q("INSERT INTO st3 VALUES (1)")]).await, "the trigger");
    // A domain of the schema whose CHECK calls it: named by a cast, with no call in the text.
    run(
        &mut c,
        "CREATE FUNCTION pg_temp.g(i int) RETURNS bool LANGUAGE sql \
           AS $$ DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111 RETURNING true $$; \
         CREATE DOMAIN pg_temp.d AS int CHECK (pg_temp.g(VALUE))",
    )
    .await;
    refused(&send(&mut c, &[q("DELETE FROM users WHERE id = 0 AND 1::d = 1")]).await, "a cast to the domain");
    assert_eq!(count(&db, WINDOW).await, before, "nothing deleted");
    // Any statement may run it: a point DELETE that names none of it too.
    refused(&send(&mut c, &[q("DELETE FROM users WHERE id = 1000003")]).await, "a plain point DELETE");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 1000001").await, 1);
    // Its code gone, the same session's point DELETE runs; a session without code is not
    // affected meanwhile.
    let mut other = startup(px.port(), RAW, &db).await;
    run(&mut other, "DELETE FROM users WHERE id = 1000002").await;
    run(&mut c, "DISCARD TEMP").await;
    run(&mut c, "DELETE FROM users WHERE id = 1000001").await;
    run(&mut c, "DELETE FROM users WHERE id = 1000003").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id IN (1000001, 1000002, 1000003)").await, 0);
    px.stop().await;
}

/// X1: with `forbid = ["explicit_id"]`, a temporary trigger that inserts hand-picked ids into
/// `users` is refused; a signup beside it, in a session without such code, mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_picked_ids_inserted_by_the_sessions_own_trigger_are_refused() {
    let text = "[[table]]\nname = \"public.users\"\nprotected_columns = [\"id\"]\nforbid = [\"explicit_id\"]\nmax_delete_rows = 10\n";
    let policy = blastwall::policy::file::compile(&[(std::path::Path::new("ids.toml"), text)]).unwrap();
    let db = db();
    let px = proxy_with(base_config(), policy).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(
        &mut c,
        "CREATE TEMP TABLE st3 (id bigint); \
         CREATE FUNCTION pg_temp.tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO public.users (id, auth_source, email) \
           SELECT -g, 'oauth', 'hand-minted' FROM generate_series(91111121, 91111130) g; RETURN NEW; END $$; \
         CREATE TRIGGER t AFTER INSERT ON st3 FOR EACH ROW EXECUTE FUNCTION pg_temp.tf()",
    )
    .await;
    let r = send(&mut c, &[q("INSERT INTO st3 VALUES (1)")]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'hand-minted'").await, 0);
    let mut other = startup(px.port(), RAW, &db).await;
    run(&mut other, "INSERT INTO users (auth_source, email) VALUES ('oauth', 'minted@x')").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE email = 'minted@x' AND id = -91111121").await, 1);
    px.stop().await;
}

/// A temporary function whose body makes a temporary `users` (holding the row a point DELETE
/// names) with an INSTEAD rule that range-deletes the real users.
const MK: &str = "CREATE FUNCTION pg_temp.mk() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
    EXECUTE 'CREATE TEMP TABLE us' || 'ers AS SELECT * FROM public.users WHERE id = -91111105'; \
    EXECUTE 'CREATE RULE r AS ON DELETE TO pg_temp.us' || 'ers DO INSTEAD ' \
      || 'DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111'; \
    RETURN 1; END $$";

/// Nineteenth pass T1b: the role's temporary function makes, in its body (dynamic SQL
/// blastwall never sees), a temporary `users` with an INSTEAD rule that range-deletes the real
/// users. A point DELETE of `users` in a pipeline behind the call, or behind a `BEGIN` after
/// the call was answered, is refused: the schema cannot be asked there, and held user
/// functions at its last answer. A session whose schema held none pipelines the same DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_made_by_the_sessions_function_in_a_pipeline_explains_nothing() {
    use crate::batches::{b, e, p, pbe, sync};
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, MK).await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let delete = [p("", "DELETE FROM users WHERE id = $1"), b("", "", &["-91111105"]), e("", 0)].concat();
    // In one batch: the call is an earlier statement that may redirect the name.
    let r = send(&mut c, &[pbe("SELECT pg_temp.mk()"), delete.clone(), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    // The call answered, then a batch whose first statement runs no code: `users` is asked
    // about inside the batch, behind the BEGIN (issue 13), and found to be the temporary table
    // whose rule writes public.users.
    run(&mut c, "SELECT pg_temp.mk()").await;
    let r = send(&mut c, &[pbe("BEGIN"), delete.clone(), pbe("COMMIT"), sync()]).await;
    assert!(r.errors.contains("a rule fired by DELETE on users"), "{r:?}");
    assert_eq!(count(&db, WINDOW).await, before);
    run(&mut c, "ROLLBACK").await;
    // The function run by a trigger of the session's temporary table, written first in the
    // batch: the schema cannot be asked behind it.
    run(&mut c, "DISCARD TEMP").await;
    run(
        &mut c,
        &MK.replace("pg_temp.mk() RETURNS int", "pg_temp.mk() RETURNS trigger").replace("RETURN 1", "RETURN NEW"),
    )
    .await;
    run(&mut c, "CREATE TEMP TABLE st3 (id bigint); CREATE TRIGGER t AFTER INSERT ON st3 FOR EACH ROW EXECUTE FUNCTION pg_temp.mk()").await;
    let r = send(&mut c, &[pbe("INSERT INTO st3 VALUES (1)"), delete.clone(), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(count(&db, WINDOW).await, before, "nothing deleted");
    assert_eq!(count(&db, WINDOW).await, before, "nothing deleted");
    let mut other = startup(px.port(), RAW, &db).await;
    let r = send(&mut other, &[pbe("SELECT 1"), delete, sync()]).await;
    assert!(r.codes.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = -91111105").await, 0);
    px.stop().await;
}

/// Twentieth pass N5: the code is made and run in one message — a temporary function made and
/// called in one Query or one pipeline, a default of a temporary table made there, a rule made
/// there with any call beside it (a DBA's harmless function as the decoy, no temporary
/// function at all), an id moved by such a function. Each is refused; nothing changed. A
/// message that makes a temporary table and writes `users` by a point UPDATE still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_made_and_run_in_one_message_explains_nothing() {
    use crate::batches::{pbe, sync};
    let db = db();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE FUNCTION public.app_version() RETURNS text LANGUAGE sql AS $$ SELECT '1.0' $$; \
             GRANT EXECUTE ON FUNCTION public.app_version() TO {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let range = "DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111";
    let f = format!("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ {range}; SELECT 1 $$");
    let queries = [
        format!("{f}; SELECT pg_temp.f()"),
        format!("{f}; CREATE TEMP TABLE td (a int DEFAULT pg_temp.f(), b int); INSERT INTO td (b) VALUES (1)"),
        format!(
            "CREATE TEMP TABLE st (id int); CREATE RULE r AS ON INSERT TO st DO ALSO {range}; \
             INSERT INTO st VALUES (1); SELECT app_version()"
        ),
        "CREATE FUNCTION pg_temp.mv() RETURNS int LANGUAGE sql AS $$ \
           DELETE FROM public.subscriptions WHERE user_id = -91111111; \
           DELETE FROM public.chat_sessions WHERE user_id = -91111111; \
           UPDATE public.users SET id = -91111150 WHERE id = -91111111; SELECT 1 $$; SELECT pg_temp.mv()"
            .to_string(),
    ];
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    for sql in &queries {
        let mut c = startup(px.port(), RAW, &db).await;
        let r = send(&mut c, &[q(sql)]).await;
        assert!(r.errors.contains("blastwall: refused"), "{sql}: {r:?}");
        assert_eq!(count(&db, WINDOW).await, before, "{sql}");
    }
    // The same in a pipeline: the function made, then called, before one Sync.
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(&mut c, &[pbe(&f), pbe("SELECT pg_temp.f()"), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(count(&db, WINDOW).await, before, "the pipeline");
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = -91111150").await, 0);
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP TABLE scratch (id int); UPDATE users SET plan = 'pro' WHERE id = 1000001").await;
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE id = 1000001 AND plan = 'pro'").await, 1);
    px.stop().await;
}

/// Twenty-first pass H1–H4: the session's temporary function run where no statement text
/// names it — a built-in that runs SQL text (`query_to_xml` of a `concat`), `ANALYZE` of a
/// temporary table whose expression index calls it, `array_in` given a temporary domain's OID
/// (its `CHECK` calls it), a `FETCH` of a cursor over it — each beside a point write of `users`
/// that matches no row. Refused, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_code_run_where_no_text_names_it_explains_nothing() {
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let range = "DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111";
    run(&mut c, &format!("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ {range}; SELECT 1 $$")).await;
    run(
        &mut c,
        "CREATE FUNCTION pg_temp.fi(int) RETURNS int LANGUAGE sql IMMUTABLE \
           AS $$ SELECT $1 + CASE WHEN current_setting('x.go', true) = '1' THEN pg_temp.f() ELSE 0 END $$; \
         CREATE TEMP TABLE tt (a int); CREATE INDEX ON tt ((pg_temp.fi(a))); INSERT INTO tt VALUES (NULL); \
         CREATE DOMAIN pg_temp.dd AS int CHECK (pg_temp.f() = 1)",
    )
    .await;
    run(&mut c, "SET x.go = 1").await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let noop = "WITH d AS (DELETE FROM users WHERE id = 0 RETURNING 1)";
    let messages = [
        format!("{noop} SELECT query_to_xml(concat('select pg_t','emp.f()'), true, true, '')"),
        "DELETE FROM users WHERE id = 0; ANALYZE".to_string(),
        format!("{noop} SELECT array_in('{{5}}', (SELECT t.oid FROM pg_type t WHERE t.typname = 'dd' AND t.typnamespace = pg_my_temp_schema()), -1)"),
    ];
    for m in &messages {
        let r = send(&mut c, &[q(m)]).await;
        assert!(r.errors.contains("blastwall: refused"), "{m}: {r:?}");
        assert_eq!(count(&db, WINDOW).await, before, "{m}");
    }
    run(&mut c, "BEGIN").await;
    run(&mut c, "DECLARE cur CURSOR FOR SELECT pg_temp.f()").await;
    let r = send(&mut c, &[q("DELETE FROM users WHERE id = 0; FETCH 1 cur")]).await;
    assert!(r.errors.contains("blastwall: refused"), "FETCH: {r:?}");
    let _ = send(&mut c, &[q("ROLLBACK")]).await;
    assert_eq!(count(&db, WINDOW).await, before, "FETCH");
    px.stop().await;
}

/// Twenty-first pass H5: a protocol Parse of a point DELETE that matches no row, whose
/// parameter is typed as the session's temporary domain (its `CHECK` calls the function):
/// binding the value runs the code. Refused, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_through_the_sessions_domain_explains_nothing() {
    use crate::batches::{b, e, sync};
    let db = db();
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let range = "DELETE FROM public.users WHERE id BETWEEN -91111120 AND -91111111";
    run(&mut c, &format!("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ {range}; SELECT 1 $$")).await;
    run(&mut c, "CREATE DOMAIN pg_temp.dd AS int CHECK (pg_temp.f() = 1)").await;
    let oid = count(&db, "SELECT t.oid::int8 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'dd' AND n.nspname LIKE 'pg_temp%'").await;
    let before = count(&db, WINDOW).await;
    assert_eq!(before, 10);
    let mut body = b"\0DELETE FROM users WHERE id = 0 AND $1 IS NOT NULL\0".to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&(oid as u32).to_be_bytes());
    let parse = msg(b'P', &body);
    let r = send(&mut c, &[parse, b("", "", &["5"]), e("", 0), sync()]).await;
    assert!(r.errors.contains("blastwall: refused"), "{r:?}");
    assert_eq!(count(&db, WINDOW).await, before);
    px.stop().await;
}

/// Fifty-fifth pass FP-1: the policy tables' owner wrote an `AFTER INSERT` trigger on its own
/// table `q` that deletes the user of the inserted id. The DML-only role's `INSERT INTO q` is
/// the first write blastwall judges in the database: whether the database's code is all the
/// owners' is asked with it, and the trigger explains the deleted row (the row limits judge
/// it). Another role's trigger on `q` withdraws the excuse: refused, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_trigger_still_explains_the_rows_it_changes() {
    let db = crate::binds::setup();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.q (id bigint); GRANT ALL ON public.q TO {RAW}; \
             CREATE FUNCTION public.q_del() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
               AS $$BEGIN DELETE FROM public.users WHERE id = NEW.id; RETURN NEW; END$$; \
             CREATE TRIGGER q_del AFTER INSERT ON public.q FOR EACH ROW EXECUTE FUNCTION public.q_del()"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let before = count(&db, WINDOW).await;
    run(&mut c, "INSERT INTO q VALUES (-91111120)").await;
    assert_eq!(count(&db, WINDOW).await, before - 1, "the owner's trigger ran");
    px.stop().await;
    // The same trigger function owned by the DML-only role (a blastwall that starts knowing
    // nothing: without `[ddl_notify]`, DDL run directly is seen when the answers age out).
    admin_sql(pg(), &db, &format!("ALTER FUNCTION public.q_del() OWNER TO {RAW}"));
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(&mut c, &[q("INSERT INTO q VALUES (-91111119)")]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(count(&db, WINDOW).await, before - 1, "nothing more deleted");
    px.stop().await;
}

/// Fifty-eighth pass H3: the policy tables' owner's trigger writes its log table by a name
/// without a schema (its function sets no `search_path`), so under the writer's path; the
/// DML-only role makes a temporary view of that name over `public.users` (the temporary schema
/// is searched first), and its ordinary INSERT into the owner's queue table fires the trigger,
/// whose upsert overwrites a user's email through the view. A session whose temporary schema
/// holds a view leaves no code to explain rows of a policy table the judgement did not reach:
/// refused, the email unchanged. Without the view, the same INSERT runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_view_that_an_owners_trigger_writes_through_explains_nothing() {
    let db = db();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.profiles (user_id bigint PRIMARY KEY, email text); \
             CREATE TABLE public.profile_updates (user_id bigint, email text); \
             CREATE FUNCTION public.apply_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO profiles (user_id, email) VALUES (NEW.user_id, NEW.email) \
               ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email; RETURN NULL; END $$; \
             CREATE TRIGGER apply AFTER INSERT ON public.profile_updates \
               FOR EACH ROW EXECUTE FUNCTION public.apply_update(); \
             GRANT ALL ON public.profiles, public.profile_updates TO {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    // Fifty-ninth pass H2: the view made earlier in the same Query as the write.
    let mut c = startup(px.port(), RAW, &db).await;
    let both = "CREATE TEMP VIEW profiles AS SELECT id AS user_id, email FROM public.users; \
                INSERT INTO profile_updates VALUES (-91111101, 'pwned')";
    let r = send(&mut c, &[q(both)]).await;
    assert!(r.errors.contains("unjudged-write"), "one Query: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE email = 'pwned'").await, 0);
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "INSERT INTO profile_updates VALUES (-91111101, 'legit@x')").await;
    assert_eq!(count(&db, "SELECT count(*) FROM public.profiles WHERE email = 'legit@x'").await, 1);
    run(&mut c, "CREATE TEMP VIEW profiles AS SELECT id AS user_id, email FROM public.users").await;
    let r = send(&mut c, &[q("INSERT INTO profile_updates VALUES (-91111101, 'pwned')")]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE email = 'pwned'").await, 0);
    px.stop().await;
}

/// Fifty-eighth pass H3 by a permanent schema: the DML-only role owns schema `mine`, puts it
/// first on its path and makes `mine.profiles`, a view over `public.users`; the owner's
/// trigger, whose function sets no `search_path`, then upserts through it. While another role
/// may create in a schema of the database, the owner's functions that set no `search_path`
/// count as code another role may steer: refused, the email unchanged. The same function with
/// a `search_path` of its own writes `public.profiles`, and the INSERT runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_function_without_a_path_of_its_own_explains_nothing_where_others_may_create() {
    let db = db();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.profiles (user_id bigint PRIMARY KEY, email text); \
             CREATE TABLE public.profile_updates (user_id bigint, email text); \
             CREATE FUNCTION public.apply_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO profiles (user_id, email) VALUES (NEW.user_id, NEW.email) \
               ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email; RETURN NULL; END $$; \
             CREATE TRIGGER apply AFTER INSERT ON public.profile_updates \
               FOR EACH ROW EXECUTE FUNCTION public.apply_update(); \
             GRANT ALL ON public.profiles, public.profile_updates TO {RAW}; \
             CREATE SCHEMA mine AUTHORIZATION {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = mine, public").await;
    run(&mut c, "CREATE VIEW mine.profiles AS SELECT id AS user_id, email FROM public.users").await;
    let r = send(&mut c, &[q("INSERT INTO profile_updates VALUES (-91111101, 'pwned')")]).await;
    assert!(r.errors.contains("unjudged-write"), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE email = 'pwned'").await, 0);
    px.stop().await;
    // Fifty-ninth pass H1: a path of its own that starts with `$user` (what `SET search_path
    // FROM CURRENT` stores) is the caller's own schema first.
    admin_sql(
        pg(),
        &db,
        &format!(
            "ALTER FUNCTION public.apply_update() SET search_path = \"$user\", public; \
             CREATE SCHEMA {RAW} AUTHORIZATION {RAW}"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, &format!("CREATE VIEW {RAW}.profiles AS SELECT id AS user_id, email FROM public.users")).await;
    let r = send(&mut c, &[q("INSERT INTO profile_updates VALUES (-91111101, 'pwned')")]).await;
    assert!(r.errors.contains("unjudged-write"), "$user: {r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE email = 'pwned'").await, 0);
    px.stop().await;
    admin_sql(
        pg(),
        &db,
        &format!("DROP SCHEMA {RAW} CASCADE; ALTER FUNCTION public.apply_update() SET search_path = public"),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "SET search_path = mine, public").await;
    run(&mut c, "INSERT INTO profile_updates VALUES (-91111101, 'kept')").await;
    assert_eq!(count(&db, "SELECT count(*) FROM public.profiles WHERE email = 'kept'").await, 1);
    px.stop().await;
}

/// Fifty-ninth pass FP-2: an ORM's unit of work in one pipeline — an order, then a
/// subscription whose insert fires the policy tables' owner's trigger, which sets the user's
/// plan (a qualified name). The subscription's INSERT is in the middle of the batch: whether
/// its table runs code is asked there, and the trigger explains the user's row. Both run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_trigger_fired_in_the_middle_of_a_pipeline_explains_its_rows() {
    use crate::batches::{pbe, sync};
    let db = db();
    admin_sql(
        pg(),
        &db,
        &format!(
            "CREATE TABLE public.orders (user_id bigint, total int); GRANT ALL ON public.orders TO {RAW}; \
             CREATE FUNCTION public.plan_of() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               UPDATE public.users SET plan = NEW.plan WHERE id = NEW.user_id; RETURN NULL; END $$; \
             CREATE TRIGGER plan_of AFTER INSERT ON public.subscriptions \
               FOR EACH ROW EXECUTE FUNCTION public.plan_of()"
        ),
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let mut c = startup(px.port(), RAW, &db).await;
    let r = send(
        &mut c,
        &[
            pbe("INSERT INTO orders VALUES (-91111101, 1)"),
            pbe("INSERT INTO subscriptions (user_id, plan) VALUES (-91111101, 'gold')"),
            sync(),
        ],
    )
    .await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE id = -91111101 AND plan = 'gold'").await, 1);
    px.stop().await;
}

/// Sixtieth pass H1, H2: the policy tables' owner's functions that follow the advice (a path
/// of their own with `pg_temp` last, or qualified writes) but whose caller still steers what
/// they write — a scratch table made `IF NOT EXISTS` and written by name (the caller's
/// temporary view of that name is there first), and a tenant's schema taken from an argument
/// into dynamic SQL (`'pg_temp'`). Such code explains no rows of a policy table the judgement
/// did not reach: refused, the users kept. Used as designed (no view), the scratch function runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_function_whose_caller_steers_what_it_writes_explains_nothing() {
    let db = db();
    admin_sql(
        pg(),
        &db,
        "CREATE FUNCTION public.clear(ids bigint[]) RETURNS int LANGUAGE plpgsql SET search_path = public, pg_temp \
           AS $$ BEGIN CREATE TEMP TABLE IF NOT EXISTS work (id bigint); \
           DELETE FROM work WHERE id = ANY (ids); RETURN 1; END $$; \
         CREATE FUNCTION public.purge(tenant text, ids bigint[]) RETURNS int LANGUAGE plpgsql \
           SET search_path = public, pg_temp \
           AS $$ BEGIN EXECUTE format('DELETE FROM %I.sessions WHERE user_id = ANY ($1)', tenant) USING ids; \
           RETURN 1; END $$; \
         CREATE FUNCTION public.mark(uid bigint) RETURNS int LANGUAGE sql \
           AS $$ UPDATE public.users SET plan = 'marked' WHERE id = uid RETURNING 1 $$; \
         CREATE TABLE public.jobs (ids bigint[], ok int CHECK (public.clear(ids) = 1)); \
         GRANT ALL ON public.jobs TO trust_user",
    );
    let px = proxy_with(base_config(), shipped_policy()).await;
    let ids = "ARRAY[-91111120, -91111119, -91111118]::bigint[]";
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, &format!("SELECT public.clear({ids})")).await;
    // Sixty-first pass FP-1: another function, which the caller does not steer, called by a
    // qualified name, still explains the row it changes.
    run(&mut c, "SELECT public.mark(-91111101)").await;
    assert_eq!(count(&db, "SELECT count(*) FROM public.users WHERE plan = 'marked'").await, 1);
    let mut c = startup(px.port(), RAW, &db).await;
    run(&mut c, "CREATE TEMP VIEW work AS SELECT id FROM public.users").await;
    // Sixty-first pass H1: the same function run by a table's CHECK, not by the statement.
    let r = send(&mut c, &[q(&format!("INSERT INTO public.jobs VALUES ({ids}, 1)"))]).await;
    assert!(r.errors.contains("unjudged-write"), "a CHECK: {r:?}");
    let r = send(&mut c, &[q(&format!("SELECT public.clear({ids})"))]).await;
    assert!(r.errors.contains("unjudged-write"), "scratch: {r:?}");
    run(&mut c, "CREATE TEMP VIEW sessions AS SELECT id AS user_id FROM public.users").await;
    let r = send(&mut c, &[q(&format!("SELECT public.purge('pg_temp', {ids})"))]).await;
    assert!(r.errors.contains("unjudged-write"), "tenant: {r:?}");
    assert_eq!(count(&db, WINDOW).await, 10, "the users kept");
    px.stop().await;
}
