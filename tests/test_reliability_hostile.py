"""Hostile and broken clients neither take the server down nor hurt the other clients.

- Fuzzing (scripts/fuzz_listener.py, here for 15 s): random frames and mutated valid
  requests of every API a client uses; the server must not crash or hang (a fresh client
  is served every second and at the end) and its memory must stay bounded. The same
  against a SASL_SSL listener (10 s): every connection there is unauthenticated, so only
  ApiVersions and SASL requests are ever answered, and nothing is written.
- Frames over ``socket.request.max.bytes``, a connection that sends half a frame and
  stalls, one that never sends anything, and more connections than ``max.connections``,
  while another client keeps producing and fetching through all of it.
- Two frames that kio alone mishandles (a huge compact array length, a null array where
  the schema has none) are refused as invalid requests: eventstore/kafka/codec/framecheck.py
  checks every frame before kio reads it (tests/test_framecheck.py tests the check).
"""

from __future__ import annotations

import random
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from reliability import load_script, serves
from secure import make_pki
from support import KafkaConnection, ServerProcess, create_topic, fetch, produce, wait_until

from eventstore.errors import InvalidRequest
from eventstore.kafka.codec.protocol import decode_request
from eventstore.kafka.registry import SUPPORTED_VERSIONS

FUZZ_SECONDS = 15.0
SASL_FUZZ_SECONDS = 10.0  # a TLS handshake a frame: fewer frames a second
# what a connection that has not logged in may be answered: ApiVersions, SaslHandshake and
# SaslAuthenticate (eventstore/security/login.py)
BEFORE_LOGIN = {18, 17, 36}
RSS_GROWTH_BOUND_MIB = 100  # generous: a fuzz run grows the server by ~10 MiB
# A JoinGroup v9 whose protocols array claims about 2^35 entries (varint ffffffff6e).
JOIN_GROUP_HUGE_ARRAY = bytes.fromhex(
    "000b000900000013000a73657276657270726f63000b66757a7a2d67726f757000001770000003e8010009"
    "636f6e73756d6572ffffffff6e676507000189")

TOPIC = "hostile"
LIMITS = {"socket.request.max.bytes": 65536, "connections.max.idle.ms": 1000,
          "max.connections": 6}
IDLE_S = LIMITS["connections.max.idle.ms"] / 1000


def test_fuzzed_frames_never_crash_or_hang_the_server(serve) -> None:
    fuzzer = load_script("fuzz_listener")
    server = serve()
    seed = random.randrange(1 << 32)
    stats = fuzzer.fuzz(server, FUZZ_SECONDS, seed)
    assert stats.failure is None, f"{stats}\n{server.log_tail()}"
    print(stats)
    assert stats.frames > 1000 and stats.checks >= FUZZ_SECONDS / 2, stats
    assert stats.answered and stats.closed, "both answers and refusals must have been seen"
    growth_mib = (stats.rss_after_kib - stats.rss_before_kib) / 1024
    assert growth_mib < RSS_GROWTH_BOUND_MIB, stats


def test_fuzzed_frames_on_a_sasl_ssl_listener_get_nothing_but_a_login(serve, tmp_path) -> None:
    """No frame logs in (there is no user), so a frame of any other API closes its
    connection: nothing is written, no topic made, no offset committed."""
    fuzzer = load_script("fuzz_listener")
    pki = make_pki(tmp_path / "pki")
    server = serve(settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "ssl.certificate.location": pki.server_cert, "ssl.key.location": pki.server_key,
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "connection.failed.authentication.delay.ms": 0})
    port = int(server.ready["listeners"].split("SASL_SSL://127.0.0.1:")[1].split(" ")[0])
    seed = random.randrange(1 << 32)
    stats = fuzzer.fuzz(server, SASL_FUZZ_SECONDS, seed, ("127.0.0.1", port),
                        ssl.create_default_context(cafile=pki.ca))
    assert stats.failure is None, f"{stats}\n{server.log_tail()}"
    print(stats)
    assert stats.frames > 100 and stats.checks >= SASL_FUZZ_SECONDS / 2, stats
    assert stats.closed and set(stats.answered_api_keys) & BEFORE_LOGIN, stats
    assert set(stats.answered_api_keys) <= BEFORE_LOGIN, stats.answered_api_keys
    with KafkaConnection(server.address) as conn:  # the PLAINTEXT listener the checks use
        topics = conn.request(3, 12, topics=None, allow_auto_topic_creation=False,
                              include_topic_authorized_operations=False).topics
        assert [t.name for t in topics] == [fuzzer.TOPIC]
        # the warm-up and each check wrote one record: nothing else was
        assert fetch(conn, fuzzer.TOPIC, 0, 0).high_watermark == stats.checks + 1
        committed = conn.request(9, 6, group_id=fuzzer.GROUP, topics=None)
        assert all(p.committed_offset == -1 for t in committed.topics for p in t.partitions)


def test_a_huge_compact_array_length_does_not_kill_the_decoder() -> None:
    """kio's native reader allocates what an array length claims before reading it; the
    frame check refuses this 60-byte request before kio would abort the process."""
    decoding = ("import sys\nfrom eventstore.kafka.codec.protocol import decode_request\n"
                "from eventstore.kafka.registry import SUPPORTED_VERSIONS\n"
                "try:\n    decode_request(sys.stdin.buffer.read(), SUPPORTED_VERSIONS)\n"
                "except Exception as error:\n    print(type(error).__name__)")
    done = subprocess.run([sys.executable, "-c", decoding], input=JOIN_GROUP_HUGE_ARRAY,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[:200]
    assert done.stdout == b"InvalidRequest\n"


def test_a_null_array_where_none_is_allowed_is_an_invalid_request() -> None:
    """kio decodes a null array as None in any field; the handlers would trip over it."""
    header = struct.pack(">hhih", 0, 3, 1, -1)  # Produce v3, client_id null
    body = struct.pack(">hhii", -1, -1, 1000, -1)  # transactional_id null, acks, timeout, null
    with pytest.raises(InvalidRequest):
        decode_request(header + body, SUPPORTED_VERSIONS)


# -- hostile connections --------------------------------------------------------------------


class Bystander(threading.Thread):
    """A well-behaved client producing a record and fetching it back, over and over."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self._address = server.address
        self._done = threading.Event()
        self.rounds = 0
        self.slowest_s = 0.0
        self.errors: list[str] = []

    def run(self) -> None:
        with KafkaConnection(self._address, timeout=10) as conn:
            while not self._done.is_set():
                started = time.monotonic()
                try:
                    value = f"round-{self.rounds}".encode()
                    produced = produce(conn, TOPIC, 0, [value])
                    fetched = fetch(conn, TOPIC, 0, produced.base_offset)
                    if produced.error_code or [r.value for r in fetched.records[:1]] != [value]:
                        self.errors.append(f"round {self.rounds}: {produced} {fetched}")
                except OSError as error:
                    self.errors.append(f"round {self.rounds}: {error!r}")
                    return
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                self.rounds += 1

    def stop(self) -> None:
        self._done.set()
        self.join(10)

    def keeps_going(self, what: str) -> None:
        """Wait until it has done a few more rounds since now."""
        goal = self.rounds + 5
        wait_until(lambda: self.rounds >= goal or self.errors, 10, f"the bystander {what}")
        assert not self.errors, self.errors


@pytest.fixture
def limited_server(serve) -> Iterator[tuple[ServerProcess, Bystander]]:
    """A server with small socket limits, and a bystander client already at work on it."""
    server = serve(settings=LIMITS)
    with KafkaConnection(server.address) as conn:
        create_topic(conn, TOPIC, 1)
    bystander = Bystander(server)
    bystander.start()
    bystander.keeps_going("starting")
    yield server, bystander
    bystander.stop()
    assert not bystander.errors, bystander.errors
    assert bystander.slowest_s < 2.0, f"a round took {bystander.slowest_s:.2f} s"


def closed_within(conn: KafkaConnection, timeout: float) -> float:
    """Seconds until the server closed ``conn``; fails if it is still open at ``timeout``."""
    started = time.monotonic()
    assert conn.closed_by_server(timeout), f"the connection is still open after {timeout} s"
    return time.monotonic() - started


def test_oversized_and_stalled_frames_are_closed_alone(limited_server) -> None:
    server, bystander = limited_server
    limit = LIMITS["socket.request.max.bytes"]
    for size in (limit + 1, 1 << 30, -1):  # only the size prefix is ever read
        with KafkaConnection(server.address) as conn:
            conn.sock.sendall(struct.pack(">i", size))
            assert closed_within(conn, 5) < IDLE_S, f"a {size}-byte frame must close at once"
    bystander.keeps_going("after oversized frames")

    with KafkaConnection(server.address) as half, KafkaConnection(server.address) as idle:
        half.sock.sendall(struct.pack(">i", 1000) + b"\x00" * 500)  # half a frame, then stall
        started = time.monotonic()
        for conn in (half, idle):
            assert conn.closed_by_server(IDLE_S + 5), "a stalled connection must be closed"
            waited = time.monotonic() - started
            assert IDLE_S * 0.8 <= waited <= IDLE_S + 5, f"closed after {waited:.2f} s"
    bystander.keeps_going("after stalled connections")


def test_connections_past_max_connections_are_refused_and_others_go_on(limited_server) -> None:
    server, bystander = limited_server
    flood = [KafkaConnection(server.address) for _ in range(LIMITS["max.connections"] + 4)]
    try:
        answered = 0
        for conn in flood:  # ApiVersions on each, at once, before any goes idle
            try:
                conn.request(18, 0)
                answered += 1
            except (TimeoutError, ConnectionError):
                pass
        bystander.keeps_going("while the connections are all taken")
        assert answered == LIMITS["max.connections"] - 1, "the bystander holds one"
    finally:
        for conn in flood:
            conn.close()
    wait_until(lambda: _serves(server), 10, "a fresh client once the flood is gone")
    bystander.keeps_going("after the flood")


def _serves(server: ServerProcess) -> bool:
    try:
        serves(server, TOPIC, 0)
    except (AssertionError, OSError):
        return False
    return True
