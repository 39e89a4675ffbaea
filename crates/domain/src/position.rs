//! Average cost basis and realized PnL of one address in one market (SPEC §5).
//!
//! Events are applied in (block, log index) order. A swap's own token transfer
//! to or from the AMM is not applied again: the swap already moved the tokens.

use alloy_primitives::{I256, U256, U512};

/// Tokens held, what they cost (USDC base units) and the PnL realized so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Token base units held.
    pub balance: U256,
    /// USDC base units paid for the tokens still held.
    pub cost_basis: U256,
    /// USDC base units gained (or lost, negative) on tokens sold.
    pub realized_pnl: I256,
}

impl Position {
    /// A buy of `tokens` for which the trader paid `paid` (`usdcAmount + fee`).
    pub fn buy(&mut self, tokens: U256, paid: U256) {
        self.balance = self.balance.saturating_add(tokens);
        self.cost_basis = self.cost_basis.saturating_add(paid);
    }

    /// A sell of `tokens` for which the trader received `received` (`-usdcAmount - fee`).
    pub fn sell(&mut self, tokens: U256, received: U256) {
        let released = self.release(tokens);
        self.realized_pnl = self.realized_pnl.saturating_add(signed(received)).saturating_sub(signed(released));
    }

    /// Tokens that arrive from another wallet (not from an AMM): zero cost.
    pub fn receive(&mut self, tokens: U256) {
        self.balance = self.balance.saturating_add(tokens);
    }

    /// Tokens sent to another wallet (not to an AMM): their share of the basis leaves,
    /// nothing is realized.
    pub fn send(&mut self, tokens: U256) {
        self.release(tokens);
    }

    /// `value - cost_basis`, for a position worth `value` USDC base units.
    pub fn unrealized_pnl(&self, value: U256) -> I256 {
        signed(value).saturating_sub(signed(self.cost_basis))
    }

    /// Removes `tokens` and `basis × tokens / balance` of the basis; returns the basis removed.
    fn release(&mut self, tokens: U256) -> U256 {
        let removed = if tokens >= self.balance {
            self.cost_basis
        } else {
            let share = U512::from(self.cost_basis) * U512::from(tokens) / U512::from(self.balance);
            // share < cost_basis because tokens < balance, so it fits.
            crate::amount::narrow(share).unwrap_or(self.cost_basis)
        };
        self.balance = self.balance.saturating_sub(tokens);
        self.cost_basis -= removed;
        removed
    }
}

fn signed(value: U256) -> I256 {
    I256::try_from(value).unwrap_or(I256::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{conventions, u256};

    #[test]
    fn follows_the_cost_basis_vector() {
        let vectors = conventions();
        let case = &vectors["cost_basis"];
        let me = case["trader"].as_str().unwrap().to_lowercase();
        let mut position = Position::default();
        for event in case["events"].as_array().unwrap() {
            match event["event"].as_str().unwrap() {
                "Swap" => {
                    let usdc = event["usdcAmount"].as_str().unwrap();
                    let tokens = event["tokenAmount"].as_str().unwrap();
                    let fee = u256(event["fee"].as_str().unwrap());
                    if let Some(usdc_out) = usdc.strip_prefix('-') {
                        position.sell(u256(tokens), u256(usdc_out) - fee);
                    } else {
                        position.buy(u256(tokens.trim_start_matches('-')), u256(usdc) + fee);
                    }
                }
                "Transfer" => {
                    let from = event["from"].as_str().unwrap().to_lowercase();
                    let to = event["to"].as_str().unwrap().to_lowercase();
                    let value = u256(event["value"].as_str().unwrap());
                    if from != to {
                        if to == me {
                            position.receive(value);
                        } else if from == me {
                            position.send(value);
                        }
                    }
                }
                other => panic!("unexpected event {other}"),
            }
            let after = &event["after"];
            assert_eq!(position.balance, u256(after["position"].as_str().unwrap()), "{event}");
            assert_eq!(position.cost_basis, u256(after["cost_basis"].as_str().unwrap()), "{event}");
            assert_eq!(position.realized_pnl.to_string(), after["realized_pnl"].as_str().unwrap(), "{event}");
        }
    }

    #[test]
    fn unrealized_pnl_matches_the_vector() {
        let vectors = conventions();
        let case = &vectors["position_value"][0];
        let position = Position {
            balance: u256(case["balance"].as_str().unwrap()),
            cost_basis: u256(case["cost_basis"].as_str().unwrap()),
            realized_pnl: I256::ZERO,
        };
        let pnl = position.unrealized_pnl(u256(case["value"].as_str().unwrap()));
        assert_eq!(pnl.to_string(), case["unrealized_pnl"].as_str().unwrap());
    }

    #[test]
    fn selling_at_a_loss_realizes_a_negative_pnl() {
        let mut position = Position::default();
        position.buy(U256::from(10u64), U256::from(100u64));
        position.sell(U256::from(5u64), U256::from(20u64));
        assert_eq!(position.realized_pnl, I256::try_from(-30i64).unwrap());
        assert_eq!(position.cost_basis, U256::from(50u64));
    }
}
