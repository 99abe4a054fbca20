//! blastwall: a PostgreSQL wire-protocol proxy that refuses destructive statements before they
//! reach the server. The path of one client message, in `session` only:
//! `wire` (framing) → `guard::Guard::judge` (`analyze` with pg_query, cached → `policy::decide`,
//! pure → a `guard::Verdict`: allow, warn, refuse, count with a `precheck::CheckPlan`, or ask
//! the `catalog` first) → for a count, `precheck` measures on the client's own session and
//! `policy::judge_counts` (pure) judges the measured counts, after which `precheck` keeps or
//! rolls back →
//! `relay` carries out a narrow `relay::Action` (forward, notify, refuse by marker) → `audit`
//! records the decision's facts. Extended-protocol messages go through `session`'s mirror of
//! prepared statements and portals: a write is counted at its Execute, wherever it stands.
//! A Query with transaction control or COPY beside a counted write runs statement by statement
//! as an extended batch (`session`); so does one of several writes (limits per statement). A
//! client's CancelRequest goes through `cancels`, which settles one that lands on blastwall's
//! own statements. Writes judged and not yet answered, and DDL whose transaction is open, are
//! kept per database across sessions (`inflight`): DDL waits for the writes judged before it,
//! and writes judged meanwhile see it; several blastwall instances keep the same rules between
//! them through the server (`instances`). Every message with a SQLSTATE blastwall sends in its own
//! name is built in `said`. Dependencies point one way: server → session, admin → `shared`
//! (the handles every session gets); session → relay, guard → precheck → catalog, policy;
//! audit → policy.

pub mod admin;
pub mod analyze;
pub mod audit;
pub mod backend;
pub mod cancels;
pub mod catalog;
pub mod check;
pub mod config;
pub mod console;
pub mod contract;
pub mod demo;
pub mod guard;
pub mod inflight;
pub mod instances;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod pgtemp;
pub mod policy;
pub mod precheck;
pub mod preflight;
pub mod relay;
pub mod said;
pub mod server;
pub mod session;
pub mod shared;
pub mod tls;
pub mod wire;
