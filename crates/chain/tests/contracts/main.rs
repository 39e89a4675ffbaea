//! Contract test suite: the reference contracts of `contracts/src/` on a real anvil
//! (one per test), checked against docs/contracts.md and SPEC §4/§5 with values the
//! tests compute themselves. One module per contract area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod amm;
mod governance;
mod market_creation;
mod stake;
mod token;
