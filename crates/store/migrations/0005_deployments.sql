-- The contract addresses each chain was indexed with, so that `rederive` and
-- `verify` rebuild from the database alone (no RPC, no contract settings), and
-- so that `index` refuses to continue a database with different contracts.
CREATE TABLE chain.deployments (
    chain_id    bigint      PRIMARY KEY,
    start_block bigint      NOT NULL CHECK (start_block >= 0),
    contracts   jsonb       NOT NULL,   -- animoca_chain::Deployment, addresses as 0x hex
    recorded_at timestamptz NOT NULL DEFAULT now()
);
