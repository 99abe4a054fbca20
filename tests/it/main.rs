//! blastwall's integration tests: one binary, against a real PostgreSQL that the harness
//! starts itself, with real clients (tokio-postgres, psql).
//!
//! Modules:
//! - `harness`: the throwaway server, fresh databases, the in-process proxy, client helpers.
//! - `relay`:   protocol fidelity — simple/extended/pipelined queries, COPY, notifications,
//!   cancel, errors, auth methods, TLS on both sides, faults, limits, shutdown.
//! - `guard`:   the incident's statements refused through the proxy, data unchanged,
//!   sessions usable, allowed statements identical to direct.
//! - `batches`: counted writes anywhere in extended-protocol batches, compared with direct.
//! - `drivers`: asyncpg, psycopg, pgjdbc and node-postgres, directly and through blastwall
//!   (installed by scripts/install-test-clients).
//! - `precheck`: row limits measured on the live session — cascades counted, limits at the
//!   boundary, views and search_path resolved by the server, transactions, dry-run.
//! - `ops`:     the audit trail, /metrics, /healthz, /readyz, policy reload (SIGHUP, file
//!   watch, invalid policies), run as the real binary where signals matter.
//! - `readme`:  README.md's examples (configuration, policy, psql transcripts, check output).
//! - `corpus`:  the table-driven corpus of statements → verdicts (no server needed).
//! - `cli`:     `blastwall check` and the README's commands.
//! - `contract`: the anomaly, budget and explicit-id rules through the pre-check's interface.
//! - `contract_proxy`: the same rules through blastwall (two instances, restarts, modes).

mod batches;
mod cli;
mod contract;
mod contract_proxy;
mod corpus;
mod drivers;
mod guard;
mod harness;
mod ops;
mod precheck;
mod readme;
mod relay;
