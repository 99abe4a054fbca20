//! DDL run on the server directly, seen at once: `blastwall init-state` (and the state
//! schema's creation on first use, when the role creating it is a superuser) installs two
//! event triggers (`ddl_command_end`, `sql_drop`) whose function sends `NOTIFY
//! blastwall_ddl` for every command that touches an object outside a temporary schema; with
//! `[ddl_notify]` configured, blastwall keeps one connection per database it has guarded,
//! `LISTEN`ing on that channel, and a notification drops that database's catalog answers
//! (hidden callers, indirect writes, policy tables' identities: [`super::Catalog::forget`]) as
//! DDL through blastwall does. Without them, or while a listening connection is down (it is
//! retried every few seconds), such DDL is seen when the answers expire (30 seconds).
//!
//! A notification is delivered when the DDL commits, to a connection that is idle: it
//! reaches blastwall within a round trip of the COMMIT, not before the DDL's own client hears
//! its COMMIT answered.
//!
//! Owns: the event triggers' SQL, the listening connections and their retries. Does not own:
//! what is forgotten (`catalog`) or the upstream link (`backend`).

use super::Catalog;
use crate::backend::Upstream;
use crate::config::DdlNotifyConfig;
use std::sync::Arc;
use std::time::Duration;

/// The channel the event triggers notify.
pub const CHANNEL: &str = "blastwall_ddl";

/// How long a listening connection that failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The statement (one DO block, idempotent) that installs the event triggers in the state
/// schema `s` (quoted) when the current role is a superuser (PostgreSQL allows no one else),
/// and does nothing otherwise. A command that only touches temporary objects is not notified
/// (nothing other sessions count changed); a `DROP` is notified by `sql_drop`, which lists
/// what it dropped (`ddl_command_end` lists nothing for it).
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
           CREATE OR REPLACE FUNCTION {s}.ddl_notify() RETURNS event_trigger LANGUAGE plpgsql \
             SET search_path = pg_catalog, pg_temp AS $blastwall_fn$ BEGIN \
               IF TG_EVENT = 'sql_drop' THEN \
                 IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN \
                   PERFORM pg_catalog.pg_notify('{CHANNEL}', ''); END IF; \
               ELSIF (NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands()) AND TG_TAG !~ '^DROP ') \
                 OR EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() \
                   WHERE schema_name IS NULL OR schema_name !~ {temp}) THEN \
                 PERFORM pg_catalog.pg_notify('{CHANNEL}', ''); END IF; \
             END $blastwall_fn$; \
           {end} {drop} \
         END IF; END$blastwall_ddl$",
        end = create("blastwall_ddl_end", "ddl_command_end"),
        drop = create("blastwall_sql_drop", "sql_drop"),
    )
}

impl Catalog {
    /// Asks for a listening connection to `database` (once), when `[ddl_notify]` is on.
    pub(super) fn listen_to(&self, database: &str) {
        if let Some(tx) = self.listen.get() {
            if self.listening.insert(database.to_string()) {
                let _ = tx.send(database.to_string());
            }
        }
    }
}

/// Runs the listening connections until it is dropped (aborted): one per database the
/// catalog asks for (`Catalog::listen_to`), each retried while it fails. `catalog` finds the
/// catalog in `owner` (the proxy's shared state).
pub async fn run<S: Send + Sync + 'static>(
    cfg: DdlNotifyConfig,
    upstream: Arc<Upstream>,
    owner: Arc<S>,
    catalog: fn(&S) -> &Catalog,
) {
    let (tx, mut wanted) = tokio::sync::mpsc::unbounded_channel();
    if catalog(&owner).listen.set(tx).is_err() {
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(database) = wanted.recv().await {
        let (cfg, upstream, owner) = (cfg.clone(), upstream.clone(), owner.clone());
        tasks.spawn(async move {
            loop {
                let e = listen_once(&cfg, &upstream, &database, &|| catalog(&owner).forget(&database)).await;
                tracing::warn!(database, error = %e, "blastwall's DDL listener is down: DDL run on the server directly is seen within 30 seconds until it is back");
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}

/// One listening connection: connects as `cfg.user`, `LISTEN`s, and calls `forget` once it
/// listens (what changed before is not notified) and at each notification; returns why it
/// ended.
async fn listen_once(cfg: &DdlNotifyConfig, upstream: &Upstream, database: &str, forget: &(dyn Fn() + Sync)) -> String {
    use futures_util::StreamExt;
    let password = match &cfg.password_env {
        Some(var) => match std::env::var(var) {
            Ok(p) => Some(p),
            Err(_) => return format!("the environment variable {var} ([ddl_notify] password_env) is not set"),
        },
        None => None,
    };
    let (io, _) = match upstream.connect().await {
        Ok(x) => x,
        Err(e) => return e.to_string(),
    };
    let mut pc = tokio_postgres::Config::new();
    pc.user(&cfg.user).dbname(database).application_name("blastwall DDL listener");
    pc.ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = &password {
        pc.password(p);
    }
    let (client, mut conn) = match pc.connect_raw(io, tokio_postgres::NoTls).await {
        Ok(x) => x,
        Err(e) => return e.to_string(),
    };
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => match done {
                Ok(()) => {
                    listening = true;
                    tracing::info!(database, "listening for DDL run on the server directly");
                    forget();
                }
                Err(e) => return e.to_string(),
            },
            m = messages.next() => match m {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => forget(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the server closed the connection".into(),
            },
        }
    }
}
