-- The change-feed version: bumped by every transaction that appends change
-- rows (one row, so the bump's lock orders the writers: versions are assigned
-- in commit order, unlike the feed's ids, which a sequence hands out at insert
-- time). Caches key their entries on it; the NOTIFY payload carries it.
CREATE TABLE app.change_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO app.change_version (singleton, version) VALUES (true, 0);
