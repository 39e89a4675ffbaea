//! A JSON-RPC proxy in front of anvil that fails on purpose: errors, timeouts,
//! rate limits, truncated JSON, and "too many results" for wide `eth_getLogs`.
//! Faults follow a fixed rotation, so a run is reproducible.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500.
    ServerError,
    /// HTTP 429 with `Retry-After`.
    RateLimited,
    /// A 200 whose JSON is cut in half.
    Truncated,
    /// An answer slower than the client's timeout.
    Slow,
    /// A JSON-RPC error as a node sends it for an unknown failure.
    NodeError,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Requests seen.
    pub requests: AtomicU64,
    /// Requests failed on purpose.
    pub injected: AtomicU64,
    /// `eth_getLogs` refused as too wide.
    pub refused_ranges: AtomicU64,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    every: u64,
    slow: Duration,
    max_log_range: u64,
    stats: Arc<FaultStats>,
}

const ROTATION: [Fault; 5] = [Fault::ServerError, Fault::RateLimited, Fault::Truncated, Fault::Slow, Fault::NodeError];

/// A running faulty proxy; stops when dropped.
pub struct FaultyRpc {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    /// What it did.
    pub stats: Arc<FaultStats>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyRpc {
    /// Proxies to `upstream`, failing one request in `every` (rotating through the
    /// fault kinds), answering `slow` late for [`Fault::Slow`], and refusing
    /// `eth_getLogs` over more than `max_log_range` blocks.
    pub async fn start(upstream: &str, every: u64, slow: Duration, max_log_range: u64) -> FaultyRpc {
        let stats = Arc::new(FaultStats::default());
        let proxy = Proxy {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            every: every.max(1),
            slow,
            max_log_range,
            stats: stats.clone(),
        };
        let app = Router::new().route("/", post(handle)).with_state(proxy);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultyRpc { endpoint, stats, task }
    }
}

impl Drop for FaultyRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(proxy): State<Proxy>, body: Bytes) -> Response {
    let n = proxy.stats.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(refusal) = refuse_wide_range(&proxy, &request) {
        return refusal;
    }
    if n % proxy.every == 0 {
        proxy.stats.injected.fetch_add(1, Ordering::SeqCst);
        let fault = ROTATION[usize::try_from((n / proxy.every) % ROTATION.len() as u64).unwrap_or(0)];
        match fault {
            Fault::ServerError => return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
            Fault::RateLimited => {
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")], "slow down").into_response();
            }
            Fault::NodeError => {
                let id = request.get("id").cloned().unwrap_or(serde_json::Value::Null);
                let error = serde_json::json!({"jsonrpc": "2.0", "id": id,
                                               "error": {"code": -32000, "message": "internal node failure"}});
                return json(error.to_string());
            }
            Fault::Slow => tokio::time::sleep(proxy.slow).await,
            Fault::Truncated => {
                let answer = forward(&proxy, body).await;
                let cut = answer.len() / 2;
                return json(answer[..cut].to_owned());
            }
        }
    }
    json(forward(&proxy, body).await)
}

fn refuse_wide_range(proxy: &Proxy, request: &serde_json::Value) -> Option<Response> {
    if request.get("method")?.as_str()? != "eth_getLogs" {
        return None;
    }
    let filter = request.get("params")?.get(0)?;
    let block = |key: &str| u64::from_str_radix(filter.get(key)?.as_str()?.trim_start_matches("0x"), 16).ok();
    let (from, to) = (block("fromBlock")?, block("toBlock")?);
    if to.saturating_sub(from) < proxy.max_log_range {
        return None;
    }
    proxy.stats.refused_ranges.fetch_add(1, Ordering::SeqCst);
    let id = request.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let error = serde_json::json!({"jsonrpc": "2.0", "id": id,
        "error": {"code": -32005, "message": "query returned more than 10000 results"}});
    Some(json(error.to_string()))
}

async fn forward(proxy: &Proxy, body: Bytes) -> String {
    let sent =
        proxy.client.post(&proxy.upstream).header(header::CONTENT_TYPE, "application/json").body(body).send().await;
    match sent {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(error) => format!(r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32603,"message":"proxy: {error}"}}}}"#),
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
