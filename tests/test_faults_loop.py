"""Issue 16, faults 5, 6 and 7: no request stalls the others.

5. A large produce is decoded (CRC, decompression, parsing) off the event loop: while one
   connection's big compressed produce is being decoded, another connection's
   ApiVersions requests keep being answered.
6. Answers built and not yet written are bounded server-wide: a client that sends
   fetches and reads nothing stops its own connection's read-ahead, while a client that
   reads keeps being answered.
7. Threads waiting on busy actors do not starve reads: while the broker is busy with a
   long CreateTopics and dozens of Metadata requests wait on it, a fetch on another
   connection is answered before the CreateTopics is.

Real servers, real sockets, raw Kafka requests; the assertions are about the order and
overlap of answers, never wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from support import (
    FETCH_VERSION,
    PRODUCE_VERSION,
    KafkaConnection,
    create_topic,
    fetch,
    produce,
    produce_fields,
    wait_until,
)

from actors.system import ActorSystem
from eventstore.config import ServerConfig
from eventstore.errors import InvalidRecord
from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.server import KafkaListener
from eventstore.kafka.session import Session
from eventstore.storage.records import LogRecord

TIMEOUT = 60.0


def answered(conn: KafkaConnection) -> bool:
    """Whether an answer (some of its bytes) waits to be read on ``conn``."""
    return bool(select.select([conn.sock], [], [], 0)[0])


def api_versions(conn: KafkaConnection) -> None:
    response = conn.request(18, 3, client_software_name="tests", client_software_version="1")
    assert response.error_code == 0


def fetch_request(conn: KafkaConnection, topic: str, offset: int, max_bytes: int
                  ) -> tuple[int, bytes]:
    """(correlation id, frame) of a Fetch that does not wait for data."""
    return conn.encode(
        1, FETCH_VERSION, replica_id=-1, max_wait=0, min_bytes=0, max_bytes=max_bytes,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[{"topic": topic, "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
            "log_start_offset": -1, "partition_max_bytes": max_bytes}]}],
        forgotten_topics_data=[], rack_id="")


# -- 5: a large produce is decoded off the loop ---------------------------------------------

def test_a_large_compressed_produce_stalls_no_other_connection(server):
    now = int(time.time() * 1000)
    batch = encode_batch(0, [LogRecord(i, now, None, b"%08d" % i * 12) for i in range(150_000)],
                         compression_type="gzip")  # ~15 MiB of records once decompressed
    with KafkaConnection(server.address, timeout=TIMEOUT) as big, \
            KafkaConnection(server.address, timeout=TIMEOUT) as small:
        create_topic(big, "big", 1)
        assert produce(big, "big", 0, [b"warm"]).error_code == 0  # its partition is known
        api_versions(small)
        # two batches for one partition: both decoded whole, then refused at once, so the
        # answer comes as soon as the decoding ends
        correlation_id, frame = big.encode(
            0, PRODUCE_VERSION, **produce_fields("big", 0, batch + batch))
        big.send_frame(frame)
        during = 0
        while not answered(big):
            api_versions(small)
            during += 1
        response = big.read_response(0, PRODUCE_VERSION, correlation_id)
        [[partition]] = [t.partition_responses for t in response.responses]
        assert partition.error_code == InvalidRecord.code, partition
        assert during >= 20, (
            f"only {during} ApiVersions answered while the large produce was decoded")


def test_a_fetch_of_large_records_stalls_no_other_connection(server):
    """Few records (fewer than the count read inline) but many bytes: read on a thread."""
    value = os.urandom(100_000)
    with KafkaConnection(server.address, timeout=TIMEOUT) as setup:
        create_topic(setup, "wide", 1)
        for _ in range(40):
            assert produce(setup, "wide", 0, [value] * 5).error_code == 0  # 20 MB in all
    server.restart()  # the batches produced are no longer kept in memory: read from disk
    with KafkaConnection(server.address, timeout=TIMEOUT) as big, \
            KafkaConnection(server.address, timeout=TIMEOUT) as small:
        assert fetch(big, "wide", 0, 199).records  # its partition is known
        api_versions(small)
        correlation_id, frame = fetch_request(big, "wide", 0, 50 << 20)
        big.send_frame(frame)
        during = 0
        while not answered(big):
            api_versions(small)
            during += 1
        response = big.read_response(1, FETCH_VERSION, correlation_id)
        (partition,) = response.responses[0].partitions
        assert partition.error_code == 0 and len(partition.records) > 20_000_000
        assert during >= 5, f"only {during} ApiVersions answered while the fetch was read"


# -- 6: answers built and not yet written are bounded ---------------------------------------

@dataclass
class InProcessServer:
    """A real listener and sessions over a real actor system, in this process, so that a
    test can look at what the server holds."""

    ctx: BrokerContext
    sessions: list[Session]
    address: tuple[str, int]


@contextlib.contextmanager
def in_process_server(data_dir: str, settings: dict[str, object]) -> Iterator[InProcessServer]:
    config = ServerConfig.from_mapping(settings)
    system = ActorSystem(data_dir, config).start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-listener")
    thread.start()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    ctx = BrokerContext(system.broker, system.coordinator, "127.0.0.1", 0, pool,
                        config.to_mapping(), data_dir)
    sessions: list[Session] = []

    def session(client_host: str) -> Session:
        sessions.append(Session(ctx, client_host))
        return sessions[-1]

    listener = KafkaListener(session, config.listener_limits())
    try:
        host, port = asyncio.run_coroutine_threadsafe(
            listener.start("127.0.0.1", 0), loop).result(TIMEOUT)
        ctx.host, ctx.port = host, port
        yield InProcessServer(ctx, sessions, (host, port))
    finally:
        asyncio.run_coroutine_threadsafe(listener.stop(5.0), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()
        pool.shutdown(wait=True)
        ctx.asks.shutdown(wait=True)
        system.stop()


BUDGET = 3 << 20
ANSWER = 1 << 20  # each fetch's max_bytes


def test_a_client_that_reads_no_answer_stops_its_own_read_ahead_only(data_dir):
    with in_process_server(data_dir, {"queued.max.request.bytes": BUDGET}) as server, \
            KafkaConnection(server.address, timeout=TIMEOUT) as setup:
        create_topic(setup, "data", 1)
        value = os.urandom(10_000)
        for _ in range(30):
            assert produce(setup, "data", 0, [value] * 50).error_code == 0  # 15 MB in all
        budget = server.ctx.responses

        with KafkaConnection(server.address, timeout=TIMEOUT) as slow:
            for offset in range(0, 1500, 50):  # 30 MB asked for, none of it read
                _, frame = fetch_request(slow, "data", offset, ANSWER)
                slow.send_frame(frame)
            wait_until(lambda: len(server.sessions) == 2, TIMEOUT, "the slow connection")
            stuck = server.sessions[-1]
            wait_until(lambda: stuck._unwritten > 0 and budget.used == stuck._unwritten,
                       TIMEOUT, "the slow client's answer to stay unwritten")
            assert stuck.fetches._ahead is None, "a connection not read reads ahead"
            assert budget.used <= ANSWER + 4096

            with KafkaConnection(server.address, timeout=TIMEOUT) as reader:
                offset = 0
                while offset < 1500:  # a consumer catching up is served meanwhile
                    fetched = fetch(reader, "data", 0, offset, max_bytes=ANSWER)
                    assert fetched.error_code == 0 and fetched.records
                    offset = fetched.records[-1].offset + 1
                    assert budget.used <= BUDGET + ANSWER + 4096
                assert stuck._unwritten > 0 and stuck.fetches._ahead is None
        wait_until(lambda: budget.used == 0, TIMEOUT,
                   "the closed connections to give their bytes back")


def test_a_client_that_reads_no_answer_is_closed_after_the_idle_timeout(serve):
    server = serve(settings={"connections.max.idle.ms": 1000})
    with KafkaConnection(server.address, timeout=TIMEOUT) as setup:
        create_topic(setup, "data", 1)
        for _ in range(20):
            assert produce(setup, "data", 0, [os.urandom(10_000)] * 50).error_code == 0
    with KafkaConnection(server.address, timeout=TIMEOUT) as slow:
        for offset in range(0, 1000, 50):  # 10 MB asked for, none of it read
            _, frame = fetch_request(slow, "data", offset, ANSWER)
            slow.send_frame(frame)
        server.wait_for_log("the client read no answer past connections.max.idle.ms",
                            TIMEOUT)


# -- 7: threads waiting on busy actors do not starve reads ----------------------------------

def test_metadata_waiting_on_a_busy_broker_does_not_delay_a_fetch(server):
    with KafkaConnection(server.address, timeout=TIMEOUT) as reader, \
            KafkaConnection(server.address, timeout=TIMEOUT) as creator:
        create_topic(reader, "data", 1)
        for _ in range(4):
            assert produce(reader, "data", 0, [b"x" * 100] * 250).error_code == 0
        assert len(fetch(reader, "data", 0, 0, max_bytes=64 * 1024).records) > 0

        # a CreateTopics that keeps the broker busy (each partition is created on disk)
        created_id, frame = creator.encode(19, 4, timeout=60000, validate_only=False, topics=[{
            "name": "slow", "num_partitions": 150, "replication_factor": 1,
            "assignments": [], "configs": []}])
        creator.send_frame(frame)
        first = os.path.join(server.data_dir, "slow-0")
        wait_until(lambda: os.path.exists(first), TIMEOUT, "the broker to start creating")
        waiting = [KafkaConnection(server.address, timeout=TIMEOUT) for _ in range(48)]
        try:
            for conn in waiting:  # each waits on the busy broker
                _, frame = conn.encode(3, 8, topics=None, allow_auto_topic_creation=False,
                                       include_cluster_authorized_operations=False,
                                       include_topic_authorized_operations=False)
                conn.send_frame(frame)
            # a fetch of a thousand records: read on a thread, not on the event loop
            got = fetch(reader, "data", 0, 0, max_bytes=1 << 20)
            assert len(got.records) == 1000
            assert not answered(creator), "the fetch waited for the broker to be idle"
            assert not any(answered(conn) for conn in waiting)
            creator.sock.settimeout(TIMEOUT * 3)
            response = creator.read_response(19, 4, created_id)
            assert response.topics[0].error_code == 0
        finally:
            for conn in waiting:
                conn.close()
