//! Every failure of a request, and its one mapping to HTTP (SPEC §6):
//! `{"success": false, "error": {"code", "message", "details"?}}` with the
//! right status. Bad input is a 400 naming the field; never a 500.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter, path segment or body field is invalid.
    #[error("{field}: {message}")]
    BadRequest {
        /// The offending field, as the client named it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Not signed in, or the sign-in proof does not check out.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed: someone else's transaction or market.
    #[error("{0}")]
    Forbidden(String),
    /// The chain proof of a write does not check out (reverted, another
    /// contract, no such event, mismatched id).
    #[error("{0}")]
    Unprovable(String),
    /// The request conflicts with what exists (e.g. a username taken).
    #[error("{0}")]
    Conflict(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request body exceeds the limit.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// Over a rate limit: retry after this many seconds (429 with `Retry-After`).
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// The database (or another dependency) is unreachable or overloaded.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt row: logged, reported as 500 without details.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { field: field.to_owned(), message: message.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ApiError::Unprovable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "CHAIN_PROOF_FAILED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                ApiError::Unavailable("database".to_owned())
            }
            _ => ApiError::Internal(error.to_string()),
        }
    }
}

impl From<animoca_store::StoreError> for ApiError {
    fn from(error: animoca_store::StoreError) -> Self {
        match error {
            animoca_store::StoreError::Query(error) => error.into(),
            animoca_store::StoreError::Connect { .. } => ApiError::Unavailable("database".to_owned()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = match &self {
            ApiError::BadRequest { field, message } => json!({
                "success": false,
                "error": { "code": code, "message": format!("{field}: {message}"), "details": { "field": field } },
            }),
            ApiError::Internal(detail) => {
                tracing::error!(detail, "request failed");
                json!({ "success": false, "error": { "code": code, "message": "internal error" } })
            }
            other => json!({ "success": false, "error": { "code": code, "message": other.to_string() } }),
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(seconds) = self
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.max(1).to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// A known route with another method: 405 in the envelope.
pub async fn method_not_allowed() -> axum::response::Response {
    let body = json!({ "success": false, "error": { "code": "METHOD_NOT_ALLOWED", "message": "method not allowed on this route" } });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// Unknown routes get the envelope too.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("route".to_owned())
}
