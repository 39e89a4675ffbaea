//! Prices in USDC per whole token, exact to 18 decimal places (SPEC §5).
//!
//! USDC has 6 decimals and market tokens 18, so a price in USDC per whole token
//! is `usdc × 10^12 / tokens`. We keep it as an integer scaled by `10^18`
//! (truncated), in 512 bits so that no pair of `uint256` inputs can overflow.

use alloy_primitives::{U256, U512};
use std::fmt;

use crate::amount::{TOKEN_DECIMALS, format_units};

/// `10^18`: the fixed-point scale of a [`Price`].
const PRICE_SCALE_EXP: u64 = 18;
/// `10^12`: the decimals gap between a market token (18) and USDC (6).
const DECIMALS_GAP_EXP: u64 = 12;

/// A price in USDC per whole token, stored as `price × 10^18` truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(U512);

fn pow10(exp: u64) -> U512 {
    // Every exponent used here is at most 38: a u128 power, no 512-bit exponentiation.
    match u32::try_from(exp).ok().and_then(|e| 10u128.checked_pow(e)) {
        Some(power) => U512::from(power),
        None => U512::from(10u64).pow(U512::from(exp)),
    }
}

impl Price {
    /// The zero price (no trade, or an empty pool).
    pub const ZERO: Price = Price(U512::ZERO);

    /// Wraps an already scaled value (`price × 10^18`).
    pub const fn from_scaled(scaled: U512) -> Self {
        Price(scaled)
    }

    /// The scaled integer `price × 10^18`.
    pub const fn scaled(self) -> U512 {
        self.0
    }

    /// `usdc × 10^12 / tokens` truncated to 18 decimals, or `None` when `tokens` is zero.
    pub fn ratio(usdc: U256, tokens: U256) -> Option<Price> {
        if tokens.is_zero() {
            return None;
        }
        // 256-bit division when the scaled numerator fits (any realistic amount), else 512.
        let scale = 10u128.pow(u32::try_from(DECIMALS_GAP_EXP + PRICE_SCALE_EXP).unwrap_or(38));
        if let Some(numerator) = usdc.checked_mul(U256::from(scale)) {
            return Some(Price(U512::from(numerator / tokens)));
        }
        let numerator = U512::from(usdc) * pow10(DECIMALS_GAP_EXP + PRICE_SCALE_EXP);
        Some(Price(numerator / U512::from(tokens)))
    }

    /// Trade price of a swap from the pool's signed deltas (their magnitudes).
    /// `None` for a swap that moved no tokens.
    pub fn of_trade(usdc_amount_abs: U256, token_amount_abs: U256) -> Option<Price> {
        Price::ratio(usdc_amount_abs, token_amount_abs)
    }

    /// Spot price of a pool; zero for a pool without token reserves.
    pub fn spot(usdc_reserves: U256, token_reserves: U256) -> Price {
        Price::ratio(usdc_reserves, token_reserves).unwrap_or(Price::ZERO)
    }

    /// USDC base units that `tokens` base units are worth at this price, truncated
    /// (position value, market cap).
    pub fn value_of(self, tokens: U256) -> U512 {
        // price×10^18 × tokens×10^18 → USDC×10^36; USDC base units are ×10^6.
        (self.0 * U512::from(tokens)) / pow10(PRICE_SCALE_EXP + u64::from(TOKEN_DECIMALS) - 6)
    }

    /// Parses decimal text with at most 18 fractional digits (as stored), e.g.
    /// `"0.0997"` or `"12"`; `None` for anything else.
    pub fn from_decimal_str(text: &str) -> Option<Price> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || fraction.len() > 18
            || !(whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let digits = format!("{whole}{fraction:0<18}");
        digits.parse::<U512>().ok().map(Price)
    }

    /// Exact decimal text with 18 fractional digits.
    pub fn to_decimal_string(self) -> String {
        format_units(self.0, TOKEN_DECIMALS)
    }

    /// The price as a ratio `self / reference - 1` in percent, for `price_change_24h`
    /// (a JSON number per SPEC §5); 0 when the reference is 0.
    #[allow(clippy::cast_precision_loss)]
    pub fn change_percent_from(self, reference: Price) -> f64 {
        if reference.0.is_zero() {
            return 0.0;
        }
        // Exact difference first, so a tiny change keeps its relative precision.
        if self.0 >= reference.0 {
            ratio_percent(self.0 - reference.0, reference.0)
        } else {
            -ratio_percent(reference.0 - self.0, reference.0)
        }
    }
}

/// `numerator / denominator × 100` as an `f64` within a relative 1e-15 of the exact
/// ratio, however small or large. Used only for display percentages, never for money.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
pub fn ratio_percent(numerator: U512, denominator: U512) -> f64 {
    if denominator.is_zero() || numerator.is_zero() {
        return 0.0;
    }
    let scaled = numerator * U512::from(100u64);
    // Scale so the integer quotient carries at least 20 significant digits.
    let digits = |v: U512| v.to_string().len();
    let shift = (digits(denominator) + 20).saturating_sub(digits(scaled));
    let quotient = scaled * pow10(shift as u64) / denominator;
    u512_to_f64(quotient) / 10f64.powi(shift as i32)
}

#[allow(clippy::cast_precision_loss)]
fn u512_to_f64(value: U512) -> f64 {
    value.as_limbs().iter().rev().fold(0.0, |acc, limb| acc * 18_446_744_073_709_551_616.0 + *limb as f64)
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{conventions, decimal_eq, u256};

    #[test]
    fn trade_prices_match_the_vectors() {
        let vectors = conventions();
        for case in vectors["trade_price"].as_array().unwrap() {
            let usdc = case["usdcAmount"].as_str().unwrap().trim_start_matches('-');
            let tokens = case["tokenAmount"].as_str().unwrap().trim_start_matches('-');
            let price = Price::of_trade(u256(usdc), u256(tokens)).unwrap();
            assert!(decimal_eq(&price.to_decimal_string(), case["price"].as_str().unwrap()), "{case}: got {price}");
        }
    }

    #[test]
    fn spot_prices_match_the_vectors() {
        for case in conventions()["spot_price"].as_array().unwrap() {
            let price = Price::spot(
                u256(case["usdcReserves"].as_str().unwrap()),
                u256(case["tokenReserves"].as_str().unwrap()),
            );
            assert!(
                decimal_eq(&price.to_decimal_string(), case["spot_price"].as_str().unwrap()),
                "{case}: got {price}"
            );
        }
    }

    #[test]
    fn values_and_market_caps_match_the_vectors() {
        for case in conventions()["position_value"].as_array().unwrap() {
            let price = Price::spot(
                u256(case["usdcReserves"].as_str().unwrap()),
                u256(case["tokenReserves"].as_str().unwrap()),
            );
            assert_eq!(
                price.value_of(u256(case["balance"].as_str().unwrap())).to_string(),
                case["value"].as_str().unwrap()
            );
            assert_eq!(
                price.value_of(u256(case["total_supply"].as_str().unwrap())).to_string(),
                case["market_cap"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn decimal_text_round_trips() {
        for case in conventions()["trade_price"].as_array().unwrap() {
            let text = case["price"].as_str().unwrap();
            let price = Price::from_decimal_str(text).unwrap();
            assert!(decimal_eq(&price.to_decimal_string(), text));
            assert_eq!(Price::from_decimal_str(&price.to_decimal_string()), Some(price));
        }
        for bad in ["", ".5", "1.2.3", "-1", "1e5", "0.0000000000000000001", "abc"] {
            assert_eq!(Price::from_decimal_str(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn zero_token_side_has_no_trade_price_and_zero_spot() {
        assert_eq!(Price::of_trade(U256::from(1u64), U256::ZERO), None);
        assert_eq!(Price::spot(U256::from(1u64), U256::ZERO), Price::ZERO);
    }

    #[test]
    fn percent_change_is_exact_enough() {
        let now = Price::from_scaled(U512::from(3u64));
        let before = Price::from_scaled(U512::from(2u64));
        assert!((now.change_percent_from(before) - 50.0).abs() < 1e-9);
        assert!((before.change_percent_from(now) + 33.333_333_333_333_336).abs() < 1e-9);
        assert_eq!(now.change_percent_from(Price::ZERO), 0.0);
        // A change of one unit in 10^30 keeps its precision (no 100 - 100 cancellation).
        let big = U512::from(10u64).pow(U512::from(30u64));
        let tiny = Price::from_scaled(big + U512::from(1u64)).change_percent_from(Price::from_scaled(big));
        assert!((tiny - 1e-28).abs() <= 1e-28 * 1e-9, "{tiny}");
        let down = Price::from_scaled(big - U512::from(1u64)).change_percent_from(Price::from_scaled(big));
        assert!((down + 1e-28).abs() <= 1e-28 * 1e-9, "{down}");
        let minute = ratio_percent(U512::from(1u64), U512::from(10u64).pow(U512::from(60u64)));
        assert!((minute - 1e-58).abs() <= 1e-58 * 1e-12, "{minute}");
        assert!((ratio_percent(U512::from(1u64), U512::from(3u64)) - 33.333_333_333_333_336).abs() < 1e-12);
    }

    proptest::proptest! {
        #[test]
        fn price_is_the_truncated_ratio(usdc in proptest::num::u128::ANY, tokens in 1u128..) {
            let price = Price::of_trade(U256::from(usdc), U256::from(tokens)).unwrap();
            // price × tokens ≤ usdc × 10^30 < (price + 1) × tokens
            let lhs = price.scaled() * U512::from(tokens);
            let exact = U512::from(usdc) * pow10(30);
            proptest::prop_assert!(lhs <= exact);
            proptest::prop_assert!(exact < lhs + U512::from(tokens));
        }

        /// The 256-bit fast path and the 512-bit path agree on any uint256 inputs.
        #[test]
        fn fast_and_wide_division_agree(u in proptest::array::uniform4(proptest::num::u64::ANY),
                                        t in proptest::array::uniform4(proptest::num::u64::ANY), shift in 0usize..256) {
            let usdc = U256::from_limbs(u) >> shift;
            let tokens = U256::from_limbs(t).max(U256::from(1u8));
            let wide = U512::from(usdc) * pow10(30) / U512::from(tokens);
            proptest::prop_assert_eq!(Price::ratio(usdc, tokens).unwrap().scaled(), wide);
        }
    }
}
