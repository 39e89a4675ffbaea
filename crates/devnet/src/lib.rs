//! Local devnet: an anvil process we own, and (as `dev` grows) sample markets
//! and a trade simulator on top of it.

pub mod anvil;
pub mod driver;
pub mod ethos;
pub mod postgres;
pub mod sample;
pub mod simulator;

pub use anvil::{Anvil, AnvilError, AnvilOptions};
pub use driver::{Driver, MarketSpec, tokens, usdc};
