"""A partition's anchor: how far its chain of segments is known to reach, kept outside them.

Segments describe themselves, so a chain that lost its newest segment(s) still looks whole:
the segment before the lost ones is sealed, as after a crash in the middle of a roll, and
opening the log would start a new segment at that segment's end, handing out again offsets
that were acknowledged (and maybe read and committed). The anchor, ``anchor.json`` in the
partition folder, says how far the chain reached: the base offset of the newest segment
created and a log-end-offset the log had reached.

It is written when a segment is created (a roll, a new partition), at a clean close, and at
open when the chain has moved past it (a crash between a roll and its anchor, a partition of
an older release); never per append, so an append costs what it did. It may lag behind the
chain but never runs ahead of what is durable: a segment is created (and its directory
entry synced) before it is anchored, and a log-end-offset is anchored only once the records
below it are on disk. Each write replaces the file whole (write, fsync, rename, fsync the
folder), so a crash leaves the old anchor or the new one.

A chain that ends before its anchor is CorruptLog naming the first missing file: the
partition goes offline, and nothing is truncated or handed out again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from eventstore.errors import CorruptLog, KafkaStorageError
from eventstore.storage.segment import SegmentInfo, fsync_directory, os_errors, segment_name

ANCHOR_FILE = "anchor.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a partition's chain reached: the newest segment created and a log-end-offset."""

    newest_segment: int
    log_end_offset: int

    def advanced(self, newest_segment: int, log_end_offset: int) -> Anchor:
        """This anchor moved forward to a chain that reaches further (never backwards)."""
        return Anchor(max(self.newest_segment, newest_segment),
                      max(self.log_end_offset, log_end_offset))


def anchor_path(directory: str) -> str:
    return os.path.join(directory, ANCHOR_FILE)


def read_anchor(directory: str) -> Anchor | None:
    """The partition's anchor; None if it has none (a partition of an older release).

    CorruptLog naming the file if it is not an anchor this release wrote.
    """
    path = anchor_path(directory)
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KafkaStorageError(f"{path}: {exc.strerror or exc}") from exc
    try:
        fields = json.loads(text)
        if fields["version"] != _VERSION:
            raise CorruptLog(f"{path}: anchor version {fields['version']}, this eventstore"
                             f" reads version {_VERSION}")
        anchor = Anchor(int(fields["newest_segment"]), int(fields["log_end_offset"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptLog(f"{path}: not a partition anchor ({exc!r})") from exc
    return anchor


def write_anchor(directory: str, anchor: Anchor) -> None:
    """Replace the partition's anchor durably; KafkaStorageError naming it on failure."""
    path = anchor_path(directory)
    tmp = path + ".tmp"
    text = json.dumps({"version": _VERSION, "newest_segment": anchor.newest_segment,
                       "log_end_offset": anchor.log_end_offset}) + "\n"
    with os_errors(path):
        with open(tmp, "wb") as fh:
            fh.write(text.encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_directory(directory)


def check_anchor(anchor: Anchor | None, newest: SegmentInfo) -> None:
    """CorruptLog naming the first missing file unless the chain, whose newest segment file
    is ``newest``, reaches as far as ``anchor`` says it did.

    Pure: ``eventstore verify`` and the SQL engine run the same check on what they read.
    """
    if anchor is None:
        return
    end = newest.next_offset
    if anchor.newest_segment > newest.base_offset:
        raise newest_missing(os.path.dirname(newest.path), anchor,
                             end if newest.is_sealed else None)
    if end < anchor.log_end_offset:
        raise CorruptLog(
            f"{newest.path}: the log-end-offset is {end} but it reached"
            f" {anchor.log_end_offset} ({ANCHOR_FILE}): records were lost (the file was"
            f" replaced or cut short); offsets from {end} on are not handed out again"
        )


def newest_missing(directory: str, anchor: Anchor, end: int | None) -> CorruptLog:
    """The error for a chain whose newest segment(s), up to the one ``anchor`` names, are
    gone; ``end``: where the segments left end (the first missing one starts there), if
    known."""
    missing = os.path.join(directory, segment_name(anchor.newest_segment if end is None
                                                   else end))
    ends = "" if end is None else f"the segments end at offset {end} but "
    return CorruptLog(
        f"{missing}: missing: {ends}segment {segment_name(anchor.newest_segment)} was"
        f" created and the log-end-offset reached {anchor.log_end_offset} ({ANCHOR_FILE}):"
        " the newest segment(s) were deleted; their offsets are not handed out again"
    )
