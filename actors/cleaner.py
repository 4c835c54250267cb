"""The log cleaner: compacts the partitions whose ``cleanup.policy`` has ``compact``.

``log.cleaner.threads`` :class:`LogCleaner` actors, each its own thread, share the work:
every ``log.cleaner.backoff.ms`` (at once again after a cleaning that moved the cleaned
part on) one looks over the compacted partitions, takes those due for a cleaning (dirty
ratio at least ``min.cleanable.dirty.ratio``, or a dirty record older than
``max.compaction.lag.ms``), dirtiest first, claims one no other thread holds and cleans
it. The cleaning's reading and writing (storage/compaction.py) runs on the cleaner's
thread, so appends are not held up; only the swap of the new files for the old runs on
the partition actor (``install_cleaning``), which stays the one that changes which files
form the log, and refuses a cleaning whose chain changed meanwhile. Reads and writes of
all cleaners together are held to ``log.cleaner.io.max.bytes.per.second`` (a
:class:`Throttle`). With ``log.cleaner.enable`` false (or no threads) one cleaner still
runs, cleaning only when asked (:meth:`LogCleaner.clean_now`, ``eventstore compact``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pykka

from actors.broker import Broker
from actors.partition import PartitionHandle
from actors.runtime import Actor, Scheduler, Timer, tell_if_alive
from eventstore.clock import Clock, wall_clock_ms
from eventstore.config import ServerConfig, TopicConfig
from eventstore.errors import KafkaStorageError, PolicyViolation
from eventstore.storage.catalog import partition_dir
from eventstore.storage.cleaner import Candidate, dirtiest_first
from eventstore.storage.cleaning_swap import discard_pending, recover_swap
from eventstore.storage.compaction import (
    CleaningResult,
    CleaningSettings,
    is_compacted,
    prepare_cleaning,
)

log = logging.getLogger(__name__)

NO_LIMIT = 1e300  # log.cleaner.io.max.bytes.per.second at or past it: no throttling


class Throttle:
    """Holds the bytes told to it to ``bytes_per_second``, across threads: each call
    sleeps until the bytes told since the window began fit the rate. A pause longer than
    a second starts a new window, so idle time is not saved up for a burst.

    Plain logic with an injected clock and sleep (seconds), as Kafka's Throttler.
    """

    def __init__(self, bytes_per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._start = 0.0
        self._bytes = 0

    def __call__(self, size: int) -> None:
        if self._rate >= NO_LIMIT:
            return
        with self._lock:  # one sleeper at a time: the rate is for all threads together
            now = self._clock()
            if self._bytes == 0 or now - (self._start + self._bytes / self._rate) > 1.0:
                self._start, self._bytes = now, 0
            self._bytes += size
            wait = self._start + self._bytes / self._rate - now
            if wait > 0:
                self._sleep(wait)


class CleaningClaims:
    """Which partitions a cleaner is cleaning now: two threads never clean one at once."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._cond = threading.Condition()

    def try_claim(self, directory: str) -> bool:
        """Claim ``directory``'s partition unless another cleaner holds it."""
        with self._cond:
            if directory in self._held:
                return False
            self._held.add(directory)
            return True

    @contextlib.contextmanager
    def holding(self, directory: str) -> Iterator[None]:
        """Hold ``directory``'s partition for the block, waiting for another holder."""
        with self._cond:
            while directory in self._held:
                self._cond.wait()
            self._held.add(directory)
        try:
            yield
        finally:
            self.release(directory)

    def release(self, directory: str) -> None:
        with self._cond:
            self._held.discard(directory)
            self._cond.notify_all()


class CleaningStopped(Exception):
    """Internal: the store is closing; the cleaning in progress gives up (old set stands)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Timer: look for a partition due for cleaning."""


class LogCleaner(Actor):
    """One cleaner thread (see the module doc); ``automatic``: it looks for work itself."""

    def __init__(self, broker: pykka.ActorProxy[Broker], scheduler: Scheduler,
                 config: ServerConfig, data_dir: str, claims: CleaningClaims,
                 throttle: Throttle, stopping: threading.Event, *, automatic: bool,
                 clock: Clock = wall_clock_ms) -> None:
        super().__init__()
        self._broker = broker
        self._scheduler = scheduler
        self._backoff_s = config.log_cleaner_backoff_ms / 1000
        self._data_dir = data_dir
        self._claims = claims
        self._throttle = throttle
        self._stopping = stopping
        self._automatic = automatic
        self._clock = clock
        self._timer: Timer | None = None

    def on_start(self) -> None:
        if self._automatic:
            self._schedule(self._backoff_s)

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_receive(self, message: object) -> None:
        if isinstance(message, Tick):
            self._timer = None
            progressed = False
            try:
                progressed = self._clean_dirtiest()
            except CleaningStopped:
                return
            except Exception:  # a failed cleaning changed nothing: the next tick retries
                log.exception("log cleaning failed")
            self._schedule(0 if progressed else self._backoff_s)
        else:
            super().on_receive(message)

    def clean_now(self, topic: str, partition: int) -> CleaningResult | None:
        """Clean one partition now, whatever its dirty ratio (``min.compaction.lag.ms``
        and ``delete.retention.ms`` still hold); None when its chain changed during the
        cleaning (ask again). PolicyViolation unless its topic is compacted;
        UnknownTopicOrPartition or KafkaStorageError as the broker answers."""
        handle = self._broker.partition(topic, partition).get()
        directory = partition_dir(self._data_dir, topic, partition)
        with self._claims.holding(directory):
            return self._clean(handle, directory)

    def _clean_dirtiest(self) -> bool:
        """Clean the dirtiest partition due; whether the cleaned part of one moved on."""
        candidates = [
            Candidate((handle, directory), view.segments[:-1],
                      handle.state.stats.cleaner.cleaned.through,
                      config.min_cleanable_dirty_ratio, config.max_compaction_lag_ms)
            for handle, config, directory in self._broker.compacted_partitions().get()
            if (view := handle.state.known) is not None]
        for handle, directory in dirtiest_first(candidates, self._clock()):
            if not self._claims.try_claim(directory):
                continue
            try:
                before = handle.state.stats.cleaner.cleaned.through
                result = self._clean(handle, directory)
            finally:
                self._claims.release(directory)
            return result is not None and result.cleaned_through > before
        return False

    def _clean(self, handle: PartitionHandle, directory: str) -> CleaningResult | None:
        """One cleaning of a claimed partition: prepared here, swapped in by its actor."""
        actor = handle.actor or self._broker.partition(*handle.topic_partition).get().actor
        if actor is None:  # stopped again at once: idle, or offline
            raise KafkaStorageError(f"partition {handle.topic_partition} is not open")
        sealed, active_base, config = actor.cleanable().get()
        _check_compacted(handle, config)
        try:
            prepared = prepare_cleaning(directory, sealed, active_base, self._clock(),
                                        CleaningSettings.of(config), self._io)
        except BaseException:
            recover_swap(directory)  # no swap was begun: removes its pending files
            raise
        try:
            installed = actor.install_cleaning(prepared).get()
        except BaseException:
            if prepared.swap.pending_exist():
                discard_pending(prepared.swap)
            raise
        if not installed:
            return None
        result = prepared.result
        log.info("log cleaned", extra={"fields": {
            "partition": str(handle.topic_partition), "records_removed": result.records_removed,
            "bytes_removed": result.bytes_removed, "segments_before": result.segments_before,
            "segments_after": result.segments_after,
            "cleaned_through": result.cleaned_through}})
        return result

    def _io(self, size: int) -> None:
        if self._stopping.is_set():
            raise CleaningStopped()
        self._throttle(size)

    def _schedule(self, delay_s: float) -> None:
        ref = self.actor_ref
        self._timer = self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, Tick()))


def _check_compacted(handle: PartitionHandle, config: TopicConfig) -> None:
    if not is_compacted(config):
        raise PolicyViolation(
            f"partition {handle.topic_partition}: cleanup.policy is {config.cleanup_policy},"
            " not compact: nothing to clean")


def start_cleaners(broker: pykka.ActorProxy[Broker], scheduler: Scheduler,
                   config: ServerConfig, data_dir: str, stopping: threading.Event
                   ) -> list[pykka.ActorProxy[LogCleaner]]:
    """The server's cleaners: ``log.cleaner.threads`` looking for work, or, with the
    cleaner disabled, one that cleans only when asked."""
    automatic = config.log_cleaner_enable and config.log_cleaner_threads > 0
    claims = CleaningClaims()
    throttle = Throttle(config.log_cleaner_io_max_bytes_per_second)
    return [
        LogCleaner.start(broker, scheduler, config, data_dir, claims, throttle, stopping,
                         automatic=automatic).proxy()
        for _ in range(config.log_cleaner_threads if automatic else 1)
    ]
