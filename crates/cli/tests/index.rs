//! `animoca-trade index` as an operator runs it: backfill, follow the head, and
//! a standby process that takes over when the active one is killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::U256;
use animoca_domain::MarketType;
use animoca_test_support::{ChildGuard, MarketSpec, TestChain, TestDb, usdc};

fn spawn_indexer(chain: &TestChain, db: &TestDb) -> ChildGuard {
    spawn_indexer_with(chain, db, &[])
}

fn spawn_indexer_with(chain: &TestChain, db: &TestDb, args: &[&str]) -> ChildGuard {
    index_command(chain, db, args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map(ChildGuard::new).unwrap()
}

/// `animoca-trade index` configured for the test's chain and database, and nothing else.
fn index_command(chain: &TestChain, db: &TestDb, args: &[&str]) -> Command {
    let d = chain.deployment;
    let mut command = Command::new(env!("CARGO_BIN_EXE_animoca-trade"));
    command
        .arg("index")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", db.url())
        .env("RPC_URL", chain.anvil.endpoint())
        .env("CHAIN_ID", "31337")
        .env("START_BLOCK", d.start_block.to_string())
        .env("STAKE_VAULT", d.stake_vault.to_string())
        .env("CREDENTIAL_AMM", d.credential_amm.to_string())
        .env("PERSONA_AMM", d.persona_amm.to_string())
        .env("CREDENTIAL_TOKEN_FACTORY", d.credential_factory.to_string())
        .env("PERSONA_TOKEN_FACTORY", d.persona_factory.to_string())
        .env("GOVERNANCE_SLASHING", d.governance.to_string());
    command
}

async fn swaps(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&db.pool).await.unwrap_or(-1)
}

async fn checkpoint(db: &TestDb) -> Option<u64> {
    let block: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM chain.checkpoints").fetch_optional(&db.pool).await.unwrap_or(None);
    block.map(|b| u64::try_from(b).unwrap())
}

async fn wait_for_checkpoint(db: &TestDb, block: u64, poll: Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint(db).await.is_none_or(|c| c < block) {
        assert!(Instant::now() < deadline, "indexed up to block {block} (at {:?})", checkpoint(db).await);
        tokio::time::sleep(poll).await;
    }
}

async fn wait_for_swaps(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while swaps(db).await != n {
        assert!(Instant::now() < deadline, "{} swaps indexed, expected {n}", swaps(db).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn indexes_follows_and_fails_over_to_a_standby() {
    let chain = TestChain::start().await;
    let db = TestDb::empty().await;
    let spec = MarketSpec::new(MarketType::Persona, "failover");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Persona, spec.id, usdc(10), U256::ZERO).await.unwrap();

    let mut active = spawn_indexer(&chain, &db);
    wait_for_swaps(&db, 1).await;
    let mut standby = spawn_indexer(&chain, &db);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Following the head.
    chain.buy(chain.account(3), MarketType::Persona, spec.id, usdc(5), U256::ZERO).await.unwrap();
    wait_for_swaps(&db, 2).await;

    // The active indexer dies without warning; the standby takes over.
    active.kill();
    chain.buy(chain.account(4), MarketType::Persona, spec.id, usdc(7), U256::ZERO).await.unwrap();
    wait_for_swaps(&db, 3).await;

    let status = standby.interrupt(Duration::from_secs(20));
    let mut log = String::new();
    standby.child().stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "standby exits 0 on Ctrl-C: {log}");
    assert!(log.contains("standing by"), "the standby waited for the lock: {log}");

    let (logs, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (tx_hash, log_index)) FROM chain.logs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(logs, distinct, "nothing stored twice");
    let checkpoint: i64 =
        sqlx::query_scalar("SELECT block_number FROM chain.checkpoints").fetch_one(&db.pool).await.unwrap();
    assert_eq!(u64::try_from(checkpoint).unwrap(), chain.block_number().await);
}

#[tokio::test]
async fn serves_prometheus_metrics_when_asked() {
    let chain = TestChain::start().await;
    let db = TestDb::empty().await;
    let spec = MarketSpec::new(MarketType::Credential, "metrics");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = index_command(&chain, &db, &[])
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(ChildGuard::new)
        .unwrap();
    wait_for_swaps(&db, 1).await;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.contains("animoca_indexer_head_lag_blocks") {
        assert!(Instant::now() < deadline, "metrics: {text}");
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            text = response.text().await.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in [
        "animoca_indexer_logs_total",
        "animoca_indexer_batch_commit_seconds",
        "animoca_indexer_checkpoint_block",
        "animoca_indexer_head_lag_seconds",
        "animoca_rpc_requests_total",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(child.interrupt(Duration::from_secs(20)).success());
}

#[test]
fn index_names_every_missing_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_animoca-trade"))
        .arg("index")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    for name in ["DATABASE_URL", "RPC_URL", "STAKE_VAULT", "GOVERNANCE_SLASHING"] {
        assert!(err.contains(&format!("{name}: is not set")), "{name}: {err}");
    }
}

#[tokio::test]
async fn killed_at_random_points_during_backfill_it_ends_where_a_clean_index_ends() {
    let chain = TestChain::start().await;
    let mut markets = Vec::new();
    for i in 0..3 {
        let market = if i % 2 == 0 { MarketType::Credential } else { MarketType::Persona };
        let spec = MarketSpec::new(market, &format!("crash-{i}"));
        let (token, _) = chain.create_market(&spec, chain.account(1 + i)).await;
        markets.push((spec, token));
    }
    for round in 0..12u64 {
        for (spec, token) in &markets {
            let trader = chain.account(4 + usize::try_from(round % 4).unwrap());
            chain.buy(trader, spec.market, spec.id, usdc(2 + round), U256::ZERO).await.unwrap();
            if round % 3 == 2 {
                let held = chain.token_balance(*token, trader).await;
                chain.sell(trader, spec.market, spec.id, *token, held / U256::from(2), U256::ZERO).await.unwrap();
            }
        }
    }
    let head = chain.block_number().await;

    let db = TestDb::empty().await;
    // Kill -9 as soon as the checkpoint passes a target, at five points spread over
    // the backfill (the process is then inside its next batch or between batches).
    let start = chain.deployment.start_block;
    let mut stops = Vec::new();
    for k in 1..=5u64 {
        let target = start + k * (head - start) / 6;
        // Every other process writes each range's raw logs on a second connection
        // (committed before the range): a kill between the two commits leaves logs
        // above the checkpoint for the next process to remove.
        let parallel = if k % 2 == 1 { "1" } else { "5000" };
        let mut child = spawn_indexer_with(&chain, &db, &["--max-range", "3", "--parallel-log-store-rows", parallel]);
        wait_for_checkpoint(&db, target, Duration::from_millis(2)).await;
        child.kill();
        stops.push(checkpoint(&db).await);
    }
    let midway: std::collections::BTreeSet<_> = stops.iter().flatten().filter(|&&c| c < head).collect();
    assert!(midway.len() >= 2, "killed in the middle of the backfill at least twice: {stops:?} (head {head})");
    let mut last = spawn_indexer_with(&chain, &db, &["--max-range", "3"]);
    wait_for_checkpoint(&db, head, Duration::from_millis(50)).await;
    assert!(last.interrupt(Duration::from_secs(20)).success());

    let clean = TestDb::migrated().await;
    let config = animoca_indexer::IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    animoca_indexer::Indexer::new(clean.pool.clone(), chain.provider.clone(), chain.deployment, config)
        .await
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    let expected = animoca_store::fingerprint::fingerprint(&clean.pool).await.unwrap();
    assert_eq!(animoca_store::fingerprint::fingerprint(&db.pool).await.unwrap(), expected);
}

#[tokio::test]
async fn all_indexes_serves_and_runs_the_jobs_in_one_process() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

    let chain = TestChain::start().await;
    let db = TestDb::empty().await;
    let spec = MarketSpec::new(MarketType::Credential, "all-in-one");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    let ethos = MockServer::start().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/score/address"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "score": 2000, "level": "exemplary" })),
        )
        .mount(&ethos)
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let command = index_command(&chain, &db, &[]);
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    assert_eq!(args, ["index"]);
    let mut all = Command::new(command.get_program());
    all.arg("all").current_dir(std::env::temp_dir()).env_clear();
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            all.env(name, value);
        }
    }
    all.env("PORT", port.to_string())
        .env("JWT_SECRET", "a-test-secret-of-at-least-32-characters")
        .env("ETHOS_API_URL", ethos.uri())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::new(all.spawn().unwrap());

    // Indexed, checked with Ethos by the jobs, and served by the API.
    let deadline = Instant::now() + Duration::from_secs(60);
    let market = loop {
        let body = reqwest::get(format!("http://127.0.0.1:{port}/api/credentials/{}", spec.id)).await.ok();
        if let Some(response) = body
            && response.status() == 200
        {
            let market: serde_json::Value = response.json().await.unwrap();
            if market["data"]["verification_status"] == "verified" {
                break market;
            }
        }
        assert!(Instant::now() < deadline, "the market was never indexed, checked and served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(market["data"]["trades_24h"], 1, "{market}");
    assert!(child.interrupt(Duration::from_secs(30)).success(), "Ctrl-C stops all three cleanly");
}
