//! REST API load benchmark (issue 9, "Benchmark"): a database with the cached
//! bench chain indexed (default 1,000,000 swaps over 1,000 markets, built by
//! `indexer_backfill --markets 1000 --build-only`), `animoca-trade index`
//! following a live chain that keeps trading, two `animoca-trade serve`
//! processes (cache on with Redis, cache off), and `wrk` on the same machine
//! against the volume-sorted list, a market detail (cached, uncached, and
//! cached over every market in turn) and a 100-candle chart, at 64 and 256
//! connections. Prints req/s, p50/p99 and the server's RSS per run.
//!
//! ```text
//! cargo build --release -p animoca-bench -p animoca-trade
//! $CARGO_TARGET_DIR/release/indexer_backfill --markets 1000 --swaps 1000000 --build-only
//! $CARGO_TARGET_DIR/release/api_load --markets 1000 --swaps 1000000
//! ```
//!
//! Not a test: it prints numbers (see docs/benchmarks.md).

use std::{
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::U256,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use animoca_bench::chain::{
    AnvilProcess, BLOCK_SPACING_SECS, CHAIN_ID, ChainMeta, DEV_KEY, batcher::SwapBatcher, cache_files,
};
use animoca_bench::service::Service;
use animoca_devnet::usdc;
use anyhow::{Context, bail, ensure};
use clap::Parser;
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "REST API load benchmark (wrk against animoca-trade serve while the indexer follows a live chain)")]
struct Args {
    /// Markets of the cached chain.
    #[arg(long, default_value_t = 1_000)]
    markets: usize,
    /// Swaps of the cached chain.
    #[arg(long, default_value_t = 1_000_000)]
    swaps: u64,
    /// Where built chains are cached.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.cache"))]
    cache_dir: PathBuf,
    /// The database (indexed from the chain first if it is behind).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/animoca_bench?sslmode=disable"
    )]
    database_url: String,
    /// Redis for the cached server.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// wrk connection counts.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    connections: Vec<u32>,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// A live block every this many ms while measuring (0: no live trading).
    #[arg(long, default_value_t = 1_000)]
    block_ms: u64,
    /// Markets traded per live block (a buy and a sell each).
    #[arg(long, default_value_t = 10)]
    markets_per_block: usize,
    /// Recreate the database (index the chain from scratch).
    #[arg(long)]
    fresh: bool,
    /// Only these scenarios (names as printed); all when empty.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Starts `animoca-trade <command>` with `env`.
fn spawn(binary: &PathBuf, command: &str, env: &[(&str, String)]) -> anyhow::Result<Service> {
    let mut process = Command::new(binary);
    process.arg(command);
    Service::spawn(process, env).with_context(|| format!("start {} {command}", binary.display()))
}

/// Resident and peak resident memory, MB.
fn rss_mb(service: &Service) -> (f64, f64) {
    (service.status_kib("VmRSS") / 1024.0, service.status_kib("VmHWM") / 1024.0)
}

/// One wrk run's numbers.
#[derive(Debug, Default)]
struct Run {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

fn parse_ms(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn parse_wrk(output: &str) -> Run {
    let mut run = Run::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => run.p50_ms = parse_ms(value),
            ["99%", value] => run.p99_ms = parse_ms(value),
            ["Requests/sec:", value] => run.requests_per_sec = value.parse().unwrap_or(0.0),
            [count, "requests", "in", ..] => run.requests = count.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", count] => run.non_2xx = count.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                run.socket_errors = rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    run
}

/// Runs wrk against `url` (with `script`, a Lua file, when given).
async fn wrk(args: &Args, connections: u32, url: &str, script: Option<&PathBuf>) -> anyhow::Result<Run> {
    let mut command = Command::new("wrk");
    command.args(["-t", &args.threads.to_string(), "-c", &connections.to_string()]).args([
        "-d",
        &format!("{}s", args.duration),
        "--latency",
        "--timeout",
        "5s",
    ]);
    if let Some(script) = script {
        command.args(["-s", &script.display().to_string()]);
    }
    let output = command.arg(url).output().await.context("run wrk (scripts/install-bench-tools)")?;
    ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(parse_wrk(&String::from_utf8_lossy(&output.stdout)))
}

async fn database_exists(options: &PgConnectOptions) -> anyhow::Result<bool> {
    use sqlx::Connection;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await?;
    Ok(exists)
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let ok = Command::new("curl").args(["-sf", "-o", "/dev/null", url]).status().await.map(|s| s.success());
        if ok.unwrap_or(false) {
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(120), "{url} did not answer within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    animoca_bench::init_tracing();
    let args = Args::parse();
    let key = format!("chain-m{}-s{}-t200-k10-b12", args.markets, args.swaps);
    let (state_file, meta_file) = cache_files(&args.cache_dir, &key);
    ensure!(
        state_file.exists() && meta_file.exists(),
        "no cached chain {key}: run indexer_backfill --markets {} --swaps {} --build-only first",
        args.markets,
        args.swaps
    );
    let meta: ChainMeta = serde_json::from_slice(&std::fs::read(&meta_file)?)?;
    let binary = std::env::current_exe()?.with_file_name("animoca-trade");
    ensure!(binary.exists(), "{} is missing: cargo build --release -p animoca-trade", binary.display());

    println!("== setup");
    let started = Instant::now();
    let anvil = AnvilProcess::spawn(&["--load-state".into(), state_file.display().to_string()]).await?;
    println!("anvil loaded {} in {:.1} s", state_file.display(), started.elapsed().as_secs_f64());
    let provider = ProviderBuilder::new().connect_http(anvil.url.parse()?).erased();
    // New blocks continue the built history's spacing, so the 24h window keeps it.
    provider
        .raw_request::<_, serde_json::Value>("anvil_setBlockTimestampInterval".into(), (BLOCK_SPACING_SECS,))
        .await?;
    let head = provider.get_block_number().await?;

    let deployment = meta.deployment();
    let chain_env = vec![
        ("DATABASE_URL", args.database_url.clone()),
        ("RPC_URL", anvil.url.clone()),
        ("RPC_WS_URL", anvil.url.replacen("http", "ws", 1)),
        ("CHAIN_ID", CHAIN_ID.to_string()),
        ("START_BLOCK", deployment.start_block.to_string()),
        ("USDC_ADDRESS", deployment.usdc.to_string()),
        ("STAKE_VAULT", deployment.stake_vault.to_string()),
        ("CREDENTIAL_AMM", deployment.credential_amm.to_string()),
        ("PERSONA_AMM", deployment.persona_amm.to_string()),
        ("CREDENTIAL_TOKEN_FACTORY", deployment.credential_factory.to_string()),
        ("PERSONA_TOKEN_FACTORY", deployment.persona_factory.to_string()),
        ("GOVERNANCE_SLASHING", deployment.governance.to_string()),
    ];
    let options = PgConnectOptions::from_str(&args.database_url)?;
    // The chain restarts from the cached state on every run, so a database that
    // followed an earlier run's live blocks is ahead of it: index anew.
    let mut fresh = args.fresh || !database_exists(&options).await?;
    if !fresh {
        let pool = animoca_store::connect(options.clone(), 1).await?;
        let stored = animoca_store::indexing::checkpoint(&pool, CHAIN_ID).await.ok().flatten();
        fresh = stored.is_none_or(|c| c.block_number != head);
        pool.close().await;
    }
    if fresh {
        println!("indexing the chain into a new database");
        animoca_store::recreate_database(&options).await?;
    }
    let pool = animoca_store::connect(options.clone(), 2).await?;
    animoca_store::migrate(&pool).await?;
    let indexer = spawn(&binary, "index", &chain_env)?;
    let started = Instant::now();
    loop {
        let checkpoint = animoca_store::indexing::checkpoint(&pool, CHAIN_ID).await?;
        if checkpoint.is_some_and(|c| c.block_number >= head) {
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(3_600), "the indexer did not reach block {head} in an hour");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let swaps: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&pool).await?;
    let markets: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.markets").fetch_one(&pool).await?;
    println!(
        "indexed: {swaps} swaps over {markets} markets up to block {head} ({:.0} s to catch up)",
        started.elapsed().as_secs_f64()
    );

    let free_port = || -> anyhow::Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
    let (cached_port, uncached_port) = (free_port()?, free_port()?);
    let serve_env = |port: u16, cache: bool| {
        let mut env = vec![
            ("DATABASE_URL", args.database_url.clone()),
            ("PORT", port.to_string()),
            ("CHAIN_ID", CHAIN_ID.to_string()),
            ("RATE_LIMIT_PER_MINUTE", "4000000000".to_owned()),
            ("JWT_SECRET", "bench-secret-bench-secret-bench-secret".to_owned()),
            ("API_CACHE", if cache { "on" } else { "off" }.to_owned()),
        ];
        if cache {
            env.push(("REDIS_URL", args.redis_url.clone()));
        }
        env
    };
    let cached = spawn(&binary, "serve", &serve_env(cached_port, true))?;
    let uncached = spawn(&binary, "serve", &serve_env(uncached_port, false))?;
    wait_http(&format!("http://127.0.0.1:{cached_port}/health")).await?;
    wait_http(&format!("http://127.0.0.1:{uncached_port}/health")).await?;

    // The busiest market (most swaps) for the single-market scenarios.
    let (hot_type, hot_id): (i16, Vec<u8>) = sqlx::query_as(
        "SELECT market_type, market_id FROM derived.market_stats ORDER BY volume_24h DESC, market_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let kind = if hot_type == 0 { "credentials" } else { "personas" };
    let hot = format!("0x{}", hot_id.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let candles: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM derived.candles WHERE market_type = $1 AND market_id = $2 AND timeframe = '5m'",
    )
    .bind(hot_type)
    .bind(&hot_id)
    .fetch_one(&pool)
    .await
    .unwrap_or(-1);
    println!("hot market: {kind}/{hot} ({candles} stored 5m candles; the chart fills gaps to 100)");

    // Every market's detail in turn (a Lua script per connection).
    let script = args.cache_dir.join("api_load_markets.lua");
    let mut lua = String::from("local paths = {\n");
    for (market_type, id, _) in &meta.markets {
        let kind = if *market_type == 0 { "credentials" } else { "personas" };
        lua.push_str(&format!("  \"/api/{kind}/{id:#x}\",\n"));
    }
    lua.push_str(
        "}\nlocal i = 0\nsetup = function(thread) thread:set(\"offset\", math.random(#paths)) end\n\
         init = function() i = tonumber(wrk.thread:get(\"offset\")) or 0 end\n\
         request = function() i = i % #paths + 1; return wrk.format(\"GET\", paths[i]) end\n",
    );
    std::fs::write(&script, lua)?;

    // Live trading: a block every block_ms with a buy and a sell on several markets.
    let stop = CancellationToken::new();
    let live_blocks = Arc::new(AtomicU64::new(0));
    let trader = if args.block_ms > 0 {
        let signer = PrivateKeySigner::from_str(DEV_KEY)?;
        let owner = signer.address();
        let fire = ProviderBuilder::new()
            .disable_recommended_fillers()
            .wallet(EthereumWallet::new(signer))
            .connect_http(anvil.url.parse()?)
            .erased();
        let (stop, live_blocks, block_ms, per_block) =
            (stop.clone(), live_blocks.clone(), args.block_ms, args.markets_per_block);
        let meta_markets = meta.markets.clone();
        let (batchers, amms) = (meta.batchers.clone(), (meta.credential_amm, meta.persona_amm));
        Some(tokio::spawn(async move {
            let mut nonce = fire.get_transaction_count(owner).await?;
            let mut tick = tokio::time::interval(Duration::from_millis(block_ms));
            let mut n = 0usize;
            while !stop.is_cancelled() {
                tokio::select! { _ = tick.tick() => {}, () = stop.cancelled() => break }
                // One type per block (one AMM per churn call).
                let market_type = (n % 2) as u8;
                let chosen: Vec<_> = meta_markets
                    .iter()
                    .filter(|(t, _, _)| *t == market_type)
                    .cycle()
                    .skip((n * 7) % 500)
                    .take(per_block)
                    .collect();
                let amm = if market_type == 0 { amms.0 } else { amms.1 };
                let batcher = SwapBatcher::new(batchers[n % batchers.len()], &fire);
                let request = batcher
                    .churn(
                        amm,
                        chosen.iter().map(|(_, id, _)| *id).collect(),
                        chosen.iter().map(|(_, _, token)| *token).collect(),
                        U256::from(1),
                        usdc(5 + (n as u64 % 20)),
                    )
                    .into_transaction_request()
                    .with_from(owner)
                    .with_nonce(nonce)
                    .with_chain_id(CHAIN_ID)
                    .with_gas_limit(90_000 * 2 * per_block as u64 + 1_000_000)
                    .with_max_fee_per_gas(1_000_000_000)
                    .with_max_priority_fee_per_gas(0);
                let _pending = fire.send_transaction(request).await?;
                nonce += 1;
                n += 1;
                live_blocks.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }))
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let base = |port: u16| format!("http://127.0.0.1:{port}");
    let list = format!("/api/{kind}?sortBy=volume&status=all&limit=50");
    let detail = format!("/api/{kind}/{hot}");
    let chart = format!("/api/{kind}/{hot}/chart?timeFrame=5m&limit=100&fill=true");
    // (name, server, path, script)
    let scenarios: Vec<(&str, u16, String, Option<&PathBuf>)> = vec![
        ("detail (cached)", cached_port, detail.clone(), None),
        ("detail (uncached)", uncached_port, detail.clone(), None),
        ("detail, every market in turn (cached)", cached_port, String::new(), Some(&script)),
        ("chart 100 x 5m (cached)", cached_port, chart.clone(), None),
        ("chart 100 x 5m (uncached)", uncached_port, chart.clone(), None),
        ("list by 24h volume (cached)", cached_port, list.clone(), None),
        ("list by 24h volume (uncached)", uncached_port, list.clone(), None),
    ];
    let checkpoint_before = animoca_store::indexing::checkpoint(&pool, CHAIN_ID).await?.map(|c| c.block_number);
    println!(
        "== load: wrk {} threads, {} s per run, live block every {} ms with {} buys + {} sells (indexer following)",
        args.threads, args.duration, args.block_ms, args.markets_per_block, args.markets_per_block
    );
    println!(
        "{:<42} {:>5} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "scenario", "conns", "req/s", "p50 ms", "p99 ms", "errors", "RSS MB"
    );
    for (name, port, path, script) in &scenarios {
        if !args.only.is_empty() && !args.only.iter().any(|o| name.starts_with(o.as_str())) {
            continue;
        }
        for &connections in &args.connections {
            let url = format!("{}{}", base(*port), path);
            let run = wrk(&args, connections, &url, *script).await?;
            let server = if *port == cached_port { &cached } else { &uncached };
            let (rss, _) = rss_mb(server);
            println!(
                "{:<42} {:>5} {:>10.0} {:>9.2} {:>9.2} {:>9} {:>10.0}",
                name,
                connections,
                run.requests_per_sec,
                run.p50_ms,
                run.p99_ms,
                run.non_2xx + run.socket_errors,
                rss
            );
            if run.requests == 0 {
                bail!("wrk made no requests against {url}");
            }
        }
    }
    stop.cancel();
    if let Some(trader) = trader {
        trader.await??;
    }
    let checkpoint_after = animoca_store::indexing::checkpoint(&pool, CHAIN_ID).await?.map(|c| c.block_number);
    println!(
        "live blocks sent {} | indexer checkpoint {:?} -> {:?} during the runs",
        live_blocks.load(Ordering::Relaxed),
        checkpoint_before,
        checkpoint_after
    );
    for (name, server) in [("cached", &cached), ("uncached", &uncached)] {
        let (rss, hwm) = rss_mb(server);
        println!("serve ({name}) RSS {rss:.0} MB, peak {hwm:.0} MB");
    }
    println!("index RSS {:.0} MB, peak {:.0} MB", rss_mb(&indexer).0, rss_mb(&indexer).1);
    drop((cached, uncached, indexer));
    anvil.stop().await;
    Ok(())
}
