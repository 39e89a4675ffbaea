//! Chain-proven writes (SPEC §6): registration of credentials and personas,
//! persona credential links, proposal text, votes and executions, each against
//! real anvil transactions with the real indexer running, and each forgery of
//! issue 9 item 6 refused with a clear 403/422.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionReceipt,
};
use animoca_api::{AppState, auth::issue_token, proof::ChainAccess, router};
use animoca_chain::bindings::{CredentialTokenFactory, GovernanceSlashing};
use animoca_domain::{MarketType, format_units};
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

struct Api {
    app: Router,
    state: AppState,
}

impl Api {
    fn new(db: &TestDb, chain: &TestChain, index_wait: Duration) -> Self {
        let mut state = AppState::new(db.pool.clone());
        state.limits.per_ip_per_minute = std::num::NonZeroU32::MAX;
        state.chain = Some(ChainAccess { provider: chain.provider.clone(), index_wait });
        Api { app: router(state.clone()), state }
    }

    fn token(&self, who: Address) -> String {
        issue_token(&self.state.auth, who).unwrap().0
    }

    async fn call(&self, method: &str, uri: &str, who: Option<Address>, body: Value) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(who) = who {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", self.token(who)));
        }
        let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(&self, uri: &str, who: Address, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(who), body).await
    }

    async fn get(&self, uri: &str) -> Value {
        let (status, body) = self.call("GET", uri, None, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body["data"].clone()
    }
}

fn hash(receipt: &TransactionReceipt) -> String {
    format!("{:#x}", receipt.transaction_hash)
}

/// Asserts an error status and that the message mentions `needle`.
fn refused(result: (StatusCode, Value), status: StatusCode, needle: &str) {
    let (actual, body) = result;
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{message:?} should mention {needle:?}");
}

/// A transaction to `factory` that reverts (the market exists already).
async fn reverted_factory_call(chain: &TestChain, spec: &MarketSpec, from: Address) -> TransactionReceipt {
    let factory = CredentialTokenFactory::new(chain.deployment.credential_factory, &chain.provider);
    let call = factory
        .createCredentialToken(
            spec.id,
            "dup".into(),
            "DUP".into(),
            spec.stake,
            spec.token_reserves,
            spec.usdc_reserves,
            U256::ZERO,
        )
        .from(from)
        .gas(3_000_000);
    let receipt = call.send().await.unwrap().get_receipt().await.unwrap();
    assert!(!receipt.status(), "a second market with the same id reverts");
    receipt
}

/// Runs the indexer as `index` does, until `stop` (the test's end drops the database under it).
fn spawn_indexer(db: &TestDb, mut indexer: Indexer, stop: CancellationToken) {
    let options = db.options.clone();
    tokio::spawn(async move {
        let mut leader = Leader::acquire(&options, 31_337, Duration::from_millis(100), &stop).await.unwrap().unwrap();
        if let Err(error) = indexer.run(&mut leader, stop).await {
            eprintln!("indexer stopped: {error}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_proven_on_chain_and_forgeries_refused() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let (alice, bob, carol) = (chain.account(1), chain.account(2), chain.account(3));
    let credential = MarketSpec::new(MarketType::Credential, "degree");
    let (token, created) = chain.create_market(&credential, alice).await;
    // The indexer records the deployment but has not run: the write is accepted (202).
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let api = Api::new(&db, &chain, Duration::ZERO);
    let body = json!({
        "txHash": hash(&created),
        "credentialId": format!("{:#x}", credential.id),
        "issuerName": "Acme University",
        "credentialType": "degree",
        "description": "A degree",
        "name": credential.name,
        "symbol": credential.symbol,
        "stakeAmount": format_units(credential.stake, 6),
    });
    let (status, early) = api.post("/api/credentials", alice, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{early}");
    assert_eq!(early["data"]["indexed"], false);
    assert_eq!(early["data"]["token_address"], format!("{token:#x}"));
    assert_eq!(early["data"]["issuer_address"], format!("{alice:#x}"));
    assert_eq!(early["data"]["block_number"], created.block_number.unwrap());

    let stop = CancellationToken::new();
    spawn_indexer(&db, indexer, stop.clone());
    let api = Api::new(&db, &chain, Duration::from_secs(10));
    // The same caller again: idempotent (200), answered from the indexed tables.
    let (status, again) = api.post("/api/credentials", alice, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let data = &again["data"];
    assert_eq!(data["indexed"], true);
    assert_eq!(data["credential_id"], format!("{:#x}", credential.id));
    assert_eq!(data["token_address"], format!("{token:#x}"));
    assert_eq!(data["display_name"], "Acme University");
    assert_eq!(data["category"], "degree");
    assert_eq!(data["verification_status"], "pending");
    assert_eq!(data["total_staked"], format_units(credential.stake, 6), "the stake comes from the chain");
    let detail = api.get(&format!("/api/credentials/{:#x}", credential.id)).await;
    assert_eq!(detail["display_name"], "Acme University");
    let listed = api.get("/api/credentials?status=pending&type=degree").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Forgeries and misuse.
    let (status, _) = api.call("POST", "/api/credentials", None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "writes need the JWT");
    refused(api.post("/api/credentials", bob, body.clone()).await, StatusCode::FORBIDDEN, "not by the signed-in");
    let approval = chain.approve_usdc(alice, bob, usdc(1)).await;
    let to_usdc = json!({ "txHash": hash(&approval) });
    refused(
        api.post("/api/credentials", alice, to_usdc).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not to the credential factory",
    );
    let failed = reverted_factory_call(&chain, &credential, alice).await;
    refused(
        api.post("/api/credentials", alice, json!({ "txHash": hash(&failed) })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reverted",
    );
    let other_id = json!({ "txHash": hash(&created), "credentialId": format!("{:#x}", B256::repeat_byte(7)) });
    refused(
        api.post("/api/credentials", alice, other_id).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "emitted no CredentialTokenCreated for market",
    );
    let wrong_symbol = json!({ "txHash": hash(&created), "symbol": "FAKE" });
    refused(api.post("/api/credentials", alice, wrong_symbol).await, StatusCode::UNPROCESSABLE_ENTITY, "token_symbol");
    let wrong_stake = json!({ "txHash": hash(&created), "stakeAmount": "1" });
    refused(api.post("/api/credentials", alice, wrong_stake).await, StatusCode::UNPROCESSABLE_ENTITY, "stake_amount");
    let unknown = json!({ "txHash": format!("{:#x}", B256::repeat_byte(9)) });
    refused(api.post("/api/credentials", alice, unknown).await, StatusCode::UNPROCESSABLE_ENTITY, "not on chain");
    // The persona factory did not create this credential market.
    refused(
        api.post("/api/personas", alice, json!({ "txHash": hash(&created) })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not to the persona factory",
    );
    // A market registered by another address cannot be taken over.
    let other = MarketSpec::new(MarketType::Credential, "taken");
    let (_, other_created) = chain.create_market(&other, bob).await;
    sqlx::query("INSERT INTO app.market_metadata (market_type, market_id, registered_by) VALUES (0, $1, $2)")
        .bind(other.id.as_slice())
        .bind(carol.as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    // Carol's registration stands until the market is indexed with Bob as its creator
    // (her registration came from a creation the chain no longer has): then Bob's wins.
    let mut takeover = None;
    for _ in 0..100 {
        let (status, body) = api.post("/api/credentials", bob, json!({ "txHash": hash(&other_created) })).await;
        if status != StatusCode::FORBIDDEN {
            takeover = Some((status, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, taken) = takeover.expect("the indexed creator takes the registration over");
    assert_eq!(status, StatusCode::OK, "{taken}");
    let registrant: Vec<u8> = sqlx::query_scalar("SELECT registered_by FROM app.market_metadata WHERE market_id = $1")
        .bind(other.id.as_slice())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(registrant, bob.as_slice());
    // A second registration of a registered market by another caller (Carol posts Bob's creation).
    refused(
        api.post("/api/credentials", carol, json!({ "txHash": hash(&other_created) })).await,
        StatusCode::FORBIDDEN,
        "not by the signed-in",
    );
    for (body, field) in [
        (json!({ "txHash": "0x12" }), "txHash"),
        (json!({ "txHash": hash(&created), "imageUrl": "javascript:alert(1)" }), "image_url"),
        (json!({ "txHash": hash(&created), "socialLinks": [] }), "social_links"),
        (json!({ "txHash": hash(&created), "surprise": 1 }), "body"),
        (json!({ "txHash": hash(&created), "stakeAmount": 5 }), "stakeAmount"),
        (json!({ "description": "no tx" }), "body"),
    ] {
        let (status, reply) = api.post("/api/credentials", alice, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        let named = reply["error"]["details"]["field"].as_str().unwrap();
        assert!(named.contains(field) || field == "body", "{body}: {named}");
    }
    let (status, reply) = api.call("POST", "/api/credentials", Some(alice), Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    // Without a node, a write cannot be proven: 503, never a guess.
    let mut offline = AppState::new(db.pool.clone());
    offline.auth = api.state.auth.clone();
    let offline = Api { app: router(offline.clone()), state: offline };
    refused(offline.post("/api/credentials", alice, body.clone()).await, StatusCode::SERVICE_UNAVAILABLE, "RPC");

    // Personas: social links and linked credentials; links by the owner only.
    let persona = MarketSpec::new(MarketType::Persona, "carol");
    let (_, persona_created) = chain.create_market(&persona, carol).await;
    let persona_body = json!({
        "txHash": hash(&persona_created),
        "personaId": format!("{:#x}", persona.id),
        "displayName": "Carol",
        "bio": "builder",
        "socialLinks": [{ "platform": "x", "handle": "@carol", "url": "https://x.com/carol" }],
        "credentialIds": [format!("{:#x}", credential.id)],
    });
    let (status, registered) = api.post("/api/personas", carol, persona_body).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let data = &registered["data"];
    assert_eq!(data["owner_address"], format!("{carol:#x}"));
    assert_eq!(data["description"], "builder");
    assert_eq!(data["social_links"][0]["handle"], "@carol");
    assert_eq!(data["linked_credentials"][0]["credential_id"], format!("{:#x}", credential.id));
    assert_eq!(data["linked_credentials"][0]["token_symbol"], credential.symbol);
    let second = MarketSpec::new(MarketType::Credential, "license");
    chain.create_market(&second, bob).await;
    chain.mine().await;
    let link_uri = format!("/api/personas/{:#x}/credentials", persona.id);
    let second_id = format!("{:#x}", second.id);
    refused(api.post(&link_uri, bob, json!({ "credentialIds": [second_id] })).await, StatusCode::FORBIDDEN, "owner");
    let missing = format!("{:#x}", B256::repeat_byte(3));
    refused(
        api.post(&link_uri, carol, json!({ "credentialIds": [missing] })).await,
        StatusCode::NOT_FOUND,
        "credential_ids[0]",
    );
    // The second credential is indexed once the indexer has its block.
    let mut linked = Value::Null;
    for _ in 0..100 {
        let (status, body) = api.post(&link_uri, carol, json!({ "credentialIds": [second_id] })).await;
        if status == StatusCode::OK {
            linked = body["data"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(linked.as_array().map(Vec::len), Some(2), "{linked}");
    let (status, _) = api
        .post(&format!("/api/credentials/{:#x}/credentials", credential.id), alice, json!({ "credentialIds": [] }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api.post(&link_uri, carol, json!({ "credentialIds": [] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    refused(
        api.post(
            &format!("/api/personas/{:#x}/credentials", B256::repeat_byte(4)),
            carol,
            json!({ "credentialIds": [second_id] }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "persona",
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_votes_and_executions_are_proven_and_idempotent() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let db = TestDb::migrated().await;
    let (creator, voter, proposer, stranger) = (chain.account(1), chain.account(2), chain.account(3), chain.account(4));
    let market = MarketSpec::new(MarketType::Credential, "governed");
    let (token, _) = chain.create_market(&market, creator).await;
    chain.transfer_tokens(token, creator, voter, tokens(60_000)).await;
    chain.mine().await;
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let stop = CancellationToken::new();
    spawn_indexer(&db, indexer, stop.clone());
    let api = Api::new(&db, &chain, Duration::from_secs(10));

    let (id, proposed) = chain.propose(proposer, MarketType::Credential, market.id, usdc(100)).await.unwrap();
    let body = json!({
        "txHash": hash(&proposed),
        "title": "Fake degrees",
        "description": "The issuer sold degrees.",
        "evidenceLinks": ["https://example.com/report"],
        "marketType": "credential",
        "marketId": format!("{:#x}", market.id),
        "slashAmount": "100",
        "proposerAddress": format!("{proposer:#x}"),
    });
    let (status, created) = api.post("/api/proposals", proposer, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let data = &created["data"];
    assert_eq!(data["proposal_id"], id.to_string());
    assert_eq!(data["title"], "Fake degrees");
    assert_eq!(data["evidence_links"][0], "https://example.com/report");
    assert_eq!(data["status"], "active");
    assert_eq!(data["slash_amount"], "100.000000");
    assert_eq!(data["indexed"], true);
    let mut edited = body.clone();
    edited["title"] = json!("Fake degrees (updated)");
    let (status, again) = api.post("/api/proposals", proposer, edited).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(api.get(&format!("/api/proposals/{id}")).await["title"], "Fake degrees (updated)");
    refused(api.post("/api/proposals", stranger, body.clone()).await, StatusCode::FORBIDDEN, "not by the signed-in");
    let mut wrong_type = body.clone();
    wrong_type["marketType"] = json!("persona");
    refused(api.post("/api/proposals", proposer, wrong_type).await, StatusCode::UNPROCESSABLE_ENTITY, "market_type");
    let mut wrong_slash = body.clone();
    wrong_slash["slashAmount"] = json!("99");
    refused(api.post("/api/proposals", proposer, wrong_slash).await, StatusCode::UNPROCESSABLE_ENTITY, "slash_amount");
    let mut wrong_id = body.clone();
    wrong_id["proposalId"] = json!("77");
    refused(api.post("/api/proposals", proposer, wrong_id).await, StatusCode::UNPROCESSABLE_ENTITY, "proposal 77");
    let governance = GovernanceSlashing::new(chain.deployment.governance, &chain.provider);
    let failed = governance.castVote(U256::from(999), 1).from(proposer).gas(300_000).send().await.unwrap();
    let failed = failed.get_receipt().await.unwrap();
    assert!(!failed.status());
    let reverted = json!({ "txHash": hash(&failed), "title": "x" });
    refused(api.post("/api/proposals", proposer, reverted).await, StatusCode::UNPROCESSABLE_ENTITY, "reverted");
    let (_, market_tx) = chain.create_market(&MarketSpec::new(MarketType::Credential, "elsewhere"), proposer).await;
    refused(
        api.post("/api/proposals", proposer, json!({ "txHash": hash(&market_tx), "title": "x" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not to the governance contract",
    );
    let (status, reply) =
        api.post("/api/proposals", proposer, json!({ "txHash": hash(&proposed), "title": " " })).await;
    assert_eq!((status, reply["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("title")));

    // A vote: answered from the indexed votes, the weight from the chain.
    let cast = chain.cast_vote(voter, id, 1).await.unwrap();
    let vote_uri = format!("/api/proposals/{id}/vote");
    let vote_body = json!({ "txHash": hash(&cast), "voteType": "for" });
    let (status, vote) = api.post(&vote_uri, voter, vote_body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{vote}");
    assert_eq!(vote["data"]["voting_power"], "60000.000000000000000000");
    assert_eq!(vote["data"]["vote_type"], "for");
    assert_eq!(vote["data"]["tx_hash"], hash(&cast));
    let (status, repeat) = api.post(&vote_uri, voter, vote_body.clone()).await;
    assert_eq!((status, &repeat["data"]), (StatusCode::OK, &vote["data"]), "idempotent");
    assert_eq!(api.get(&format!("/api/proposals/{id}")).await["votes_for"], "60000.000000000000000000");
    refused(api.post(&vote_uri, stranger, vote_body.clone()).await, StatusCode::FORBIDDEN, "not by the signed-in");
    refused(
        api.post(&vote_uri, voter, json!({ "txHash": hash(&cast), "voteType": "against" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "vote_type",
    );
    refused(
        api.post("/api/proposals/77/vote", voter, vote_body.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "proposal 77",
    );
    refused(
        api.post(&vote_uri, proposer, json!({ "txHash": hash(&proposed) })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cast no vote",
    );
    let (status, reply) = api.post(&vote_uri, voter, json!({ "txHash": hash(&cast), "voteType": "maybe" })).await;
    assert_eq!((status, reply["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("vote_type")));
    let (status, _) = api.post("/api/proposals/abc/vote", voter, vote_body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Execution after the vote ends.
    chain.advance_time(3_601).await;
    let executed = chain.execute(stranger, id).await.unwrap();
    let exec_uri = format!("/api/proposals/{id}/execute");
    refused(
        api.post(&exec_uri, proposer, json!({ "txHash": hash(&executed) })).await,
        StatusCode::FORBIDDEN,
        "not by the signed-in",
    );
    let (status, done) = api.post(&exec_uri, stranger, json!({ "txHash": hash(&executed) })).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["data"]["status"], "executed");
    assert_eq!(done["data"]["slashed_amount"], "100.000000");
    let on_chain = governance.proposals(id).call().await.unwrap();
    assert!(on_chain.executed);
    let (status, _) = api.post(&exec_uri, stranger, json!({ "txHash": hash(&executed) })).await;
    assert_eq!(status, StatusCode::OK, "idempotent");
    refused(
        api.post(&exec_uri, voter, json!({ "txHash": hash(&cast) })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "did not execute",
    );
    // /ready measures the indexer against the chain head: caught up now...
    let (status, ready) = api.call("GET", "/ready", None, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["data"]["lag_measured_against"], "chain head");
    assert_eq!(ready["data"]["indexer_lag_blocks"], 0, "{ready}");
    // ...and behind once the indexer stops while the chain moves on (10 minutes, 2 blocks).
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    chain.advance_time(600).await;
    chain.mine().await;
    let (status, ready) = api.call("GET", "/ready", None, Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    let details = &ready["error"]["details"];
    assert_eq!(details["indexer"], "lagging", "{ready}");
    assert!(details["indexer_lag_blocks"].as_i64().unwrap() >= 1, "{ready}");
    assert!(details["indexer_lag_seconds"].as_f64().unwrap() >= 600.0, "{ready}");
    assert!(chain.provider.get_block_number().await.unwrap() > 0);
}

/// Any body on any write route, any query string and path segment on any read
/// route: never a 5xx, always the envelope (property tests over real chain data).
/// Values include real transaction hashes, so the chain checks run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bodies_queries_and_paths_never_fail_the_server() {
    use proptest::{prelude::*, test_runner::TestRunner};

    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let me = chain.account(1);
    let market = MarketSpec::new(MarketType::Persona, "fuzzed");
    let (_, created) = chain.create_market(&market, me).await;
    let (_, proposed) = chain.propose(me, MarketType::Persona, market.id, usdc(1)).await.unwrap();
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let stop = CancellationToken::new();
    spawn_indexer(&db, indexer, stop.clone());
    let api = Api::new(&db, &chain, Duration::from_millis(50));
    // Indexed up to the head before the fuzzing starts (`/ready` is among the routes).
    let head = chain.block_number().await;
    while animoca_store::indexing::checkpoint(&db.pool, 31_337).await.unwrap().is_none_or(|c| c.block_number < head) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fields = [
        "txHash",
        "tx_hash",
        "credentialId",
        "personaId",
        "market_id",
        "name",
        "symbol",
        "issuerAddress",
        "stakeAmount",
        "displayName",
        "credentialType",
        "bio",
        "imageUrl",
        "website_url",
        "socialLinks",
        "credentialIds",
        "credential_ids",
        "title",
        "description",
        "evidenceLinks",
        "proposalId",
        "marketType",
        "slashAmount",
        "voteType",
        "ids",
        "username",
        "display_name",
        "avatar_url",
        "message",
        "signature",
    ];
    let known = [hash(&created), hash(&proposed), format!("{:#x}", market.id), format!("{me:#x}")];
    let id_text = format!("{:#x}", market.id);
    let scalar = prop_oneof![
        proptest::sample::select(known.to_vec()).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        "0x[0-9a-f]{0,70}".prop_map(Value::from),
        "[0-9]{1,30}(\\.[0-9]{0,20})?".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    let value = scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    });
    let body = prop_oneof![
        prop::collection::vec((proptest::sample::select(fields.to_vec()), value.clone()), 0..6).prop_map(|pairs| {
            Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
        }),
        value.prop_map(|v| v.to_string()),
        "\\PC{0,60}",
    ];
    let routes = [
        ("POST", "/api/credentials".to_owned()),
        ("POST", "/api/personas".to_owned()),
        ("POST", format!("/api/personas/{:#x}/credentials", market.id)),
        ("POST", "/api/proposals".to_owned()),
        ("POST", "/api/proposals/1/vote".to_owned()),
        ("POST", "/api/proposals/1/execute".to_owned()),
        ("PATCH", "/api/users/me".to_owned()),
        ("POST", format!("/api/users/{me:#x}/notifications/read")),
        ("POST", "/api/auth/verify".to_owned()),
    ];
    let handle = tokio::runtime::Handle::current();
    let token = api.token(me);
    let mut runner = TestRunner::new(proptest::test_runner::Config { cases: 400, ..Default::default() });
    runner
        .run(&(0..routes.len(), body), |(route, body)| {
            let (method, uri) = &routes[route];
            let request = Request::builder()
                .method(*method)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(body.clone()))
                .unwrap();
            let (status, reply) = tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let response = api.app.clone().oneshot(request).await.unwrap();
                    let status = response.status();
                    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                    (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
                })
            });
            prop_assert!(status.as_u16() < 500, "{method} {uri} {body}: {status} {reply}");
            prop_assert!(reply["success"].is_boolean(), "{method} {uri} {body}: {reply}");
            if status.is_client_error() {
                prop_assert!(reply["error"]["code"].is_string(), "{uri}: {reply}");
            }
            Ok(())
        })
        .unwrap();

    // Every read route, with arbitrary query strings and path segments, over real data.
    let segment = prop_oneof![
        proptest::sample::select(known.to_vec()),
        Just(id_text.clone()),
        Just("1".to_owned()),
        "\\PC{0,20}",
        "0x[0-9a-fA-F]{0,66}",
        "[0-9]{1,90}",
    ];
    let keys = prop::collection::vec(
        prop_oneof![
            proptest::sample::select(vec![
                "limit",
                "offset",
                "sortBy",
                "status",
                "search",
                "type",
                "timeFrame",
                "from",
                "to",
                "fill",
                "cursor",
                "side",
                "amount",
                "by",
                "marketType",
                "marketId",
                "unread",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z]{1,8}",
        ],
        0..5,
    );
    let values = prop::collection::vec(
        prop_oneof![
            "[0-9]{0,25}",
            "-[0-9]{1,20}",
            "\\PC{0,30}",
            "[\\x00-\\x1f]{1,3}",
            "[0-9]{1,12}\\.[0-9]{0,20}",
            Just("2026-11-26T00:00:00Z".to_owned()),
            Just("1w".to_owned()),
            Just("true".to_owned()),
            Just("buy".to_owned()),
            Just("volume".to_owned()),
        ],
        5,
    );
    let templates = [
        "/health",
        "/ready",
        "/api/analytics/overview",
        "/api/analytics/trending",
        "/api/analytics/leaderboard",
        "/api/credentials",
        "/api/personas",
        "/api/personas/{}",
        "/api/personas/{}/pool",
        "/api/personas/{}/chart",
        "/api/personas/{}/trades",
        "/api/personas/{}/holders",
        "/api/personas/{}/quote",
        "/api/credentials/{}",
        "/api/proposals",
        "/api/proposals/{}",
        "/api/proposals/{}/votes",
        "/api/users/{}",
        "/api/users/{}/portfolio",
        "/api/users/{}/activity",
        "/api/users/{}/notifications",
        "/openapi.json",
    ];
    let mut runner = TestRunner::new(proptest::test_runner::Config { cases: 600, ..Default::default() });
    runner
        .run(&(0..templates.len(), segment, keys, values, any::<bool>()), |(t, segment, keys, values, signed)| {
            let path = templates[t]
                .replace("{}", &url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>());
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(keys.iter().zip(values.iter()))
                .finish();
            let uri = format!("{path}?{query}");
            let mut request = Request::get(&uri);
            if signed {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request.body(Body::empty()).unwrap();
            let (status, reply) = tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let response = api.app.clone().oneshot(request).await.unwrap();
                    let status = response.status();
                    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
                    (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
                })
            });
            prop_assert!(status.as_u16() < 500, "{uri}: {status} {reply}");
            if uri.starts_with("/openapi.json") {
                return Ok(());
            }
            prop_assert!(reply["success"].is_boolean(), "{uri}: {reply}");
            if status.is_client_error() {
                prop_assert!(reply["error"]["code"].is_string(), "{uri}: {reply}");
            }
            Ok(())
        })
        .unwrap();
    stop.cancel();
}

/// A write wakes an idle indexer: with a one-minute poll and no head
/// subscription, the registration is still answered from the indexed tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_wakes_the_indexer() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    config.poll_interval = Duration::from_secs(60);
    let indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let stop = CancellationToken::new();
    spawn_indexer(&db, indexer, stop.clone());
    let head = chain.block_number().await;
    while animoca_store::indexing::checkpoint(&db.pool, 31_337).await.unwrap().is_none_or(|c| c.block_number < head) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the indexer is asleep now
    let alice = chain.account(1);
    let spec = MarketSpec::new(MarketType::Credential, "wake");
    let (_, created) = chain.create_market(&spec, alice).await;
    let api = Api::new(&db, &chain, Duration::from_secs(8));
    let started = std::time::Instant::now();
    let (status, body) = api.post("/api/credentials", alice, json!({ "txHash": hash(&created) })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["indexed"], true);
    assert!(started.elapsed() < Duration::from_secs(5), "answered in {:?}", started.elapsed());
    stop.cancel();
}
