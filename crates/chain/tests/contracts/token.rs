//! MarketToken: transfers (`Transfer` event, balances, ERC-20 reverts), minting closed
//! after creation, and the block-number checkpoints `balanceOfAt` / `totalSupplyAt`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{Address, U256},
    providers::ext::AnvilApi,
    sol_types::SolEvent,
};
use animoca_chain::{
    bindings::MarketToken::{self, MarketTokenErrors as TokenError},
    deploy::send,
};
use animoca_domain::MarketType;
use animoca_test_support::{TestChain, tokens, usdc};

use crate::common::{address_topic, events, expect_revert, market, single_event, topics};

#[tokio::test]
async fn transfer_emits_transfer_and_moves_balances() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "transfer").await;
    let receiver = chain.account(2);
    let amount = tokens(12_345) + U256::from(678);
    let supply = m.spec.token_reserves + m.spec.creator_tokens;

    let receipt = chain.transfer_tokens(m.token, m.creator, receiver, amount).await;
    let transfer = single_event::<MarketToken::Transfer>(&receipt, m.token);
    assert_eq!((transfer.from, transfer.to, transfer.value), (m.creator, receiver, amount));
    assert_eq!(
        topics(&receipt, 0),
        vec![MarketToken::Transfer::SIGNATURE_HASH, address_topic(m.creator), address_topic(receiver)]
    );
    assert_eq!(receipt.inner.logs().len(), 1);
    assert_eq!(chain.token_balance(m.token, m.creator).await, m.spec.creator_tokens - amount);
    assert_eq!(chain.token_balance(m.token, receiver).await, amount);
    assert_eq!(chain.token(m.token).totalSupply().call().await.unwrap(), supply);

    // A transfer to oneself is logged and changes nothing.
    let receipt = chain.transfer_tokens(m.token, receiver, receiver, amount).await;
    let transfer = single_event::<MarketToken::Transfer>(&receipt, m.token);
    assert_eq!((transfer.from, transfer.to, transfer.value), (receiver, receiver, amount));
    assert_eq!(chain.token_balance(m.token, receiver).await, amount);

    // More than the balance: OpenZeppelin's custom error, nothing moves.
    let result =
        send("transfer", chain.token(m.token).transfer(m.creator, amount + U256::from(1)).from(receiver)).await;
    let error = expect_revert!(result, TokenError::ERC20InsufficientBalance);
    assert_eq!((error.sender, error.balance, error.needed), (receiver, amount, amount + U256::from(1)));
    assert_eq!(chain.token_balance(m.token, receiver).await, amount);
}

#[tokio::test]
async fn transfer_from_spends_the_allowance() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "transfer-from").await;
    let (spender, receiver) = (chain.account(2), chain.account(3));
    let token = chain.token(m.token);
    send("approve", token.approve(spender, tokens(10)).from(m.creator)).await.unwrap();
    let receipt = send("transferFrom", token.transferFrom(m.creator, receiver, tokens(4)).from(spender)).await.unwrap();
    let transfer = single_event::<MarketToken::Transfer>(&receipt, m.token);
    assert_eq!((transfer.from, transfer.to, transfer.value), (m.creator, receiver, tokens(4)));
    assert_eq!(token.allowance(m.creator, spender).call().await.unwrap(), tokens(6));
    assert_eq!(chain.token_balance(m.token, receiver).await, tokens(4));

    let result = send("transferFrom", token.transferFrom(m.creator, receiver, tokens(7)).from(spender)).await;
    let error = expect_revert!(result, TokenError::ERC20InsufficientAllowance);
    assert_eq!((error.spender, error.allowance, error.needed), (spender, tokens(6), tokens(7)));
}

#[tokio::test]
async fn minting_is_closed_after_creation() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "minting").await;
    let token = chain.token(m.token);
    assert_eq!(token.minter().call().await.unwrap(), Address::ZERO);
    assert_eq!(events::<MarketToken::MintingFinished>(&m.receipt, m.token).len(), 1);
    for caller in [m.creator, chain.account(0)] {
        let error =
            expect_revert!(send("mint", token.mint(caller, tokens(1)).from(caller)).await, TokenError::NotMinter);
        assert_eq!(error.caller, caller);
    }
    // Not even the factory that minted it.
    let error = expect_revert!(
        token.mint(m.creator, tokens(1)).from(chain.deployment.credential_factory).call().await,
        TokenError::NotMinter
    );
    assert_eq!(error.caller, chain.deployment.credential_factory);
    assert_eq!(token.totalSupply().call().await.unwrap(), m.spec.token_reserves + m.spec.creator_tokens);
}

#[tokio::test]
async fn balance_and_supply_checkpoints_follow_blocks() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "checkpoints").await;
    let token = chain.token(m.token);
    let (alice, bob) = (chain.account(2), chain.account(3));
    let amm = chain.deployment.credential_amm;
    let supply = m.spec.token_reserves + m.spec.creator_tokens;
    let created = m.receipt.block_number.unwrap();

    let t1 = chain.transfer_tokens(m.token, m.creator, alice, tokens(30_000)).await.block_number.unwrap();
    chain.mine().await;
    chain.mine().await;
    let t2 = chain.transfer_tokens(m.token, alice, bob, tokens(10_000)).await.block_number.unwrap();
    let bought = chain.buy(bob, MarketType::Credential, m.spec.id, usdc(100), U256::ZERO).await.unwrap();
    let t3 = bought.block_number.unwrap();
    let tokens_out = single_event::<MarketToken::Transfer>(&bought, m.token).value;
    chain.mine().await;
    chain.mine().await;
    assert!(created < t1 && t1 + 2 < t2 && t2 < t3);

    let at = |account: Address, block: u64| {
        let token = token.clone();
        async move { token.balanceOfAt(account, U256::from(block)).call().await.unwrap() }
    };
    // Before the token existed: nothing.
    assert_eq!(at(m.creator, created - 1).await, U256::ZERO);
    assert_eq!(token.totalSupplyAt(U256::from(created - 1)).call().await.unwrap(), U256::ZERO);
    // The creation block holds the whole supply; it never changes afterwards.
    for block in [created, t1, t2, t3] {
        assert_eq!(token.totalSupplyAt(U256::from(block)).call().await.unwrap(), supply, "supply at {block}");
    }
    assert_eq!(at(m.creator, created).await, m.spec.creator_tokens);
    assert_eq!(at(amm, created).await, m.spec.token_reserves);
    // Each balance changes exactly at the block of its transfer, and holds in between.
    assert_eq!(at(m.creator, t1 - 1).await, m.spec.creator_tokens);
    assert_eq!(at(m.creator, t1).await, m.spec.creator_tokens - tokens(30_000));
    assert_eq!(at(alice, t1 - 1).await, U256::ZERO);
    assert_eq!(at(alice, t1).await, tokens(30_000));
    assert_eq!(at(alice, t1 + 2).await, tokens(30_000));
    assert_eq!(at(alice, t2).await, tokens(20_000));
    assert_eq!(at(bob, t2 - 1).await, U256::ZERO);
    assert_eq!(at(bob, t2).await, tokens(10_000));
    assert_eq!(at(bob, t3).await, tokens(10_000) + tokens_out);
    assert_eq!(at(amm, t3 - 1).await, m.spec.token_reserves);
    assert_eq!(at(amm, t3).await, m.spec.token_reserves - tokens_out);
    assert_eq!(at(bob, t3 + 1).await, chain.token_balance(m.token, bob).await);
}

#[tokio::test]
async fn checkpoint_lookups_need_a_past_block() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "future").await;
    let token = chain.token(m.token);
    chain.mine().await;
    let latest = chain.block_number().await;
    assert_eq!(m.receipt.block_number, Some(latest - 1));
    // Evaluated in block `latest`, only blocks strictly before it can be queried.
    let error = expect_revert!(
        token.balanceOfAt(m.creator, U256::from(latest)).block(latest.into()).call().await,
        TokenError::FutureLookup
    );
    assert_eq!((error.blockNumber, error.currentBlock), (U256::from(latest), U256::from(latest)));
    // A call at the default block tag (latest) is evaluated in block `latest` too.
    let error = expect_revert!(token.balanceOfAt(m.creator, U256::from(latest)).call().await, TokenError::FutureLookup);
    assert_eq!((error.blockNumber, error.currentBlock), (U256::from(latest), U256::from(latest)));
    let error = expect_revert!(
        token.totalSupplyAt(U256::from(latest + 5)).block(latest.into()).call().await,
        TokenError::FutureLookup
    );
    assert_eq!((error.blockNumber, error.currentBlock), (U256::from(latest + 5), U256::from(latest)));
    assert_eq!(
        token.balanceOfAt(m.creator, U256::from(latest - 1)).block(latest.into()).call().await.unwrap(),
        m.spec.creator_tokens
    );
}

#[tokio::test]
async fn several_transfers_in_one_block_checkpoint_the_end_of_block_balance() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "one-block").await;
    let (alice, bob) = (chain.account(2), chain.account(3));
    let token = chain.token(m.token);

    chain.provider.anvil_set_auto_mine(false).await.unwrap();
    let mut pending = Vec::new();
    for (to, amount) in [(alice, tokens(10)), (alice, tokens(5)), (bob, tokens(3))] {
        pending.push(token.transfer(to, amount).from(m.creator).send().await.unwrap());
    }
    chain.mine().await;
    chain.provider.anvil_set_auto_mine(true).await.unwrap();
    let mut blocks = Vec::new();
    for tx in pending {
        let receipt = tx.get_receipt().await.unwrap();
        assert!(receipt.status());
        blocks.push(receipt.block_number.unwrap());
    }
    let block = blocks[0];
    assert!(blocks.iter().all(|b| *b == block), "all three transfers in one block: {blocks:?}");
    chain.mine().await;

    let token = &token;
    let at = move |account: Address, block: u64| token.balanceOfAt(account, U256::from(block));
    assert_eq!(at(m.creator, block - 1).call().await.unwrap(), m.spec.creator_tokens);
    assert_eq!(at(m.creator, block).call().await.unwrap(), m.spec.creator_tokens - tokens(18));
    assert_eq!(at(alice, block).call().await.unwrap(), tokens(15));
    assert_eq!(at(bob, block).call().await.unwrap(), tokens(3));
}
