//! The chain indexer: fetch logs of every market contract, decode them into
//! domain events, derive state (pools, balances, cost basis, candles, stakes,
//! proposals) and write it in one database transaction per block range.

pub mod candles;
pub mod changes;
pub mod decode;
pub mod derive;
pub mod events;
pub mod fetch;
pub mod heads;
pub mod leader;
pub mod progress;
pub mod rederive;
pub mod reorg;
pub mod sync;

pub use decode::{DecodeError, Sources};
pub use events::{ChainEvent, LogMeta};
pub use heads::Heads;
pub use leader::Leader;
pub use sync::{IndexError, Indexer, IndexerConfig};
