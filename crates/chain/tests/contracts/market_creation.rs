//! Market creation through both factories: stake, token, pool, factory views, the
//! creation transaction's events (fields, topics, order) and every documented revert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolEvent,
};
use animoca_chain::bindings::{
    CredentialTokenFactory::{self, CredentialTokenFactoryErrors as CredentialFactoryError},
    MarketAMM::{self, MarketAMMErrors as AmmError},
    MarketToken,
    MockUSDC::{self, MockUSDCErrors as UsdcError},
    PersonaTokenFactory::{self, PersonaTokenFactoryErrors as PersonaFactoryError},
    StakeVault,
};
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain, tokens};

use crate::common::{
    Market, address_topic, events, expect_revert, log_signatures, market_with, single_event, topics, uint_topic,
};

/// Checks everything a successful creation of `m` must have done on a chain where it is
/// the first market of its type and `m.creator` held exactly the USDC it needed.
async fn assert_market_created(chain: &TestChain, m: &Market) {
    let spec = &m.spec;
    let market_type = spec.market.as_u8();
    let vault = chain.deployment.stake_vault;
    let amm = chain.deployment.amm(spec.market);
    let factory = chain.deployment.factory(spec.market);
    let usdc_token = chain.deployment.usdc;

    // Stake pulled into the vault, pool USDC into the AMM: the creator has nothing left.
    assert_eq!(chain.vault().stakeOf(market_type, spec.id).call().await.unwrap(), spec.stake);
    assert_eq!(chain.vault().marketOwner(market_type, spec.id).call().await.unwrap(), m.creator);
    assert_eq!(chain.vault().lockedUntil(market_type, spec.id).call().await.unwrap(), 0);
    assert_eq!(chain.usdc_balance(vault).await, spec.stake);
    assert_eq!(chain.usdc_balance(amm).await, spec.usdc_reserves);
    assert_eq!(chain.usdc_balance(m.creator).await, U256::ZERO);
    assert_eq!(chain.usdc().allowance(m.creator, vault).call().await.unwrap(), U256::ZERO);
    assert_eq!(chain.usdc().allowance(m.creator, amm).call().await.unwrap(), U256::ZERO);

    // The token: metadata, supply = reserves + creator tokens, minting closed.
    let token = chain.token(m.token);
    assert_eq!(token.name().call().await.unwrap(), spec.name);
    assert_eq!(token.symbol().call().await.unwrap(), spec.symbol);
    assert_eq!(token.decimals().call().await.unwrap(), 18);
    assert_eq!(token.totalSupply().call().await.unwrap(), spec.token_reserves + spec.creator_tokens);
    assert_eq!(token.balanceOf(m.creator).call().await.unwrap(), spec.creator_tokens);
    assert_eq!(token.balanceOf(amm).call().await.unwrap(), spec.token_reserves);
    assert_eq!(token.minter().call().await.unwrap(), Address::ZERO);

    // The pool.
    let pool = chain.amm(spec.market).pools(spec.id).call().await.unwrap();
    assert_eq!(pool.tokenReserves, spec.token_reserves);
    assert_eq!(pool.usdcReserves, spec.usdc_reserves);
    assert_eq!(pool.token, m.token);

    // Factory views.
    match spec.market {
        MarketType::Credential => {
            let f = CredentialTokenFactory::new(factory, &chain.provider);
            assert_eq!(f.getTokenByCredential(spec.id).call().await.unwrap(), m.token);
            assert_eq!(f.tokenOf(spec.id).call().await.unwrap(), m.token);
            assert_eq!(f.marketIdOf(m.token).call().await.unwrap(), spec.id);
            assert_eq!(f.marketCount().call().await.unwrap(), U256::from(1));
            assert_eq!(f.marketIdAt(U256::ZERO).call().await.unwrap(), spec.id);
            assert_eq!(f.marketType().call().await.unwrap(), 0);
        }
        MarketType::Persona => {
            let f = PersonaTokenFactory::new(factory, &chain.provider);
            assert_eq!(f.getTokenByPersona(spec.id).call().await.unwrap(), m.token);
            assert_eq!(f.tokenOf(spec.id).call().await.unwrap(), m.token);
            assert_eq!(f.marketIdOf(m.token).call().await.unwrap(), spec.id);
            assert_eq!(f.marketCount().call().await.unwrap(), U256::from(1));
            assert_eq!(f.marketIdAt(U256::ZERO).call().await.unwrap(), spec.id);
            assert_eq!(f.marketType().call().await.unwrap(), 1);
        }
    }

    // Events, with exact fields.
    let r = &m.receipt;
    let registered = single_event::<StakeVault::MarketRegistered>(r, vault);
    assert_eq!((registered.marketType, registered.marketId, registered.owner), (market_type, spec.id, m.creator));

    let deposited = single_event::<StakeVault::StakeDeposited>(r, vault);
    assert_eq!(deposited.marketType, market_type);
    assert_eq!(deposited.marketId, spec.id);
    assert_eq!(deposited.staker, m.creator);
    assert_eq!(deposited.amount, spec.stake);

    let usdc_moves: Vec<_> =
        events::<MockUSDC::Transfer>(r, usdc_token).into_iter().map(|t| (t.from, t.to, t.value)).collect();
    assert_eq!(usdc_moves, vec![(m.creator, vault, spec.stake), (m.creator, amm, spec.usdc_reserves)]);

    let mints: Vec<_> =
        events::<MarketToken::Transfer>(r, m.token).into_iter().map(|t| (t.from, t.to, t.value)).collect();
    let mut expected_mints = vec![(Address::ZERO, amm, spec.token_reserves)];
    if spec.creator_tokens > U256::ZERO {
        expected_mints.push((Address::ZERO, m.creator, spec.creator_tokens));
    }
    assert_eq!(mints, expected_mints);
    assert_eq!(events::<MarketToken::MintingFinished>(r, m.token).len(), 1);

    let created = single_event::<MarketAMM::PoolCreated>(r, amm);
    assert_eq!(created.marketId, spec.id);
    assert_eq!(created.token, m.token);
    assert_eq!(created.tokenReserves, spec.token_reserves);
    assert_eq!(created.usdcReserves, spec.usdc_reserves);

    let updated = single_event::<MarketAMM::ReservesUpdated>(r, amm);
    assert_eq!(
        (updated.marketId, updated.tokenReserves, updated.usdcReserves),
        (spec.id, spec.token_reserves, spec.usdc_reserves)
    );

    let market_event_signature = match spec.market {
        MarketType::Credential => {
            let e = single_event::<CredentialTokenFactory::CredentialTokenCreated>(r, factory);
            assert_eq!(e.credentialId, spec.id);
            assert_eq!(e.token, m.token);
            assert_eq!(e.issuer, m.creator);
            assert_eq!(e.name, spec.name);
            assert_eq!(e.symbol, spec.symbol);
            assert_eq!(e.stakeAmount, spec.stake);
            CredentialTokenFactory::CredentialTokenCreated::SIGNATURE_HASH
        }
        MarketType::Persona => {
            let e = single_event::<PersonaTokenFactory::PersonaTokenCreated>(r, factory);
            assert_eq!(e.personaId, spec.id);
            assert_eq!(e.token, m.token);
            assert_eq!(e.owner, m.creator);
            assert_eq!(e.name, spec.name);
            assert_eq!(e.symbol, spec.symbol);
            assert_eq!(e.stakeAmount, spec.stake);
            PersonaTokenFactory::PersonaTokenCreated::SIGNATURE_HASH
        }
    };

    // The documented log order of a creation.
    let mut expected_order = vec![
        (vault, StakeVault::MarketRegistered::SIGNATURE_HASH),
        (vault, StakeVault::StakeDeposited::SIGNATURE_HASH),
        (usdc_token, MockUSDC::Transfer::SIGNATURE_HASH),
        (m.token, MarketToken::Transfer::SIGNATURE_HASH),
    ];
    if spec.creator_tokens > U256::ZERO {
        expected_order.push((m.token, MarketToken::Transfer::SIGNATURE_HASH));
    }
    expected_order.extend([
        (m.token, MarketToken::MintingFinished::SIGNATURE_HASH),
        (usdc_token, MockUSDC::Transfer::SIGNATURE_HASH),
        (amm, MarketAMM::PoolCreated::SIGNATURE_HASH),
        (amm, MarketAMM::ReservesUpdated::SIGNATURE_HASH),
        (factory, market_event_signature),
    ]);
    assert_eq!(log_signatures(r), expected_order);

    // Indexed fields sit in the topics the indexer filters on.
    assert_eq!(
        topics(r, 1),
        vec![
            StakeVault::StakeDeposited::SIGNATURE_HASH,
            uint_topic(u64::from(market_type)),
            spec.id,
            address_topic(m.creator)
        ]
    );
    let pool_log = expected_order.len() - 3;
    assert_eq!(topics(r, pool_log), vec![MarketAMM::PoolCreated::SIGNATURE_HASH, spec.id, address_topic(m.token)]);
    assert_eq!(
        topics(r, expected_order.len() - 1),
        vec![market_event_signature, spec.id, address_topic(m.token), address_topic(m.creator)]
    );
}

/// A persona spec with amounts unlike the defaults (odd, non-round numbers).
fn odd_persona_spec(label: &str) -> MarketSpec {
    MarketSpec {
        stake: U256::from(123_456_789u64),
        token_reserves: tokens(777_777) + U256::from(1),
        usdc_reserves: U256::from(2_500_000_001u64),
        creator_tokens: tokens(42_000),
        ..MarketSpec::new(MarketType::Persona, label)
    }
}

/// Mints the creator exactly what `spec` needs and approves the vault and/or the AMM.
async fn fund(chain: &TestChain, spec: &MarketSpec, creator: Address, approve_vault: bool, approve_amm: bool) {
    chain.mint_usdc(creator, spec.stake + spec.usdc_reserves).await;
    if approve_vault {
        chain.approve_usdc(creator, chain.deployment.stake_vault, spec.stake).await;
    }
    if approve_amm {
        chain.approve_usdc(creator, chain.deployment.amm(spec.market), spec.usdc_reserves).await;
    }
}

/// After a failed creation: no market, no stake, no pool, the creator keeps its USDC.
async fn assert_nothing_created(chain: &TestChain, spec: &MarketSpec, creator: Address, markets_before: u64) {
    let count = match spec.market {
        MarketType::Credential => {
            let f = CredentialTokenFactory::new(chain.deployment.credential_factory, &chain.provider);
            assert_eq!(f.getTokenByCredential(spec.id).call().await.unwrap(), Address::ZERO);
            f.marketCount().call().await.unwrap()
        }
        MarketType::Persona => {
            let f = PersonaTokenFactory::new(chain.deployment.persona_factory, &chain.provider);
            assert_eq!(f.getTokenByPersona(spec.id).call().await.unwrap(), Address::ZERO);
            f.marketCount().call().await.unwrap()
        }
    };
    assert_eq!(count, U256::from(markets_before));
    assert_eq!(chain.usdc_balance(creator).await, spec.stake + spec.usdc_reserves);
    assert_eq!(chain.vault().stakeOf(spec.market.as_u8(), spec.id).call().await.unwrap(), U256::ZERO);
    assert_eq!(chain.amm(spec.market).pools(spec.id).call().await.unwrap().token, Address::ZERO);
}

#[tokio::test]
async fn creates_a_credential_market_with_stake_token_pool_and_events() {
    let chain = TestChain::start().await;
    let m = market_with(&chain, MarketSpec::new(MarketType::Credential, "kyc-credential")).await;
    assert_market_created(&chain, &m).await;
    // The other factory and AMM are untouched.
    let persona = PersonaTokenFactory::new(chain.deployment.persona_factory, &chain.provider);
    assert_eq!(persona.marketCount().call().await.unwrap(), U256::ZERO);
    assert_eq!(persona.getTokenByPersona(m.spec.id).call().await.unwrap(), Address::ZERO);
    assert_eq!(chain.usdc_balance(chain.deployment.persona_amm).await, U256::ZERO);
}

#[tokio::test]
async fn creates_a_persona_market_with_stake_token_pool_and_events() {
    let chain = TestChain::start().await;
    let m = market_with(&chain, odd_persona_spec("alice-persona")).await;
    assert_market_created(&chain, &m).await;
    let credential = CredentialTokenFactory::new(chain.deployment.credential_factory, &chain.provider);
    assert_eq!(credential.marketCount().call().await.unwrap(), U256::ZERO);
    assert_eq!(chain.usdc_balance(chain.deployment.credential_amm).await, U256::ZERO);
}

#[tokio::test]
async fn zero_creator_tokens_mints_only_the_pool_reserves() {
    let chain = TestChain::start().await;
    let spec =
        MarketSpec { creator_tokens: U256::ZERO, ..MarketSpec::new(MarketType::Credential, "no-creator-tokens") };
    let m = market_with(&chain, spec).await;
    assert_market_created(&chain, &m).await;
    assert_eq!(chain.token(m.token).totalSupply().call().await.unwrap(), m.spec.token_reserves);
}

#[tokio::test]
async fn market_ids_are_unique_per_market_type_and_counted_per_factory() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let first = MarketSpec::new(MarketType::Credential, "shared-id");
    let second = MarketSpec::new(MarketType::Credential, "second");
    let persona = MarketSpec::new(MarketType::Persona, "shared-id");
    assert_eq!(first.id, persona.id);
    let (first_token, _) = chain.create_market(&first, creator).await;
    let (second_token, _) = chain.create_market(&second, chain.account(2)).await;
    let (persona_token, _) = chain.create_market(&persona, creator).await;
    assert_ne!(first_token, persona_token);

    let credentials = CredentialTokenFactory::new(chain.deployment.credential_factory, &chain.provider);
    let personas = PersonaTokenFactory::new(chain.deployment.persona_factory, &chain.provider);
    assert_eq!(credentials.marketCount().call().await.unwrap(), U256::from(2));
    assert_eq!(credentials.marketIdAt(U256::ZERO).call().await.unwrap(), first.id);
    assert_eq!(credentials.marketIdAt(U256::from(1)).call().await.unwrap(), second.id);
    assert_eq!(credentials.getTokenByCredential(first.id).call().await.unwrap(), first_token);
    assert_eq!(credentials.getTokenByCredential(second.id).call().await.unwrap(), second_token);
    assert_eq!(credentials.marketIdOf(persona_token).call().await.unwrap(), B256::ZERO);
    let out_of_range =
        expect_revert!(credentials.marketIdAt(U256::from(2)).call().await, CredentialFactoryError::IndexOutOfRange);
    assert_eq!((out_of_range.index, out_of_range.count), (U256::from(2), U256::from(2)));

    assert_eq!(personas.marketCount().call().await.unwrap(), U256::from(1));
    assert_eq!(personas.getTokenByPersona(persona.id).call().await.unwrap(), persona_token);
    assert_eq!(personas.marketIdOf(persona_token).call().await.unwrap(), persona.id);

    // One stake per (marketType, marketId), one pool per AMM.
    let vault = chain.vault();
    assert_eq!(vault.stakeOf(0, first.id).call().await.unwrap(), first.stake);
    assert_eq!(vault.stakeOf(1, persona.id).call().await.unwrap(), persona.stake);
    assert_eq!(vault.marketOwner(0, second.id).call().await.unwrap(), chain.account(2));
    assert_eq!(chain.usdc_balance(chain.deployment.stake_vault).await, first.stake + second.stake + persona.stake);
    assert_eq!(chain.amm(MarketType::Credential).pools(first.id).call().await.unwrap().token, first_token);
    assert_eq!(chain.amm(MarketType::Persona).pools(persona.id).call().await.unwrap().token, persona_token);
}

#[tokio::test]
async fn duplicate_market_id_reverts() {
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Credential, "duplicate");
    let (token, _) = chain.create_market(&spec, chain.account(1)).await;
    let again = chain.account(2);
    fund(&chain, &spec, again, true, true).await;
    let error = expect_revert!(chain.call_factory(&spec, again).await, CredentialFactoryError::MarketAlreadyExists);
    assert_eq!((error.marketId, error.token), (spec.id, token));
    let factory = CredentialTokenFactory::new(chain.deployment.credential_factory, &chain.provider);
    assert_eq!(factory.marketCount().call().await.unwrap(), U256::from(1));
    assert_eq!(factory.getTokenByCredential(spec.id).call().await.unwrap(), token);
    assert_eq!(chain.usdc_balance(again).await, spec.stake + spec.usdc_reserves);
    assert_eq!(chain.vault().stakeOf(0, spec.id).call().await.unwrap(), spec.stake);
    assert_eq!(chain.vault().marketOwner(0, spec.id).call().await.unwrap(), chain.account(1));
}

#[tokio::test]
async fn duplicate_persona_id_reverts() {
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Persona, "duplicate");
    let (token, _) = chain.create_market(&spec, chain.account(1)).await;
    fund(&chain, &spec, chain.account(1), true, true).await;
    let error =
        expect_revert!(chain.call_factory(&spec, chain.account(1)).await, PersonaFactoryError::MarketAlreadyExists);
    assert_eq!((error.marketId, error.token), (spec.id, token));
}

#[tokio::test]
async fn zero_market_id_reverts() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let credential = MarketSpec { id: B256::ZERO, ..MarketSpec::new(MarketType::Credential, "zero") };
    fund(&chain, &credential, creator, true, true).await;
    expect_revert!(chain.call_factory(&credential, creator).await, CredentialFactoryError::InvalidMarketId);
    assert_nothing_created(&chain, &credential, creator, 0).await;

    let persona = MarketSpec { id: B256::ZERO, ..MarketSpec::new(MarketType::Persona, "zero") };
    let owner = chain.account(2);
    fund(&chain, &persona, owner, true, true).await;
    expect_revert!(chain.call_factory(&persona, owner).await, PersonaFactoryError::InvalidMarketId);
    assert_nothing_created(&chain, &persona, owner, 0).await;
}

#[tokio::test]
async fn zero_stake_reverts() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let spec = MarketSpec { stake: U256::ZERO, ..MarketSpec::new(MarketType::Credential, "no-stake") };
    fund(&chain, &spec, creator, true, true).await;
    expect_revert!(chain.call_factory(&spec, creator).await, CredentialFactoryError::ZeroStake);
    assert_nothing_created(&chain, &spec, creator, 0).await;

    let persona = MarketSpec { stake: U256::ZERO, ..MarketSpec::new(MarketType::Persona, "no-stake") };
    fund(&chain, &persona, creator, true, true).await;
    expect_revert!(chain.call_factory(&persona, creator).await, PersonaFactoryError::ZeroStake);
}

#[tokio::test]
async fn zero_reserves_revert() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let no_tokens = MarketSpec { token_reserves: U256::ZERO, ..MarketSpec::new(MarketType::Credential, "no-tokens") };
    fund(&chain, &no_tokens, creator, true, true).await;
    expect_revert!(chain.call_factory(&no_tokens, creator).await, AmmError::ZeroReserves);
    assert_nothing_created(&chain, &no_tokens, creator, 0).await;

    let owner = chain.account(2);
    let no_usdc = MarketSpec { usdc_reserves: U256::ZERO, ..MarketSpec::new(MarketType::Persona, "no-usdc") };
    fund(&chain, &no_usdc, owner, true, true).await;
    expect_revert!(chain.call_factory(&no_usdc, owner).await, AmmError::ZeroReserves);
    assert_nothing_created(&chain, &no_usdc, owner, 0).await;
}

#[tokio::test]
async fn missing_vault_approval_reverts_with_the_usdc_allowance_error() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let spec = MarketSpec::new(MarketType::Credential, "no-vault-approval");
    fund(&chain, &spec, creator, false, true).await;
    let error = expect_revert!(chain.call_factory(&spec, creator).await, UsdcError::ERC20InsufficientAllowance);
    assert_eq!((error.spender, error.allowance, error.needed), (chain.deployment.stake_vault, U256::ZERO, spec.stake));
    assert_nothing_created(&chain, &spec, creator, 0).await;
}

#[tokio::test]
async fn missing_amm_approval_reverts_with_the_usdc_allowance_error() {
    let chain = TestChain::start().await;
    let creator = chain.account(1);
    let spec = MarketSpec::new(MarketType::Persona, "no-amm-approval");
    fund(&chain, &spec, creator, true, false).await;
    let error = expect_revert!(chain.call_factory(&spec, creator).await, UsdcError::ERC20InsufficientAllowance);
    assert_eq!(
        (error.spender, error.allowance, error.needed),
        (chain.deployment.persona_amm, U256::ZERO, spec.usdc_reserves)
    );
    assert_nothing_created(&chain, &spec, creator, 0).await;
    // With the approval the same call goes through.
    chain.approve_usdc(creator, chain.deployment.persona_amm, spec.usdc_reserves).await;
    chain.call_factory(&spec, creator).await.unwrap();
    assert_eq!(chain.vault().stakeOf(1, spec.id).call().await.unwrap(), spec.stake);
    assert_eq!(chain.usdc_balance(creator).await, U256::ZERO);
}
