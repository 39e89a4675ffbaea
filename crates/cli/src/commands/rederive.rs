//! `animoca-trade rederive`: rebuild every derived table from the log store (no
//! RPC) and swap the result in atomically; `animoca-trade verify`: rebuild into
//! scratch tables and compare with the live ones.

use animoca_indexer::{Leader, rederive};
use tokio_util::sync::CancellationToken;

use crate::config::RederiveConfig;

/// Migrates, takes the indexer lock (refusing while an indexer runs), rebuilds
/// and swaps in. Ctrl-C before the swap leaves the live tables as they were.
pub async fn run(config: RederiveConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = animoca_store::connect(config.database.clone(), 4).await?;
    animoca_store::migrate(&pool).await?;
    let chain_id = rederive::indexed_chain(&mut *pool.acquire().await?, config.chain_id).await?;
    let Some(_leader) = Leader::try_acquire(&config.database, chain_id).await? else {
        anyhow::bail!(
            "an indexer is running for chain {chain_id} (it holds the indexer lock); stop it first. \
             A restarted `index` re-derives by itself when its derivation version is newer than the database's"
        );
    };
    let stats = rederive::rederive(&pool, Some(chain_id), &shutdown).await?;
    #[allow(clippy::cast_precision_loss)]
    let rate = stats.logs as f64 / stats.total.as_secs_f64().max(1e-3);
    println!(
        "re-derived chain {} up to block {} from {} stored logs in {:.1} s ({rate:.0} logs/s, no RPC); \
         the new tables are live",
        stats.chain_id,
        stats.checkpoint,
        stats.logs,
        stats.total.as_secs_f64()
    );
    pool.close().await;
    Ok(())
}

/// Re-derives into scratch tables and compares; fails (exit code 1) naming every
/// table that differs, with its first differing rows.
pub async fn verify(config: RederiveConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = animoca_store::connect(config.database.clone(), 4).await?;
    animoca_store::migrate(&pool).await?;
    let chain_id = rederive::indexed_chain(&mut *pool.acquire().await?, config.chain_id).await?;
    let report = rederive::verify(&pool, Some(chain_id), &shutdown).await?;
    pool.close().await;
    let s = &report.stats;
    if report.diffs.is_empty() {
        println!(
            "verify: all {} derived tables equal a re-derivation of chain {} from {} stored logs (block {})",
            report.tables, s.chain_id, s.logs, s.checkpoint
        );
        return Ok(());
    }
    for diff in &report.diffs {
        let describe = |print: &Option<animoca_store::generation::TableFingerprint>| {
            print.as_ref().map_or_else(|| "missing".to_owned(), |p| format!("{} rows", p.rows))
        };
        println!("DIFFERS derived.{}: live {}, re-derived {}", diff.table, describe(&diff.live), describe(&diff.other));
        for row in &diff.only_live {
            println!("  only live:       {row}");
        }
        for row in &diff.only_other {
            println!("  only re-derived: {row}");
        }
    }
    let names: Vec<String> = report.diffs.iter().map(|d| format!("derived.{}", d.table)).collect();
    anyhow::bail!(
        "verify: {} of {} derived tables differ from the chain's logs: {}",
        names.len(),
        report.tables,
        names.join(", ")
    )
}
