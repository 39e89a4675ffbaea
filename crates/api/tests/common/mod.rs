//! Calling the API in-process, as the route tests do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::Address;
use animoca_api::{AppState, auth::issue_token, router};
use animoca_test_support::TestDb;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::Value;
use tower::ServiceExt;

/// `GET uri` on a router over `db` with default settings: status and JSON body.
pub async fn get(db: &TestDb, uri: &str) -> (StatusCode, Value) {
    let app = router(AppState::new(db.pool.clone()));
    let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `GET uri`, asserting a 200 with `success: true`.
pub async fn ok(db: &TestDb, uri: &str) -> Value {
    let (status, body) = get(db, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    assert_eq!(body["success"], true, "{uri}: {body}");
    body
}

/// `method uri` on `app` with a JSON `body`, signed in as `who` when given:
/// status and JSON body.
pub async fn call(
    app: &Router,
    state: &AppState,
    method: &str,
    uri: &str,
    who: Option<Address>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(who) = who {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", issue_token(&state.auth, who).unwrap().0));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
