"""SIGTERM while clients produce and consume: a clean exit, nothing acknowledged lost, and
the same clients carry on once the server is back on the same address."""

from __future__ import annotations

import threading
from collections import Counter

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from support import ServerProcess, wait_until

TOPIC = "payments"
PARTITIONS = 2
MAX_UNACKED = 500  # keep the producer this close to the server: traffic, not a backlog
STOP_WITHIN_S = 5.0
TIMEOUT_S = 30
RECONNECT = {"reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200}


class SteadyProducer(threading.Thread):
    """Sends numbered records (acks=all) until told to stop, then flushes; ``acked`` holds
    each delivery report's (key, value), ``failed`` the errors."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(name="steady-producer")
        self.producer = KafkaProducer({
            "bootstrap.servers": server.bootstrap, "acks": "all", "linger.ms": 2,
            "message.timeout.ms": 60_000, **RECONNECT,
        })
        self.acked: list[tuple[bytes, bytes]] = []
        self.failed: list[KafkaError] = []
        self.sent = 0
        self.halt = threading.Event()

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is None:
            self.acked.append((message.key(), message.value()))
        else:
            self.failed.append(error)

    def run(self) -> None:
        while not self.halt.is_set():
            if self.sent - len(self.acked) - len(self.failed) >= MAX_UNACKED:
                self.producer.poll(0.05)  # wait for delivery reports
                continue
            key = b"payment-%08d" % self.sent
            self.producer.produce(TOPIC, b"amount=%d" % (self.sent * 3), key=key,
                                  on_delivery=self._delivered)
            self.sent += 1
            self.producer.poll(0)
        self.producer.flush(TIMEOUT_S)


class SteadyConsumer(threading.Thread):
    """A group member that keeps polling until told to stop; ``read`` holds (key, value)."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(name="steady-consumer")
        self.consumer = KafkaConsumer({
            "bootstrap.servers": server.bootstrap, "group.id": "ledger",
            "auto.offset.reset": "earliest", "auto.commit.interval.ms": 100, **RECONNECT,
        })
        self.consumer.subscribe([TOPIC])
        self.read: list[tuple[bytes, bytes]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for message in self.consumer.consume(1000, timeout=0.1):
                if message.error() is None:
                    self.read.append((message.key(), message.value()))
        self.consumer.close()


def read_whole_topic(server: ServerProcess) -> list[tuple[bytes, bytes]]:
    """Every record of every partition, read from the beginning by a fresh consumer."""
    consumer = KafkaConsumer({"bootstrap.servers": server.bootstrap, "group.id": "checker",
                              "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), TIMEOUT_S)[1]
            for p in range(PARTITIONS)}
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records: list[tuple[bytes, bytes]] = []
    total = sum(ends.values())
    while len(records) < total:  # consume() waits for as many as it is asked for
        messages = consumer.consume(min(total - len(records), 10_000), timeout=TIMEOUT_S)
        assert messages, f"read {len(records)} of {total} records"
        records += [(m.key(), m.value()) for m in messages if m.error() is None]
    consumer.close()
    return records


def test_sigterm_mid_traffic_loses_nothing_and_clients_go_on(serve):
    server = serve(settings={"num.partitions": PARTITIONS})
    producer, consumer = SteadyProducer(server), SteadyConsumer(server)
    producer.start()
    consumer.start()
    try:
        wait_until(lambda: len(producer.acked) >= 3000 and len(consumer.read) >= 1000,
                   TIMEOUT_S, "traffic to flow")

        took = server.stop()  # SIGTERM; the server must exit 0
        assert took < STOP_WITHIN_S
        acked_before = len(producer.acked)
        assert producer.sent > acked_before  # the producer was mid-traffic

        server.relaunch()  # same data directory, same address
        wait_until(lambda: len(producer.acked) >= acked_before + 3000, TIMEOUT_S,
                   "the producer to reconnect and go on")
    finally:
        producer.halt.set()
        producer.join(TIMEOUT_S + 5)

    assert producer.failed == []
    assert len(producer.acked) == producer.sent
    on_disk = read_whole_topic(server)
    assert Counter(on_disk) == Counter(producer.acked)  # each once, exactly as sent

    try:
        wait_until(lambda: set(consumer.read) >= set(on_disk), TIMEOUT_S,
                   "the consumer to read everything after the restart")
    finally:
        consumer.halt.set()
        consumer.join(TIMEOUT_S)
    errors = [line for line in server.lines if "level=error" in line]
    assert errors == []
