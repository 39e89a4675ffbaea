//! Running `work` in-process and waiting for what it does, as the job tests do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use animoca_jobs::JobsConfig;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts the job workers on `pool`; cancel the token to stop them.
pub fn start(pool: &PgPool, config: JobsConfig) -> (CancellationToken, JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move { animoca_jobs::run(pool, config, shutdown).await.expect("work runs") }
    });
    (shutdown, task)
}

/// Stops what [`start`] started, within 20 s.
pub async fn stop(shutdown: CancellationToken, task: JoinHandle<()>) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task).await.expect("work stops").expect("work task");
}

/// Polls `probe` until it answers, for at most 30 s.
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
