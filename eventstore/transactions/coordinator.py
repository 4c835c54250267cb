"""Kafka's transaction coordinator as plain logic: requests in, state moves and work out.

Each request is checked against the transactional id's state first (Kafka's
``TransactionCoordinator``): an unknown id or another producer id is
INVALID_PRODUCER_ID_MAPPING, an older epoch PRODUCER_FENCED, a commit or abort still
being completed CONCURRENT_TRANSACTIONS (clients retry). Only then does the state move,
and every move is written to the store before it is answered.

EndTxn moves an open transaction to PrepareCommit or PrepareAbort and hands back a
:class:`Completion`: the owner writes the markers into the partitions, makes committed
offsets visible, and calls :meth:`TransactionLogic.complete`. Until then the id answers
CONCURRENT_TRANSACTIONS; after a restart :meth:`TransactionLogic.prepared` lists what is
left to complete. InitProducerId bumps the epoch, which fences the producer before; a
transaction it finds open is aborted first, under the new epoch, as Kafka does. A
transaction open past its ``transaction.timeout.ms`` is aborted the same way by
:meth:`TransactionLogic.expire`. No threads, no actors: the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from eventstore.clock import Clock
from eventstore.errors import (
    ConcurrentTransactions,
    InvalidProducerIdMapping,
    InvalidRequest,
    InvalidTransactionTimeout,
    InvalidTxnState,
    ProducerFenced,
    TransactionalIdNotFound,
)
from eventstore.storage.producer_state import MAX_EPOCH
from eventstore.transactions.state import (
    NO_START,
    Completion,
    PendingOffset,
    TransactionMetadata,
    TxnState,
)

NO_PRODUCER_ID = -1


class Store(Protocol):
    """Where the logic keeps its state (eventstore.transactions.store in a server)."""

    def save(self, meta: TransactionMetadata) -> None: ...

    def delete(self, transactional_ids: Iterable[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class InitResult:
    """InitProducerId's answer, or the abort to complete before it can be given."""

    producer_id: int
    producer_epoch: int
    abort_first: Completion | None = None


class TransactionLogic:
    """Every transactional id of one node."""

    def __init__(self, store: Store, clock: Clock, *, max_timeout_ms: int,
                 id_expiration_ms: int, loaded: Iterable[TransactionMetadata] = ()) -> None:
        self._store = store
        self._clock = clock
        self.max_timeout_ms = max_timeout_ms
        self.id_expiration_ms = id_expiration_ms
        self._ids = {meta.transactional_id: meta for meta in loaded}

    def _put(self, meta: TransactionMetadata) -> TransactionMetadata:
        self._store.save(meta)  # first: memory follows the store
        self._ids[meta.transactional_id] = meta
        return meta

    # -- requests ------------------------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int,
                         new_producer_id: Callable[[], int],
                         producer_id: int = NO_PRODUCER_ID,
                         producer_epoch: int = -1) -> InitResult:
        """InitProducerId with a transactional id: its producer id with the next epoch.

        A new id gets a fresh producer id at epoch 0. ``producer_id``/``producer_epoch``
        (KIP-360, v3+) name what the client holds: another than the current is
        PRODUCER_FENCED. A transaction found open is aborted first: the result then
        carries ``abort_first``, and the client's retry (after :meth:`complete`) gets the
        epoch. An epoch about to pass 32767 starts over with a new producer id.
        """
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeout(
                f"transaction.timeout.ms {timeout_ms} must be between 1 and"
                f" transaction.max.timeout.ms {self.max_timeout_ms}")
        now = self._clock()
        meta = self._ids.get(transactional_id)
        if meta is None:
            created = TransactionMetadata(transactional_id, new_producer_id(), 0, timeout_ms,
                                          TxnState.EMPTY, update_ms=now)
            self._put(created)
            return InitResult(created.producer_id, 0)
        if producer_id != NO_PRODUCER_ID and (
                producer_id, producer_epoch) != (meta.producer_id, meta.producer_epoch):
            raise ProducerFenced(
                f"transactional id {transactional_id!r}: producer {producer_id} epoch"
                f" {producer_epoch} is not the current {meta.producer_id} epoch"
                f" {meta.producer_epoch}")
        if meta.state.is_prepared:
            raise ConcurrentTransactions(
                f"transactional id {transactional_id!r}: its last transaction is being"
                " completed")
        if meta.state is TxnState.ONGOING:
            aborting = self._put(meta.moved(TxnState.PREPARE_ABORT, now,
                                            producer_epoch=meta.producer_epoch + 1))
            return InitResult(NO_PRODUCER_ID, -1, Completion.of(aborting))
        ready = self._put(meta.moved(TxnState.EMPTY, now, timeout_ms=timeout_ms,
                                     partitions=frozenset(), pending_offsets={},
                                     start_ms=NO_START,
                                     **self._next_epoch(meta, new_producer_id)))
        return InitResult(ready.producer_id, ready.producer_epoch)

    @staticmethod
    def _next_epoch(meta: TransactionMetadata, new_producer_id: Callable[[], int]
                    ) -> dict[str, int]:
        """The producer id and epoch a new producer gets. An open transaction is instead
        aborted under its own producer id at the epoch after (``producer_epoch + 1``, at
        most MAX_EPOCH, as this hands out at most MAX_EPOCH - 1): its markers must close
        that producer id's transaction in each partition, and the epoch fences it."""
        if meta.producer_epoch >= MAX_EPOCH - 1:  # Kafka keeps the last epoch for fencing
            return {"producer_id": new_producer_id(), "producer_epoch": 0}
        return {"producer_epoch": meta.producer_epoch + 1}

    def _current(self, transactional_id: str, producer_id: int, producer_epoch: int
                 ) -> TransactionMetadata:
        """The id's state if this producer holds it now; else Kafka's error for why not."""
        meta = self._ids.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise InvalidProducerIdMapping(
                f"transactional id {transactional_id!r} does not belong to producer"
                f" {producer_id} (call InitProducerId first)")
        if producer_epoch != meta.producer_epoch:
            raise ProducerFenced(
                f"transactional id {transactional_id!r}: epoch {producer_epoch} is fenced by"
                f" epoch {meta.producer_epoch} of a newer producer")
        if meta.state.is_prepared:
            raise ConcurrentTransactions(
                f"transactional id {transactional_id!r}: the last transaction is still being"
                " completed")
        return meta

    def _begin(self, meta: TransactionMetadata, now: int, **changes: object
               ) -> TransactionMetadata:
        """``meta`` Ongoing with ``changes``; the transaction starts now if it was not open."""
        start = meta.start_ms if meta.state is TxnState.ONGOING else now
        return self._put(meta.moved(TxnState.ONGOING, now, start_ms=start, **changes))

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[tuple[str, int]]) -> None:
        """AddPartitionsToTxn: the partitions join the transaction (which opens if none was)."""
        meta = self._current(transactional_id, producer_id, producer_epoch)
        added = meta.partitions | frozenset(partitions)
        if added != meta.partitions or meta.state is not TxnState.ONGOING:
            self._begin(meta, self._clock(), partitions=added)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int,
                    group_id: str) -> None:
        """AddOffsetsToTxn: the group's offsets will be committed with the transaction."""
        if not group_id:
            raise InvalidRequest("AddOffsetsToTxn needs a group id")
        meta = self._current(transactional_id, producer_id, producer_epoch)
        if group_id not in meta.pending_offsets or meta.state is not TxnState.ONGOING:
            self._begin(meta, self._clock(),
                        pending_offsets={**meta.pending_offsets,
                                         group_id: meta.pending_offsets.get(group_id, ())})

    def txn_offset_commit(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          group_id: str, offsets: Iterable[PendingOffset]) -> None:
        """TxnOffsetCommit: offsets kept with the transaction, visible only at its commit.
        The group must have joined it (AddOffsetsToTxn), else INVALID_TXN_STATE."""
        meta = self._current(transactional_id, producer_id, producer_epoch)
        if meta.state is not TxnState.ONGOING or group_id not in meta.pending_offsets:
            raise InvalidTxnState(
                f"transactional id {transactional_id!r}: group {group_id!r} was not added to"
                " the transaction (AddOffsetsToTxn)")
        by_partition = {(t, p): (t, p, o, m) for t, p, o, m in meta.pending_offsets[group_id]}
        by_partition.update({(t, p): (t, p, o, m) for t, p, o, m in offsets})
        pending = {**meta.pending_offsets, group_id: tuple(by_partition[k]
                                                            for k in sorted(by_partition))}
        self._put(replace(meta, pending_offsets=pending, update_ms=self._clock()))

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool) -> Completion | None:
        """EndTxn: the commit or abort decided (Prepare*), and what completing it takes;
        None for a retry of an EndTxn already completed."""
        meta = self._ids.get(transactional_id)
        wanted = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if (meta is not None and meta.state is wanted and meta.producer_id == producer_id
                and meta.producer_epoch == producer_epoch):
            return None  # the client's retry of an EndTxn that was completed
        meta = self._current(transactional_id, producer_id, producer_epoch)
        if meta.state is not TxnState.ONGOING:
            raise InvalidTxnState(
                f"transactional id {transactional_id!r} is {meta.state.value}: no"
                f" transaction to {'commit' if commit else 'abort'}")
        prepared = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        return Completion.of(self._put(meta.moved(prepared, self._clock())))

    def complete(self, completion: Completion) -> None:
        """A prepared commit or abort was carried out: the id is ready for the next one."""
        meta = self._ids[completion.transactional_id]
        done = TxnState.COMPLETE_COMMIT if completion.commit else TxnState.COMPLETE_ABORT
        self._put(meta.moved(done, self._clock(), partitions=frozenset(), pending_offsets={},
                             start_ms=NO_START))

    # -- time ----------------------------------------------------------------------------

    def expire(self) -> list[Completion]:
        """Abort every transaction open past its timeout, under a bumped epoch (so the
        producer that left it is fenced), and forget ids idle past
        ``transactional.id.expiration.ms``; the aborts to carry out."""
        now = self._clock()
        aborts = []
        gone = []
        for meta in list(self._ids.values()):
            if meta.state is TxnState.ONGOING and meta.start_ms + meta.timeout_ms <= now:
                aborting = self._put(meta.moved(
                    TxnState.PREPARE_ABORT, now, producer_epoch=meta.producer_epoch + 1))
                aborts.append(Completion.of(aborting))
            elif not meta.state.is_open and meta.update_ms + self.id_expiration_ms <= now:
                gone.append(meta.transactional_id)
        if gone:
            self._store.delete(gone)
            for transactional_id in gone:
                del self._ids[transactional_id]
        return aborts

    def next_deadline(self) -> int | None:
        """When the earliest open transaction times out (None: none is open)."""
        deadlines = [m.start_ms + m.timeout_ms for m in self._ids.values()
                     if m.state is TxnState.ONGOING]
        return min(deadlines, default=None)

    # -- reading -------------------------------------------------------------------------

    def prepared(self) -> list[Completion]:
        """Commits and aborts decided and not completed (after a restart: to finish)."""
        return [Completion.of(m) for m in self._ids.values() if m.state.is_prepared]

    def describe(self, transactional_id: str) -> TransactionMetadata:
        """DescribeTransactions: one id's state; TRANSACTIONAL_ID_NOT_FOUND if unknown."""
        meta = self._ids.get(transactional_id)
        if meta is None:
            raise TransactionalIdNotFound(f"no transactional id {transactional_id!r}")
        return meta

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = ()
             ) -> list[TransactionMetadata]:
        """ListTransactions: every id, or those in ``states`` / of ``producer_ids``."""
        wanted_states = set(states)
        wanted_ids = set(producer_ids)
        return [m for _, m in sorted(self._ids.items())
                if (not wanted_states or m.state.value in wanted_states)
                and (not wanted_ids or m.producer_id in wanted_ids)]

    def open_count(self) -> int:
        """Transactions open now (Ongoing or being completed): a metric."""
        return sum(1 for m in self._ids.values() if m.state.is_open)

