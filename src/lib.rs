//! blastwall: a PostgreSQL wire-protocol proxy that refuses destructive statements before they
//! reach the server. The path of one statement: `wire` (framing) → `analyze` (pg_query) →
//! `policy` (decision) → `relay` (forward or deny), in that order, called from `session` only.

pub mod admin;
pub mod analyze;
pub mod audit;
pub mod backend;
pub mod catalog;
pub mod check;
pub mod config;
pub mod console;
pub mod contract;
pub mod demo;
pub mod guard;
pub mod listen;
pub mod metrics;
pub mod pgtemp;
pub mod policy;
pub mod precheck;
pub mod preflight;
pub mod relay;
pub mod server;
pub mod session;
pub mod tls;
pub mod wire;
