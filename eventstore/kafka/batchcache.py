"""Recent batches: produced record batches kept as sent, to answer fetches of them.

Kafka answers a fetch with the bytes its producer sent, straight from the page cache. A
segment here holds rows, so a fetch reads them and encodes a batch again: most of what a
fetch costs. Consumers mostly read what was just produced, so the server keeps the last
batches it appended, as their producers sent them (compressed or not) with the offsets
the log gave them, and serves fetches that start inside them from memory.

Only batches whose bytes say exactly what the log stored are kept: appended (not a
duplicate retry), CreateTime (a LogAppendTime topic stored other timestamps), with offset
deltas 0, 1, 2, ... (the log assigns offsets in order). A batch from the cache may start
before the fetch offset, as Kafka's do; clients skip the records before it. The oldest
batches go first once ``max_bytes`` is reached, and a partition's batches go with the
partition (they are keyed by its state, which a recreated topic does not share).
"""

from __future__ import annotations

import bisect
import collections
import struct
import threading
import weakref
from dataclasses import dataclass, field

_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH = struct.Struct(">i")
_LEADER_EPOCH_AT = 12
NO_LEADER_EPOCH = -1

# what the server keeps by default: about 250 batches of librdkafka's default size
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class _Partition:
    bases: list[int] = field(default_factory=list)  # sorted
    batches: dict[int, tuple[int, bytearray]] = field(default_factory=dict)  # base: (last, data)


@dataclass(frozen=True, slots=True)
class CachedRead:
    """Whole batches from the cache: ``records`` holds offsets ``first``..``last``."""

    records: bytes
    first: int
    last: int


class RecentBatches:
    """Thread-safe: produce handlers add on the event loop, fetches read on the pool."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lock = threading.Lock()
        self._partitions: weakref.WeakKeyDictionary[object, _Partition] = (
            weakref.WeakKeyDictionary())
        # insertion order, for eviction: (partition key, base offset, size)
        self._order: collections.deque[tuple[weakref.ref, int, int]] = collections.deque()

    def add(self, partition: object, base_offset: int, last_offset: int, batch: bytes) -> None:
        """Keep ``batch`` (one v2 batch as its producer sent it) as offsets base..last."""
        if len(batch) > self.max_bytes:
            return
        data = bytearray(batch)
        _BASE_OFFSET.pack_into(data, 0, base_offset)
        _LEADER_EPOCH.pack_into(data, _LEADER_EPOCH_AT, NO_LEADER_EPOCH)
        with self._lock:
            kept = self._partitions.setdefault(partition, _Partition())
            if base_offset in kept.batches:
                return
            bisect.insort(kept.bases, base_offset)
            kept.batches[base_offset] = (last_offset, data)  # never changed again
            self._order.append((weakref.ref(partition), base_offset, len(data)))
            self.bytes += len(data)
            while self.bytes > self.max_bytes:
                self._evict_oldest()

    def read(self, partition: object, offset: int, max_bytes: int,
             at_least_one: bool = True, end: int | None = None, since: int = 0
             ) -> CachedRead | None:
        """The kept batches from the one holding ``offset`` on, while they follow each
        other and fit ``max_bytes``; None if none holds it. The first batch counts even
        when larger, unless not ``at_least_one`` (then None: a read of the rows from
        ``offset`` may still fit). With ``end`` (a read_committed fetch's last stable
        offset) only batches wholly before it. None when the first batch starts before
        ``since``: a compacted partition's cleaned part, which the log cleaner may have
        rewritten, is read from its files."""
        with self._lock:
            kept = self._partitions.get(partition)
            if kept is None:
                return None
            at = bisect.bisect_right(kept.bases, offset) - 1
            if at < 0:
                return None
            first = kept.bases[at]
            last, data = kept.batches[first]
            if last < offset or first < since or (
                    len(data) > max_bytes and not at_least_one) or (
                    end is not None and last >= end):
                return None
            parts, size = [data], len(data)
            while at + 1 < len(kept.bases) and kept.bases[at + 1] == last + 1:
                following, data = kept.batches[kept.bases[at + 1]]
                if size + len(data) > max_bytes or (end is not None and following >= end):
                    break
                parts.append(data)
                size += len(data)
                last = following
                at += 1
        return CachedRead(b"".join(parts), first, last)

    def _evict_oldest(self) -> None:
        ref, base, size = self._order.popleft()
        self.bytes -= size
        partition = ref()
        kept = None if partition is None else self._partitions.get(partition)
        if kept is None or base not in kept.batches:
            return
        del kept.batches[base]
        kept.bases.pop(bisect.bisect_left(kept.bases, base))
