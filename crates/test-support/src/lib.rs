//! Test harness shared by every crate's integration tests: real Postgres (a
//! fresh database per test), real anvil (its own process per test) with the
//! reference contracts deployed, and drivers for trades, stakes and votes.
//!
//! Test code: panics on setup failure are the right way to fail a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod chain;
pub mod db;
pub mod faulty_rpc;
pub mod process;
pub mod socketio;

pub use chain::{MarketSpec, TestChain, tokens, usdc};
pub use db::TestDb;
pub use faulty_rpc::FaultyRpc;
pub use process::ChildGuard;
