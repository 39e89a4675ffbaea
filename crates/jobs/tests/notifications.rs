//! Notifications from events indexed off a real chain (anvil + the indexer),
//! and their delivery to webhooks: signed, retried with the same delivery id,
//! a webhook that keeps failing disabled and its owner told.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use alloy_primitives::{Address, U256};
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig};
use animoca_jobs::{
    JobsConfig,
    notify::{self, Notification},
    webhooks,
};
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use common::{eventually, start};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

fn config(ethos: &MockServer) -> JobsConfig {
    let mut config = JobsConfig::new(ethos.uri().parse().unwrap());
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(60);
    config.poll_interval = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_millis(300);
    // The receivers here listen on 127.0.0.1.
    config.webhooks_allow_private = true;
    config
}

/// Indexes what happened on `chain`, then runs the job workers (no Ethos
/// profiles; trades of at least `large_trade` notify holders).
async fn index_then_work(
    chain: &TestChain,
    db: &TestDb,
    large_trade: U256,
) -> (MockServer, CancellationToken, tokio::task::JoinHandle<()>) {
    let settings = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, settings).await.unwrap();
    indexer.catch_up().await.unwrap();
    let ethos = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&ethos).await;
    let mut config = config(&ethos);
    config.large_trade_usdc = large_trade;
    let (shutdown, task) = start(&db.pool, config);
    (ethos, shutdown, task)
}

/// (recipient, kind, title) of every notification but the issuer checks.
async fn notes(pool: &PgPool) -> Vec<(Address, String, String, Value)> {
    let rows: Vec<(Vec<u8>, String, String, Value)> = sqlx::query_as(
        "SELECT address, kind, title, data FROM app.notifications WHERE kind <> 'verification' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(a, k, t, d)| (Address::from_slice(&a), k, t, d)).collect()
}

#[tokio::test]
async fn governance_and_large_trades_notify_the_people_concerned_once() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let db = TestDb::migrated().await;
    let market = MarketSpec::new(MarketType::Credential, "notify");
    let creator = chain.account(1);
    let (token, _) = chain.create_market(&market, creator).await;
    let (carol, dave, proposer, whale) = (chain.account(5), chain.account(6), chain.account(7), chain.account(8));
    chain.transfer_tokens(token, creator, dave, tokens(60_000)).await;
    chain.transfer_tokens(token, creator, carol, tokens(1_000)).await;
    chain.mine().await;
    let id = market.id;
    let (executed, _) = chain.propose(proposer, MarketType::Credential, id, usdc(100)).await.unwrap();
    chain.cast_vote(dave, executed, 1).await.unwrap();
    let (canceled, _) = chain.propose(proposer, MarketType::Credential, id, usdc(10)).await.unwrap();
    chain.cancel(proposer, canceled).await.unwrap();
    chain.advance_time(3_601).await;
    chain.execute(proposer, executed).await.unwrap();
    let (defeated, _) = chain.propose(proposer, MarketType::Credential, id, usdc(5)).await.unwrap();
    chain.cast_vote(carol, defeated, 1).await.unwrap(); // far below quorum
    let (succeeded, _) = chain.propose(proposer, MarketType::Credential, id, usdc(6)).await.unwrap();
    chain.cast_vote(dave, succeeded, 1).await.unwrap(); // quorum and a majority, never executed
    chain.advance_time(3_601).await;
    // One small trade and one large one.
    chain.buy(whale, MarketType::Credential, id, usdc(50), U256::ZERO).await.unwrap();
    chain.buy(whale, MarketType::Credential, id, usdc(500), U256::ZERO).await.unwrap();
    chain.mine().await;
    let (_ethos, shutdown, task) = index_then_work(&chain, &db, usdc(100)).await;
    let expected = 4 + 8 + 1 + 3;
    let got = eventually("the notifications", async || {
        let got = notes(&db.pool).await;
        (got.len() >= expected).then_some(got)
    })
    .await;
    // A few more rounds change nothing: each event is notified once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(notes(&db.pool).await.len(), expected, "{got:#?}");

    let count = |who: Address, kind: &str| got.iter().filter(|n| n.0 == who && n.1 == kind).count();
    assert_eq!(count(creator, "proposal_created"), 4);
    assert_eq!(count(creator, "proposal_outcome"), 4);
    assert_eq!(count(proposer, "proposal_outcome"), 4);
    assert_eq!(count(creator, "stake_slashed"), 1);
    let outcomes: Vec<&str> = got
        .iter()
        .filter(|n| n.0 == proposer && n.1 == "proposal_outcome")
        .map(|n| n.3["status"].as_str().unwrap())
        .collect();
    for status in ["executed", "canceled", "defeated", "succeeded"] {
        assert!(outcomes.contains(&status), "{status}: {outcomes:?}");
    }
    let slashed = got.iter().find(|n| n.1 == "stake_slashed").unwrap();
    assert_eq!(slashed.2, "Your stake was slashed by 100 USDC");
    assert_eq!(slashed.3["slashed_amount"], "100.000000");
    assert_eq!(slashed.3["market"]["proposal_id"], executed.to_string());
    // The large trade reaches the holders, not the trader; the small one nobody.
    let told: Vec<Address> = got.iter().filter(|n| n.1 == "large_trade").map(|n| n.0).collect();
    assert_eq!(told.len(), 3);
    for holder in [creator, carol, dave] {
        assert!(told.contains(&holder), "{holder} told");
    }
    let trade = got.iter().find(|n| n.1 == "large_trade").unwrap();
    assert_eq!(
        trade.3["usdc_amount"], "498.500000",
        "the pool's USDC side (after the 0.3 % fee), exact as the API serves amounts"
    );
    assert_eq!(trade.2, "Someone bought 498.5 USDC of a credential you hold");
    assert_eq!(trade.3["trader_address"], format!("{whale:#x}"));

    // Each was also published for Socket.IO's user:<address> rooms.
    let feed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.change_feed WHERE kind = 'notification' AND payload->>'kind' <> 'verification'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(feed, expected as i64);

    // Reputation on demand, from the same chain state.
    let job = animoca_jobs::maintenance::enqueue_tick(&db.pool, animoca_jobs::reputation::KIND, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let result: Value = eventually("reputation computed", async || {
        sqlx::query_scalar::<_, Option<Value>>("SELECT result FROM app.jobs WHERE id = $1 AND state = 'done'")
            .bind(job)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .flatten()
    })
    .await;
    assert_eq!((result["markets"].as_i64(), result["users"].as_i64()), (Some(1), Some(5)), "{result}");
    let user_score = async |who: Address| -> i32 {
        sqlx::query_scalar("SELECT reputation_score FROM app.users WHERE address = $1")
            .bind(who.as_slice())
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    // dave: 2 votes (20); carol: 1 vote (10); the whale: 2 trades (2); the proposer: nothing.
    assert_eq!(user_score(dave).await, 20);
    assert_eq!(user_score(carol).await, 10);
    assert_eq!(user_score(whale).await, 2);
    assert_eq!(user_score(proposer).await, 0);
    // The creator: 40 per decimal digit of the stake beyond the first, minus 100 for the slash.
    let stake: String = sqlx::query_scalar("SELECT current_stake::text FROM stakes").fetch_one(&db.pool).await.unwrap();
    let whole = stake.parse::<u128>().unwrap() / 1_000_000;
    let stake_points = ((whole.to_string().len() as i32 - 1) * 40).min(200);
    assert_eq!(user_score(creator).await, (stake_points - 100).max(0), "stake {stake}");
    // The market: its stake, its slash, its 2 trades and its 2 distinct voters.
    let (market_score, components): (i32, Value) = sqlx::query_as(
        "SELECT m.reputation_score, h.components FROM app.market_metadata m
           JOIN app.reputation_history h ON h.kind = 'credential' AND h.subject = m.market_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(market_score, (stake_points - 100 + 2 + 20).max(0), "{components}");
    assert_eq!((components["activity"].as_i64(), components["governance"].as_i64()), (Some(2), Some(20)));
    // Changed scores bump the change version (the API's caches refresh).
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM app.change_feed WHERE kind = 'reputation'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(published, 1);
    // Unchanged scores add no history rows.
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM app.reputation_history").fetch_one(&db.pool).await.unwrap()
    };
    let before = rows().await;
    animoca_jobs::reputation::recompute(&db.pool).await.unwrap();
    assert_eq!(rows().await, before);
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM app.change_feed WHERE kind = 'reputation'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(published, 1, "nothing changed, nothing published");
    shutdown.cancel();
    task.await.unwrap();
}

async fn register(pool: &PgPool, owner: Address, url: &str, events: &[&str]) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO app.webhooks (address, url, secret, events) VALUES ($1, $2, 'whsec_test', $3) RETURNING id",
    )
    .bind(owner.as_slice())
    .bind(url)
    .bind(events.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn notify_one(pool: &PgPool, to: Address, kind: &'static str, key: &str) {
    let mut tx = pool.begin().await.unwrap();
    notify::store(
        &mut tx,
        &Notification {
            recipient: to,
            kind,
            title: format!("title {key}"),
            body: "body".to_owned(),
            data: json!({ "key": key }),
            idempotency_key: key.to_owned(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn webhooks_get_signed_deliveries_retried_with_one_id_and_are_disabled_when_they_keep_failing() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    let receiver = MockServer::start().await;
    // The good hook rate-limits once (Retry-After: 1), fails once, then accepts.
    Mock::given(method("POST"))
        .and(path("/good"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/good"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/good"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(3)
        .mount(&receiver)
        .await;
    Mock::given(method("POST")).and(path("/bad")).respond_with(ResponseTemplate::new(500)).mount(&receiver).await;
    let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
    register(&db.pool, alice, &format!("{}/good", receiver.uri()), &["large_trade"]).await;
    // Alice's second hook wants another kind: it gets nothing.
    register(&db.pool, alice, &format!("{}/other", receiver.uri()), &["stake_slashed"]).await;
    let bad = register(&db.pool, bob, &format!("{}/bad", receiver.uri()), &[]).await;
    let (shutdown, task) = start(&db.pool, config(&ethos));

    let sent = std::time::Instant::now();
    notify_one(&db.pool, alice, "large_trade", "a1").await;
    let delivered = eventually("alice's delivery", async || {
        sqlx::query_as::<_, (String, i32, Option<i32>)>("SELECT status, attempts, last_status FROM app.webhook_deliveries d JOIN app.webhooks w ON w.id = d.webhook_id WHERE w.address = $1")
            .bind(alice.as_slice())
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .filter(|d| d.0 == "delivered")
    })
    .await;
    assert_eq!(delivered, ("delivered".to_owned(), 3, Some(204)));
    assert!(sent.elapsed() >= Duration::from_secs(1), "the receiver's Retry-After: 1 was honoured");
    let requests: Vec<_> =
        receiver.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/good").collect();
    assert_eq!(requests.len(), 3);
    let header = |r: &wiremock::Request, name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let delivery = header(&requests[0], "X-Animoca-Delivery");
    for request in &requests {
        assert_eq!(header(request, "X-Animoca-Delivery"), delivery, "the same delivery id on every retry");
        assert_eq!(header(request, "X-Animoca-Event"), "large_trade");
        let timestamp: i64 = header(request, "X-Animoca-Timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
        assert_eq!(header(request, "X-Animoca-Signature"), webhooks::signature("whsec_test", timestamp, &request.body));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["id"], delivery.as_str());
        assert_eq!(body["event"], "large_trade");
        assert_eq!(body["notification"]["title"], "title a1");
        assert_eq!(body["notification"]["data"]["key"], "a1");
    }
    assert!(receiver.received_requests().await.unwrap().iter().all(|r| r.url.path() != "/other"));

    // Bob's hook fails every attempt of three deliveries: disabled, Bob told.
    for key in ["b1", "b2", "b3"] {
        notify_one(&db.pool, bob, "proposal_created", key).await;
    }
    let (active, failures) = eventually("bob's hook disabled", async || {
        sqlx::query_as::<_, (bool, i32)>("SELECT active, failure_count FROM app.webhooks WHERE id = $1")
            .bind(bad)
            .fetch_one(&db.pool)
            .await
            .ok()
            .filter(|w| !w.0)
    })
    .await;
    assert_eq!((active, failures), (false, 3));
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.webhook_deliveries WHERE webhook_id = $1 AND status = 'failed'")
            .bind(bad)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(failed, 3);
    let attempts = receiver.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/bad").count();
    assert_eq!(attempts, 3 * 6, "six attempts per delivery");
    let told: Vec<(String, Value)> =
        sqlx::query_as("SELECT kind, data FROM app.notifications WHERE address = $1 AND kind = 'webhook_disabled'")
            .bind(bob.as_slice())
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].1["webhook_id"], bad.to_string());
    // A disabled hook gets no more deliveries.
    let before = receiver.received_requests().await.unwrap().len();
    notify_one(&db.pool, bob, "proposal_created", "b4").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), before);
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.jobs WHERE kind = 'webhook_delivery' AND state = 'dead'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(dead, 3, "failed deliveries are dead letters");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_and_redirects_not_followed() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    let receiver = MockServer::start().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/moved"))
        .respond_with(ResponseTemplate::new(307).insert_header("Location", format!("{}/inside", target.uri())))
        .mount(&receiver)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
    register(&db.pool, alice, &format!("{}/moved", receiver.uri()), &[]).await;
    let (shutdown, task) = start(&db.pool, config(&ethos));
    notify_one(&db.pool, alice, "large_trade", "r1").await;
    eventually("the redirect answered", async || {
        (!receiver.received_requests().await.unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(target.received_requests().await.unwrap().is_empty(), "the redirect was not followed");
    shutdown.cancel();
    task.await.unwrap();

    // Without the development switch, a loopback target is refused for good.
    register(&db.pool, bob, &format!("{}/hook", target.uri()), &[]).await;
    let mut strict = config(&ethos);
    strict.webhooks_allow_private = false;
    let (shutdown, task) = start(&db.pool, strict);
    notify_one(&db.pool, bob, "large_trade", "r2").await;
    let (job, error) = eventually("the delivery refused", async || {
        sqlx::query_as::<_, (i64, Option<String>)>(
            "SELECT j.id, j.last_error FROM app.jobs j JOIN app.webhook_deliveries d ON d.delivery_id = (j.payload->>'delivery_id')::uuid
              JOIN app.webhooks w ON w.id = d.webhook_id WHERE w.address = $1 AND j.state = 'dead'",
        )
        .bind(bob.as_slice())
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .and_then(|(id, error)| Some((id, error?)))
    })
    .await;
    assert!(error.contains("non-public address"), "{error}");
    assert!(target.received_requests().await.unwrap().is_empty());
    let status: String = sqlx::query_scalar(
        "SELECT d.status FROM app.webhook_deliveries d JOIN app.webhooks w ON w.id = d.webhook_id WHERE w.address = $1",
    )
    .bind(bob.as_slice())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "failed");
    // Retrying the dead letter makes the delivery pending again.
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(animoca_jobs::outbox::retry_dead(&db.pool, None, Some(job)).await.unwrap(), 1);
    let status: String = sqlx::query_scalar(
        "SELECT d.status FROM app.webhook_deliveries d JOIN app.webhooks w ON w.id = d.webhook_id WHERE w.address = $1",
    )
    .bind(bob.as_slice())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "pending");
}

#[tokio::test]
async fn the_webhook_client_resolves_names_to_public_addresses_only() {
    let target = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let port = target.address().port();
    // A name that resolves to loopback is refused when the client connects.
    let error = webhooks::client(false).unwrap().post(format!("http://localhost:{port}/")).send().await.unwrap_err();
    assert!(format!("{error:?}").contains("non-public address"), "{error:?}");
    assert!(target.received_requests().await.unwrap().is_empty());
    // With the development switch it goes through.
    let answer = webhooks::client(true).unwrap().post(format!("http://localhost:{port}/")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn a_burst_of_large_trades_is_notified_over_several_rounds() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let market = MarketSpec::new(MarketType::Persona, "burst");
    let creator = chain.account(1);
    chain.create_market(&market, creator).await;
    // More large trades than one round notifies (100).
    let trades = 105;
    for n in 0..trades {
        chain.buy(chain.account(2 + n % 3), MarketType::Persona, market.id, usdc(2), U256::ZERO).await.unwrap();
    }
    let (_ethos, shutdown, task) = index_then_work(&chain, &db, usdc(1)).await;
    let notified = eventually("every large trade notified", async || {
        let notified: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT data->>'tx_hash') FROM app.notifications WHERE kind = 'large_trade'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (notified == trades as i64).then_some(notified)
    })
    .await;
    assert_eq!(notified, 105);
    // Each to the market's holders but its trader: the creator and the two other traders.
    let per_trade: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM app.notifications WHERE kind = 'large_trade' GROUP BY data->>'tx_hash'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(per_trade.iter().all(|n| (1..=3).contains(n)), "{per_trade:?}");
    shutdown.cancel();
    task.await.unwrap();
}
