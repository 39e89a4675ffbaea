//! A user's webhooks (self only, validated, capped, secret shown once) and
//! the reputation read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;

use alloy::primitives::Address;
use animoca_api::{AppState, router};
use animoca_test_support::TestDb;
use axum::http::StatusCode;
use common::call;
use serde_json::json;

#[tokio::test]
async fn webhooks_are_registered_listed_and_deleted_by_their_owner_only() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::MAX;
    state.limits.per_address_per_minute = NonZeroU32::MAX;
    let app = router(state.clone());
    let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
    let uri = format!("/api/users/{alice:#x}/webhooks");
    let hook = json!({ "url": "https://hooks.example.com/animoca", "events": ["large_trade", "stake_slashed"] });

    assert_eq!(call(&app, &state, "POST", &uri, None, Some(hook.clone())).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, &state, "POST", &uri, Some(bob), Some(hook.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&app, &state, "GET", &uri, Some(bob), None).await.0, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({ "url": "ftp://hooks.example.com" }), "url"),
        (json!({ "url": "not a url" }), "url"),
        (json!({ "url": format!("https://example.com/{}", "a".repeat(2100)) }), "url"),
        (json!({ "url": "https://example.com", "events": ["large_trade", "trade"] }), "events[1]"),
        (json!({ "url": "https://example.com", "secret": "mine" }), "secret"),
        (json!({ "url": "http://127.0.0.1:8080/hook" }), "url"),
        (json!({ "url": "http://169.254.169.254/latest/meta-data" }), "url"),
        (json!({ "url": "http://[::1]/hook" }), "url"),
        (json!({ "url": "http://localhost/hook" }), "url"),
        (json!({ "url": "https://10.0.0.7/hook" }), "url"),
    ] {
        let (status, reply) = call(&app, &state, "POST", &uri, Some(alice), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(field), "{field}: {reply}");
    }

    let (status, created) = call(&app, &state, "POST", &uri, Some(alice), Some(hook.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created = &created["data"];
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64, "{secret}");
    assert_eq!(created["events"], json!(["large_trade", "stake_slashed"]));
    assert_eq!(created["active"], true);
    let stored: String = sqlx::query_scalar("SELECT secret FROM app.webhooks").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, secret);
    let (status, reply) = call(&app, &state, "POST", &uri, Some(alice), Some(hook.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "the same URL twice: {reply}");

    let (status, list) = call(&app, &state, "GET", &uri, Some(alice), None).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].get("secret").is_none(), "the secret is shown once");
    assert_eq!(items[0]["id"], created["id"]);

    // At most ten.
    for n in 1..10 {
        let (status, _) =
            call(&app, &state, "POST", &uri, Some(alice), Some(json!({ "url": format!("https://h{n}.example.com") })))
                .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, reply) =
        call(&app, &state, "POST", &uri, Some(alice), Some(json!({ "url": "https://h11.example.com" }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");

    // Deleted by its owner only.
    let id = created["id"].as_str().unwrap();
    let bobs = format!("/api/users/{bob:#x}/webhooks/{id}");
    assert_eq!(call(&app, &state, "DELETE", &bobs, Some(bob), None).await.0, StatusCode::NOT_FOUND);
    let own = format!("{uri}/{id}");
    assert_eq!(call(&app, &state, "DELETE", &own, Some(bob), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&app, &state, "DELETE", &format!("{uri}/abc"), Some(alice), None).await.0, StatusCode::BAD_REQUEST);
    let (status, reply) = call(&app, &state, "DELETE", &own, Some(alice), None).await;
    assert_eq!((status, reply["data"]["deleted"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(call(&app, &state, "DELETE", &own, Some(alice), None).await.0, StatusCode::NOT_FOUND);
    let (_, list) = call(&app, &state, "GET", &uri, Some(alice), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn reputation_is_read_with_its_components_and_history() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::MAX;
    let app = router(state.clone());
    let alice = Address::repeat_byte(0xa1);
    let uri = format!("/api/users/{alice:#x}/reputation");
    assert_eq!(call(&app, &state, "GET", &uri, None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, &state, "GET", "/api/users/0x12/reputation", None, None).await.0, StatusCode::BAD_REQUEST);
    sqlx::query("INSERT INTO app.users (address, reputation_score, reputation_at) VALUES ($1, 160, now())")
        .bind(alice.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    for (hours_ago, score) in [(2, 100), (1, 160)] {
        sqlx::query(
            "INSERT INTO app.reputation_history (kind, subject, computed_at, score, components)
             VALUES ('user', $1, now() - make_interval(hours => $2), $3,
                     jsonb_build_object('ethos', $3 - 10, 'world_id', 0, 'stake', 0, 'slashes', 0,
                                        'activity', 10, 'governance', 0, 'total', $3))",
        )
        .bind(alice.as_slice())
        .bind(hours_ago)
        .bind(score)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let (status, body) = call(&app, &state, "GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["score"], 160);
    assert_eq!(data["components"]["ethos"], 150);
    let history: Vec<i64> = data["history"].as_array().unwrap().iter().map(|p| p["score"].as_i64().unwrap()).collect();
    assert_eq!(history, [100, 160], "oldest first");
    let (_, body) = call(&app, &state, "GET", &format!("{uri}?limit=1"), None, None).await;
    assert_eq!(body["data"]["history"].as_array().unwrap().len(), 1);
    assert_eq!(call(&app, &state, "GET", &format!("{uri}?limit=0"), None, None).await.0, StatusCode::BAD_REQUEST);

    // A market's reputation, the same way.
    let id = alloy::primitives::B256::repeat_byte(0x11);
    let market_uri = format!("/api/personas/{id:#x}/reputation");
    assert_eq!(call(&app, &state, "GET", &market_uri, None, None).await.0, StatusCode::NOT_FOUND);
    sqlx::query(
        "INSERT INTO app.market_metadata (market_type, market_id, registered_by, reputation_score, reputation_at)
         VALUES (1, $1, $2, 77, now())",
    )
    .bind(id.as_slice())
    .bind(alice.as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO app.reputation_history (kind, subject, computed_at, score, components)
         VALUES ('persona', $1, now(), 77, '{\"ethos\": 0, \"world_id\": 0, \"stake\": 40, \"slashes\": 0, \"activity\": 7, \"governance\": 30, \"total\": 77}')",
    )
    .bind(id.as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    let (status, body) = call(&app, &state, "GET", &market_uri, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["data"]["score"].as_i64(), body["data"]["market_type"].as_str()), (Some(77), Some("persona")));
    assert_eq!(body["data"]["components"]["governance"], 30);
    assert_eq!(body["data"]["history"].as_array().unwrap().len(), 1);
    // The other market type with the same id has none.
    let credential_uri = format!("/api/credentials/{id:#x}/reputation");
    assert_eq!(call(&app, &state, "GET", &credential_uri, None, None).await.0, StatusCode::NOT_FOUND);
}
