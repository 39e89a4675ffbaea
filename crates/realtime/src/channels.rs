//! The channels a client subscribes to (SPEC §7) and the rooms they map to.
//!
//! A channel name is parsed once, into its canonical room name: ids and
//! addresses lowercase `0x` hex, proposal ids decimal, so `market:0xAB…` and
//! `market:0xab…` are the same room.

use std::fmt;

use alloy_primitives::{Address, B256, U256};

/// Every price tick of every market, throttled per market.
pub const MARKETS: &str = "markets";
/// Every proposal created, voted on, executed or canceled.
pub const PROPOSALS: &str = "proposals";

/// A channel a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `markets`: price ticks of every market, at most N per second per market.
    Markets,
    /// `market:<id>`: one market's prices, trades and candles, unthrottled.
    Market(B256),
    /// `proposals`: every proposal and vote.
    Proposals,
    /// `proposal:<id>`: one proposal's status and votes.
    Proposal(U256),
    /// `user:<address>`: one user's notifications (signed-in owner only).
    User(Address),
}

/// Why a channel name is refused (the ack names it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Not one of the channel forms.
    #[error("unknown channel {0:?}: expected markets, proposals, market:<id>, proposal:<id> or user:<address>")]
    Unknown(String),
    /// The right prefix, but a malformed id or address.
    #[error("{channel:?}: {message}")]
    Malformed {
        /// The channel as sent.
        channel: String,
        /// What is wrong with its argument.
        message: &'static str,
    },
}

impl Channel {
    /// Parses a channel name as a client sends it.
    pub fn parse(name: &str) -> Result<Channel, ChannelError> {
        let malformed = |message| ChannelError::Malformed { channel: truncate(name), message };
        match name.split_once(':') {
            None if name == MARKETS => Ok(Channel::Markets),
            None if name == PROPOSALS => Ok(Channel::Proposals),
            Some(("market", id)) => {
                if !is_hex(id, 64) {
                    return Err(malformed("a market id is 0x followed by 64 hex digits"));
                }
                id.parse().map(Channel::Market).map_err(|_| malformed("a market id is 0x followed by 64 hex digits"))
            }
            Some(("proposal", id)) => {
                if id.is_empty() || id.len() > 78 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed("a proposal id is a decimal number"));
                }
                U256::from_str_radix(id, 10).map(Channel::Proposal).map_err(|_| malformed("a proposal id is a uint256"))
            }
            Some(("user", address)) => {
                if !is_hex(address, 40) {
                    return Err(malformed("an address is 0x followed by 40 hex digits"));
                }
                address.parse().map(Channel::User).map_err(|_| malformed("an address is 0x followed by 40 hex digits"))
            }
            _ => Err(ChannelError::Unknown(truncate(name))),
        }
    }

    /// The room this channel's events are sent to.
    pub fn room(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Markets => f.write_str(MARKETS),
            Channel::Market(id) => write!(f, "market:{id:#x}"),
            Channel::Proposals => f.write_str(PROPOSALS),
            Channel::Proposal(id) => write!(f, "proposal:{id}"),
            Channel::User(address) => write!(f, "user:{address:#x}"),
        }
    }
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits + 2
        && (text.starts_with("0x") || text.starts_with("0X"))
        && text.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// Names echoed in errors are cut short: a client cannot make the ack huge.
fn truncate(name: &str) -> String {
    name.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_to_canonical_rooms() {
        let id = "0xABCDEF0000000000000000000000000000000000000000000000000000000001";
        assert_eq!(Channel::parse("markets").unwrap().room(), "markets");
        assert_eq!(Channel::parse("proposals").unwrap().room(), "proposals");
        assert_eq!(Channel::parse(&format!("market:{id}")).unwrap().room(), format!("market:{}", id.to_lowercase()));
        assert_eq!(Channel::parse("proposal:42").unwrap().room(), "proposal:42");
        assert_eq!(
            Channel::parse("user:0x00000000000000000000000000000000000000AA").unwrap().room(),
            "user:0x00000000000000000000000000000000000000aa"
        );
    }

    #[test]
    fn bad_channels_are_named_in_the_error() {
        for bad in [
            "",
            "market",
            "market:",
            "market:0x12",
            "market:xyz",
            "proposal:-1",
            "proposal:0x1",
            "user:0x1",
            "users:0x",
            "prices",
        ] {
            let error = Channel::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
        let too_big = format!("proposal:{}", "9".repeat(78));
        assert!(Channel::parse(&too_big).is_err(), "above uint256");
        let long = "x".repeat(10_000);
        assert!(Channel::parse(&long).unwrap_err().to_string().len() < 300, "echo is truncated");
    }
}
