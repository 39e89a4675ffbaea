//! Real responses validate against `/openapi.json`: every documented operation
//! is called against data from real anvil transactions (happy paths and error
//! paths), and each JSON body is checked with a JSON Schema 2020-12 validator
//! against the schema the document gives for that operation and status. Every
//! schema forbids undocumented properties, so drift either way fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, time::Duration};

use alloy::primitives::{Address, U256};
use animoca_api::{AppState, auth::issue_token, proof::ChainAccess, router};
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig, Leader};
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Checker {
    app: Router,
    state: AppState,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checker {
    /// Calls `method uri` (documented as `template`), validates the answer and returns it.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        uri: &str,
        who: Option<Address>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(who) = who {
            let token = issue_token(&self.state.auth, who).unwrap().0;
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        let method = method.to_lowercase();
        let operation = &self.doc["paths"][template][&method];
        assert!(operation.is_object(), "{method} {template} is not documented");
        self.seen.insert((template.to_owned(), method.clone()));
        let responses = &operation["responses"];
        let documented = responses
            .get(status.as_str())
            .or_else(|| responses.get(format!("{}XX", status.as_u16() / 100)))
            .unwrap_or_else(|| panic!("{method} {uri}: status {status} is not documented"));
        let Some(schema) = documented["content"]["application/json"]["schema"].as_object() else {
            // Not JSON (metrics, the docs page): the documented content type.
            let expected = documented["content"].as_object().and_then(|c| c.keys().next().cloned());
            if let Some(expected) = expected {
                assert!(content_type.starts_with(&expected), "{uri}: {content_type} vs {expected}");
            }
            return (status, Value::Null);
        };
        let json: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{uri}: not JSON"));
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [Value::Object(schema.clone())],
        });
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{method} {uri} ({status}) does not match the document: {errors:#?}\n{json:#}");
        (status, json)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_what_the_document_says() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let db = TestDb::migrated().await;
    let (alice, bob, carol, dave) = (chain.account(1), chain.account(2), chain.account(3), chain.account(4));
    let credential = MarketSpec::new(MarketType::Credential, "doc-credential");
    let persona = MarketSpec::new(MarketType::Persona, "doc-persona");
    let (token, credential_tx) = chain.create_market(&credential, alice).await;
    let (_, persona_tx) = chain.create_market(&persona, carol).await;
    chain.transfer_tokens(token, alice, dave, tokens(60_000)).await;
    chain.buy(bob, MarketType::Credential, credential.id, usdc(50), U256::ZERO).await.unwrap();
    chain.buy(bob, MarketType::Persona, persona.id, usdc(20), U256::ZERO).await.unwrap();
    chain.mine().await;
    let (proposal, proposed) = chain.propose(dave, MarketType::Credential, credential.id, usdc(100)).await.unwrap();
    let cast = chain.cast_vote(dave, proposal, 1).await.unwrap();

    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let stop = CancellationToken::new();
    let (options, indexing) = (db.options.clone(), stop.clone());
    tokio::spawn(async move {
        let mut indexer = indexer;
        let mut leader =
            Leader::acquire(&options, 31_337, Duration::from_millis(100), &indexing).await.unwrap().unwrap();
        if let Err(error) = indexer.run(&mut leader, indexing).await {
            eprintln!("indexer stopped: {error}");
        }
    });
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = std::num::NonZeroU32::MAX;
    state.chain = Some(ChainAccess { provider: chain.provider.clone(), index_wait: Duration::from_secs(10) });
    state.metrics = animoca_api::telemetry::install_recorder();
    let mut api = Checker { app: router(state.clone()), state, doc: Value::Null, seen: BTreeSet::new() };
    let (status, doc) = {
        let response =
            api.app.clone().oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        (
            status,
            serde_json::from_slice::<Value>(&axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap())
                .unwrap(),
        )
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    api.doc = doc;
    api.seen.insert(("/openapi.json".to_owned(), "get".to_owned()));

    let c = format!("{:#x}", credential.id);
    let p = format!("{:#x}", persona.id);
    let hash = |r: &alloy::rpc::types::TransactionReceipt| format!("{:#x}", r.transaction_hash);

    // Writes first (each waits for the indexer).
    let (s, _) = api
        .call(
            "POST",
            "/api/{kind}",
            "/api/credentials",
            Some(alice),
            Some(json!({ "txHash": hash(&credential_tx), "issuerName": "Doc U" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let body = json!({ "txHash": hash(&persona_tx), "displayName": "Carol", "credentialIds": [c],
                       "socialLinks": [{ "platform": "x", "handle": "@c" }] });
    let (s, _) = api.call("POST", "/api/{kind}", "/api/personas", Some(carol), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = api
        .call(
            "POST",
            "/api/{kind}/{id}/credentials",
            &format!("/api/personas/{p}/credentials"),
            Some(carol),
            Some(json!({ "credentialIds": [c] })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(
            "POST",
            "/api/personas/{id}/verify/worldcoin",
            &format!("/api/personas/{p}/verify/worldcoin"),
            Some(carol),
            Some(json!({ "nullifier_hash": "0x01", "merkle_root": "0x02", "proof": "0x03", "verification_level": "orb" })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = api
        .call(
            "POST",
            "/api/proposals",
            "/api/proposals",
            Some(dave),
            Some(json!({ "txHash": hash(&proposed), "title": "Doc" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = api
        .call(
            "POST",
            "/api/proposals/{id}/vote",
            &format!("/api/proposals/{proposal}/vote"),
            Some(dave),
            Some(json!({ "txHash": hash(&cast) })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(
            "POST",
            "/api/proposals/{id}/execute",
            &format!("/api/proposals/{proposal}/execute"),
            Some(dave),
            Some(json!({ "txHash": hash(&cast) })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a vote is not an execution");
    let (s, _) =
        api.call("PATCH", "/api/users/me", "/api/users/me", Some(bob), Some(json!({ "username": "bob" }))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.call("POST", "/api/auth/nonce", "/api/auth/nonce", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call("POST", "/api/auth/verify", "/api/auth/verify", None, Some(json!({ "message": "no", "signature": "0x" })))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    sqlx::query(
        "INSERT INTO app.notifications (address, kind, title, idempotency_key) VALUES ($1, 'trade', 'hi', 'k')",
    )
    .bind(bob.as_slice())
    .execute(&db.pool)
    .await
    .unwrap();

    // Reads, each with data behind it.
    let reads = [
        ("/health", "/health".to_owned()),
        ("/ready", "/ready".to_owned()),
        ("/metrics", "/metrics".to_owned()),
        ("/docs", "/docs".to_owned()),
        ("/api/{kind}", "/api/credentials?status=all&sortBy=price".to_owned()),
        ("/api/{kind}", "/api/personas?status=pending".to_owned()),
        ("/api/{kind}/{id}", format!("/api/credentials/{c}")),
        ("/api/{kind}/{id}", format!("/api/personas/{p}")),
        ("/api/{kind}/{id}/pool", format!("/api/personas/{p}/pool")),
        ("/api/personas/{id}/verify/worldcoin", format!("/api/personas/{p}/verify/worldcoin")),
        ("/api/{kind}/{id}/chart", format!("/api/credentials/{c}/chart?timeFrame=1m&fill=true")),
        ("/api/{kind}/{id}/trades", format!("/api/credentials/{c}/trades?limit=1")),
        ("/api/{kind}/{id}/holders", format!("/api/credentials/{c}/holders")),
        ("/api/{kind}/{id}/quote", format!("/api/credentials/{c}/quote?side=buy&amount=10")),
        ("/api/proposals", "/api/proposals".to_owned()),
        ("/api/proposals/{id}", format!("/api/proposals/{proposal}")),
        ("/api/proposals/{id}/votes", format!("/api/proposals/{proposal}/votes")),
        ("/api/analytics/overview", "/api/analytics/overview".to_owned()),
        ("/api/analytics/trending", "/api/analytics/trending?status=all".to_owned()),
        ("/api/analytics/leaderboard", "/api/analytics/leaderboard".to_owned()),
        ("/api/analytics/leaderboard", "/api/analytics/leaderboard?by=reputation".to_owned()),
        ("/api/users/{address}", format!("/api/users/{bob:#x}")),
        ("/api/users/{address}/portfolio", format!("/api/users/{bob:#x}/portfolio")),
        ("/api/users/{address}/activity", format!("/api/users/{dave:#x}/activity")),
        ("/api/users/{address}/reputation", format!("/api/users/{bob:#x}/reputation")),
        ("/api/{kind}/{id}/reputation", format!("/api/credentials/{c}/reputation")),
    ];
    sqlx::query("INSERT INTO app.users (address, reputation_score, reputation_at) VALUES ($1, 42, now()) ON CONFLICT (address) DO UPDATE SET reputation_score = 42, reputation_at = now()")
        .bind(bob.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO app.reputation_history (kind, subject, computed_at, score, components)
         VALUES ('user', $1, now(), 42, '{\"ethos\": 0, \"world_id\": 0, \"stake\": 0, \"slashes\": 0, \"activity\": 22, \"governance\": 20, \"total\": 42}')",
    )
    .bind(bob.as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE app.market_metadata SET reputation_score = 5, reputation_at = now() WHERE market_type = 0")
        .execute(&db.pool)
        .await
        .unwrap();
    let webhooks = format!("/api/users/{bob:#x}/webhooks");
    let (s, hook) = api
        .call(
            "POST",
            "/api/users/{address}/webhooks",
            &webhooks,
            Some(bob),
            Some(json!({ "url": "https://example.com/h" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    let (s, _) = api.call("GET", "/api/users/{address}/webhooks", &webhooks, Some(bob), None).await;
    assert_eq!(s, StatusCode::OK);
    let hook_id = hook["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call("DELETE", "/api/users/{address}/webhooks/{id}", &format!("{webhooks}/{hook_id}"), Some(bob), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for (template, uri) in &reads {
        let (status, body) = api.call("GET", template, uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (s, list) = api
        .call(
            "GET",
            "/api/users/{address}/notifications",
            &format!("/api/users/{bob:#x}/notifications"),
            Some(bob),
            None,
        )
        .await;
    assert_eq!((s, list["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let (s, _) = api
        .call(
            "POST",
            "/api/users/{address}/notifications/read",
            &format!("/api/users/{bob:#x}/notifications/read"),
            Some(bob),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Error paths answer the error envelope the document describes.
    for (template, uri, expected) in [
        ("/api/{kind}/{id}", "/api/credentials/0x12".to_owned(), StatusCode::BAD_REQUEST),
        ("/api/{kind}/{id}", format!("/api/personas/{c}"), StatusCode::NOT_FOUND),
        ("/api/proposals/{id}", "/api/proposals/999".to_owned(), StatusCode::NOT_FOUND),
        ("/api/{kind}/{id}/quote", format!("/api/credentials/{c}/quote?side=hold"), StatusCode::BAD_REQUEST),
        ("/api/users/{address}/notifications", format!("/api/users/{bob:#x}/notifications"), StatusCode::UNAUTHORIZED),
    ] {
        let (status, _) = api.call("GET", template, &uri, None, None).await;
        assert_eq!(status, expected, "{uri}");
    }
    let (s, _) = api
        .call(
            "GET",
            "/api/users/{address}/notifications",
            &format!("/api/users/{bob:#x}/notifications"),
            Some(alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The docs page is self-contained: every operation and schema, no scripts, nothing remote.
    let page = api.app.clone().oneshot(Request::get("/docs").body(Body::empty()).unwrap()).await.unwrap();
    let page = String::from_utf8(axum::body::to_bytes(page.into_body(), 1 << 22).await.unwrap().to_vec()).unwrap();
    for needle in ["/api/{kind}/{id}/chart", "/api/proposals/{id}/vote", "id=\"schema-Market\"", "volume_24h"] {
        assert!(page.contains(needle), "the docs page shows {needle}");
    }
    assert!(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"), "offline");

    let documented: BTreeSet<(String, String)> = api.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (path.clone(), m.clone())))
        .collect();
    let missed: Vec<_> = documented.difference(&api.seen).collect();
    assert!(missed.is_empty(), "documented but never called: {missed:?}");
    stop.cancel();
}
