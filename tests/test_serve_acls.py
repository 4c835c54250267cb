"""ACLs through a real ``eventstore serve`` with SASL users (issue 20).

The server runs with ``authorizer.class.name`` on, ``super.users=User:admin`` and a
SASL_PLAINTEXT listener (PLAIN); the reader's ACLs are written on the data directory
before it starts (eventstore/storage/acls.py), others over the wire with confluent-kafka's
AdminClient. A user allowed to read one topic can neither write it, nor read another,
nor see it in Metadata, nor join a group it has no READ on (confluent-kafka and
kafka-python, each seeing Kafka's codes); a PREFIXED allow and a LITERAL deny combine as
in Kafka (the deny wins); the super user bypasses ACLs; ACLs and users survive a restart.
Without an authorizer the ACL APIs answer SECURITY_DISABLED. ``eventstore acls`` adds,
lists and removes ACLs on a data directory and through the server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import kafka
import kafka.admin
import kafka.errors
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from support import ServerProcess, eventstore_command, poll_until, wait_until

from eventstore.security import acl
from eventstore.security.scram import make_credential
from eventstore.storage.acls import AclStore
from eventstore.storage.credentials import CredentialStore

PASSWORDS = {"admin": "admin-secret-pw", "reader": "reader-secret-pw",
             "writer": "writer-secret-pw"}
TOPICS = ("allowed", "other", "pre-open", "pre-secret")


def plain(user: str) -> dict[str, str]:
    """librdkafka's settings for a PLAIN login as ``user``."""
    return {"security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": PASSWORDS[user]}


def kafka_python_plain(user: str) -> dict[str, Any]:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": user, "sasl_plain_password": PASSWORDS[user]}


def allow(resource_type: acl.ResourceType, name: str, operation: acl.Operation,
          user: str = "reader", pattern: acl.PatternType = acl.PatternType.LITERAL,
          permission: acl.Permission = acl.Permission.ALLOW) -> acl.AclBinding:
    return acl.AclBinding(acl.ResourcePattern(resource_type, name, pattern), f"User:{user}",
                          "*", operation, permission)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = str(tmp_path_factory.mktemp("acls") / "data")
    with CredentialStore.open(data_dir) as store:
        for user, password in PASSWORDS.items():
            store.upsert(user, make_credential("SCRAM-SHA-256", password))
    with AclStore.open(data_dir) as store:
        store.add([
            allow(acl.ResourceType.TOPIC, "allowed", acl.Operation.READ),
            allow(acl.ResourceType.GROUP, "rg-", acl.Operation.READ,
                  pattern=acl.PatternType.PREFIXED),
            allow(acl.ResourceType.TOPIC, "pre-", acl.Operation.READ,
                  pattern=acl.PatternType.PREFIXED),
            allow(acl.ResourceType.TOPIC, "pre-secret", acl.Operation.READ,
                  permission=acl.Permission.DENY),
        ])
    settings = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0",
                "sasl.enabled.mechanisms": "PLAIN",
                "authorizer.class.name": "acl", "super.users": "User:admin"}
    with ServerProcess.start(data_dir, settings=settings) as server:
        admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("admin")})
        for future in admin.create_topics([NewTopic(t, 1) for t in TOPICS]).values():
            future.result(30)
        producer = confluent_kafka.Producer({"bootstrap.servers": server.bootstrap,
                                             **plain("admin")})
        for topic in TOPICS:
            producer.produce(topic, f"{topic}-value".encode())
        assert producer.flush(30) == 0
        yield server


def first_message(server: ServerProcess, user: str, topic: str, group: str,
                  protocol: str = "classic") -> Any:
    """The first message (or error) a confluent-kafka group member polls."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": server.bootstrap,
                                         **plain(user), "group.id": group,
                                         "group.protocol": protocol,
                                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        return wait_until(lambda: consumer.poll(0.5), 60, f"{user} polls {topic}")
    finally:
        consumer.close()


def delivery(server: ServerProcess, user: str, topic: str) -> Any:
    """What confluent-kafka reports for one produced message: the error or the message."""
    producer = confluent_kafka.Producer({"bootstrap.servers": server.bootstrap, **plain(user),
                                         "message.timeout.ms": 20000})
    reports: list[Any] = []
    producer.produce(topic, b"x", on_delivery=lambda err, msg: reports.append(err or msg))
    producer.flush(30)
    return reports[0]


def test_a_reader_reads_its_topic_only_and_sees_only_it_in_metadata(server):
    message = first_message(server, "reader", "allowed", "rg-1")
    assert message.error() is None and message.value() == b"allowed-value"

    refused = delivery(server, "reader", "allowed")
    assert refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED

    other = first_message(server, "reader", "other", "rg-2")
    assert other.error().code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED

    admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("reader")})
    # READ implies DESCRIBE; a DENY of READ alone (pre-secret's) leaves it described
    assert set(admin.list_topics(timeout=30).topics) == {"allowed", "pre-open", "pre-secret"}
    assert set(AdminClient({"bootstrap.servers": server.bootstrap, **plain("admin")})
               .list_topics(timeout=30).topics) >= set(TOPICS)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_group_without_read_is_refused(server, protocol):
    """Classic groups (JoinGroup) and KIP-848 ones (ConsumerGroupHeartbeat) alike."""
    message = first_message(server, "reader", "allowed", f"rg-{protocol}", protocol)
    assert message.error() is None and message.value() == b"allowed-value"
    message = first_message(server, "reader", "allowed", f"not-mine-{protocol}", protocol)
    assert message.error().code() == confluent_kafka.KafkaError.GROUP_AUTHORIZATION_FAILED


def test_kafka_python_sees_the_same_refusals(server):
    settings = kafka_python_plain("reader")
    producer = kafka.KafkaProducer(bootstrap_servers=server.bootstrap,
                                   enable_idempotence=False, **settings)
    try:
        with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
            producer.send("allowed", b"y").get(timeout=30)
    finally:
        producer.close(timeout=5)
    # idempotence needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679)
    producer = kafka.KafkaProducer(bootstrap_servers=server.bootstrap,
                                   enable_idempotence=True, **settings)
    try:
        with pytest.raises(kafka.errors.KafkaError, match="ClusterAuthorizationFailed"):
            producer.send("allowed", b"y").get(timeout=30)
    finally:
        producer.close(timeout=5)
    consumer = kafka.KafkaConsumer("allowed", bootstrap_servers=server.bootstrap,
                                   group_id="rg-kp", auto_offset_reset="earliest", **settings)
    try:
        records = poll_until(lambda: [r for batch in consumer.poll(timeout_ms=500).values()
                                      for r in batch], 1, 60, "kafka-python reads allowed")
        assert records[0].value == b"allowed-value"
    finally:
        consumer.close()


def test_a_literal_deny_wins_over_a_prefixed_allow(server):
    opened = first_message(server, "reader", "pre-open", "rg-pre-open")
    assert opened.error() is None and opened.value() == b"pre-open-value"
    secret = first_message(server, "reader", "pre-secret", "rg-pre-secret")
    assert secret.error().code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_admin_client_creates_describes_and_deletes_acls_and_they_survive_a_restart(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("admin")})
    write = AclBinding(ResourceType.TOPIC, "other", ResourcePatternType.LITERAL,
                       "User:writer", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([write]).values():
        future.result(30)
    writers = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                               "User:writer", None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(writers).result(30) == [write]
    assert isinstance(delivery(server, "writer", "other"), confluent_kafka.Message)
    refused = delivery(server, "writer", "allowed")
    assert refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED

    # only a principal with ALTER on the cluster changes ACLs
    reader_admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("reader")})
    with pytest.raises(confluent_kafka.KafkaException) as failed:
        for future in reader_admin.create_acls([write]).values():
            future.result(30)
    assert failed.value.args[0].code() == confluent_kafka.KafkaError.CLUSTER_AUTHORIZATION_FAILED

    server.restart()  # users and ACLs are in the catalog
    admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("admin")})
    assert admin.describe_acls(writers).result(30) == [write]
    assert isinstance(delivery(server, "writer", "other"), confluent_kafka.Message)
    message = first_message(server, "reader", "allowed", "rg-restarted")
    assert message.value() == b"allowed-value"

    deleted = [future.result(30) for future in admin.delete_acls([writers]).values()]
    assert deleted == [[write]]
    assert admin.describe_acls(writers).result(30) == []
    refused = delivery(server, "writer", "other")
    assert refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_without_an_authorizer_the_acl_apis_are_security_disabled(tmp_path):
    """kafka-python's admin client raises the code (librdkafka 2.x hands back an empty
    list for DescribeAcls' top-level error)."""
    with ServerProcess.start(str(tmp_path / "data")) as unsecured:
        admin = kafka.KafkaAdminClient(bootstrap_servers=unsecured.bootstrap)
        try:
            with pytest.raises(kafka.errors.SecurityDisabledError):
                admin.describe_acls(kafka.admin.ACLFilter(
                    principal=None, host="*", operation=kafka.admin.ACLOperation.ANY,
                    permission_type=kafka.admin.ACLPermissionType.ANY,
                    resource_pattern=kafka.admin.ResourcePatternFilter(
                        kafka.admin.ResourceType.ANY, None,
                        kafka.admin.ACLResourcePatternType.ANY)))
        finally:
            admin.close()


def eventstore_acls(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*eventstore_command(), "acls", *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_acls_cli_offline_on_a_data_directory(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    eventstore_acls("add", "--allow-principal", "User:alice", "--operation", "read",
                    "--operation", "WRITE", "--topic", "orders", *data)
    eventstore_acls("add", "--deny-principal", "User:bob", "--operation", "ALL", "--group",
                    "app-", "--resource-pattern-type", "prefixed", *data)
    listed = json.loads(eventstore_acls("list", "--json", *data).stdout)
    assert {(row["principal"], row["permission"], row["operation"], row["resource_type"],
             row["pattern_type"], row["name"]) for row in listed} == {
        ("User:alice", "ALLOW", "READ", "TOPIC", "LITERAL", "orders"),
        ("User:alice", "ALLOW", "WRITE", "TOPIC", "LITERAL", "orders"),
        ("User:bob", "DENY", "ALL", "GROUP", "PREFIXED", "app-")}
    assert "Removed 1 ACL(s)." in eventstore_acls(
        "remove", "--allow-principal", "User:alice", "--operation", "WRITE", *data).stdout
    with AclStore.open(data[1], readonly=True) as store:
        assert {(b.principal, b.operation) for b in store.bindings()} == {
            ("User:alice", acl.Operation.READ), ("User:bob", acl.Operation.ALL)}


def test_acls_cli_through_the_server_as_a_super_user(server, tmp_path):
    config = tmp_path / "admin.properties"
    config.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                      f"sasl.username=admin\nsasl.password={PASSWORDS['admin']}\n")
    wire = ["--bootstrap-server", server.bootstrap, "--command-config", str(config)]
    eventstore_acls("add", "--allow-principal", "User:writer", "--operation", "WRITE",
                    "--topic", "pre-", "--resource-pattern-type", "prefixed", *wire)
    listed = json.loads(eventstore_acls("list", "--json", "--principal", "User:writer",
                                        *wire).stdout)
    assert [(row["operation"], row["pattern_type"], row["name"]) for row in listed] == [
        ("WRITE", "PREFIXED", "pre-")]
    assert isinstance(delivery(server, "writer", "pre-open"), confluent_kafka.Message)
    assert "Removed 1 ACL(s)." in eventstore_acls(
        "remove", "--allow-principal", "User:writer", "--topic", "pre-",
        "--resource-pattern-type", "prefixed", *wire).stdout
    refused = delivery(server, "writer", "pre-open")
    assert refused.code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_admin_apis_need_their_operations(server):
    """CreateTopics needs CREATE, DeleteTopics DELETE, DescribeConfigs DESCRIBE_CONFIGS
    (the reader has none of them), answered per topic with TOPIC_AUTHORIZATION_FAILED."""
    admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("reader")})
    failed = confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
    for futures in (admin.create_topics([NewTopic("readers-own", 1)]),
                    admin.delete_topics(["allowed"]),
                    admin.describe_configs([confluent_kafka.admin.ConfigResource(
                        confluent_kafka.admin.ResourceType.TOPIC, "allowed")])):
        with pytest.raises(confluent_kafka.KafkaException) as refused:
            for future in futures.values():
                future.result(30)
        assert refused.value.args[0].code() == failed
    assert "allowed" in AdminClient({"bootstrap.servers": server.bootstrap,
                                     **plain("admin")}).list_topics(timeout=30).topics


def test_authorized_operations_are_the_principals(server):
    """KIP-430: a topic's authorized operations (confluent-kafka's describe_topics) are
    those the principal's ACLs allow, READ implying DESCRIBE."""
    admin = AdminClient({"bootstrap.servers": server.bootstrap, **plain("reader")})
    described = admin.describe_topics(
        confluent_kafka.TopicCollection(["allowed"]),
        include_authorized_operations=True)["allowed"].result(30)
    assert set(described.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
