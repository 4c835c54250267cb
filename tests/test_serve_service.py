"""``eventstore serve`` as a service: the data-directory lock, /healthz, the config file
and ``--set``, ``EVENTSTORE_DATA_DIR``, and ``auto.create.topics.enable``."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from support import KafkaConnection, ServerProcess, record_batch, serve_command

METADATA = 3
UNKNOWN_TOPIC_OR_PARTITION = 3
TIMEOUT_S = 10


def test_a_second_server_on_the_same_data_dir_fails_at_once_naming_the_holder(server):
    started = time.monotonic()
    second = subprocess.run(serve_command(server.data_dir), capture_output=True, text=True,
                            timeout=TIMEOUT_S)

    assert second.returncode != 0
    assert time.monotonic() - started < 5
    output = (second.stdout + second.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output
    assert f"DataDirLocked: data directory {server.data_dir} is locked by pid {server.pid}" in (
        output)
    assert server.running


def test_healthz_and_metrics_answer(server):
    assert server.http_get(server.healthz_url) == (200, "ok\n")
    status, _ = server.http_get(server.metrics_url)
    assert status == 200


def describe(admin: AdminClient, kind: ResourceType, name: str) -> dict[str, str]:
    """The configs DescribeConfigs returns for one resource, by name."""
    resource = ConfigResource(kind, name)
    entries = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    return {name: entry.value for name, entry in entries.items()}


def test_config_file_keys_and_set_overrides(serve, tmp_path: Path):
    config = tmp_path / "eventstore.toml"
    config.write_text(
        'log-level = "info"\n'
        "[config]\n"
        '"num.partitions" = 2\n'
        '"segment.bytes" = 104857600\n'
        '"retention.ms" = 3600000\n'
        '"group.min.session.timeout.ms" = 5000\n'
    )
    server = serve(config_file=str(config), settings={"retention.ms": 7200000})
    admin = AdminClient({"bootstrap.servers": server.bootstrap})

    broker = describe(admin, ResourceType.BROKER, "0")
    assert broker["num.partitions"] == "2"  # from the file
    assert broker["group.min.session.timeout.ms"] == "5000"
    assert broker["retention.ms"] == "7200000"  # --set wins over the file
    assert broker["auto.create.topics.enable"] == "true"  # built-in default

    producer = KafkaProducer({"bootstrap.servers": server.bootstrap})
    producer.produce("auto-created", b"x")
    assert producer.flush(TIMEOUT_S) == 0
    topic = admin.list_topics(timeout=TIMEOUT_S).topics["auto-created"]
    assert len(topic.partitions) == 2
    topic_config = describe(admin, ResourceType.TOPIC, "auto-created")
    assert topic_config["segment.bytes"] == "104857600"
    assert topic_config["retention.ms"] == "7200000"
    assert topic_config["max.message.bytes"] == "1048588"  # Kafka's default


def test_data_dir_from_the_environment(tmp_path: Path):
    from_env = tmp_path / "from-env"
    from_file = tmp_path / "from-file"
    config = tmp_path / "eventstore.toml"
    config.write_text(f'data-dir = "{from_file}"\n')
    env = {"EVENTSTORE_DATA_DIR": str(from_env)}
    with ServerProcess.start(None, config_file=str(config), env=env) as server:
        assert server.ready["data_dir"] == str(from_env)  # the environment beats the file
        producer = KafkaProducer({"bootstrap.servers": server.bootstrap})
        producer.produce("kept", b"x")
        assert producer.flush(TIMEOUT_S) == 0
    assert os.path.isdir(from_env / "kept-0")
    assert not from_file.exists()


def test_without_auto_create_producing_to_an_unknown_topic_fails(serve):
    server = serve(settings={"auto.create.topics.enable": False})

    with KafkaConnection(server.address) as conn:
        metadata = conn.request(METADATA, 12, topics=[{"name": "nowhere"}],
                                allow_auto_topic_creation=True)
        assert [(t.name, t.error_code) for t in metadata.topics] == [
            ("nowhere", UNKNOWN_TOPIC_OR_PARTITION)]
        for records in (record_batch(b"x"), b"not a record batch"):
            produced = conn.produce("nowhere", 0, records)
            assert produced.error_code == UNKNOWN_TOPIC_OR_PARTITION

    failures: list[KafkaError] = []
    producer = KafkaProducer({"bootstrap.servers": server.bootstrap,
                              "topic.metadata.propagation.max.ms": 100})
    producer.produce("nowhere", b"x", on_delivery=lambda error, _: failures.append(error))
    producer.flush(TIMEOUT_S)
    assert [e.code() for e in failures] == [KafkaError.UNKNOWN_TOPIC_OR_PART]

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    assert "nowhere" not in admin.list_topics(timeout=TIMEOUT_S).topics
    # each refusal is one line, not an actor's traceback
    assert not [line for line in server.lines if "Traceback" in line]


def test_produce_follows_a_topic_deleted_and_created_again(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("again", 1, 1)])["again"].result(TIMEOUT_S)
    with KafkaConnection(server.address) as conn:
        assert conn.produce("again", 0, record_batch(b"1", b"2")).error_code == 0

        admin.delete_topics(["again"])["again"].result(TIMEOUT_S)
        gone = conn.produce("again", 0, record_batch(b"3"))
        assert gone.error_code == UNKNOWN_TOPIC_OR_PARTITION

        admin.create_topics([NewTopic("again", 1, 1)])["again"].result(TIMEOUT_S)
        again = conn.produce("again", 0, record_batch(b"4"))
        assert (again.error_code, again.base_offset) == (0, 0)
