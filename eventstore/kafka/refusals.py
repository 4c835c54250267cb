"""Logging a request the server refuses on purpose: once per client and reason.

Some refusals are answered with an error the client may retry, or that a program repeats
by making a new client: a transactional producer refused (this node has no transaction
coordinator), a consumer whose group protocol the group does not share
(INCONSISTENT_GROUP_PROTOCOL). Silent, they leave the operator guessing why a client
spins; logged per request, they bury the log. :class:`RefusalLog` logs the first refusal
of each (client id, client address, reason) and stays quiet about its repeats; it
remembers a bounded number of them, the oldest forgotten first (then logged again).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

log = logging.getLogger(__name__)

# How many (client, reason) pairs are remembered: bounded, whatever clients send.
REMEMBERED = 4096


class RefusalLog:
    """Logs each (client id, address, reason) once, at warning level; thread-safe enough
    for the event loop that calls it (one thread)."""

    def __init__(self, logger: logging.Logger = log, remembered: int = REMEMBERED) -> None:
        self._logger = logger
        self._remembered = remembered
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def note(self, client_id: str | None, host: str, reason: str,
             fields: Mapping[str, object]) -> bool:
        """A request of ``client_id`` from ``host`` was refused for ``reason`` (a short,
        stable text: the error's name and what it is about). Logs it with ``fields`` if
        this client was not refused so before; returns whether it did."""
        key = (client_id or "", host, reason)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        self._logger.warning("request refused: %s", reason, extra={"fields": {
            "client_id": client_id or "", "client_host": host, **fields}})
        return True
