-- The chain as fetched: raw logs, recent block hashes and the indexer checkpoint.
-- This schema is the source every derived table is rebuilt from (`rederive`);
-- reorgs delete orphaned rows here like everywhere else.

CREATE SCHEMA IF NOT EXISTS chain;

-- Blocks the indexer has seen: the reorg window (parent-hash checks, common
-- ancestor search) and the timestamp of every block that holds a stored log.
CREATE TABLE chain.blocks (
    chain_id     bigint      NOT NULL,
    number       bigint      NOT NULL CHECK (number >= 0),
    hash         bytea       NOT NULL CHECK (octet_length(hash) = 32),
    parent_hash  bytea       NOT NULL CHECK (octet_length(parent_hash) = 32),
    timestamp    timestamptz NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- Every log the indexer ingested, byte for byte.
CREATE TABLE chain.logs (
    chain_id        bigint      NOT NULL,
    block_number    bigint      NOT NULL,
    log_index       integer     NOT NULL CHECK (log_index >= 0),
    block_hash      bytea       NOT NULL,
    block_timestamp timestamptz NOT NULL,
    tx_hash         bytea       NOT NULL,
    tx_index        integer     NOT NULL,
    address         bytea       NOT NULL,
    topic0          bytea,
    topic1          bytea,
    topic2          bytea,
    topic3          bytea,
    data            bytea       NOT NULL,
    PRIMARY KEY (chain_id, block_number, log_index),
    UNIQUE (chain_id, tx_hash, log_index)
);

-- Results of contract view calls the derivation needs (e.g. `proposals(id)` at
-- the block of `ProposalCreated`, an AMM's `feeBps()`), kept so that `rederive`
-- needs no RPC. Keyed by the block the call was made at.
CREATE TABLE chain.call_results (
    chain_id     bigint NOT NULL,
    block_number bigint NOT NULL,
    to_address   bytea  NOT NULL,
    calldata     bytea  NOT NULL,
    result       bytea  NOT NULL,
    PRIMARY KEY (chain_id, block_number, to_address, calldata)
);

-- Where the indexer stands: everything up to and including `block_number`
-- (whose hash is `block_hash`) is stored and derived. Written in the same
-- transaction as the data.
CREATE TABLE chain.checkpoints (
    chain_id     bigint      PRIMARY KEY,
    block_number bigint      NOT NULL,
    block_hash   bytea       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
