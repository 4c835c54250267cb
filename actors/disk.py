"""``DiskWatch``: whether the data directory's disk was last found full, said once each way.

A full disk refuses every write at once (each partition's appends, the catalog's topics and
producer ids) and frees itself only when an operator makes room: logging each refusal would
be a line per produce request, and logging none would hide why producers retry. The broker
owns one watch for its data directory and hands it to every partition actor: the first
write refused for lack of space logs one line, the first write that succeeds after it logs
one more, and nothing is logged in between.
"""

from __future__ import annotations

import logging
import threading

from eventstore.errors import DiskFull

log = logging.getLogger(__name__)


class DiskWatch:
    """The data directory's disk: full or not, as the last write found it (thread-safe)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.is_full = False
        self._lock = threading.Lock()

    def full(self, error: DiskFull) -> None:
        """A write was refused for lack of space; logged if it is the first since there was."""
        if self.is_full:
            return
        with self._lock:
            if self.is_full:
                return
            self.is_full = True
        log.error("disk full: appends and catalog writes are refused until space is freed",
                  extra={"fields": {"data_dir": self.data_dir, "error": str(error)}})

    def has_space(self) -> None:
        """A write succeeded; logged if the disk was full until now (a plain check if not)."""
        if not self.is_full:
            return
        with self._lock:
            if not self.is_full:
                return
            self.is_full = False
        log.warning("disk has space again: appends and catalog writes resume",
                    extra={"fields": {"data_dir": self.data_dir}})
