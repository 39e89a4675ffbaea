//! Socket.IO against the official `socket.io-client` v4: the handshake's
//! sign-in check, subscription acks and refusals, events routed to their
//! rooms, the throttled `markets` channel, `reorg` to everyone, and trades mined
//! on anvil arriving exactly as the chain says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use alloy::primitives::{Address, U256};
use animoca_chain::bindings::MarketAMM;
use animoca_domain::{MarketType, TOKEN_DECIMALS, USDC_DECIMALS, format_units};
use animoca_indexer::{Indexer, IndexerConfig, Leader};
use animoca_realtime::RealtimeConfig;
use animoca_test_support::{MarketSpec, TestChain, TestDb, usdc};
use common::{Client, Server, publish};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn address(n: u8) -> Address {
    Address::with_last_byte(n)
}

fn error_code(ack: &Value) -> &str {
    assert_eq!(ack["success"], false, "{ack}");
    ack["error"]["code"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_checks_tokens_and_user_channels_are_private() {
    let db = TestDb::migrated().await;
    let server = Server::start(&db.pool, RealtimeConfig::default()).await;
    let (alice, bob) = (address(0xa1), address(0xb0));

    // A bad token is refused at connect, with the reason.
    let mut forged = Client::spawn(&server.url(), Some(json!({ "token": "not-a-jwt" })), None);
    let refused = forged.expect("connect_error", |l| l["type"] == "connect_error" || l["type"] == "connect").await;
    assert_eq!(refused["type"], "connect_error", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("invalid token"), "{refused}");
    forged.close().await;
    let mut wrong_type = Client::spawn(&server.url(), Some(json!({ "token": 42 })), None);
    let refused = wrong_type.expect("connect_error", |l| l["type"] == "connect_error" || l["type"] == "connect").await;
    assert_eq!(refused["type"], "connect_error", "{refused}");
    wrong_type.close().await;

    let mut anonymous = Client::connect(&server.url(), None).await;
    let mut alice_client = Client::connect(&server.url(), Some(json!({ "token": server.token(alice) }))).await;
    let mut bob_client = Client::connect(&server.url(), Some(json!({ "token": server.token(bob) }))).await;

    let alice_channel = format!("user:{alice:#x}");
    assert_eq!(error_code(&anonymous.call("subscribe", json!(alice_channel)).await), "UNAUTHORIZED");
    assert_eq!(error_code(&bob_client.call("subscribe", json!(alice_channel)).await), "FORBIDDEN");
    // Mixed case is the same channel.
    let joined = alice_client.subscribe(json!(format!("user:{}", alice.to_checksum(None)))).await;
    assert_eq!(joined["channels"], json!([alice_channel]));
    bob_client.subscribe(json!(format!("user:{bob:#x}"))).await;

    // A notification for alice reaches alice only.
    let version = publish(
        &db.pool,
        &[("notification", json!({ "recipient": format!("{alice:#x}"), "title": "Your stake was slashed" }))],
    )
    .await;
    let note = alice_client.event("notification").await;
    assert_eq!(note["title"], "Your stake was slashed");
    assert_eq!(note["version"], version);
    assert!(bob_client.drain("notification", Duration::from_millis(500)).await.is_empty());
    assert!(anonymous.drain("notification", Duration::from_millis(100)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_acknowledged_or_refused_with_the_reason() {
    let db = TestDb::migrated().await;
    let server = Server::start(&db.pool, RealtimeConfig { max_channels: 2, ..RealtimeConfig::default() }).await;
    let mut client = Client::connect(&server.url(), None).await;

    let ack = client.subscribe(json!(["markets", "proposals"])).await;
    assert_eq!(ack["channels"], json!(["markets", "proposals"]));
    assert_eq!(ack["version"], 0, "the change version reached, to drop events already refetched");

    let unknown_market = format!("market:{:#x}", U256::from(7));
    let ack = client.call("subscribe", json!(unknown_market)).await;
    assert_eq!(error_code(&ack), "BAD_REQUEST", "not 64 hex digits: {ack}");
    let unknown_market = format!("market:0x{}", "7".repeat(64));
    let ack = client.call("subscribe", json!(unknown_market)).await;
    assert_eq!(error_code(&ack), "NOT_FOUND");
    assert!(ack["error"]["message"].as_str().unwrap().contains(&unknown_market), "{ack}");
    assert_eq!(error_code(&client.call("subscribe", json!("proposal:12")).await), "NOT_FOUND");
    for bad in
        [json!("prices"), json!(""), json!(["markets", 3]), json!([]), json!({ "channel": "markets" }), Value::Null]
    {
        let ack = client.call("subscribe", bad.clone()).await;
        assert_eq!(error_code(&ack), "BAD_REQUEST", "{bad}: {ack}");
    }
    // A refused list joins nothing: the valid part of it is not half-applied.
    let mut fresh = Client::connect(&server.url(), None).await;
    assert_eq!(error_code(&fresh.call("subscribe", json!(["markets", "proposal:99"])).await), "NOT_FOUND");
    publish(&db.pool, &[("backfill", json!({ "from_block": 1, "to_block": 2, "swaps": 600, "markets": [] }))]).await;
    assert_eq!(client.event("backfill").await["swaps"], 600);
    assert!(fresh.drain("backfill", Duration::from_millis(500)).await.is_empty(), "`markets` was not joined");

    // At most 2 channels per connection here: a third is refused.
    let mut signed_in = Client::connect(&server.url(), Some(json!({ "token": server.token(address(0xa1)) }))).await;
    signed_in.subscribe(json!(["markets", "proposals"])).await;
    let ack = signed_in.call("subscribe", json!(format!("user:{:#x}", address(0xa1)))).await;
    assert_eq!(error_code(&ack), "TOO_MANY_CHANNELS", "{ack}");
    // Joining again what is held does not count twice.
    signed_in.subscribe(json!("markets")).await;

    // Unsubscribing stops the events.
    publish(&db.pool, &[("vote", json!({ "proposal_id": "1", "vote_type": "for" }))]).await;
    assert_eq!(client.event("vote").await["vote_type"], "for");
    let ack = client.call("unsubscribe", json!("proposals")).await;
    assert_eq!(ack["data"]["channels"], json!(["proposals"]));
    publish(&db.pool, &[("vote", json!({ "proposal_id": "1", "vote_type": "against" }))]).await;
    assert!(client.drain("vote", Duration::from_millis(500)).await.is_empty());
    assert_eq!(error_code(&client.call("unsubscribe", json!("nope")).await), "BAD_REQUEST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_markets_channel_is_throttled_per_market_and_ends_on_the_last_price() {
    let db = TestDb::migrated().await;
    let config = RealtimeConfig { markets_ticks_per_second: 2, ..RealtimeConfig::default() };
    let server = Server::start(&db.pool, config).await;
    let mut client = Client::connect(&server.url(), None).await;
    client.subscribe(json!("markets")).await;
    let market =
        |n: u8| json!({ "market_type": "credential", "market_id": format!("0x{}", format!("{n:02x}").repeat(32)) });
    // 20 ticks of market 1 and 20 of market 2 within ~1 s.
    for price in 1..=20 {
        publish(&db.pool, &[("price", json!({ "market": market(1), "price": price.to_string() }))]).await;
        publish(&db.pool, &[("price", json!({ "market": market(2), "price": (100 + price).to_string() }))]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticks = client.drain("price", Duration::from_millis(1500)).await;
    for (n, last) in [(1u8, "20"), (2, "120")] {
        let id = market(n)["market_id"].clone();
        let of_market: Vec<&Value> = ticks.iter().filter(|t| t["market"]["market_id"] == id).collect();
        assert!(of_market.len() >= 2 && of_market.len() <= 5, "2 per second over ~1.5 s: {}", of_market.len());
        assert_eq!(of_market.last().unwrap()["price"], last, "the newest price always arrives");
        let versions: Vec<i64> = of_market.iter().map(|t| t["version"].as_i64().unwrap()).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "in order: {versions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_reaches_every_connection_with_the_block_to_refetch_from() {
    let db = TestDb::migrated().await;
    let server = Server::start(&db.pool, RealtimeConfig::default()).await;
    // One client over long-polling only, one upgraded to WebSocket.
    let mut polling = Client::spawn(&server.url(), None, Some(&["polling"]));
    let connected = polling.expect("connect", |l| l["type"] == "connect").await;
    assert_eq!(connected["transport"], "polling");
    let mut websocket = Client::connect(&server.url(), None).await;
    publish(&db.pool, &[("reorg", json!({ "from_block": 41 }))]).await;
    for client in [&mut polling, &mut websocket] {
        assert_eq!(client.event("reorg").await["from_block"], 41);
    }
    // Nothing a client need not see (the block marker) is sent.
    publish(&db.pool, &[("block", json!({ "block_number": 42 }))]).await;
    assert!(websocket.drain("block", Duration::from_millis(300)).await.is_empty());
}

/// The `Swap` event of a receipt: (usdc, tokens) absolute.
fn swap_amounts(receipt: &alloy::rpc::types::TransactionReceipt) -> (U256, U256) {
    let swap = receipt.inner.logs().iter().find_map(|log| log.log_decode::<MarketAMM::Swap>().ok()).unwrap();
    (swap.inner.data.usdcAmount.unsigned_abs(), swap.inner.data.tokenAmount.unsigned_abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_mined_on_anvil_reach_their_market_room_exactly() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let (a, b) = (MarketSpec::new(MarketType::Credential, "rt-a"), MarketSpec::new(MarketType::Persona, "rt-b"));
    chain.create_market(&a, chain.account(1)).await;
    chain.create_market(&b, chain.account(2)).await;
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    config.poll_interval = Duration::from_millis(50);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();
    let stop = CancellationToken::new();
    let options = db.options.clone();
    let indexer_stop = stop.clone();
    tokio::spawn(async move {
        let mut leader =
            Leader::acquire(&options, 31_337, Duration::from_millis(100), &indexer_stop).await.unwrap().unwrap();
        if let Err(error) = indexer.run(&mut leader, indexer_stop).await {
            eprintln!("indexer stopped: {error}");
        }
    });
    let server = Server::start(&db.pool, RealtimeConfig::default()).await;
    let mut watcher_a = Client::connect(&server.url(), None).await;
    let mut watcher_b = Client::connect(&server.url(), None).await;
    let room_a = format!("market:{:#x}", a.id);
    watcher_a.subscribe(json!([room_a, "markets"])).await;
    watcher_b.subscribe(json!(format!("market:{:#x}", b.id))).await;
    // The block's three events go out as one queue item per client: whole and in
    // order over WebSocket and over long-polling (a payload of several packets).
    let mut ws_only = Client::spawn(&server.url(), None, Some(&["websocket"]));
    let mut polling_only = Client::spawn(&server.url(), None, Some(&["polling"]));
    for client in [&mut ws_only, &mut polling_only] {
        client.expect("connect", |line| line["type"] == "connect").await;
        client.subscribe(json!(room_a)).await;
    }

    let trader = chain.account(3);
    let receipt = chain.buy(trader, MarketType::Credential, a.id, usdc(250), U256::ZERO).await.unwrap();
    let (usdc_in, tokens_out) = swap_amounts(&receipt);
    let trade = watcher_a.event("trade").await;
    assert_eq!(trade["market"]["market_id"], format!("{:#x}", a.id));
    assert_eq!(trade["swap_type"], "buy");
    assert_eq!(trade["trader_address"], format!("{trader:#x}"), "lowercase, as the REST API serves it");
    assert_eq!(trade["tx_hash"], format!("{:#x}", receipt.transaction_hash));
    assert_eq!(trade["usdc_amount"], format_units(usdc_in, USDC_DECIMALS), "exact, from the chain");
    assert_eq!(trade["token_amount"], format_units(tokens_out, TOKEN_DECIMALS));
    assert_eq!(trade["block_number"], receipt.block_number.unwrap());
    let price = watcher_a.event("price").await;
    assert_eq!(price["market"]["market_id"], format!("{:#x}", a.id));
    let candle = watcher_a.event("candle").await;
    let candles = candle["candles"].as_array().unwrap();
    let timeframes: Vec<&str> = candles.iter().map(|c| c["timeframe"].as_str().unwrap()).collect();
    assert_eq!(timeframes.len(), animoca_domain::Timeframe::ALL.len(), "every timeframe in one event: {timeframes:?}");
    for candle in candles {
        assert_eq!(
            candle["volume_usdc"],
            format_units(usdc_in, USDC_DECIMALS),
            "the market's first trade is its candle"
        );
        assert_eq!(candle["trade_count"], 1);
    }
    for client in [&mut ws_only, &mut polling_only] {
        let mut events = Vec::new();
        for _ in 0..3 {
            let line = client.expect("event", |line| line["type"] == "event").await;
            events.push(line["event"].as_str().unwrap().to_owned());
            assert_eq!(line["data"]["market"]["market_id"], format!("{:#x}", a.id));
        }
        assert_eq!(events, ["trade", "price", "candle"], "in order, nothing else between");
    }
    // `markets` got the tick too (the first one is never held).
    let ticks = watcher_a.drain("price", Duration::from_millis(300)).await;
    assert!(!ticks.is_empty(), "the markets channel's tick");
    assert!(
        watcher_b.drain("trade", Duration::from_millis(300)).await.is_empty(),
        "another market's room hears nothing"
    );
    stop.cancel();
}

/// A raw WebSocket client that subscribes and then never reads again. It
/// subscribes the instant the server accepts it: the handlers must already be
/// there (a spawned connect handler lost that race).
async fn stuck_client(url: &str, channel: &str) -> impl Sized + use<> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", url.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // The next text frame starting with `prefix`, answering pings meanwhile.
    async fn next_starting<S>(socket: &mut S, prefix: &str) -> String
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + futures_util::Sink<Message>
            + Unpin,
    {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
            let text =
                frame.expect("the server answers within 10 s").unwrap().unwrap().into_text().unwrap().to_string();
            if text == "2" {
                let _ = socket.send(Message::text("3")).await;
            } else if text.starts_with(prefix) {
                return text;
            }
        }
    }
    next_starting(&mut socket, "0").await; // Engine.IO open
    socket.send(Message::text("40")).await.unwrap();
    next_starting(&mut socket, "40").await;
    socket.send(Message::text(format!("421[\"subscribe\",\"{channel}\"]"))).await.unwrap();
    let ack = next_starting(&mut socket, "431").await;
    assert!(ack.contains("\"success\":true"), "{ack}");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_never_delays_the_others() {
    let db = TestDb::migrated().await;
    // A 64-packet queue per connection: the stuck client's overflows, so the
    // relay would stall here if it ever waited for a full queue.
    let config = RealtimeConfig { markets_ticks_per_second: 0, max_buffer: 64, ..RealtimeConfig::default() };
    let server = Server::start(&db.pool, config).await;
    let _stuck = stuck_client(&server.url(), "markets").await;
    let mut healthy = Client::connect(&server.url(), None).await;
    healthy.subscribe(json!("markets")).await;
    // 300 ticks of 48 KB (~14 MB, more than the stuck client's socket
    // buffers and queue hold) in bursts of 30, below the healthy client's queue.
    let blob = "x".repeat(48 * 1024);
    let tick = |n: u32| {
        let id = format!("0x{:064x}", n + 1);
        ("price", json!({ "market": { "market_type": "credential", "market_id": id }, "n": n, "blob": blob }))
    };
    let started = std::time::Instant::now();
    for burst in 0..10u32 {
        let changes: Vec<(&str, Value)> = (burst * 30..burst * 30 + 30).map(tick).collect();
        publish(&db.pool, &changes).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut received = 0;
    while received < 300 {
        let tick = healthy.event("price").await;
        assert_eq!(tick["n"], received, "in order, none lost");
        received += 1;
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "the healthy client got everything in {elapsed:?}");
    // The server still serves newcomers and later changes at once.
    let mut newcomer = Client::connect(&server.url(), None).await;
    newcomer.subscribe(json!("markets")).await;
    publish(&db.pool, &[("reorg", json!({ "from_block": 1 }))]).await;
    assert_eq!(newcomer.event("reorg").await["from_block"], 1);
    assert_eq!(healthy.event("reorg").await["from_block"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_resumes_where_it_stopped_after_a_database_error() {
    use sqlx::Connection;
    let db = TestDb::migrated().await;
    let server = Server::start(&db.pool, RealtimeConfig::default()).await;
    let mut client = Client::connect(&server.url(), None).await;
    client.subscribe(json!("proposals")).await;
    // Every other connection to the database dies (the relay's, its listener's):
    // a vote committed right then must still arrive once the relay is back.
    let mut own = sqlx::PgConnection::connect_with(&db.options).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        .execute(&mut own)
        .await
        .unwrap();
    let mut tx = own.begin().await.unwrap();
    let change =
        animoca_store::batch::ChangeRow { kind: "vote".into(), payload: json!({ "proposal_id": "1", "n": 1 }) };
    animoca_store::indexing::write_changes(&mut tx, &[change]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(client.event("vote").await["n"], 1, "delivered after the relay's restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_from_another_origin_gets_the_api_cors_policy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::migrated().await;
    let config = RealtimeConfig { cors_origins: vec!["https://app.example.com".into()], ..RealtimeConfig::default() };
    let server = Server::start(&db.pool, config).await;
    let request = |origin: &str| {
        format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        )
    };
    let mut answers = Vec::new();
    for origin in ["https://app.example.com", "https://evil.example.com"] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        stream.write_all(request(origin).as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        answers.push(response.to_lowercase());
    }
    assert!(answers[0].starts_with("http/1.1 200"), "{}", answers[0]);
    assert!(answers[0].contains("access-control-allow-origin: https://app.example.com"), "{}", answers[0]);
    assert!(answers[0].contains("\"sid\""), "the Engine.IO open packet: {}", answers[0]);
    assert!(!answers[1].contains("access-control-allow-origin"), "{}", answers[1]);
}
