"""``connections.max.idle.ms``: closing a connection that waits on its client too long.

A connection waits on its client for its next request, for the rest of a request it began
sending, and for room to write an answer the client is not reading. Past
``connections.max.idle.ms`` in any of these the broker closes it, as Kafka's idle
connection reaper does. A timeout armed around every read costs a small request a good
share of its CPU; one timer per connection, re-armed only when it fires, costs a request
two clock reads.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("eventstore.kafka")


class IdleWatch:
    """Cancels its connection's task once it has waited on the client past ``idle_s``."""

    def __init__(self, task: asyncio.Task, idle_s: float, peer: object) -> None:
        self._loop = task.get_loop()
        self._task = task
        self._idle_s = idle_s
        self._peer = peer
        self._since: float | None = None  # loop time the current wait on the client began
        self._what = ""
        self._timer = self._loop.call_later(idle_s, self._check)

    def waiting(self, what: str) -> None:
        """The connection now waits on its client (``what``: for the log line)."""
        self._since = self._loop.time()
        self._what = what

    def served(self) -> None:
        """The client did what the connection waited for."""
        self._since = None

    def close(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        if self._since is not None and now - self._since >= self._idle_s:
            log.info("connection closed: %s past connections.max.idle.ms; peer=%s",
                     self._what, self._peer)
            self._task.cancel()
            return
        due = self._idle_s if self._since is None else self._since + self._idle_s - now
        self._timer = self._loop.call_later(due, self._check)
