//! New-head notifications over a WebSocket (`eth_subscribe("newHeads")`), so that
//! the indexer starts on a block the moment the node announces it instead of at
//! its next poll. Polling stays on as the fallback: a dropped subscription only
//! costs latency, never a block.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The newest block number announced by the node (0 until the first one).
#[derive(Debug, Clone)]
pub struct Heads(watch::Receiver<u64>);

impl Heads {
    /// Subscribes to `ws_url` in a background task that reconnects (with backoff)
    /// until `shutdown`.
    pub fn subscribe(ws_url: String, shutdown: CancellationToken) -> Self {
        let (sender, receiver) = watch::channel(0);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                tokio::select! {
                    outcome = follow(&ws_url, &sender) => match outcome {
                        Ok(()) => tracing::warn!("newHeads subscription ended; reconnecting"),
                        Err(error) => tracing::warn!(%error, ?delay, "newHeads subscription failed; polling until it is back"),
                    },
                    () = shutdown.cancelled() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        });
        Self(receiver)
    }

    /// Waits for a head newer than the last one seen by this receiver.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            // The subscriber task ended (shutdown): never wake again.
            std::future::pending::<()>().await;
        }
    }
}

async fn follow(ws_url: &str, sender: &watch::Sender<u64>) -> Result<(), alloy::transports::TransportError> {
    let provider = ProviderBuilder::new().connect_ws(WsConnect::new(ws_url)).await?;
    let subscription = provider.subscribe_blocks().await?;
    tracing::info!(ws_url, "following new heads over WebSocket");
    let mut stream = subscription.into_stream();
    while let Some(header) = stream.next().await {
        sender.send_replace(header.number);
    }
    Ok(())
}
