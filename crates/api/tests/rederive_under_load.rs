//! The API keeps answering while `rederive` swaps the derived tables under
//! request load, and never answers with a mix of old and new tables (issue 11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::primitives::U256;
use animoca_api::{AppState, router};
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig, rederive};
use animoca_test_support::{MarketSpec, TestChain, TestDb, usdc};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_detail_answers_through_rederives_and_never_mixes_generations() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Persona, "under-load");
    chain.create_market(&spec, chain.account(1)).await;
    for i in 0..4u64 {
        chain.buy(chain.account(2 + i as usize), MarketType::Persona, spec.id, usdc(5 + i), U256::ZERO).await.unwrap();
    }
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config)
        .await
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    // Mark the live generation in two tables the detail reads (one transaction);
    // a re-derived generation has neither mark.
    let mark = "BEGIN; UPDATE derived.markets SET holder_count = holder_count + 1000;
                UPDATE derived.pools SET fee_bps = fee_bps + 1000; COMMIT";
    sqlx::raw_sql(mark).execute(&db.pool).await.unwrap();

    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = std::num::NonZeroU32::MAX; // load, not abuse
    let app = router(state);
    let uri = format!("/api/personas/{:#x}", spec.id);
    let done = Arc::new(AtomicBool::new(false));
    // Marking pauses the clients: a mark is a data change, not a generation swap.
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (app, uri, done, gate) = (app.clone(), uri.clone(), done.clone(), gate.clone());
        clients.push(tokio::spawn(async move {
            let (mut old, mut new) = (0u32, 0u32);
            while !done.load(Ordering::Relaxed) {
                let _reading = gate.read().await;
                let response = app.clone().oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(status, StatusCode::OK, "{body}");
                let holders = body["data"]["holders"].as_i64().unwrap();
                let fee = body["data"]["pool"]["fee_bps"].as_i64().unwrap();
                match (holders >= 1000, fee >= 1000) {
                    (true, true) => old += 1,
                    (false, false) => new += 1,
                    mixed => panic!("a response mixed generations: {mixed:?} (holders {holders}, fee {fee})"),
                }
            }
            (old, new)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let stats = rederive::rederive(&db.pool, None, &CancellationToken::new()).await.unwrap();
        // Under load the swap waits for in-flight requests only, never for a lock cycle.
        assert!(stats.swap < Duration::from_secs(5), "swap took {:?}", stats.swap);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let marking = gate.write().await;
        sqlx::raw_sql(mark).execute(&db.pool).await.unwrap();
        drop(marking);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for client in clients {
        let (o, n) = client.await.unwrap();
        old += o;
        new += n;
    }
    assert!(old > 0 && new > 0, "clients saw both generations ({old} old, {new} new responses)");
}
