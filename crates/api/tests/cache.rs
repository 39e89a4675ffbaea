//! The response cache: hits until the change feed moves, never a stale answer
//! after the indexer committed (checked against the chain), shared between
//! nodes through Redis, read-your-writes for the API's own writes, and the API
//! answering from Postgres when Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use animoca_api::{AppState, auth::issue_token, cache::Cache, router};
use animoca_domain::{MarketType, Price};
use animoca_indexer::{Indexer, IndexerConfig, Leader};
use animoca_test_support::{MarketSpec, TestChain, TestDb, usdc};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn node(db: &TestDb, redis: Option<&str>, stop: &CancellationToken) -> (Router, AppState) {
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = std::num::NonZeroU32::MAX;
    let cache = Cache::start(db.pool.clone(), redis, stop.clone()).await.unwrap();
    // The follower reads the feed's newest id at start.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.version().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cache.version().is_some(), "the cache knows the change-feed version");
    state.cache = Some(cache);
    (router(state.clone()), state)
}

/// Status, `x-cache` header and JSON body of `GET uri`.
async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let source = response.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, source, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_follow_the_change_feed_and_survive_redis_outages() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "cached");
    chain.create_market(&spec, chain.account(1)).await;
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();
    let stop = CancellationToken::new();
    let options = db.options.clone();
    let indexing = stop.clone();
    tokio::spawn(async move {
        let mut leader =
            Leader::acquire(&options, 31_337, Duration::from_millis(100), &indexing).await.unwrap().unwrap();
        if let Err(error) = indexer.run(&mut leader, indexing).await {
            eprintln!("indexer stopped: {error}");
        }
    });
    let redis = "redis://127.0.0.1:6379";
    let (app, state) = node(&db, Some(redis), &stop).await;
    let uri = format!("/api/credentials/{:#x}", spec.id);

    let (status, source, first) = get(&app, &uri, None).await;
    assert_eq!((status, source.as_deref()), (StatusCode::OK, Some("miss")), "{first}");
    let (_, source, again) = get(&app, &uri, None).await;
    assert_eq!(source.as_deref(), Some("hit"));
    assert_eq!(again, first);
    // Errors are not cached; signed-in requests bypass the cache.
    let (status, source, _) = get(&app, "/api/credentials/0x12", None).await;
    assert_eq!((status, source.as_deref()), (StatusCode::BAD_REQUEST, Some("miss")));
    let token = issue_token(&state.auth, chain.account(1)).unwrap().0;
    let (_, source, _) = get(&app, &uri, Some(&token)).await;
    assert_eq!(source, None);

    // A second node shares the entry through Redis (written in the background after the
    // first node's response): its very first answer comes from Redis.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (other, _) = node(&db, Some(redis), &stop).await;
    let (status, source, shared) = get(&other, &uri, None).await;
    assert_eq!((status, source.as_deref()), (StatusCode::OK, Some("redis")), "{shared}");
    assert_eq!(shared, first, "the second node read the first node's entry from Redis");
    assert_eq!(get(&other, &uri, None).await.1.as_deref(), Some("hit"), "then from its own memory");

    // A trade: once the indexer committed it, no node answers the old price.
    let version_before = state.cache.as_ref().unwrap().version();
    let receipt = chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(500), U256::ZERO).await.unwrap();
    let block = receipt.block_number.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while animoca_store::indexing::checkpoint(&db.pool, 31_337).await.unwrap().is_none_or(|c| c.block_number < block) {
        assert!(Instant::now() < deadline, "the indexer reached the trade");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pool = chain.amm(MarketType::Credential).pools(spec.id).call().await.unwrap();
    let expected = Price::spot(pool.usdcReserves, pool.tokenReserves).to_decimal_string();
    // (This node has heard of the commit: the version moved past the one before the trade.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.cache.as_ref().unwrap().version() <= version_before {
        assert!(Instant::now() < deadline, "the change notification arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Concurrent readers right after the change: each sees the new price, or, while
    // one of them recomputes the entry, the previous one marked `stale`.
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let (app, uri) = (app.clone(), uri.clone());
            tokio::spawn(async move { get(&app, &uri, None).await })
        })
        .collect();
    for reader in readers {
        let (status, source, body) = reader.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        if body["data"]["price"] != expected {
            assert_eq!(source.as_deref(), Some("stale"), "an old price is only ever served marked stale: {body}");
            assert_eq!(body["data"]["price"], first["data"]["price"]);
        }
    }
    for app in [&app, &other] {
        // The notification arrives within milliseconds of the commit.
        let started = Instant::now();
        let price = loop {
            let (_, _, body) = get(app, &uri, None).await;
            if body["data"]["price"] != first["data"]["price"] || started.elapsed() > Duration::from_secs(2) {
                break body["data"]["price"].clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(price, expected, "the new price within 2 s of the commit");
    }

    // The API's own writes are visible at once on the node that made them.
    let me = chain.account(3);
    let token = issue_token(&state.auth, me).unwrap().0;
    let patch = Request::patch("/api/users/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "display_name": "Before" }).to_string()))
        .unwrap();
    assert_eq!(app.clone().oneshot(patch).await.unwrap().status(), StatusCode::OK);
    let profile = format!("/api/users/{me:#x}");
    assert_eq!(get(&app, &profile, None).await.2["data"]["display_name"], "Before");
    assert_eq!(get(&app, &profile, None).await.1.as_deref(), Some("hit"));
    let patch = Request::patch("/api/users/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "display_name": "After" }).to_string()))
        .unwrap();
    assert_eq!(app.clone().oneshot(patch).await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&app, &profile, None).await.2["data"]["display_name"], "After");

    // Redis down (nothing listens on that port): reads come from Postgres, /ready says so.
    let (offline, _) = node(&db, Some("redis://127.0.0.1:1"), &stop).await;
    let (status, _, body) = get(&offline, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["price"], expected);
    assert_eq!(get(&offline, &uri, None).await.1.as_deref(), Some("hit"), "the in-process layer still works");
    let (status, _, ready) = get(&offline, "/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(ready["data"]["redis"].as_str().unwrap().starts_with("unreachable"), "{ready}");
    let (_, _, ready) = get(&app, "/ready", None).await;
    assert_eq!(ready["data"]["redis"], "ok", "{ready}");
    stop.cancel();
}
