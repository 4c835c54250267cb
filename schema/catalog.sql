-- The catalog of a data directory: topics, their configs, and consumer groups' offsets.
PRAGMA user_version = 3;

CREATE TABLE topics (
    name       TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL CHECK (partitions > 0),
    config     TEXT NOT NULL DEFAULT '{}',  -- JSON object of per-topic overrides
    created_ms INTEGER NOT NULL,
    topic_id   TEXT NOT NULL DEFAULT ''  -- this incarnation's random id, Kafka's base64 form
);
CREATE UNIQUE INDEX topics_by_id ON topics (topic_id);

-- the cluster id of this data directory (Kafka's meta.properties cluster.id): one row
CREATE TABLE cluster (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    cluster_id TEXT NOT NULL
);

-- committed offset = the next offset the group will read (last processed + 1)
CREATE TABLE group_offsets (
    group_id  TEXT NOT NULL,
    topic     TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    metadata  TEXT,
    commit_ms INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL DEFAULT -1,  -- the leader epoch the committer last saw
    PRIMARY KEY (group_id, topic, partition)
);

-- counters that must never go backwards, even across restarts (producer ids, ...)
CREATE TABLE sequences (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
