-- Everything computed from the chain logs. The whole schema can be rebuilt from
-- `chain.logs` alone (`animoca-trade rederive`) and swapped in atomically.
-- Amounts are uint256 base units as NUMERIC(78,0); prices are USDC per whole
-- token truncated to 18 decimals (unconstrained NUMERIC: a uint256 ratio can
-- exceed 78 digits). Addresses are 20-byte bytea, ids and hashes 32-byte bytea.
-- market_type: 0 = credential, 1 = persona.

CREATE SCHEMA IF NOT EXISTS derived;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Which derivation code built this schema; `index` re-derives on a mismatch.
CREATE TABLE derived.meta (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    derivation_version integer     NOT NULL,
    built_at           timestamptz NOT NULL DEFAULT now()
);

-- A market created on chain by a factory, with its token and latest 24h metrics.
CREATE TABLE derived.markets (
    market_type       smallint      NOT NULL CHECK (market_type IN (0, 1)),
    market_id         bytea         NOT NULL CHECK (octet_length(market_id) = 32),
    token_address     bytea         NOT NULL UNIQUE,
    creator_address   bytea         NOT NULL,          -- issuer (credential) or owner (persona)
    factory_address   bytea         NOT NULL,
    amm_address       bytea         NOT NULL,
    token_name        text          NOT NULL,
    token_symbol      text          NOT NULL,
    initial_stake     numeric(78,0) NOT NULL,
    total_supply      numeric(78,0) NOT NULL DEFAULT 0,
    holder_count      integer       NOT NULL DEFAULT 0,
    -- the factory event that created it
    chain_id          bigint        NOT NULL,
    created_block     bigint        NOT NULL,
    created_block_hash bytea        NOT NULL,
    created_tx_hash   bytea         NOT NULL,
    created_log_index integer       NOT NULL,
    created_at        timestamptz   NOT NULL,
    PRIMARY KEY (market_type, market_id),
    UNIQUE (chain_id, created_tx_hash, created_log_index)
);
CREATE INDEX markets_created_idx ON derived.markets (market_type, created_at DESC, market_id);
CREATE INDEX markets_holders_idx ON derived.markets (market_type, holder_count DESC, market_id);
CREATE INDEX markets_creator_idx ON derived.markets (creator_address);
-- `search` matches substrings of the name or symbol, case-insensitively.
CREATE INDEX markets_search_idx ON derived.markets
    USING gin ((lower(token_name) || ' ' || lower(token_symbol)) gin_trgm_ops);

-- Current AMM state of each market.
CREATE TABLE derived.pools (
    market_type    smallint      NOT NULL,
    market_id      bytea         NOT NULL,
    amm_address    bytea         NOT NULL,
    token_address  bytea         NOT NULL,
    token_reserves numeric(78,0) NOT NULL,
    usdc_reserves  numeric(78,0) NOT NULL,
    price          numeric       NOT NULL,               -- spot price
    fee_bps        integer       NOT NULL,
    created_block  bigint        NOT NULL,
    updated_block  bigint        NOT NULL,
    updated_at     timestamptz   NOT NULL,
    PRIMARY KEY (market_type, market_id),
    FOREIGN KEY (market_type, market_id) REFERENCES derived.markets DEFERRABLE INITIALLY DEFERRED
);

-- Rolling 24h metrics relative to the newest indexed block time T
-- (derived.window_state.as_of), kept current at index time so lists sort
-- without scanning swaps.
CREATE TABLE derived.market_stats (
    market_type      smallint      NOT NULL,
    market_id        bytea         NOT NULL,
    price            numeric       NOT NULL,            -- spot at T
    reference_price  numeric,                           -- last trade at or before T-24h (else first in window)
    price_change_24h double precision NOT NULL DEFAULT 0,
    volume_24h       numeric(78,0) NOT NULL DEFAULT 0,  -- USDC base units
    trades_24h       integer       NOT NULL DEFAULT 0,
    traders_24h      integer       NOT NULL DEFAULT 0,
    market_cap       numeric(78,0) NOT NULL DEFAULT 0,  -- USDC base units
    last_trade_at    timestamptz,
    PRIMARY KEY (market_type, market_id),
    FOREIGN KEY (market_type, market_id) REFERENCES derived.markets DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX market_stats_volume_idx ON derived.market_stats (market_type, volume_24h DESC, market_id);
CREATE INDEX market_stats_price_idx ON derived.market_stats (market_type, price DESC, market_id);
CREATE INDEX market_stats_change_idx ON derived.market_stats (market_type, price_change_24h DESC, market_id);

-- Per-trader trade counts inside the 24h window (for traders_24h). Rows whose
-- count drops to 0 are deleted.
CREATE TABLE derived.market_window_traders (
    market_type smallint NOT NULL,
    market_id   bytea    NOT NULL,
    trader      bytea    NOT NULL,
    trades      integer  NOT NULL,
    PRIMARY KEY (market_type, market_id, trader)
);

-- The time T the 24h window of market_stats ends at (newest indexed block time).
CREATE TABLE derived.window_state (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    as_of     timestamptz NOT NULL
);

-- Swap events, one row per `Swap` log. Amounts unsigned (the pool's deltas).
CREATE TABLE derived.swaps (
    chain_id        bigint        NOT NULL,
    block_number    bigint        NOT NULL,
    block_hash      bytea         NOT NULL,
    block_timestamp timestamptz   NOT NULL,
    tx_hash         bytea         NOT NULL,
    log_index       integer       NOT NULL,
    market_type     smallint      NOT NULL,
    market_id       bytea         NOT NULL,
    amm_address     bytea         NOT NULL,
    trader          bytea         NOT NULL,
    is_buy          boolean       NOT NULL,
    token_amount    numeric(78,0) NOT NULL,
    usdc_amount     numeric(78,0) NOT NULL,
    fee_amount      numeric(78,0) NOT NULL,
    price           numeric       NOT NULL,
    UNIQUE (chain_id, tx_hash, log_index)
);
CREATE INDEX swaps_market_order_idx ON derived.swaps (market_type, market_id, block_number DESC, log_index DESC);
CREATE INDEX swaps_market_time_idx ON derived.swaps (market_type, market_id, block_timestamp, block_number, log_index);
CREATE INDEX swaps_trader_idx ON derived.swaps (trader, block_number DESC, log_index DESC);
CREATE INDEX swaps_time_idx ON derived.swaps (block_timestamp);
CREATE INDEX swaps_block_idx ON derived.swaps (chain_id, block_number);

-- ERC-20 transfers of market tokens, one row per `Transfer` log.
CREATE TABLE derived.transfers (
    chain_id        bigint        NOT NULL,
    block_number    bigint        NOT NULL,
    block_hash      bytea         NOT NULL,
    block_timestamp timestamptz   NOT NULL,
    tx_hash         bytea         NOT NULL,
    log_index       integer       NOT NULL,
    token_address   bytea         NOT NULL,
    market_type     smallint      NOT NULL,
    market_id       bytea         NOT NULL,
    from_address    bytea         NOT NULL,
    to_address      bytea         NOT NULL,
    value           numeric(78,0) NOT NULL,
    UNIQUE (chain_id, tx_hash, log_index)
);
CREATE INDEX transfers_market_idx ON derived.transfers (market_type, market_id, block_number, log_index);
CREATE INDEX transfers_from_idx ON derived.transfers (from_address, block_number DESC);
CREATE INDEX transfers_to_idx ON derived.transfers (to_address, block_number DESC);
CREATE INDEX transfers_block_idx ON derived.transfers (chain_id, block_number);

-- Token balance of every address in every market, with its average cost basis
-- and realized PnL (SPEC §5). The zero address is never stored; the AMM is
-- (its balance equals the token reserves) but is not counted as a holder.
CREATE TABLE derived.balances (
    market_type   smallint      NOT NULL,
    market_id     bytea         NOT NULL,
    holder        bytea         NOT NULL,
    balance       numeric(78,0) NOT NULL CHECK (balance >= 0),
    position      numeric(78,0) NOT NULL DEFAULT 0,  -- tokens counted by the cost basis
    cost_basis    numeric(78,0) NOT NULL DEFAULT 0,
    realized_pnl  numeric(78,0) NOT NULL DEFAULT 0,  -- signed
    updated_block bigint        NOT NULL,
    PRIMARY KEY (market_type, market_id, holder)
);
CREATE INDEX balances_holders_idx ON derived.balances (market_type, market_id, balance DESC, holder) WHERE balance > 0;
CREATE INDEX balances_holder_idx ON derived.balances (holder);

-- Stake of every market: running totals from the vault's events.
CREATE TABLE derived.stakes (
    market_type     smallint      NOT NULL,
    market_id       bytea         NOT NULL,
    total_deposited numeric(78,0) NOT NULL DEFAULT 0,
    total_withdrawn numeric(78,0) NOT NULL DEFAULT 0,
    total_slashed   numeric(78,0) NOT NULL DEFAULT 0,
    current_stake   numeric(78,0) NOT NULL DEFAULT 0,
    updated_block   bigint        NOT NULL,
    PRIMARY KEY (market_type, market_id)
);

-- StakeDeposited / StakeWithdrawn / StakeSlashed events.
CREATE TABLE derived.stake_events (
    chain_id        bigint        NOT NULL,
    block_number    bigint        NOT NULL,
    block_hash      bytea         NOT NULL,
    block_timestamp timestamptz   NOT NULL,
    tx_hash         bytea         NOT NULL,
    log_index       integer       NOT NULL,
    kind            text          NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'slash')),
    market_type     smallint      NOT NULL,
    market_id       bytea         NOT NULL,
    staker          bytea,                              -- null for a slash
    proposal_id     numeric(78,0),                      -- set for a slash
    amount          numeric(78,0) NOT NULL,
    UNIQUE (chain_id, tx_hash, log_index)
);
CREATE INDEX stake_events_market_idx ON derived.stake_events (market_type, market_id, block_number, log_index);
CREATE INDEX stake_events_staker_idx ON derived.stake_events (staker, block_number DESC);
CREATE INDEX stake_events_block_idx ON derived.stake_events (chain_id, block_number);

-- Slashing proposals: ProposalCreated plus the `proposals()` view at that block,
-- with running tallies from VoteCast and the outcome events.
CREATE TABLE derived.proposals (
    proposal_id       numeric(78,0) PRIMARY KEY,
    market_type       smallint      NOT NULL,
    market_id         bytea         NOT NULL,
    proposer          bytea         NOT NULL,
    slash_amount      numeric(78,0) NOT NULL,
    snapshot_block    bigint        NOT NULL,
    voting_ends_at    timestamptz   NOT NULL,
    quorum_required   numeric(78,0) NOT NULL,
    votes_for         numeric(78,0) NOT NULL DEFAULT 0,
    votes_against     numeric(78,0) NOT NULL DEFAULT 0,
    votes_abstain     numeric(78,0) NOT NULL DEFAULT 0,
    voter_count       integer       NOT NULL DEFAULT 0,
    executed          boolean       NOT NULL DEFAULT false,
    canceled          boolean       NOT NULL DEFAULT false,
    slashed_amount    numeric(78,0),
    chain_id          bigint        NOT NULL,
    created_block     bigint        NOT NULL,
    created_block_hash bytea        NOT NULL,
    created_tx_hash   bytea         NOT NULL,
    created_log_index integer       NOT NULL,
    created_at        timestamptz   NOT NULL,
    resolved_block    bigint,
    resolved_tx_hash  bytea,
    resolved_at       timestamptz,
    UNIQUE (chain_id, created_tx_hash, created_log_index)
);
CREATE INDEX proposals_market_idx ON derived.proposals (market_type, market_id, created_at DESC);
CREATE INDEX proposals_type_idx ON derived.proposals (market_type, created_at DESC);
-- status = active/succeeded/defeated depends on T vs voting_ends_at; executed and canceled are flags
CREATE INDEX proposals_status_idx ON derived.proposals (market_type, executed, canceled, voting_ends_at DESC);
CREATE INDEX proposals_open_idx ON derived.proposals (voting_ends_at) WHERE NOT executed AND NOT canceled;
CREATE INDEX proposals_proposer_idx ON derived.proposals (proposer, created_at DESC);

-- VoteCast events. support: 0 against, 1 for, 2 abstain.
CREATE TABLE derived.votes (
    chain_id        bigint        NOT NULL,
    block_number    bigint        NOT NULL,
    block_hash      bytea         NOT NULL,
    block_timestamp timestamptz   NOT NULL,
    tx_hash         bytea         NOT NULL,
    log_index       integer       NOT NULL,
    proposal_id     numeric(78,0) NOT NULL,
    voter           bytea         NOT NULL,
    support         smallint      NOT NULL CHECK (support IN (0, 1, 2)),
    weight          numeric(78,0) NOT NULL,
    UNIQUE (chain_id, tx_hash, log_index),
    UNIQUE (proposal_id, voter)
);
CREATE INDEX votes_proposal_idx ON derived.votes (proposal_id, block_number DESC, log_index DESC);
CREATE INDEX votes_voter_idx ON derived.votes (voter, block_number DESC);
CREATE INDEX votes_block_idx ON derived.votes (chain_id, block_number);

-- OHLCV candles, one row per (market, timeframe, bucket) that has a trade.
-- timeframe: 1m 5m 15m 1h 4h 1d 1w; bucket_start per SPEC §5 (1w on Mondays).
-- unique_traders is kept exact by the indexer, which holds the trader set of
-- each newest bucket in memory (reloaded from derived.swaps at start-up).
CREATE TABLE derived.candles (
    market_type    smallint      NOT NULL,
    market_id      bytea         NOT NULL,
    timeframe      text          NOT NULL CHECK (timeframe IN ('1m','5m','15m','1h','4h','1d','1w')),
    bucket_start   timestamptz   NOT NULL,
    open           numeric       NOT NULL,
    high           numeric       NOT NULL,
    low            numeric       NOT NULL,
    close          numeric       NOT NULL,
    volume_usdc    numeric(78,0) NOT NULL,
    volume_token   numeric(78,0) NOT NULL,
    trade_count    integer       NOT NULL,
    unique_traders integer       NOT NULL,
    -- (block, log index) of the first and last trade, so that a batch can
    -- extend a bucket without re-reading its swaps
    first_block    bigint        NOT NULL,
    first_log      integer       NOT NULL,
    last_block     bigint        NOT NULL,
    last_log       integer       NOT NULL,
    PRIMARY KEY (market_type, market_id, timeframe, bucket_start)
);
