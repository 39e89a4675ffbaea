//! Resilient RPC reads for the indexer: retries with exponential backoff and
//! jitter on rate limits, server errors, timeouts, dropped connections and
//! malformed answers; `eth_getLogs` ranges split in half when a node refuses
//! them as too large. A range is never skipped: every log of it, or an error.

use std::{future::Future, time::Duration};

use alloy::{
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    transports::{RpcError, TransportError, TransportErrorKind},
};
use backon::{ExponentialBuilder, Retryable};

/// A cap on RPC requests per second, shared by every read of one indexer.
#[derive(Debug, Clone)]
pub struct RateCap(std::sync::Arc<governor::DefaultDirectRateLimiter>);

impl RateCap {
    /// At most `per_second` requests per second (bursts of the same size).
    pub fn per_second(per_second: std::num::NonZeroU32) -> Self {
        Self(std::sync::Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(per_second))))
    }

    async fn wait(cap: Option<&RateCap>) {
        if let Some(cap) = cap {
            cap.0.until_ready().await;
        }
    }
}

/// Retry settings of RPC reads.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request before giving up.
    pub attempts: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Time allowed for one request.
    pub timeout: Duration,
    /// Requests-per-second cap (none by default).
    pub rate_cap: Option<RateCap>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 12,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            rate_cap: None,
        }
    }
}

/// Why an RPC read failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RpcReadError {
    /// Still failing after every retry.
    #[error("{call} failed after {attempts} attempts: {last}")]
    Exhausted {
        /// What we asked.
        call: String,
        /// Attempts made.
        attempts: usize,
        /// The last failure.
        last: String,
    },
    /// The node refuses even a single block's logs as too large.
    #[error("node refuses eth_getLogs for the single block {block}: {reason}")]
    BlockTooLarge {
        /// The block.
        block: u64,
        /// The node's message.
        reason: String,
    },
}

/// What to do about one failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The node says the range holds too much: split it.
    TooMuch(String),
    /// Worth another try.
    Transient(String),
}

/// Sorts an RPC error: range-limit answers split, everything else is retried
/// (rate limits, 5xx, timeouts, closed connections, malformed JSON, node errors).
fn classify(error: &TransportError) -> Failure {
    let text = error.to_string();
    let lower = text.to_lowercase();
    let too_much = [
        "more than",
        "too many",
        "range",
        "limit exceeded",
        "response size",
        "query returned",
        "exceed",
        "block range",
    ];
    let rate_limited = lower.contains("too many requests") || lower.contains("rate limit") || lower.contains("429");
    match error {
        _ if rate_limited => Failure::Transient(text),
        RpcError::ErrorResp(payload) if too_much.iter().any(|p| payload.message.to_lowercase().contains(p)) => {
            Failure::TooMuch(text)
        }
        RpcError::Transport(TransportErrorKind::HttpError(http)) if http.status == 413 => Failure::TooMuch(text),
        _ if lower.contains("timed out") => Failure::TooMuch(text),
        _ => Failure::Transient(text),
    }
}

/// Runs an RPC read (a raw request or a contract view call) with the policy's
/// timeout and retries. Every failure is retried until the attempts run out.
pub async fn read<T, E, F, Fut>(policy: &RetryPolicy, call: &str, request: F) -> Result<T, RpcReadError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut request = request;
    let name = call.to_owned();
    let attempt = || {
        let fut = request();
        let name = name.clone();
        async move {
            RateCap::wait(policy.rate_cap.as_ref()).await;
            metrics::counter!("animoca_rpc_requests_total", "call" => name.clone()).increment(1);
            let outcome = match tokio::time::timeout(policy.timeout, fut).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(("error", error.to_string())),
                Err(_) => Err(("timeout", format!("timed out after {:?}", policy.timeout))),
            };
            outcome.map_err(|(kind, error)| {
                metrics::counter!("animoca_rpc_errors_total", "call" => name, "kind" => kind).increment(1);
                error
            })
        }
    };
    attempt
        .retry(backoff(policy))
        .notify(|error, delay| tracing::warn!(call, %error, ?delay, "RPC read failed; retrying"))
        .await
        .map_err(|last| RpcReadError::Exhausted { call: call.to_owned(), attempts: policy.attempts, last })
}

/// An `eth_getLogs` entry as the node sends it. Read straight into this shape:
/// alloy's `Log` (two levels of `serde(flatten)`) first buffers every field of
/// every log in an intermediate tree, which cost ~7 KB of transient memory per
/// log and most of the indexer's JSON time.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLog {
    address: alloy::primitives::Address,
    topics: Vec<alloy::primitives::B256>,
    data: alloy::primitives::Bytes,
    block_hash: Option<alloy::primitives::B256>,
    block_number: Option<alloy::primitives::U64>,
    block_timestamp: Option<alloy::primitives::U64>,
    transaction_hash: Option<alloy::primitives::B256>,
    transaction_index: Option<alloy::primitives::U64>,
    log_index: Option<alloy::primitives::U64>,
    #[serde(default)]
    removed: bool,
}

impl From<WireLog> for Log {
    fn from(wire: WireLog) -> Self {
        let number = |n: Option<alloy::primitives::U64>| n.map(|n| n.to::<u64>());
        Log {
            inner: alloy::primitives::Log {
                address: wire.address,
                data: alloy::primitives::LogData::new_unchecked(wire.topics, wire.data),
            },
            block_hash: wire.block_hash,
            block_number: number(wire.block_number),
            block_timestamp: number(wire.block_timestamp),
            transaction_hash: wire.transaction_hash,
            transaction_index: number(wire.transaction_index),
            log_index: number(wire.log_index),
            removed: wire.removed,
        }
    }
}

/// One `eth_getLogs` call, decoded through [`WireLog`].
async fn fetch_logs(provider: &DynProvider, filter: &Filter) -> Result<Vec<Log>, TransportError> {
    let logs: Vec<WireLog> = provider.client().request("eth_getLogs", (filter,)).await?;
    Ok(logs.into_iter().map(Log::from).collect())
}

/// Every log matching `filter` in blocks `from..=to`, in no particular order.
/// Splits the range when the node refuses it as too large or it times out.
pub async fn get_logs(
    provider: &DynProvider,
    filter: &Filter,
    from: u64,
    to: u64,
    policy: &RetryPolicy,
) -> Result<Vec<Log>, RpcReadError> {
    let mut logs = Vec::new();
    let mut pending = vec![(from, to)];
    while let Some((start, end)) = pending.pop() {
        let mut failures = 0usize;
        loop {
            let range = filter.clone().from_block(start).to_block(end);
            RateCap::wait(policy.rate_cap.as_ref()).await;
            metrics::counter!("animoca_rpc_requests_total", "call" => "eth_getLogs").increment(1);
            let outcome = match tokio::time::timeout(policy.timeout, fetch_logs(provider, &range)).await {
                Ok(Ok(found)) => match check_range(&found, start, end) {
                    Ok(()) => {
                        logs.extend(found);
                        break;
                    }
                    Err(problem) => Failure::Transient(problem),
                },
                Ok(Err(error)) => classify(&error),
                Err(_) => Failure::TooMuch(format!("timed out after {:?}", policy.timeout)),
            };
            let kind = match &outcome {
                Failure::TooMuch(_) => "range_too_large",
                Failure::Transient(_) => "transient",
            };
            metrics::counter!("animoca_rpc_errors_total", "call" => "eth_getLogs", "kind" => kind).increment(1);
            match outcome {
                Failure::TooMuch(reason) if start < end => {
                    let middle = start + (end - start) / 2;
                    tracing::debug!(start, end, %reason, "eth_getLogs range too large; splitting");
                    pending.push((middle + 1, end));
                    pending.push((start, middle));
                    break;
                }
                Failure::TooMuch(reason) if failures + 1 >= policy.attempts => {
                    return Err(RpcReadError::BlockTooLarge { block: start, reason });
                }
                Failure::TooMuch(reason) | Failure::Transient(reason) => {
                    failures += 1;
                    if failures >= policy.attempts {
                        return Err(RpcReadError::Exhausted {
                            call: format!("eth_getLogs {start}..={end}"),
                            attempts: failures,
                            last: reason,
                        });
                    }
                    let delay = delay_for(policy, failures);
                    tracing::warn!(start, end, %reason, ?delay, "eth_getLogs failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    Ok(logs)
}

/// A log outside the asked range, or without its position, means a broken answer.
fn check_range(logs: &[Log], start: u64, end: u64) -> Result<(), String> {
    for log in logs {
        match log.block_number {
            Some(block) if (start..=end).contains(&block) => {}
            other => return Err(format!("log at block {other:?} outside {start}..={end}")),
        }
        if log.block_hash.is_none() || log.log_index.is_none() || log.transaction_hash.is_none() {
            return Err("log without blockHash, logIndex or transactionHash".to_owned());
        }
    }
    Ok(())
}

fn backoff(policy: &RetryPolicy) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.attempts.saturating_sub(1))
        .with_jitter()
}

/// Exponential delay with full jitter for the `failures`-th retry.
fn delay_for(policy: &RetryPolicy, failures: usize) -> Duration {
    let exponent = u32::try_from(failures.min(16)).unwrap_or(16);
    let ceiling = policy.min_delay.saturating_mul(2u32.saturating_pow(exponent)).min(policy.max_delay);
    // Cheap jitter without a random-number dependency: the clock's nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(millis / 2 + nanos % (millis / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_error(code: i64, message: &str) -> TransportError {
        let body = format!(r#"{{"code":{code},"message":"{message}"}}"#);
        RpcError::ErrorResp(serde_json::from_str(&body).expect("an error payload"))
    }

    #[test]
    fn range_limits_split_and_the_rest_retries() {
        assert!(matches!(classify(&node_error(-32005, "query returned more than 10000 results")), Failure::TooMuch(_)));
        assert!(matches!(classify(&node_error(-32600, "block range is too wide")), Failure::TooMuch(_)));
        assert!(matches!(classify(&node_error(-32000, "header not found")), Failure::Transient(_)));
        assert!(matches!(classify(&node_error(429, "Too Many Requests")), Failure::Transient(_)));
        assert!(matches!(classify(&node_error(-32016, "rate limit exceeded")), Failure::Transient(_)));
    }

    #[tokio::test]
    async fn the_rate_cap_spaces_requests() {
        let policy = RetryPolicy {
            rate_cap: Some(RateCap::per_second(std::num::NonZeroU32::new(20).unwrap())),
            ..RetryPolicy::default()
        };
        let started = std::time::Instant::now();
        for _ in 0..40 {
            read(&policy, "noop", || async { Ok::<_, String>(()) }).await.unwrap();
        }
        // 20 go at once (the burst), the next 20 at 20 per second.
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for failures in 1..40 {
            let delay = delay_for(&policy, failures);
            assert!(delay <= policy.max_delay, "{delay:?}");
            assert!(delay >= Duration::from_millis(1));
        }
    }
}
