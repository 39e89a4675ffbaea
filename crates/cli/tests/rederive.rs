//! `animoca-trade rederive` and `verify` as an operator runs them: exit codes,
//! what they print, refusing to race an indexer, and a `rederive` killed (or
//! interrupted) at its last moment leaving the live tables as they were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use alloy::primitives::U256;
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig, Leader};
use animoca_store::fingerprint::fingerprint;
use animoca_test_support::{ChildGuard, MarketSpec, TestChain, TestDb, usdc};

/// `animoca-trade <command>` with only the database configured (no RPC, no contracts).
fn command(db: &TestDb, subcommand: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_animoca-trade"));
    command
        .arg(subcommand)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", db.url());
    command
}

fn run(db: &TestDb, subcommand: &str) -> Output {
    command(db, subcommand).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A chain with a traded market of each type, indexed into a fresh database; the node is stopped after.
async fn indexed() -> TestDb {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    for (market, label) in [(MarketType::Credential, "cli-c"), (MarketType::Persona, "cli-p")] {
        let spec = MarketSpec::new(market, label);
        chain.create_market(&spec, chain.account(1)).await;
        chain.buy(chain.account(2), market, spec.id, usdc(10), U256::ZERO).await.unwrap();
        chain.buy(chain.account(3), market, spec.id, usdc(7), U256::ZERO).await.unwrap();
    }
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();
    db
}

async fn execute(db: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&db.pool).await.unwrap();
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&db.pool).await.unwrap()
}

const ALTER_A_CANDLE: &str =
    "UPDATE derived.candles SET high = high + 1 WHERE ctid = (SELECT min(ctid) FROM derived.candles)";

#[tokio::test]
async fn verify_exits_zero_when_identical_and_names_an_altered_table() {
    let db = indexed().await;
    let clean = run(&db, "verify");
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert!(text(&clean.stdout).contains("derived tables equal a re-derivation"), "{}", text(&clean.stdout));

    execute(&db, ALTER_A_CANDLE).await;
    let altered = run(&db, "verify");
    assert_eq!(altered.status.code(), Some(1), "{}", text(&altered.stderr));
    let stdout = text(&altered.stdout);
    assert!(stdout.contains("DIFFERS derived.candles"), "{stdout}");
    assert!(stdout.contains("only live:") && stdout.contains("only re-derived:"), "{stdout}");
    assert!(!stdout.contains("DIFFERS derived.swaps"), "{stdout}");
    assert!(text(&altered.stderr).contains("derived.candles"), "{}", text(&altered.stderr));

    // `rederive` repairs it; `verify` agrees again.
    let repaired = run(&db, "rederive");
    assert!(repaired.status.success(), "{}", text(&repaired.stderr));
    assert!(text(&repaired.stdout).contains("the new tables are live"), "{}", text(&repaired.stdout));
    assert!(run(&db, "verify").status.success());
}

#[tokio::test]
async fn rederive_refuses_while_an_indexer_holds_the_lock() {
    let db = indexed().await;
    let _indexer = Leader::try_acquire(&db.options, 31_337).await.unwrap().expect("lock is free");
    let refused = run(&db, "rederive");
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("an indexer is running for chain 31337"), "{}", text(&refused.stderr));
}

#[tokio::test]
async fn empty_database_is_reported_not_rederived() {
    let db = TestDb::migrated().await;
    for subcommand in ["rederive", "verify"] {
        let out = run(&db, subcommand);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("nothing is indexed"), "{subcommand}: {}", text(&out.stderr));
    }
}

/// Holds the live `markets` table in a reader's transaction so that `rederive`
/// builds everything and then waits at the swap; stops it there (kill -9, then
/// Ctrl-C), and checks the live tables are exactly as before.
#[tokio::test]
async fn a_rederive_stopped_at_the_swap_leaves_the_live_tables_unchanged() {
    let db = indexed().await;
    execute(&db, ALTER_A_CANDLE).await; // so that a re-derivation would be visible
    let before = fingerprint(&db.pool).await.unwrap();

    for stop in ["kill -9", "Ctrl-C"] {
        let mut reader = db.pool.begin().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.markets").fetch_one(&mut *reader).await.unwrap();
        let mut child =
            ChildGuard::new(command(&db, "rederive").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
        // The build is done when its backend waits for the lock on the live tables.
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&db, "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'").await == 0
        {
            assert!(Instant::now() < deadline, "rederive never reached the swap");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if stop == "kill -9" {
            child.kill();
        } else {
            let status = child.interrupt(Duration::from_secs(10));
            assert!(!status.success(), "an interrupted rederive reports it");
        }
        reader.commit().await.unwrap();
        // The server notices the vanished client at its next read and rolls back.
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&db, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'derived_%'").await > 0 {
            assert!(Instant::now() < deadline, "{stop}: the unfinished generation was not rolled back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fingerprint(&db.pool).await.unwrap(), before, "{stop}: live tables unchanged");
        assert_eq!(count(&db, "SELECT count(*) FROM app.change_feed WHERE kind = 'rederive'").await, 0, "{stop}");
    }

    // A rederive left alone swaps in the repaired tables.
    assert!(run(&db, "rederive").status.success());
    assert_ne!(fingerprint(&db.pool).await.unwrap(), before);
    assert!(run(&db, "verify").status.success());
}
