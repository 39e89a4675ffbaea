//! Calling the API in-process, as the route tests do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use animoca_api::{AppState, router};
use animoca_test_support::TestDb;
use axum::{
    body::Body,
    http::{Request, StatusCode},
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
