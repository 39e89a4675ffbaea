-- Off-chain data: what users tell us (metadata, profiles, links), what third
-- parties tell us (verification), and what we tell users (notifications).
-- Never derived from the chain, so `rederive` leaves this schema untouched.
-- Market rows here reference markets by (market_type, market_id) without a
-- foreign key: metadata may arrive before the indexer has seen the market.

CREATE SCHEMA IF NOT EXISTS app;

-- A user, keyed by address. Created on first sign-in or first mention.
CREATE TABLE app.users (
    address          bytea       PRIMARY KEY CHECK (octet_length(address) = 20),
    username         text        UNIQUE CHECK (char_length(username) BETWEEN 1 AND 64),
    display_name     text,
    bio              text,
    avatar_url       text,
    reputation_score integer     NOT NULL DEFAULT 0,
    reputation_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_reputation_idx ON app.users (reputation_score DESC, address);

-- Off-chain metadata of a market (POST /api/credentials, POST /api/personas)
-- and its verification outcome.
CREATE TABLE app.market_metadata (
    market_type          smallint    NOT NULL CHECK (market_type IN (0, 1)),
    market_id            bytea       NOT NULL CHECK (octet_length(market_id) = 32),
    display_name         text,                      -- issuer_name / persona display name
    category             text,                      -- credential_type, persona category
    description          text,
    image_url            text,
    website_url          text,
    registered_by        bytea       NOT NULL,      -- the signed-in creator
    registered_tx_hash   bytea,
    verification_status  text        NOT NULL DEFAULT 'pending'
                         CHECK (verification_status IN ('pending', 'verified', 'rejected')),
    verification_reason  text,
    verified_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_type, market_id)
);
CREATE INDEX market_metadata_status_idx ON app.market_metadata (market_type, verification_status);
CREATE INDEX market_metadata_category_idx ON app.market_metadata (market_type, category);

-- Social accounts linked to a persona.
CREATE TABLE app.social_links (
    persona_id  bytea       NOT NULL,
    platform    text        NOT NULL CHECK (char_length(platform) BETWEEN 1 AND 32),
    handle      text        NOT NULL,
    url         text,
    verified    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (persona_id, platform)
);

-- Credentials a persona owner linked to their persona.
CREATE TABLE app.persona_credentials (
    persona_id    bytea       NOT NULL,
    credential_id bytea       NOT NULL,
    linked_by     bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (persona_id, credential_id)
);
CREATE INDEX persona_credentials_credential_idx ON app.persona_credentials (credential_id);

-- Off-chain text of a slashing proposal (POST /api/proposals).
CREATE TABLE app.proposal_metadata (
    proposal_id    numeric(78,0) PRIMARY KEY,
    title          text          NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description    text          NOT NULL DEFAULT '',
    evidence_links text[]        NOT NULL DEFAULT '{}',
    submitted_by   bytea         NOT NULL,
    tx_hash        bytea         NOT NULL,
    created_at     timestamptz   NOT NULL DEFAULT now()
);

-- Results of third-party checks (Ethos score, World ID proof), newest last.
CREATE TABLE app.verifications (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject        bytea       NOT NULL,            -- the address checked
    market_type    smallint,
    market_id      bytea,
    provider       text        NOT NULL CHECK (provider IN ('ethos', 'worldid')),
    status         text        NOT NULL CHECK (status IN ('pending', 'verified', 'rejected', 'error')),
    score          integer,
    level          text,
    reason         text,
    response       jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verifications_subject_idx ON app.verifications (subject, provider, created_at DESC);
CREATE INDEX verifications_market_idx ON app.verifications (market_type, market_id, created_at DESC);

-- World ID nullifiers: one human, one persona (unique per action).
CREATE TABLE app.worldid_nullifiers (
    action            text        NOT NULL,
    nullifier_hash    text        NOT NULL,
    persona_id        bytea       NOT NULL UNIQUE,
    address           bytea       NOT NULL,
    verification_level text       NOT NULL,
    verified_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action, nullifier_hash)
);

-- Reputation history, for charts; users.reputation_score holds the latest.
CREATE TABLE app.reputation_history (
    subject     bytea       NOT NULL,
    computed_at timestamptz NOT NULL,
    score       integer     NOT NULL,
    components  jsonb       NOT NULL,
    PRIMARY KEY (subject, computed_at)
);

-- Notifications for a user; idempotency_key makes re-delivery a no-op.
CREATE TABLE app.notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address         bytea       NOT NULL,
    kind            text        NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL DEFAULT '',
    data            jsonb       NOT NULL DEFAULT '{}',
    idempotency_key text        NOT NULL UNIQUE,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_address_idx ON app.notifications (address, id DESC);
CREATE INDEX notifications_unread_idx ON app.notifications (address) WHERE read_at IS NULL;

-- A user's webhook endpoints.
CREATE TABLE app.webhooks (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address       bytea       NOT NULL,
    url           text        NOT NULL,
    secret        text        NOT NULL,
    events        text[]      NOT NULL DEFAULT '{}',  -- empty: every kind
    active        boolean     NOT NULL DEFAULT true,
    failure_count integer     NOT NULL DEFAULT 0,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (address, url)
);

-- One delivery of one notification to one webhook; the id is the
-- X-Animoca-Delivery header and stays the same on every retry.
CREATE TABLE app.webhook_deliveries (
    delivery_id     uuid        PRIMARY KEY,
    webhook_id      bigint      NOT NULL REFERENCES app.webhooks ON DELETE CASCADE,
    notification_id bigint      NOT NULL REFERENCES app.notifications ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (webhook_id, notification_id)
);
CREATE INDEX webhook_deliveries_due_idx ON app.webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Sign-In with Ethereum nonces: single use, short lived.
CREATE TABLE app.auth_nonces (
    nonce      text        PRIMARY KEY,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX auth_nonces_expiry_idx ON app.auth_nonces (expires_at);

-- The change feed: the indexer appends in the same transaction as the data it
-- describes; relays publish rows in id order (Postgres NOTIFY wakes them).
CREATE TABLE app.change_feed (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL,      -- price, trade, candle, proposal, vote, reorg, notification
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
