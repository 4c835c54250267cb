"""Where one partition's copy stands, and which target offset holds which source record.

Plain logic, no client. The mirror writes each source partition's records, in order, to a
target partition nothing else writes, with an idempotent producer (no gap, no duplicate), so
the n-th record copied lands at the n-th target offset after the target's end when copying
began. Source offsets can have gaps (transaction markers, aborted records, compaction,
retention) that the target does not have; a *run* is a stretch of consecutive source offsets
copied to consecutive target offsets, so a list of run starts maps any copied source offset
to its target offset, and a consumer group's committed source offset to the target offset a
consumer moved to the target resumes at.

The checkpoint (``encode``/``decode``) holds the next source offset, the next target offset
and the newest runs, in the metadata string of an offset commit: Kafka keeps at most
``offset.metadata.max.bytes`` (4096 by default) of it, so the oldest runs go first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_RUNS = 1000  # kept in memory per partition
METADATA_BYTES = 3000  # of runs in a checkpoint, under Kafka's 4096


@dataclass(frozen=True)
class Run:
    """Source offsets from ``source`` on were copied to target offsets from ``target`` on,
    one for one, until the next run starts."""

    source: int
    target: int


@dataclass(frozen=True)
class PartitionMap:
    """The next source offset to copy, the next target offset it gets, and the runs."""

    source_next: int
    target_next: int
    runs: tuple[Run, ...] = ()

    def copied(self, *source_offsets: int) -> PartitionMap:
        """After the records at ``source_offsets`` (rising) were copied, in order, from
        ``target_next`` on: one new map for a poll's records, not one for each."""
        runs, target_next = self.runs, self.target_next
        for offset in source_offsets:
            if not runs or offset - runs[-1].source != target_next - runs[-1].target:
                runs = (*runs[-(MAX_RUNS - 1):], Run(offset, target_next))
            target_next += 1
        return PartitionMap(source_offsets[-1] + 1, target_next, runs)

    def passed(self, source_offset: int) -> PartitionMap:
        """After the source was read up to ``source_offset`` with nothing left to copy before
        it (a gap of markers or removed records)."""
        if source_offset <= self.source_next:
            return self
        return PartitionMap(source_offset, self.target_next, self.runs)

    def translate(self, committed: int) -> int | None:
        """The target offset for a group's ``committed`` source offset (the next record to
        read): the target offset of the first copied record at or after it. None while the
        copy has not reached it. Before the oldest run kept, the oldest run's start (the
        consumer reads some records again rather than missing any)."""
        if committed > self.source_next:
            return None
        if not self.runs:
            return self.target_next
        index = _last_run_at_or_before(self.runs, committed)
        if index < 0:
            return self.runs[0].target
        run = self.runs[index]
        end = self.runs[index + 1].target if index + 1 < len(self.runs) else self.target_next
        return min(run.target + committed - run.source, end)

    def encode(self) -> str:
        """The checkpoint's metadata: the next source offset and the newest runs that fit."""
        runs = [[run.source, run.target] for run in self.runs]
        text = json.dumps({"source": self.source_next, "runs": runs}, separators=(",", ":"))
        while len(text) > METADATA_BYTES:
            runs = runs[len(runs) // 4 + 1:]
            text = json.dumps({"source": self.source_next, "runs": runs},
                              separators=(",", ":"))
        return text


def decode(target_next: int, metadata: str) -> PartitionMap:
    """The map a checkpoint (committed target offset and its metadata) holds."""
    try:
        fields = json.loads(metadata)
        runs = tuple(Run(int(source), int(target)) for source, target in fields["runs"])
        return PartitionMap(int(fields["source"]), target_next, runs)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a mirror checkpoint: {metadata[:80]!r}") from error


def _last_run_at_or_before(runs: tuple[Run, ...], source: int) -> int:
    low, high = 0, len(runs)
    while low < high:
        middle = (low + high) // 2
        if runs[middle].source <= source:
            low = middle + 1
        else:
            high = middle
    return low - 1


def resume(checkpoint: PartitionMap, target_end: int) -> int:
    """How many records the source holds at and after ``checkpoint.source_next`` that are
    already on the target: those the target acknowledged after the checkpoint was written
    (a crash between the two). Raises ValueError when the target has fewer records than
    the checkpoint says (the target partition was recreated or written by something else)."""
    skip = target_end - checkpoint.target_next
    if skip < 0:
        raise ValueError(f"the target partition ends at {target_end}, before the"
                         f" {checkpoint.target_next} records the mirror copied there")
    return skip
