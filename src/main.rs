//! The `blastwall` command: `serve`, `check`, `demo` and `generate`. Owns argument parsing,
//! logging setup, error printing and signals; everything else lives in the library.

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
        /// Replaces the policy's `[defaults] mode`: enforce, warn, dry-run or off. A `[[role]]`,
        /// `[[application]]` or `[[table]]` that sets its own mode keeps it.
        #[arg(long)]
        mode: Option<Mode>,
        /// Serve /metrics, /healthz and /readyz over HTTP on this address (off by default).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Check psql scripts against a policy without running them. Exits 0 when no statement
    /// would be refused, 1 when one would, 2 on errors (unreadable file or include, include
    /// cycle, invalid policy).
    Check {
        /// Policy file or folder (repeatable). Default: the built-in default policy.
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        /// Output: `text` (one line per finding, then its hint) or `json` (one JSON object per
        /// finding: file, line, verdict, rule, mode, message, hint, policy, statement).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Judge as this role (roles in the policy may have their own mode). Default: none.
        #[arg(long)]
        user: Option<String>,
        /// Judge as this application_name. Default: none.
        #[arg(long)]
        application_name: Option<String>,
        /// Replaces the policy's `[defaults] mode` (as `serve --mode`).
        #[arg(long)]
        mode: Option<Mode>,
        /// Set a psql variable, as `psql -v NAME=VALUE` (repeatable).
        #[arg(short = 'v', long = "set", visible_alias = "variable", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// SQL files (psql scripts); `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Work with a config file without starting the proxy.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Exit 0 when the admin endpoint's /readyz answers 200 (for HEALTHCHECKs), 1 otherwise.
    Health {
        /// The admin endpoint, HOST:PORT (as `serve --admin`).
        #[arg(long)]
        admin: Option<String>,
        /// Read the admin address from this config file instead.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
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
    /// Print the manual page (roff) or a shell completion script, from these definitions.
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand)]
enum Generate {
    /// The manual page blastwall(1), in roff: `blastwall generate man > blastwall.1`.
    Man,
    /// A completion script for SHELL: `blastwall generate completions bash > blastwall.bash`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `-v NAME=VALUE`.
fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, v)) if !n.is_empty() => Ok((n.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the config and the policy and TLS files it names; exit 0 if blastwall would
    /// start with it, 1 (with file:line messages) if not.
    Check { file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLASTWALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, never into a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.fmt_fields(blastwall::logging::EscapedFields::default()).init(),
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
            eprintln!("blastwall: {}", error_chain(&e));
            2
        }
    };
    std::process::exit(code);
}

/// The error and its causes, each said once: a cause whose text the message already holds
/// (`binding …: Address already in use (os error 98)` over the io::Error itself) is left out.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn run(command: Command) -> Result<i32> {
    match command {
        Command::Check { policies, format, user, application_name, mode, vars, files } => {
            let guard = Guard::new(load_policy(&policies)?, mode);
            let opts = blastwall::check::Options {
                user: user.unwrap_or_default(),
                application_name: application_name.unwrap_or_default(),
                vars: vars.into_iter().collect(),
            };
            let out = blastwall::check::run(&guard, &files, &opts)?;
            let fmt = match format {
                Format::Text => blastwall::check::Format::Text,
                Format::Json => blastwall::check::Format::Json,
            };
            blastwall::check::print(&out.reports, fmt);
            eprintln!("{}", blastwall::check::summary(&out));
            Ok(if out.refused { 1 } else { 0 })
        }
        Command::Generate { what } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut stdout = std::io::stdout();
            match what {
                Generate::Man => clap_mangen::Man::new(cmd).render(&mut stdout)?,
                Generate::Completions { shell } => clap_complete::generate(shell, &mut cmd, "blastwall", &mut stdout),
            }
            Ok(0)
        }
        Command::Serve { config, listen, upstream, policies, mode, admin } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            cfg.apply(Overrides { listen, upstream, policies, mode, admin })?;
            let policy_paths = cfg.policies.clone();
            let watch = cfg.watch_policies;
            let policy = load_policy(&policy_paths)?;
            tracing::info!(policies = %policy.source_names(), hash = %policy.hash, "policy loaded");
            let stateful: Vec<String> = policy
                .tables
                .iter()
                .filter(|t| blastwall::contract::applies(t))
                .map(|t| format!("{}.{}", t.schema, t.name))
                .collect();
            if !stateful.is_empty() {
                // blastwall holds no credentials of its own: the state is checked on the first
                // counted write per database, on the client's session, and reported then.
                tracing::info!(
                    tables = %stateful.join(", "),
                    schema = %policy.state.schema,
                    "these tables' anomaly/budget rules need blastwall's state schema in their database; \
                     writes to them are refused there until it is usable"
                );
            }
            let loops = event_loops(cfg.threads)?;
            let handles = loops.as_ref().map(|l| l.handles()).unwrap_or_default();
            // Accepting, signals and the admin endpoint: one thread; sessions: the event loops
            // (or this same thread when `threads = 1`).
            // On a thread with the parser's deep stack: with `threads = 1` sessions run there
            // and parse in place, without a hand-off to a parsing thread (`analyze::deep`).
            on_deep_thread(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(async move {
                    let guard = Guard::new(policy, cfg.mode);
                    let server = Server::bind(cfg, guard).await?.on_event_loops(handles);
                    tracing::info!(listen = %server.local_addr(), "blastwall listening");
                    let handle = shutdown_handle();
                    spawn_signals(handle.clone(), server.shared().clone(), policy_paths, watch)?;
                    // Ready: listening, and SIGTERM is handled.
                    sd_notify(&format!("READY=1\nSTATUS=listening on {}", server.local_addr()));
                    server.run(handle).await;
                    Ok::<_, anyhow::Error>(())
                })
            })??;
            if let Some(l) = loops {
                l.stop();
            }
            Ok(0)
        }
        Command::Config { action: ConfigAction::Check { file } } => Ok(blastwall::preflight::config_check(&file)),
        Command::Health { admin, config, timeout } => {
            let admin = match (admin, config) {
                (Some(a), _) => a,
                (None, Some(c)) => Config::load(&c)?.admin.context("the config sets no admin address")?,
                (None, None) => anyhow::bail!("give --admin HOST:PORT or --config FILE"),
            };
            Ok(blastwall::preflight::health(&admin, std::time::Duration::from_secs(timeout)))
        }
        Command::InitState { policies, grant } => {
            print!("{}", blastwall::contract::state::init_script(&load_policy(&policies)?.state.schema, &grant));
            Ok(0)
        }
        Command::Demo { listen } => {
            // Its sessions parse in place on workers with the parser's deep stack, as `serve`'s
            // event loops do (`analyze::deep`), not handed off to a parsing thread each time.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(blastwall::analyze::deep::STACK)
                .on_thread_start(blastwall::analyze::deep::mark_deep_stack)
                .build()?;
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let handle = shutdown_handle();
                let h = handle.clone();
                // Ctrl-C, `kill` and a closed terminal all stop the demo and remove its server
                // (`kill -9` is covered by the demo's watchdog).
                let mut signals = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()]
                    .into_iter()
                    .map(signal)
                    .collect::<std::io::Result<Vec<_>>>()?;
                tokio::spawn(async move {
                    let any = futures_util::future::select_all(signals.iter_mut().map(|s| Box::pin(s.recv())));
                    any.await;
                    h.shutdown();
                });
                blastwall::demo::run(&listen, handle).await.map_err(anyhow::Error::from)
            })?;
            Ok(0)
        }
    }
}

/// Runs `f` on a thread of its own with the parser's deep stack, marked so that parses there
/// run in place (`analyze::deep`), and waits for it.
fn on_deep_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let thread = std::thread::Builder::new().name("blastwall-main".into()).stack_size(blastwall::analyze::deep::STACK);
    let thread = thread.spawn(move || {
        blastwall::analyze::deep::mark_deep_stack();
        f()
    })?;
    thread.join().map_err(|_| anyhow::anyhow!("blastwall's main thread panicked"))
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
/// The policy files are also watched unless `watch` is off: a change is reloaded within two
/// seconds.
fn spawn_signals(
    handle: ShutdownHandle,
    shared: Arc<blastwall::server::Shared>,
    paths: Vec<PathBuf>,
    watch: bool,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = policy::file::fingerprint(&paths);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                // A second signal during the grace period ends the sessions at once.
                _ = term.recv() => { sd_notify("STOPPING=1"); handle.shutdown(); }
                _ = int.recv() => { sd_notify("STOPPING=1"); handle.shutdown(); }
                _ = hup.recv() => {
                    // The audit file, the policy files, the TLS certificate (as the console's RELOAD).
                    let _ = shared.reload_all();
                    seen = policy::file::fingerprint(&paths);
                }
                _ = tick.tick(), if watch && !paths.is_empty() => {
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

/// systemd's readiness protocol (sd_notify(3)) by hand: one datagram to `$NOTIFY_SOCKET` (a
/// path, or `@name` in the abstract namespace). Without the variable, nothing is sent.
fn sd_notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = UnixDatagram::unbound().and_then(|sock| match path.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        }
        None => sock.send_to(state.as_bytes(), &path),
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, socket = ?path, "cannot notify systemd");
    }
}
