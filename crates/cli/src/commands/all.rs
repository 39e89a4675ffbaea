//! `animoca-trade all`: `serve`, `index` and `work` in one process, the
//! single-node default. If one of them fails, the others are stopped.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::{
    commands::{index, serve, work},
    config::{IndexConfig, ServeConfig, WorkConfig},
};

/// The three roles' configurations.
pub struct AllConfig {
    /// `index`.
    pub index: IndexConfig,
    /// `serve`.
    pub serve: ServeConfig,
    /// `work`.
    pub work: WorkConfig,
}

/// Runs the three roles until `shutdown` or until one fails.
pub async fn run(config: AllConfig, args: index::IndexArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let mut index_config = config.index;
    // One metrics registry per process: the API's /metrics serves them all.
    index_config.metrics_addr = None;
    let mut work_config = config.work;
    work_config.metrics_addr = None;
    let (indexed, served, worked) = tokio::join!(
        stop_all_on_error("indexer", index::run(index_config, args, stop.clone()), stop.clone()),
        stop_all_on_error("API", serve::run(config.serve, stop.clone()), stop.clone()),
        stop_all_on_error("job workers", work::run(work_config, stop.clone()), stop.clone()),
    );
    indexed.and(served).and(worked)
}

async fn stop_all_on_error(
    role: &'static str,
    task: impl Future<Output = anyhow::Result<()>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let result = task.await;
    if let Err(error) = &result {
        tracing::error!(role, error = format!("{error:#}"), "stopping everything");
        stop.cancel();
    }
    result.map_err(|error| error.context(role))
}
