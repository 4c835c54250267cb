"""The ledger: every acknowledged record and every read, and the verification at the end.

Producers put a record id (producer number << 40 | sequence) in the first bytes of each
value. An acknowledgement says at which (partition, offset) the store put that id; a read
says which id a group found there. The ledger keeps, per partition, the acknowledged id
at each offset (an ``array`` of int64, 8 bytes a record) and, per group and partition, how
often each offset was read (a ``bytearray``), so a long run stays small in memory.

It is fed from one thread only (the runner's sampling loop drains the workers' queues),
so it needs no lock. A read can be drained before its acknowledgement; such reads are
checked again at the end.

The verification a run must pass, per group:
- every acknowledged record was read, except records retention deleted before the group
  reached them (an unread offset below the final log-start-offset): those are reported
  as ``lost_to_retention``, never as missing;
- each read found the record its acknowledgement named (``mismatched``);
- nothing was read that was never acknowledged, unless a produce failed (``unacked``);
- per-partition order and honest skips, checked by the members themselves (``workers``)
  and added in here;
duplicates (re-reads after a rebalance, at-least-once) are counted, not failures.
Against the store: each partition's log-end-offset minus its offset at the start equals
the records acknowledged there (fewer only if a produce failed), no offset was
acknowledged twice, and each group's committed offset reached the log-end-offset.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .clients import TP, PartitionOffsets

NO_ACK = -1
EXAMPLES = 5  # offsets quoted per kind of failure


def _grow(values: array | bytearray, size: int, fill: int) -> None:
    if size > len(values):
        missing = size - len(values)
        values.extend(array("q", [fill]) * missing if isinstance(values, array)
                      else bytes(missing))


@dataclass
class PartitionAcks:
    """Acknowledged record ids of one partition, by offset minus ``base``."""

    base: int  # the partition's log-end-offset when the run started
    ids: array = field(default_factory=lambda: array("q"))
    end: int = -1  # highest acknowledged offset + 1 (``base`` until the first ack)
    count: int = 0
    acked_twice: int = 0

    def __post_init__(self) -> None:
        self.end = max(self.end, self.base)

    def add(self, offset: int, ident: int) -> None:
        index = offset - self.base
        _grow(self.ids, index + 1, NO_ACK)
        if self.ids[index] != NO_ACK:
            self.acked_twice += 1
        else:
            self.count += 1
        self.ids[index] = ident
        if offset >= self.end:
            self.end = offset + 1

    def ident(self, offset: int) -> int:
        index = offset - self.base
        return self.ids[index] if 0 <= index < len(self.ids) else NO_ACK


@dataclass
class GroupReads:
    """What one group read: read counts by offset, and running totals."""

    partitions: dict[TP, bytearray]
    frontier: dict[TP, int]  # highest offset read + 1
    records: int = 0
    bytes: int = 0
    duplicates: int = 0
    mismatched: int = 0
    unresolved: list[tuple[TP, int, int]] = field(default_factory=list)  # read before ack


@dataclass
class GroupVerdict:
    """The verification of one group (``failures`` empty when it passed)."""

    read: int
    duplicates: int
    lost_to_retention: int
    missing: int
    mismatched: int
    unacked: int
    failures: list[str]


class Ledger:
    """Acknowledgements and reads of one run; see the module docstring."""

    def __init__(self, bases: Mapping[TP, int], groups: Mapping[str, Iterable[TP]]) -> None:
        self.acks = {tp: PartitionAcks(base) for tp, base in bases.items()}
        self.reads = {
            name: GroupReads({tp: bytearray() for tp in tps}, {tp: bases[tp] for tp in tps})
            for name, tps in groups.items()
        }
        self.produced = 0
        self.produced_bytes = 0

    def ack(self, topic: str, partition: int, offset: int, ident: int, size: int) -> None:
        self.acks[topic, partition].add(offset, ident)
        self.produced += 1
        self.produced_bytes += size

    def read(self, group: str, tp: TP, offset: int, ident: int, size: int) -> None:
        reads = self.reads[group]
        counts = reads.partitions[tp]
        acks = self.acks[tp]
        index = offset - acks.base
        if index < 0:  # a record from before the run: not this run's to verify
            return
        _grow(counts, index + 1, 0)
        seen = counts[index]
        if seen:
            reads.duplicates += 1
        counts[index] = min(seen + 1, 255)
        reads.records += 1
        reads.bytes += size
        if offset >= reads.frontier[tp]:
            reads.frontier[tp] = offset + 1
        expected = acks.ident(offset)
        if expected == NO_ACK:
            reads.unresolved.append((tp, offset, ident))
        elif expected != ident:
            reads.mismatched += 1

    def lag(self, group: str, ends: Mapping[TP, int]) -> int:
        """Records in the store (log-end-offsets ``ends``, or what was acknowledged, if
        more) that the group has not reached yet; records it skipped count as reached."""
        reads = self.reads[group]
        return sum(max(max(ends[tp], self.acks[tp].end) - frontier, 0)
                   for tp, frontier in reads.frontier.items())

    # -- the verification -------------------------------------------------------------------

    def verify_store(self, store: Mapping[TP, PartitionOffsets], produce_errors: int
                     ) -> list[str]:
        """The store's log-end-offsets against the acknowledgements."""
        failures = []
        for tp, acks in sorted(self.acks.items()):
            name = f"{tp[0]}-{tp[1]}"
            appended = store[tp].log_end_offset - acks.base
            if acks.acked_twice:
                failures.append(f"{name}: {acks.acked_twice} offsets acknowledged twice")
            if acks.end > store[tp].log_end_offset:
                failures.append(f"{name}: offset {acks.end - 1} acknowledged, but the"
                                f" log ends at {store[tp].log_end_offset}")
            elif acks.count != appended and not produce_errors:
                failures.append(f"{name}: {appended} records appended in this run, but"
                                f" {acks.count} acknowledged")
        return failures

    def verify_group(self, group: str, store: Mapping[TP, PartitionOffsets],
                     committed: Mapping[TP, int | None], produce_errors: int) -> GroupVerdict:
        """One group's reads against the acknowledgements and the store."""
        reads = self.reads[group]
        failures: list[str] = []
        mismatched = reads.mismatched
        unacked = 0
        for tp, offset, ident in reads.unresolved:
            expected = self.acks[tp].ident(offset)
            if expected == NO_ACK:
                unacked += 1
            elif expected != ident:
                mismatched += 1
        lost = missing = 0
        for tp, counts in sorted(reads.partitions.items()):
            acks = self.acks[tp]
            start = store[tp].log_start_offset
            unread = [acks.base + i for i, ident in enumerate(acks.ids)
                      if ident != NO_ACK and (i >= len(counts) or not counts[i])]
            present = [offset for offset in unread if offset >= start]
            lost += len(unread) - len(present)
            if present:
                missing += len(present)
                failures.append(f"{tp[0]}-{tp[1]}: {len(present)} acknowledged records"
                                f" never read (offsets {_examples(present)})")
            end = store[tp].log_end_offset
            if committed.get(tp) != end:
                failures.append(f"{tp[0]}-{tp[1]}: committed offset {committed.get(tp)},"
                                f" log-end-offset {end}")
        if mismatched:
            failures.append(f"{mismatched} reads found another record than the one"
                            " acknowledged at that offset")
        if unacked and not produce_errors:
            failures.append(f"{unacked} records read that were never acknowledged")
        return GroupVerdict(reads.records - reads.duplicates, reads.duplicates, lost, missing,
                            mismatched, unacked, failures)


def _examples(offsets: list[int]) -> str:
    """The first EXAMPLES offsets, comma-separated."""
    shown = ", ".join(str(offset) for offset in offsets[:EXAMPLES])
    return shown + (", ..." if len(offsets) > EXAMPLES else "")
