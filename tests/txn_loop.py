"""The consume-transform-produce loop of the transaction tests and benchmark, with
confluent-kafka (librdkafka): read topic A in a group, write each record to the same
partition of topic B inside a transaction that also commits the group's offsets
(``send_offsets_to_transaction``), commit (or, on purpose, abort and rewind), repeat.

:func:`copy_loop` runs it; :func:`read_committed` reads a topic back as a read_committed
consumer; :func:`check_exactly_once` compares B with A partition by partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60
# librdkafka (2.16) re-bootstraps when every broker is down, as a SIGKILLed single node
# is: it decommissions broker 0, and a send_offsets_to_transaction then waits forever for
# the group coordinator it had cached there, past its timeout (confluentinc/librdkafka
# issues 5511 and 5456). The server answered every request; the client never sent its
# TxnOffsetCommit. One node has nothing to re-bootstrap to, so the loop's clients do not.
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}


def create_topics(bootstrap: str, partitions: int, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
            operation_timeout=30).values():
        future.result(timeout=TIMEOUT_S)


def fill(bootstrap: str, topic: str, partitions: int, count: int) -> None:
    """``count`` records, round robin over the partitions: value ``b"<p>:<n>"``, n counting
    each partition's records from 0."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "enable.idempotence": True})
    for i in range(count):
        p = i % partitions
        while True:
            try:
                producer.produce(topic, b"%d:%d" % (p, i // partitions), partition=p)
                break
            except BufferError:  # librdkafka's queue is full: let deliveries drain it
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0


@dataclass
class LoopResult:
    """What a copy loop did: transactions committed and aborted on purpose, and the
    failures it recovered from (a server killed under it)."""

    committed: int = 0
    aborted: int = 0
    recovered: int = 0
    seconds: float = 0.0


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's log-end-offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                  timeout=TIMEOUT_S)[1]
                for p in range(partitions)}
    finally:
        consumer.close()


def copy_loop(bootstrap: str, source: str, target: str, ends: dict[int, int], *,
              per_transaction: int = 1000, abort_every: int = 0, transactional: bool = True,
              group: str = "copier", transactional_id: str = "copier-1",
              deadline_s: float = 300) -> LoopResult:
    """Copy ``source`` into ``target`` until the group has committed ``ends`` (each
    partition's end), ``per_transaction`` records a transaction; every ``abort_every``-th
    transaction is aborted and its records read again. Without ``transactional`` the same
    loop commits offsets plainly (the benchmark's baseline).

    A failure (the server killed under it) is recovered as librdkafka asks: a retriable
    commit is retried, an abortable transaction aborted, a fatal error (fenced) answered
    with a new producer; then the consumer goes back to the group's committed offsets."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "isolation.level": "read_committed",
        "enable.partition.eof": False, **NO_REBOOTSTRAP,
    })
    producer = _producer(bootstrap, transactional, transactional_id)
    consumer.subscribe([source])
    result = LoopResult()
    done = dict.fromkeys(ends, 0)
    started = time.monotonic()
    deadline = started + deadline_s
    transactions = 0
    try:
        while any(done[p] < end for p, end in ends.items()):
            assert time.monotonic() < deadline, f"copied up to {done} of {ends} in time"
            try:
                batch = [m for m in consumer.consume(num_messages=per_transaction, timeout=1.0)
                         if m.error() is None]
                if not batch:
                    continue
                transactions += 1
                if transactional:
                    producer.begin_transaction()
                for message in batch:
                    producer.produce(target, message.value(), key=message.key(),
                                     partition=message.partition())
                    producer.poll(0)
                offsets = consumer.position(consumer.assignment())
                if not transactional:
                    assert producer.flush(TIMEOUT_S) == 0
                    consumer.commit(offsets=offsets, asynchronous=False)
                elif abort_every and transactions % abort_every == 0:
                    producer.abort_transaction(TIMEOUT_S)
                    result.aborted += 1
                    _rewind(consumer)
                    continue
                else:
                    producer.send_offsets_to_transaction(
                        offsets, consumer.consumer_group_metadata(), TIMEOUT_S)
                    _commit(producer)
                result.committed += 1
                done.update({tp.partition: tp.offset for tp in offsets if tp.offset >= 0})
            except KafkaException as failed:
                result.recovered += 1
                producer = _recover(failed, producer, bootstrap, transactional,
                                    transactional_id)
                _rewind(consumer)
    finally:
        consumer.close()
        producer.flush(5)
    result.seconds = time.monotonic() - started
    return result


def _producer(bootstrap: str, transactional: bool, transactional_id: str) -> Producer:
    config = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
              **NO_REBOOTSTRAP}
    if transactional:
        config["transactional.id"] = transactional_id
    producer = Producer(config)
    if transactional:
        producer.init_transactions(TIMEOUT_S)
    return producer


def _commit(producer: Producer) -> None:
    """commit_transaction, again while its error is retriable (librdkafka's advice)."""
    for _ in range(10):
        try:
            producer.commit_transaction(TIMEOUT_S)
            return
        except KafkaException as failed:
            if not failed.args[0].retriable():
                raise
    raise AssertionError("commit_transaction kept failing")


def _recover(failed: KafkaException, producer: Producer, bootstrap: str, transactional: bool,
             transactional_id: str) -> Producer:
    """A producer fit for the next transaction after ``failed``."""
    error = failed.args[0]
    if transactional and not error.fatal():
        try:
            producer.abort_transaction(TIMEOUT_S)
            return producer
        except KafkaException:
            pass  # no abort possible: start over with a new producer, as for a fatal error
    producer.flush(1)
    for _ in range(10):
        try:
            return _producer(bootstrap, transactional, transactional_id)
        except KafkaException:
            time.sleep(0.5)  # the server is coming back
    raise AssertionError("no producer could be made again")


def _rewind(consumer: Consumer) -> None:
    """Back to the group's committed offsets (an aborted transaction's records again)."""
    for _ in range(10):
        try:
            committed = consumer.committed(consumer.assignment(), timeout=TIMEOUT_S)
        except KafkaException:
            time.sleep(0.5)
            continue
        for tp in committed:
            consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
        return
    raise AssertionError("the group's committed offsets could not be read")


def read_committed(bootstrap: str, topic: str, partitions: int, expected: int,
                   timeout_s: float = TIMEOUT_S) -> dict[int, list[bytes]]:
    """Every value of ``topic`` a read_committed consumer gets, by partition, once it has
    ``expected`` of them (and nothing more arrives for a moment)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{topic}-{time.monotonic_ns()}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    count = 0
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            for message in batch:
                if message.error() is not None:
                    raise KafkaException(message.error())
                got[message.partition()].append(message.value())
                count += 1
            if count >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if not batch and time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    return got


def check_exactly_once(source: dict[int, list[bytes]], target: dict[int, list[bytes]]
                       ) -> tuple[int, int]:
    """(duplicates, losses) of target against source, per partition in order; asserts the
    order when there are neither."""
    duplicates = losses = 0
    for p, values in source.items():
        copied = target.get(p, [])
        duplicates += len(copied) - len(set(copied))
        losses += len(set(values) - set(copied))
        if not duplicates and not losses:
            assert copied == values, f"partition {p}: records out of order"
    return duplicates, losses
