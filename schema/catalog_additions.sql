-- Tables of the catalog added after version 3, each CREATE TABLE IF NOT EXISTS: run on
-- every writable open (eventstore/storage/catalog.py), so an older catalog gains them
-- without a version step and an older build ignores them.

-- SCRAM credentials (eventstore/storage/credentials.py): per user and mechanism only the
-- salt, the iteration count, StoredKey and ServerKey of RFC 5802, never a password.
CREATE TABLE IF NOT EXISTS scram_credentials (
    user        TEXT NOT NULL,
    mechanism   TEXT NOT NULL,
    salt        BLOB NOT NULL,
    iterations  INTEGER NOT NULL,
    stored_key  BLOB NOT NULL,
    server_key  BLOB NOT NULL,
    PRIMARY KEY (user, mechanism)
) WITHOUT ROWID;

-- The transaction coordinator's state, one row per transactional id (KIP-98): what a
-- restart needs to finish a commit or abort that was under way, and to fence zombies.
CREATE TABLE IF NOT EXISTS transactions (
    transactional_id TEXT PRIMARY KEY,
    producer_id      INTEGER NOT NULL,
    producer_epoch   INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    state            TEXT NOT NULL,     -- Empty, Ongoing, PrepareCommit, PrepareAbort, ...
    partitions       TEXT NOT NULL,     -- JSON [["topic", partition], ...] in the transaction
    pending_offsets  TEXT NOT NULL,     -- JSON {"group": [["topic", p, offset, metadata], ...]}
    start_ms         INTEGER NOT NULL,  -- when the transaction began (-1: none open)
    update_ms        INTEGER NOT NULL
);

-- ACL bindings (eventstore/storage/acls.py): one row per binding, the codes of Kafka's
-- ResourceType, PatternType, AclOperation and AclPermissionType (eventstore/security/acl.py).
CREATE TABLE IF NOT EXISTS acls (
    resource_type INTEGER NOT NULL,
    resource_name TEXT NOT NULL,
    pattern_type  INTEGER NOT NULL,
    principal     TEXT NOT NULL,
    host          TEXT NOT NULL,
    operation     INTEGER NOT NULL,
    permission    INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation,
                 permission)
) WITHOUT ROWID;

-- KIP-848 consumer groups (eventstore/groups/consumer_store.py): what Kafka keeps of one in
-- __consumer_offsets (group epoch, target assignment and its epoch, each member's
-- subscription, member epoch and current assignment), one JSON document per group,
-- written by the group coordinator at every change, read back when the server starts.
CREATE TABLE IF NOT EXISTS consumer_group_state (
    group_id         TEXT PRIMARY KEY,
    group_epoch      INTEGER NOT NULL,
    assignment_epoch INTEGER NOT NULL,
    state            TEXT NOT NULL
) WITHOUT ROWID;
