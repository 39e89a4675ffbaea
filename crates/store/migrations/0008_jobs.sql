-- Background jobs (`animoca-trade work`). Postgres holds every job and its state
-- (the outbox); the queue (Redis through apalis, or in process without Redis)
-- carries only job ids. A job is inserted in the same transaction as what
-- caused it, so nothing is lost when Redis restarts: the dispatcher pushes
-- pending rows, and pushes again whatever the queue lost.
CREATE TABLE app.jobs (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           text        NOT NULL,
    kind            text        NOT NULL,
    payload         jsonb       NOT NULL DEFAULT '{}',
    -- the same key twice is one job (ON CONFLICT DO NOTHING)
    idempotency_key text        NOT NULL UNIQUE,
    -- pending: waits for run_after; queued: handed to the queue; running: a
    -- worker holds it until locked_until; done; dead: out of attempts or
    -- refused for good (last_error says why).
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'queued', 'running', 'done', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL CHECK (max_attempts > 0),
    run_after       timestamptz NOT NULL DEFAULT now(),
    enqueued_at     timestamptz,
    locked_by       text,                  -- the worker that holds a running job
    locked_until    timestamptz,
    last_error      text,
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX jobs_due_idx ON app.jobs (run_after) WHERE state = 'pending';
CREATE INDEX jobs_in_flight_idx ON app.jobs (queue, state) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_dead_idx ON app.jobs (queue, finished_at DESC) WHERE state = 'dead';
-- Unfinished jobs of a kind (e.g. a persona's World ID proof still being checked).
CREATE INDEX jobs_open_kind_idx ON app.jobs (kind) WHERE state IN ('pending', 'queued', 'running');

-- Whether an address proved World ID (issuer checks, reputation).
CREATE INDEX worldid_nullifiers_address_idx ON app.worldid_nullifiers (address);

-- A new job wakes the dispatchers at once (they also poll). Per row, so an
-- insert of no rows notifies nobody; Postgres folds the identical
-- notifications of one transaction into one.
CREATE FUNCTION app.jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('animoca_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON app.jobs
    FOR EACH ROW EXECUTE FUNCTION app.jobs_notify();

-- Cursors of the producers that read other tables (e.g. the change feed).
CREATE TABLE app.job_cursors (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The newest Ethos check of a market's issuer/owner, on the market row the
-- API already reads (verification_status, verification_reason, verified_at).
ALTER TABLE app.market_metadata
    ADD COLUMN ethos_score integer,
    ADD COLUMN ethos_level text,
    ADD COLUMN ethos_checked_at timestamptz;

-- Reputation (jobs): the newest score of a market beside its verification,
-- and history rows of users and markets alike, told apart by kind.
ALTER TABLE app.market_metadata
    ADD COLUMN reputation_score integer,
    ADD COLUMN reputation_at timestamptz;
ALTER TABLE app.reputation_history DROP CONSTRAINT reputation_history_pkey;
ALTER TABLE app.reputation_history
    ADD COLUMN kind text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'credential', 'persona'));
ALTER TABLE app.reputation_history ADD PRIMARY KEY (kind, subject, computed_at);
