"""Logging a failure that keeps coming back: once, then a count, not a line per occurrence.

A consumer stuck at a damaged segment retries its fetch several times a second, for as long
as it runs; a line per failed read would bury everything else in the log. ``FailureLog``
logs the first occurrence of each cause at once and then at most one line per interval,
saying how many times it came back since the line before (``repeated``).

One instance belongs to one actor (one partition), which calls it from its own thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

# How often a failure that keeps coming back is logged again, with its count.
REPEAT_INTERVAL_S = 60.0


class FailureLog:
    """Logs each cause's first occurrence, then its repeats at most once per interval."""

    def __init__(self, logger: logging.Logger, interval_s: float = REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._causes: dict[str, tuple[float, int]] = {}  # cause -> (last line, repeats since)

    def note(self, cause: str, message: str, fields: Mapping[str, object]) -> bool:
        """Count one occurrence of ``cause``; log ``message`` with ``fields`` if it is the
        first, or the first since the interval passed (with ``repeated``: how many came in
        between). Returns whether a line was logged."""
        now = self._clock()
        seen = self._causes.get(cause)
        if seen is None:
            self._causes[cause] = (now, 0)
            self._logger.error(message, extra={"fields": dict(fields)})
            return True
        logged_at, repeats = seen
        repeats += 1
        if now - logged_at < self._interval_s:
            self._causes[cause] = (logged_at, repeats)
            return False
        self._causes[cause] = (now, 0)
        self._logger.error(message, extra={"fields": {**fields, "repeated": repeats}})
        return True

    def forget(self, cause: str) -> None:
        """Stop counting ``cause`` (it is over): its next occurrence is logged at once."""
        self._causes.pop(cause, None)
