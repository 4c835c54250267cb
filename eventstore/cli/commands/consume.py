"""`eventstore consume TOPIC`: print records, the kafka-console-consumer / kcat -C job.

Where records come from:

- ``--bootstrap-server`` with ``--group``: a kafka-python consumer in the group, which
  commits what it has printed after every batch and when it stops;
- ``--bootstrap-server`` without a group: a kafka-python consumer assigned the partitions;
- a data directory with ``--group``: the embedded store's group consumer (this locks the
  directory: the group's commits are writes);
- a data directory without a group: the read-only SQL engine, beside a running server too.

On a data directory the command stops at the end of the log (no other process can append
while the store holds the lock, and a read-only reader does not wait for a server's
appends). Over the wire it waits for new records until ``--exit-at-end``,
``--max-messages`` or Ctrl-C/SIGTERM, which are all normal stops: it commits and exits 0.
A partition the server reports offline (KAFKA_STORAGE_ERROR) is one error line at once if
it was asked for with ``--partition``; among every partition of the topic it is left out,
the others are read, and the error line (exit 1) names it once the command stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, NamedTuple, Protocol

from eventstore.cli.base import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    add_command,
)
from eventstore.cli.cluster import check_partition, partition_count, target_errors
from eventstore.cli.format import compile_format
from eventstore.errors import KafkaStorageError
from eventstore.sql import render_bytes
from eventstore.sql.txn_states import ABORTED, CONTROL, ONGOING
from eventstore.storage.records import decode_headers

POLL_MS = 200
BATCH = 500
FETCH_MAX_WAIT_MS = 100  # how long the server holds an empty fetch: the end shows up soon
PROBE_EVERY_S = 1.0  # how often a consumer that reads nothing asks why (see ConsumerSource)
UNCOMMITTED, COMMITTED = "read_uncommitted", "read_committed"  # Kafka's isolation levels


class Record(NamedTuple):
    """One record as the command prints it, whichever source it came from."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


class Source(Protocol):
    """Where records come from; ``commit`` stores the group's position (no-op without one)."""

    def poll(self, max_records: int) -> list[Record]: ...

    def at_end(self) -> bool: ...

    def commit(self) -> None: ...

    def check_unread(self) -> None:
        """Raise for partitions it was to read and could not (offline): after the stop."""

    def close(self) -> None: ...


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "consume", "print a topic's records, as a group member or standalone",
        "Print records of TOPIC, by default each value on its own line. With --group the"
        " command is a member of that consumer group and commits what it printed; without"
        " one it reads the partitions itself. Stops at --max-messages, at the end of the log"
        " with --exit-at-end (always on a data directory), or on Ctrl-C/SIGTERM, committing"
        " first.\n\n"
        "--format tokens: %s value, %k key, %p partition, %o offset, %t (or kcat's %T)"
        " timestamp in ms, %h headers (k=v,k=v), %S value length, %K key length, %% a"
        " percent sign; \\n \\t \\r \\\\ escapes. Missing keys and values print as empty.",
        "  eventstore consume clicks --from-beginning --exit-at-end\n"
        "  eventstore consume clicks --group analytics --bootstrap-server 127.0.0.1:9092\n"
        "  eventstore consume clicks --partition 0 --offset 42 --max-messages 10\n"
        "  eventstore consume clicks --from-beginning --format '%p:%o %k=%s\\n'\n"
        "  eventstore consume clicks --from-beginning --exit-at-end --json | jq .value\n",
        run,
        target="server or dir",
    )
    parser.add_argument("topic")
    parser.add_argument("--group", "-g", metavar="GROUP",
                        help="consume as a member of this consumer group, committing offsets")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the log-start-offset (in a group: where nothing is"
                        " committed yet); the default is the end, as in Kafka")
    parser.add_argument("--partition", type=int, action="append", metavar="P",
                        help="read only this partition (repeatable; not with --group)")
    parser.add_argument("--offset", type=int, metavar="N",
                        help="start at offset N of each partition read (not with --group)")
    parser.add_argument("--max-messages", type=int, metavar="N",
                        help="stop after printing N records")
    parser.add_argument("--exit-at-end", "-e", action="store_true",
                        help="stop once every partition read is at its end")
    parser.add_argument("--isolation-level", choices=(UNCOMMITTED, COMMITTED),
                        default=UNCOMMITTED,
                        help="read_committed: leave out records of aborted transactions and"
                        " stop at the last stable offset (an open transaction's first record),"
                        " as Kafka's consumers do; transaction markers are never printed")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--format", "-f", metavar="FMT",
                        help="print each record with this format (default '%%s\\n')")
    output.add_argument("--json", action="store_true",
                        help="print each record as one JSON object per line")


# -- sources -------------------------------------------------------------------------------


class ConsumerSource:
    """A consumer with kafka-python's shape: kafka-python's own, or the embedded store's.

    ``probe`` (kafka-python's, which retries KAFKA_STORAGE_ERROR silently): at most once a
    second, a poll that reads nothing from a partition short of its end asks the server
    with a Fetch at the consumer's position, and KAFKA_STORAGE_ERROR there raises
    KafkaStorageError instead of waiting forever for records the server cannot read.
    ``offline``: partitions the server reports offline, left out of "at the end" and named
    by :meth:`check_unread` once the command stops. ``position``: the consumer's position
    of a partition, None while it is not known yet (kafka-python's waits for every
    partition's, an offline one's too, unless bounded).
    """

    def __init__(self, consumer: Any, topic: str, end_offsets: Callable[[list], dict],
                 grouped: bool, on_close: Callable[[], None], probe: Any | None = None,
                 offline: Mapping[int, str] | None = None,
                 position: Callable[[Any], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._consumer = consumer
        self._topic = topic
        self._end_offsets = end_offsets
        self._grouped = grouped
        self._on_close = on_close
        self._probe = probe
        self._offline = dict(offline or {})
        self._position = position or consumer.position
        self._clock = clock
        self._probed_at = clock()

    def poll(self, max_records: int) -> list[Record]:
        polled = self._consumer.poll(timeout_ms=POLL_MS, max_records=max_records)
        batches = polled.values() if isinstance(polled, dict) else [polled]
        records = [Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                          tuple(r.headers or ())) for batch in batches for r in batch]
        if self._probe is not None and self._clock() - self._probed_at >= PROBE_EVERY_S:
            self._probed_at = self._clock()
            self._raise_storage_errors({r.partition for r in records})
        return records

    def _online(self) -> list[Any]:
        return [tp for tp in self._consumer.assignment() if tp.partition not in self._offline]

    def _raise_storage_errors(self, read: set[int]) -> None:
        behind = [tp for tp in self._online() if tp.partition not in read]
        ends = self._end_offsets(behind) if behind else {}
        for tp in behind:
            position = self._position(tp)
            if position is not None and position < ends[tp] and self._probe.fetch_error(
                    tp.topic, tp.partition, position) == KafkaStorageError.code:
                raise KafkaStorageError(
                    f"partition {tp.topic}-{tp.partition}: offset {position} cannot be read:"
                    " the server answered KAFKA_STORAGE_ERROR (its log, or `eventstore"
                    " verify`, says why)")

    def at_end(self) -> bool:
        if not self._consumer.assignment():
            return False  # still joining the group
        online = self._online()
        ends = self._end_offsets(online) if online else {}
        return all((position := self._position(tp)) is not None and position >= ends[tp]
                   for tp in online)

    def check_unread(self) -> None:
        """KafkaStorageError naming the offline partitions this source could not read."""
        if self._offline:
            names = ", ".join(f"{self._topic}-{p}" for p in sorted(self._offline))
            raise KafkaStorageError(
                f"partition {names} not read: {next(iter(self._offline.values()))}")

    def commit(self) -> None:
        if self._grouped and self._consumer.assignment():
            self._consumer.commit()

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        finally:
            self._on_close()


class SqlSource:
    """Standalone reading of a data directory through the read-only SQL engine.

    Transaction markers (``txn_state`` control) are skipped; with ``read_committed``
    aborted transactions' records too, and a partition ends at its first record of an
    open transaction (its last stable offset).

    Offsets are read in order and never skipped: at offsets no segment file holds (a
    segment deleted from the chain, or its newest ones gone) the records before them are
    printed and then KafkaStorageError says what is missing, as a server's fetch would.
    Records that retention deleted meanwhile are skipped, as a consumer resetting to the
    earliest offset would.
    """

    def __init__(self, engine: Any, topic: str, positions: dict[int, int],
                 ends: dict[int, int], read_committed: bool = False) -> None:
        self._engine = engine
        self._topic = topic
        self._positions = positions
        self._ends = ends
        self._read_committed = read_committed
        self._hidden = (CONTROL, ABORTED) if read_committed else (CONTROL,)

    def poll(self, max_records: int) -> list[Record]:
        for partition, position in self._positions.items():
            if position >= self._ends[partition]:
                continue
            _, rows = self._engine.query(
                "SELECT offset, timestamp, key, value, headers, txn_state FROM records"
                " WHERE topic = ? AND partition = ? AND offset >= ? AND offset < ?"
                " ORDER BY offset LIMIT ?",
                (self._topic, partition, position, self._ends[partition], max_records))
            rows = rows[:_run_length(rows, position)]
            if not rows:
                self._skip_or_fail(partition, position)
                continue
            if self._read_committed:
                rows = self._before_open_transaction(partition, rows)
            self._positions[partition] = rows[-1][0] + 1 if rows else position
            return [Record(self._topic, partition, o, t, k, v, decode_headers(h))
                    for o, t, k, v, h, state in rows if state not in self._hidden]
        return []

    def _before_open_transaction(self, partition: int, rows: list[tuple]) -> list[tuple]:
        """read_committed: ``rows`` up to the first of an open transaction, where the
        partition then ends (its last stable offset)."""
        cut = next((i for i, row in enumerate(rows) if row[5] == ONGOING), len(rows))
        if cut < len(rows):
            self._ends[partition] = rows[cut][0]
        return rows[:cut]

    def _skip_or_fail(self, partition: int, position: int) -> None:
        """Nothing at ``position``: move past what retention deleted meanwhile, else raise
        KafkaStorageError naming what the files lack."""
        warnings = self._engine.warnings()
        _, ((start,),) = self._engine.query(
            "SELECT log_start_offset FROM partitions WHERE topic = ? AND partition = ?",
            (self._topic, partition))
        if position < start:
            self._positions[partition] = start
            return
        name = f"partition {self._topic}-{partition}: "
        why = "; ".join(w.removeprefix(name) for w in warnings) or "no segment file holds it"
        raise KafkaStorageError(f"{name}offset {position} cannot be read: {why}")

    def at_end(self) -> bool:
        return all(p >= self._ends[n] for n, p in self._positions.items())

    def commit(self) -> None:
        """Nothing to commit without a group."""

    def check_unread(self) -> None:
        """Every partition is read, or the read raised: nothing left to report."""

    def close(self) -> None:
        self._engine.close()


def _run_length(rows: Sequence[tuple], first: int) -> int:
    """How many of ``rows`` (in offset order) run on from offset ``first`` with no offset
    left out (a record batch's offsets, and so a segment's, are contiguous)."""
    if not rows or rows[0][0] != first:
        return 0
    if rows[-1][0] - first == len(rows) - 1:
        return len(rows)  # the usual case, told without looking at each row
    return next(i for i, row in enumerate(rows) if row[0] != first + i)


def _partitions(args: argparse.Namespace, count: int) -> list[int]:
    chosen = args.partition or list(range(count))
    for partition in chosen:
        check_partition(args.topic, partition, count)
    return chosen


def _start(args: argparse.Namespace, log_start: int, log_end: int) -> int:
    """Where a standalone read of a partition starts (clamped into the log, as Kafka's
    auto.offset.reset=earliest would for an offset out of range)."""
    if args.offset is not None:
        return min(max(args.offset, log_start), log_end)
    return log_start if args.from_beginning else log_end


def _offline(args: argparse.Namespace, errors: Mapping[int, int], count: int
             ) -> dict[int, str]:
    """Partition -> why it is offline, of the partitions the command reads (``errors``:
    Metadata's error code of each); KafkaStorageError at once if one was named with
    --partition, or if every one is (nothing could be printed)."""
    from eventstore.cli.wire import offline_problem

    chosen = args.partition or range(count)
    offline = {p: offline_problem(errors[p]) for p in chosen
               if errors.get(p) == KafkaStorageError.code}
    named = [p for p in args.partition or () if p in offline]
    if named or (offline and len(offline) == len(chosen)):
        first = (named or sorted(offline))[0]
        raise KafkaStorageError(f"partition {args.topic}-{first} is {offline[first]}")
    return offline


def _wire_source(args: argparse.Namespace, address: str, count: int) -> Source:
    from eventstore.cli import wire

    probe = wire.probe(address)
    try:
        offline = _offline(args, probe.partition_errors(args.topic), count)
        reset = "earliest" if args.from_beginning else "latest"
        consumer = wire.consumer(address, group_id=args.group, auto_offset_reset=reset,
                                 fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                                 isolation_level=args.isolation_level)
    except BaseException:
        probe.close()
        raise
    try:
        if args.group:
            consumer.subscribe([args.topic])
            # fetch the topic's partitions now, before the first poll joins the group: a
            # leader that assigns without them must join again when they arrive
            consumer.partitions_for_topic(args.topic)
        else:
            tps = [wire.topic_partition(args.topic, p) for p in _partitions(args, count)
                   if p not in offline]
            consumer.assign(tps)
            starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, _start(args, starts[tp], ends[tp]))
    except BaseException:
        probe.close()
        consumer.close(autocommit=False)
        raise
    return ConsumerSource(consumer, args.topic, consumer.end_offsets, bool(args.group),
                          probe.close, probe, offline,
                          lambda tp: consumer.position(tp, timeout_ms=POLL_MS))


def _store_source(args: argparse.Namespace, data_dir: str) -> Source:
    from eventstore.cli.local import open_store

    store = open_store(data_dir)
    try:
        reset = "earliest" if args.from_beginning else "latest"
        consumer = store.consumer(args.topic, group_id=args.group, auto_offset_reset=reset,
                                  enable_auto_commit=False,
                                  isolation_level=args.isolation_level)
    except BaseException:
        store.close()
        raise
    return ConsumerSource(consumer, args.topic, consumer.end_offsets, True, store.close)


def _sql_source(args: argparse.Namespace, data_dir: str, count: int) -> Source:
    from eventstore.cli.local import open_engine

    engine = open_engine(data_dir)
    _, rows = engine.query("SELECT partition, log_start_offset, log_end_offset FROM partitions"
                           " WHERE topic = ?", (args.topic,))
    bounds = {p: (start, end) for p, start, end in rows}
    chosen = _partitions(args, count)
    return SqlSource(engine, args.topic, {p: _start(args, *bounds[p]) for p in chosen},
                     {p: bounds[p][1] for p in chosen}, args.isolation_level == COMMITTED)


def _open_source(args: argparse.Namespace) -> Source:
    target = Target.of(args)
    count = partition_count(target, args.topic)
    if target.bootstrap_server:
        return _wire_source(args, target.bootstrap_server, count)
    if args.group:
        return _store_source(args, target.data_dir)
    return _sql_source(args, target.data_dir, count)


# -- printing and the loop -------------------------------------------------------------------


def _json_line(record: Record) -> bytes:
    shown = {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "timestamp": record.timestamp,
        "key": None if record.key is None else render_bytes(record.key),
        "value": None if record.value is None else render_bytes(record.value),
        "headers": [[k, None if v is None else render_bytes(v)] for k, v in record.headers],
    }
    return json.dumps(shown).encode() + b"\n"


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, so the loop can commit before it exits."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _consume(source: Source, out: BinaryIO, render: Callable[[Record], bytes],
             limit: int | None, exit_at_end: bool, stop: threading.Event) -> int:
    """Print records until a stop condition; returns how many were printed."""
    printed = 0
    while not stop.is_set() and (limit is None or printed < limit):
        batch = source.poll(BATCH if limit is None else min(BATCH, limit - printed))
        if batch:
            out.write(b"".join(render(record) for record in batch))
            out.flush()
            printed += len(batch)
            source.commit()
        elif exit_at_end and source.at_end():
            break
    return printed


def _check_usage(args: argparse.Namespace) -> None:
    if args.group and (args.partition or args.offset is not None):
        raise CliError("--partition and --offset read standalone: leave out --group",
                       EXIT_USAGE)
    if args.max_messages is not None and args.max_messages < 1:
        raise CliError("--max-messages must be at least 1", EXIT_USAGE)


def run(args: argparse.Namespace) -> int:
    _check_usage(args)
    render = _json_line if args.json else compile_format(args.format or "%s\\n")
    target = Target.of(args)
    exit_at_end = args.exit_at_end or not target.bootstrap_server
    with _stop_on_signals() as stop, target_errors(target):
        source = _open_source(args)
        try:
            _consume(source, sys.stdout.buffer, render, args.max_messages, exit_at_end, stop)
            source.commit()
            source.check_unread()
        finally:
            source.close()
    return EXIT_OK

