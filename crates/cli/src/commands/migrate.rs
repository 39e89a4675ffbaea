//! `animoca-trade migrate`: apply pending schema migrations.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::MigrateConfig;

/// Connects, applies what is missing, reports what it did.
pub async fn run(config: MigrateConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let work = async {
        let pool = animoca_store::connect(config.database, 2).await?;
        let report = animoca_store::migrate(&pool).await?;
        pool.close().await;
        anyhow::Ok(report)
    };
    let report = tokio::select! {
        report = work => report.context("migrate")?,
        () = shutdown.cancelled() => anyhow::bail!("interrupted; no partial migration was kept"),
    };
    if report.applied.is_empty() {
        println!("database is up to date ({} migrations)", report.known);
    } else {
        for migration in &report.applied {
            println!("applied {migration}");
        }
        println!("database is up to date ({} migrations)", report.known);
    }
    Ok(())
}
