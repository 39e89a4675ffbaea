//! `animoca-trade index` as an operator runs it: backfill, follow the head, and
//! a standby process that takes over when the active one is killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::U256;
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain, TestDb, usdc};

fn spawn_indexer(chain: &TestChain, db: &TestDb) -> Child {
    let d = chain.deployment;
    Command::new(env!("CARGO_BIN_EXE_animoca-trade"))
        .arg("index")
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
        .env("GOVERNANCE_SLASHING", d.governance.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn swaps(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&db.pool).await.unwrap_or(-1)
}

async fn wait_for_swaps(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while swaps(db).await != n {
        assert!(Instant::now() < deadline, "{} swaps indexed, expected {n}", swaps(db).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(child: &Child, signal: &str) {
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
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
    active.kill().unwrap();
    active.wait().unwrap();
    chain.buy(chain.account(4), MarketType::Persona, spec.id, usdc(7), U256::ZERO).await.unwrap();
    wait_for_swaps(&db, 3).await;

    signal(&standby, "-INT");
    let status = standby.wait().unwrap();
    let mut log = String::new();
    standby.stderr.take().unwrap().read_to_string(&mut log).unwrap();
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
