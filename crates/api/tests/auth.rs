//! Sign-In with Ethereum → JWT, and a write that needs it (`PATCH /api/users/me`):
//! the happy path, and each forgery or misuse rejected with a clear 400/401/409.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::signers::{Signer, local::PrivateKeySigner};
use animoca_api::{AppState, router};
use animoca_test_support::TestDb;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn fresh_nonce(app: &Router) -> String {
    let (status, body) = call(app, "POST", "/api/auth/nonce", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["nonce"].as_str().unwrap().to_owned()
}

fn message(domain: &str, signer: &PrivateKeySigner, uri: &str, chain: u64, nonce: &str) -> String {
    format!(
        "{domain} wants you to sign in with your Ethereum account:\n{}\n\nSign in to Animoca Trade.\n\n\
         URI: {uri}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: 2026-11-26T12:00:00Z",
        signer.address().to_checksum(None)
    )
}

async fn signed(signer: &PrivateKeySigner, message: &str) -> Value {
    let signature = signer.sign_message(message.as_bytes()).await.unwrap();
    json!({ "message": message, "signature": alloy::hex::encode_prefixed(signature.as_bytes()) })
}

#[tokio::test]
async fn sign_in_then_write_and_every_forgery_is_refused() {
    let db = TestDb::migrated().await;
    let app = router(AppState::new(db.pool.clone()));
    let me = PrivateKeySigner::random();

    // Happy path: nonce, sign, token, write.
    let nonce = fresh_nonce(&app).await;
    let good = message("localhost:3000", &me, "http://localhost:3000/login", 31_337, &nonce);
    let (status, body) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&me, &good).await)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["address"], format!("{:#x}", me.address()));
    let patch = json!({ "username": "alice_1", "display_name": "Alice", "bio": "trades credentials" });
    let (status, body) = call(&app, "PATCH", "/api/users/me", Some(&token), Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["display_name"], "Alice");
    let (status, profile) = call(&app, "GET", &format!("/api/users/{:#x}", me.address()), None, None).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["data"]["username"], "alice_1");
    let (_, cleared) = call(&app, "PATCH", "/api/users/me", Some(&token), Some(json!({ "bio": null }))).await;
    assert!(cleared["data"]["bio"].is_null() && cleared["data"]["display_name"] == "Alice", "{cleared}");

    // The same signed message again: the nonce is spent.
    let (status, body) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&me, &good).await)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nonce"), "{body}");

    // Wrong domain, URI, chain; another signer; an expired or unknown nonce.
    for (domain, uri, chain, why) in [
        ("evil.example.com", "http://localhost:3000", 31_337, "domain"),
        ("localhost:3000", "https://evil.example.com", 31_337, "URI"),
        ("localhost:3000", "http://localhost:30001/login", 31_337, "URI"),
        ("localhost:3000", "http://localhost:3000.evil.com/", 31_337, "URI"),
        ("localhost:3000", "http://localhost:3000", 1, "chain"),
    ] {
        let text = message(domain, &me, uri, chain, &fresh_nonce(&app).await);
        let (status, body) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&me, &text).await)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{why}: {body}");
    }
    let other = PrivateKeySigner::random();
    let claimed = message("localhost:3000", &me, "http://localhost:3000", 31_337, &fresh_nonce(&app).await);
    let (status, body) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&other, &claimed).await)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "someone else's signature: {body}");
    let stale = fresh_nonce(&app).await;
    sqlx::query("UPDATE app.auth_nonces SET expires_at = now() - interval '1 second' WHERE nonce = $1")
        .bind(&stale)
        .execute(&db.pool)
        .await
        .unwrap();
    let text = message("localhost:3000", &me, "http://localhost:3000", 31_337, &stale);
    let (status, _) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&me, &text).await)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired nonce");
    // Nonces expired for over a day are dropped when new ones are issued.
    sqlx::query("UPDATE app.auth_nonces SET expires_at = now() - interval '2 days' WHERE nonce = $1")
        .bind(&stale)
        .execute(&db.pool)
        .await
        .unwrap();
    fresh_nonce(&app).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM app.auth_nonces WHERE nonce = $1")
        .bind(&stale)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let text = message("localhost:3000", &me, "http://localhost:3000", 31_337, "neverissued1");
    let (status, _) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&me, &text).await)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unknown nonce");

    // Malformed input names the field.
    for (body, field) in [
        (json!({ "message": "hello", "signature": "0x00" }), "message"),
        (json!({ "message": good, "signature": "0x1234" }), "signature"),
        (json!({ "message": good }), "body"),
        (json!({ "message": 5, "signature": "0x" }), "message"),
    ] {
        let (status, response) = call(&app, "POST", "/api/auth/verify", None, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
        assert_eq!(response["error"]["details"]["field"], field, "{response}");
    }

    // Writes need a valid token.
    for token in [None, Some("not.a.jwt"), Some(&token[..token.len() - 2])] {
        let (status, body) = call(&app, "PATCH", "/api/users/me", token, Some(json!({ "bio": "x" }))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
    }
    for (patch, field) in [
        (json!({ "username": "no spaces" }), "username"),
        (json!({ "avatar_url": "ftp://x" }), "avatar_url"),
        (json!({ "bio": "a\u{0}b" }), "bio"),
        (json!({ "role": "admin" }), "role"),
    ] {
        let (status, body) = call(&app, "PATCH", "/api/users/me", Some(&token), Some(patch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }

    // Usernames are unique.
    let nonce = fresh_nonce(&app).await;
    let theirs = message("localhost:3000", &other, "http://localhost:3000", 31_337, &nonce);
    let (_, body) = call(&app, "POST", "/api/auth/verify", None, Some(signed(&other, &theirs).await)).await;
    let other_token = body["data"]["token"].as_str().unwrap().to_owned();
    let (status, body) =
        call(&app, "PATCH", "/api/users/me", Some(&other_token), Some(json!({ "username": "alice_1" }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
