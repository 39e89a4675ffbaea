//! A user's own notifications (self only, cursor paging, unread filter and
//! count, marking read) and the per-address rate limit of signed-in requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;

use alloy::primitives::Address;
use animoca_api::{AppState, auth::issue_token, router};
use animoca_test_support::TestDb;
use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    app: &Router,
    state: &AppState,
    method: &str,
    uri: &str,
    who: Address,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let token = issue_token(&state.auth, who).unwrap().0;
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn notify(db: &TestDb, to: Address, key: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO app.notifications (address, kind, title, body, data, idempotency_key)
         VALUES ($1, 'trade', $2, 'body', '{\"n\": 1}', $2) RETURNING id",
    )
    .bind(to.as_slice())
    .bind(key)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

fn titles(body: &Value) -> Vec<String> {
    body["data"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn notifications_are_read_and_marked_by_their_owner_only() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::MAX;
    let app = router(state.clone());
    let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
    let first = notify(&db, alice, "a1").await;
    let second = notify(&db, alice, "a2").await;
    notify(&db, alice, "a3").await;
    notify(&db, bob, "b1").await;
    let uri = format!("/api/users/{alice:#x}/notifications");

    let (status, _, page) = call(&app, &state, "GET", &format!("{uri}?limit=2"), alice, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(titles(&page), ["a3", "a2"], "newest first");
    assert_eq!(page["pagination"]["unread"], 3);
    assert_eq!(page["data"][0]["data"]["n"], 1);
    assert_eq!(page["data"][0]["read"], false);
    let cursor = page["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, rest) = call(&app, &state, "GET", &format!("{uri}?limit=2&cursor={cursor}"), alice, None).await;
    assert_eq!(titles(&rest), ["a1"]);
    assert!(rest["pagination"]["next_cursor"].is_null(), "last page");

    let (status, _, marked) =
        call(&app, &state, "POST", &format!("{uri}/read"), alice, Some(json!({ "ids": [second.to_string()] }))).await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["data"]["updated"], 1);
    let (_, _, unread) = call(&app, &state, "GET", &format!("{uri}?unread=true"), alice, None).await;
    assert_eq!(titles(&unread), ["a3", "a1"]);
    assert_eq!(unread["pagination"]["unread"], 2);
    let (_, _, all) = call(&app, &state, "POST", &format!("{uri}/read"), alice, None).await;
    assert_eq!(all["data"]["updated"], 2);
    let (_, _, none) = call(&app, &state, "GET", &format!("{uri}?unread=true"), alice, None).await;
    assert!(titles(&none).is_empty());
    let (_, _, listed) = call(&app, &state, "GET", &uri, alice, None).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|n| n["read"] == true && n["read_at"].is_string()));
    // Bob's notification was untouched, and Bob cannot read or mark Alice's.
    let bob_unread: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.notifications WHERE address = $1 AND read_at IS NULL")
            .bind(bob.as_slice())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(bob_unread, 1);
    let (status, _, _) = call(&app, &state, "GET", &uri, bob, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        call(&app, &state, "POST", &format!("{uri}/read"), bob, Some(json!({ "ids": [first.to_string()] }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (method, path, body, field) in [
        ("GET", format!("{uri}?cursor=abc"), None, "cursor"),
        ("GET", format!("{uri}?unread=maybe"), None, "unread"),
        ("GET", format!("{uri}?limit=0"), None, "limit"),
        ("POST", format!("{uri}/read"), Some(json!({ "ids": ["x"] })), "ids[0]"),
        ("POST", format!("{uri}/read"), Some(json!({ "ids": "1" })), "ids"),
        ("GET", "/api/users/0x12/notifications".to_owned(), None, "address"),
    ] {
        let (status, _, reply) = call(&app, &state, method, &path, alice, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {reply}");
        assert_eq!(reply["error"]["details"]["field"], field, "{path}");
    }
    let unsigned = app.clone().oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signed_in_requests_are_limited_per_address_across_ips() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::MAX;
    state.limits.per_address_per_minute = NonZeroU32::new(3).unwrap();
    let app = router(state.clone());
    let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
    let uri = |who: Address| format!("/api/users/{who:#x}/notifications");
    for _ in 0..3 {
        let (status, _, body) = call(&app, &state, "GET", &uri(alice), alice, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, body) = call(&app, &state, "GET", &uri(alice), alice, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let retry: u64 = headers.get(header::RETRY_AFTER).unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address has its own quota; anonymous reads are not limited per address.
    let (status, _, _) = call(&app, &state, "GET", &uri(bob), bob, None).await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = app.clone().oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
}
