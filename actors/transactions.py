"""The transaction coordinator: a thin actor over eventstore/transactions.

It owns the transactional ids' state (durable in the catalog) and carries out what the
logic decides: a commit or abort's markers written into each partition of the transaction
(through the partition actors, the only writers of their logs) and, for a commit, the
transaction's offsets made the groups' committed offsets. A prepared commit or abort is
finished before EndTxn is answered; one that fails (a partition offline) is retried on
the next tick while the id answers CONCURRENT_TRANSACTIONS. On start it finishes every
commit or abort a crash interrupted, before it answers any request. A timer aborts
transactions past their timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pykka

from actors.broker import Broker
from actors.partition import offline_error
from actors.runtime import Actor, Scheduler, Timer, tell_if_alive
from eventstore.clock import Clock, wall_clock_ms
from eventstore.config import ServerConfig
from eventstore.errors import KafkaError, UnknownTopicOrPartition
from eventstore.storage.transaction_index import ABORT, COMMIT
from eventstore.transactions.coordinator import TransactionLogic
from eventstore.transactions.state import Completion, PendingOffset, TransactionMetadata
from eventstore.transactions.store import TransactionStore

log = logging.getLogger(__name__)

# how soon a completion that failed (a partition offline) is tried again
RETRY_S = 0.5


@dataclass(frozen=True, slots=True)
class _Tick:
    """Timer: abort timed-out transactions, retry unfinished completions."""


@dataclass(frozen=True, slots=True)
class TransactionStats:
    """For the metrics actor: transactions open now, commits and aborts completed."""

    open: int
    commits: int
    aborts: int


class TransactionCoordinator(Actor):
    """Kafka's transaction coordinator for one data directory (call through a proxy)."""

    def __init__(self, data_dir: str, config: ServerConfig, broker: pykka.ActorProxy[Broker],
                 scheduler: Scheduler, clock: Clock = wall_clock_ms) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._config = config
        self._broker = broker
        self._scheduler = scheduler
        self._clock = clock
        self._store: TransactionStore | None = None
        self._logic: TransactionLogic | None = None
        self._timer: Timer | None = None
        self._unfinished: list[Completion] = []
        self._commits = 0
        self._aborts = 0

    def on_start(self) -> None:
        self._store = TransactionStore.open(self._data_dir)
        config = self._config
        self._logic = TransactionLogic(
            self._store, self._clock, max_timeout_ms=config.transaction_max_timeout_ms,
            id_expiration_ms=config.transactional_id_expiration_ms, loaded=self._store.load())
        for completion in self._logic.prepared():  # a restart mid-commit finishes it
            self._finish(completion)
        self._schedule(config.transaction_abort_timed_out_transaction_cleanup_interval_ms
                       / 1000)

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_failure(self, *exc_info: object) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Tick):
            self._tick()
        else:
            super().on_receive(message)

    # -- requests --------------------------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int = -1,
                         producer_epoch: int = -1) -> tuple[int, int]:
        """InitProducerId with a transactional id: (producer id, epoch), the epoch bumped;
        a transaction left open is aborted first. Raises the typed error otherwise."""
        result = self._logic.init_producer_id(transactional_id, timeout_ms,
                                              self._new_producer_id, producer_id,
                                              producer_epoch)
        if result.abort_first is not None:
            self._finish(result.abort_first)
            # the client's id and epoch were checked; CONCURRENT_TRANSACTIONS if the abort
            # could not be finished yet (the client retries)
            result = self._logic.init_producer_id(transactional_id, timeout_ms,
                                                  self._new_producer_id)
        return result.producer_id, result.producer_epoch

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]]) -> None:
        """AddPartitionsToTxn; the partitions must exist (UNKNOWN_TOPIC_OR_PARTITION)."""
        partitions = list(partitions)
        for topic, partition in partitions:
            self._broker.partition(topic, partition).get()  # raises if unknown
        self._logic.add_partitions(transactional_id, producer_id, producer_epoch, partitions)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int,
                    group_id: str) -> None:
        self._logic.add_offsets(transactional_id, producer_id, producer_epoch, group_id)

    def txn_offset_commit(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          group_id: str, offsets: Iterable[PendingOffset]) -> None:
        self._logic.txn_offset_commit(transactional_id, producer_id, producer_epoch,
                                      group_id, list(offsets))

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool) -> None:
        """EndTxn: the commit or abort decided durably, then carried out."""
        completion = self._logic.end_txn(transactional_id, producer_id, producer_epoch, commit)
        if completion is not None:
            self._finish(completion)

    def describe(self, transactional_id: str) -> TransactionMetadata:
        return self._logic.describe(transactional_id)

    def list_transactions(self, states: Iterable[str] = (), producer_ids: Iterable[int] = ()
                          ) -> list[TransactionMetadata]:
        return self._logic.list(list(states), list(producer_ids))

    def stats(self) -> TransactionStats:
        return TransactionStats(self._logic.open_count(), self._commits, self._aborts)

    # -- work ------------------------------------------------------------------------------

    def _new_producer_id(self) -> int:
        return self._broker.allocate_producer_id().get()

    def _finish(self, completion: Completion) -> None:
        """Write the markers and commit the offsets, then complete; on a failure keep it
        for the next tick (it is durable as prepared: a restart finishes it too)."""
        try:
            self._write_markers(completion)
            for group_id, offsets in completion.pending_offsets.items():
                if offsets:
                    self._store.commit_offsets(group_id, offsets, self._clock())
            self._logic.complete(completion)
        except (KafkaError, pykka.ActorDeadError) as error:
            log.warning("transactional id %s: completing the %s failed, retrying: %s",
                        completion.transactional_id,
                        "commit" if completion.commit else "abort", error)
            if completion not in self._unfinished:
                self._unfinished.append(completion)
            self._schedule(RETRY_S)
            return
        if completion in self._unfinished:
            self._unfinished.remove(completion)
        if completion.commit:
            self._commits += 1
        else:
            self._aborts += 1

    def _write_markers(self, completion: Completion) -> None:
        marker = COMMIT if completion.commit else ABORT
        futures = []
        for topic, partition in completion.partitions:
            try:
                handle = self._broker.partition(topic, partition).get()
            except UnknownTopicOrPartition:
                continue  # deleted since: nothing to mark
            if handle.actor is None:
                raise offline_error(handle.state)
            futures.append(handle.actor.write_marker(
                completion.producer_id, completion.producer_epoch, marker))
        for future in futures:
            future.get()

    def _tick(self) -> None:
        self._timer = None
        for completion in list(self._unfinished):
            self._finish(completion)
        for completion in self._logic.expire():
            log.info("transactional id %s: transaction timed out, aborting",
                     completion.transactional_id)
            self._finish(completion)
        self._schedule(self._config.transaction_abort_timed_out_transaction_cleanup_interval_ms
                       / 1000)

    def _schedule(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        ref = self.actor_ref
        self._timer = self._scheduler.call_later(delay_s, lambda: tell_if_alive(ref, _Tick()))
