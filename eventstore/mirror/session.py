"""A mirror run: the clients of both sides, the copy loop's cadence, and retries around it.

One session opens the clients, makes the planned topics exist on the target, starts every
partition from its checkpoint and copies; every ``checkpoint_s`` it stores the positions the
target acknowledged, every ``refresh_s`` it plans again (new topics, new partitions), every
``report_s`` it copies the groups' offsets and reports the lag. ``run`` retries a failed
session from its checkpoints with a doubling backoff in continuous mode; with
``until_caught_up`` the first failure ends the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from eventstore.mirror import copier, groups
from eventstore.mirror.data_dir import DirSource
from eventstore.mirror.plan import Selection, TopicPlan
from eventstore.mirror.sources import WireSource, open_source
from eventstore.mirror.topics import MirrorError, apply, reach

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class Options:
    """What to mirror and how often to checkpoint, plan again and report."""

    selection: Selection = Selection()
    prefix: str = ""
    replication_factor: int = -1
    until_caught_up: bool = False
    checkpoint_s: float = 1.0
    refresh_s: float = 5.0
    report_s: float = 5.0


@dataclass(frozen=True)
class Report:
    """The state of the copy at one moment, for the terminal and the metrics."""

    copied: int
    lag: dict[tuple[str, int], int]
    groups: groups.GroupSync
    last_error: str | None


def plan(source: WireSource | DirSource, target: AdminClient, options: Options
         ) -> tuple[TopicPlan, ...]:
    """The planned topics, made to exist on the target."""
    plans = source.plan(options.selection, options.prefix)
    apply(target, plans, options.replication_factor)
    return plans


def session(sides: copier.Sides, options: Options, stop: Callable[[], bool],
            report: Callable[[Report], None], clock: Callable[[], float],
            copied: int = 0) -> bool:
    """Copy until ``stop`` (False) or, with ``until_caught_up``, until every partition is
    copied to the source's end and the groups' offsets are on the target (True); the
    reports count the records copied from ``copied`` on (those of earlier sessions)."""
    source = open_source(sides)
    try:
        target = reach(sides.target, "target")
        job = copier.Copier(source.reader(), copier.open_producer(sides),
                            copier.open_consumer(sides.target, sides.group), source.reader(),
                            copied=copied)
    except BaseException:
        source.close()
        raise
    try:
        job.start(plan(source, target, options))
        checked = planned = reported = clock()
        while not stop():
            read = job.step()
            now = clock()
            if now - planned >= options.refresh_s:
                job.start(plan(source, target, options))
                planned = now
            if now - checked >= options.checkpoint_s:
                job.checkpoint()
                checked = now
            done = options.until_caught_up and (read == 0 or job.at_end()) and job.caught_up()
            if done or now - reported >= options.report_s:
                job.checkpoint(wait=done)
                checked = reported = now
                state = _report(job, source, target, sides.group)
                report(state)
                if done and not any(state.lag.values()) and not state.groups.pending:
                    return True
        job.checkpoint(wait=True)
        report(_report(job, source, target, sides.group))
        return False
    except KafkaException as error:
        raise MirrorError(error.args[0].str()) from error
    finally:
        job.producer.purge()  # nothing once checkpointed; after a failure, unsent records
        for client in (job.consumer, job.store, job.probe):
            client.close()
        source.close()


def _report(job: copier.Copier, source: WireSource | DirSource, target: AdminClient,
            own_group: str) -> Report:
    synced = groups.sync(source.group_commits(set(job.saved), own_group), target, job.saved,
                         job.targets)
    lag = job.lag(copier.watermarks(job.probe, list(job.maps)))
    return Report(job.copied, lag, synced, job.last_error)


def run(sides: copier.Sides, options: Options, stop: Callable[[], bool],
        report: Callable[[Report], None], retrying: Callable[[str, float], bool],
        clock: Callable[[], float]) -> bool:
    """Sessions until one ends; a failure is retried after ``retrying(message, delay)``
    (which waits, and says False when asked to stop meanwhile: the run ends as stopped) in
    continuous mode, raised with ``until_caught_up``."""
    delay, copied = 1.0, [0]

    def counted(state: Report) -> None:
        copied[0] = state.copied
        report(state)

    while True:
        try:
            return session(sides, options, stop, counted, clock, copied[0])
        except MirrorError as error:
            if options.until_caught_up:
                raise
            if not retrying(str(error), delay):
                return False
            delay = min(delay * 2, MAX_BACKOFF_S)


def status(sides: copier.Sides, options: Options) -> list[dict[str, object]]:
    """Per planned partition: the source's end, the checkpointed position and the lag (what
    `eventstore mirror --status` prints), read from both sides without copying."""
    from eventstore.mirror import checkpoints

    source = open_source(sides)
    store = copier.open_consumer(sides.target, sides.group)
    reader = source.reader()
    try:
        plans = source.plan(options.selection, options.prefix)
        keys = [(plan, p) for plan in plans for p in range(plan.partitions)]
        ends = copier.watermarks(reader, [(plan.source, p) for plan, p in keys])
        stored = checkpoints.load(store, [(plan.target, p) for plan, p in keys])
    finally:
        reader.close()
        store.close()
        source.close()
    rows = []
    for plan, p in keys:
        low, high = ends[(plan.source, p)]
        mirrored = stored.get((plan.target, p))
        rows.append({
            "topic": plan.source, "partition": p, "target": plan.target,
            "source_end": high,
            "mirrored": None if mirrored is None else mirrored.source_next,
            "lag": None if mirrored is None else max(0, high - max(low,
                                                                  mirrored.source_next)),
        })
    return rows
