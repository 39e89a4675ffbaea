//! The job system against real Postgres and Redis, with Ethos faked by a local
//! HTTP server that answers in Ethos' documented shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use alloy_primitives::{Address, B256};
use animoca_jobs::{JobsConfig, dispatch::JobRef};
use animoca_test_support::TestDb;
use apalis::prelude::TaskSink;
use common::{eventually, start, stop};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

fn config(ethos: &MockServer) -> JobsConfig {
    let mut config = JobsConfig::new(format!("{}/api/v2", ethos.uri()).parse().expect("mock URL"));
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(100);
    config.poll_interval = Duration::from_millis(100);
    config.lease = Duration::from_secs(10);
    config.shutdown_grace = Duration::from_millis(300);
    config.node = format!("test-{}", uuid_like());
    config
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}

fn owner(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn market_id(n: u8) -> B256 {
    B256::repeat_byte(n)
}

/// A market as the indexer writes it, created by `owner(n)`.
async fn add_market(pool: &PgPool, n: u8) {
    insert_market(pool, 0, n).await;
}

async fn insert_market(pool: &PgPool, market_type: i16, n: u8) {
    sqlx::query(
        "INSERT INTO markets (market_type, market_id, token_address, creator_address, factory_address, amm_address,
                              token_name, token_symbol, initial_stake, chain_id, created_block, created_block_hash,
                              created_tx_hash, created_log_index, created_at)
         VALUES ($1, $2, $3, $4, $5, $5, 'T', 'T', 1000, 31337, 1, $2, $2, $6, now())",
    )
    .bind(market_type)
    .bind(market_id(n).as_slice())
    .bind(Address::repeat_byte(n ^ if market_type == 0 { 0x80 } else { 0x40 }).as_slice())
    .bind(owner(n).as_slice())
    .bind(Address::ZERO.as_slice())
    .bind(i32::from(market_type) * 1000 + i32::from(n))
    .execute(pool)
    .await
    .expect("insert market");
}

async fn ethos_answers(server: &MockServer, n: u8, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/api/v2/score/address"))
        .and(query_param("address", format!("{:#x}", owner(n))))
        .and(header("X-Ethos-Client", "animoca-trade"))
        .respond_with(response)
        .mount(server)
        .await;
}

fn score(score: u32, level: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "score": score, "level": level }))
}

/// The market's (status, reason, ethos score).
async fn status(pool: &PgPool, n: u8) -> Option<(String, Option<String>, Option<i32>)> {
    sqlx::query_as(
        "SELECT verification_status, verification_reason, ethos_score FROM app.market_metadata
          WHERE market_type = 0 AND market_id = $1 AND ethos_checked_at IS NOT NULL",
    )
    .bind(market_id(n).as_slice())
    .fetch_optional(pool)
    .await
    .expect("read status")
}

async fn job(pool: &PgPool, n: u8) -> Option<(String, i32, Option<String>)> {
    sqlx::query_as("SELECT state, attempts, last_error FROM app.jobs WHERE idempotency_key = $1")
        .bind(format!("ethos_issuer:0:{:#x}", market_id(n)))
        .fetch_optional(pool)
        .await
        .expect("read job")
}

async fn requests_for(server: &MockServer, n: u8) -> usize {
    let wanted = format!("address={:#x}", owner(n));
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains(&wanted)))
        .count()
}

#[tokio::test]
async fn new_markets_are_checked_with_ethos_and_their_owners_notified() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    ethos_answers(&ethos, 1, score(1500, "known")).await;
    ethos_answers(&ethos, 2, score(500, "untrusted")).await;
    ethos_answers(&ethos, 3, ResponseTemplate::new(404).set_body_json(json!({ "message": "not found" }))).await;
    ethos_answers(&ethos, 4, score(1200, "neutral")).await;
    // Owner 4 proved personhood: verified despite the score.
    sqlx::query(
        "INSERT INTO app.worldid_nullifiers (action, nullifier_hash, persona_id, address, verification_level)
         VALUES ('verify-persona', '0x01', $1, $2, 'orb')",
    )
    .bind(market_id(99).as_slice())
    .bind(owner(4).as_slice())
    .execute(&db.pool)
    .await
    .expect("nullifier");
    for n in 1..=4 {
        add_market(&db.pool, n).await;
    }
    let (shutdown, task) = start(&db.pool, config(&ethos));

    let verified = eventually("market 1 checked", async || status(&db.pool, 1).await).await;
    assert_eq!(verified.0, "verified");
    assert_eq!(verified.2, Some(1500));
    assert_eq!(verified.1.as_deref(), Some("Ethos score 1500 (known) is at least 1400"));
    let rejected = eventually("market 2 checked", async || status(&db.pool, 2).await).await;
    assert_eq!((rejected.0.as_str(), rejected.2), ("rejected", Some(500)));
    let unknown = eventually("market 3 checked", async || status(&db.pool, 3).await).await;
    assert_eq!((unknown.0.as_str(), unknown.1.as_deref(), unknown.2), ("pending", Some("no Ethos profile yet"), None));
    let world_id = eventually("market 4 checked", async || status(&db.pool, 4).await).await;
    assert_eq!(world_id.0, "verified");
    assert_eq!(world_id.1.as_deref(), Some("the owner proved personhood with World ID"));

    // A new market later is checked too; the old ones are not checked again.
    add_market(&db.pool, 5).await;
    ethos_answers(&ethos, 5, score(2700, "renowned")).await;
    let late = eventually("market 5 checked", async || status(&db.pool, 5).await).await;
    assert_eq!(late.0, "verified");
    for n in 1..=5 {
        assert_eq!(requests_for(&ethos, n).await, 1, "market {n} checked once");
        assert_eq!(job(&db.pool, n).await.map(|j| j.0), Some("done".to_owned()));
    }

    // Each owner is told the outcome: stored, and on the change feed for user:<address>.
    let notes: Vec<(Vec<u8>, String, Value)> =
        sqlx::query_as("SELECT address, title, data FROM app.notifications ORDER BY address")
            .fetch_all(&db.pool)
            .await
            .expect("notifications");
    assert_eq!(notes.len(), 5);
    assert_eq!(notes[0].0, owner(1).as_slice());
    assert_eq!(notes[0].1, "Your credential market is verified");
    assert_eq!(notes[1].2["status"], "rejected");
    let feed: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM app.change_feed WHERE kind = 'notification' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("feed");
    assert_eq!(feed.len(), 5);
    assert!(feed.iter().any(|p| p["recipient"] == format!("{:#x}", owner(2)) && p["data"]["status"] == "rejected"));

    // Every check is kept, with the provider's answer.
    let checks: i64 = sqlx::query_scalar("SELECT count(*) FROM app.verifications WHERE provider = 'ethos'")
        .fetch_one(&db.pool)
        .await
        .expect("checks");
    assert_eq!(checks, 5);
    stop(shutdown, task).await;
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_and_permanent_ones_are_dead_letters() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    // Market 1: two 500s, a 429, then the answer.
    Mock::given(method("GET"))
        .and(query_param("address", format!("{:#x}", owner(1))))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({ "message": "boom" })))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&ethos)
        .await;
    Mock::given(method("GET"))
        .and(query_param("address", format!("{:#x}", owner(1))))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&ethos)
        .await;
    Mock::given(method("GET"))
        .and(query_param("address", format!("{:#x}", owner(1))))
        .respond_with(score(1400, "known"))
        .with_priority(3)
        .mount(&ethos)
        .await;
    // Market 2: Ethos is down for good. Market 3: Ethos refuses the request (our fault).
    ethos_answers(&ethos, 2, ResponseTemplate::new(503)).await;
    ethos_answers(&ethos, 3, ResponseTemplate::new(400).set_body_json(json!({ "message": "bad address" }))).await;
    // Market 4: a 200 of another shape is not trusted.
    ethos_answers(&ethos, 4, ResponseTemplate::new(200).set_body_json(json!({ "data": [] }))).await;
    for n in 1..=4 {
        add_market(&db.pool, n).await;
    }
    let started = std::time::Instant::now();
    let (shutdown, task) = start(&db.pool, config(&ethos));

    let (state, attempts, last_error) =
        eventually("market 1 done", async || job(&db.pool, 1).await.filter(|j| j.0 == "done")).await;
    assert_eq!((state.as_str(), attempts, last_error), ("done", 4, None));
    assert!(started.elapsed() >= Duration::from_secs(1), "the 429's Retry-After: 1 was honoured");
    assert_eq!(status(&db.pool, 1).await.map(|s| s.0), Some("verified".to_owned()));

    let dead = eventually("market 2 dead", async || job(&db.pool, 2).await.filter(|j| j.0 == "dead")).await;
    assert_eq!(dead.1, 8, "every attempt of the verification queue was spent");
    assert!(dead.2.as_deref().is_some_and(|e| e.contains("503")), "{dead:?}");
    assert_eq!(requests_for(&ethos, 2).await, 8);
    let refused = eventually("market 3 dead", async || job(&db.pool, 3).await.filter(|j| j.0 == "dead")).await;
    assert_eq!(refused.1, 1, "a 400 is not retried");
    assert!(refused.2.as_deref().is_some_and(|e| e.contains("400") && e.contains("bad address")), "{refused:?}");
    let odd = eventually("market 4 dead", async || job(&db.pool, 4).await.filter(|j| j.0 == "dead")).await;
    assert!(odd.2.as_deref().is_some_and(|e| e.contains("unexpected body")), "{odd:?}");
    assert_eq!(status(&db.pool, 2).await, None, "no outcome recorded for a failed check");

    let stats = animoca_jobs::outbox::stats(&db.pool).await.expect("stats");
    let verification = stats.iter().find(|s| s.queue == "verification").expect("verification queue");
    assert_eq!((verification.done, verification.dead, verification.pending), (1, 3, 0));

    // Ethos is back: a retried dead letter goes through.
    ethos.reset().await;
    ethos_answers(&ethos, 2, score(900, "questionable")).await;
    let retried = animoca_jobs::outbox::retry_dead(&db.pool, Some("verification"), None).await.expect("retry");
    assert_eq!(retried, 3);
    let done = eventually("market 2 done", async || job(&db.pool, 2).await.filter(|j| j.0 == "done")).await;
    assert_eq!(done.1, 1, "a retried dead letter starts a fresh attempt budget");
    assert_eq!(status(&db.pool, 2).await.map(|s| s.0), Some("pending".to_owned()));
    stop(shutdown, task).await;
}

/// A private redis-server we can restart (the shared one serves other tests).
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[tokio::test]
async fn a_redis_restart_loses_no_job() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/score/address"))
        .respond_with(score(1600, "known").set_delay(Duration::from_millis(150)))
        .mount(&ethos)
        .await;
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let mut config = config(&ethos);
    config.redis_url = Some(redis.url());
    config.concurrency = 2;
    for n in 1..=30 {
        add_market(&db.pool, n).await;
    }
    let (shutdown, task) = start(&db.pool, config);
    eventually("some checks done", async || {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM app.jobs WHERE state = 'done'").fetch_one(&db.pool).await.ok()?;
        (done >= 3).then_some(())
    })
    .await;
    // Redis dies with jobs queued and running, and comes back empty.
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = PrivateRedis::start(port);

    eventually("every market checked", async || {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM app.jobs WHERE state = 'done'").fetch_one(&db.pool).await.ok()?;
        (done == 30).then_some(())
    })
    .await;
    for n in 1..=30 {
        assert_eq!(status(&db.pool, n).await.map(|s| s.0), Some("verified".to_owned()), "market {n}");
    }
    // Each owner told once, however often a job was handed out.
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM app.notifications").fetch_one(&db.pool).await.expect("n");
    assert_eq!(notes, 30);
    stop(shutdown, task).await;
}

#[tokio::test]
async fn a_job_delivered_twice_runs_once() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    ethos_answers(&ethos, 1, score(1500, "known").set_delay(Duration::from_millis(400))).await;
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let mut config = config(&ethos);
    config.redis_url = Some(redis.url());
    let prefix = format!("{}:jobs", animoca_store::redis_namespace(&db.pool).await.unwrap());
    add_market(&db.pool, 1).await;
    let (shutdown, task) = start(&db.pool, config);
    let (id, _) = eventually("job running", async || {
        sqlx::query_as::<_, (i64, String)>("SELECT id, state FROM app.jobs WHERE state = 'running'")
            .fetch_optional(&db.pool)
            .await
            .ok()
            .flatten()
    })
    .await;
    // The queue delivers it again while it runs, and after it is done.
    let conn = redis::Client::open(redis.url()).expect("url").get_connection_manager().await.expect("redis");
    let mut storage = apalis_redis::RedisStorage::<JobRef>::new(conn)
        .with_config(apalis_redis::Config::default().queue(format!("{prefix}:verification")));
    storage.push(JobRef { id }).await.expect("push duplicate");
    storage.push(JobRef { id }).await.expect("push duplicate");
    eventually("job done", async || job(&db.pool, 1).await.filter(|j| j.0 == "done")).await;
    storage.push(JobRef { id }).await.expect("push duplicate");
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert_eq!(requests_for(&ethos, 1).await, 1, "Ethos asked once");
    assert_eq!(job(&db.pool, 1).await.map(|j| j.1), Some(1), "one attempt");
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM app.notifications").fetch_one(&db.pool).await.expect("n");
    assert_eq!(notes, 1);

    // Pruning drops what apalis keeps in Redis about finished tasks.
    let prune = animoca_jobs::maintenance::enqueue_tick(&db.pool, animoca_jobs::maintenance::PRUNE, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let result = eventually("prune done", async || {
        sqlx::query_scalar::<_, Option<Value>>("SELECT result FROM app.jobs WHERE id = $1 AND state = 'done'")
            .bind(prune)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .flatten()
    })
    .await;
    assert!(result["redis_tasks"].as_u64().unwrap() >= 3, "the check and its duplicates: {result}");
    stop(shutdown, task).await;
}

async fn shutdown_during_a_job(redis: Option<String>) {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    // Slower than the shutdown grace: the job cannot finish in time.
    ethos_answers(&ethos, 1, score(1500, "known").set_delay(Duration::from_secs(5))).await;
    add_market(&db.pool, 1).await;
    let configured = |ethos: &MockServer| {
        let mut config = config(ethos);
        config.redis_url = redis.clone();
        config
    };
    let (shutdown, task) = start(&db.pool, configured(&ethos));
    eventually("job running", async || job(&db.pool, 1).await.filter(|j| j.0 == "running")).await;
    let stopping = std::time::Instant::now();
    stop(shutdown, task).await;
    assert!(stopping.elapsed() < Duration::from_secs(4), "shutdown waited {:?}", stopping.elapsed());
    let (state, attempts, _) = job(&db.pool, 1).await.expect("job");
    assert_eq!((state.as_str(), attempts), ("pending", 1), "returned to the queue at once");

    // The next worker finishes it.
    ethos.reset().await;
    ethos_answers(&ethos, 1, score(1500, "known")).await;
    let (shutdown, task) = start(&db.pool, configured(&ethos));
    let done = eventually("job done", async || job(&db.pool, 1).await.filter(|j| j.0 == "done")).await;
    assert_eq!(done.1, 2);
    assert_eq!(status(&db.pool, 1).await.map(|s| s.0), Some("verified".to_owned()));
    stop(shutdown, task).await;
}

#[tokio::test]
async fn shutdown_during_a_job_leaves_it_retriable() {
    shutdown_during_a_job(None).await;
}

#[tokio::test]
async fn shutdown_during_a_job_leaves_it_retriable_with_redis() {
    let redis = PrivateRedis::start(free_port());
    shutdown_during_a_job(Some(redis.url())).await;
}

#[tokio::test]
async fn cron_prunes_old_rows_and_rechecks_unverified_issuers() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    ethos_answers(&ethos, 1, score(1000, "neutral")).await;
    add_market(&db.pool, 1).await;
    // An old change-feed row and a fresh one.
    sqlx::query(
        "INSERT INTO app.change_feed (kind, payload, created_at, version)
         VALUES ('trade', '{}', now() - interval '30 days', 1), ('trade', '{}', now(), 2)",
    )
    .execute(&db.pool)
    .await
    .expect("feed rows");
    let mut config = config(&ethos);
    config.maintenance_cron = "* * * * * *".to_owned();
    config.recheck_cron = "* * * * * *".to_owned();
    let (shutdown, task) = start(&db.pool, config);
    eventually("old change-feed rows pruned", async || {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM app.change_feed WHERE kind = 'trade'")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (left == 1).then_some(())
    })
    .await;
    // The market stays pending (score 1000 < 1400): each tick checks it again.
    eventually("market re-checked", async || (requests_for(&ethos, 1).await >= 2).then_some(())).await;
    let result = eventually("a prune job done", async || {
        sqlx::query_scalar::<_, Value>("SELECT result FROM app.jobs WHERE kind = 'prune' AND state = 'done' LIMIT 1")
            .fetch_optional(&db.pool)
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(result["change_feed_rows"].is_u64(), "{result}");
    stop(shutdown, task).await;
}

/// A persona market of `owner(n)`, as the indexer writes it.
async fn add_persona(pool: &PgPool, n: u8) {
    insert_market(pool, 1, n).await;
}

/// What `POST /api/personas/{id}/verify/worldcoin` queues.
async fn queue_proof(pool: &PgPool, n: u8, nullifier: &str) -> i64 {
    queue_proof_with(pool, n, nullifier, "0x1aa8b8f3b2d2de5ff452c0e1a83e29d6bf46fb83ef35dc5957121ff3d3698a11").await
}

async fn queue_proof_with(pool: &PgPool, n: u8, nullifier: &str, proof: &str) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    animoca_store::jobs::enqueue(
        &mut conn,
        &animoca_store::jobs::NewJob {
            queue: animoca_store::jobs::VERIFICATION_QUEUE,
            kind: animoca_store::jobs::WORLDID_PERSONA,
            payload: json!({
                "persona_id": format!("{:#x}", market_id(n)),
                "address": format!("{:#x}", owner(n)),
                "nullifier_hash": nullifier,
                "merkle_root": "0x2264a66d162d7893e12ea8e3c072c51e785bc085ad655f64c10c1a61e00f0bc2",
                "proof": proof,
                "verification_level": "orb",
                "signal_hash": "0x00c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a4",
            }),
            idempotency_key: format!("worldid_persona:{n}:{nullifier}"),
            max_attempts: animoca_store::jobs::VERIFICATION_MAX_ATTEMPTS,
            run_after: None,
        },
    )
    .await
    .unwrap()
    .unwrap()
}

async fn job_by_id(pool: &PgPool, id: i64) -> (String, i32, Option<Value>) {
    sqlx::query_as("SELECT state, attempts, result FROM app.jobs WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

/// `dev` verifies World ID offline against the devnet's Worldcoin stand-in: a
/// proof is accepted, an all-zero one refused with Worldcoin's `invalid_proof`.
#[tokio::test]
async fn world_id_works_offline_against_the_devnet_stand_in() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    let stand_in_stop = tokio_util::sync::CancellationToken::new();
    let stand_in = animoca_devnet::worldcoin::serve(stand_in_stop.clone()).await.unwrap();
    for n in 1..=2 {
        add_persona(&db.pool, n).await;
    }
    let mut config = config(&ethos);
    config.worldid.base_url = stand_in.parse().unwrap();
    config.worldid.app_id = Some(animoca_devnet::worldcoin::DEV_APP_ID.to_owned());
    let (shutdown, task) = start(&db.pool, config);

    let accepted = queue_proof(&db.pool, 1, "0xc1").await;
    let refused = queue_proof_with(&db.pool, 2, "0xc2", &format!("0x{}", "0".repeat(64))).await;
    for (job, expected) in [(accepted, "verified"), (refused, "rejected")] {
        let (_, attempts, result) =
            eventually("proof done", async || Some(job_by_id(&db.pool, job).await).filter(|j| j.0 == "done")).await;
        let result = result.unwrap();
        assert_eq!((attempts, result["status"].as_str()), (1, Some(expected)), "{result}");
        if expected == "rejected" {
            assert!(result["reason"].as_str().unwrap().contains("invalid_proof"), "{result}");
        }
    }
    stop(shutdown, task).await;
    stand_in_stop.cancel();
}

#[tokio::test]
async fn world_id_proofs_are_verified_once_per_human() {
    use wiremock::matchers::body_partial_json;

    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    let worldcoin = MockServer::start().await;
    // No Ethos profiles: only World ID can verify these personas.
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&ethos).await;
    let success = |nullifier: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "uses": 1, "action": "verify-persona", "max_uses": 1,
            "nullifier_hash": nullifier, "created_at": "2026-12-06T12:00:00.000Z", "verification_level": "orb",
        }))
    };
    // Human A: a 500 first, then accepted. Used again for persona 2: the provider accepts
    // (newer versions allow reuse), we refuse.
    Mock::given(method("POST"))
        .and(path("/api/v2/verify/app_staging_test"))
        .and(body_partial_json(json!({ "nullifier_hash": "0xa1", "action": "verify-persona" })))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({ "code": "internal_error", "detail": "x", "attribute": null })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&worldcoin)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/verify/app_staging_test"))
        .and(body_partial_json(json!({ "nullifier_hash": "0xa1", "action": "verify-persona" })))
        .respond_with(success("0xa1"))
        .with_priority(2)
        .mount(&worldcoin)
        .await;
    // Human B: rate limited first (Retry-After honoured), then the proof is found bad.
    Mock::given(method("POST"))
        .and(path("/api/v2/verify/app_staging_test"))
        .and(body_partial_json(json!({ "nullifier_hash": "0xb2" })))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&worldcoin)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/verify/app_staging_test"))
        .and(body_partial_json(json!({ "nullifier_hash": "0xb2" })))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "invalid_proof", "detail": "The provided proof is invalid and it cannot be verified.", "attribute": null,
        })))
        .mount(&worldcoin)
        .await;
    for n in 1..=3 {
        add_persona(&db.pool, n).await;
    }
    let mut config = config(&ethos);
    config.worldid.base_url = worldcoin.uri().parse().unwrap();
    config.worldid.app_id = Some("app_staging_test".to_owned());
    let (shutdown, task) = start(&db.pool, config);

    let first = queue_proof(&db.pool, 1, "0xa1").await;
    let (state, attempts, result) =
        eventually("persona 1 proof done", async || Some(job_by_id(&db.pool, first).await).filter(|j| j.0 == "done"))
            .await;
    assert_eq!((state.as_str(), attempts), ("done", 2), "the 500 was retried");
    assert_eq!(result.unwrap()["status"], "verified");
    let holder: Vec<u8> =
        sqlx::query_scalar("SELECT persona_id FROM app.worldid_nullifiers WHERE nullifier_hash = '0xa1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(holder, market_id(1).as_slice());
    // The persona's market is verified by World ID (Ethos has no profile).
    let market =
        eventually("persona 1 re-checked", async || status_of(&db.pool, 1, 1).await.filter(|s| s == "verified")).await;
    assert_eq!(market, "verified");

    // Same human, second persona: refused although the provider accepted.
    let second = queue_proof(&db.pool, 2, "0xa1").await;
    let (_, _, result) =
        eventually("persona 2 proof done", async || Some(job_by_id(&db.pool, second).await).filter(|j| j.0 == "done"))
            .await;
    let result = result.unwrap();
    assert_eq!(result["status"], "rejected");
    assert!(result["reason"].as_str().unwrap().contains("one human, one persona"), "{result}");
    // A bad proof is rejected with the provider's code (after the 429, whose
    // Retry-After is honoured), not retried again.
    let queued = std::time::Instant::now();
    let third = queue_proof(&db.pool, 3, "0xb2").await;
    let (_, attempts, result) =
        eventually("persona 3 proof done", async || Some(job_by_id(&db.pool, third).await).filter(|j| j.0 == "done"))
            .await;
    assert_eq!(attempts, 2, "the 429, then the answer");
    assert!(queued.elapsed() >= Duration::from_secs(1), "Retry-After: 1 honoured");
    assert!(result.unwrap()["reason"].as_str().unwrap().contains("invalid_proof"));

    let outcomes: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT market_id, status FROM app.verifications WHERE provider = 'worldid' ORDER BY market_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.1.as_str()).collect();
    assert_eq!(statuses, ["verified", "rejected", "rejected"]);
    let nullifiers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.worldid_nullifiers").fetch_one(&db.pool).await.unwrap();
    assert_eq!(nullifiers, 1, "one nullifier, one persona");
    let told: i64 = sqlx::query_scalar("SELECT count(*) FROM app.notifications WHERE title LIKE 'World ID%'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(told, 3);
    stop(shutdown, task).await;
}

async fn status_of(pool: &PgPool, market_type: i16, n: u8) -> Option<String> {
    sqlx::query_scalar(
        "SELECT verification_status FROM app.market_metadata WHERE market_type = $1 AND market_id = $2 AND ethos_checked_at IS NOT NULL",
    )
    .bind(market_type)
    .bind(market_id(n).as_slice())
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_queue_runs_at_most_its_concurrency_at_once() {
    let db = TestDb::migrated().await;
    let ethos = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(score(1500, "known").set_delay(Duration::from_millis(150)))
        .mount(&ethos)
        .await;
    for n in 1..=6 {
        add_market(&db.pool, n).await;
    }
    let mut config = config(&ethos);
    config.concurrency = 8;
    config.queue_concurrency = vec![(animoca_jobs::Queue::Verification, 1)];
    assert_eq!(config.concurrency_of(animoca_jobs::Queue::Verification), 1);
    assert_eq!(config.concurrency_of(animoca_jobs::Queue::Webhooks), 8);
    let (shutdown, task) = start(&db.pool, config);
    let mut most = 0;
    loop {
        let (running, done): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'done') FROM app.jobs",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        most = most.max(running);
        if done == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(most, 1, "one verification at a time");
    stop(shutdown, task).await;
}
