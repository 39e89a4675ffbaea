//! Local devnet: an anvil process we own, and (as `dev` grows) sample markets
//! and a trade simulator on top of it.

pub mod anvil;

pub use anvil::{Anvil, AnvilError, AnvilOptions};
