"""The process's open-file budget: what partitions cost in it, and EMFILE said plainly.

An open partition holds files open: its active segment's database, WAL and WAL index, and
the connections its readers keep to segments (``FILES_PER_PARTITION`` counts them, as
measured with a producer and a consumer on every partition; each more consumer reading it
adds two). The budget is the soft open-file limit
(``ulimit -n``, RLIMIT_NOFILE) less ``RESERVED_FILES`` for everything else: the catalog,
the listeners and client connections, SQL readers, log files. Past the limit every open
fails, a client's socket as much as a segment, so the server keeps no more partitions open
at once than the budget holds (``partition.open.max`` defaults to it): a partition holds
its files only while in use, so the server may hold many more.

When the limit is reached anyway, SQLite only says "unable to open database file" and
Python "Too many open files": ``too_many_open_files`` is the one line that names the limit
and how to raise it.
"""

from __future__ import annotations

import errno
import os
import resource

from eventstore.errors import TooManyOpenFiles

FILES_PER_PARTITION = 5  # writer: database, WAL, WAL index; one reader: database, WAL
RESERVED_FILES = 256
UNLIMITED = 1 << 31  # what an unlimited RLIMIT_NOFILE counts as


def open_file_limit() -> int:
    """The soft limit on this process's open files (``ulimit -n``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def open_file_count() -> int:
    """How many files this process has open now (0 where the system cannot say)."""
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(listing)) - 1  # less the listing's own descriptor
        except OSError:
            continue
    return 0


def default_max_partitions(limit: int | None = None) -> int:
    """The most partitions the open-file ``limit`` (this process's by default) holds open."""
    limit = open_file_limit() if limit is None else limit
    return max(1, (limit - RESERVED_FILES) // FILES_PER_PARTITION)


def is_too_many_open_files(error: BaseException | None) -> bool:
    """Whether ``error`` is the process's (EMFILE) or the system's (ENFILE) file limit."""
    return isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE)


def at_open_file_limit() -> bool:
    """Whether one more file cannot be opened now: what an open that failed without saying
    why (SQLite's "unable to open database file") most likely hit."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as error:
        return is_too_many_open_files(error)
    os.close(fd)
    return False


def too_many_open_files(what: str, fewer: str = "max.partitions") -> TooManyOpenFiles:
    """The one-line error for ``what`` (a file, the listener) failing at the open-file
    limit; ``fewer`` names the key that makes the server need fewer files."""
    return TooManyOpenFiles(
        f"{what}: too many open files: the open-file limit is {open_file_limit()} (ulimit -n):"
        " raise it (ulimit -n, LimitNOFILE= in a systemd unit, --ulimit nofile= for docker)"
        f" or lower {fewer}"
    )
