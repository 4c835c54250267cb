"""Checking a partition's chain of segments when it opens, and finishing what a crash cut
short.

A chain is whole when its first segment holds the log-start-offset (at its base, or inside
it after DeleteRecords), every segment but the newest is sealed, and each segment starts
where the one before it ends. Nothing here repairs a broken chain: the first problem is
raised as CorruptLog naming the file. The one thing finished is retention's own work:
segments wholly below the log-start-offset that a crash left behind are deleted, as
retention (or DeleteRecords) had decided.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from eventstore.errors import CorruptLog
from eventstore.storage.segment import SegmentInfo, segment_name


def recover_chain(infos: list[SegmentInfo], active: SegmentInfo) -> list[SegmentInfo]:
    """The sealed segments still kept, after checking that the chain has no gap."""
    expired, kept = split_expired(infos, active)
    for info in expired:
        # retention decided to delete it and then the process stopped
        remove_segment_files(info.path)
    check_chain([*kept, active], active.log_start_offset)
    return kept


def split_expired(
    infos: Sequence[SegmentInfo], active: SegmentInfo
) -> tuple[list[SegmentInfo], list[SegmentInfo]]:
    """(expired, kept): sealed segments wholly below the log-start-offset, which a retention
    run interrupted by a crash left to delete, and the rest."""
    expired, kept = [], []
    for info in infos:
        gone = info.next_offset <= active.log_start_offset and info.base_offset < active.base_offset
        (expired if gone else kept).append(info)
    return expired, kept


def check_chain(chain: Sequence[SegmentInfo], log_start: int) -> None:
    """CorruptLog naming the file unless ``chain`` (oldest first, the active segment last)
    starts at or below ``log_start`` (its first segment reaching it), has every older segment
    sealed, and leaves no offset out: the first of its :func:`chain_problems`.
    """
    problems = chain_problems(chain, log_start)
    if problems:
        path, what = problems[0]
        raise CorruptLog(f"{path}: {what}")


def chain_problems(chain: Sequence[SegmentInfo], log_start: int) -> list[tuple[str, str]]:
    """What is wrong with ``chain`` (see check_chain), as (file, what) pairs; none if whole.

    Pure: ``eventstore verify`` and the SQL engine run the same checks on what they read.
    """
    problems = [
        (info.path, f"file name does not match its base offset {info.base_offset}")
        for info in chain if os.path.basename(info.path) != segment_name(info.base_offset)
    ]
    if chain[0].base_offset > log_start:
        problems.append((chain[0].path, f"log-start-offset is {log_start} but the first segment"
                         f" starts at {chain[0].base_offset}: a segment is missing"))
    elif log_start > chain[0].next_offset:
        # DeleteRecords may put it inside the first segment, or at its end (the active one)
        problems.append((chain[0].path, f"log-start-offset is {log_start}, past the first"
                         f" segment's last offset {chain[0].last_offset}"))
    for older, newer in zip(chain, chain[1:], strict=False):
        if not older.is_sealed:
            problems.append((older.path, "an older segment was never sealed"))
        if older.next_offset != newer.base_offset:
            problems.append((newer.path, f"starts at offset {newer.base_offset} but the segment"
                             f" before it ends at {older.next_offset - 1}: the chain has a gap"))
    return problems


def remove_segment_files(path: str) -> None:
    """Delete a segment file and whatever SQLite keeps beside it; what is gone already is fine."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
