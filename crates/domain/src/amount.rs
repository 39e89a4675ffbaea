//! Exact formatting of on-chain base units as decimal strings.

use alloy_primitives::{U256, U512, ruint::UintTryFrom};

/// Decimals of USDC (and so of every USDC figure the API serves).
pub const USDC_DECIMALS: u8 = 6;
/// Decimals of every `MarketToken`, and the scale of prices.
pub const TOKEN_DECIMALS: u8 = 18;

/// `value` as a uint256, if it fits (results of full-width `a × b / c` math).
pub fn narrow(value: U512) -> Option<U256> {
    (value.bit_len() <= 256).then(|| U256::from_limbs_slice(&value.as_limbs()[..4]))
}

/// Formats `value` base units with exactly `decimals` fractional digits
/// (`format_units(1_500_000, 6) == "1.500000"`). Exact for any width up to 512 bits.
pub fn format_units<T>(value: T, decimals: u8) -> String
where
    U512: UintTryFrom<T>,
{
    let digits = U512::from(value).to_string();
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return digits;
    }
    let padded =
        if digits.len() <= decimals { format!("{}{digits}", "0".repeat(decimals + 1 - digits.len())) } else { digits };
    let (whole, fraction) = padded.split_at(padded.len() - decimals);
    format!("{whole}.{fraction}")
}

/// Formats a signed amount (`negative` flag plus magnitude) like [`format_units`].
pub fn format_signed_units<T>(negative: bool, magnitude: T, decimals: u8) -> String
where
    U512: UintTryFrom<T>,
{
    let magnitude = U512::from(magnitude);
    let text = format_units::<U512>(magnitude, decimals);
    if negative && !magnitude.is_zero() { format!("-{text}") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_keeps_every_uint256_and_refuses_wider() {
        assert_eq!(narrow(U512::from(U256::MAX)), Some(U256::MAX));
        assert_eq!(narrow(U512::from(7u64)), Some(U256::from(7u64)));
        assert_eq!(narrow(U512::from(U256::MAX) + U512::from(1u64)), None);
    }
    use alloy_primitives::U256;

    #[test]
    fn pads_and_places_the_point() {
        assert_eq!(format_units(U256::from(1_500_000u64), 6), "1.500000");
        assert_eq!(format_units(U256::from(1u64), 6), "0.000001");
        assert_eq!(format_units(U256::ZERO, 6), "0.000000");
        assert_eq!(format_units(U256::from(123u64), 0), "123");
        assert_eq!(
            format_units(U256::MAX, 18),
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
        );
        assert_eq!(format_signed_units(true, U256::from(5u64), 1), "-0.5");
        assert_eq!(format_signed_units(true, U256::ZERO, 1), "0.0");
    }
}
