"""The mirror's Prometheus metrics (`eventstore mirror --metrics-listen HOST:PORT`).

A registry of its own, served by prometheus_client's HTTP server and filled from the
session's reports: records behind per partition, records copied, group offsets committed,
retries and the time of the last error.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from eventstore.mirror.session import Report


class MirrorMetrics:
    """The gauges and counters, and the HTTP server exporting them."""

    def __init__(self, host: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.lag = Gauge("eventstore_mirror_lag", "source offsets not copied yet (gaps count)",
                         ["topic", "partition"], registry=self.registry)
        self.records = Counter("eventstore_mirror_records", "records copied to the target",
                               registry=self.registry)
        self.group_offsets = Counter("eventstore_mirror_group_offsets",
                                     "group offsets committed on the target",
                                     registry=self.registry)
        self.retries = Counter("eventstore_mirror_retries", "sessions failed and retried",
                               registry=self.registry)
        self.last_error = Gauge("eventstore_mirror_last_error_timestamp_seconds",
                                "when the last error was met (0: never)",
                                registry=self.registry)
        self._copied, self._error = 0, None
        server, _thread = start_http_server(port, host, registry=self.registry)
        self.port = server.server_port  # the one bound, when asked for port 0

    def report(self, state: Report) -> None:
        """Take one report of the run."""
        self.records.inc(state.copied - self._copied)
        self._copied = state.copied
        self.group_offsets.inc(state.groups.committed)
        for (topic, partition), lag in state.lag.items():
            self.lag.labels(topic, str(partition)).set(lag)
        if state.last_error != self._error:
            self._error = state.last_error
            self.last_error.set(time.time())

    def retried(self) -> None:
        """A session failed and is retried."""
        self.retries.inc()
        self.last_error.set(time.time())
