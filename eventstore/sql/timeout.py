"""``QueryTimeout``: ends a statement that runs too long, and lets Ctrl-C stop one that runs.

SQLite runs a statement in C without returning to Python, so a SIGINT only sets a flag that
Python acts on at its next bytecode: a recursive CTE would run on, deaf to Ctrl-C. A
progress handler, called every ``STEPS`` virtual-machine instructions while a statement of
the connection runs, is Python code: each call lets a pending SIGINT raise KeyboardInterrupt
there, which aborts the statement, and past the deadline it answers True, which SQLite turns
into an interrupt (``apsw.InterruptError``), reported as Kafka's REQUEST_TIMED_OUT.
"""

from __future__ import annotations

import math
import time

import apsw

from eventstore.errors import InvalidRequest, KafkaTimeoutError

# Instructions between two checks: a few hundred microseconds of SQLite work, so the check
# costs nothing measurable and a stop comes well within a millisecond.
STEPS = 20_000


class QueryTimeout:
    """The time limit of one statement on ``connection``, ``seconds`` from now (None: none).

    Watches from creation until ``close``; a statement it stopped raises InterruptError,
    which ``raise_if_expired`` turns into KafkaTimeoutError.
    """

    def __init__(self, connection: apsw.Connection, seconds: float | None) -> None:
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise InvalidRequest(f"the query timeout must be a positive number of seconds,"
                                 f" not {seconds!r}")
        self.seconds = seconds
        self._deadline = math.inf if seconds is None else time.monotonic() + seconds
        self._connection = connection
        connection.set_progress_handler(self.expired, STEPS, id=self)

    def expired(self) -> bool:
        """Whether the deadline has passed (the progress handler: True stops the statement)."""
        return time.monotonic() >= self._deadline

    def raise_if_expired(self, error: apsw.InterruptError) -> None:
        """KafkaTimeoutError (one line naming the limit) if ``error`` is this timeout's stop."""
        if self.expired():
            raise KafkaTimeoutError(
                f"the query ran longer than its timeout of {self.seconds:g} s and was stopped"
                " (a longer --timeout, or a narrower WHERE, lets it finish)"
            ) from error

    def close(self) -> None:
        """Stop watching: the statement has finished or its rows are no longer read."""
        self._connection.set_progress_handler(None, id=self)
