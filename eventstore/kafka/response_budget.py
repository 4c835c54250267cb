"""The bytes of responses built and not yet written, bounded server-wide.

A Fetch answer is built whole before it is written, and a consumer catching up gets its
next one read ahead (eventstore/kafka/fetch_sessions.py) while it reads the last. A client
that stops reading would leave both in memory, and many such clients would add up with
no bound. So every connection counts here what it built and has not yet handed to the
socket, and a read-ahead starts only once its connection's answer is written and only if
the budget still holds what it may read. A slow reader then stops its own read-ahead;
other connections' fetches are still answered (each connection's own answer is always
built, as in Kafka, one at a time), only their read-ahead waits for room.
"""

from __future__ import annotations


class ResponseBudget:
    """Bytes of answers built but not yet written, and of read-aheads that may be held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def hold(self, size: int) -> None:
        """``size`` bytes were built (an answer: held whatever the budget says)."""
        self.used += size

    def try_hold(self, size: int) -> bool:
        """Hold ``size`` bytes if they fit the budget (a read-ahead, which may wait)."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        """``size`` held bytes were written or dropped."""
        self.used -= size
