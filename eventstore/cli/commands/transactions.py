"""`eventstore transactions list|describe`: the kafka-transactions.sh job.

``list`` prints kafka-transactions.sh's columns, TransactionalId Coordinator ProducerId
TransactionState, one row per transactional id the coordinator knows; ``describe
--transactional-id ID`` prints CoordinatorId TransactionalId ProducerId ProducerEpoch
TransactionState TransactionTimeoutMs CurrentTransactionStartTimeMs TransactionDurationMs
TopicPartitions, with ``-`` for the start and duration when no transaction is open.
Through ``--bootstrap-server`` they send ListTransactions and DescribeTransactions
(kafka-python's admin client, TLS and SASL from ``--command-config``); on a data directory
they read the coordinator's ``transactions`` table in the catalog, read-only, beside a
running server too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from eventstore.cli.admin_command import add_admin_action, admin_target
from eventstore.cli.base import EXIT_OK, add_command
from eventstore.cli.output import Column, print_rows
from eventstore.errors import TransactionalIdNotFound
from eventstore.kafka.context import NODE_ID
from eventstore.storage.catalog import CATALOG_FILE
from eventstore.storage.readonly import open_database, reading
from eventstore.transactions.state import NO_START
from eventstore.transactions.store import read_transactions

LIST_COLUMNS = tuple(Column(h, k) for h, k in (
    ("TransactionalId", "transactional_id"), ("Coordinator", "coordinator"),
    ("ProducerId", "producer_id"), ("TransactionState", "state")))
DESCRIBE_COLUMNS = tuple(Column(h, k) for h, k in (
    ("CoordinatorId", "coordinator"), ("TransactionalId", "transactional_id"),
    ("ProducerId", "producer_id"), ("ProducerEpoch", "producer_epoch"),
    ("TransactionState", "state"), ("TransactionTimeoutMs", "timeout_ms"),
    ("CurrentTransactionStartTimeMs", "start_ms"), ("TransactionDurationMs", "duration_ms"),
    ("TopicPartitions", "topic_partitions")))


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "transactions", "list and describe transactional ids (kafka-transactions.sh)",
        "Show the transaction coordinator's state, as kafka-transactions.sh does: each"
        " transactional id's producer id and epoch, its state (Empty, Ongoing, PrepareCommit,"
        " PrepareAbort, CompleteCommit, CompleteAbort) and the partitions of its open"
        " transaction.",
        "  eventstore transactions list --bootstrap-server 127.0.0.1:9092\n"
        "  eventstore transactions describe --transactional-id copier-1 --data-dir data\n",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = add_admin_action(actions, "list", "every transactional id and its state", _list)
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    describe = add_admin_action(actions, "describe", "one transactional id in detail",
                                _describe)
    describe.add_argument("--transactional-id", required=True, metavar="ID")
    describe.add_argument("--json", action="store_true", help="print JSON for scripts")


def _describe_row(transactional_id: str, producer_id: int, producer_epoch: int, state: str,
                  timeout_ms: int, start_ms: int,
                  partitions: Iterable[tuple[str, int]], coordinator: int) -> dict:
    open_since = None if start_ms == NO_START else start_ms
    return {
        "coordinator": coordinator, "transactional_id": transactional_id,
        "producer_id": producer_id, "producer_epoch": producer_epoch, "state": state,
        "timeout_ms": timeout_ms, "start_ms": open_since,
        "duration_ms": None if open_since is None else max(
            int(time.time() * 1000) - open_since, 0),
        "topic_partitions": ",".join(f"{t}-{p}" for t, p in sorted(partitions)),
    }


def _local_transactions(data_dir: str) -> list:
    path = os.path.join(data_dir, CATALOG_FILE)
    try:
        conn = open_database(path)
    except FileNotFoundError:
        return []
    try:
        with reading(path):
            return read_transactions(conn)
    finally:
        conn.close()


def _list(args: argparse.Namespace) -> int:
    target = admin_target(args)
    if target.bootstrap_server:
        with _admin(target.bootstrap_server, args.command_config) as admin:
            listed = [(t.transactional_id, node, t.producer_id, t.state.value)
                      for node, items in admin.list_transactions().items() for t in items]
    else:
        listed = [(m.transactional_id, NODE_ID, m.producer_id, m.state.value)
                  for m in _local_transactions(target.data_dir)]
    rows = [{"transactional_id": i, "coordinator": c, "producer_id": p, "state": s}
            for i, c, p, s in sorted(listed)]
    print_rows(args.json, LIST_COLUMNS, rows)
    return EXIT_OK


def _describe(args: argparse.Namespace) -> int:
    target = admin_target(args)
    wanted = args.transactional_id
    if target.bootstrap_server:
        with _admin(target.bootstrap_server, args.command_config) as admin:
            found = admin.describe_transactions([wanted])[wanted]
        row = _describe_row(wanted, found.producer_id, found.producer_epoch,
                            found.state.value, found.transaction_timeout_ms,
                            found.transaction_start_time_ms,
                            ((tp.topic, tp.partition) for tp in found.topic_partitions),
                            found.coordinator_id)
    else:
        meta = next((m for m in _local_transactions(target.data_dir)
                     if m.transactional_id == wanted), None)
        if meta is None:
            raise TransactionalIdNotFound(f"transactional id {wanted!r} is not known")
        row = _describe_row(wanted, meta.producer_id, meta.producer_epoch, meta.state.value,
                            meta.timeout_ms, meta.start_ms, meta.partitions, NODE_ID)
    print_rows(args.json, DESCRIBE_COLUMNS, [row])
    return EXIT_OK


@contextlib.contextmanager
def _admin(address: str, command_config: str | None) -> Iterator[Any]:
    """kafka-python's admin client for one command, its errors as one-line CliErrors."""
    from eventstore.cli.client_security import kafka_python_security
    from eventstore.cli.wire import admin_client, wire_errors

    with wire_errors(address):
        client = admin_client(address, **kafka_python_security(command_config))
        try:
            yield client
        finally:
            client.close()
