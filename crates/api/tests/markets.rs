//! The market routes against data produced by real transactions on anvil and
//! indexed by the real indexer: every number checked against the chain or an
//! independent recomputation; every bad input a 400 naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy::primitives::{Address, B256, U256};
use animoca_chain::bindings::MarketAMM;
use animoca_domain::{MarketType, Price, Timeframe, format_units};
use animoca_indexer::{Indexer, IndexerConfig};
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use axum::http::StatusCode;
use common::{get, ok};
use serde_json::Value;

struct World {
    chain: TestChain,
    db: TestDb,
    a: MarketSpec,
    a_token: Address,
    /// Market A's trades as the chain's `Swap` events say: (block, log index, time, |usdc|, |tokens|).
    a_trades: Vec<(u64, u64, i64, U256, U256)>,
    b: MarketSpec,
    p: MarketSpec,
}

/// open, high, low, close, volume USDC, volume tokens, trades.
type Ohlcv = (Price, Price, Price, Price, U256, U256, u64);

/// The `Swap` events of a receipt: (block, log index, |usdcAmount|, |tokenAmount|).
fn swaps_of(receipt: &alloy::rpc::types::TransactionReceipt) -> Vec<(u64, u64, U256, U256)> {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|log| {
            let swap = log.log_decode::<MarketAMM::Swap>().ok()?;
            let e = &swap.inner.data;
            Some((log.block_number?, log.log_index?, e.usdcAmount.unsigned_abs(), e.tokenAmount.unsigned_abs()))
        })
        .collect()
}

/// Two credential markets (A verified and traded, B pending and idle) and a
/// verified persona linked to A, traded across several minutes.
async fn world() -> World {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let (a, b, p) = (
        MarketSpec::new(MarketType::Credential, "api-a"),
        MarketSpec::new(MarketType::Credential, "api-b"),
        MarketSpec::new(MarketType::Persona, "api-p"),
    );
    let (a_token, _) = chain.create_market(&a, chain.account(1)).await;
    chain.create_market(&b, chain.account(1)).await;
    chain.create_market(&p, chain.account(2)).await;
    let (alice, bob) = (chain.account(3), chain.account(4));
    let mut receipts = Vec::new();
    receipts.push(chain.buy(alice, MarketType::Credential, a.id, usdc(100), U256::ZERO).await.unwrap());
    chain.advance_time(180).await;
    receipts.push(chain.buy(bob, MarketType::Credential, a.id, usdc(40), U256::ZERO).await.unwrap());
    chain.advance_time(240).await;
    receipts.push(chain.sell(alice, MarketType::Credential, a.id, a_token, tokens(50), U256::ZERO).await.unwrap());
    let mut a_trades = Vec::new();
    for (block, log, usdc_abs, tokens_abs) in receipts.iter().flat_map(swaps_of) {
        let time = i64::try_from(chain.block_timestamp(block).await).unwrap();
        a_trades.push((block, log, time, usdc_abs, tokens_abs));
    }
    assert_eq!(a_trades.len(), 3);
    chain.buy(bob, MarketType::Persona, p.id, usdc(25), U256::ZERO).await.unwrap();
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();
    for (market_type, id) in [(0i16, a.id), (1, p.id)] {
        sqlx::query(
            "INSERT INTO app.market_metadata (market_type, market_id, registered_by, verification_status, category)
             VALUES ($1, $2, '\\x01', 'verified', 'education')",
        )
        .bind(market_type)
        .bind(id.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO app.persona_credentials (persona_id, credential_id, linked_by) VALUES ($1, $2, '\\x02')")
        .bind(p.id.as_slice())
        .bind(a.id.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO app.social_links (persona_id, platform, handle) VALUES ($1, 'x', '@api_p')")
        .bind(p.id.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    World { chain, db, a, a_token, a_trades, b, p }
}

fn hex(id: B256) -> String {
    format!("{id:#x}")
}

#[tokio::test]
async fn market_routes_serve_what_the_chain_says() {
    let w = world().await;
    let (a, p) = (hex(w.a.id), hex(w.p.id));

    // Lists: verified by default, `status=all` widens, sorted by 24h volume.
    let list = ok(&w.db, "/api/credentials").await;
    let ids: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|m| m["credential_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str()]);
    let all = ok(&w.db, "/api/credentials?status=all&sortBy=volume&limit=10").await;
    assert_eq!(all["pagination"]["total"], 2);
    assert_eq!(all["data"][0]["credential_id"], a.as_str(), "the traded market sorts first by volume");
    assert_eq!(all["data"][1]["credential_id"], hex(w.b.id));
    assert_eq!(all["data"][1]["verification_status"], "pending");
    let searched = ok(&w.db, "/api/credentials?status=all&search=API-B").await;
    assert_eq!(searched["data"].as_array().unwrap().len(), 1);
    assert_eq!(ok(&w.db, "/api/credentials?status=all&type=education").await["data"].as_array().unwrap().len(), 1);
    assert_eq!(ok(&w.db, "/api/personas").await["data"][0]["persona_id"], p.as_str());

    // Detail and pool against the contract's reserves.
    let amm = MarketAMM::new(w.chain.deployment.credential_amm, &w.chain.provider);
    let reserves = amm.pools(w.a.id).call().await.unwrap();
    let spot = Price::spot(reserves.usdcReserves, reserves.tokenReserves).to_decimal_string();
    let detail = ok(&w.db, &format!("/api/credentials/{a}")).await["data"].clone();
    assert_eq!(detail["market_type"], "credential");
    assert_eq!(detail["token_address"], format!("{:#x}", w.a_token));
    assert_eq!(detail["issuer_address"], format!("{:#x}", w.chain.account(1)));
    assert_eq!(detail["price"], spot.as_str());
    assert_eq!(detail["pool"]["price"], spot.as_str());
    assert_eq!(detail["pool"]["token_reserves"], format_units(reserves.tokenReserves, 18));
    assert_eq!(detail["pool"]["usdc_reserves"], format_units(reserves.usdcReserves, 6));
    assert_eq!(detail["pool"]["fee_bps"], 30);
    assert_eq!(detail["trades_24h"], 3);
    assert_eq!(detail["traders_24h"], 2);
    assert_eq!(ok(&w.db, &format!("/api/credentials/{a}/pool")).await["data"], detail["pool"]);

    // Persona detail: linked credentials and social links.
    let persona = ok(&w.db, &format!("/api/personas/{p}")).await["data"].clone();
    assert_eq!(persona["owner_address"], format!("{:#x}", w.chain.account(2)));
    assert_eq!(persona["linked_credentials"][0]["credential_id"], a.as_str());
    assert_eq!(persona["social_links"][0]["handle"], "@api_p");

    // Holders: every non-AMM address with a balance, with the chain's balance.
    let holders = ok(&w.db, &format!("/api/credentials/{a}/holders")).await;
    let listed = holders["data"].as_array().unwrap();
    assert_eq!(holders["pagination"]["total"], detail["holders"]);
    assert_eq!(listed.len(), usize::try_from(detail["holders"].as_i64().unwrap()).unwrap());
    for holder in listed {
        let address: Address = holder["address"].as_str().unwrap().parse().unwrap();
        assert_ne!(address, w.chain.deployment.credential_amm);
        let balance = w.chain.token_balance(w.a_token, address).await;
        assert_eq!(holder["balance"], format_units(balance, 18), "{address}");
    }

    // Trades: newest first, paged by cursor, the pool's unsigned deltas.
    let first = ok(&w.db, &format!("/api/credentials/{a}/trades?limit=2")).await;
    let page: Vec<&str> = first["data"].as_array().unwrap().iter().map(|t| t["swap_type"].as_str().unwrap()).collect();
    assert_eq!(page, ["sell", "buy"]);
    assert_eq!(first["data"][1]["usdc_amount"], "39.880000", "40 USDC in, 0.3% fee to the recipient");
    assert_eq!(first["data"][1]["fee_amount"], "0.120000");
    let cursor = first["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    let second = ok(&w.db, &format!("/api/credentials/{a}/trades?limit=2&cursor={cursor}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["trader_address"], format!("{:#x}", w.chain.account(3)));
    assert!(second["pagination"]["next_cursor"].is_null());

    // Candles and 24h metrics recomputed from the chain's own Swap events (SPEC §5).
    let mut expected: std::collections::BTreeMap<i64, Ohlcv> = std::collections::BTreeMap::new();
    for &(_, _, time, usdc_abs, tokens_abs) in &w.a_trades {
        let price = Price::of_trade(usdc_abs, tokens_abs).unwrap();
        let bucket = Timeframe::M1.bucket_start(time);
        let entry = expected.entry(bucket).or_insert((price, price, price, price, U256::ZERO, U256::ZERO, 0));
        entry.1 = entry.1.max(price);
        entry.2 = entry.2.min(price);
        entry.3 = price;
        entry.4 += usdc_abs;
        entry.5 += tokens_abs;
        entry.6 += 1;
    }
    let served = ok(&w.db, &format!("/api/credentials/{a}/chart?timeFrame=1m")).await["data"].clone();
    let served = served.as_array().unwrap();
    assert_eq!(served.len(), expected.len());
    for (candle, (start, (open, high, low, close, vol_usdc, vol_token, n))) in served.iter().zip(&expected) {
        let time = chrono::DateTime::parse_from_rfc3339(candle["time"].as_str().unwrap()).unwrap().timestamp();
        assert_eq!(time, *start);
        assert_eq!(candle["open"], open.to_decimal_string());
        assert_eq!(candle["high"], high.to_decimal_string());
        assert_eq!(candle["low"], low.to_decimal_string());
        assert_eq!(candle["close"], close.to_decimal_string());
        assert_eq!(candle["volume_usdc"], format_units(*vol_usdc, 6));
        assert_eq!(candle["volume_token"], format_units(*vol_token, 18));
        assert_eq!(candle["trade_count"], *n);
    }
    let volume: U256 = w.a_trades.iter().map(|t| t.3).sum();
    assert_eq!(detail["volume_24h"], format_units(volume, 6), "every trade is inside the window");
    let first_price = Price::of_trade(w.a_trades[0].3, w.a_trades[0].4).unwrap();
    let spot_price = Price::spot(reserves.usdcReserves, reserves.tokenReserves);
    let change = spot_price.change_percent_from(first_price);
    let served_change = detail["price_change_24h"].as_f64().unwrap();
    assert!((served_change - change).abs() <= 1e-9 * change.abs(), "{served_change} vs {change}");
    let supply = w.chain.token(w.a_token).totalSupply().call().await.unwrap();
    assert_eq!(detail["market_cap"], format_units(spot_price.value_of(supply), 6));

    // Chart: 1m candles; with gap filling every minute from the first trade, empty ones
    // carrying the previous close.
    let chart = ok(&w.db, &format!("/api/credentials/{a}/chart?timeFrame=1m")).await;
    let candles = chart["data"].as_array().unwrap();
    assert_eq!(candles.len(), 3, "{chart}");
    let volume: f64 = candles.iter().map(|c| c["volume_usdc"].as_str().unwrap().parse::<f64>().unwrap()).sum();
    assert!(volume > 0.0);
    let filled = ok(&w.db, &format!("/api/credentials/{a}/chart?timeFrame=1m&fill=true")).await;
    let filled = filled["data"].as_array().unwrap();
    assert!(filled.len() > candles.len(), "gaps filled: {filled:?}");
    for pair in filled.windows(2) {
        let (t0, t1) = (pair[0]["time"].as_str().unwrap(), pair[1]["time"].as_str().unwrap());
        let (t0, t1) =
            (chrono::DateTime::parse_from_rfc3339(t0).unwrap(), chrono::DateTime::parse_from_rfc3339(t1).unwrap());
        assert_eq!((t1 - t0).num_seconds(), 60, "consecutive minutes");
        if pair[1]["trade_count"] == 0 {
            assert_eq!(pair[1]["open"], pair[0]["close"]);
            assert_eq!(pair[1]["close"], pair[0]["close"]);
        }
    }
    let limited = ok(&w.db, &format!("/api/credentials/{a}/chart?timeFrame=1m&fill=true&limit=2")).await;
    assert_eq!(limited["data"].as_array().unwrap().as_slice(), &filled[filled.len() - 2..], "the newest `limit`");

    // Quotes: exactly the contract's own quoteBuy / quoteSell at the current reserves.
    let buy_in = U256::from(12_345_678u64); // 12.345678 USDC
    let expected_tokens = amm.quoteBuy(w.a.id, buy_in).call().await.unwrap();
    let quote = ok(&w.db, &format!("/api/credentials/{a}/quote?side=buy&amount=12.345678")).await["data"].clone();
    assert_eq!(quote["amount_out"], format_units(expected_tokens, 18));
    assert_eq!(quote["fee"], format_units(buy_in * U256::from(30u64) / U256::from(10_000u64), 6));
    assert_eq!(quote["price_before"], spot.as_str());
    assert!(quote["price_impact"].as_f64().unwrap() > 0.0);
    let sell_in = tokens(3) / U256::from(2u64); // 1.5 tokens
    let expected_usdc = amm.quoteSell(w.a.id, sell_in).call().await.unwrap();
    let quote = ok(&w.db, &format!("/api/credentials/{a}/quote?side=sell&amount=1.5")).await["data"].clone();
    assert_eq!(quote["amount_out"], format_units(expected_usdc, 6));
    for (query, field) in [
        ("side=hold&amount=1", "side"),
        ("amount=1", "side"),
        ("side=buy", "amount"),
        ("side=buy&amount=-1", "amount"),
        ("side=buy&amount=1.0000001", "amount"),
        ("side=buy&amount=1e6", "amount"),
        ("side=buy&amount=0", "amount"),
        ("side=sell&amount=0.000000000000000001", "amount"),
        ("side=buy&amount=999999999999999999999999999999999999999999999999999999999999999999999999999999999", "amount"),
    ] {
        let (status, body) = get(&w.db, &format!("/api/credentials/{a}/quote?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }

    // Portfolio: cost basis and PnL recomputed from alice's own two trades (SPEC §5).
    let alice = w.chain.account(3);
    let base = |text: &Value| -> U256 { text.as_str().unwrap().replace('.', "").parse().unwrap() };
    let all_trades = ok(&w.db, &format!("/api/credentials/{a}/trades")).await["data"].clone();
    let mine: Vec<&Value> =
        all_trades.as_array().unwrap().iter().filter(|t| t["trader_address"] == format!("{alice:#x}")).collect();
    let (sell, buy) = (mine[0], mine[1]);
    let paid = base(&buy["usdc_amount"]) + base(&buy["fee_amount"]);
    let bought = base(&buy["token_amount"]);
    let sold = base(&sell["token_amount"]);
    let removed = paid * sold / bought;
    let proceeds = base(&sell["usdc_amount"]) - base(&sell["fee_amount"]);
    let basis = paid - removed;
    let balance = w.chain.token_balance(w.a_token, alice).await;
    assert_eq!(balance, bought - sold);
    let value = Price::spot(reserves.usdcReserves, reserves.tokenReserves).value_of(balance);
    let portfolio = ok(&w.db, &format!("/api/users/{alice:#x}/portfolio")).await["data"].clone();
    let holding = &portfolio["holdings"][0];
    assert_eq!(holding["market_id"], a.as_str());
    assert_eq!(holding["balance"], format_units(balance, 18));
    assert_eq!(holding["cost_basis"], format_units(basis, 6));
    assert_eq!(holding["value"], format_units(value, 6));
    let realized = i128::try_from(proceeds).unwrap() - i128::try_from(removed).unwrap();
    let unrealized = i128::try_from(value).unwrap() - i128::try_from(basis).unwrap();
    let usdc_text = |v: i128| {
        let text = format_units(U256::from(v.unsigned_abs()), 6);
        if v < 0 { format!("-{text}") } else { text }
    };
    assert_eq!(holding["realized_pnl"], usdc_text(realized));
    assert_eq!(holding["unrealized_pnl"], usdc_text(unrealized));
    assert_eq!(portfolio["total_realized_pnl"], usdc_text(realized));
    let (status, body) = get(&w.db, "/api/users/0x1234/portfolio").await;
    assert_eq!((status, body["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, Value::from("address")));
    for route in ["portfolio", "activity"] {
        let (status, _) = get(&w.db, &format!("/api/users/{:#x}/{route}", Address::repeat_byte(9))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "an address never seen: {route}");
    }

    // Profile and activity of alice; an address never seen is a 404.
    let profile = ok(&w.db, &format!("/api/users/{alice:#x}")).await["data"].clone();
    assert_eq!(profile["stats"]["trades"], 2);
    assert_eq!(profile["stats"]["markets_held"], 1);
    assert_eq!(profile["reputation_score"], 0);
    let (status, _) = get(&w.db, &format!("/api/users/{:#x}", Address::repeat_byte(9))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let activity = ok(&w.db, &format!("/api/users/{alice:#x}/activity")).await["data"].clone();
    let actions: Vec<&str> = activity.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["sell", "buy"], "newest first");
    assert_eq!(activity[0]["token_amount"], sell["token_amount"]);
    let second = ok(&w.db, &format!("/api/users/{alice:#x}/activity?limit=1&offset=1")).await["data"].clone();
    assert_eq!(second[0]["action"], "buy");

    // Trending: most traded first; leaderboard by realized PnL without the AMMs.
    let trending = ok(&w.db, "/api/analytics/trending?status=all").await["data"].clone();
    assert_eq!(trending[0]["credential_id"], a.as_str());
    assert_eq!(trending[1]["persona_id"], p.as_str());
    assert_eq!(trending.as_array().unwrap().len(), 2, "idle markets are not trending");
    let board = ok(&w.db, "/api/analytics/leaderboard").await["data"].clone();
    let amms = [w.chain.deployment.credential_amm, w.chain.deployment.persona_amm].map(|a| format!("{a:#x}"));
    assert!(board.as_array().unwrap().iter().all(|e| !amms.contains(&e["address"].as_str().unwrap().to_owned())));
    let alice_row = board.as_array().unwrap().iter().find(|e| e["address"] == format!("{alice:#x}")).unwrap();
    assert_eq!(alice_row["realized_pnl"], usdc_text(realized));
    let (status, body) = get(&w.db, "/api/analytics/leaderboard?by=luck").await;
    assert_eq!((status, body["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, Value::from("by")));

    // Overview: counts and sums against the chain.
    let overview = ok(&w.db, "/api/analytics/overview").await["data"].clone();
    assert_eq!((overview["total_markets"].clone(), overview["credential_markets"].clone()), (3.into(), 2.into()));
    assert_eq!(overview["persona_markets"], 1);
    assert_eq!(overview["trades_24h"], 4);
    assert_eq!(overview["traders_24h"], 2);
    let mut tvl = U256::ZERO;
    for (market, id) in
        [(MarketType::Credential, w.a.id), (MarketType::Credential, w.b.id), (MarketType::Persona, w.p.id)]
    {
        let amm = MarketAMM::new(w.chain.deployment.amm(market), &w.chain.provider);
        tvl += amm.pools(id).call().await.unwrap().usdcReserves;
    }
    assert_eq!(overview["tvl"], format_units(tvl, 6));

    // Readiness: the database answers and the checkpoint is fresh.
    assert_eq!(ok(&w.db, "/ready").await["data"]["database"], "ok");
    assert_eq!(ok(&w.db, "/health").await["data"]["status"], "ok");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_unknown_things_404() {
    let w = world().await;
    let a = hex(w.a.id);
    for (uri, field) in [
        ("/api/credentials?limit=0".to_owned(), "limit"),
        ("/api/credentials?limit=101".to_owned(), "limit"),
        ("/api/credentials?limit=ten".to_owned(), "limit"),
        ("/api/credentials?offset=-1".to_owned(), "offset"),
        ("/api/credentials?sortBy=rank".to_owned(), "sortBy"),
        ("/api/personas?status=gone".to_owned(), "status"),
        ("/api/credentials/0x1234".to_owned(), "id"),
        ("/api/personas/not-an-id/pool".to_owned(), "id"),
        (format!("/api/credentials/{a}/chart?timeFrame=2m"), "timeFrame"),
        (format!("/api/credentials/{a}/chart?from=yesterday"), "from"),
        (format!("/api/credentials/{a}/chart?from=200&to=100"), "from"),
        (format!("/api/credentials/{a}/chart?limit=1001"), "limit"),
        (format!("/api/credentials/{a}/chart?fill=maybe"), "fill"),
        (format!("/api/credentials/{a}/trades?cursor=abc"), "cursor"),
        (format!("/api/credentials/{a}/holders?limit=-5"), "limit"),
        ("/api/credentials?status=all&search=%00".to_owned(), "search"),
        ("/api/credentials?type=a%0Ab".to_owned(), "type"),
        ("/api/credentials/%FF".to_owned(), "path"),
        ("/api/users/%C3%28/portfolio".to_owned(), "path"),
    ] {
        let (status, body) = get(&w.db, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["success"], false, "{uri}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{uri}");
        assert_eq!(body["error"]["details"]["field"], field, "{uri}: {body}");
    }
    let unknown = hex(B256::repeat_byte(7));
    for uri in [
        format!("/api/credentials/{unknown}"),
        format!("/api/personas/{a}"), // a credential id is not a persona
        format!("/api/credentials/{unknown}/trades"),
        format!("/api/credentials/{unknown}/chart"),
        format!("/api/credentials/{unknown}/holders"),
        format!("/api/credentials/{unknown}/pool"),
        "/api/nothing-here".to_owned(),
        "/nope".to_owned(),
    ] {
        let (status, body) = get(&w.db, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{uri}");
    }
    let app = animoca_api::router(animoca_api::AppState::new(w.db.pool.clone()));
    let response = tower::ServiceExt::oneshot(
        app,
        axum::http::Request::post(format!("/api/credentials/{a}/pool")).body(axum::body::Body::empty()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}
