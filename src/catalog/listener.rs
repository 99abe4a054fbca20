//! DDL run on the server directly, seen at once: `blastwall init-state` (and the state
//! schema's creation on first use, when the role creating it is a superuser) installs two
//! event triggers (`ddl_command_end`, `sql_drop`) whose function, for every command that
//! touches an object outside a temporary schema, adds a row to the state schema's `ddl_seen`
//! (which only it, running as the schema's owner, can write) and sends `NOTIFY blastwall_ddl`
//! (unless the transaction set `blastwall.ddl_notify = off`: a transaction that sent NOTIFY
//! cannot be prepared). With `[ddl_notify]` configured, blastwall keeps one connection per
//! database it has guarded, `LISTEN`ing on that channel; at each notification, and once a
//! second, it reads `ddl_seen`, and a row it has not seen drops that database's catalog
//! answers (hidden callers, indirect writes, policy tables' identities:
//! [`super::Catalog::forget`]) as DDL through blastwall does. A `NOTIFY blastwall_ddl` from
//! anyone else changes nothing (ninth adversarial pass D3). Without them, or while a listening
//! connection is down (it is retried every few seconds), such DDL is seen when the answers
//! expire (30 seconds).
//!
//! A notification is delivered when the DDL commits, to a connection that is idle: it
//! reaches blastwall within a round trip of the COMMIT, not before the DDL's own client hears
//! its COMMIT answered; without one (`blastwall.ddl_notify = off`), within a second.
//!
//! The same connection is this instance's presence in the database and its voice to the other
//! blastwall instances there (`crate::instances`, on their own channel).
//!
//! Owns: the event triggers' SQL, the listening connections, their retries and the reading of
//! `ddl_seen`. Does not own: what is forgotten (`catalog`), what instances say to each other
//! (`instances`) or the upstream link (`backend`).

use super::Catalog;
use crate::backend::Upstream;
use crate::config::DdlNotifyConfig;
use std::sync::Arc;
use std::time::Duration;

/// The channel the event triggers notify.
pub const CHANNEL: &str = "blastwall_ddl";

/// How long a listening connection that failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The statement (one DO block, idempotent) that installs `ddl_seen` and the event triggers in
/// the state schema `s` (quoted) when the current role is a superuser (PostgreSQL allows no one
/// else), and does nothing otherwise. A command that only touches temporary objects is not
/// recorded (nothing other sessions count changed); a `DROP` is recorded by `sql_drop`, which
/// lists what it dropped (`ddl_command_end` lists nothing for it). Each recorded command adds
/// a row to `ddl_seen` and deletes the older rows no other transaction holds (`SKIP LOCKED`:
/// it never waits), so the table keeps a few rows; everyone may read it.
pub fn event_trigger_sql(s: &str) -> String {
    let temp = "'^pg_(toast_)?temp(_[0-9]+)?$'";
    let create = |name: &str, event: &str| {
        format!(
            "IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) '{name}') THEN \
               CREATE EVENT TRIGGER {name} ON {event} EXECUTE FUNCTION {s}.ddl_notify(); END IF;"
        )
    };
    format!(
        "DO $blastwall_ddl$BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN \
           CREATE TABLE IF NOT EXISTS {s}.ddl_seen (id pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY); \
           GRANT SELECT ON {s}.ddl_seen TO PUBLIC; \
           CREATE OR REPLACE FUNCTION {s}.ddl_notify() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS $blastwall_fn$ DECLARE seen pg_catalog.int8; BEGIN \
               IF (CASE WHEN TG_EVENT = 'sql_drop' THEN \
                    EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary) \
                  ELSE (NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands()) AND TG_TAG !~ '^DROP ') \
                    OR EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() \
                      WHERE schema_name IS NULL OR schema_name !~ {temp}) END) THEN \
                 INSERT INTO {s}.ddl_seen DEFAULT VALUES RETURNING id INTO seen; \
                 DELETE FROM {s}.ddl_seen WHERE id IN \
                   (SELECT d.id FROM {s}.ddl_seen d WHERE d.id OPERATOR(pg_catalog.<) seen FOR UPDATE SKIP LOCKED); \
                 IF pg_catalog.current_setting('blastwall.ddl_notify', true) IS DISTINCT FROM 'off' THEN \
                   PERFORM pg_catalog.pg_notify('{CHANNEL}', ''); END IF; \
               END IF; \
             END $blastwall_fn$; \
           {end} {drop} \
         END IF; END$blastwall_ddl$",
        end = create("blastwall_ddl_end", "ddl_command_end"),
        drop = create("blastwall_sql_drop", "sql_drop"),
    )
}

impl Catalog {
    /// Asks for a listening connection to `database` (once), when `[ddl_notify]` is on.
    pub(crate) fn listen_to(&self, database: &str) {
        if let Some(tx) = self.listen.get() {
            if self.listening.insert(database.to_string()) {
                let _ = tx.send(database.to_string());
            }
        }
    }
}

/// What a listening connection tells the rest of blastwall (the proxy's shared state, through
/// `crate::instances::Hearing`): the catalog to forget, and what other instances say.
pub trait Hooks: Send + Sync + 'static {
    fn catalog(&self) -> &Catalog;
    /// The state schema, as the policy names it now (where `ddl_seen` is).
    fn state_schema(&self) -> String;
    /// The connection to `database` listens on both channels; `pid` is its backend.
    fn joined(&self, database: &str, client: Arc<tokio_postgres::Client>, pid: i32);
    /// A notification on [`crate::instances::CHANNEL`], sent by backend `pid`.
    fn heard(&self, database: &str, pid: i32, payload: &str);
    /// Once a second while the connection listens.
    fn tick(&self, database: &str);
    /// The connection ended (or could not be made).
    fn left(&self, database: &str);
}

/// Runs the listening connections until it is dropped (aborted): one per database the
/// catalog asks for (`Catalog::listen_to`), each retried while it fails.
pub async fn run(cfg: DdlNotifyConfig, upstream: Arc<Upstream>, hooks: Arc<dyn Hooks>) {
    let (tx, mut wanted) = tokio::sync::mpsc::unbounded_channel();
    if hooks.catalog().listen.set(tx).is_err() {
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(database) = wanted.recv().await {
        let (cfg, upstream, hooks) = (cfg.clone(), upstream.clone(), hooks.clone());
        tasks.spawn(async move {
            loop {
                let e = listen_once(&cfg, &upstream, &database, &hooks).await;
                hooks.left(&database);
                tracing::warn!(database, error = %e, "blastwall's DDL listener is down: DDL run on the server directly is seen within 30 seconds until it is back, and other blastwall instances cannot be told of DDL (it is refused) nor heard (row writes are judged as if they had DDL open)");
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}

/// What the event triggers recorded last (`ddl_seen`'s ids, committed): DDL committed since
/// shows as an id not seen before. `None`: the table cannot be read (triggers installed by an
/// older blastwall, or no USAGE on the state schema): every notification counts then.
type Seen = Option<Vec<i64>>;

/// Reads `ddl_seen`; `Ok(None)` when it cannot be read (missing, not granted).
async fn ddl_seen(client: &tokio_postgres::Client, schema: &str) -> Result<Seen, tokio_postgres::Error> {
    let s = crate::contract::state::ident(schema);
    let sql = format!("SELECT COALESCE(pg_catalog.array_agg(id), '{{}}') FROM {s}.ddl_seen");
    match client.query_one(&sql, &[]).await {
        Ok(row) => Ok(Some(row.get(0))),
        Err(e) if e.as_db_error().is_some() => {
            tracing::warn!(error = %e, "blastwall cannot read its state schema's ddl_seen: every NOTIFY blastwall_ddl makes it forget its catalog answers (run `blastwall init-state` as a superuser, and grant the [ddl_notify] role USAGE on the schema)");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether `now` holds DDL committed since `before` (an id not seen before).
fn moved(before: &Seen, now: &Seen) -> bool {
    match (before, now) {
        (Some(b), Some(n)) => n.iter().any(|id| !b.contains(id)),
        _ => true,
    }
}

/// The upstream link as a `tokio_postgres` connection of the `[ddl_notify]` role to
/// `database`, named `application` (its password read now from `password_env`); the error
/// as text.
async fn connect(
    cfg: &DdlNotifyConfig,
    upstream: &Upstream,
    database: &str,
    application: &str,
) -> Result<
    (tokio_postgres::Client, tokio_postgres::Connection<crate::backend::BoxIo, tokio_postgres::tls::NoTlsStream>),
    String,
> {
    let password = match &cfg.password_env {
        Some(var) => match std::env::var(var) {
            Ok(p) => Some(p),
            Err(_) => return Err(format!("the environment variable {var} ([ddl_notify] password_env) is not set")),
        },
        None => None,
    };
    let (io, _) = upstream.connect().await.map_err(|e| e.to_string())?;
    let mut pc = tokio_postgres::Config::new();
    pc.user(&cfg.user).dbname(database).application_name(application);
    pc.ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = &password {
        pc.password(p);
    }
    pc.connect_raw(io, tokio_postgres::NoTls).await.map_err(|e| e.to_string())
}

/// A connection of blastwall's own to `database` (as the `[ddl_notify]` role, named
/// `application`), driven by a task of its own until the client is dropped.
pub(crate) async fn own_connection(
    cfg: &DdlNotifyConfig,
    upstream: &Upstream,
    database: &str,
    application: &str,
) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = connect(cfg, upstream, database, application).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "a connection of blastwall's own ended");
        }
    });
    Ok(client)
}

/// One listening connection: connects as `cfg.user`, `LISTEN`s on both channels, forgets once
/// it listens (what changed before is not notified) and whenever `ddl_seen` moved (checked
/// at each `blastwall_ddl` notification and once a second); passes what other instances say
/// to `hooks`. Returns why it ended.
async fn listen_once(cfg: &DdlNotifyConfig, upstream: &Upstream, database: &str, hooks: &Arc<dyn Hooks>) -> String {
    use futures_util::StreamExt;
    let (client, mut conn) = match connect(cfg, upstream, database, crate::instances::APPLICATION).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let client = Arc::new(client);
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let schema = hooks.state_schema();
    let listen = {
        let (client, schema) = (client.clone(), schema.clone());
        async move {
            let sql = format!("LISTEN {CHANNEL}; LISTEN {}", crate::instances::CHANNEL);
            client.batch_execute(&sql).await?;
            let pid: i32 = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await?.get(0);
            Ok::<_, tokio_postgres::Error>((pid, ddl_seen(&client, &schema).await?))
        }
    };
    tokio::pin!(listen);
    let mut listening = false;
    let mut seen: Seen = None;
    type Check = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Seen, tokio_postgres::Error>> + Send>>;
    let mut check: Option<Check> = None;
    let mut again = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            done = &mut listen, if !listening => match done {
                Ok((pid, s)) => {
                    listening = true;
                    seen = s;
                    tracing::info!(database, pid, "listening for DDL run on the server directly and for other blastwall instances");
                    hooks.catalog().forget(database);
                    hooks.joined(database, client.clone(), pid);
                }
                Err(e) => return e.to_string(),
            },
            done = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                check = None;
                match done {
                    Ok(now) => {
                        if moved(&seen, &now) {
                            hooks.catalog().forget(database);
                        }
                        seen = now;
                    }
                    Err(e) => return e.to_string(),
                }
            },
            _ = tick.tick(), if listening => {
                hooks.tick(database);
                again |= seen.is_some();
            },
            m = messages.next() => match m {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    match seen {
                        Some(_) => again = true,
                        None => hooks.catalog().forget(database),
                    }
                }
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    hooks.heard(database, n.process_id(), n.payload());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the server closed the connection".into(),
            },
        }
        // One check at a time; a notification that came while one ran asks for another (it
        // may have started before that DDL's commit).
        if again && check.is_none() && listening {
            again = false;
            let (client, schema) = (client.clone(), schema.clone());
            check = Some(Box::pin(async move { ddl_seen(&client, &schema).await }));
        }
    }
}
