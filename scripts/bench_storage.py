"""Storage benchmark: the partition log against a bare apsw loop, on identical rows.

Usage: python scripts/bench_storage.py [--quick] [--dir DIR]

All three measurements use records with a 100-byte value, no key, no headers and a fixed
timestamp, written in batches of 1000; each is repeated and the best run is kept.

(a) append: ``PartitionLog.append`` of a batch, against a bare loop that runs
    ``executemany`` of the same rows (5 columns, offsets included, built before the clock
    starts) into a ``records`` table created from ``schema/segment.sql``, on a connection
    with the writer's pragmas (``segment.apply_writer_pragmas``), one transaction a batch.
(b) sequential read: ``PartitionLog.read`` in chunks of 1000 from offset 0 to the end
    (after reopening the log), against a bare range scan of the same chunks (``SELECT
    ... WHERE offset >= ? AND offset < ? ORDER BY offset``) on a read-only connection to
    the bare table; every chunk is checked to be equal on both sides.

In (a) and (b) the two sides take turns batch by batch (chunk by chunk) and each side's
time is summed, so that load from elsewhere on the machine and SQLite's periodic WAL
checkpoints fall on both alike.
(c) open time: ``PartitionLog.open`` + ``close`` of a partition with N sealed segments of
    10,000 records each, against N sealed segments of 10 records each (N = 1000, or 100
    with --quick). Both partitions are built by writing through ``PartitionLog`` (batches
    of 1000, resp. 10, and an explicit ``roll()`` after each segment's worth), so every
    segment is a real, sealed segment; the build times are printed. Both are opened with
    their files in the OS page cache.

Targets (issue 2): append >= 0.85 and read >= 0.8 of the bare loop's records/s; opening
the large partition takes at most 2x the time of the small one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchlib import bare_table

from eventstore.config import TopicConfig
from eventstore.storage.log import PartitionLog
from eventstore.storage.records import AppendRow
from eventstore.storage.segment import open_readonly

VALUE = b"v" * 100
TIMESTAMP = 1_700_000_000_000
BATCH = 1000
BIG_SEGMENT = 10_000
SMALL_SEGMENT = 10


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    batches: int  # batches of BATCH records appended, then read back, per repetition
    repeats: int  # repetitions of append and read; the best is kept
    segments: int  # sealed segments of each partition in the open-time comparison
    open_repeats: int


FULL = Plan(batches=1000, repeats=5, segments=1000, open_repeats=7)
QUICK = Plan(batches=100, repeats=3, segments=100, open_repeats=5)


def log_rows(count: int) -> list[AppendRow]:
    """``count`` records as PartitionLog.append takes them."""
    return [(TIMESTAMP, None, VALUE, None)] * count


def append_run(work: str, batches: int) -> dict[str, float]:
    """Seconds each side spends appending ``batches`` batches, batch by batch in turn."""
    log = PartitionLog.open(os.path.join(work, "topic-0"), TopicConfig(), create=True)
    conn = bare_table(os.path.join(work, "bare.db"))
    rows = log_rows(BATCH)
    bare_rows = [
        [(b * BATCH + i, TIMESTAMP, None, VALUE, None) for i in range(BATCH)]
        for b in range(batches)
    ]
    spent = {"log": 0.0, "bare": 0.0}
    for batch in bare_rows:
        start = time.perf_counter()
        log.append(rows)
        middle = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", batch)
        spent["log"] += middle - start
        spent["bare"] += time.perf_counter() - middle
    log.close()
    conn.close()
    return spent


def read_run(work: str, records: int) -> dict[str, float]:
    """Seconds each side spends reading everything in chunks of BATCH, chunk by chunk in turn."""
    log = PartitionLog.open(os.path.join(work, "topic-0"))
    conn = open_readonly(os.path.join(work, "bare.db"))
    assert log.log_end_offset == records
    spent = {"log": 0.0, "bare": 0.0}
    for offset in range(0, records, BATCH):
        start = time.perf_counter()
        chunk = log.read(offset, BATCH)
        middle = time.perf_counter()
        bare = conn.execute(
            "SELECT offset, timestamp, key, value, headers FROM records"
            " WHERE offset >= ? AND offset < ? ORDER BY offset",
            (offset, offset + BATCH),
        ).fetchall()
        spent["log"] += middle - start
        spent["bare"] += time.perf_counter() - middle
        assert chunk == bare, f"the log and the bare table differ at offset {offset}"
    log.close()
    conn.close()
    return spent


def append_and_read(root: str, plan: Plan) -> tuple[dict[str, float], dict[str, float]]:
    """Best records/s of (a) and (b), for the log and the bare loop."""
    records = plan.batches * BATCH
    append = {"log": 0.0, "bare": 0.0}
    read = {"log": 0.0, "bare": 0.0}
    for run in range(plan.repeats):
        work = os.path.join(root, f"run-{run}")
        os.makedirs(work)
        for rates, spent in ((append, append_run(work, plan.batches)),
                             (read, read_run(work, records))):
            for side, seconds in spent.items():
                rates[side] = max(rates[side], records / seconds)
        shutil.rmtree(work)
    return append, read


def build_partition(directory: str, segments: int, per_segment: int) -> float:
    """Write ``segments`` sealed segments of ``per_segment`` records; seconds it took."""
    start = time.perf_counter()
    log = PartitionLog.open(directory, TopicConfig(), create=True)
    rows = log_rows(min(per_segment, BATCH))
    for _ in range(segments):
        for _ in range(per_segment // len(rows)):
            log.append(rows)
        log.roll()
    log.close()
    return time.perf_counter() - start


def best_open_seconds(directory: str, repeats: int) -> float:
    """The fastest of ``repeats`` opens (and closes) of a partition."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        PartitionLog.open(directory).close()
        best = min(best, time.perf_counter() - start)
    return best


def open_times(root: str, plan: Plan, say: Callable[[str], None]) -> dict[str, float]:
    """Best open time of the large and of the small partition, in seconds."""
    times = {}
    for label, per_segment in (("large", BIG_SEGMENT), ("small", SMALL_SEGMENT)):
        directory = os.path.join(root, f"{label}-0")
        built = build_partition(directory, plan.segments, per_segment)
        say(f"built {plan.segments} segments of {per_segment} records in {built:.1f} s")
        times[label] = best_open_seconds(directory, plan.open_repeats)
        shutil.rmtree(directory)
    return times


@dataclass(frozen=True)
class Outcome:
    """One line of the report: both figures, their ratio and the target it must meet."""

    name: str
    label: str
    ours: str
    baseline: str
    ratio: float
    target: float
    at_most: bool = False  # the ratio must stay below the target instead of above it

    @property
    def comparison(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.target}"

    @property
    def met(self) -> bool:
        return self.ratio <= self.target if self.at_most else self.ratio >= self.target


def report(outcomes: list[Outcome]) -> None:
    """Print the outcomes as a table, then one ``ratio <name> = <value>`` line each."""
    table = [("measurement", "eventstore", "baseline", "ratio", "target", "met")]
    table += [
        (o.label, o.ours, o.baseline, f"{o.ratio:.2f}", o.comparison, "yes" if o.met else "NO")
        for o in outcomes
    ]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    print()
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print()
    for o in outcomes:
        print(f"ratio {o.name} = {o.ratio:.3f} (target {o.comparison})")


def main() -> None:
    """Run the three measurements and print rates, ratios and whether targets are met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    parser.add_argument("--dir", help="where to build the test data (default: a temp dir)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    root = tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir)

    def say(text: str) -> None:
        print(f"  {text}", flush=True)

    print(f"eventstore storage benchmark ({'quick' if args.quick else 'full'}): 100-byte values,"
          f" batches of {BATCH}, best of {plan.repeats} ({plan.open_repeats} for open)",
          flush=True)
    try:
        append, read = append_and_read(root, plan)
        opened = open_times(root, plan, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report([
        Outcome("append", "append", f"{append['log']:,.0f} rec/s",
                f"{append['bare']:,.0f} rec/s (bare apsw)",
                append["log"] / append["bare"], 0.85),
        Outcome("read", "sequential read", f"{read['log']:,.0f} rec/s",
                f"{read['bare']:,.0f} rec/s (bare scan)", read["log"] / read["bare"], 0.8),
        Outcome("open", f"open {plan.segments} segments",
                f"{opened['large'] * 1000:.1f} ms ({BIG_SEGMENT:,} rec/seg)",
                f"{opened['small'] * 1000:.1f} ms ({SMALL_SEGMENT} rec/seg)",
                opened["large"] / opened["small"], 2.0, at_most=True),
    ])


if __name__ == "__main__":
    main()
