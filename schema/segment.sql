-- One segment of a partition log: a contiguous range of offsets, one row per record.
-- Readable with no tooling: sqlite3 00000000000000000000.db "SELECT * FROM records".
PRAGMA user_version = 1;

CREATE TABLE records (
    offset    INTEGER PRIMARY KEY,  -- position in the partition; contiguous within the file
    timestamp INTEGER NOT NULL,     -- milliseconds since the epoch (CreateTime or LogAppendTime)
    key       BLOB,
    value     BLOB,
    headers   TEXT                  -- JSON [["key", "hex value" or null], ...], NULL if none
);

-- One row per appended batch: a batch is all or nothing, and idempotent producers'
-- sequence numbers are kept with the records they describe.
CREATE TABLE batches (
    base_offset    INTEGER PRIMARY KEY,
    last_offset    INTEGER NOT NULL,
    max_timestamp  INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    appended_ms    INTEGER NOT NULL,
    producer_id    INTEGER,
    producer_epoch INTEGER,
    base_sequence  INTEGER
);

-- The segment's own metadata, one row: what start-up reads instead of the records.
CREATE TABLE segment (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    base_offset      INTEGER NOT NULL,
    next_offset      INTEGER NOT NULL,  -- high watermark: stored, never derived from rows
    log_start_offset INTEGER NOT NULL,  -- the partition's, as of this segment's last write
    bytes            INTEGER NOT NULL,
    min_timestamp    INTEGER,
    max_timestamp    INTEGER,
    created_ms       INTEGER NOT NULL,
    first_append_ms  INTEGER,           -- segment.ms counts from here
    sealed_ms        INTEGER            -- NULL while this is the active segment
);

-- Transactional batches (KIP-98), one row per batch a transactional producer wrote and
-- per commit or abort marker (a control batch: its one row in records holds Kafka's
-- control key and value). A segment of a build before transactions lacks the table,
-- which reads as empty; the active segment gains it when opened.
CREATE TABLE IF NOT EXISTS txn_batches (
    base_offset    INTEGER PRIMARY KEY,
    last_offset    INTEGER NOT NULL,
    producer_id    INTEGER NOT NULL,
    producer_epoch INTEGER NOT NULL,
    marker         TEXT CHECK (marker IN ('COMMIT', 'ABORT'))  -- NULL: records of a transaction
);
