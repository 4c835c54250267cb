"""Overload: producers faster than the disk; the server holds them back and its memory stays
bounded.

Usage: python scripts/overload.py [--seconds N] [--producers P] [--connections C]
                                  [--set KEY=VALUE ...]

The server fsyncs every append (``flush.messages=1``), so the disk sets the pace. Against
it, for N seconds: P librdkafka producers, each producing 1 KiB records as fast as
``produce()`` accepts them (acks=all, a 16 MiB local queue), and C raw connections each
sending 1 MiB produce requests back to back. The server's VmRSS is sampled every 20 ms.
Back-pressure shows as the producers' local queues filling up (``produce()`` refused with
BufferError until the server has caught up) and as the raw requests' latency; nothing
may fail, and every record must be acknowledged in the end. Prints the peak RSS, the
records acknowledged per second, the refusals and the slowest request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reliability import rss_kib  # noqa: E402
from support import KafkaConnection, ServerProcess, create_topic, produce  # noqa: E402

TOPIC = "overload"
PARTITIONS = 2
SETTINGS = {"flush.messages": 1}
RECORD = b"r" * 1024
BIG_BATCH = [b"b" * 1024] * 1000  # one raw request: about 1 MiB


@dataclass
class OverloadStats:
    """What the load saw, and the server's memory under it."""

    seconds: float = 0.0
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    acknowledged: int = 0  # librdkafka records acknowledged
    refused: int = 0  # produce() calls refused because the local queue was full
    big_requests: int = 0  # raw 1 MiB requests acknowledged
    slowest_big_request_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class Load:
    """The producers, the raw connections and the memory sampler, on threads."""

    def __init__(self, server: ServerProcess, producers: int, connections: int) -> None:
        self.server = server
        self.stats = OverloadStats()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._produce, daemon=True)
                         for _ in range(producers)]
        self._threads += [threading.Thread(target=self._big_requests, args=(i,), daemon=True)
                          for i in range(connections)]
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def run(self, seconds: float) -> OverloadStats:
        self.stats.rss_before_kib = rss_kib(self.server.pid)
        self._sampler.start()
        started = time.monotonic()
        for thread in self._threads:
            thread.start()
        self._done.wait(seconds)
        self._done.set()
        for thread in self._threads:
            thread.join()
        self.stats.seconds = time.monotonic() - started
        self._sampler.join()
        return self.stats

    def _sample(self) -> None:
        while not self._done.is_set() or any(t.is_alive() for t in self._threads):
            peak = rss_kib(self.server.pid)
            self.stats.rss_peak_kib = max(self.stats.rss_peak_kib, peak)
            time.sleep(0.02)

    def _produce(self) -> None:
        producer = Producer({
            "bootstrap.servers": self.server.bootstrap, "acks": "all", "linger.ms": 5,
            "queue.buffering.max.kbytes": 16384, "message.timeout.ms": 120000,
        })
        acknowledged = refused = 0

        def delivered(error: KafkaError | None, message: Message) -> None:
            nonlocal acknowledged
            if error is None:
                acknowledged += 1
            else:
                self._error(f"delivery failed: {error}")

        while not self._done.is_set():
            try:
                producer.produce(TOPIC, RECORD, on_delivery=delivered)
            except BufferError:
                refused += 1  # the server is holding us back: wait for it
                producer.poll(0.005)
            producer.poll(0)
        if producer.flush(60):
            self._error("records still unacknowledged 60 s after the load stopped")
        with self._lock:
            self.stats.acknowledged += acknowledged
            self.stats.refused += refused

    def _big_requests(self, index: int) -> None:
        with KafkaConnection(self.server.address, timeout=60) as conn:
            while not self._done.is_set():
                started = time.monotonic()
                result = produce(conn, TOPIC, index % PARTITIONS, BIG_BATCH)
                took = time.monotonic() - started
                if result.error_code:
                    self._error(f"a 1 MiB request failed with error {result.error_code}")
                with self._lock:
                    self.stats.big_requests += 1
                    self.stats.slowest_big_request_s = max(self.stats.slowest_big_request_s,
                                                           took)

    def _error(self, message: str) -> None:
        with self._lock:
            self.stats.errors.append(message)


def run(server: ServerProcess, seconds: float, producers: int, connections: int
        ) -> OverloadStats:
    """Load ``server`` for ``seconds``; what was seen."""
    with KafkaConnection(server.address) as conn:
        create_topic(conn, TOPIC, PARTITIONS)
    return Load(server, producers, connections).run(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--producers", type=int, default=4, help="librdkafka producers (4)")
    parser.add_argument("--connections", type=int, default=32,
                        help="raw connections sending 1 MiB requests (32)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting, e.g. queued.max.request.bytes=8388608")
    args = parser.parse_args()
    settings = {**SETTINGS, **dict(item.split("=", 1) for item in args.set)}
    with tempfile.TemporaryDirectory(prefix="overload-") as parent:
        server = ServerProcess.start(str(Path(parent) / "data"), settings=settings)
        try:
            stats = run(server, args.seconds, args.producers, args.connections)
        finally:
            server.kill()
    print(f"settings {settings}")
    print(f"seconds {stats.seconds:.1f}, {args.producers} producers,"
          f" {args.connections} connections sending 1 MiB requests")
    print(f"records acknowledged {stats.acknowledged}"
          f" ({stats.acknowledged / stats.seconds:,.0f}/s), plus {stats.big_requests}"
          f" requests of 1 MiB (slowest {stats.slowest_big_request_s:.2f} s)")
    print(f"produce() refused while the local queue was full {stats.refused}")
    print(f"server VmRSS before {stats.rss_before_kib // 1024} MiB,"
          f" peak {stats.rss_peak_kib // 1024} MiB")
    for error in stats.errors:
        print(f"ERROR {error}")
    return 1 if stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
