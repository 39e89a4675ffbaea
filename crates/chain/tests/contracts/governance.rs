//! GovernanceSlashing: proposals (snapshot, deadline, quorum), snapshot-weighted votes
//! and tallies, execution (slash to the treasury), defeat, cancellation, and every
//! documented revert, with SPEC §5's proposal status rules at their boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::TransactionReceipt,
    sol_types::SolEvent,
};
use animoca_chain::{
    ChainError,
    bindings::{
        GovernanceSlashing::{self, GovernanceSlashingErrors as GovError},
        MockUSDC, StakeVault,
    },
    deploy::send,
};
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain, tokens, usdc};

use crate::common::{
    BPS, Market, address_topic, events, expect_revert, log_signatures, market_with, single_event, topics, uint_topic,
};

const AGAINST: u8 = 0;
const FOR: u8 = 1;
const ABSTAIN: u8 = 2;

// `GovernanceSlashing.ProposalState`.
const ACTIVE: u8 = 0;
const CANCELED: u8 = 1;
const DEFEATED: u8 = 2;
const SUCCEEDED: u8 = 3;
const EXECUTED: u8 = 4;

/// Voting period of these tests' deployments: one hour.
const VOTING_PERIOD: u64 = 3_600;
/// Quorum of these tests' deployments: 5 % of the snapshot supply.
const QUORUM_BPS: u16 = 500;

/// A market whose creator (10,000 tokens left) handed tokens to three voters before any
/// proposal: alice 40,000, bob 30,000, carol 20,000. Supply 1,100,000 (1,000,000 in the
/// pool), so the quorum is 55,000 tokens.
struct Fixture {
    chain: TestChain,
    m: Market,
    alice: Address,
    bob: Address,
    carol: Address,
    /// Proposes; holds no tokens.
    proposer: Address,
    /// Holds no tokens.
    outsider: Address,
}

impl Fixture {
    async fn new(market: MarketType) -> Fixture {
        let chain = TestChain::start_with(|p| {
            p.voting_period_secs = VOTING_PERIOD;
            p.quorum_bps = QUORUM_BPS;
        })
        .await;
        let m = market_with(&chain, MarketSpec::new(market, "governed")).await;
        let (alice, bob, carol) = (chain.account(2), chain.account(3), chain.account(4));
        for (voter, amount) in [(alice, 40_000), (bob, 30_000), (carol, 20_000)] {
            chain.transfer_tokens(m.token, m.creator, voter, tokens(amount)).await;
        }
        let (proposer, outsider) = (chain.account(5), chain.account(6));
        Fixture { chain, m, alice, bob, carol, proposer, outsider }
    }

    fn market_type(&self) -> u8 {
        self.m.spec.market.as_u8()
    }

    /// The quorum this market's proposals must have: supply × quorumBps / 10000.
    fn quorum(&self) -> U256 {
        (self.m.spec.token_reserves + self.m.spec.creator_tokens) * U256::from(QUORUM_BPS) / U256::from(BPS)
    }

    /// Proposes to slash `amount` as `proposer`; returns the id (from `ProposalCreated`) and receipt.
    async fn propose(&self, amount: U256) -> (U256, TransactionReceipt) {
        let (id, receipt) =
            self.chain.propose(self.proposer, self.m.spec.market, self.m.spec.id, amount).await.unwrap();
        let created = single_event::<GovernanceSlashing::ProposalCreated>(&receipt, self.chain.deployment.governance);
        assert_eq!(created.proposalId, id);
        (id, receipt)
    }

    async fn vote(&self, id: U256, voter: Address, support: u8) -> Result<TransactionReceipt, ChainError> {
        self.chain.cast_vote(voter, id, support).await
    }

    async fn execute(&self, id: U256) -> Result<TransactionReceipt, ChainError> {
        self.chain.execute(self.outsider, id).await
    }

    async fn cancel(&self, id: U256, caller: Address) -> Result<TransactionReceipt, ChainError> {
        self.chain.cancel(caller, id).await
    }

    async fn state(&self, id: U256) -> u8 {
        self.chain.governance().state(id).call().await.unwrap()
    }

    /// (for, against, abstain) of a proposal.
    async fn tallies(&self, id: U256) -> (U256, U256, U256) {
        let p = self.chain.governance().proposals(id).call().await.unwrap();
        (p.forVotes, p.againstVotes, p.abstainVotes)
    }

    async fn stake(&self) -> U256 {
        self.chain.vault().stakeOf(self.market_type(), self.m.spec.id).call().await.unwrap()
    }

    async fn voting_ends_at(&self, id: U256) -> u64 {
        self.chain.governance().proposals(id).call().await.unwrap().votingEndsAt
    }

    /// Moves the clock to the end of the voting period of `id` (and mines a block there).
    async fn end_voting(&self, id: U256) {
        let ends = self.voting_ends_at(id).await;
        self.chain.set_next_block_timestamp(ends).await;
        self.chain.mine().await;
    }
}

#[tokio::test]
async fn propose_records_snapshot_deadline_and_quorum() {
    let f = Fixture::new(MarketType::Credential).await;
    let governance = f.chain.governance();
    assert_eq!(governance.votingPeriod().call().await.unwrap(), VOTING_PERIOD);
    assert_eq!(governance.quorumBps().call().await.unwrap(), QUORUM_BPS);
    assert_eq!(governance.marketToken(0, f.m.spec.id).call().await.unwrap(), f.m.token);
    let slash = usdc(400) + U256::from(1);

    let (id, receipt) = f.propose(slash).await;
    assert_eq!(id, U256::from(1));
    assert_eq!(governance.proposalCount().call().await.unwrap(), U256::from(1));
    let created = single_event::<GovernanceSlashing::ProposalCreated>(&receipt, f.chain.deployment.governance);
    assert_eq!(
        (created.proposalId, created.proposer, created.marketId, created.slashAmount),
        (id, f.proposer, f.m.spec.id, slash)
    );
    assert_eq!(
        log_signatures(&receipt),
        vec![
            (f.chain.deployment.stake_vault, StakeVault::StakeLockExtended::SIGNATURE_HASH),
            (f.chain.deployment.governance, GovernanceSlashing::ProposalCreated::SIGNATURE_HASH),
        ]
    );
    assert_eq!(
        topics(&receipt, 1),
        vec![
            GovernanceSlashing::ProposalCreated::SIGNATURE_HASH,
            uint_topic(1),
            address_topic(f.proposer),
            f.m.spec.id
        ]
    );

    let block = receipt.block_number.unwrap();
    let snapshot = block - 1;
    let supply_at_snapshot = f.chain.token(f.m.token).totalSupplyAt(U256::from(snapshot)).call().await.unwrap();
    assert_eq!(supply_at_snapshot, tokens(1_100_000));
    let p = governance.proposals(id).call().await.unwrap();
    assert_eq!(p.marketType, 0);
    assert_eq!(p.marketId, f.m.spec.id);
    assert_eq!(p.proposer, f.proposer);
    assert_eq!(p.slashAmount, slash);
    assert_eq!(p.snapshotBlock, U256::from(snapshot));
    assert_eq!(p.votingEndsAt, f.chain.block_timestamp(block).await + VOTING_PERIOD);
    assert_eq!(p.quorumRequired, supply_at_snapshot * U256::from(QUORUM_BPS) / U256::from(BPS));
    assert_eq!(p.quorumRequired, tokens(55_000));
    assert_eq!((p.forVotes, p.againstVotes, p.abstainVotes), (U256::ZERO, U256::ZERO, U256::ZERO));
    assert!(!p.executed && !p.canceled);
    assert_eq!(f.state(id).await, ACTIVE);
    assert!(!governance.hasVoted(id, f.alice).call().await.unwrap());
    // Proposing moves no money.
    assert_eq!(f.stake().await, f.m.spec.stake);

    // Ids count up; the whole stake may be proposed.
    let (second, _) = f.propose(f.m.spec.stake).await;
    assert_eq!(second, U256::from(2));
    assert_eq!(governance.proposals(second).call().await.unwrap().slashAmount, f.m.spec.stake);
}

#[tokio::test]
async fn persona_proposals_carry_market_type_one() {
    let f = Fixture::new(MarketType::Persona).await;
    let (id, receipt) = f.propose(usdc(10)).await;
    let p = f.chain.governance().proposals(id).call().await.unwrap();
    assert_eq!((p.marketType, p.marketId, p.quorumRequired), (1, f.m.spec.id, f.quorum()));
    let extended = single_event::<StakeVault::StakeLockExtended>(&receipt, f.chain.deployment.stake_vault);
    assert_eq!((extended.marketType, extended.marketId), (1, f.m.spec.id));
}

#[tokio::test]
async fn propose_rejects_unknown_markets_and_bad_amounts() {
    let f = Fixture::new(MarketType::Credential).await;
    let governance = f.chain.governance();
    let id = f.m.spec.id;
    let (governance_ref, proposer) = (&governance, f.proposer);
    let propose = move |market_type: u8, market_id: B256, amount: U256| {
        send("propose", governance_ref.propose(market_type, market_id, amount).from(proposer))
    };

    assert_eq!(expect_revert!(propose(2, id, usdc(1)).await, GovError::InvalidMarketType).marketType, 2);
    for (market_type, market_id) in [(1u8, id), (0u8, B256::repeat_byte(9))] {
        let error = expect_revert!(propose(market_type, market_id, usdc(1)).await, GovError::UnknownMarket);
        assert_eq!((error.marketType, error.marketId), (market_type, market_id));
    }
    for amount in [U256::ZERO, f.m.spec.stake + U256::from(1)] {
        let error = expect_revert!(propose(0, id, amount).await, GovError::InvalidSlashAmount);
        assert_eq!((error.amount, error.stake), (amount, f.m.spec.stake));
    }
    assert_eq!(governance.proposalCount().call().await.unwrap(), U256::ZERO);
    assert_eq!(f.chain.vault().lockedUntil(0, id).call().await.unwrap(), 0);
}

#[tokio::test]
async fn unknown_proposal_ids_revert() {
    let f = Fixture::new(MarketType::Credential).await;
    let governance = f.chain.governance();
    f.propose(usdc(1)).await;
    for id in [U256::ZERO, U256::from(2)] {
        assert_eq!(expect_revert!(f.vote(id, f.alice, FOR).await, GovError::UnknownProposal).proposalId, id);
        assert_eq!(expect_revert!(f.execute(id).await, GovError::UnknownProposal).proposalId, id);
        assert_eq!(expect_revert!(f.cancel(id, f.proposer).await, GovError::UnknownProposal).proposalId, id);
        assert_eq!(expect_revert!(governance.state(id).call().await, GovError::UnknownProposal).proposalId, id);
        let p = governance.proposals(id).call().await.unwrap();
        assert_eq!((p.proposer, p.slashAmount, p.votingEndsAt), (Address::ZERO, U256::ZERO, 0));
    }
}

#[tokio::test]
async fn votes_weigh_the_snapshot_balance_and_tally_by_support() {
    let f = Fixture::new(MarketType::Credential).await;
    let governance = f.chain.governance();
    let (id, _) = f.propose(usdc(300)).await;

    let ballots = [
        (f.alice, FOR, tokens(40_000)),
        (f.bob, AGAINST, tokens(30_000)),
        (f.carol, ABSTAIN, tokens(20_000)),
        (f.m.creator, FOR, tokens(10_000)),
    ];
    let (mut yes, mut no, mut abstain) = (U256::ZERO, U256::ZERO, U256::ZERO);
    for (voter, support, weight) in ballots {
        let receipt = f.vote(id, voter, support).await.unwrap();
        let cast = single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance);
        assert_eq!((cast.proposalId, cast.voter, cast.support, cast.weight), (id, voter, support, weight));
        assert_eq!(
            topics(&receipt, 0),
            vec![GovernanceSlashing::VoteCast::SIGNATURE_HASH, B256::from(id), address_topic(voter)]
        );
        match support {
            FOR => yes += weight,
            AGAINST => no += weight,
            _ => abstain += weight,
        }
        assert_eq!(f.tallies(id).await, (yes, no, abstain));
        assert!(governance.hasVoted(id, voter).call().await.unwrap());
    }
    assert_eq!((yes, no, abstain), (tokens(50_000), tokens(30_000), tokens(20_000)));
    assert_eq!(f.state(id).await, ACTIVE);
    f.end_voting(id).await;
    assert_eq!(f.state(id).await, SUCCEEDED);
}

#[tokio::test]
async fn voting_twice_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(300)).await;
    f.vote(id, f.alice, FOR).await.unwrap();
    for support in [FOR, AGAINST] {
        let error = expect_revert!(f.vote(id, f.alice, support).await, GovError::AlreadyVoted);
        assert_eq!((error.proposalId, error.voter), (id, f.alice));
    }
    assert_eq!(f.tallies(id).await, (tokens(40_000), U256::ZERO, U256::ZERO));
}

#[tokio::test]
async fn tokens_moved_after_the_snapshot_carry_no_weight() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(300)).await;
    // After the snapshot: alice gives everything away, bob buys more.
    f.chain.transfer_tokens(f.m.token, f.alice, f.outsider, tokens(40_000)).await;
    f.chain.buy(f.bob, MarketType::Credential, f.m.spec.id, usdc(1_000), U256::ZERO).await.unwrap();
    assert!(f.chain.token_balance(f.m.token, f.bob).await > tokens(30_000));

    let error = expect_revert!(f.vote(id, f.outsider, FOR).await, GovError::NoVotingPower);
    assert_eq!((error.proposalId, error.voter), (id, f.outsider));
    let receipt = f.vote(id, f.alice, FOR).await.unwrap();
    assert_eq!(
        single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance).weight,
        tokens(40_000)
    );
    let receipt = f.vote(id, f.bob, AGAINST).await.unwrap();
    assert_eq!(
        single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance).weight,
        tokens(30_000)
    );
    assert_eq!(f.tallies(id).await, (tokens(40_000), tokens(30_000), U256::ZERO));
    assert!(!f.chain.governance().hasVoted(id, f.outsider).call().await.unwrap());

    // A proposal made now snapshots the new balances.
    let (later, _) = f.propose(usdc(300)).await;
    let receipt = f.vote(later, f.outsider, FOR).await.unwrap();
    assert_eq!(
        single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance).weight,
        tokens(40_000)
    );
    assert_eq!(expect_revert!(f.vote(later, f.alice, FOR).await, GovError::NoVotingPower).voter, f.alice);
}

#[tokio::test]
async fn a_transfer_in_the_snapshot_block_counts() {
    let f = Fixture::new(MarketType::Credential).await;
    let receipt = f.chain.transfer_tokens(f.m.token, f.m.creator, f.outsider, tokens(5_000)).await;
    let (id, proposal) = f.propose(usdc(300)).await;
    let snapshot = f.chain.governance().proposals(id).call().await.unwrap().snapshotBlock;
    assert_eq!(snapshot, U256::from(receipt.block_number.unwrap()));
    assert_eq!(snapshot + U256::from(1), U256::from(proposal.block_number.unwrap()));
    let receipt = f.vote(id, f.outsider, AGAINST).await.unwrap();
    assert_eq!(
        single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance).weight,
        tokens(5_000)
    );
    let receipt = f.vote(id, f.m.creator, FOR).await.unwrap();
    assert_eq!(
        single_event::<GovernanceSlashing::VoteCast>(&receipt, f.chain.deployment.governance).weight,
        tokens(5_000)
    );
}

#[tokio::test]
async fn voter_without_tokens_is_rejected() {
    let f = Fixture::new(MarketType::Persona).await;
    let (id, _) = f.propose(usdc(300)).await;
    for voter in [f.outsider, f.proposer] {
        let error = expect_revert!(f.vote(id, voter, FOR).await, GovError::NoVotingPower);
        assert_eq!((error.proposalId, error.voter), (id, voter));
    }
    assert_eq!(f.tallies(id).await, (U256::ZERO, U256::ZERO, U256::ZERO));
}

#[tokio::test]
async fn invalid_support_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(300)).await;
    for support in [3u8, 255] {
        assert_eq!(expect_revert!(f.vote(id, f.alice, support).await, GovError::InvalidSupport).support, support);
    }
    assert!(!f.chain.governance().hasVoted(id, f.alice).call().await.unwrap());
    f.vote(id, f.alice, ABSTAIN).await.unwrap();
    assert_eq!(f.tallies(id).await, (U256::ZERO, U256::ZERO, tokens(40_000)));
}

#[tokio::test]
async fn voting_at_or_after_the_deadline_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(300)).await;
    let ends = f.voting_ends_at(id).await;

    f.chain.set_next_block_timestamp(ends - 1).await;
    let receipt = f.vote(id, f.alice, FOR).await.unwrap();
    assert_eq!(f.chain.block_timestamp(receipt.block_number.unwrap()).await, ends - 1);

    f.chain.set_next_block_timestamp(ends).await;
    let error = expect_revert!(f.vote(id, f.bob, FOR).await, GovError::VotingClosed);
    assert_eq!((error.proposalId, error.votingEndsAt), (id, ends));
    f.chain.advance_time(VOTING_PERIOD).await;
    let error = expect_revert!(f.vote(id, f.carol, AGAINST).await, GovError::VotingClosed);
    assert_eq!((error.proposalId, error.votingEndsAt), (id, ends));

    assert_eq!(f.tallies(id).await, (tokens(40_000), U256::ZERO, U256::ZERO));
    // 40,000 for is below the 55,000 quorum.
    assert_eq!(f.state(id).await, DEFEATED);
}

#[tokio::test]
async fn succeeded_proposal_executes_and_slashes_the_stake() {
    let f = Fixture::new(MarketType::Persona).await;
    let slash = usdc(400) + U256::from(123);
    let treasury = f.chain.params.treasury;
    let vault = f.chain.deployment.stake_vault;
    let (id, _) = f.propose(slash).await;
    f.vote(id, f.alice, FOR).await.unwrap();
    f.vote(id, f.bob, AGAINST).await.unwrap();
    f.vote(id, f.carol, ABSTAIN).await.unwrap();
    f.end_voting(id).await;
    assert_eq!(f.state(id).await, SUCCEEDED);
    let treasury_before = f.chain.usdc_balance(treasury).await;

    let receipt = f.execute(id).await.unwrap();
    assert_eq!(
        log_signatures(&receipt),
        vec![
            (vault, StakeVault::StakeSlashed::SIGNATURE_HASH),
            (f.chain.deployment.usdc, MockUSDC::Transfer::SIGNATURE_HASH),
            (f.chain.deployment.governance, GovernanceSlashing::ProposalExecuted::SIGNATURE_HASH),
        ]
    );
    let slashed = single_event::<StakeVault::StakeSlashed>(&receipt, vault);
    assert_eq!((slashed.marketType, slashed.marketId, slashed.proposalId, slashed.amount), (1, f.m.spec.id, id, slash));
    assert_eq!(
        topics(&receipt, 0),
        vec![StakeVault::StakeSlashed::SIGNATURE_HASH, uint_topic(1), f.m.spec.id, B256::from(id)]
    );
    let moved = single_event::<MockUSDC::Transfer>(&receipt, f.chain.deployment.usdc);
    assert_eq!((moved.from, moved.to, moved.value), (vault, treasury, slash));
    let executed = single_event::<GovernanceSlashing::ProposalExecuted>(&receipt, f.chain.deployment.governance);
    assert_eq!((executed.proposalId, executed.slashedAmount), (id, slash));
    assert_eq!(topics(&receipt, 2), vec![GovernanceSlashing::ProposalExecuted::SIGNATURE_HASH, B256::from(id)]);

    assert_eq!(f.stake().await, f.m.spec.stake - slash);
    assert_eq!(f.chain.usdc_balance(vault).await, f.m.spec.stake - slash);
    assert_eq!(f.chain.usdc_balance(treasury).await, treasury_before + slash);
    assert!(f.chain.governance().proposals(id).call().await.unwrap().executed);
    assert_eq!(f.state(id).await, EXECUTED);
}

#[tokio::test]
async fn executing_twice_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(250)).await;
    f.vote(id, f.alice, FOR).await.unwrap();
    f.vote(id, f.bob, FOR).await.unwrap();
    f.end_voting(id).await;
    f.execute(id).await.unwrap();
    let treasury = f.chain.usdc_balance(f.chain.params.treasury).await;

    assert_eq!(expect_revert!(f.execute(id).await, GovError::ProposalAlreadyExecuted).proposalId, id);
    assert_eq!(expect_revert!(f.vote(id, f.carol, FOR).await, GovError::ProposalAlreadyExecuted).proposalId, id);
    assert_eq!(expect_revert!(f.cancel(id, f.proposer).await, GovError::ProposalAlreadyExecuted).proposalId, id);
    assert_eq!(f.stake().await, f.m.spec.stake - usdc(250));
    assert_eq!(f.chain.usdc_balance(f.chain.params.treasury).await, treasury);
    assert_eq!(f.state(id).await, EXECUTED);
}

#[tokio::test]
async fn execution_slashes_at_most_the_remaining_stake() {
    let f = Fixture::new(MarketType::Credential).await;
    let (first, _) = f.propose(usdc(700)).await;
    let (second, _) = f.propose(usdc(700)).await;
    for id in [first, second] {
        f.vote(id, f.alice, FOR).await.unwrap();
        f.vote(id, f.bob, FOR).await.unwrap();
    }
    f.end_voting(second).await;

    let receipt = f.execute(first).await.unwrap();
    let executed = single_event::<GovernanceSlashing::ProposalExecuted>(&receipt, f.chain.deployment.governance);
    assert_eq!(executed.slashedAmount, usdc(700));
    assert_eq!(f.stake().await, usdc(300));

    let receipt = f.execute(second).await.unwrap();
    let slashed = single_event::<StakeVault::StakeSlashed>(&receipt, f.chain.deployment.stake_vault);
    assert_eq!((slashed.proposalId, slashed.amount), (second, usdc(300)));
    let executed = single_event::<GovernanceSlashing::ProposalExecuted>(&receipt, f.chain.deployment.governance);
    assert_eq!((executed.proposalId, executed.slashedAmount), (second, usdc(300)));
    assert_eq!(f.stake().await, U256::ZERO);
    assert_eq!(f.chain.usdc_balance(f.chain.params.treasury).await, f.m.spec.stake);
    assert_eq!(f.chain.usdc_balance(f.chain.deployment.stake_vault).await, U256::ZERO);

    // Nothing left to propose.
    let governance = f.chain.governance();
    let call = governance.propose(0, f.m.spec.id, U256::from(1)).from(f.proposer);
    let error = expect_revert!(send("propose", call).await, GovError::InvalidSlashAmount);
    assert_eq!((error.amount, error.stake), (U256::from(1), U256::ZERO));
}

#[tokio::test]
async fn a_tied_vote_is_defeated_and_cannot_execute() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(500)).await;
    f.vote(id, f.alice, FOR).await.unwrap();
    f.vote(id, f.bob, AGAINST).await.unwrap();
    f.vote(id, f.m.creator, AGAINST).await.unwrap();
    assert_eq!(f.tallies(id).await, (tokens(40_000), tokens(40_000), U256::ZERO));
    f.end_voting(id).await;
    assert_eq!(f.state(id).await, DEFEATED);
    assert_eq!(expect_revert!(f.execute(id).await, GovError::ProposalNotSucceeded).proposalId, id);
    assert_eq!(f.stake().await, f.m.spec.stake);
    assert_eq!(f.state(id).await, DEFEATED);
}

#[tokio::test]
async fn a_vote_below_quorum_is_defeated_even_with_abstentions() {
    let f = Fixture::new(MarketType::Persona).await;
    let (id, _) = f.propose(usdc(500)).await;
    f.vote(id, f.bob, FOR).await.unwrap();
    f.vote(id, f.m.creator, AGAINST).await.unwrap();
    f.vote(id, f.carol, ABSTAIN).await.unwrap();
    let (yes, no, abstain) = f.tallies(id).await;
    // for > against, and with the abstentions 60,000 ≥ 55,000, but only for + against counts.
    assert!(yes > no && yes + no < f.quorum() && yes + no + abstain >= f.quorum());
    f.end_voting(id).await;
    assert_eq!(f.state(id).await, DEFEATED);
    assert_eq!(expect_revert!(f.execute(id).await, GovError::ProposalNotSucceeded).proposalId, id);
    assert_eq!(f.stake().await, f.m.spec.stake);
}

#[tokio::test]
async fn a_vote_reaching_quorum_exactly_succeeds_and_one_unit_less_does_not() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = VOTING_PERIOD;
        p.quorum_bps = QUORUM_BPS;
    })
    .await;
    let spec =
        MarketSpec { creator_tokens: tokens(200_000), ..MarketSpec::new(MarketType::Credential, "exact-quorum") };
    let quorum = (spec.token_reserves + spec.creator_tokens) * U256::from(QUORUM_BPS) / U256::from(BPS);
    assert_eq!(quorum, tokens(60_000));
    let m = market_with(&chain, spec).await;
    let (dave, erin, proposer) = (chain.account(2), chain.account(3), chain.account(5));
    chain.transfer_tokens(m.token, m.creator, dave, quorum).await;
    chain.transfer_tokens(m.token, m.creator, erin, quorum - U256::from(1)).await;
    let governance = chain.governance();
    let mut ids = Vec::new();
    for _ in 0..2 {
        // Fixed gas: the second proposal's lock write depends on its block's timestamp.
        let call = governance.propose(0, m.spec.id, usdc(100)).from(proposer).gas(1_000_000);
        let receipt = send("propose", call).await.unwrap();
        ids.push(single_event::<GovernanceSlashing::ProposalCreated>(&receipt, chain.deployment.governance).proposalId);
    }
    let (exact, short) = (ids[0], ids[1]);
    assert_eq!(governance.proposals(exact).call().await.unwrap().quorumRequired, quorum);
    send("vote", governance.castVote(exact, FOR).from(dave)).await.unwrap();
    send("vote", governance.castVote(short, FOR).from(erin)).await.unwrap();

    chain.advance_time(VOTING_PERIOD).await;
    assert_eq!(governance.state(exact).call().await.unwrap(), SUCCEEDED);
    assert_eq!(governance.state(short).call().await.unwrap(), DEFEATED);
    send("execute", governance.execute(exact)).await.unwrap();
    let error = expect_revert!(send("execute", governance.execute(short)).await, GovError::ProposalNotSucceeded);
    assert_eq!(error.proposalId, short);
    assert_eq!(chain.vault().stakeOf(0, m.spec.id).call().await.unwrap(), m.spec.stake - usdc(100));
}

#[tokio::test]
async fn execution_before_the_deadline_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(500)).await;
    f.vote(id, f.alice, FOR).await.unwrap();
    f.vote(id, f.bob, FOR).await.unwrap();
    let ends = f.voting_ends_at(id).await;

    let error = expect_revert!(f.execute(id).await, GovError::VotingNotEnded);
    assert_eq!((error.proposalId, error.votingEndsAt), (id, ends));
    f.chain.set_next_block_timestamp(ends - 1).await;
    f.chain.mine().await;
    assert_eq!(f.state(id).await, ACTIVE);
    // The next block is exactly at votingEndsAt: execution is allowed from then on.
    f.chain.set_next_block_timestamp(ends).await;
    let receipt = f.execute(id).await.unwrap();
    assert_eq!(f.chain.block_timestamp(receipt.block_number.unwrap()).await, ends);
    assert_eq!(f.stake().await, f.m.spec.stake - usdc(500));
}

#[tokio::test]
async fn proposer_cancels_an_active_proposal() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(500)).await;
    let locked = f.chain.vault().lockedUntil(0, f.m.spec.id).call().await.unwrap();
    f.vote(id, f.alice, FOR).await.unwrap();
    f.vote(id, f.bob, FOR).await.unwrap();

    let receipt = f.cancel(id, f.proposer).await.unwrap();
    let canceled = single_event::<GovernanceSlashing::ProposalCanceled>(&receipt, f.chain.deployment.governance);
    assert_eq!(canceled.proposalId, id);
    assert_eq!(topics(&receipt, 0), vec![GovernanceSlashing::ProposalCanceled::SIGNATURE_HASH, B256::from(id)]);
    assert_eq!(receipt.inner.logs().len(), 1);
    let p = f.chain.governance().proposals(id).call().await.unwrap();
    assert!(p.canceled && !p.executed);
    assert_eq!(f.state(id).await, CANCELED);

    // Nothing more can happen to it, even though it had enough for-votes.
    assert_eq!(expect_revert!(f.vote(id, f.carol, FOR).await, GovError::ProposalIsCanceled).proposalId, id);
    assert_eq!(expect_revert!(f.cancel(id, f.proposer).await, GovError::ProposalIsCanceled).proposalId, id);
    f.end_voting(id).await;
    assert_eq!(expect_revert!(f.execute(id).await, GovError::ProposalIsCanceled).proposalId, id);
    assert_eq!(f.state(id).await, CANCELED);
    assert_eq!(f.stake().await, f.m.spec.stake);
    // The lock it set stays.
    assert_eq!(f.chain.vault().lockedUntil(0, f.m.spec.id).call().await.unwrap(), locked);
}

#[tokio::test]
async fn only_the_proposer_can_cancel() {
    let f = Fixture::new(MarketType::Persona).await;
    let (id, _) = f.propose(usdc(500)).await;
    for caller in [f.alice, f.m.creator, f.chain.account(0)] {
        assert_eq!(expect_revert!(f.cancel(id, caller).await, GovError::NotProposer).caller, caller);
    }
    assert_eq!(f.state(id).await, ACTIVE);
    let receipt = f.cancel(id, f.proposer).await.unwrap();
    assert_eq!(events::<GovernanceSlashing::ProposalCanceled>(&receipt, f.chain.deployment.governance).len(), 1);
    assert_eq!(f.state(id).await, CANCELED);
}

#[tokio::test]
async fn cancel_after_the_deadline_is_rejected() {
    let f = Fixture::new(MarketType::Credential).await;
    let (id, _) = f.propose(usdc(500)).await;
    let ends = f.voting_ends_at(id).await;
    f.chain.set_next_block_timestamp(ends).await;
    let error = expect_revert!(f.cancel(id, f.proposer).await, GovError::VotingClosed);
    assert_eq!((error.proposalId, error.votingEndsAt), (id, ends));
    f.chain.advance_time(VOTING_PERIOD).await;
    let error = expect_revert!(f.cancel(id, f.proposer).await, GovError::VotingClosed);
    assert_eq!((error.proposalId, error.votingEndsAt), (id, ends));
    assert!(!f.chain.governance().proposals(id).call().await.unwrap().canceled);
    assert_eq!(f.state(id).await, DEFEATED);
}
