"""Admin APIs over the wire with kafka-python's admin client: altering topic configs
(AlterConfigs and IncrementalAlterConfigs), log-dir sizes (DescribeLogDirs) and deleting
consumer groups (DeleteGroups), each checked against what the server then reports."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import OffsetAndMetadata


def _topic_overrides(admin: KafkaAdminClient, topic: str) -> dict[str, str]:
    """The topic's non-default configs, as kafka-python's describe_configs reports them."""
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return {name: entry["value"] for name, entry in result["topic"][topic].items()}


def test_alter_configs_sets_and_deletes_topic_overrides(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([NewTopic("conf", 1, 1)])
        admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, "conf",
            configs={"retention.ms": ("SET", "1000"), "segment.bytes": ("SET", "100000")})])
        assert _topic_overrides(admin, "conf") == {
            "retention.ms": "1000", "segment.bytes": "100000"}
        admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, "conf", configs={"retention.ms": ("DELETE", None)})])
        assert _topic_overrides(admin, "conf") == {"segment.bytes": "100000"}
        bad = admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, "conf", configs={"segment.bytes": ("SET", "lots")})])
        assert bad["topic"]["conf"] != "OK"
        assert _topic_overrides(admin, "conf") == {"segment.bytes": "100000"}
    finally:
        admin.close()


def test_describe_log_dirs_reports_partition_sizes(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([NewTopic("sized", 2, 1)])
        for _ in range(10):
            producer.send("sized", b"x" * 100, partition=1).get(timeout=10)
        (broker,) = admin.describe_log_dirs()
        (log_dir,) = broker["log_dirs"]
        sizes = {p["partition_index"]: p["partition_size"]
                 for t in log_dir["topics"] if t["name"] == "sized" for p in t["partitions"]}
        assert sizes[0] == 0
        assert sizes[1] >= 10 * 100
    finally:
        producer.close()
        admin.close()


def _group_ids(admin: KafkaAdminClient) -> list[str]:
    return [g["group_id"] for g in admin.list_groups()]


def test_delete_groups_removes_an_empty_group_and_names_unknown_ones(server):
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([NewTopic("grouped", 1, 1)])
        consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id="doomed")
        consumer.assign([TopicPartition("grouped", 0)])
        consumer.commit({TopicPartition("grouped", 0): OffsetAndMetadata(0, "", -1)})
        consumer.close()
        assert "doomed" in _group_ids(admin)
        results = admin.delete_groups(["doomed", "never-existed"])
        assert results == {"doomed": "OK", "never-existed": "GroupIdNotFoundError"}
        assert "doomed" not in _group_ids(admin)
    finally:
        admin.close()
