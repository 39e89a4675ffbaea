//! StakeVault: the market owner's top-ups and withdrawals (events, stake, balances), who
//! may call what, and the withdrawal lock a slashing proposal sets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{B256, U256},
    sol_types::SolEvent,
};
use animoca_chain::{
    bindings::{
        GovernanceSlashing, MockUSDC,
        StakeVault::{self, StakeVaultErrors as VaultError},
    },
    deploy::send,
};
use animoca_domain::MarketType;
use animoca_test_support::{TestChain, usdc};

use crate::common::{address_topic, events, expect_revert, market, single_event, topics, uint_topic};

/// One week, `GovernanceSlashing.EXECUTION_GRACE`.
const EXECUTION_GRACE: u64 = 7 * 24 * 3600;

#[tokio::test]
async fn owner_tops_up_the_stake() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "top-up").await;
    let vault = chain.deployment.stake_vault;
    let amount = U256::from(250_500_001u64);

    let receipt = chain.deposit_stake(m.creator, MarketType::Credential, m.spec.id, amount).await.unwrap();
    let deposited = single_event::<StakeVault::StakeDeposited>(&receipt, vault);
    assert_eq!(
        (deposited.marketType, deposited.marketId, deposited.staker, deposited.amount),
        (0, m.spec.id, m.creator, amount)
    );
    assert_eq!(
        topics(&receipt, 0),
        vec![StakeVault::StakeDeposited::SIGNATURE_HASH, uint_topic(0), m.spec.id, address_topic(m.creator)]
    );
    let moved = single_event::<MockUSDC::Transfer>(&receipt, chain.deployment.usdc);
    assert_eq!((moved.from, moved.to, moved.value), (m.creator, vault, amount));
    assert_eq!(chain.vault().stakeOf(0, m.spec.id).call().await.unwrap(), m.spec.stake + amount);
    assert_eq!(chain.usdc_balance(vault).await, m.spec.stake + amount);
    assert_eq!(chain.usdc_balance(m.creator).await, U256::ZERO);
}

#[tokio::test]
async fn owner_withdraws_the_stake_down_to_zero() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "withdraw").await;
    let vault = chain.deployment.stake_vault;
    let first = usdc(400) + U256::from(1);
    let rest = m.spec.stake - first;

    let receipt = chain.withdraw_stake(m.creator, MarketType::Persona, m.spec.id, first).await.unwrap();
    let withdrawn = single_event::<StakeVault::StakeWithdrawn>(&receipt, vault);
    assert_eq!(
        (withdrawn.marketType, withdrawn.marketId, withdrawn.staker, withdrawn.amount),
        (1, m.spec.id, m.creator, first)
    );
    assert_eq!(
        topics(&receipt, 0),
        vec![StakeVault::StakeWithdrawn::SIGNATURE_HASH, uint_topic(1), m.spec.id, address_topic(m.creator)]
    );
    let moved = single_event::<MockUSDC::Transfer>(&receipt, chain.deployment.usdc);
    assert_eq!((moved.from, moved.to, moved.value), (vault, m.creator, first));
    assert_eq!(chain.vault().stakeOf(1, m.spec.id).call().await.unwrap(), rest);
    assert_eq!(chain.usdc_balance(vault).await, rest);
    assert_eq!(chain.usdc_balance(m.creator).await, first);

    let receipt = send("withdraw", chain.vault().withdraw(1, m.spec.id, rest).from(m.creator)).await.unwrap();
    assert_eq!(single_event::<StakeVault::StakeWithdrawn>(&receipt, vault).amount, rest);
    assert_eq!(chain.vault().stakeOf(1, m.spec.id).call().await.unwrap(), U256::ZERO);
    assert_eq!(chain.usdc_balance(vault).await, U256::ZERO);
    assert_eq!(chain.usdc_balance(m.creator).await, m.spec.stake);
    // The market stays registered: its owner may stake again.
    assert_eq!(chain.vault().marketOwner(1, m.spec.id).call().await.unwrap(), m.creator);
}

#[tokio::test]
async fn withdrawing_more_than_the_stake_reverts() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "too-much").await;
    let requested = m.spec.stake + U256::from(1);
    let result = send("withdraw", chain.vault().withdraw(0, m.spec.id, requested).from(m.creator)).await;
    let error = expect_revert!(result, VaultError::InsufficientStake);
    assert_eq!((error.stake, error.requested), (m.spec.stake, requested));
    assert_eq!(chain.vault().stakeOf(0, m.spec.id).call().await.unwrap(), m.spec.stake);
    assert_eq!(chain.usdc_balance(m.creator).await, U256::ZERO);
}

#[tokio::test]
async fn non_owner_cannot_deposit_or_withdraw() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "not-yours").await;
    let stranger = chain.account(2);
    chain.mint_usdc(stranger, usdc(10)).await;
    chain.approve_usdc(stranger, chain.deployment.stake_vault, usdc(10)).await;

    let result = send("deposit", chain.vault().deposit(0, m.spec.id, usdc(10)).from(stranger)).await;
    assert_eq!(expect_revert!(result, VaultError::NotMarketOwner).caller, stranger);
    let result = send("withdraw", chain.vault().withdraw(0, m.spec.id, usdc(10)).from(stranger)).await;
    assert_eq!(expect_revert!(result, VaultError::NotMarketOwner).caller, stranger);
    // Not even through the factory's entry point.
    let result = send("depositFor", chain.vault().depositFor(0, m.spec.id, stranger, usdc(10)).from(stranger)).await;
    let error = expect_revert!(result, VaultError::NotFactory);
    assert_eq!((error.marketType, error.caller), (0, stranger));

    assert_eq!(chain.vault().stakeOf(0, m.spec.id).call().await.unwrap(), m.spec.stake);
    assert_eq!(chain.usdc_balance(stranger).await, usdc(10));
    assert_eq!(chain.usdc_balance(chain.deployment.stake_vault).await, m.spec.stake);
}

#[tokio::test]
async fn zero_amounts_and_unknown_markets_revert() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "zero-stake-calls").await;
    let vault = chain.vault();
    chain.mint_usdc(m.creator, usdc(5)).await;
    chain.approve_usdc(m.creator, chain.deployment.stake_vault, usdc(5)).await;

    expect_revert!(
        send("deposit", vault.deposit(0, m.spec.id, U256::ZERO).from(m.creator)).await,
        VaultError::ZeroAmount
    );
    expect_revert!(
        send("withdraw", vault.withdraw(0, m.spec.id, U256::ZERO).from(m.creator)).await,
        VaultError::ZeroAmount
    );
    // The same id under the other market type, and an id nobody created.
    for (market_type, id) in [(1u8, m.spec.id), (0u8, B256::repeat_byte(7))] {
        assert_eq!(vault.stakeOf(market_type, id).call().await.unwrap(), U256::ZERO);
        let result = send("deposit", vault.deposit(market_type, id, usdc(5)).from(m.creator)).await;
        let error = expect_revert!(result, VaultError::UnknownMarket);
        assert_eq!((error.marketType, error.marketId), (market_type, id));
        let result = send("withdraw", vault.withdraw(market_type, id, usdc(5)).from(m.creator)).await;
        let error = expect_revert!(result, VaultError::UnknownMarket);
        assert_eq!((error.marketType, error.marketId), (market_type, id));
    }
    assert_eq!(vault.stakeOf(0, m.spec.id).call().await.unwrap(), m.spec.stake);
    assert_eq!(chain.usdc_balance(m.creator).await, usdc(5));
}

#[tokio::test]
async fn only_governance_locks_and_slashes() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "privileged").await;
    let vault = chain.vault();
    for caller in [m.creator, chain.account(0)] {
        let result = send("slash", vault.slash(1, m.spec.id, U256::from(1), usdc(1)).from(caller)).await;
        assert_eq!(expect_revert!(result, VaultError::NotGovernance).caller, caller);
        let result = send("lockUntil", vault.lockUntil(1, m.spec.id, u64::MAX).from(caller)).await;
        assert_eq!(expect_revert!(result, VaultError::NotGovernance).caller, caller);
    }
    assert_eq!(vault.stakeOf(1, m.spec.id).call().await.unwrap(), m.spec.stake);
    assert_eq!(vault.lockedUntil(1, m.spec.id).call().await.unwrap(), 0);
}

#[tokio::test]
async fn a_proposal_locks_withdrawals_until_the_execution_grace_ends() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "locked").await;
    let vault = chain.vault();
    let governance = chain.governance();
    assert_eq!(governance.EXECUTION_GRACE().call().await.unwrap(), EXECUTION_GRACE);

    let receipt = send("propose", governance.propose(0, m.spec.id, usdc(100)).from(chain.account(5))).await.unwrap();
    let proposed_at = chain.block_timestamp(receipt.block_number.unwrap()).await;
    let until = proposed_at + chain.params.voting_period_secs + EXECUTION_GRACE;
    let extended = single_event::<StakeVault::StakeLockExtended>(&receipt, chain.deployment.stake_vault);
    assert_eq!((extended.marketType, extended.marketId, extended.lockedUntil), (0, m.spec.id, until));
    assert_eq!(vault.lockedUntil(0, m.spec.id).call().await.unwrap(), until);
    assert_eq!(
        events::<GovernanceSlashing::ProposalCreated>(&receipt, chain.deployment.governance).len(),
        1,
        "the lock comes with the proposal"
    );

    // Locked right away.
    let result = send("withdraw", vault.withdraw(0, m.spec.id, usdc(1)).from(m.creator)).await;
    assert_eq!(expect_revert!(result, VaultError::StakeLocked).until, until);

    // Top-ups are never locked.
    chain.advance_time(chain.params.voting_period_secs + EXECUTION_GRACE - 100).await;
    chain.mint_usdc(m.creator, usdc(50)).await;
    chain.approve_usdc(m.creator, chain.deployment.stake_vault, usdc(50)).await;
    send("deposit", vault.deposit(0, m.spec.id, usdc(50)).from(m.creator)).await.unwrap();
    let stake = m.spec.stake + usdc(50);
    assert!(chain.latest_timestamp().await < until - 1);

    // Still locked one second before the end.
    chain.set_next_block_timestamp(until - 1).await;
    let result = send("withdraw", vault.withdraw(0, m.spec.id, usdc(1)).from(m.creator)).await;
    assert_eq!(expect_revert!(result, VaultError::StakeLocked).until, until);

    // From the lock's end on, the owner may withdraw everything.
    chain.set_next_block_timestamp(until).await;
    let receipt = send("withdraw", vault.withdraw(0, m.spec.id, stake).from(m.creator)).await.unwrap();
    assert_eq!(chain.block_timestamp(receipt.block_number.unwrap()).await, until);
    let withdrawn = single_event::<StakeVault::StakeWithdrawn>(&receipt, chain.deployment.stake_vault);
    assert_eq!((withdrawn.staker, withdrawn.amount), (m.creator, stake));
    assert_eq!(vault.stakeOf(0, m.spec.id).call().await.unwrap(), U256::ZERO);
    assert_eq!(chain.usdc_balance(m.creator).await, stake);
}

#[tokio::test]
async fn withdrawal_is_allowed_again_after_advancing_past_the_lock() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "lock-then-advance").await;
    let vault = chain.vault();
    send("propose", chain.governance().propose(1, m.spec.id, usdc(1)).from(chain.account(5))).await.unwrap();
    let until = vault.lockedUntil(1, m.spec.id).call().await.unwrap();
    let result = send("withdraw", vault.withdraw(1, m.spec.id, usdc(300)).from(m.creator)).await;
    assert_eq!(expect_revert!(result, VaultError::StakeLocked).until, until);

    chain.advance_time(chain.params.voting_period_secs + EXECUTION_GRACE).await;
    assert!(chain.latest_timestamp().await >= until);
    send("withdraw", vault.withdraw(1, m.spec.id, usdc(300)).from(m.creator)).await.unwrap();
    assert_eq!(vault.stakeOf(1, m.spec.id).call().await.unwrap(), m.spec.stake - usdc(300));
    assert_eq!(chain.usdc_balance(m.creator).await, usdc(300));
}
