//! One module per subcommand; each takes its validated configuration and the
//! shutdown token.

pub mod all;
pub mod deploy;
pub mod dev;
pub mod index;
pub mod migrate;
pub mod rederive;
pub mod serve;
pub mod work;
