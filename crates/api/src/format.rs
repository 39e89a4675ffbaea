//! JSON renderings of stored values (SPEC §6): exact decimal strings in token
//! units (USDC with 6 decimals, market tokens and prices with 18), `0x` hex,
//! ISO-8601 UTC times.

use alloy_primitives::{I256, U256};
use animoca_domain::{MarketType, Price, TOKEN_DECIMALS, USDC_DECIMALS, amount::format_signed_units, format_units};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::ApiError;

/// A `NUMERIC(78,0)` USDC amount (base units, as text) in USDC.
pub fn usdc(base_units: &str) -> Result<String, ApiError> {
    units(base_units, USDC_DECIMALS)
}

/// A `NUMERIC(78,0)` market-token amount (base units, as text) in tokens.
pub fn tokens(base_units: &str) -> Result<String, ApiError> {
    units(base_units, TOKEN_DECIMALS)
}

fn units(base_units: &str, decimals: u8) -> Result<String, ApiError> {
    let value: U256 =
        base_units.parse().map_err(|_| ApiError::Internal(format!("stored amount {base_units:?} is not a uint256")))?;
    Ok(format_units(value, decimals))
}

/// A signed USDC amount in base units (realized or unrealized PnL) in USDC.
pub fn signed_usdc(value: I256) -> String {
    format_signed_units(value.is_negative(), value.unsigned_abs(), USDC_DECIMALS)
}

/// A stored `market_type` column (0 credential, 1 persona); anything else is corrupt.
pub fn market_type(stored: i16) -> Result<MarketType, ApiError> {
    u8::try_from(stored)
        .ok()
        .and_then(|t| MarketType::try_from(t).ok())
        .ok_or_else(|| ApiError::Internal(format!("stored market_type {stored}")))
}

/// A stored price (decimal text with up to 18 places) with exactly 18 places.
pub fn price(text: &str) -> Result<String, ApiError> {
    Price::from_decimal_str(text)
        .map(Price::to_decimal_string)
        .ok_or_else(|| ApiError::Internal(format!("stored price {text:?} is not a price")))
}

/// `0x`-hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// ISO-8601 UTC with a `Z`, to the second.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// ISO-8601 of Unix seconds.
pub fn unix_time(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0).map(time).unwrap_or_default()
}

/// Parses a decimal amount in token units (`"12.5"`) into base units with
/// `decimals` places; 400 naming `field` for anything else (signs, exponents,
/// more places than the token has, more than uint256).
pub fn parse_units(field: &str, text: &str, decimals: u8) -> Result<U256, ApiError> {
    let bad = |why: &str| ApiError::bad(field, format!("{text:?} {why}"));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad("is not a decimal amount"));
    }
    if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a decimal amount (digits and one '.')"));
    }
    if fraction.len() > usize::from(decimals) {
        return Err(bad(&format!("has more than {decimals} decimal places")));
    }
    let digits = format!("{whole}{fraction:0<width$}", width = usize::from(decimals));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    digits.parse().map_err(|_| bad("is too large"))
}
