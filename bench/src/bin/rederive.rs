//! Re-derive benchmark (issue "re-derive and verify"): on the indexer
//! benchmark's database (`indexer_backfill` leaves it in `animoca_bench`),
//! rebuilds every derived table from the log store with `rederive` and swaps it
//! in; optionally runs `verify` too. Prints wall time per phase, logs/s and
//! the peak RSS; compare with `indexer_backfill`'s wall time for the same chain
//! (a re-index from RPC).
//!
//! ```text
//! cargo run --release -p animoca-bench --bin indexer_backfill -- --swaps 1000000
//! cargo run --release -p animoca-bench --bin rederive
//! ```
//!
//! Not a test: it prints numbers (see docs/benchmarks.md).

/// The same allocator as the indexer benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{str::FromStr, time::Instant};

use animoca_indexer::rederive;
use anyhow::Context;
use clap::Parser;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "rederive (and verify) wall time, rate and memory on an indexed database")]
struct Args {
    /// The indexed database (left by `indexer_backfill`).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/animoca_bench")]
    database_url: String,
    /// Re-derive this many times (the first run also warms the page cache).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run `verify` first (on the database as the indexer left it, before any re-derive).
    #[arg(long)]
    verify: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    animoca_bench::init_tracing();
    let args = Args::parse();
    // The store's write-step histograms, printed as sums at the end.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let timings = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    let options = PgConnectOptions::from_str(&args.database_url)?;
    let pool = animoca_store::connect(options, 4).await?;
    let (logs, swaps): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM chain.logs), (SELECT count(*) FROM derived.swaps)")
            .fetch_one(&pool)
            .await
            .context("is this an indexed database? run indexer_backfill first")?;
    println!("database: {logs} logs, {swaps} swaps");
    let never = CancellationToken::new();
    if args.verify {
        let started = Instant::now();
        let report = rederive::verify(&pool, None, &never).await?;
        for diff in &report.diffs {
            println!("  differs: derived.{} {:?}", diff.table, diff.only_live.first());
        }
        println!(
            "verify: {:.2} s wall, {} tables compared, {} differ",
            started.elapsed().as_secs_f64(),
            report.tables,
            report.diffs.len()
        );
    }
    for run in 1..=args.runs {
        let started = Instant::now();
        let stats = rederive::rederive(&pool, None, &never).await?;
        let wall = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = stats.logs as f64 / wall;
        println!(
            "rederive run {run}: {wall:.2} s wall, {rate:.0} logs/s | load (stream + derive + write) {:.2} s, \
             indexes + ANALYZE {:.2} s, 24h window {:.2} s, swap {:.3} s | {} logs, {} swaps, block {}",
            stats.load.as_secs_f64(),
            stats.indexes.as_secs_f64(),
            stats.window.as_secs_f64(),
            stats.swap.as_secs_f64(),
            stats.logs,
            stats.swaps,
            stats.checkpoint,
        );
    }
    println!("-- derived-row writes by step, all runs (animoca_indexer_write_step_seconds)");
    for line in timings.render().lines() {
        if let Some(rest) = line.strip_prefix("animoca_indexer_write_step_seconds_sum") {
            println!("  {rest}");
        }
    }
    println!("peak RSS {:.0} MB (VmHWM of this process)", animoca_bench::vm_hwm_kb("self") as f64 / 1024.0);
    Ok(())
}
