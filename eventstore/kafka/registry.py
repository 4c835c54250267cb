"""The Kafka APIs this node serves: for each, the versions advertised and its handler.

:data:`APIS` is the one table of the wire protocol. The listener refuses a request of an
API or version not in it (eventstore/kafka/codec/protocol.py decodes against
:data:`SUPPORTED_VERSIONS`), ApiVersions answers with it, and a connection's session
routes each request to the handler it names. Serving another Kafka API is a handler
module in eventstore/kafka/handlers/ and one entry here.

Versions: kio 0.6.5 carries Kafka 4.0's schemas, so its lowest versions are Kafka 4.0's
(no OffsetCommit v0-1, CreateTopics v0-1, ...), and current kafka-python 3.x and
librdkafka 2.x all start at or above them. Each maximum reaches the first flexible version
(tagged fields, compact encodings) and stops before a version that names topics by id or
reshapes the request; versions that only add fields a single node answers with defaults
are included. kafka-python reads the broker's version from what is advertised: advertise
what is served, no more and no less.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from kio.static.protocol import ResponsePayload

from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.protocol import (
    ApiVersionRanges,
    Request,
    api_name,
    api_versions_response,
)
from eventstore.kafka.connection import Connection, Handler
from eventstore.kafka.handlers import (
    acls,
    cluster,
    configs,
    consumer_groups,
    delete_records,
    delete_topics,
    fetch,
    groups,
    leader_epochs,
    list_offsets,
    log_dirs,
    metadata,
    offset_delete,
    produce,
    producer_ids,
    producers,
    sasl,
    topic_partitions,
    topics,
    transactions,
    user_scram_credentials,
)


class Api(NamedTuple):
    """One served API: the (lowest, highest) version advertised, and its handler."""

    versions: tuple[int, int]
    handler: Handler


async def handle_api_versions(conn: Connection, request: Request) -> ResponsePayload:
    """ApiVersions: every API of :data:`APIS` with its versions (the registry itself, so
    answered here rather than by a module of handlers/)."""
    return api_versions_response(SUPPORTED_VERSIONS, request.api_version)


APIS: Mapping[ApiKey, Api] = {
    # v3 is the first with v2 record batches; v9 flexible; v10+ adds leader-change hints
    # (KIP-951), v12 the new transaction protocol
    ApiKey.PRODUCE: Api((3, 9), produce.handle_produce),
    # v4 is kio's first; v12 flexible; v13 names topics by id, v14 only adds an error,
    # v15 moves replica_id into replica_state, v16 adds node endpoints (tagged, for leader
    # changes a single node never has); v17 adds a follower's directory id
    ApiKey.FETCH: Api((4, 16), fetch.handle_fetch),
    # v6 flexible, v7 adds MAX_TIMESTAMP (-3); v8+ is tiered storage
    ApiKey.LIST_OFFSETS: Api((1, 7), list_offsets.handle_list_offsets),
    # v8 authorized operations, v9 flexible, v10 topic ids, v12 asks by id; v13 only adds
    # a top-level error
    ApiKey.METADATA: Api((0, 12), metadata.handle_metadata),
    # v2 is kio's first; v8 flexible; v9 checks KIP-848 member epochs (librdkafka 2.16
    # asks v9), v10 names topics by id
    ApiKey.OFFSET_COMMIT: Api((2, 9), groups.handle_offset_commit),
    # v6 flexible, v7 require_stable; v8 batches groups, v9 adds the KIP-848 member
    # (librdkafka 2.16 asks v9); v10 names topics by id
    ApiKey.OFFSET_FETCH: Api((1, 9), groups.handle_offset_fetch),
    # v3 flexible; v4 batches coordinator keys
    ApiKey.FIND_COORDINATOR: Api((0, 3), groups.handle_find_coordinator),
    # v5 static members, v6 flexible, v7-9 add optional fields
    ApiKey.JOIN_GROUP: Api((0, 9), groups.handle_join_group),
    # v4 flexible
    ApiKey.HEARTBEAT: Api((0, 4), groups.handle_heartbeat),
    # v3 lists members instead of one member_id, v4 flexible
    ApiKey.LEAVE_GROUP: Api((0, 5), groups.handle_leave_group),
    # v4 flexible, v5 echoes protocol type and name
    ApiKey.SYNC_GROUP: Api((0, 5), groups.handle_sync_group),
    # v5 flexible; v6 adds per-group error messages
    ApiKey.DESCRIBE_GROUPS: Api((0, 5), groups.handle_describe_groups),
    # v3 flexible, v4 filters by state; v5 by group type
    ApiKey.LIST_GROUPS: Api((0, 5), groups.handle_list_groups),
    # v3 flexible, v4 same layout (kafka-python asks v4 first)
    ApiKey.API_VERSIONS: Api((0, 4), handle_api_versions),
    # v2 is kio's first; v5 flexible; v7 returns topic ids
    ApiKey.CREATE_TOPICS: Api((2, 7), topics.handle_create_topics),
    # v1 is kio's first; v4 flexible; v6 may name topics by id
    ApiKey.DELETE_TOPICS: Api((1, 6), delete_topics.handle_delete_topics),
    # v2 flexible, v3-4 epoch bumps; v5+ is transactions v2
    ApiKey.INIT_PRODUCER_ID: Api((0, 4), producer_ids.handle_init_producer_id),
    # v2 answers PRODUCER_FENCED, v3 flexible; v4 batches transactions (KIP-890)
    ApiKey.ADD_PARTITIONS_TO_TXN: Api((0, 3), transactions.handle_add_partitions_to_txn),
    # v2 answers PRODUCER_FENCED, v3 flexible; v4 is KIP-890's
    ApiKey.ADD_OFFSETS_TO_TXN: Api((0, 3), transactions.handle_add_offsets_to_txn),
    # v2 answers PRODUCER_FENCED, v3 flexible; v4 returns the epoch (KIP-890)
    ApiKey.END_TXN: Api((0, 3), transactions.handle_end_txn),
    # v3 flexible with KIP-447's group generation and member; v4 is KIP-890's
    ApiKey.TXN_OFFSET_COMMIT: Api((0, 3), transactions.handle_txn_offset_commit),
    # v0 flexible, the only version
    ApiKey.DESCRIBE_TRANSACTIONS: Api((0, 0), transactions.handle_describe_transactions),
    # v1 adds the duration filter; v2 a transactional id pattern
    ApiKey.LIST_TRANSACTIONS: Api((0, 1), transactions.handle_list_transactions),
    # v1 is kio's first; v4 flexible
    ApiKey.DESCRIBE_CONFIGS: Api((1, 4), configs.handle_describe_configs),
    # v2 flexible
    ApiKey.ALTER_CONFIGS: Api((0, 2), configs.handle_alter_configs),
    # v1 is kio's first; v2 flexible, v4 adds total/usable bytes
    ApiKey.DESCRIBE_LOG_DIRS: Api((1, 4), log_dirs.handle_describe_log_dirs),
    # v2 flexible, v3 same layout
    ApiKey.CREATE_PARTITIONS: Api((0, 3), topics.handle_create_partitions),
    # v2 flexible
    ApiKey.DELETE_GROUPS: Api((0, 2), groups.handle_delete_groups),
    # v1 flexible
    ApiKey.INCREMENTAL_ALTER_CONFIGS: Api((0, 1), configs.handle_incremental_alter_configs),
    # v0 flexible; a single node has no reassignments
    ApiKey.LIST_PARTITION_REASSIGNMENTS: Api((0, 0), cluster.handle_list_partition_reassignments),
    # v0 flexible, v1 endpoint_type, v2 include_fenced_brokers
    ApiKey.DESCRIBE_CLUSTER: Api((0, 2), cluster.handle_describe_cluster),
    # v2 is kio's first (Kafka 4.0's); v3 adds replica_id, v4 flexible
    ApiKey.OFFSET_FOR_LEADER_EPOCH: Api((2, 4), leader_epochs.handle_offset_for_leader_epoch),
    # v0 flexible, the only version
    ApiKey.DESCRIBE_PRODUCERS: Api((0, 0), producers.handle_describe_producers),
    # v0 flexible, the only version (KIP-966)
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: Api(
        (0, 0), topic_partitions.handle_describe_topic_partitions),
    # v2 flexible
    ApiKey.DELETE_RECORDS: Api((0, 2), delete_records.handle_delete_records),
    # v0 is the only version
    ApiKey.OFFSET_DELETE: Api((0, 0), offset_delete.handle_offset_delete),
    # KIP-848; v1 adds subscribed_topic_regex (librdkafka 2.10+ asks v1)
    ApiKey.CONSUMER_GROUP_HEARTBEAT: Api(
        (0, 1), consumer_groups.handle_consumer_group_heartbeat),
    # v1 only adds member types (reported at their v0 meaning)
    ApiKey.CONSUMER_GROUP_DESCRIBE: Api(
        (0, 1), consumer_groups.handle_consumer_group_describe),
    # v0 is followed by bare SASL tokens, v1 by SaslAuthenticate requests
    ApiKey.SASL_HANDSHAKE: Api((0, 1), sasl.handle_sasl_handshake),
    # v1 adds the session lifetime (0: no re-authentication asked), v2 flexible
    ApiKey.SASL_AUTHENTICATE: Api((0, 2), sasl.handle_sasl_authenticate),
    # v0 flexible, the only version
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: Api(
        (0, 0), user_scram_credentials.handle_describe_user_scram_credentials),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: Api(
        (0, 0), user_scram_credentials.handle_alter_user_scram_credentials),
    # v1 is kio's first (adds PREFIXED patterns); v2 flexible, v3 same layout
    ApiKey.DESCRIBE_ACLS: Api((1, 3), acls.handle_describe_acls),
    ApiKey.CREATE_ACLS: Api((1, 3), acls.handle_create_acls),
    ApiKey.DELETE_ACLS: Api((1, 3), acls.handle_delete_acls),
}

# APIS' versions alone, as the codec and ApiVersions take them
SUPPORTED_VERSIONS: ApiVersionRanges = {key: api.versions for key, api in APIS.items()}


def api_table() -> str:
    """README's table of the APIs served: Kafka's name, the key and the versions, by key.

    README.md holds this table and tests/test_readme.py checks it is exactly this output:
    after a change to :data:`APIS`, run ``python -m eventstore.kafka.registry`` and put
    what it prints in README's "Kafka APIs served" section.
    """
    rows = ["| API | key | versions |", "|---|---|---|"]
    for key, (low, high) in sorted(SUPPORTED_VERSIONS.items()):
        versions = f"{low}" if low == high else f"{low}–{high}"
        rows.append(f"| {api_name(key)} | {int(key)} | {versions} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(api_table())
