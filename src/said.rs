//! Every message with a SQLSTATE that blastwall sends to a client in its own name, built here
//! and nowhere else: the refusal and warning of a decision (words from `guard::render`), the
//! dry run's report, a failed COMMIT of a verified write, and the endings of a connection
//! (refused at the door, timed out, shut down, broken), and the admin console's errors.
//!
//! Owns: severities, SQLSTATEs and fixed wording of those messages. Does not own: the words of
//! a decision (`guard::render`), when they are sent (`session`, `relay`).

use crate::wire::messages::{sqlstate, ProxyMessage, Severity, TxStatus};

/// A statement refused by policy (`42501`).
pub fn refusal(message: String, detail: String, hint: &str) -> ProxyMessage {
    ProxyMessage::error(sqlstate::INSUFFICIENT_PRIVILEGE, message).with_detail(detail).with_hint(hint)
}

/// A warn-mode finding (`01000`): the statement goes on.
pub fn warning(message: String, detail: String, hint: &str) -> ProxyMessage {
    ProxyMessage { severity: Severity::Warning, code: "01000", message, detail: Some(detail), hint: Some(hint.into()) }
}

/// What a dry run would have done (`00000`).
pub fn dry_run_report(text: String) -> ProxyMessage {
    ProxyMessage { severity: Severity::Notice, code: "00000", message: text, detail: None, hint: None }
}

/// The server's error for the COMMIT that ends a verified write in a transaction blastwall
/// opened (deferred constraints, serialization): its SQLSTATE when it is one of the few that
/// COMMIT raises, else `XX000`.
pub fn commit_failed(code: &str, message: String) -> ProxyMessage {
    let code = match code {
        "23503" => "23503",
        "23505" => "23505",
        "23514" => "23514",
        "40001" => "40001",
        "40P01" => "40P01",
        "57014" => "57014",
        _ => sqlstate::INTERNAL_ERROR,
    };
    ProxyMessage::error(code, message)
}

/// The client's cancel met blastwall's own statements around its statement (`57014`, in the
/// server's words): the statement was undone, as if the cancel had met it.
pub fn canceled() -> ProxyMessage {
    ProxyMessage::error("57014", "canceling statement due to user request")
}

/// A connection refused because it is not TLS and the config requires it.
pub fn tls_required() -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::INVALID_AUTHORIZATION, "blastwall: this proxy requires TLS (sslmode=require)")
        .with_hint("Connect with sslmode=require or stronger.")
}

/// A connection past `max_connections`.
pub fn too_many_clients(max: usize) -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::TOO_MANY_CONNECTIONS, "sorry, too many clients already")
        .with_detail(format!("blastwall max_connections = {max}"))
}

/// A replication connection, not allowed by the config.
pub fn replication_refused() -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::FEATURE_NOT_SUPPORTED, "blastwall: replication connections are not relayed")
        .with_hint("Set allow_replication = true in the blastwall config, or connect to the server directly.")
}

/// The upstream server could not be reached (`connect`: the connection itself failed).
pub fn upstream_unreachable(connect: bool, why: &str) -> ProxyMessage {
    let code = if connect { sqlstate::CANNOT_CONNECT } else { sqlstate::CONNECTION_FAILURE };
    ProxyMessage::fatal(code, format!("blastwall: {why}"))
}

/// The upstream server closed the connection without a word.
pub fn upstream_closed(addr: &str) -> ProxyMessage {
    ProxyMessage::fatal(
        sqlstate::CONNECTION_FAILURE,
        format!("blastwall: the upstream server {addr} closed the connection unexpectedly"),
    )
    .with_hint("The server may have been restarted or the backend terminated. Reconnect.")
}

/// A session idle past `idle_timeout`, in or out of a transaction.
pub fn idle_timeout(tx: TxStatus) -> ProxyMessage {
    match tx {
        TxStatus::Idle => {
            ProxyMessage::fatal("57P05", "terminating connection due to idle-session timeout (blastwall)")
        }
        _ => ProxyMessage::fatal("25P03", "terminating connection due to idle-in-transaction timeout (blastwall)"),
    }
}

/// Authentication not done within `startup_timeout`.
pub fn authentication_timed_out() -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::CONNECTION_FAILURE, "blastwall: authentication timed out")
}

/// A protocol statement or portal name blastwall cannot key as the server will (`42501`):
/// non-ASCII bytes the server converts from the client's encoding before it keys them.
pub fn name_unreadable(client: &str, server: &str) -> ProxyMessage {
    refusal(
        "blastwall: refused a statement or portal name with non-ASCII bytes".into(),
        format!(
            "the server converts such a name from client_encoding ({client}) to server_encoding ({server}) and keys it \
             by its first 63 bytes then, so two names blastwall reads apart may name one object"
        ),
        "Name prepared statements and portals in ASCII, or use the server's encoding as client_encoding.",
    )
}

/// A client message that breaks the protocol.
pub fn protocol_violation(why: &str) -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::PROTOCOL_VIOLATION, format!("blastwall: {why}"))
}

/// SCRAM with channel binding through a TLS link that ends at blastwall.
pub fn channel_binding_refused() -> ProxyMessage {
    ProxyMessage::fatal(
        sqlstate::INVALID_AUTHORIZATION,
        "blastwall: SCRAM channel binding cannot pass through this proxy: TLS ends at blastwall, whose certificate is not the server's",
    )
    .with_hint("Connect with channel_binding=disable, or configure blastwall with the server's own certificate and key (then channel binding works end to end).")
}

/// The session ends: blastwall shuts down, or the console's KILL (`killed`).
pub fn shutting_down(killed: bool) -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection due to administrator command")
        .with_detail(if killed { "ended from the blastwall console (KILL)" } else { "blastwall is shutting down" })
}

/// DDL not forwarded: the other blastwall instances in front of the server did not all answer
/// that the writes they judged before it are done (`55P03`, as a lock not obtained in time).
/// The session ends, so that nothing of the message runs (its transaction rolls back).
pub fn ddl_unannounced(why: &str) -> ProxyMessage {
    ProxyMessage::fatal("55P03", format!("blastwall: DDL not sent: {why}"))
        .with_detail(
            "Another blastwall instance in front of this server may have judged writes whose names this DDL may change, \
             and the server may not have run them yet; the DDL runs only once every live instance has answered that \
             those are done. The session is ended so that nothing of the message runs (its transaction is rolled back).",
        )
        .with_hint("Send it again. If an instance is hung, restart it; if this one's [ddl_notify] connection is down, see its log.")
}

/// A session ended because its DDL and another session's waited for each other's writes,
/// and the other began waiting first (`inflight`; `57P01`).
pub fn ended_for_other_ddl() -> ProxyMessage {
    ProxyMessage::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection due to administrator command").with_detail(
        "ended by blastwall: this session's DDL waited for another session's writes while that session's DDL, \
         waiting since before, waited for this one's; nothing this session had not yet sent ran",
    )
}

/// The console could not reload the policy files (`XX000`).
pub fn console_reload_failed(error: String) -> ProxyMessage {
    ProxyMessage::error(sqlstate::INTERNAL_ERROR, error)
}

/// `KILL` with something that is not a session number (`42601`).
pub fn console_kill_not_a_number(id: &str) -> ProxyMessage {
    ProxyMessage::error("42601", format!("KILL takes a session number (SHOW SESSIONS), not {id:?}"))
}

/// `KILL` of a session that does not exist (`42704`).
pub fn console_no_session(n: u64) -> ProxyMessage {
    ProxyMessage::error("42704", format!("no session {n}"))
}

/// A console command it does not know (`42601`).
pub fn console_unknown_command(command: &str) -> ProxyMessage {
    ProxyMessage::error("42601", format!("blastwall console: unknown command {command:?}"))
        .with_hint("SHOW HELP lists the commands.")
}

/// The console was sent extended-protocol messages (`0A000`).
pub fn console_simple_only() -> ProxyMessage {
    ProxyMessage::error(sqlstate::FEATURE_NOT_SUPPORTED, "the blastwall console answers the simple query protocol only")
        .with_hint("Use psql, or a simple query (tokio-postgres: simple_query; libpq: PQexec).")
}

/// A write kept whose replies could not be held because other sessions' clients have not
/// read theirs: the replies all sessions may hold together were taken (`53000`).
pub fn kept_but_hold_full(total: usize) -> ProxyMessage {
    ProxyMessage::error(
        "53000",
        format!(
            "blastwall: the write was kept, but its replies could not be held: the {total} bytes of replies all sessions may hold together are taken by other sessions whose clients have not read theirs"
        ),
    )
    .with_hint("The write stays: do not send it again. The held replies are given back as the other sessions' clients read theirs; max_held_bytes in the blastwall config sets the total.")
}

/// A write kept uncounted (proven small) whose replies were more than blastwall holds (`XX000`).
pub fn kept_but_too_large(max_hold: usize) -> ProxyMessage {
    ProxyMessage::error(
        sqlstate::INTERNAL_ERROR,
        format!("blastwall: the write was kept, but its replies were larger than the {max_hold} bytes blastwall holds"),
    )
}

/// What blastwall calls `client_encoding` while a statement that may change it is unanswered
/// (a refusal of non-ASCII text names it).
pub const ENCODING_IN_FLIGHT: &str = "not yet known (an earlier statement that may change it is still running)";

/// Why a call cannot be verified while the database has functions that run SQL in another
/// session (`guard::remote`; rule `unverifiable`): `functions`, `extension.function`.
pub fn runs_sql_elsewhere(functions: &[String]) -> String {
    let shown: Vec<&str> = functions.iter().take(4).map(String::as_str).collect();
    let more = if functions.len() > shown.len() {
        format!(" and {} more", functions.len() - shown.len())
    } else {
        String::new()
    };
    format!(
        "it writes to a foreign table or runs code blastwall verifies by counting what it changes in this session, but the database has functions or foreign tables that run SQL in another session ({}{more}): what they write is committed by another backend, which this session's counters do not see and a rollback cannot undo",
        shown.join(", ")
    )
}

/// The hint beside [`runs_sql_elsewhere`].
pub const HINT_RUNS_SQL_ELSEWHERE: &str = "Run the write as a plain statement through blastwall. While the extension is installed in this database (DROP EXTENSION dblink removes it), no call of code blastwall cannot see can be verified here.";
