//! The `blastwall` command: `serve`, `check` and `demo`. Owns argument parsing, logging setup
//! and signals; everything else lives in the library.

use anyhow::{Context, Result};
use blastwall::config::{Config, Overrides};
use blastwall::guard::Guard;
use blastwall::policy::{self, Mode};
use blastwall::server::{shutdown_handle, Server, ShutdownHandle};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "blastwall",
    version,
    about = "A PostgreSQL proxy that refuses destructive statements before they reach the server"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Configuration file (TOML). Without it: listen 127.0.0.1:6432, upstream 127.0.0.1:5432.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, HOST:PORT.
        #[arg(long)]
        listen: Option<String>,
        /// The PostgreSQL server, HOST:PORT.
        #[arg(long)]
        upstream: Option<String>,
        /// Policy file or folder of *.toml files (repeatable). Default: the built-in default policy.
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        /// Mode for every rule whose policy does not set one: enforce, warn, dry-run or off.
        #[arg(long)]
        mode: Option<Mode>,
        /// Serve /metrics, /healthz and /readyz over HTTP on this address (off by default).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Check SQL scripts against a policy without running them. Exits 1 if any statement
    /// would be refused, 2 on errors.
    Check {
        /// Policy file or folder (repeatable). Default: the built-in default policy.
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Judge as this role (roles in the policy may have their own mode).
        #[arg(long, default_value = "")]
        user: String,
        /// Judge as this application_name.
        #[arg(long, default_value = "")]
        application_name: String,
        /// Mode for every rule whose policy does not set one.
        #[arg(long)]
        mode: Option<Mode>,
        /// SQL files (psql scripts); `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the SQL that creates blastwall's state schema (anomaly histories, budgets), for a
    /// DBA to run: `blastwall init-state --policy policies/ --grant app | psql -d mydb`.
    InitState {
        /// Policy file or folder (its `[state] schema`). Default: the built-in default policy.
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        /// Also grant this role what it needs on the state (repeatable).
        #[arg(long)]
        grant: Vec<String>,
    },
    /// Start a throwaway PostgreSQL with the incident's schema behind blastwall, and show what
    /// it stops.
    Demo {
        /// Address for the proxy.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLASTWALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_policy(paths: &[PathBuf]) -> Result<policy::Policy> {
    if paths.is_empty() {
        return Ok(policy::file::compile(&[(
            std::path::Path::new("<built-in policies/default.toml>"),
            policy::DEFAULT_POLICY,
        )])?);
    }
    Ok(policy::file::load(paths)?)
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("blastwall: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(command: Command) -> Result<i32> {
    match command {
        Command::Check { policies, format, user, application_name, mode, files } => {
            let guard = Guard::new(load_policy(&policies)?, mode);
            let (reports, refused) =
                blastwall::check::run(&guard, &files, &user, &application_name).context("reading SQL")?;
            let fmt = match format {
                Format::Text => blastwall::check::Format::Text,
                Format::Json => blastwall::check::Format::Json,
            };
            blastwall::check::print(&reports, fmt);
            if matches!(fmt, blastwall::check::Format::Text) {
                let n = reports.iter().filter(|r| r.verdict == "refused").count();
                eprintln!("{} statement finding(s), {n} refused", reports.len());
            }
            Ok(if refused { 1 } else { 0 })
        }
        Command::Serve { config, listen, upstream, policies, mode, admin } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            cfg.apply(Overrides { listen, upstream, policies, mode, admin })?;
            let policy_paths = cfg.policies.clone();
            let policy = load_policy(&policy_paths)?;
            tracing::info!(policies = %policy.source_names(), hash = %policy.hash, "policy loaded");
            let loops = event_loops(cfg.threads)?;
            let handles = loops.as_ref().map(|l| l.handles()).unwrap_or_default();
            // Accepting, signals and the admin endpoint: one thread; sessions: the event loops
            // (or this same thread when `threads = 1`).
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let guard = Guard::new(policy, cfg.mode);
                let server = Server::bind(cfg, guard).await?.on_event_loops(handles);
                tracing::info!(listen = %server.local_addr(), "blastwall listening");
                let handle = shutdown_handle();
                spawn_signals(handle.clone(), server.shared().clone(), policy_paths)?;
                server.run(handle).await;
                Ok::<_, anyhow::Error>(())
            })?;
            if let Some(l) = loops {
                l.stop();
            }
            Ok(0)
        }
        Command::InitState { policies, grant } => {
            print!("{}", blastwall::contract::state::init_script(&load_policy(&policies)?.state.schema, &grant));
            Ok(0)
        }
        Command::Demo { listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let handle = shutdown_handle();
                let h = handle.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    h.shutdown();
                });
                blastwall::demo::run(&listen, handle).await
            })?;
            Ok(0)
        }
    }
}

/// The session event loops: `threads = 1` runs everything on the main thread (as PgBouncer
/// does); otherwise one loop per core (0) or `threads` loops.
fn event_loops(threads: usize) -> std::io::Result<Option<blastwall::server::EventLoops>> {
    let n = match threads {
        1 => return Ok(None),
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    blastwall::server::EventLoops::start(n).map(Some)
}

/// SIGTERM/SIGINT: shut down at protocol boundaries. SIGHUP: reload the policy files (an
/// invalid policy is reported and the old one stays in force) and reopen the audit file.
/// The policy files are also watched: a change is reloaded within two seconds.
fn spawn_signals(handle: ShutdownHandle, shared: Arc<blastwall::server::Shared>, paths: Vec<PathBuf>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = policy::file::fingerprint(&paths);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = term.recv() => { handle.shutdown(); break; }
                _ = int.recv() => { handle.shutdown(); break; }
                _ = hup.recv() => {
                    if let Some(a) = &shared.audit {
                        a.reopen();
                    }
                    if !paths.is_empty() {
                        shared.reload(policy::file::load(&paths));
                        seen = policy::file::fingerprint(&paths);
                    }
                }
                _ = tick.tick(), if !paths.is_empty() => {
                    let now = policy::file::fingerprint(&paths);
                    if now != seen {
                        seen = now;
                        shared.reload(policy::file::load(&paths));
                    }
                }
            }
        }
    });
    Ok(())
}
