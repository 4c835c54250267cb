"""The transaction coordinator's plain logic (eventstore/transactions), with a manual clock
and a store kept in a real catalog file: Kafka's state moves, fencing, timeouts, and a
restart that finds a prepared commit."""

from __future__ import annotations

import itertools

import apsw
import pytest
from support import ManualClock

from eventstore.errors import (
    ConcurrentTransactions,
    InvalidProducerIdMapping,
    InvalidTransactionTimeout,
    InvalidTxnState,
    ProducerFenced,
    TransactionalIdNotFound,
)
from eventstore.storage.catalog import CATALOG_FILE, Catalog
from eventstore.transactions.coordinator import TransactionLogic
from eventstore.transactions.state import TxnState
from eventstore.transactions.store import TransactionStore, read_transactions

MAX_TIMEOUT = 900_000
TIMEOUT = 60_000


@pytest.fixture
def store(tmp_path):
    Catalog.open(str(tmp_path)).close()
    opened = TransactionStore.open(str(tmp_path))
    yield opened
    opened.close()


def logic(store, clock, expiration_ms=7 * 86_400_000):
    return TransactionLogic(store, clock, max_timeout_ms=MAX_TIMEOUT,
                            id_expiration_ms=expiration_ms, loaded=store.load())


def init(txns, transactional_id, timeout, new_id):
    """InitProducerId that needs no abort first: (producer id, epoch)."""
    result = txns.init_producer_id(transactional_id, timeout, new_id)
    assert result.abort_first is None
    return result.producer_id, result.producer_epoch


def ids():
    counter = itertools.count(1000)
    return lambda: next(counter)


def test_a_commit_moves_through_kafkas_states_and_keeps_the_offsets_until_it_completes(store):
    clock = ManualClock()
    txns = logic(store, clock)
    pid, epoch = init(txns, "copier", TIMEOUT, ids())
    assert (epoch, txns.describe("copier").state) == (0, TxnState.EMPTY)
    txns.add_partitions("copier", pid, epoch, [("b", 0), ("b", 1)])
    txns.add_offsets("copier", pid, epoch, "group")
    txns.txn_offset_commit("copier", pid, epoch, "group", [("a", 0, 7, "")])
    txns.txn_offset_commit("copier", pid, epoch, "group", [("a", 0, 9, "m")])
    meta = txns.describe("copier")
    assert meta.state is TxnState.ONGOING and meta.start_ms == clock.now
    completion = txns.end_txn("copier", pid, epoch, commit=True)
    assert completion.commit and completion.partitions == (("b", 0), ("b", 1))
    assert completion.pending_offsets == {"group": (("a", 0, 9, "m"),)}
    assert txns.describe("copier").state is TxnState.PREPARE_COMMIT
    with pytest.raises(ConcurrentTransactions):  # until the markers are written
        txns.add_partitions("copier", pid, epoch, [("b", 0)])
    txns.complete(completion)
    meta = txns.describe("copier")
    assert (meta.state, meta.partitions, meta.pending_offsets) == (
        TxnState.COMPLETE_COMMIT, frozenset(), {})
    assert txns.end_txn("copier", pid, epoch, commit=True) is None  # a retry: done
    with pytest.raises(InvalidTxnState):
        txns.end_txn("copier", pid, epoch, commit=False)


def test_a_new_producer_bumps_the_epoch_fences_the_old_and_aborts_its_open_transaction(store):
    clock = ManualClock()
    txns = logic(store, clock)
    new_id = ids()
    pid, epoch = init(txns, "t", TIMEOUT, new_id)
    txns.add_partitions("t", pid, epoch, [("b", 0)])
    first = txns.init_producer_id("t", TIMEOUT, new_id)
    assert first.abort_first is not None and not first.abort_first.commit
    assert first.abort_first.producer_epoch == epoch + 1  # the abort is written fenced
    txns.complete(first.abort_first)
    again = txns.init_producer_id("t", TIMEOUT, new_id)
    assert (again.producer_id, again.producer_epoch) == (pid, epoch + 2)
    with pytest.raises(ProducerFenced):
        txns.add_partitions("t", pid, epoch, [("b", 0)])
    with pytest.raises(ProducerFenced):
        txns.end_txn("t", pid, epoch, commit=True)
    with pytest.raises(InvalidProducerIdMapping):
        txns.add_partitions("t", pid + 1, epoch + 2, [("b", 0)])
    with pytest.raises(InvalidProducerIdMapping):
        txns.add_offsets("unknown", pid, 0, "g")


def test_transaction_timeout_is_bounded_by_the_servers_maximum(store):
    txns = logic(store, ManualClock())
    for timeout in (0, -1, MAX_TIMEOUT + 1):
        with pytest.raises(InvalidTransactionTimeout):
            txns.init_producer_id("t", timeout, ids())
    assert txns.init_producer_id("t", MAX_TIMEOUT, ids()).producer_epoch == 0


def test_an_expired_transaction_is_aborted_under_a_new_epoch(store):
    clock = ManualClock()
    txns = logic(store, clock)
    pid, epoch = init(txns, "t", 1000, ids())
    txns.add_partitions("t", pid, epoch, [("b", 0)])
    assert txns.next_deadline() == clock.now + 1000
    clock.advance(999)
    assert txns.expire() == []
    clock.advance(1)
    [abort] = txns.expire()
    assert not abort.commit and abort.producer_epoch == epoch + 1
    txns.complete(abort)
    assert txns.describe("t").state is TxnState.COMPLETE_ABORT
    with pytest.raises(ProducerFenced):  # the producer that left it
        txns.add_partitions("t", pid, epoch, [("b", 0)])


def test_idle_transactional_ids_expire(store):
    clock = ManualClock()
    txns = logic(store, clock, expiration_ms=5000)
    txns.init_producer_id("idle", TIMEOUT, ids())
    clock.advance(5000)
    txns.expire()
    with pytest.raises(TransactionalIdNotFound):
        txns.describe("idle")
    assert logic(store, clock).list() == []


def test_a_restart_finds_the_prepared_commit_and_the_ongoing_transaction(store, tmp_path):
    clock = ManualClock()
    txns = logic(store, clock)
    new_id = ids()
    pid, epoch = init(txns, "committing", TIMEOUT, new_id)
    txns.add_partitions("committing", pid, epoch, [("b", 2)])
    txns.end_txn("committing", pid, epoch, commit=True)
    other, other_epoch = init(txns, "open", TIMEOUT, new_id)
    txns.add_partitions("open", other, other_epoch, [("b", 0)])
    conn = apsw.Connection(str(tmp_path / CATALOG_FILE), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        stored = {m.transactional_id: m.state for m in read_transactions(conn)}
    finally:
        conn.close()
    assert stored == {"committing": TxnState.PREPARE_COMMIT, "open": TxnState.ONGOING}
    again = logic(store, clock)  # a restart
    [prepared] = again.prepared()
    assert (prepared.transactional_id, prepared.commit, prepared.partitions) == (
        "committing", True, (("b", 2),))
    assert again.describe("open").state is TxnState.ONGOING  # kept, as Kafka keeps it
    assert [m.transactional_id for m in again.list(states=["Ongoing"])] == ["open"]
    assert [m.transactional_id for m in again.list(producer_ids=[pid])] == ["committing"]
    assert again.open_count() == 2


@pytest.mark.parametrize("how", ["a new producer", "the timeout"])
def test_an_open_transaction_at_the_last_epoch_is_aborted_under_its_own_producer_id(
        store, how):
    """At the highest epoch handed out (MAX_EPOCH - 1), the abort keeps the producer id
    (its markers must close that id's transaction in each partition) and takes the last
    epoch, MAX_EPOCH, which fences; the producer id changes only at the next
    InitProducerId, as Kafka rotates it."""
    from eventstore.storage.producer_state import MAX_EPOCH
    from eventstore.transactions.state import TransactionMetadata

    clock = ManualClock()
    store.save(TransactionMetadata("t", 77, MAX_EPOCH - 1, 1000, TxnState.ONGOING,
                                   frozenset({("b", 0)}), {}, clock.now, clock.now))
    txns = logic(store, clock)
    new_id = ids()
    if how == "the timeout":
        clock.advance(1000)
        [abort] = txns.expire()
    else:
        abort = txns.init_producer_id("t", TIMEOUT, new_id).abort_first
    assert (abort.producer_id, abort.producer_epoch) == (77, MAX_EPOCH)
    txns.complete(abort)
    assert init(txns, "t", TIMEOUT, new_id) == (1000, 0)
