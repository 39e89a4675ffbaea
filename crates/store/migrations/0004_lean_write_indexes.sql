-- Fewer indexes on the tables every swap appends to: each B-tree entry costs
-- the indexer more than the row itself (measured: inserting 200,000 swaps took
-- 0.2 s into the bare table and 2.6 s with its six indexes).

-- The raw log store is keyed by chain position, (chain_id, block_number,
-- log_index): on one canonical chain that already identifies (tx_hash,
-- log_index), since a transaction lives in exactly one block. The second,
-- hash-ordered unique index doubled the cost of storing a log. Every derived
-- event table keeps UNIQUE (chain_id, tx_hash, log_index) (SPEC §5).
ALTER TABLE chain.logs DROP CONSTRAINT logs_chain_id_tx_hash_log_index_key;

-- Block timestamps never decrease with the block number, so
-- swaps_market_time_idx (market, block_timestamp, block_number, log_index)
-- serves the (block, log index) order of a market's trades too.
DROP INDEX derived.swaps_market_order_idx;

-- Nothing reads a market's transfers in order (replays read chain.logs;
-- holders and portfolios read derived.balances).
DROP INDEX derived.transfers_market_idx;

-- No endpoint lists raw transfers by address (portfolios read derived.balances,
-- trade history derived.swaps by trader); an API that needs them adds an index.
DROP INDEX derived.transfers_from_idx;
DROP INDEX derived.transfers_to_idx;
