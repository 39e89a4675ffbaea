//! Indexer benchmark (issue 3, "Benchmark"): builds (or reuses from `bench/.cache/`) an
//! anvil chain with many markets and swaps, backfills it from scratch into a fresh
//! database with the real `Indexer`, then measures head latency (block with a trade
//! mined → swap committed in `derived.swaps`).
//!
//! ```text
//! cargo run --release -p animoca-bench --bin indexer_backfill -- --swaps 50000
//! ```
//!
//! Not a test: it prints numbers (see docs/benchmarks.md).

/// mimalloc: glibc malloc kept ~2x the live memory resident (per-thread arenas).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, U256},
    providers::{Provider, ProviderBuilder},
    rpc::client::ClientBuilder,
    signers::local::PrivateKeySigner,
    transports::{TransportError, TransportFut},
};
use alloy_json_rpc::{RequestPacket, ResponsePacket};
use animoca_bench::chain::{
    AnvilProcess, BLOCK_SPACING_SECS, CHAIN_ID, ChainMeta, DEV_KEY, batcher::SwapBatcher, cache_files, wait_receipt,
};
use animoca_chain::{DeployParams, bindings::MockUSDC, deploy::send};
use animoca_devnet::{Driver, MarketSpec, usdc};
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig, Leader};
use anyhow::{Context, bail, ensure};
use clap::Parser;
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "Indexer backfill and head-latency benchmark")]
struct Args {
    /// Markets (half credential, half persona).
    #[arg(long, env = "BENCH_MARKETS", default_value_t = 100)]
    markets: usize,
    /// Swaps to put on the chain (rounded up to whole churn transactions).
    #[arg(long, env = "BENCH_SWAPS", default_value_t = 1_000_000)]
    swaps: u64,
    /// Swaps per churn transaction (= per block).
    #[arg(long, default_value_t = 200)]
    swaps_per_tx: u64,
    /// Markets touched by one churn transaction.
    #[arg(long, default_value_t = 10)]
    markets_per_tx: usize,
    /// SwapBatcher instances (distinct traders).
    #[arg(long, default_value_t = 12)]
    batchers: usize,
    /// Churn transactions in flight before waiting for receipts.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    /// Where built chains are cached.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.cache"))]
    cache_dir: PathBuf,
    /// Build the chain even if a cached one exists.
    #[arg(long)]
    rebuild: bool,
    /// Database to (re)create and index into.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/animoca_bench")]
    database_url: String,
    /// Largest block range per eth_getLogs / transaction (IndexerConfig::max_range).
    #[arg(long, default_value_t = 2_000)]
    max_range: u64,
    /// Logs per range the indexer aims for (IndexerConfig::target_logs).
    #[arg(long, default_value_t = 30_000)]
    target_logs: usize,
    /// Ranges fetched ahead (IndexerConfig::fetch_ahead).
    #[arg(long, default_value_t = 1)]
    fetch_ahead: usize,
    /// Single-trade blocks mined for the head-latency measurement (0 skips it).
    #[arg(long, default_value_t = 200)]
    head_blocks: usize,
    /// Head blocks mined first and reported apart (right after a backfill the first
    /// block slides the 24h window over the whole synthetic history, and autovacuum
    /// works through the freshly loaded tables).
    #[arg(long, default_value_t = 20)]
    warmup_blocks: usize,
    /// Indexer poll interval while following the head, ms (IndexerConfig default: 100).
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// Only build (or check) the cached chain; no indexing.
    #[arg(long)]
    build_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    animoca_bench::init_tracing();
    let args = Args::parse();
    ensure!(args.markets >= 2 && args.markets_per_tx >= 1 && args.batchers >= 1, "bad sizes");
    let rounds = (args.swaps_per_tx / (2 * args.markets_per_tx as u64)).max(1);
    let swaps_per_tx = 2 * rounds * args.markets_per_tx as u64;
    let churn_txs = args.swaps.div_ceil(swaps_per_tx);
    let key = format!(
        "chain-m{}-s{}-t{}-k{}-b{}",
        args.markets, args.swaps, swaps_per_tx, args.markets_per_tx, args.batchers
    );
    println!("== parameters");
    println!(
        "markets {} | swaps requested {} | {} swaps per churn tx ({} markets x {} rounds x buy+sell) | {} churn txs | {} batchers (traders)",
        args.markets, args.swaps, swaps_per_tx, args.markets_per_tx, rounds, churn_txs, args.batchers
    );
    println!(
        "indexer: max_range {} blocks, target {} logs per range, {} fetched ahead, confirmations 0, poll {} ms | database {}",
        args.max_range, args.target_logs, args.fetch_ahead, args.poll_ms, args.database_url
    );

    std::fs::create_dir_all(&args.cache_dir).with_context(|| format!("create {}", args.cache_dir.display()))?;
    let (state_file, meta_file) = cache_files(&args.cache_dir, &key);
    // A chain just built is indexed from the live anvil (reloading a multi-GB dump is slow);
    // its state is dumped to the cache when that anvil stops at the end.
    let (live, meta) = if args.rebuild || !state_file.exists() || !meta_file.exists() {
        let (anvil, meta) = build_chain(&args, rounds, churn_txs, &state_file).await?;
        (Some(anvil), meta)
    } else {
        println!("== chain: reusing {}", state_file.display());
        (None, serde_json::from_slice::<ChainMeta>(&std::fs::read(&meta_file)?)?)
    };
    println!(
        "chain: {} swaps in {} churn txs, head block {}, built in {:.0} s, state file {:.0} MB",
        meta.swaps,
        meta.churn_txs,
        meta.head_block,
        meta.build_secs,
        std::fs::metadata(&state_file).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0)
    );
    if args.build_only {
        if let Some(anvil) = live {
            dump(anvil, &state_file, &meta_file, &meta).await?;
        }
        return Ok(());
    }

    let built = live.is_some();
    let anvil = match live {
        Some(anvil) => anvil,
        None => {
            let load_started = Instant::now();
            let anvil = AnvilProcess::spawn(&["--load-state".into(), state_file.display().to_string()]).await?;
            println!("anvil loaded the state in {:.1} s", load_started.elapsed().as_secs_f64());
            anvil
        }
    };
    let plain = ProviderBuilder::new().connect_http(anvil.url.parse()?).erased();
    let head = plain.get_block_number().await?;
    ensure!(head >= meta.head_block, "chain has head {head}, expected {}", meta.head_block);

    let options = PgConnectOptions::from_str(&args.database_url)?;
    animoca_store::recreate_database(&options).await?;
    let pool = animoca_store::connect(options.clone(), 8).await?;
    animoca_store::migrate(&pool).await?;

    let rpc_times = RpcTimes::default();
    let client = ClientBuilder::default().layer(TimingLayer(rpc_times.clone())).http(anvil.url.parse()?);
    let indexer_provider = ProviderBuilder::new().connect_client(client).erased();
    let mut config = IndexerConfig::new(CHAIN_ID, meta.start_block, 0);
    config.max_range = args.max_range;
    config.target_logs = args.target_logs;
    config.fetch_ahead = args.fetch_ahead;
    config.poll_interval = Duration::from_millis(args.poll_ms);
    let mut indexer = Indexer::new(pool.clone(), indexer_provider, meta.deployment(), config).await?;

    // Step timings the indexer and store record (histograms), read back as sums.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let timings = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    // ---- backfill from scratch
    println!("== backfill (blocks {}..={head})", meta.start_block);
    let cpu_before = CpuSample::take(anvil.pid);
    rpc_times.reset();
    let started = Instant::now();
    let last = indexer.catch_up().await?;
    let wall = started.elapsed();
    let cpu_after = CpuSample::take(anvil.pid);
    ensure!(last == Some(head), "backfill stopped at {last:?}, head is {head}");
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM chain.logs").fetch_one(&pool).await?;
    let swaps: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&pool).await?;
    let candles: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.candles").fetch_one(&pool).await.unwrap_or(-1);
    let secs = wall.as_secs_f64();
    let rss_backfill = animoca_bench::vm_hwm_kb("self");
    println!("logs stored      {logs}");
    println!("swaps            {swaps}");
    println!("candles          {candles}");
    println!("wall time        {secs:.1} s");
    println!("logs/s (events)  {:.0}", logs as f64 / secs);
    println!("swaps/s          {:.0}", swaps as f64 / secs);
    println!(
        "peak RSS         {:.0} MB (VmHWM of this process: indexer + bench; anvil is a separate process, peak {:.0} MB, not counted)",
        rss_backfill as f64 / 1024.0,
        animoca_bench::vm_hwm_kb(&anvil.pid.to_string()) as f64 / 1024.0
    );
    println!("-- profile of the backfill");
    println!("RPC wall time by method (inside the indexer, HTTP round trip incl. anvil's work):");
    let mut rpc_total = Duration::ZERO;
    for (method, (count, took)) in rpc_times.snapshot() {
        rpc_total += took;
        println!("  {method:<24} {count:>7} calls {:>8.1} s", took.as_secs_f64());
    }
    println!(
        "  total RPC {:.1} s = {:.0}% of wall; the rest ({:.1} s) is decode + derive + Postgres writes",
        rpc_total.as_secs_f64(),
        100.0 * rpc_total.as_secs_f64() / secs,
        secs - rpc_total.as_secs_f64()
    );
    let cpu = cpu_after.minus(&cpu_before);
    println!(
        "CPU seconds during the backfill (2 cores = {:.0} core-s available): bench/indexer {:.1}, anvil {:.1}, postgres {:.1}",
        2.0 * secs,
        cpu.own,
        cpu.anvil,
        cpu.postgres
    );

    let after_backfill = StepTimes::read(&timings);
    after_backfill.print("backfill", &StepTimes::default());

    // ---- head latency
    if args.head_blocks > 0 {
        head_latency(&args, &meta, &anvil, &pool, &options, indexer).await?;
        StepTimes::read(&timings).print("head following", &after_backfill);
    }
    println!("peak RSS (whole run) {:.0} MB", animoca_bench::vm_hwm_kb("self") as f64 / 1024.0);
    pool.close().await;
    if built {
        dump(anvil, &state_file, &meta_file, &meta).await?;
    } else {
        anvil.stop().await;
    }
    Ok(())
}

/// Sums and counts of the indexer's timing histograms (`…_seconds{phase|step}`).
#[derive(Default)]
struct StepTimes(std::collections::BTreeMap<String, (f64, f64)>);

impl StepTimes {
    fn read(handle: &metrics_exporter_prometheus::PrometheusHandle) -> Self {
        let mut times = std::collections::BTreeMap::<String, (f64, f64)>::new();
        for line in handle.render().lines() {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            for (suffix, slot) in [("_sum", 0), ("_count", 1)] {
                let Some((name, labels)) = series.split_once('{') else { continue };
                if let Some(metric) = name.strip_suffix(suffix)
                    && metric.starts_with("animoca_indexer_")
                    && metric.ends_with("_seconds")
                {
                    let entry = times.entry(format!("{metric}{{{labels}")).or_default();
                    if slot == 0 { entry.0 = value } else { entry.1 = value }
                }
            }
        }
        Self(times)
    }

    fn print(&self, label: &str, before: &StepTimes) {
        println!("-- time by step ({label}; from the indexer's histograms)");
        for (series, (sum, count)) in &self.0 {
            let (sum0, count0) = before.0.get(series).copied().unwrap_or_default();
            let (sum, count) = (sum - sum0, count - count0);
            if count > 0.0 {
                println!("  {series:<70} {sum:>8.2} s over {count:>6.0} = {:>8.2} ms each", 1000.0 * sum / count);
            }
        }
    }
}

/// Stops a freshly built chain's anvil so it writes `--dump-state`, then records the metadata.
async fn dump(anvil: AnvilProcess, state_file: &Path, meta_file: &Path, meta: &ChainMeta) -> anyhow::Result<()> {
    let started = Instant::now();
    anvil.terminate_and_wait().await?;
    ensure!(state_file.exists(), "anvil wrote no state to {}", state_file.display());
    std::fs::write(meta_file, serde_json::to_vec_pretty(meta)?)?;
    println!("anvil state dumped to the cache in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Deploys, creates the markets and batchers, sends the churn transactions, and
/// dumps anvil's state.
async fn build_chain(
    args: &Args,
    rounds: u64,
    churn_txs: u64,
    state_file: &Path,
) -> anyhow::Result<(AnvilProcess, ChainMeta)> {
    println!("== building the chain ({} churn txs)", churn_txs);
    let started = Instant::now();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // Old enough that every built block lies in the past.
    let genesis = now - (churn_txs + 1_000) * BLOCK_SPACING_SECS - 86_400;
    let _ = std::fs::remove_file(state_file);
    let anvil = AnvilProcess::spawn(&[
        "--timestamp".into(),
        genesis.to_string(),
        "--dump-state".into(),
        state_file.display().to_string(),
    ])
    .await?;
    let signer = PrivateKeySigner::from_str(DEV_KEY)?;
    let owner = signer.address();
    let url: reqwest_url::Url = anvil.url.parse()?;
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::new(signer.clone()))
        .connect_http(url.clone())
        .erased();
    provider
        .raw_request::<_, serde_json::Value>("anvil_setBlockTimestampInterval".into(), (BLOCK_SPACING_SECS,))
        .await?;

    let deployment = animoca_chain::deploy(&provider, owner, &DeployParams::devnet(owner)).await?;
    let driver = Driver { provider: provider.clone(), deployment };
    let mut markets = Vec::new();
    for i in 0..args.markets {
        let (market, prefix) = if i % 2 == 0 { (MarketType::Credential, "c") } else { (MarketType::Persona, "p") };
        let spec = MarketSpec::new(market, &format!("{prefix}{i:03} bench"));
        let (token, _) = driver.create_market(&spec, owner).await?;
        markets.push((market, spec.id, token));
    }
    println!("  deployed and created {} markets in {:.1} s", markets.len(), started.elapsed().as_secs_f64());

    let mut batchers = Vec::new();
    for _ in 0..args.batchers {
        let address = SwapBatcher::deploy(&provider, deployment.usdc).await?.address().to_owned();
        send("mint USDC to batcher", MockUSDC::new(deployment.usdc, &provider).mint(address, usdc(10_000_000))).await?;
        batchers.push(address);
    }

    // Groups of markets of one type (one AMM per churn call).
    let mut groups: Vec<(Address, Vec<B256>, Vec<Address>)> = Vec::new();
    for market_type in [MarketType::Credential, MarketType::Persona] {
        let of_type: Vec<_> = markets.iter().filter(|(t, _, _)| *t == market_type).collect();
        for chunk in of_type.chunks(args.markets_per_tx) {
            groups.push((
                deployment.amm(market_type),
                chunk.iter().map(|(_, id, _)| *id).collect(),
                chunk.iter().map(|(_, _, token)| *token).collect(),
            ));
        }
    }

    // Fire churn transactions with explicit nonce/gas (no estimation), await receipts per window.
    let fire = ProviderBuilder::new()
        .disable_recommended_fillers()
        .wallet(EthereumWallet::new(signer))
        .connect_http(url)
        .erased();
    let mut nonce = fire.get_transaction_count(owner).await?;
    let churn_started = Instant::now();
    let mut swaps = 0u64;
    let mut sent = 0u64;
    while sent < churn_txs {
        let window = (churn_txs - sent).min(args.inflight as u64);
        let mut hashes = Vec::with_capacity(window as usize);
        for _ in 0..window {
            let (amm, ids, tokens) = &groups[(sent as usize) % groups.len()];
            let batcher = SwapBatcher::new(batchers[(sent as usize) % batchers.len()], &fire);
            // 5..=50 USDC per buy, varying by transaction.
            let per_buy = usdc(5 + (sent * 7919) % 46);
            let tx_swaps = 2 * rounds * ids.len() as u64;
            let request = batcher
                .churn(*amm, ids.clone(), tokens.clone(), U256::from(rounds), per_buy)
                .into_transaction_request()
                .with_from(owner)
                .with_nonce(nonce)
                .with_chain_id(CHAIN_ID)
                .with_gas_limit(90_000 * tx_swaps + 1_000_000)
                .with_max_fee_per_gas(1_000_000_000)
                .with_max_priority_fee_per_gas(0);
            let pending = fire.send_transaction(request).await?;
            hashes.push(*pending.tx_hash());
            nonce += 1;
            sent += 1;
            swaps += tx_swaps;
        }
        for hash in hashes {
            let receipt = wait_receipt(&fire, hash).await?;
            ensure!(receipt.status(), "churn transaction {hash} reverted");
        }
        if sent % 500 < args.inflight as u64 || sent == churn_txs {
            let secs = churn_started.elapsed().as_secs_f64();
            println!("  {sent}/{churn_txs} churn txs, {swaps} swaps, {:.0} swaps/s", swaps as f64 / secs);
        }
    }
    let head_block = fire.get_block_number().await?;
    let build_secs = started.elapsed().as_secs_f64();
    let meta = ChainMeta {
        usdc: deployment.usdc,
        stake_vault: deployment.stake_vault,
        credential_amm: deployment.credential_amm,
        persona_amm: deployment.persona_amm,
        credential_factory: deployment.credential_factory,
        persona_factory: deployment.persona_factory,
        governance: deployment.governance,
        start_block: deployment.start_block,
        markets: markets.iter().map(|(t, id, token)| (t.as_u8(), *id, *token)).collect(),
        batchers,
        swaps,
        churn_txs,
        head_block,
        build_secs,
    };
    println!("  built {swaps} swaps up to block {head_block} in {build_secs:.0} s");
    Ok((anvil, meta))
}

/// Head latency: the indexer follows the head (CONFIRMATIONS=0); single-trade blocks
/// are mined one at a time; latency = trade's receipt seen → swap visible in `derived.swaps`.
async fn head_latency(
    args: &Args,
    meta: &ChainMeta,
    anvil: &AnvilProcess,
    pool: &PgPool,
    options: &PgConnectOptions,
    mut indexer: Indexer,
) -> anyhow::Result<()> {
    println!(
        "== head latency ({} warm-up + {} measured single-trade blocks, newHeads over WebSocket + poll every {} ms)",
        args.warmup_blocks, args.head_blocks, args.poll_ms
    );
    let shutdown = CancellationToken::new();
    indexer.follow_heads(animoca_indexer::Heads::subscribe(anvil.url.replacen("http", "ws", 1), shutdown.clone()));
    let mut leader =
        Leader::acquire(options, CHAIN_ID, Duration::from_secs(1), &shutdown).await?.context("no indexer lock")?;
    let follower = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { indexer.run(&mut leader, shutdown).await })
    };
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(animoca_store::indexing::CHANGES_CHANNEL).await?;

    let signer = PrivateKeySigner::from_str(DEV_KEY)?;
    let owner = signer.address();
    let fire = ProviderBuilder::new()
        .disable_recommended_fillers()
        .wallet(EthereumWallet::new(signer))
        .connect_http(anvil.url.parse()?)
        .erased();
    let mut nonce = fire.get_transaction_count(owner).await?;
    let mut from_receipt = Vec::with_capacity(args.head_blocks);
    let mut from_send = Vec::with_capacity(args.head_blocks);
    let mut warmup = Vec::with_capacity(args.warmup_blocks);
    for i in 0..args.warmup_blocks + args.head_blocks {
        // Desynchronise from the indexer's poll loop.
        tokio::time::sleep(Duration::from_millis(10 + (i as u64 * 7919) % 97)).await;
        let (market_type, id, _) = meta.markets[i % meta.markets.len()];
        let amm = if market_type == 0 { meta.credential_amm } else { meta.persona_amm };
        let batcher = SwapBatcher::new(meta.batchers[i % meta.batchers.len()], &fire);
        let request = batcher
            .buyOnce(amm, id, usdc(1))
            .into_transaction_request()
            .with_from(owner)
            .with_nonce(nonce)
            .with_chain_id(CHAIN_ID)
            .with_gas_limit(500_000)
            .with_max_fee_per_gas(1_000_000_000)
            .with_max_priority_fee_per_gas(0);
        nonce += 1;
        let sent_at = Instant::now();
        let hash = *fire.send_transaction(request).await?.tx_hash();
        let receipt = wait_receipt(&fire, hash).await?;
        let mined_at = Instant::now();
        ensure!(receipt.status(), "trade {hash} reverted");
        loop {
            let seen: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM derived.swaps WHERE chain_id = $1 AND tx_hash = $2)")
                    .bind(CHAIN_ID as i64)
                    .bind(hash.as_slice())
                    .fetch_one(pool)
                    .await?;
            if seen {
                break;
            }
            if follower.is_finished() {
                bail!("the indexer stopped while following the head");
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), listener.recv()).await;
        }
        let committed_at = Instant::now();
        if i < args.warmup_blocks {
            warmup.push(committed_at - mined_at);
            continue;
        }
        from_receipt.push(committed_at - mined_at);
        from_send.push(committed_at - sent_at);
    }
    shutdown.cancel();
    follower.await??;
    let ms = |samples: &[Duration]| -> Vec<String> {
        samples.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).collect()
    };
    println!("warm-up blocks, receipt → committed (ms, in order, not in the percentiles): {}", ms(&warmup).join(", "));
    println!("first measured blocks (ms, in order): {}", ms(&from_receipt[..from_receipt.len().min(5)]).join(", "));
    print_latency("receipt → committed", &mut from_receipt);
    print_latency("send → committed", &mut from_send);
    Ok(())
}

fn print_latency(label: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e3
    };
    println!("{label:<22} n={} p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms", samples.len(), at(0.50), at(0.99), at(1.0));
}

// ---------------------------------------------------------------- anvil

mod reqwest_url {
    pub(crate) use alloy::transports::http::reqwest::Url;
}

// ---------------------------------------------------------------- measurements

/// CPU seconds (user + system) of this process, anvil, and every `postgres` process.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    own: f64,
    anvil: f64,
    postgres: f64,
}

impl CpuSample {
    fn take(anvil_pid: u32) -> CpuSample {
        let mut postgres = 0.0;
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
                if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres") {
                    postgres += cpu_secs(pid);
                }
            }
        }
        CpuSample { own: cpu_secs("self"), anvil: cpu_secs(&anvil_pid.to_string()), postgres }
    }

    fn minus(&self, before: &CpuSample) -> CpuSample {
        CpuSample {
            own: self.own - before.own,
            anvil: self.anvil - before.anvil,
            postgres: self.postgres - before.postgres,
        }
    }
}

/// utime + stime of `/proc/<pid>/stat`, in seconds (USER_HZ = 100 on Linux).
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Wall time spent in each JSON-RPC method, measured around the HTTP transport.
#[derive(Debug, Clone, Default)]
struct RpcTimes(Arc<Mutex<BTreeMap<String, (u64, Duration)>>>);

impl RpcTimes {
    fn record(&self, method: String, took: Duration) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(method).or_default();
            entry.0 += 1;
            entry.1 += took;
        }
    }

    fn reset(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }

    fn snapshot(&self) -> Vec<(String, (u64, Duration))> {
        self.0.lock().map(|map| map.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default()
    }
}

struct TimingLayer(RpcTimes);

impl<S> tower::Layer<S> for TimingLayer {
    type Service = Timing<S>;

    fn layer(&self, inner: S) -> Timing<S> {
        Timing { inner, times: self.0.clone() }
    }
}

#[derive(Clone)]
struct Timing<S> {
    inner: S,
    times: RpcTimes,
}

impl<S> tower::Service<RequestPacket> for Timing<S>
where
    S: tower::Service<RequestPacket, Response = ResponsePacket, Error = TransportError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let method = match &request {
            RequestPacket::Single(call) => call.method().to_owned(),
            RequestPacket::Batch(_) => "batch".to_owned(),
        };
        let times = self.times.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let started = Instant::now();
            let result = future.await;
            times.record(method, started.elapsed());
            result
        })
    }
}
