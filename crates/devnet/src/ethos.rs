//! A stand-in for the Ethos API on the devnet, so issuer verification works
//! offline: `GET /score/address?address=0x…` answers in Ethos' shape
//! (`{"score", "level"}`, 404 for "no profile", 400 for a malformed address)
//! with a score derived from the address alone ([`score_of`]), so the sample
//! markets come out verified, pending and rejected in a stable mix.

use alloy::primitives::{Address, keccak256};
use axum::{
    Json, Router,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The devnet's Ethos score of `address`: `None` (no profile) for one address
/// in eight, else keccak256(address) read as a number, modulo 2801.
pub fn score_of(address: Address) -> Option<u32> {
    let hash = keccak256(address.as_slice());
    if hash[31].is_multiple_of(8) {
        return None;
    }
    Some(u32::from(u16::from_be_bytes([hash[0], hash[1]])) % 2801)
}

/// Ethos' level for a score.
pub fn level_of(score: u32) -> &'static str {
    match score {
        0..800 => "untrusted",
        800..1200 => "questionable",
        1200..1400 => "neutral",
        1400..1600 => "known",
        1600..1800 => "established",
        1800..2000 => "reputable",
        2000..2200 => "exemplary",
        2200..2400 => "distinguished",
        2400..2600 => "revered",
        _ => "renowned",
    }
}

#[derive(serde::Deserialize)]
struct AddressQuery {
    address: Option<String>,
}

async fn score(Query(query): Query<AddressQuery>) -> Response {
    let Some(address) = query.address.as_deref().and_then(|a| a.parse::<Address>().ok()) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "message": "address must be an Ethereum address" })))
            .into_response();
    };
    match score_of(address) {
        Some(score) => Json(json!({ "score": score, "level": level_of(score) })).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "message": "profile not found" }))).into_response(),
    }
}

/// Serves the stand-in on a free local port until `stop`; returns its base URL.
pub async fn serve(stop: CancellationToken) -> std::io::Result<String> {
    crate::serve_locally(Router::new().route("/score/address", get(score)), "Ethos", stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_stable_and_cover_every_outcome() {
        let scores: Vec<Option<u32>> = (1..=200u8).map(|n| score_of(Address::repeat_byte(n))).collect();
        assert_eq!(scores, (1..=200u8).map(|n| score_of(Address::repeat_byte(n))).collect::<Vec<_>>());
        assert!(scores.iter().any(Option::is_none));
        assert!(scores.iter().flatten().any(|s| *s < 800));
        assert!(scores.iter().flatten().any(|s| (800..1400).contains(s)));
        assert!(scores.iter().flatten().any(|s| *s >= 1400));
        assert!(scores.iter().flatten().all(|s| *s <= 2800));
        assert_eq!(level_of(799), "untrusted");
        assert_eq!(level_of(1400), "known");
        assert_eq!(level_of(2800), "renowned");
    }
}
