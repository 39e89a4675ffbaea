//! The reference AMM's exact quote math (`contracts/src/MarketAMM.sol`): every
//! division rounds down, products are full-width (`Math.mulDiv`).
//!
//! buy:  fee = usdcIn × feeBps / 10000; net = usdcIn − fee;
//!       tokensOut = tokenReserves × net / (usdcReserves + net)
//! sell: gross = usdcReserves × tokensIn / (tokenReserves + tokensIn);
//!       fee = gross × feeBps / 10000; usdcOut = gross − fee

use alloy_primitives::{U256, U512};

/// Basis-point denominator.
const BPS: u64 = 10_000;

/// What a trade would do to a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// What the trader receives (tokens on a buy, USDC on a sell).
    pub amount_out: U256,
    /// The fee (USDC).
    pub fee: U256,
    /// The pool's token reserves after the trade.
    pub token_reserves_after: U256,
    /// The pool's USDC reserves after the trade.
    pub usdc_reserves_after: U256,
    /// The pool's USDC delta, fee excluded (net in on a buy, gross out on a sell).
    pub usdc_pool_delta: U256,
}

/// Why the contract would revert the trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// `amount` is zero.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// The trade would give the trader nothing.
    #[error("the trade is too small: it would give nothing")]
    ZeroOutput,
    /// The trade would take all of the pool's tokens.
    #[error("the trade would drain the pool's token reserves")]
    InsufficientLiquidity,
    /// A reserve would overflow uint256.
    #[error("the trade is too large")]
    Overflow,
}

fn mul_div(a: U256, b: U256, d: U256) -> Option<U256> {
    if d.is_zero() {
        return None;
    }
    let q = U512::from(a) * U512::from(b) / U512::from(d);
    crate::amount::narrow(q)
}

/// A buy of `usdc_in` (fee included), as `MarketAMM.buy` would execute it.
pub fn quote_buy(token_reserves: U256, usdc_reserves: U256, fee_bps: u32, usdc_in: U256) -> Result<Quote, QuoteError> {
    if usdc_in.is_zero() {
        return Err(QuoteError::ZeroAmount);
    }
    let fee = mul_div(usdc_in, U256::from(fee_bps), U256::from(BPS)).ok_or(QuoteError::Overflow)?;
    let net = usdc_in - fee;
    let usdc_after = usdc_reserves.checked_add(net).ok_or(QuoteError::Overflow)?;
    let tokens_out = mul_div(token_reserves, net, usdc_after).ok_or(QuoteError::Overflow)?;
    if tokens_out.is_zero() {
        return Err(QuoteError::ZeroOutput);
    }
    if tokens_out >= token_reserves {
        return Err(QuoteError::InsufficientLiquidity);
    }
    Ok(Quote {
        amount_out: tokens_out,
        fee,
        token_reserves_after: token_reserves - tokens_out,
        usdc_reserves_after: usdc_after,
        usdc_pool_delta: net,
    })
}

/// A sell of `tokens_in`, as `MarketAMM.sell` would execute it.
pub fn quote_sell(
    token_reserves: U256,
    usdc_reserves: U256,
    fee_bps: u32,
    tokens_in: U256,
) -> Result<Quote, QuoteError> {
    if tokens_in.is_zero() {
        return Err(QuoteError::ZeroAmount);
    }
    let tokens_after = token_reserves.checked_add(tokens_in).ok_or(QuoteError::Overflow)?;
    let gross = mul_div(usdc_reserves, tokens_in, tokens_after).ok_or(QuoteError::Overflow)?;
    let fee = mul_div(gross, U256::from(fee_bps), U256::from(BPS)).ok_or(QuoteError::Overflow)?;
    let usdc_out = gross - fee;
    if usdc_out.is_zero() {
        return Err(QuoteError::ZeroOutput);
    }
    Ok(Quote {
        amount_out: usdc_out,
        fee,
        token_reserves_after: tokens_after,
        usdc_reserves_after: usdc_reserves - gross,
        usdc_pool_delta: gross,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buy_and_sell_follow_the_contract_formulas() {
        let (t, u) = (U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18)), U256::from(10_000_000_000u64));
        let q = quote_buy(t, u, 30, U256::from(100_000_000u64)).unwrap();
        assert_eq!(q.fee, U256::from(300_000u64));
        let net = U256::from(99_700_000u64);
        assert_eq!(q.amount_out, t * net / (u + net));
        assert_eq!(q.usdc_reserves_after, u + net);
        let s = quote_sell(t, u, 30, q.amount_out).unwrap();
        let gross = u * q.amount_out / (t + q.amount_out);
        assert_eq!(s.usdc_pool_delta, gross);
        assert_eq!(s.fee, gross * U256::from(30u64) / U256::from(10_000u64));
        assert_eq!(s.amount_out, gross - s.fee);
    }

    #[test]
    fn reverts_are_reported() {
        let (t, u) = (U256::from(1_000u64), U256::from(1_000u64));
        assert_eq!(quote_buy(t, u, 30, U256::ZERO), Err(QuoteError::ZeroAmount));
        assert_eq!(quote_buy(t, u, 30, U256::from(1u64)), Err(QuoteError::ZeroOutput));
        assert_eq!(quote_sell(t, u, 30, U256::from(1u64)), Err(QuoteError::ZeroOutput));
        assert_eq!(quote_buy(U256::from(1u64), u, 0, u), Err(QuoteError::ZeroOutput));
        assert_eq!(quote_buy(t, U256::MAX, 0, U256::from(5u64)), Err(QuoteError::Overflow));
        assert!(quote_sell(t, u, 30, U256::MAX).is_err());
    }
}
