//! Re-derivation from the log store (issue: re-derive and verify): `rederive`
//! rebuilds exactly what a from-scratch index over RPC builds, with no RPC at
//! all; `verify` finds a row altered by hand; an interrupted `rederive` changes
//! nothing; readers never see a mix of old and new tables; `index` re-derives a
//! database built by an older derivation version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::{primitives::U256, providers::ext::AnvilApi};
use animoca_domain::MarketType;
use animoca_indexer::{
    IndexError, Indexer, IndexerConfig,
    rederive::{self, DERIVATION_VERSION, Options, RederiveError},
};
use animoca_store::fingerprint::fingerprint;
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use tokio_util::sync::CancellationToken;

async fn indexer(chain: &TestChain, db: &TestDb, max_range: u64) -> Indexer {
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    config.max_range = max_range;
    Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap()
}

async fn index_from_scratch(chain: &TestChain) -> TestDb {
    let db = TestDb::migrated().await;
    indexer(chain, &db, 2_000).await.catch_up().await.unwrap();
    db
}

/// Both markets traded, stake moved, a slash voted and executed, a proposal
/// canceled, and a reorg; indexed in small ranges while it happens.
async fn scripted_session(chain: &TestChain, live: &TestDb) {
    let (creator_c, creator_p) = (chain.account(1), chain.account(2));
    let (alice, bob, carol, dave, proposer) =
        (chain.account(3), chain.account(4), chain.account(5), chain.account(6), chain.account(7));
    let credential = MarketSpec::new(MarketType::Credential, "rederive-c");
    let persona = MarketSpec::new(MarketType::Persona, "rederive-p");
    let (c_token, _) = chain.create_market(&credential, creator_c).await;
    chain.create_market(&persona, creator_p).await;
    chain.buy(alice, MarketType::Credential, credential.id, usdc(100), U256::ZERO).await.unwrap();
    chain.buy(bob, MarketType::Persona, persona.id, usdc(30), U256::ZERO).await.unwrap();
    chain.sell(alice, MarketType::Credential, credential.id, c_token, tokens(5), U256::ZERO).await.unwrap();
    chain.transfer_tokens(c_token, alice, carol, tokens(3)).await;
    chain.deposit_stake(creator_c, MarketType::Credential, credential.id, usdc(250)).await.unwrap();
    chain.withdraw_stake(creator_p, MarketType::Persona, persona.id, usdc(50)).await.unwrap();

    let mut live_indexer = indexer(chain, live, 3).await;
    live_indexer.catch_up().await.unwrap();

    // Governance: one slash passes and is executed, one is canceled.
    chain.transfer_tokens(c_token, creator_c, dave, tokens(60_000)).await;
    chain.mine().await;
    let (slash, _) = chain.propose(proposer, MarketType::Credential, credential.id, usdc(100)).await.unwrap();
    chain.cast_vote(dave, slash, 1).await.unwrap();
    chain.cast_vote(carol, slash, 0).await.unwrap();
    let (doomed, _) = chain.propose(proposer, MarketType::Credential, credential.id, usdc(10)).await.unwrap();
    chain.cancel(proposer, doomed).await.unwrap();
    chain.advance_time(3_601).await;
    chain.execute(proposer, slash).await.unwrap();
    live_indexer.catch_up().await.unwrap();

    // A reorg: the indexer sees one branch, then the chain switches to another.
    let snapshot = chain.provider.anvil_snapshot().await.unwrap();
    chain.buy(bob, MarketType::Credential, credential.id, usdc(9), U256::ZERO).await.unwrap();
    chain.create_market(&MarketSpec::new(MarketType::Persona, "orphan"), creator_p).await;
    live_indexer.catch_up().await.unwrap();
    assert!(chain.provider.anvil_revert(snapshot).await.unwrap());
    for i in 0..4 {
        chain.buy(carol, MarketType::Persona, persona.id, usdc(2 + i), U256::ZERO).await.unwrap();
    }
    chain
        .sell(
            bob,
            MarketType::Persona,
            persona.id,
            chain.token_of(MarketType::Persona, persona.id).await.unwrap(),
            tokens(1),
            U256::ZERO,
        )
        .await
        .unwrap();
    live_indexer.catch_up().await.unwrap();
}

async fn execute(db: &TestDb, sql: &str) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&db.pool).await.unwrap().rows_affected()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&db.pool).await.unwrap()
}

/// Hand edits that make the live derived tables wrong in three different ways.
async fn tamper(db: &TestDb) {
    assert_eq!(
        execute(
            db,
            "UPDATE derived.candles SET close = close + 1 WHERE ctid = (SELECT min(ctid) FROM derived.candles)"
        )
        .await,
        1
    );
    assert_eq!(
        execute(db, "DELETE FROM derived.balances WHERE ctid = (SELECT min(ctid) FROM derived.balances)").await,
        1
    );
    assert!(execute(db, "UPDATE derived.market_stats SET volume_24h = 0").await > 0);
}

/// Names of the indexes and constraints of the live derived schema.
async fn schema_objects(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tablename || '.' || indexname FROM pg_indexes WHERE schemaname = 'derived'
         UNION ALL
         SELECT conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
           FROM pg_constraint WHERE connamespace = 'derived'::regnamespace
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rederive_rebuilds_what_a_fresh_index_builds_without_rpc() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let live = TestDb::migrated().await;
    scripted_session(&chain, &live).await;
    let fresh = index_from_scratch(&chain).await;
    let expected = fingerprint(&fresh.pool).await.unwrap();
    assert_eq!(fingerprint(&live.pool).await.unwrap(), expected, "the live index is right to begin with");
    let objects = schema_objects(&live).await;

    // Off-chain data lives beside the derived tables and must survive.
    execute(
        &live,
        "INSERT INTO app.market_metadata (market_type, market_id, description, registered_by)
         SELECT market_type, market_id, 'kept', '\\x01' FROM derived.markets LIMIT 1",
    )
    .await;
    tamper(&live).await;
    assert_ne!(fingerprint(&live.pool).await.unwrap(), expected);

    // No RPC: the node is gone.
    drop(chain);
    let stats = rederive::rederive(&live.pool, None, &CancellationToken::new()).await.unwrap();
    assert_eq!(stats.logs, u64::try_from(count(&live, "SELECT count(*) FROM chain.logs").await).unwrap());
    assert!(stats.swaps >= 8, "{stats:?}");

    assert_eq!(fingerprint(&live.pool).await.unwrap(), expected, "re-derived = indexed from scratch over RPC");
    assert_eq!(schema_objects(&live).await, objects, "same indexes and constraints, same names");
    assert_eq!(count(&live, "SELECT count(*) FROM app.market_metadata WHERE description = 'kept'").await, 1);
    assert_eq!(count(&live, "SELECT count(*) FROM app.change_feed WHERE kind = 'rederive'").await, 1);
    let version: i32 =
        sqlx::query_scalar("SELECT derivation_version FROM derived.meta").fetch_one(&live.pool).await.unwrap();
    assert_eq!(version, DERIVATION_VERSION);
    assert_eq!(
        count(&live, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'derived_%'").await,
        0,
        "no schema left behind"
    );

    // The same with one block per chunk and the merged state rows written after
    // every chunk: every cross-chunk path of the build runs on this small chain.
    tamper(&live).await;
    let tiny = Options { chunk_logs: 1, pending_state_rows: 1 };
    let stats = rederive::rederive_with(&live.pool, None, tiny, &CancellationToken::new()).await.unwrap();
    assert!(stats.logs >= 40, "{stats:?}");
    assert_eq!(fingerprint(&live.pool).await.unwrap(), expected, "one block per chunk");
    let report = rederive::verify_with(&live.pool, None, tiny, &CancellationToken::new()).await.unwrap();
    assert!(report.diffs.is_empty(), "{:?}", report.diffs);
}

#[tokio::test]
async fn rederive_refuses_several_chains_and_a_checkpoint_that_moved() {
    let chain = TestChain::start().await;
    let live = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "guards");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    indexer(&chain, &live, 2_000).await.catch_up().await.unwrap();
    let before = fingerprint(&live.pool).await.unwrap();

    // Another chain's checkpoint: re-deriving would drop that chain's rows.
    execute(&live, "INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES (1, 5, '\\x00')").await;
    let error = rederive::rederive(&live.pool, None, &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(error, RederiveError::SeveralChains(_)), "{error}");
    execute(&live, "DELETE FROM chain.checkpoints WHERE chain_id = 1").await;
    let error = rederive::rederive(&live.pool, Some(5), &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(error, RederiveError::OtherChain { asked: 5, indexed: 31_337 }), "{error}");

    // An indexer commits while the build runs: nothing may be swapped in.
    let mut writer = live.pool.begin().await.unwrap();
    sqlx::query("SELECT block_number FROM chain.checkpoints FOR UPDATE").fetch_one(&mut *writer).await.unwrap();
    let pool = live.pool.clone();
    let running = tokio::spawn(async move { rederive::rederive(&pool, None, &CancellationToken::new()).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&live, "SELECT count(*) FROM pg_locks WHERE NOT granted").await == 0 {
        assert!(std::time::Instant::now() < deadline, "rederive never reached the checkpoint check");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("UPDATE chain.checkpoints SET block_number = block_number + 1").execute(&mut *writer).await.unwrap();
    writer.commit().await.unwrap();
    let error = running.await.unwrap().unwrap_err();
    assert!(matches!(error, RederiveError::CheckpointMoved { .. }), "{error}");
    sqlx::query("UPDATE chain.checkpoints SET block_number = block_number - 1").execute(&live.pool).await.unwrap();
    assert_eq!(fingerprint(&live.pool).await.unwrap(), before, "nothing was swapped in");
    assert_eq!(count(&live, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'derived_%'").await, 0);
}

#[tokio::test]
async fn verify_passes_on_a_clean_database_and_names_an_altered_table() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let live = TestDb::migrated().await;
    scripted_session(&chain, &live).await;
    let before = fingerprint(&live.pool).await.unwrap();

    let report = rederive::verify(&live.pool, None, &CancellationToken::new()).await.unwrap();
    assert!(report.diffs.is_empty(), "{:?}", report.diffs);
    assert!(report.tables >= 12, "compared {} tables", report.tables);

    execute(&live, "UPDATE derived.candles SET close = close + 1 WHERE ctid = (SELECT min(ctid) FROM derived.candles)")
        .await;
    execute(&live, "DELETE FROM derived.swaps WHERE ctid = (SELECT min(ctid) FROM derived.swaps)").await;
    let report = rederive::verify(&live.pool, None, &CancellationToken::new()).await.unwrap();
    let tables: Vec<&str> = report.diffs.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(tables, ["candles", "swaps"]);
    let candles = &report.diffs[0];
    assert_eq!((candles.only_live.len(), candles.only_other.len()), (1, 1), "{candles:?}");
    let swaps = &report.diffs[1];
    assert_eq!((swaps.only_live.len(), swaps.only_other.len()), (0, 1), "the deleted swap is only re-derived");
    assert_ne!(fingerprint(&live.pool).await.unwrap(), before);
    assert_eq!(count(&live, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'derived_%'").await, 0);
}

#[tokio::test]
async fn an_interrupted_rederive_changes_nothing() {
    let chain = TestChain::start().await;
    let live = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "interrupted");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    indexer(&chain, &live, 2_000).await.catch_up().await.unwrap();
    tamper(&live).await;
    let before = fingerprint(&live.pool).await.unwrap();

    let stop = CancellationToken::new();
    stop.cancel();
    let error = rederive::rederive(&live.pool, None, &stop).await.unwrap_err();
    assert!(matches!(error, RederiveError::Interrupted), "{error}");
    assert_eq!(fingerprint(&live.pool).await.unwrap(), before, "the (tampered) live tables are as they were");
    assert_eq!(count(&live, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'derived_%'").await, 0);
    assert_eq!(count(&live, "SELECT count(*) FROM app.change_feed WHERE kind = 'rederive'").await, 0);
}

#[tokio::test]
async fn readers_never_see_a_mix_of_old_and_new_tables() {
    let chain = TestChain::start().await;
    let live = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Persona, "readers");
    chain.create_market(&spec, chain.account(1)).await;
    for i in 0..5 {
        chain.buy(chain.account(2 + i), MarketType::Persona, spec.id, usdc(5 + i as u64), U256::ZERO).await.unwrap();
    }
    indexer(&chain, &live, 2_000).await.catch_up().await.unwrap();
    // Mark the old generation in two tables (one transaction); the re-derived one has neither mark.
    let mark = "BEGIN; UPDATE derived.markets SET holder_count = holder_count + 1000;
                UPDATE derived.pools SET fee_bps = fee_bps + 1000; COMMIT";
    sqlx::raw_sql(mark).execute(&live.pool).await.unwrap();

    // Readers read both tables in separate statements of one transaction, as a
    // request handler would, the whole time. (Marking pauses them: a read
    // committed transaction may see another's commit between its statements.)
    let done = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let pool = live.pool.clone();
        let done = done.clone();
        let gate = gate.clone();
        readers.push(tokio::spawn(async move {
            let (mut old, mut new, mut reads) = (0u32, 0u32, 0u32);
            while !done.load(Ordering::Relaxed) || reads < 20 {
                let _reading = gate.read().await;
                let mut tx = pool.begin().await.unwrap();
                let holders: i32 =
                    sqlx::query_scalar("SELECT holder_count FROM derived.markets").fetch_one(&mut *tx).await.unwrap();
                tokio::task::yield_now().await;
                let fee: i32 =
                    sqlx::query_scalar("SELECT fee_bps FROM derived.pools").fetch_one(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
                match (holders >= 1000, fee >= 1000) {
                    (true, true) => old += 1,
                    (false, false) => new += 1,
                    mixed => panic!("a reader saw a mix of generations: {mixed:?} (holders {holders}, fee {fee})"),
                }
                reads += 1;
                if done.load(Ordering::Relaxed) && new > 0 {
                    break;
                }
            }
            (old, new)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        // Mark again and re-derive again: three swaps under load.
        let marking = gate.write().await;
        sqlx::raw_sql(mark).execute(&live.pool).await.unwrap();
        drop(marking);
        tokio::time::sleep(Duration::from_millis(100)).await;
        rederive::rederive(&live.pool, None, &CancellationToken::new()).await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for reader in readers {
        let (o, n) = reader.await.unwrap();
        old += o;
        new += n;
    }
    assert!(old > 0 && new > 0, "readers saw both generations ({old} old, {new} new reads)");
}

#[tokio::test]
async fn index_re_derives_a_database_built_by_an_older_derivation() {
    let chain = TestChain::start().await;
    let live = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "upgrade");
    chain.create_market(&spec, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    indexer(&chain, &live, 2_000).await.catch_up().await.unwrap();
    let logs_before = count(&live, "SELECT count(*) FROM chain.logs").await;

    // The database was derived by version 0 of the code (and by its old rules).
    execute(&live, "UPDATE derived.meta SET derivation_version = 0").await;
    tamper(&live).await;
    let mut upgraded = indexer(&chain, &live, 2_000).await;
    assert_eq!(count(&live, "SELECT count(*) FROM app.change_feed WHERE kind = 'rederive'").await, 1);
    let version: i32 =
        sqlx::query_scalar("SELECT derivation_version FROM derived.meta").fetch_one(&live.pool).await.unwrap();
    assert_eq!(version, DERIVATION_VERSION);
    assert_eq!(count(&live, "SELECT count(*) FROM chain.logs").await, logs_before, "no log fetched again");

    // It then continues from its checkpoint.
    chain.buy(chain.account(3), MarketType::Credential, spec.id, usdc(4), U256::ZERO).await.unwrap();
    upgraded.catch_up().await.unwrap();
    let fresh = index_from_scratch(&chain).await;
    assert_eq!(fingerprint(&live.pool).await.unwrap(), fingerprint(&fresh.pool).await.unwrap());

    // A database derived by a newer version is refused, not downgraded.
    execute(&live, &format!("UPDATE derived.meta SET derivation_version = {}", DERIVATION_VERSION + 1)).await;
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let error = Indexer::new(live.pool.clone(), chain.provider.clone(), chain.deployment, config).await.err().unwrap();
    assert!(matches!(error, IndexError::Rederive(RederiveError::NewerVersion { .. })), "{error}");

    // So is a database indexed with other contracts.
    execute(&live, &format!("UPDATE derived.meta SET derivation_version = {DERIVATION_VERSION}")).await;
    let mut other = chain.deployment;
    other.stake_vault = chain.account(9);
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let error = Indexer::new(live.pool.clone(), chain.provider.clone(), other, config).await.err().unwrap();
    assert!(matches!(error, IndexError::Rederive(RederiveError::DeploymentChanged { .. })), "{error}");
}
