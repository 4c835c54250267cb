"""The data-directory lock: one writer (a server or an offline tool) at a time.

An advisory ``flock`` on ``<data>/.lock``, released by the kernel when the holder dies,
so a crashed server never leaves a stale lock. The file names the holder, so the
refusal can say which process has the directory.
"""

from __future__ import annotations

import fcntl
import os

from eventstore.errors import DataDirLocked

LOCK_FILE = ".lock"


class DataDirLock:
    """Held while a process may write ``data_dir``; use as a context manager."""

    def __init__(self, data_dir: str, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock at once or raise DataDirLocked naming the process that holds it."""
        os.makedirs(self.data_dir, exist_ok=True)
        path = os.path.join(self.data_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held_by = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirLocked(
                f"data directory {self.data_dir} is locked by {held_by}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.holder})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
