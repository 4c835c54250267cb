"""`eventstore mirror` (issue 22): the topic plan as plain logic, and a copy between two real
`eventstore serve` processes (the target used only through Kafka APIs) with confluent-kafka
as producer and reader."""

from __future__ import annotations

import subprocess

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from support import eventstore_command

from eventstore.mirror.plan import Selection, TopicPlan, changes, plan_topics


def test_selection_by_names_and_regexes():
    selection = Selection(("orders", "clicks-.*"), ("clicks-test",))
    assert [t for t in ("orders", "orders2", "clicks-a", "clicks-test", "__consumer_offsets")
            if selection.wants(t)] == ["orders", "clicks-a"]
    assert not Selection().wants("__transaction_state")


def test_plan_carries_configs_renames_and_adds_partitions():
    plans = plan_topics({"a": 3, "b": 1}, {"a": {"retention.ms": "5", "segment.bytes": "9"}},
                        Selection(), "es.")
    assert plans == (TopicPlan("a", "es.a", 3, (("retention.ms", "5"),)),
                     TopicPlan("b", "es.b", 1, ()))
    todo = changes(plans, {"es.a": 2, "es.b": 4})
    assert [(c.plan.target, c.create, c.add_partitions) for c in todo] == [
        ("es.a", False, True)]


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.auto.commit": False})
    out = []
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        consumer.assign([TopicPartition(topic, p, low)])
        while high > low and (not out or out[-1][0] != p or out[-1][1] < high - 1):
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            out.append((p, message.offset(), message.key(), message.value(),
                        message.headers(), message.timestamp()))
    consumer.close()
    return out


def test_mirror_until_caught_up_copies_topics_and_records(serve):
    source, target = serve(), serve()
    admin = AdminClient({"bootstrap.servers": source.bootstrap})
    for future in admin.create_topics([
            NewTopic("orders", 4, config={"retention.ms": "86400000"}),
            NewTopic("skipped", 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": source.bootstrap, "compression.type": "lz4",
                         "enable.idempotence": True, "linger.ms": 20})
    for i in range(2000):
        producer.produce("orders", key=f"k{i % 37}".encode(), value=f"v{i}".encode(),
                         partition=i % 4, headers=[("n", str(i).encode())],
                         timestamp=1_700_000_000_000 + i)
    producer.produce("skipped", value=b"x")
    assert producer.flush(30) == 0

    done = subprocess.run(
        [*eventstore_command(), "mirror", "--source-bootstrap-server", source.bootstrap,
         "--target-bootstrap-server", target.bootstrap, "--exclude", "skip.*",
         "--prefix", "es.", "--compression", "zstd", "--until-caught-up"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Mirrored 2000 records of 1 topics."]

    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    topics = target_admin.list_topics(timeout=10).topics
    assert "es.skipped" not in topics and len(topics["es.orders"].partitions) == 4
    (configs,) = target_admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "es.orders")]).values()
    assert configs.result()["retention.ms"].value == "86400000"
    assert _read_all(target.bootstrap, "es.orders", 4) == _read_all(
        source.bootstrap, "orders", 4)
