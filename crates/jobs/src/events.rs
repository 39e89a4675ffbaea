//! Notifications from indexed events, produced by the dispatcher each poll
//! interval from the derived tables:
//!
//! | kind | to | when |
//! |---|---|---|
//! | `proposal_created` | the market's issuer/owner | a slashing proposal against their market |
//! | `proposal_outcome` | the market's issuer/owner and the proposer | voting ended (`succeeded` / `defeated` at the newest indexed block's time, SPEC §5), or the proposal was `executed` / `canceled` |
//! | `stake_slashed` | the market's issuer/owner | an executed proposal slashed their stake |
//! | `large_trade` | the 100 largest holders of the market (not the trader, not the AMM) | a trade of at least `large_trade_usdc` |
//!
//! Each has an idempotency key per event and recipient, so scanning again is
//! harmless: every round re-reads the proposals of the last [`RESCAN_BLOCKS`]
//! blocks before its cursor (a reorg may have replaced them). Large trades
//! follow their own position cursor, at most 100 per round (a reorg that
//! replaces a trade already passed is not notified again). Events older than
//! [`MAX_AGE`] are not notified (a backfill of history stays quiet). A
//! notification of an event a reorg later removed stays.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use animoca_domain::{USDC_DECIMALS, format_units};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::notify::{self, Notification};

/// The producer's cursor in `app.job_cursors`.
const CURSOR: &str = "event_notifications";
/// Blocks re-read behind the cursor each round.
pub const RESCAN_BLOCKS: i64 = 64;
/// Events older than this are not notified.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Large trades one round notifies (each to up to [`LARGE_TRADE_AUDIENCE`]
/// holders); the next rounds take the rest.
const MAX_LARGE_TRADES: i64 = 100;
/// The large-trade cursor: block number × 10^6 + log index of the last one notified.
const TRADE_CURSOR: &str = "event_notifications_trades";
/// Largest holders told of a large trade.
const LARGE_TRADE_AUDIENCE: i64 = 100;

fn address(bytes: &[u8]) -> Option<Address> {
    Address::try_from(bytes).ok()
}

fn usdc(amount: &str) -> String {
    U256::from_str_radix(amount, 10).map(|v| format_units(v, USDC_DECIMALS)).unwrap_or_else(|_| amount.to_owned())
}

/// For titles: without trailing zeros ("100", "12.5").
fn shown(amount: &str) -> String {
    let exact = usdc(amount);
    if exact.contains('.') { exact.trim_end_matches('0').trim_end_matches('.').to_owned() } else { exact }
}

fn market_kind(market_type: i16) -> &'static str {
    if market_type == 0 { "credential" } else { "persona" }
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// One round: notifies what happened since the cursor. Returns how many
/// notifications were new.
pub async fn notify_new(pool: &PgPool, large_trade_usdc: U256) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One producer at a time across nodes; the others skip the round.
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('animoca_event_notifications'))")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let cursor: Option<i64> = sqlx::query_scalar("SELECT position FROM app.job_cursors WHERE name = $1")
        .bind(CURSOR)
        .fetch_optional(&mut *tx)
        .await?;
    let checkpoint: Option<(i64, i64)> =
        sqlx::query_as("SELECT chain_id, block_number FROM chain.checkpoints ORDER BY block_number DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let Some((chain_id, head)) = checkpoint else { return Ok(0) };
    let floor = cursor.map_or(-1, |c| c - RESCAN_BLOCKS);
    let max_age = MAX_AGE.as_secs_f64();
    let mut notes = Vec::new();

    // Proposals created, executed, canceled in the scanned blocks.
    let proposals: Vec<ProposalRow> = sqlx::query_as(
        "SELECT p.proposal_id::text AS proposal_id, p.market_type, p.market_id, m.creator_address, p.proposer,
                p.slash_amount::text AS slash_amount, coalesce(p.slashed_amount, 0)::text AS slashed_amount,
                p.executed, p.canceled,
                (p.created_block > $1 AND p.created_at > now() - make_interval(secs => $2)) AS created_now,
                coalesce(p.resolved_block > $1 AND p.resolved_at > now() - make_interval(secs => $2), false) AS resolved_now
           FROM proposals p JOIN markets m USING (market_type, market_id)
          WHERE (p.created_block > $1 AND p.created_at > now() - make_interval(secs => $2))
             OR (p.resolved_block > $1 AND p.resolved_at > now() - make_interval(secs => $2))",
    )
    .bind(floor)
    .bind(max_age)
    .fetch_all(&mut *tx)
    .await?;
    for p in &proposals {
        let (Some(owner), Some(proposer)) = (address(&p.creator_address), address(&p.proposer)) else { continue };
        let market = json!({ "market_type": market_kind(p.market_type), "market_id": hex(&p.market_id),
                             "proposal_id": p.proposal_id });
        if p.created_now {
            notes.push(Notification {
                recipient: owner,
                kind: "proposal_created",
                title: format!("Proposal {} asks to slash your {} market", p.proposal_id, market_kind(p.market_type)),
                body: format!(
                    "It proposes to slash {} USDC of your stake; token holders vote now.",
                    shown(&p.slash_amount)
                ),
                data: json!({ "slash_amount": usdc(&p.slash_amount), "market": market }),
                idempotency_key: format!("proposal_created:{}:{owner:#x}", p.proposal_id),
            });
        }
        if p.resolved_now && (p.executed || p.canceled) {
            let outcome = if p.executed { "executed" } else { "canceled" };
            for recipient in unique([owner, proposer]) {
                notes.push(Notification {
                    recipient,
                    kind: "proposal_outcome",
                    title: format!("Proposal {} was {outcome}", p.proposal_id),
                    body: String::new(),
                    data: json!({ "status": outcome, "market": market }),
                    idempotency_key: format!("proposal_outcome:{}:{outcome}:{recipient:#x}", p.proposal_id),
                });
            }
            if p.executed {
                notes.push(Notification {
                    recipient: owner,
                    kind: "stake_slashed",
                    title: format!("Your stake was slashed by {} USDC", shown(&p.slashed_amount)),
                    body: format!("Proposal {} was executed.", p.proposal_id),
                    data: json!({ "slashed_amount": usdc(&p.slashed_amount), "market": market }),
                    idempotency_key: format!("stake_slashed:{}", p.proposal_id),
                });
            }
        }
    }

    // Voting ended without execution: succeeded or defeated at T (SPEC §5,
    // the same rule as `animoca_domain::governance::Tally::status`).
    let ended: Vec<EndedRow> = sqlx::query_as(
        "SELECT p.proposal_id::text AS proposal_id, p.market_type, p.market_id, m.creator_address, p.proposer,
                CASE WHEN p.votes_for + p.votes_against >= p.quorum_required AND p.votes_for > p.votes_against
                     THEN 'succeeded' ELSE 'defeated' END AS status
           FROM proposals p JOIN markets m USING (market_type, market_id), window_state w
          WHERE NOT p.executed AND NOT p.canceled
            AND p.voting_ends_at <= w.as_of AND p.voting_ends_at > now() - make_interval(secs => $1)",
    )
    .bind(max_age)
    .fetch_all(&mut *tx)
    .await?;
    for p in &ended {
        let (Some(owner), Some(proposer)) = (address(&p.creator_address), address(&p.proposer)) else { continue };
        for recipient in unique([owner, proposer]) {
            notes.push(Notification {
                recipient,
                kind: "proposal_outcome",
                title: format!("Voting on proposal {} ended: {}", p.proposal_id, p.status),
                body: if p.status == "succeeded" {
                    "Quorum reached with more for-votes than against-votes; it can be executed.".to_owned()
                } else {
                    "It did not reach quorum with a for-majority; no stake is slashed.".to_owned()
                },
                data: json!({ "status": p.status, "market": { "market_type": market_kind(p.market_type),
                              "market_id": hex(&p.market_id), "proposal_id": p.proposal_id } }),
                idempotency_key: format!("proposal_outcome:{}:{}:{recipient:#x}", p.proposal_id, p.status),
            });
        }
    }

    // Large trades: told to the market's largest holders. Their own cursor is
    // the chain position of the last one notified, so a burst larger than one
    // round is worked through over the next rounds.
    let trade_cursor: Option<i64> = sqlx::query_scalar("SELECT position FROM app.job_cursors WHERE name = $1")
        .bind(TRADE_CURSOR)
        .fetch_optional(&mut *tx)
        .await?;
    let (after_block, after_log) = match trade_cursor {
        Some(position) => (position / 1_000_000, position % 1_000_000),
        None => (-1, 0),
    };
    let trades: Vec<TradeRow> = sqlx::query_as(
        "SELECT s.tx_hash, s.log_index, s.block_number, s.market_type, s.market_id, s.trader, s.amm_address, s.is_buy,
                s.usdc_amount::text AS usdc_amount
           FROM swaps s
          WHERE s.chain_id = $6 AND s.block_number >= $1 AND s.block_number <= $5
            AND (s.block_number, s.log_index) > ($1, $7)
            AND s.block_timestamp > now() - make_interval(secs => $2)
            AND s.usdc_amount >= $3::numeric
          ORDER BY s.block_number, s.log_index LIMIT $4",
    )
    .bind(after_block)
    .bind(max_age)
    .bind(large_trade_usdc.to_string())
    .bind(MAX_LARGE_TRADES)
    .bind(head)
    .bind(chain_id)
    .bind(i32::try_from(after_log).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let next_trade_cursor = match trades.last() {
        Some(last) if trades.len() as i64 == MAX_LARGE_TRADES => {
            last.block_number * 1_000_000 + i64::from(last.log_index)
        }
        _ => head * 1_000_000 + 999_999,
    };
    for trade in trades {
        let holders: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT holder FROM balances
              WHERE market_type = $1 AND market_id = $2 AND balance > 0 AND holder <> $3 AND holder <> $4
              ORDER BY balance DESC, holder LIMIT $5",
        )
        .bind(trade.market_type)
        .bind(&trade.market_id)
        .bind(&trade.trader)
        .bind(&trade.amm_address)
        .bind(LARGE_TRADE_AUDIENCE)
        .fetch_all(&mut *tx)
        .await?;
        let side = if trade.is_buy { "bought" } else { "sold" };
        for holder in holders.iter().filter_map(|h| address(h)) {
            notes.push(Notification {
                recipient: holder,
                kind: "large_trade",
                title: format!(
                    "Someone {side} {} USDC of a {} you hold",
                    shown(&trade.usdc_amount),
                    market_kind(trade.market_type)
                ),
                body: String::new(),
                data: json!({
                    "market_type": market_kind(trade.market_type), "market_id": hex(&trade.market_id),
                    "tx_hash": hex(&trade.tx_hash), "log_index": trade.log_index, "trader_address": hex(&trade.trader),
                    "swap_type": if trade.is_buy { "buy" } else { "sell" }, "usdc_amount": usdc(&trade.usdc_amount),
                }),
                idempotency_key: format!("large_trade:{}:{}:{holder:#x}", hex(&trade.tx_hash), trade.log_index),
            });
        }
    }

    let mut new = 0;
    for note in &notes {
        if notify::store(&mut tx, note).await?.is_some() {
            new += 1;
        }
    }
    save_cursor(&mut tx, CURSOR, head).await?;
    save_cursor(&mut tx, TRADE_CURSOR, next_trade_cursor).await?;
    tx.commit().await?;
    Ok(new)
}

async fn save_cursor(conn: &mut PgConnection, name: &str, position: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO app.job_cursors (name, position) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
    )
    .bind(name)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}

fn unique(addresses: [Address; 2]) -> Vec<Address> {
    if addresses[0] == addresses[1] { vec![addresses[0]] } else { addresses.to_vec() }
}

#[derive(sqlx::FromRow)]
struct ProposalRow {
    proposal_id: String,
    market_type: i16,
    market_id: Vec<u8>,
    creator_address: Vec<u8>,
    proposer: Vec<u8>,
    slash_amount: String,
    slashed_amount: String,
    executed: bool,
    canceled: bool,
    created_now: bool,
    resolved_now: bool,
}

#[derive(sqlx::FromRow)]
struct EndedRow {
    proposal_id: String,
    market_type: i16,
    market_id: Vec<u8>,
    creator_address: Vec<u8>,
    proposer: Vec<u8>,
    status: String,
}

#[derive(sqlx::FromRow)]
struct TradeRow {
    tx_hash: Vec<u8>,
    log_index: i32,
    block_number: i64,
    market_type: i16,
    market_id: Vec<u8>,
    trader: Vec<u8>,
    amm_address: Vec<u8>,
    is_buy: bool,
    usdc_amount: String,
}
