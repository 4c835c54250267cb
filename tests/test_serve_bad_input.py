"""Bad input over raw sockets: a truncated frame, an oversized frame, an unknown API key
and a record batch with a wrong CRC. Each time the offending connection gets Kafka's
error or is closed, nothing is written, and a client connected meanwhile goes on
producing and consuming.

One server takes every case in turn, so it also has to survive all of them.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic
from support import (
    PRODUCE_VERSION,
    KafkaConnection,
    ServerProcess,
    produce_fields,
    record_batch,
)

REQUEST_MAX_BYTES = 65536
IDLE_MS = 1000
TARGET = "target"  # what the bad requests aim at; must stay empty
PRODUCE, API_VERSIONS = 0, 18
CORRUPT_MESSAGE = 2
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(str(tmp_path_factory.mktemp("bad-input")), settings={
        "socket.request.max.bytes": REQUEST_MAX_BYTES, "connections.max.idle.ms": IDLE_MS,
    }) as server:
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        admin.create_topics([NewTopic(TARGET, 1, 1)])[TARGET].result(TIMEOUT_S)
        yield server


class GoodClient:
    """A producer and a consumer that stay connected while the bad input arrives."""

    def __init__(self, server: ServerProcess) -> None:
        self.producer = KafkaProducer({"bootstrap.servers": server.bootstrap, "acks": "all"})
        self.consumer = KafkaConsumer({"bootstrap.servers": server.bootstrap,
                                       "group.id": "good", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition("healthy", 0, OFFSET_BEGINNING)])
        self.sent = 0

    def round_trip(self) -> None:
        """Produce one record and consume it back."""
        value = b"still serving %d" % self.sent
        self.sent += 1
        failures: list = []
        self.producer.produce("healthy", value,
                              on_delivery=lambda error, _: error and failures.append(error))
        assert self.producer.flush(TIMEOUT_S) == 0 and failures == []
        message = self.consumer.poll(TIMEOUT_S)
        assert message is not None and message.error() is None
        assert message.value() == value

    def target_end_offset(self) -> int:
        return self.consumer.get_watermark_offsets(TopicPartition(TARGET, 0), TIMEOUT_S)[1]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture(scope="module")
def good(server: ServerProcess) -> Iterator[GoodClient]:
    client = GoodClient(server)
    client.round_trip()
    yield client
    client.close()


def produce_frame(conn: KafkaConnection, value: bytes = b"v") -> bytes:
    """A Produce request frame (no size prefix) of one record for partition 0 of TARGET."""
    _, frame = conn.encode(PRODUCE, PRODUCE_VERSION,
                           **produce_fields(TARGET, 0, record_batch(value)))
    return frame


# -- the cases: each does its damage on ``conn`` and checks how the server answered ---------


def closed_mid_frame(conn: KafkaConnection) -> None:
    """The client promises 200 bytes, sends 20, and goes away."""
    frame = produce_frame(conn)
    conn.send_frame(frame[:20], size=200)
    conn.close()


def stalled_mid_frame(conn: KafkaConnection) -> None:
    """The client sends half a frame and stalls: closed after connections.max.idle.ms."""
    frame = produce_frame(conn)
    conn.send_frame(frame[:20], size=len(frame))
    started = time.monotonic()
    assert conn.closed_by_server(TIMEOUT_S)
    assert time.monotonic() - started >= IDLE_MS / 1000 * 0.9


def truncated_request(conn: KafkaConnection) -> None:
    """A whole frame holding half a Produce request: undecodable, so closed."""
    frame = produce_frame(conn)
    conn.send_frame(frame[: len(frame) // 2])
    assert conn.closed_by_server(TIMEOUT_S)


def oversized_frame(conn: KafkaConnection) -> None:
    """A well-formed Produce over socket.request.max.bytes: closed without reading it."""
    frame = produce_frame(conn, b"x" * REQUEST_MAX_BYTES)
    assert len(frame) > REQUEST_MAX_BYTES
    with contextlib.suppress(ConnectionError):  # it may close while we still send
        conn.send_frame(frame)
    assert conn.closed_by_server(TIMEOUT_S)


def unknown_api_key(conn: KafkaConnection) -> None:
    """API key 999 (a request header v1 with a client id): closed, as Kafka does."""
    conn.send_frame(struct.pack(">hhih", 999, 0, 1, 4) + b"evil")
    assert conn.closed_by_server(TIMEOUT_S)


def wrong_crc(conn: KafkaConnection) -> None:
    """A Produce whose batch fails its CRC32C: CORRUPT_MESSAGE for that partition, and
    the connection stays usable."""
    batch = bytearray(record_batch(b"v"))
    batch[17] ^= 0xFF  # the stored CRC (bytes 17-20): the records no longer match it
    partition = conn.produce(TARGET, 0, bytes(batch))
    assert (partition.index, partition.error_code, partition.base_offset) == (
        0, CORRUPT_MESSAGE, -1)
    assert "CRC32C" in partition.error_message
    assert conn.request(API_VERSIONS, 3, client_software_name="tests",
                        client_software_version="1").error_code == 0


@pytest.mark.parametrize("damage", [
    closed_mid_frame, stalled_mid_frame, truncated_request, oversized_frame, unknown_api_key,
    wrong_crc,
], ids=lambda f: f.__name__)
def test_bad_input_hurts_only_its_own_connection(
    server: ServerProcess, good: GoodClient, damage: Callable[[KafkaConnection], None]
) -> None:
    with KafkaConnection(server.address, timeout=TIMEOUT_S) as conn:
        damage(conn)
    good.round_trip()
    assert good.target_end_offset() == 0  # nothing was written
    assert server.running
