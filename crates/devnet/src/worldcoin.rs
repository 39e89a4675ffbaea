//! A stand-in for Worldcoin's Developer Portal verify endpoint on the devnet, so
//! World ID verification works offline: `POST /api/v2/verify/{app_id}` answers in
//! Worldcoin's documented shapes. A proof whose hex digits are all zeros is refused
//! with `invalid_proof` (so the rejected path can be tried); any other well-formed
//! proof is accepted. Nothing is checked cryptographically: development only.

use axum::{
    Json, Router,
    extract::{Path, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The app id `dev` configures the job workers with.
pub const DEV_APP_ID: &str = "app_staging_devnet";

/// Whether the stand-in refuses `proof`: hex digits that are all zeros.
pub fn refuses(proof: &str) -> bool {
    let digits = proof.strip_prefix("0x").unwrap_or(proof);
    !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

fn error(code: &str, detail: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "code": code, "detail": detail, "attribute": null }))).into_response()
}

async fn verify(Path(app_id): Path<String>, body: Result<Json<Value>, JsonRejection>) -> Response {
    if !app_id.starts_with("app_") {
        return (StatusCode::NOT_FOUND, Json(json!({ "code": "not_found", "detail": "App not found." })))
            .into_response();
    }
    let Ok(Json(body)) = body else { return error("invalid", "The request body must be JSON.") };
    for field in ["nullifier_hash", "merkle_root", "proof", "verification_level", "action"] {
        if !body[field].is_string() {
            return error("required", &format!("This attribute is required: {field}."));
        }
    }
    if refuses(body["proof"].as_str().unwrap_or_default()) {
        return error("invalid_proof", "The provided proof is invalid and it cannot be verified. (devnet stand-in)");
    }
    Json(json!({
        "success": true,
        "action": body["action"],
        "nullifier_hash": body["nullifier_hash"],
        "created_at": chrono::Utc::now().to_rfc3339(),
    }))
    .into_response()
}

/// Serves the stand-in on a free local port until `stop`; returns its base URL.
pub async fn serve(stop: CancellationToken) -> std::io::Result<String> {
    crate::serve_locally(Router::new().route("/api/v2/verify/{app_id}", post(verify)), "Worldcoin", stop).await
}
