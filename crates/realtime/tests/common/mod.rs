//! Test harness: the API with Socket.IO on a free port; clients are the
//! official `socket.io-client` (`animoca_test_support::socketio`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use animoca_api::AppState;
use animoca_realtime::{RealtimeConfig, attach};
use animoca_store::{batch::ChangeRow, indexing};
pub use animoca_test_support::socketio::SocketIoClient as Client;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A running `serve` (API + Socket.IO) on 127.0.0.1.
pub struct Server {
    pub port: u16,
    pub state: AppState,
    stop: CancellationToken,
}

impl Server {
    pub async fn start(pool: &PgPool, config: RealtimeConfig) -> Server {
        let state = AppState::new(pool.clone());
        let stop = CancellationToken::new();
        let router = animoca_api::router(state.clone());
        let router =
            attach(router, pool.clone(), state.auth.clone(), config, stop.clone()).await.expect("realtime starts");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await.ok();
        });
        // The relay has read its start cursor once it listens; give it a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Server { port, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token(&self, address: alloy_primitives::Address) -> String {
        animoca_api::auth::issue_token(&self.state.auth, address).unwrap().0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Commits change rows as the indexer or the API would (one version).
pub async fn publish(pool: &PgPool, changes: &[(&str, Value)]) -> i64 {
    let rows: Vec<ChangeRow> = changes
        .iter()
        .map(|(kind, payload)| ChangeRow { kind: (*kind).to_owned(), payload: payload.clone() })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    let version = indexing::write_changes(&mut tx, &rows).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    version
}
