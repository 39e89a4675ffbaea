//! `POST/GET /api/personas/{id}/verify/worldcoin`: owner only, every field
//! checked, the signal bound to the signed-in address, one human one persona
//! (409), the proof queued once as a `work` job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;

use alloy::primitives::{Address, B256, keccak256};
use animoca_api::{AppState, router, worldid::signal_hash};
use animoca_test_support::TestDb;
use axum::http::StatusCode;
use common::call;
use serde_json::{Value, json};

async fn add_persona(db: &TestDb, id: B256, owner: Address) {
    sqlx::query(
        "INSERT INTO markets (market_type, market_id, token_address, creator_address, factory_address, amm_address,
                              token_name, token_symbol, initial_stake, chain_id, created_block, created_block_hash,
                              created_tx_hash, created_log_index, created_at)
         VALUES (1, $1, $2, $3, $3, $3, 'P', 'P', 1000, 31337, 1, $1, $1, $4, now())",
    )
    .bind(id.as_slice())
    .bind(&id.as_slice()[..20])
    .bind(owner.as_slice())
    .bind(i32::from(id[0]))
    .execute(&db.pool)
    .await
    .unwrap();
}

fn proof(nullifier: &str) -> Value {
    json!({
        "nullifier_hash": nullifier,
        "merkle_root": "0x2264a66d162d7893e12ea8e3c072c51e785bc085ad655f64c10c1a61e00f0bc2",
        "proof": "0x1aa8b8f3b2d2de5ff452c0e1a83e29d6bf46fb83ef35dc5957121ff3d3698a11",
        "verification_level": "orb",
    })
}

#[test]
fn the_signal_hash_is_idkits_hash_to_field_of_the_address() {
    let address = Address::repeat_byte(0x42);
    let hashed = keccak256(address.as_slice());
    let signal = signal_hash(address);
    assert_eq!(signal[0], 0, "shifted right by 8 bits");
    assert_eq!(&signal[1..], &hashed[..31]);
}

#[tokio::test]
async fn proofs_are_checked_and_queued_once_for_the_owner_only() {
    let db = TestDb::migrated().await;
    let mut state = AppState::new(db.pool.clone());
    state.limits.per_ip_per_minute = NonZeroU32::MAX;
    let app = router(state.clone());
    let (owner, stranger) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let (persona, other) = (B256::repeat_byte(0x11), B256::repeat_byte(0x22));
    add_persona(&db, persona, owner).await;
    add_persona(&db, other, owner).await;
    let uri = format!("/api/personas/{persona:#x}/verify/worldcoin");

    let (status, body) = call(&app, &state, "GET", &uri, None, None).await;
    assert_eq!((status, body["data"]["status"].as_str()), (StatusCode::OK, Some("none")), "{body}");

    let (status, _) = call(&app, &state, "POST", &uri, None, Some(proof("0x01"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, &state, "POST", &uri, Some(stranger), Some(proof("0x01"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let unknown = format!("/api/personas/{:#x}/verify/worldcoin", B256::repeat_byte(0x33));
    let (status, _) = call(&app, &state, "POST", &unknown, Some(owner), Some(proof("0x01"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let credential = format!("/api/credentials/{persona:#x}/verify/worldcoin");
    let (status, _) = call(&app, &state, "POST", &credential, Some(owner), Some(proof("0x01"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (field, value) in [
        ("nullifier_hash", json!("12ab")),
        ("nullifier_hash", json!(format!("0x{}", "a".repeat(65)))),
        ("merkle_root", json!("0xzz")),
        ("proof", json!("")),
        ("verification_level", json!("iris")),
        ("signal_hash", json!(format!("{:#x}", signal_hash(stranger)))),
    ] {
        let mut body = proof("0x01");
        body[field] = value;
        let (status, reply) = call(&app, &state, "POST", &uri, Some(owner), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap_or_default().contains(field), "{field}: {reply}");
    }
    let mut extra = proof("0x01");
    extra["credential_type"] = json!("x");
    let (status, _) = call(&app, &state, "POST", &uri, Some(owner), Some(extra)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Accepted: queued once, with the signal of the signed-in address.
    let mut good = proof("0xAB01");
    good["signal_hash"] = json!(format!("{:#x}", signal_hash(owner)));
    let (status, body) = call(&app, &state, "POST", &uri, Some(owner), Some(good.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["status"], "pending");
    let job_id = body["data"]["job_id"].as_str().unwrap().to_owned();
    let (status, again) = call(&app, &state, "POST", &uri, Some(owner), Some(good)).await;
    assert_eq!((status, again["data"]["job_id"].as_str()), (StatusCode::ACCEPTED, Some(job_id.as_str())));
    let payload: Value = sqlx::query_scalar("SELECT payload FROM app.jobs WHERE kind = 'worldid_persona'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(payload["signal_hash"], format!("{:#x}", signal_hash(owner)));
    let canonical = format!("0x{:0>64}", "ab01");
    assert_eq!(payload["nullifier_hash"], canonical.as_str(), "one spelling: 0x + 64 lowercase digits");
    let (_, body) = call(&app, &state, "GET", &uri, None, None).await;
    assert_eq!(body["data"]["status"], "pending");

    // The nullifier verified this persona: 200; another persona: 409.
    sqlx::query(
        "INSERT INTO app.worldid_nullifiers (action, nullifier_hash, persona_id, address, verification_level)
         VALUES ('verify-persona', $3, $1, $2, 'orb')",
    )
    .bind(persona.as_slice())
    .bind(owner.as_slice())
    .bind(&canonical)
    .execute(&db.pool)
    .await
    .unwrap();
    let (status, body) = call(&app, &state, "POST", &uri, Some(owner), Some(proof("0xab01"))).await;
    assert_eq!((status, body["data"]["status"].as_str()), (StatusCode::OK, Some("verified")), "{body}");
    let other_uri = format!("/api/personas/{other:#x}/verify/worldcoin");
    // The same field element spelled another way is the same nullifier.
    let (status, body) = call(&app, &state, "POST", &other_uri, Some(owner), Some(proof("0x0000AB01"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("one human, one persona") && !message.contains("0x"), "names no persona: {body}");

    // The outcome, once the job has run.
    sqlx::query("UPDATE app.jobs SET state = 'dead'").execute(&db.pool).await.unwrap();
    // A proof that could not be checked is queued again when posted again.
    sqlx::query("DELETE FROM app.worldid_nullifiers").execute(&db.pool).await.unwrap();
    let mut good = proof("0xAB01");
    good["signal_hash"] = json!(format!("{:#x}", signal_hash(owner)));
    let (status, again) = call(&app, &state, "POST", &uri, Some(owner), Some(good.clone())).await;
    assert_eq!((status, again["data"]["job_id"].as_str()), (StatusCode::ACCEPTED, Some(job_id.as_str())));
    let job_state: String = sqlx::query_scalar("SELECT state FROM app.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(job_state, "pending");
    // A decided proof gets its decision.
    sqlx::query("UPDATE app.jobs SET state = 'done', result = '{\"status\": \"rejected\"}'")
        .execute(&db.pool)
        .await
        .unwrap();
    let (status, again) = call(&app, &state, "POST", &uri, Some(owner), Some(good)).await;
    assert_eq!((status, again["data"]["status"].as_str()), (StatusCode::OK, Some("rejected")), "{again}");
    sqlx::query(
        "INSERT INTO app.verifications (subject, market_type, market_id, provider, status, level, reason)
         VALUES ($1, 1, $2, 'worldid', 'verified', 'orb', 'World ID proof of personhood verified')",
    )
    .bind(owner.as_slice())
    .bind(persona.as_slice())
    .execute(&db.pool)
    .await
    .unwrap();
    let (_, body) = call(&app, &state, "GET", &uri, None, None).await;
    assert_eq!(body["data"]["status"], "verified", "{body}");
    assert_eq!(body["data"]["verification_level"], "orb");
}
