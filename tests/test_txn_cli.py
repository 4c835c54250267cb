"""The transaction commands against a real ``eventstore serve`` and its data directory
(issue 19): ``eventstore transactions list|describe`` as kafka-transactions.sh prints them,
through the server (ListTransactions, DescribeTransactions) and from the data directory
beside it, and the transaction metrics; ``eventstore consume --isolation-level
read_committed`` over the wire, which stops at an open transaction and never prints
markers or aborted records."""

from __future__ import annotations

import json
import subprocess

import pytest
from confluent_kafka import Producer
from reliability import metric
from support import ServerProcess, eventstore_command
from txn_loop import create_topics

TIMEOUT_S = 60


@pytest.fixture
def server(tmp_path):
    with ServerProcess.start(str(tmp_path / "data")) as server:
        yield server


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*eventstore_command(), *args], capture_output=True, text=True,
                          timeout=120)


def transactional(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "transaction.timeout.ms": 600000})
    producer.init_transactions(TIMEOUT_S)
    return producer


def send(producer: Producer, *values: bytes) -> None:
    for value in values:
        producer.produce("t", value, partition=0)
    assert producer.flush(TIMEOUT_S) == 0


def test_transactions_list_and_describe_through_the_server_and_the_data_dir(server):
    b = server.bootstrap
    create_topics(b, 1, "t")
    done = transactional(b, "done")
    done.begin_transaction()
    send(done, b"c")
    done.commit_transaction(TIMEOUT_S)
    open_one = transactional(b, "open")
    open_one.begin_transaction()
    send(open_one, b"o")
    assert metric(server, "eventstore_transactions_open") == 1
    assert metric(server, "eventstore_transactions_committed_total") == 1
    assert metric(server, "eventstore_transactions_aborted_total") == 0
    # offsets 0 c, 1 commit marker, 2 o (open): the LSO is 2, the log-end-offset 3
    assert metric(server, "eventstore_partition_last_stable_offset_lag",
                  topic="t", partition="0") == 1
    for target in (["--bootstrap-server", b], ["--data-dir", server.data_dir]):
        listed = cli("transactions", "list", *target, "--json")
        assert listed.returncode == 0, listed.stderr
        states = {r["transactional_id"]: r["state"] for r in json.loads(listed.stdout)}
        assert states == {"done": "CompleteCommit", "open": "Ongoing"}, target
        table = cli("transactions", "list", *target)
        assert table.stdout.split()[:4] == ["TransactionalId", "Coordinator", "ProducerId",
                                            "TransactionState"]
        described = cli("transactions", "describe", "--transactional-id", "open", *target,
                        "--json")
        assert described.returncode == 0, described.stderr
        (row,) = json.loads(described.stdout)
        assert row["state"] == "Ongoing" and row["topic_partitions"] == "t-0", row
        assert row["timeout_ms"] == 600000 and row["start_ms"] > 0, row
        assert row["duration_ms"] >= 0 and row["producer_epoch"] >= 0, row
        (ended,) = json.loads(cli("transactions", "describe", "--transactional-id", "done",
                                  *target, "--json").stdout)
        assert ended["start_ms"] is None and ended["topic_partitions"] == "", ended
        missing = cli("transactions", "describe", "--transactional-id", "nobody", *target)
        assert missing.returncode != 0
        assert "TRANSACTIONAL_ID_NOT_FOUND" in missing.stderr.upper().replace(" ", "_") or (
            "TransactionalIdNotFound" in missing.stderr), missing.stderr
        assert "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) == 1
    open_one.abort_transaction(TIMEOUT_S)
    assert metric(server, "eventstore_transactions_open") == 0
    assert metric(server, "eventstore_transactions_aborted_total") == 1
    assert metric(server, "eventstore_partition_last_stable_offset_lag",
                  topic="t", partition="0") == 0


def test_consume_read_committed_over_the_wire(server):
    b = server.bootstrap
    create_topics(b, 1, "t")
    first = transactional(b, "first")
    first.begin_transaction()
    send(first, b"c1", b"c2")
    first.commit_transaction(TIMEOUT_S)
    first.begin_transaction()
    send(first, b"aborted")
    first.abort_transaction(TIMEOUT_S)
    first.begin_transaction()
    send(first, b"c3")
    first.commit_transaction(TIMEOUT_S)
    second = transactional(b, "second")
    second.begin_transaction()
    send(second, b"open")  # holds the last stable offset back
    first.begin_transaction()
    send(first, b"after-open")
    first.commit_transaction(TIMEOUT_S)
    args = ["consume", "t", "--from-beginning", "--exit-at-end", "--bootstrap-server", b]
    committed = cli(*args, "--isolation-level", "read_committed")
    assert committed.returncode == 0, committed.stderr
    assert committed.stdout.splitlines() == ["c1", "c2", "c3"]
    everything = cli(*args)
    assert everything.returncode == 0, everything.stderr
    # read_uncommitted: every data record, no markers (kafka-python drops control batches)
    assert everything.stdout.splitlines() == ["c1", "c2", "aborted", "c3", "open",
                                              "after-open"]
    second.commit_transaction(TIMEOUT_S)
    again = cli(*args, "--isolation-level", "read_committed")
    assert again.stdout.splitlines() == ["c1", "c2", "c3", "open", "after-open"]
