//! Local devnet: an anvil process we own, sample markets, a trade simulator,
//! and offline stand-ins for the third-party APIs `dev` verifies with (Ethos,
//! Worldcoin).

pub mod anvil;
pub mod driver;
pub mod ethos;
pub mod postgres;
pub mod sample;
pub mod simulator;
pub mod worldcoin;

pub use anvil::{Anvil, AnvilError, AnvilOptions};
pub use driver::{Driver, MarketSpec, tokens, usdc};

/// Serves `app` on a free local port until `stop`; returns its base URL.
pub(crate) async fn serve_locally(
    app: axum::Router,
    what: &'static str,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::warn!(%error, "devnet {what} stand-in stopped");
        }
    });
    Ok(format!("http://{addr}"))
}
