//! The Ethos API client (`ETHOS_API_URL`, default
//! `https://api.ethos.network/api/v2`): an address' credibility score.
//!
//! `GET /score/address?address=0x…` with `X-Ethos-Client: animoca-trade`
//! answers `{"score": 1200, "level": "neutral"}`. 404 means "no Ethos profile";
//! 429 (honouring `Retry-After`) and 5xx are worth retrying; any other status
//! or a body of another shape is not.

use std::time::Duration;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::JobError;

/// Where Ethos is and what score verifies an issuer.
#[derive(Debug, Clone)]
pub struct EthosConfig {
    /// Base URL, without a trailing slash (`ETHOS_API_URL`).
    pub base_url: Url,
    /// Score at or above which an issuer is verified (`ETHOS_MIN_SCORE`, default 1400).
    pub min_score: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// An address' Ethos score (0-2800) and level (`untrusted` … `renowned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthosScore {
    /// 0-2800.
    pub score: u32,
    /// The level Ethos names for it.
    pub level: String,
}

/// Looks up `address`: `Ok(None)` when Ethos has no profile for it.
pub async fn score(
    http: &reqwest::Client,
    config: &EthosConfig,
    address: Address,
) -> Result<Option<EthosScore>, JobError> {
    let url = format!("{}/score/address", config.base_url.as_str().trim_end_matches('/'));
    let response = http
        .get(&url)
        .query(&[("address", format!("{address:#x}"))])
        .header("X-Ethos-Client", "animoca-trade")
        .timeout(config.timeout)
        .send()
        .await
        .map_err(|error| JobError::Transient(format!("Ethos {url}: {error}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = crate::retry_after(&response);
        return Err(JobError::Throttled(
            format!("Ethos rate limited (429, Retry-After {wait:?})"),
            wait.unwrap_or_default(),
        ));
    }
    if status.is_server_error() {
        return Err(JobError::Transient(format!("Ethos answered {status}")));
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(JobError::Permanent(format!("Ethos answered {status}: {}", truncate(&body, 300))));
    }
    let body = response.bytes().await.map_err(|error| JobError::Transient(format!("Ethos body: {error}")))?;
    let score: EthosScore = serde_json::from_slice(&body).map_err(|error| {
        JobError::Permanent(format!(
            "Ethos answered 200 with an unexpected body ({error}): {}",
            truncate(&String::from_utf8_lossy(&body), 300)
        ))
    })?;
    if score.score > 2800 {
        return Err(JobError::Permanent(format!("Ethos score {} is outside 0-2800", score.score)));
    }
    Ok(Some(score))
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
