"""A transactional id's state as Kafka's transaction coordinator keeps it.

Kafka's ``TransactionMetadata``: the producer id and epoch handed to the transactional id,
the client's ``transaction.timeout.ms``, the state, the partitions and consumer groups of
the open transaction, and when it began. The states and the moves between them are
Kafka's (``TransactionState``): a commit or abort is first *prepared* (durably decided),
then its markers are written into every partition of the transaction, then it is
*complete*. A restart finds a prepared transaction and finishes it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from eventstore.errors import IllegalState

NO_START = -1  # start_ms of a transactional id with no transaction open


class TxnState(enum.Enum):
    """Kafka's transaction states, by the names ``kafka-transactions.sh`` prints."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"

    @property
    def is_prepared(self) -> bool:
        """A commit or abort decided and not yet completed."""
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def is_open(self) -> bool:
        """A transaction is open or not yet completed (what ListTransactions calls active)."""
        return self in (TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)


# the states each state may be entered from (Kafka's TransactionState.validPreviousStates)
_ENDED = frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT})
VALID_PREVIOUS: Mapping[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: _ENDED,
    TxnState.ONGOING: _ENDED | {TxnState.ONGOING},
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
}

# one offset a transaction commits for a group: (topic, partition, offset, metadata)
PendingOffset = tuple[str, int, int, str]


@dataclass(frozen=True, slots=True)
class TransactionMetadata:
    """One transactional id's durable state."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]] = frozenset()
    # offsets committed in the open transaction (TxnOffsetCommit), by group: visible to
    # the group only once the transaction commits
    pending_offsets: Mapping[str, tuple[PendingOffset, ...]] = field(default_factory=dict)
    start_ms: int = NO_START
    update_ms: int = 0

    def moved(self, state: TxnState, now_ms: int, **changes: object) -> TransactionMetadata:
        """This metadata in ``state``; IllegalState if Kafka's state machine has no such
        move (a bug in the caller: requests are checked before they move anything)."""
        if self.state not in VALID_PREVIOUS[state]:
            raise IllegalState(f"transactional id {self.transactional_id!r}: no move from"
                               f" {self.state.value} to {state.value}")
        return replace(self, state=state, update_ms=now_ms, **changes)

    @property
    def topic_partitions(self) -> list[tuple[str, int]]:
        return sorted(self.partitions)


@dataclass(frozen=True, slots=True)
class Completion:
    """A decided commit or abort still to be carried out: its markers written into each
    partition and, for a commit, its groups' offsets made visible."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[tuple[str, int], ...]
    pending_offsets: Mapping[str, tuple[PendingOffset, ...]]

    @classmethod
    def of(cls, meta: TransactionMetadata) -> Completion:
        """What finishing the prepared ``meta`` takes."""
        if not meta.state.is_prepared:
            raise IllegalState(f"transactional id {meta.transactional_id!r} is"
                               f" {meta.state.value}: nothing to complete")
        commit = meta.state is TxnState.PREPARE_COMMIT
        return cls(meta.transactional_id, meta.producer_id, meta.producer_epoch, commit,
                   tuple(meta.topic_partitions), meta.pending_offsets if commit else {})
