//! User reads: `/api/users/{address}/portfolio` (holdings × price, average cost
//! basis, realized and unrealized PnL per SPEC §5).

use alloy_primitives::{Address, I256, U256};
use animoca_domain::{MarketType, Price, amount::format_signed_units, format_units};
use axum::{
    Json,
    extract::{Path, State},
};
use serde_json::{Value, json};
use sqlx::Row;

use crate::{AppState, error::ApiError, format};

/// A 20-byte address: `0x` and 40 hex digits.
pub fn address(field: &str, text: &str) -> Result<Address, ApiError> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    match hex {
        Some(hex) if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            text.parse().map_err(|_| ApiError::bad(field, "not a 0x-prefixed 20-byte address"))
        }
        _ => Err(ApiError::bad(field, format!("{text:?} is not a 0x-prefixed 20-byte address"))),
    }
}

/// `GET /api/users/{address}/portfolio`: the markets the address holds (a
/// balance above 0) with value at the spot price, cost basis and PnL; totals
/// over every market it ever held (realized PnL of closed positions included).
pub async fn portfolio(State(state): State<AppState>, Path(who): Path<String>) -> Result<Json<Value>, ApiError> {
    let who = address("address", &who)?;
    let rows = sqlx::query(
        "SELECT b.market_type, b.market_id, m.token_symbol, b.balance::text, b.cost_basis::text,
                b.realized_pnl::text, coalesce(p.price, 0)::text
           FROM derived.balances b
           JOIN derived.markets m USING (market_type, market_id)
           LEFT JOIN derived.pools p USING (market_type, market_id)
          WHERE b.holder = $1
          ORDER BY b.market_type, b.market_id",
    )
    .bind(who.as_slice())
    .fetch_all(&state.pool)
    .await?;
    let (mut total_value, mut total_basis) = (U256::ZERO, U256::ZERO);
    let (mut total_realized, mut total_unrealized) = (I256::ZERO, I256::ZERO);
    let mut holdings = Vec::new();
    for row in &rows {
        let number = |i: usize| -> Result<String, ApiError> { Ok(row.try_get::<String, _>(i)?) };
        let corrupt = |what: &str| ApiError::Internal(format!("stored {what} is not a number"));
        let balance: U256 = number(3)?.parse().map_err(|_| corrupt("balance"))?;
        let basis: U256 = number(4)?.parse().map_err(|_| corrupt("cost_basis"))?;
        let realized: I256 = number(5)?.parse().map_err(|_| corrupt("realized_pnl"))?;
        let price = Price::from_decimal_str(&number(6)?).ok_or_else(|| corrupt("price"))?;
        let value = price.value_of(balance);
        let value = if value.bit_len() <= 256 { U256::from_limbs_slice(&value.as_limbs()[..4]) } else { U256::MAX };
        let unrealized = signed(value).saturating_sub(signed(basis));
        total_value = total_value.saturating_add(value);
        total_basis = total_basis.saturating_add(basis);
        total_realized = total_realized.saturating_add(realized);
        total_unrealized = total_unrealized.saturating_add(unrealized);
        if balance.is_zero() {
            continue;
        }
        let market_type = if row.try_get::<i16, _>(0)? == 1 { MarketType::Persona } else { MarketType::Credential };
        holdings.push(json!({
            "market_id": format::hex(&row.try_get::<Vec<u8>, _>(1)?),
            "market_type": market_type.as_str(),
            "token_symbol": row.try_get::<String, _>(2)?,
            "balance": format_units(balance, 18),
            "price": price.to_decimal_string(),
            "value": format_units(value, 6),
            "cost_basis": format_units(basis, 6),
            "realized_pnl": money(realized),
            "unrealized_pnl": money(unrealized),
        }));
    }
    Ok(Json(json!({
        "success": true,
        "data": {
            "address": format!("{who:#x}"),
            "holdings": holdings,
            "total_value": format_units(total_value, 6),
            "total_cost_basis": format_units(total_basis, 6),
            "total_realized_pnl": money(total_realized),
            "total_unrealized_pnl": money(total_unrealized),
        },
    })))
}

fn signed(value: U256) -> I256 {
    I256::try_from(value).unwrap_or(I256::MAX)
}

/// A signed USDC amount (base units) in USDC.
fn money(value: I256) -> String {
    format_signed_units(value.is_negative(), value.unsigned_abs(), 6)
}
