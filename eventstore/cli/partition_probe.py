"""Asking a server what it answers for one partition, in Kafka's own requests.

kafka-python retries a partition answered with KAFKA_STORAGE_ERROR (as it would one
changing leader) and tells its caller nothing, in Metadata, ListOffsets and Fetch alike: a
command would wait for an offline partition, or a damaged offset, until it timed out. So
the commands ask themselves, on one plain connection: Metadata (v4, which every broker
since 0.11 answers, asked not to create the topic) names each partition's error, and a
Fetch (v4) of a few bytes at an offset says whether the server can read it. The answers
are the protocol's error codes, not a client library's log text.

The same connection asks ConsumerGroupDescribe (API 69, v0), which kafka-python does not
speak, for a ``consumer`` (KIP-848) group's group epoch and target assignment epoch.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from kio.index import load_response_schema
from kio.serial import entity_reader

from eventstore.kafka.codec.protocol import encode_request

METADATA, METADATA_VERSION = 3, 4  # v4: the first that can ask not to create a topic
FETCH, FETCH_VERSION = 1, 4
CONSUMER_GROUP_DESCRIBE, CONSUMER_GROUP_DESCRIBE_VERSION = 69, 0
PROBE_BYTES = 1024  # a fetch need not carry records to say whether it could read them
_SIZE = struct.Struct(">i")


class PartitionProbe:
    """One connection to a server for Metadata and Fetch probes; OSError if it fails."""

    def __init__(self, host: str, port: int, timeout_s: float, client_id: str) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._client_id = client_id
        self._correlation_id = 0

    def partition_errors(self, topic: str) -> dict[int, int]:
        """Partition -> the error code Metadata gives it (0: online)."""
        answer = self._request(METADATA, METADATA_VERSION, topics=[{"name": topic}],
                               allow_auto_topic_creation=False)
        return {int(p.partition_index): int(p.error_code)
                for t in answer.topics if t.name == topic for p in t.partitions}

    def fetch_error(self, topic: str, partition: int, offset: int) -> int:
        """The error code of a Fetch at ``offset`` of the partition (0: readable)."""
        answer = self._request(
            FETCH, FETCH_VERSION, replica_id=-1, max_wait=0, min_bytes=0,
            max_bytes=PROBE_BYTES, isolation_level=0,
            topics=[{"topic": topic, "partitions": [{
                "partition": partition, "fetch_offset": offset,
                "partition_max_bytes": PROBE_BYTES}]}])
        return int(answer.responses[0].partitions[0].error_code)

    def group_epochs(self, group_id: str) -> tuple[int, int] | None:
        """A ``consumer`` group's (group epoch, target assignment epoch); None for a
        classic or unknown group (answered GROUP_ID_NOT_FOUND) or any other refusal."""
        answer = self._request(CONSUMER_GROUP_DESCRIBE, CONSUMER_GROUP_DESCRIBE_VERSION,
                               group_ids=[group_id], include_authorized_operations=False)
        for group in answer.groups:
            if group.group_id == group_id and not group.error_code:
                return int(group.group_epoch), int(group.assignment_epoch)
        return None

    def close(self) -> None:
        self._sock.close()

    def _request(self, api_key: int, version: int, **fields: Any) -> Any:
        self._correlation_id += 1
        frame = encode_request(api_key, version, self._correlation_id, self._client_id,
                               **fields)
        self._sock.sendall(_SIZE.pack(len(frame)) + frame)
        (size,) = _SIZE.unpack(self._read(_SIZE.size))
        answer = self._read(size)
        response_type = load_response_schema(api_key, version)
        _, used = entity_reader(response_type.__header_schema__)(answer, 0)
        body, _ = entity_reader(response_type)(answer, used)
        return body

    def _read(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self._sock.recv(count)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)
