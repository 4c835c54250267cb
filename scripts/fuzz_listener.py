"""Fuzz the Kafka listener of `eventstore serve` with random and mutated request frames.

Usage: python scripts/fuzz_listener.py [--seconds N] [--seed S]

tests/test_reliability_hostile.py runs it against a PLAINTEXT listener and against a
SASL_SSL one (:func:`fuzz` with ``address`` and ``tls``), where no frame ever logs in: every
connection is unauthenticated, so only ApiVersions and SASL requests may be answered
(``answered_api_keys`` says which were).

Hypothesis draws each frame: either random bytes, or a valid request of one of many APIs
and versions (built with kio's schemas, flexible versions included) mutated a few times:
bytes flipped, integers overwritten with boundary values (0, -1, the largest and the
smallest), spans cut out or inserted, the frame truncated, its size prefix made wrong.
Each frame goes to the server on a connection that is reused until the server closes it
or does not answer within a short wait (a legitimate long poll, or a frame still waiting
for bytes its size prefix promised), when it is dropped for a new one.

The server must never crash or hang: every second, and at the end, a fresh client sends
ApiVersions and Metadata, produces a record and fetches it back; its memory (VmRSS) is
sampled throughout. Prints frames sent and how they ended, the requests that failed inside
a handler (the listener logs those; there should be none), and the server's memory before
and after; exits 1 if the server failed.

The admin APIs that change the store (CreateTopics, CreatePartitions, DeleteTopics and
the config changes) are left out: they do what they are asked, however large, so one
mutated partition count could keep the server busy creating folders for hours; this
fuzzes parsing and serving.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reliability import rss_kib, serves  # noqa: E402
from support import KafkaConnection, ServerProcess, create_topic  # noqa: E402

from eventstore.kafka.codec.recordbatch import encode_batch  # noqa: E402
from eventstore.storage.records import LogRecord  # noqa: E402

TOPIC = "fuzz"
GROUP = "fuzz-group"
ANSWER_WAIT_S = 0.1  # how long one frame waits for an answer before its connection is dropped
CONNECT_TIMEOUT_S = 10.0  # a TCP connect and a TLS handshake, on a busy machine
CHECK_EVERY_S = 1.0
CHECK_TIMEOUT_S = 10.0  # a fresh client must be served within this, or the server hangs
BATCH = encode_batch(0, [LogRecord(i, 1_700_000_000_000, b"key", b"value" * 10)
                         for i in range(3)])
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


def _partitions(offset_key: str, **extra: Any) -> list[dict]:
    return [{"topic": TOPIC, "name": TOPIC, "partitions": [
        {"partition": 0, "partition_index": 0, offset_key: 0, **extra}]}]


# (api key, version, fields): valid requests of the APIs a client uses, old and flexible
SEEDS: list[tuple[int, int, dict[str, Any]]] = [
    (18, 0, {}),
    (18, 3, {"client_software_name": "fuzz", "client_software_version": "1"}),
    (3, 1, {"topics": [{"name": TOPIC}]}),
    (3, 9, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True}),
    (3, 12, {"topics": None}),
    *[(0, v, {"acks": acks, "timeout": 1000, "topic_data": [
        {"name": TOPIC, "partition_data": [{"index": 0, "records": BATCH}]}]})
      for v, acks in ((3, -1), (8, 1), (9, 0))],
    *[(1, v, {"replica_id": -1, "max_wait": 100, "min_bytes": 1, "max_bytes": 1 << 20,
              "session_epoch": -1,
              "topics": [{"topic": TOPIC, "partitions": [{
                  "partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 16,
                  "log_start_offset": -1, "current_leader_epoch": -1}]}]})
      for v in (4, 11, 12)],
    *[(2, v, {"replica_id": -1, "topics": [{"name": TOPIC, "partitions": [
        {"partition_index": 0, "timestamp": -2, "current_leader_epoch": -1}]}]})
      for v in (1, 7)],
    (10, 0, {"key": GROUP}),
    (10, 3, {"key": GROUP, "key_type": 0}),
    *[(11, v, {"group_id": GROUP, "session_timeout": 6000, "rebalance_timeout": 1000,
               "member_id": "", "protocol_type": "consumer",
               "protocols": [{"name": "range", "metadata": b"\x00\x01\x00\x00\x00\x00"}]})
      for v in (0, 5, 9)],
    *[(8, v, {"group_id": GROUP, "generation_id_or_member_epoch": -1, "member_id": "",
              "topics": [{"name": TOPIC, "partitions": [
                  {"partition_index": 0, "committed_offset": 1}]}]})
      for v in (2, 8)],
    *[(9, v, {"group_id": GROUP, "topics": [{"name": TOPIC, "partition_indexes": [0]}]})
      for v in (1, 6)],
    (12, 4, {"group_id": GROUP, "generation_id": 1, "member_id": "m"}),
    (13, 0, {"group_id": GROUP, "member_id": "m"}),
    (14, 5, {"group_id": GROUP, "generation_id": 1, "member_id": "m", "assignments": []}),
    (15, 5, {"groups": [GROUP]}),
    (16, 4, {"states_filter": []}),
    (22, 4, {"transaction_timeout": 1000, "producer_id": -1, "producer_epoch": -1}),
    (32, 4, {"resources": [{"resource_type": 2, "resource_name": TOPIC,
                            "configuration_keys": None}]}),
    (17, 1, {"mechanism": "SCRAM-SHA-512"}),
    (17, 0, {"mechanism": "PLAIN"}),
    (36, 2, {"auth_bytes": b"n,,n=fuzz,r=fyko+d2lbbFgONRv9qkxdawL"}),
    (36, 0, {"auth_bytes": b"\0fuzz\0password"}),
]


# -- frames ------------------------------------------------------------------------------------


def seed_frames(conn: KafkaConnection) -> list[bytes]:
    """Every seed request encoded (without the 4-byte size prefix)."""
    return [conn.encode(api_key, version, **values)[1] for api_key, version, values in SEEDS]


@st.composite
def _mutation(draw: st.DrawFn, frame: bytes) -> bytes:
    at = draw(st.integers(0, len(frame)))
    kind = draw(st.sampled_from(["flip", "integer", "cut", "insert", "truncate"]))
    if kind == "flip":
        at = min(at, len(frame) - 1)
        return frame[:at] + bytes([frame[at] ^ draw(st.integers(1, 255))]) + frame[at + 1:]
    if kind == "integer":
        width = draw(st.sampled_from([1, 2, 4, 8]))
        value = draw(st.sampled_from(INTERESTING)) & ((1 << (8 * width)) - 1)
        return frame[:at] + value.to_bytes(width, "big") + frame[at + width:]
    if kind == "cut":
        return frame[:at] + frame[at + draw(st.integers(1, 16)):]
    if kind == "insert":
        return frame[:at] + draw(st.binary(min_size=1, max_size=16)) + frame[at:]
    return frame[:at]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> tuple[bytes, int]:
    """(payload, size prefix): a seed frame mutated one to four times; the prefix is
    usually the payload's length, sometimes a little off."""
    frame = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        if frame:
            frame = draw(_mutation(frame))
    size = len(frame) + draw(st.sampled_from([0] * 8 + [-1, 1, 7]))
    return frame, max(size, 0)


def frames(seeds: list[bytes]) -> st.SearchStrategy[tuple[bytes, int]]:
    """Mutated valid requests, mostly; sometimes random bytes."""
    random_bytes = st.binary(max_size=256).map(lambda b: (b, len(b)))
    return st.one_of(mutated(seeds), mutated(seeds), mutated(seeds), random_bytes)


# -- running -----------------------------------------------------------------------------------


@dataclass
class FuzzStats:
    """How the frames ended, and the server's memory."""

    seed: int
    frames: int = 0
    answered: int = 0
    # how many answered frames had each API key (the frame's first two bytes)
    answered_api_keys: collections.Counter[int] = field(default_factory=collections.Counter)
    closed: int = 0  # the server closed the connection (a bad frame, as it should)
    silent: int = 0  # no answer within ANSWER_WAIT_S: the connection was dropped
    misframed: int = 0  # size prefix not the frame's length: dropped at once
    checks: int = 0  # fresh clients served meanwhile
    handler_failures: int = 0  # requests whose handler raised (logged "request failed")
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_peak_kib: int = 0
    failure: str | None = None  # how the server failed, if it did
    last_frames: list[str] = field(default_factory=list)  # hex of the last frames sent


class _TimeUp(Exception):
    """Ends the hypothesis run once the time is up (it has no time limit of its own)."""


class Fuzzer:
    """Sends frames to one server and keeps checking that it still serves."""

    def __init__(self, server: ServerProcess, stats: FuzzStats,
                 address: tuple[str, int] | None = None, tls: ssl.SSLContext | None = None
                 ) -> None:
        """Frames go to ``address`` (the server's first listener when None), over TLS with
        ``tls``; the checks always use the first listener."""
        self.server = server
        self.stats = stats
        self.address = address or server.address
        self.tls = tls
        self._conn: KafkaConnection | None = None
        self._next_check = 0.0

    def send(self, payload: bytes, size: int) -> None:
        """Send one frame and wait briefly for an answer, or for the server to close.

        A frame whose size prefix is wrong is not waited for: the server either waits for
        bytes that never come or reads a cut frame, and closing our end ends both.
        """
        stats = self.stats
        stats.frames += 1
        stats.last_frames = [*stats.last_frames[-2:], payload.hex()]
        if self._conn is None:
            self._conn = KafkaConnection(self.address, timeout=CONNECT_TIMEOUT_S, tls=self.tls)
            self._conn.sock.settimeout(ANSWER_WAIT_S)
        try:
            self._conn.send_frame(payload, size)
            if size != len(payload):
                stats.misframed += 1
                self._drop()
            elif self._conn.sock.recv(4):
                stats.answered += 1  # the rest of the answer is of no interest:
                stats.answered_api_keys[int.from_bytes(payload[:2], "big", signed=True)] += 1
                self._drop()  # a new connection starts clean
            else:
                stats.closed += 1
                self._drop()
        except TimeoutError:
            stats.silent += 1
            self._drop()
        except OSError:
            stats.closed += 1
            self._drop()
        self.maybe_check()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def maybe_check(self, force: bool = False) -> None:
        """Every CHECK_EVERY_S: the server runs, a fresh client is served, memory sampled."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_S
        if not self.server.running:
            raise AssertionError(f"the server died:\n{self.server.log_tail()}")
        self.stats.rss_peak_kib = max(self.stats.rss_peak_kib, rss_kib(self.server.pid))
        serves(self.server, TOPIC, 0, timeout=CHECK_TIMEOUT_S)
        self.stats.checks += 1


def fuzz(server: ServerProcess, seconds: float, seed: int,
         address: tuple[str, int] | None = None, tls: ssl.SSLContext | None = None
         ) -> FuzzStats:
    """Fuzz ``server`` for ``seconds`` (on ``address`` over ``tls``: see :class:`Fuzzer`),
    checking that it serves all along; ``failure`` in the result says how it failed, if
    it did."""
    stats = FuzzStats(seed)
    with KafkaConnection(server.address) as conn:
        create_topic(conn, TOPIC, 1)
        seeds = seed_frames(conn)
    serves(server, TOPIC, 0, timeout=CHECK_TIMEOUT_S)  # warms up
    stats.rss_before_kib = rss_kib(server.pid)
    fuzzer = Fuzzer(server, stats, address, tls)
    deadline = time.monotonic() + seconds

    @hypothesis_seed(seed)
    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(frames(seeds))
    def run(frame: tuple[bytes, int]) -> None:
        if time.monotonic() > deadline:
            raise _TimeUp
        fuzzer.send(*frame)

    try:
        with contextlib.suppress(_TimeUp):
            run()
        fuzzer._drop()
        fuzzer.maybe_check(force=True)
        stats.rss_after_kib = rss_kib(server.pid)
    except (AssertionError, OSError) as failure:
        stats.failure = f"{type(failure).__name__}: {failure}"
    stats.handler_failures = sum("request failed" in line for line in list(server.lines))
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as parent:
        server = ServerProcess.start(str(Path(parent) / "data"))
        try:
            stats = fuzz(server, args.seconds, seed)
        finally:
            server.kill()
    print(f"seed {stats.seed}")
    print(f"seconds {args.seconds:g}")
    print(f"frames {stats.frames} (answered {stats.answered}, closed by the server"
          f" {stats.closed}, no answer within {ANSWER_WAIT_S} s {stats.silent}, size prefix"
          f" wrong {stats.misframed})")
    print(f"fresh clients served meanwhile {stats.checks}")
    print(f"requests that failed inside a handler {stats.handler_failures}")
    after = "-" if stats.failure else f"{stats.rss_after_kib // 1024} MiB"
    print(f"server VmRSS before {stats.rss_before_kib // 1024} MiB, after {after},"
          f" peak {stats.rss_peak_kib // 1024} MiB")
    if stats.failure:
        print(f"SERVER FAILED after {stats.frames} frames: {stats.failure}")
        print("last frames sent (hex, without the size prefix):", *stats.last_frames, sep="\n  ")
    return 1 if stats.failure or stats.handler_failures else 0


if __name__ == "__main__":
    sys.exit(main())
