//! Governance reads against proposals created, voted, executed and canceled on
//! anvil and indexed by the real indexer: status at T and `vote_breakdown`
//! checked against the contract's own `proposals(id)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy::primitives::U256;
use animoca_chain::bindings::GovernanceSlashing;
use animoca_domain::{MarketType, format_units};
use animoca_indexer::{Indexer, IndexerConfig};
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use axum::http::StatusCode;
use common::{get, ok};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|p| p["proposal_id"].as_str().unwrap().to_owned()).collect()
}

fn close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap();
    assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1e-300), "{actual} vs {expected}");
}

#[tokio::test]
async fn proposals_have_the_status_and_breakdown_the_chain_implies() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let db = TestDb::migrated().await;
    let market = MarketSpec::new(MarketType::Credential, "gov");
    let creator = chain.account(1);
    let (token, _) = chain.create_market(&market, creator).await;
    let (carol, dave, proposer) = (chain.account(5), chain.account(6), chain.account(7));
    chain.transfer_tokens(token, creator, dave, tokens(60_000)).await;
    chain.transfer_tokens(token, creator, carol, tokens(1_000)).await;
    chain.mine().await;
    let id = market.id;
    let (executed, _) = chain.propose(proposer, MarketType::Credential, id, usdc(100)).await.unwrap();
    chain.cast_vote(dave, executed, 1).await.unwrap();
    chain.cast_vote(carol, executed, 0).await.unwrap();
    let (canceled, _) = chain.propose(proposer, MarketType::Credential, id, usdc(10)).await.unwrap();
    chain.cancel(proposer, canceled).await.unwrap();
    chain.advance_time(3_601).await;
    chain.execute(proposer, executed).await.unwrap();
    let (defeated, _) = chain.propose(proposer, MarketType::Credential, id, usdc(5)).await.unwrap();
    chain.cast_vote(carol, defeated, 1).await.unwrap(); // far below quorum
    let (succeeded, _) = chain.propose(proposer, MarketType::Credential, id, usdc(6)).await.unwrap();
    chain.cast_vote(dave, succeeded, 1).await.unwrap(); // quorum and a majority, never executed
    chain.advance_time(3_601).await;
    let (active, _) = chain.propose(proposer, MarketType::Credential, id, usdc(7)).await.unwrap();
    chain.cast_vote(dave, active, 2).await.unwrap();
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config)
        .await
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    let t = i64::try_from(chain.latest_timestamp().await).unwrap();

    let all = ok(&db, "/api/proposals").await;
    let [e, c, d, s, a] = [executed, canceled, defeated, succeeded, active].map(|p| p.to_string());
    assert_eq!(ids(&all), [a.clone(), s.clone(), d.clone(), c.clone(), e.clone()], "newest first");
    assert_eq!(all["pagination"]["total"], 5);
    for (status, expected) in [("active", &a), ("succeeded", &s), ("defeated", &d), ("canceled", &c), ("executed", &e)]
    {
        let list = ok(&db, &format!("/api/proposals?status={status}")).await;
        assert_eq!(ids(&list), std::slice::from_ref(expected), "{status}");
        assert_eq!(list["data"][0]["status"], status);
    }
    assert!(ids(&ok(&db, "/api/proposals?marketType=persona").await).is_empty());
    assert_eq!(ids(&ok(&db, &format!("/api/proposals?marketType=credential&marketId={id:#x}&limit=2")).await).len(), 2);

    let governance = GovernanceSlashing::new(chain.deployment.governance, &chain.provider);
    for (proposal, status) in
        [(executed, "executed"), (defeated, "defeated"), (succeeded, "succeeded"), (active, "active")]
    {
        let on_chain = governance.proposals(proposal).call().await.unwrap();
        let detail = ok(&db, &format!("/api/proposals/{proposal}")).await["data"].clone();
        assert_eq!(detail["status"], status);
        assert_eq!(detail["credential_id"], format!("{id:#x}"));
        assert_eq!(detail["votes_for"], format_units(on_chain.forVotes, 18));
        assert_eq!(detail["votes_against"], format_units(on_chain.againstVotes, 18));
        assert_eq!(detail["quorum_required"], format_units(on_chain.quorumRequired, 18));
        assert_eq!(detail["snapshot_block"], u64::try_from(on_chain.snapshotBlock).unwrap());
        let b = &detail["vote_breakdown"];
        let (f, ag, q) = (
            f64::from(on_chain.forVotes / U256::from(10u64.pow(12))),
            f64::from(on_chain.againstVotes / U256::from(10u64.pow(12))),
            f64::from(on_chain.quorumRequired / U256::from(10u64.pow(12))),
        );
        let total = f + ag;
        assert_eq!(b["total_votes"], format_units(on_chain.forVotes + on_chain.againstVotes, 18));
        close(&b["for_percentage"], if total == 0.0 { 0.0 } else { f / total * 100.0 });
        close(&b["against_percentage"], if total == 0.0 { 0.0 } else { ag / total * 100.0 });
        close(&b["quorum_percentage"], total / q * 100.0);
        assert_eq!(b["quorum_reached"], on_chain.forVotes + on_chain.againstVotes >= on_chain.quorumRequired);
        assert_eq!(b["can_execute"], status == "succeeded", "{status}: only a succeeded proposal can execute");
        let remaining = (i64::try_from(on_chain.votingEndsAt).unwrap() - t).max(0) * 1000;
        assert_eq!(b["time_remaining"], remaining, "{status}");
    }
    let executed_detail = ok(&db, &format!("/api/proposals/{executed}")).await["data"].clone();
    assert_eq!(executed_detail["slashed_amount"], "100.000000");
    assert_eq!(executed_detail["votes"].as_array().unwrap().len(), 2);
    assert_eq!(executed_detail["votes"][0]["vote_type"], "against", "newest vote first");
    assert_eq!(executed_detail["votes"][0]["voter_address"], format!("{carol:#x}"));
    let votes = ok(&db, &format!("/api/proposals/{executed}/votes?limit=1&offset=1")).await;
    assert_eq!(votes["data"][0]["vote_type"], "for");
    assert_eq!(votes["data"][0]["voting_power"], "60000.000000000000000000");
    assert_eq!(votes["pagination"]["total"], 2);
    assert_eq!(ok(&db, &format!("/api/proposals/{active}")).await["data"]["votes"][0]["vote_type"], "abstain");

    for (uri, field) in [
        ("/api/proposals/abc", "id"),
        ("/api/proposals/-1/votes", "id"),
        ("/api/proposals?status=passed", "status"),
        ("/api/proposals?marketType=stock", "marketType"),
        ("/api/proposals?marketId=0x12", "marketId"),
        ("/api/proposals?limit=500", "limit"),
    ] {
        let (status, body) = get(&db, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{uri}");
    }
    let (status, _) = get(&db, "/api/proposals/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
