//! The relay: reads the change feed (woken by `NOTIFY`, and every second in
//! case a notification was missed) in version order and emits each change to
//! its rooms.
//!
//! With Redis, one `serve` node relays for all of them (a Postgres advisory
//! lock elects it; when its process dies another takes over within a second;
//! when its host or network dies, once Postgres notices the dead connection) and
//! the Redis adapter carries its broadcasts to every node; the relay cursor is
//! kept in Postgres so a new leader resumes where the old one stopped. Without
//! Redis each node relays to its own clients.
//!
//! | change        | event      | rooms                                             |
//! |---------------|------------|---------------------------------------------------|
//! | `trade`       | `trade`    | `market:<id>`                                     |
//! | `price`       | `price`    | `market:<id>`; `markets` (throttled per market)   |
//! | `candle`      | `candle`   | `market:<id>` (one event per market and version, every timeframe in `candles`) |
//! | `proposal`    | `proposal` | `proposals`, `proposal:<id>`, `market:<id>`       |
//! | `vote`        | `vote`     | `proposals`, `proposal:<id>`                      |
//! | `notification`| `notification` | `user:<recipient>`                            |
//! | `backfill`    | `backfill` | `markets`, `market:<id>` of each market touched   |
//! | `reorg`       | `reorg`    | every connection (`from_block`: refetch from it)  |
//! | `rederive`    | `refresh`  | every connection (refetch everything)             |
//!
//! Every payload carries `version`, the change version it was committed in.

use std::time::{Duration, Instant};

use animoca_store::indexing::{self, CHANGES_CHANNEL, StoredChange};
use serde_json::Value;
use socketioxide::{SocketIo, adapter::Adapter};
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use crate::channels::{MARKETS, PROPOSALS};
use crate::throttle::Throttle;

/// Who a change goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Sockets in any of these rooms (each socket once).
    Rooms(Vec<String>),
    /// Every connection.
    Everyone,
}

/// One event to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    /// The Socket.IO event name.
    pub event: &'static str,
    /// Its recipients.
    pub audience: Audience,
    /// Its data (the change payload plus `version`).
    pub payload: Value,
    /// A price tick that also goes to `markets`, through the throttle (keyed by market room).
    pub markets_tick: Option<String>,
}

/// What a run of changes emits, in order. The candle rows of one market and
/// version (one per timeframe) become one `candle` event listing them in
/// `candles`: a chart picks its timeframe, and a block costs each subscriber
/// three packets (trade, price, candle) instead of nine.
pub fn emissions_of_all(changes: &[StoredChange]) -> Vec<Emission> {
    let mut emissions: Vec<Emission> = Vec::new();
    let mut open_candles: Option<(i64, String)> = None;
    for change in changes {
        if change.kind == "candle"
            && let Some(room) = market_room(&change.payload["market"])
        {
            let mut candle = change.payload.clone();
            if let Value::Object(fields) = &mut candle {
                fields.remove("market");
            }
            let key = (change.version, room.clone());
            if open_candles.as_ref() == Some(&key)
                && let Some(Value::Array(candles)) = emissions.last_mut().map(|e| &mut e.payload["candles"])
            {
                candles.push(candle);
                continue;
            }
            emissions.push(Emission {
                event: "candle",
                audience: Audience::Rooms(vec![room]),
                payload: serde_json::json!({ "market": change.payload["market"], "candles": [candle], "version": change.version }),
                markets_tick: None,
            });
            open_candles = Some(key);
            continue;
        }
        open_candles = None;
        emissions.extend(emissions_of(change));
    }
    emissions
}

/// What one change emits (nothing for changes clients need not see, like `block`).
pub fn emissions_of(change: &StoredChange) -> Vec<Emission> {
    let mut payload = change.payload.clone();
    if let Value::Object(fields) = &mut payload {
        fields.insert("version".to_owned(), Value::from(change.version));
    }
    let changed_market = market_room(&change.payload["market"]);
    let proposal_room = change.payload["proposal_id"].as_str().map(|id| format!("proposal:{id}"));
    let rooms = |rooms: Vec<Option<String>>| Audience::Rooms(rooms.into_iter().flatten().collect());
    let one = |event, audience| vec![Emission { event, audience, payload: payload.clone(), markets_tick: None }];
    match change.kind.as_str() {
        "trade" if changed_market.is_some() => one("trade", rooms(vec![changed_market])),
        "candle" if changed_market.is_some() => one("candle", rooms(vec![changed_market])),
        "price" if changed_market.is_some() => vec![Emission {
            event: "price",
            audience: rooms(vec![changed_market.clone()]),
            payload,
            markets_tick: changed_market,
        }],
        "proposal" => one("proposal", rooms(vec![Some(PROPOSALS.to_owned()), proposal_room, changed_market])),
        "vote" => one("vote", rooms(vec![Some(PROPOSALS.to_owned()), proposal_room])),
        "notification" => match change.payload["recipient"].as_str() {
            Some(recipient) => one("notification", rooms(vec![Some(format!("user:{}", recipient.to_lowercase()))])),
            None => Vec::new(),
        },
        "backfill" => {
            let mut targets = vec![MARKETS.to_owned()];
            if let Some(markets) = change.payload["markets"].as_array() {
                targets.extend(markets.iter().filter_map(market_room));
            }
            one("backfill", Audience::Rooms(targets))
        }
        "reorg" => one("reorg", Audience::Everyone),
        "rederive" => one("refresh", Audience::Everyone),
        _ => Vec::new(),
    }
}

fn market_room(market: &Value) -> Option<String> {
    market["market_id"].as_str().map(|id| format!("market:{}", id.to_lowercase()))
}

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `markets` ticks per market per second (0: unthrottled).
    pub markets_ticks_per_second: u32,
    /// Relay only while holding the cluster's relay lock, resuming from the
    /// shared cursor (set when a Redis adapter carries broadcasts to other nodes).
    pub elected: bool,
}

/// The advisory-lock key electing the relaying node (any constant unique to us).
const RELAY_LOCK: i64 = 0x616e_696d_6f63_6101;
/// Rows read per query while catching up.
const READ_LIMIT: i64 = 2_000;

/// Relays until `shutdown`; survives database outages (retries every second).
pub async fn run<A: Adapter>(io: SocketIo<A>, pool: PgPool, config: RelayConfig, shutdown: CancellationToken) {
    // Where this node got to: a restart after a database error resumes there
    // (an elected relay resumes from the cluster's cursor instead).
    let mut cursor = None;
    while !shutdown.is_cancelled() {
        if let Err(error) = relay_once(&io, &pool, &config, &mut cursor, &shutdown).await {
            tracing::warn!(%error, "realtime relay interrupted; retrying in 1 s");
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn relay_once<A: Adapter>(
    io: &SocketIo<A>,
    pool: &PgPool,
    config: &RelayConfig,
    resume: &mut Option<i64>,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    // The lock lives as long as this connection: a dead leader's is released by Postgres.
    let mut lock_conn = pool.acquire().await?.detach();
    if config.elected {
        loop {
            let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut lock_conn)
                .await?;
            if won {
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracing::info!("this node relays realtime changes for the cluster");
    }
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    let mut cursor = match *resume {
        Some(cursor) if !config.elected => cursor,
        _ => start_cursor(&mut lock_conn, config.elected).await?,
    };
    *resume = Some(cursor);
    let mut throttle = Throttle::new(config.markets_ticks_per_second);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    loop {
        let flush_at = throttle.next_due().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            note = listener.recv() => { note?; }
            _ = heartbeat.tick() => {
                if config.elected {
                    // Still holding the lock? (its connection may have died)
                    sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
                }
            }
            () = sleep_until(flush_at) => {}
        }
        loop {
            let changes = indexing::changes_after(&mut lock_conn, cursor, READ_LIMIT).await?;
            let Some(last) = changes.last().map(|c| c.version) else { break };
            // Through the Redis adapter each event is its own broadcast (and publish):
            // one that fails stops only itself, and the local fallback repeats nothing.
            let max_batch = if config.elected { 1 } else { MAX_BATCH };
            for batch in batches(emissions_of_all(&changes), max_batch) {
                emit(io, &mut throttle, batch).await;
            }
            cursor = last;
            *resume = Some(cursor);
            if config.elected {
                sqlx::query("UPDATE app.realtime_relay SET version = $1, updated_at = now()")
                    .bind(cursor)
                    .execute(&mut lock_conn)
                    .await?;
            }
            metrics::gauge!("realtime_relay_version").set(cursor as f64);
        }
        for tick in throttle.due(Instant::now()) {
            send(io, &Audience::Rooms(vec![MARKETS.to_owned()]), &[(MARKETS_EVENT, &tick)]).await;
        }
    }
}

const MARKETS_EVENT: &str = "price";

/// Why the relay stopped (it restarts after a second).
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Store(#[from] animoca_store::StoreError),
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where to start: the shared cursor for an elected relay (a new leader
/// resumes there), else the current version (nothing old is replayed).
async fn start_cursor(conn: &mut sqlx::PgConnection, elected: bool) -> Result<i64, sqlx::Error> {
    let current: i64 = sqlx::query_scalar("SELECT version FROM app.change_version").fetch_one(&mut *conn).await?;
    if !elected {
        return Ok(current);
    }
    let saved: Option<i64> =
        sqlx::query_scalar("SELECT version FROM app.realtime_relay").fetch_optional(&mut *conn).await?;
    match saved {
        Some(saved) if saved <= current => Ok(saved),
        _ => {
            sqlx::query(
                "INSERT INTO app.realtime_relay (singleton, version) VALUES (true, $1)
                         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, updated_at = now()",
            )
            .bind(current)
            .execute(&mut *conn)
            .await?;
            Ok(current)
        }
    }
}

/// Events sent in one broadcast at most (a busy market's block can hold many trades).
const MAX_BATCH: usize = 32;

/// Runs of emissions for the same rooms and version (one block or write), in
/// order, `max` at most: a block's `trade`, `price` and `candle` for one market go
/// out together, one pass over the room's sockets and one queue item per socket
/// (instead of one of each per event).
fn batches(emissions: Vec<Emission>, max: usize) -> Vec<Vec<Emission>> {
    let mut batches: Vec<Vec<Emission>> = Vec::new();
    for emission in emissions {
        match batches.last_mut() {
            Some(batch)
                if batch.len() < max
                    && matches!(emission.audience, Audience::Rooms(_))
                    && batch[0].audience == emission.audience
                    && batch[0].payload["version"] == emission.payload["version"] =>
            {
                batch.push(emission);
            }
            _ => batches.push(vec![emission]),
        }
    }
    batches
}

/// Emits one batch (emissions sharing their audience), then offers its price
/// ticks to the `markets` throttle.
async fn emit<A: Adapter>(io: &SocketIo<A>, throttle: &mut Throttle, batch: Vec<Emission>) {
    let events: Vec<(&'static str, &Value)> = batch.iter().map(|e| (e.event, &e.payload)).collect();
    send(io, &batch[0].audience, &events).await;
    for emission in &batch {
        if let Some(key) = &emission.markets_tick
            && let Some(tick) = throttle.offer(key, emission.payload.clone(), Instant::now())
        {
            send(io, &Audience::Rooms(vec![MARKETS.to_owned()]), &[(MARKETS_EVENT, &tick)]).await;
        }
    }
}

/// Sends events, in order, to an audience (each socket gets them in one go).
async fn send<A: Adapter>(io: &SocketIo<A>, audience: &Audience, events: &[(&'static str, &Value)]) {
    let sent = match audience {
        Audience::Rooms(rooms) if rooms.is_empty() => return,
        Audience::Rooms(rooms) => io.to(rooms.clone()).emit_many(events).await,
        Audience::Everyone => io.broadcast().emit_many(events).await,
    };
    for (event, _) in events {
        metrics::counter!("realtime_events_total", "event" => *event).increment(1);
    }
    // The Redis adapter gives up before its local delivery when it cannot
    // publish: this node's own clients still get the events.
    let sent = match sent {
        Err(socketioxide::BroadcastError::Adapter(error)) => {
            tracing::warn!(%error, "Redis adapter unreachable: delivering to this node's clients only");
            match audience {
                Audience::Rooms(rooms) => io.local().to(rooms.clone()).emit_many(events).await,
                Audience::Everyone => io.local().emit_many(events).await,
            }
        }
        other => other,
    };
    if let Err(error) = sent {
        // Full buffers of slow clients (they are skipped, never waited for), or
        // Redis unreachable (other nodes miss these events; clients refetch on reconnect).
        for (event, _) in events {
            metrics::counter!("realtime_emit_errors_total", "event" => *event).increment(1);
        }
        tracing::debug!(%error, "realtime emit incomplete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(kind: &str, payload: Value) -> StoredChange {
        StoredChange { version: 7, id: 1, kind: kind.to_owned(), payload }
    }

    #[test]
    fn changes_go_to_their_rooms_with_their_version() {
        let market = json!({ "market_type": "credential", "market_id": "0xAB" });
        let trade = emissions_of(&change("trade", json!({ "market": market, "price": "1.5" })));
        assert_eq!(trade.len(), 1);
        assert_eq!(trade[0].event, "trade");
        assert_eq!(trade[0].audience, Audience::Rooms(vec!["market:0xab".into()]));
        assert_eq!(trade[0].payload["version"], 7);
        assert_eq!(trade[0].payload["price"], "1.5");

        let price = emissions_of(&change("price", json!({ "market": market })));
        assert_eq!(price[0].markets_tick.as_deref(), Some("market:0xab"));

        let proposal = emissions_of(&change("proposal", json!({ "proposal_id": "3", "market": market })));
        assert_eq!(
            proposal[0].audience,
            Audience::Rooms(vec!["proposals".into(), "proposal:3".into(), "market:0xab".into()])
        );
        let vote = emissions_of(&change("vote", json!({ "proposal_id": "3" })));
        assert_eq!(vote[0].audience, Audience::Rooms(vec!["proposals".into(), "proposal:3".into()]));

        let note = emissions_of(&change("notification", json!({ "recipient": "0xAA" })));
        assert_eq!(note[0].audience, Audience::Rooms(vec!["user:0xaa".into()]));

        assert_eq!(emissions_of(&change("reorg", json!({ "from_block": 5 })))[0].audience, Audience::Everyone);
        assert_eq!(emissions_of(&change("rederive", json!({})))[0].event, "refresh");
        assert!(emissions_of(&change("block", json!({ "block_number": 1 }))).is_empty());
        assert!(emissions_of(&change("trade", json!({}))).is_empty(), "a trade without a market goes nowhere");
    }

    #[test]
    fn consecutive_emissions_for_the_same_rooms_go_out_together() {
        let market = |id: &str| json!({ "market_type": "credential", "market_id": id });
        let at = |kind: &str, id: &str| StoredChange {
            version: 1,
            id: 0,
            kind: kind.into(),
            payload: json!({ "market": market(id) }),
        };
        let changes = vec![
            at("trade", "0xa"),
            at("price", "0xa"),
            at("candle", "0xa"),
            at("trade", "0xb"),
            StoredChange { version: 2, id: 0, kind: "reorg".into(), payload: json!({ "from_block": 3 }) },
            StoredChange { version: 2, id: 0, kind: "rederive".into(), payload: json!({}) },
            at("trade", "0xa"),
        ];
        let events = |batches: &[Vec<Emission>]| -> Vec<Vec<&'static str>> {
            batches.iter().map(|b| b.iter().map(|e| e.event).collect()).collect()
        };
        let batched = batches(emissions_of_all(&changes), MAX_BATCH);
        assert_eq!(
            events(&batched),
            [vec!["trade", "price", "candle"], vec!["trade"], vec!["reorg"], vec!["refresh"], vec!["trade"]],
            "same rooms and adjacent: one batch, in order; everyone-events stay alone"
        );
        assert_eq!(batched[0][1].markets_tick.as_deref(), Some("market:0xa"), "the price still feeds `markets`");

        let one_by_one = batches(emissions_of_all(&changes), 1);
        assert_eq!(one_by_one.len(), 7, "through the Redis adapter: one event per broadcast");

        let two_blocks = [at("trade", "0xa"), StoredChange { version: 2, ..at("trade", "0xa") }];
        assert_eq!(batches(emissions_of_all(&two_blocks), MAX_BATCH).len(), 2, "one version per batch");
        let busy_block: Vec<StoredChange> = (0..40).map(|_| at("trade", "0xa")).collect();
        let sizes: Vec<usize> = batches(emissions_of_all(&busy_block), MAX_BATCH).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_BATCH, 40 - MAX_BATCH], "at most MAX_BATCH events per broadcast");
    }

    #[test]
    fn the_candles_of_one_market_and_version_are_one_event() {
        let market = |id: &str| json!({ "market_type": "credential", "market_id": id });
        let candle = |id: &str, timeframe: &str, version: i64| StoredChange {
            version,
            id: 0,
            kind: "candle".into(),
            payload: json!({ "market": market(id), "timeframe": timeframe, "close": "2" }),
        };
        let changes = vec![
            StoredChange { version: 1, id: 0, kind: "trade".into(), payload: json!({ "market": market("0xa") }) },
            candle("0xa", "1m", 1),
            candle("0xa", "5m", 1),
            candle("0xb", "1m", 1),
            candle("0xb", "1m", 2),
        ];
        let emissions = emissions_of_all(&changes);
        let events: Vec<&str> = emissions.iter().map(|e| e.event).collect();
        assert_eq!(events, ["trade", "candle", "candle", "candle"]);
        assert_eq!(
            emissions[1].payload["candles"],
            json!([{ "timeframe": "1m", "close": "2" }, { "timeframe": "5m", "close": "2" }])
        );
        assert_eq!(emissions[1].payload["market"]["market_id"], "0xa");
        assert_eq!(emissions[1].payload["version"], 1);
        assert_eq!(emissions[2].audience, Audience::Rooms(vec!["market:0xb".into()]));
        assert_eq!(emissions[3].payload["version"], 2, "another version, another event");
    }
}
