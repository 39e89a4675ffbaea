-- Each change-feed row carries the change version of the transaction that
-- wrote it. Versions are handed out in commit order (the bump locks the
-- version row until commit), so a reader that has seen version v has seen
-- every row of every version below v: the realtime relay reads the feed by
-- version and never skips a row committed late (the ids are not in commit order).
ALTER TABLE app.change_feed ADD COLUMN version bigint NOT NULL DEFAULT 0;
CREATE INDEX change_feed_version_idx ON app.change_feed (version);

-- The realtime relay's cursor: the last change version the elected relay
-- broadcast (through the Redis adapter, to every `serve` node). A node that
-- takes over after the relay dies resumes after it.
CREATE TABLE app.realtime_relay (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
