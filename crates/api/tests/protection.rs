//! The protections around the handlers: rate limit (429 + Retry-After), body
//! size limit (413), CORS from the configured origins, request ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, num::NonZeroU32};

use animoca_api::{AppState, router};
use animoca_test_support::TestDb;
use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode, header},
};
use serde_json::Value;
use tower::ServiceExt;

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn limits_cors_and_request_ids() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::new(4).unwrap();
    state.limits.cors_origins = vec!["https://app.example.com".to_owned()];
    let app = router(state);

    // Request ids: generated, or the client's echoed.
    let (status, headers, _) = send(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let generated = headers.get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let (_, again, _) = send(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    let second = again.get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert!(generated.len() > 32 && generated != second, "unique ids: {generated}, {second}");
    let (_, headers, _) =
        send(&app, Request::get("/health").header("x-request-id", "client-42").body(Body::empty()).unwrap()).await;
    assert_eq!(headers.get("x-request-id").unwrap(), "client-42");

    // CORS: the configured origin is allowed, another is not.
    let preflight = |origin: &str| {
        Request::options("/api/credentials")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = send(&app, preflight("https://app.example.com")).await;
    assert_eq!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "https://app.example.com");
    let (_, headers, _) = send(&app, preflight("https://evil.example.com")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // Preflights are answered before the limiter; the fourth request passes, the fifth is refused.
    let (status, _, _) = send(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Another client IP has its own quota.
    let from = |ip: [u8; 4]| {
        let mut request = Request::get("/health").body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        request
    };
    for _ in 0..4 {
        assert_eq!(send(&app, from([10, 0, 0, 2])).await.0, StatusCode::OK, "a second IP");
    }
    assert_eq!(send(&app, from([10, 0, 0, 2])).await.0, StatusCode::TOO_MANY_REQUESTS, "its own quota, spent");
    let (status, headers, body) = send(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let retry: u64 = headers.get(header::RETRY_AFTER).unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn an_oversized_body_is_a_413_in_the_envelope() {
    let db = TestDb::migrated().await;
    let state_for_token = AppState::new(db.pool.clone());
    let app = router(state_for_token.clone());
    let big = vec![b'x'; 65 * 1024];
    let request = Request::post("/api/credentials")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
    // Streamed without a Content-Length: refused while reading, in the envelope too.
    let chunks = futures_util::stream::iter((0..70).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024])));
    let request = Request::patch("/api/users/me")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", token(&state_for_token)))
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
}

fn token(state: &AppState) -> String {
    animoca_api::auth::issue_token(&state.auth, alloy_primitives::Address::repeat_byte(1)).unwrap().0
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.metrics = animoca_api::telemetry::install_recorder();
    assert!(state.metrics.is_some());
    let app = router(state);
    let id = "0x00000000000000000000000000000000000000000000000000000000000000aa";
    let (status, _, _) = send(&app, Request::get(format!("/api/personas/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(text.contains(r#"animoca_api_requests_total{route="/api/{kind}/{id}",status="404"} 1"#), "{text}");
    assert!(!text.contains(id), "raw ids never become labels");
}
