"""`eventstore mirror` (issue 22): the topic plan and the offset map as plain logic, and
copies between two real `eventstore serve` processes (the target used only through Kafka
APIs) with confluent-kafka as producer, reader and group member: records, a source with gaps
(retention, transactions) and consumer groups resuming on the target. The SIGKILL loop is in
tests/test_mirror_crash.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from rich.console import Console
from support import eventstore_command, wait_until

from eventstore.mirror.groups import GroupSync, translate_commits
from eventstore.mirror.offset_map import PartitionMap, Run, decode, resume
from eventstore.mirror.plan import Selection, TopicPlan, changes, plan_topics
from eventstore.mirror.session import Report
from eventstore.mirror.view import Rate, render
from eventstore.security.scram import make_credential
from eventstore.storage.compaction import cleaning_status
from eventstore.storage.credentials import CredentialStore


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


def _copy(position: PartitionMap, *offsets: int) -> PartitionMap:
    for offset in offsets:
        position = position.copied(offset)
    return position


def test_offset_map_runs_translate_commits_through_gaps():
    # source 4..6 copied to target 0..2, a gap (a marker at 7), 8..9 to 3..4, read up to 12
    position = _copy(PartitionMap(4, 0), 4, 5, 6, 8, 9).passed(12)
    assert position == PartitionMap(12, 5, (Run(4, 0), Run(8, 3)))
    assert [position.translate(c) for c in (0, 4, 6, 7, 8, 9, 10, 12, 13)] == [
        0, 0, 2, 3, 3, 4, 5, 5, None]
    assert decode(position.target_next, position.encode()) == position


def test_offset_map_checkpoint_keeps_the_newest_runs_that_fit():
    position = _copy(PartitionMap(0, 0), *range(0, 4000, 2))
    kept = decode(position.target_next, position.encode())
    assert len(position.encode()) <= 3000 and kept.runs == position.runs[-len(kept.runs):]
    assert kept.translate(0) == kept.runs[0].target  # older than kept: read again, not lost
    assert resume(kept, position.target_next + 3) == 3
    with pytest.raises(ValueError, match="before the 2000 records"):
        resume(kept, 10)


def test_group_commits_go_forwards_only():
    maps = {("a", 0): PartitionMap(10, 20, (Run(0, 10),)), ("a", 1): PartitionMap(3, 3)}
    todo, pending = translate_commits({("a", 0): 5, ("a", 1): 7, ("b", 0): 1}, maps,
                                      {"a": "es.a"}, {("es.a", 0): 14})
    assert (todo, pending) == ({("es.a", 0): 15}, 1)
    assert translate_commits({("a", 0): 3}, maps, {"a": "es.a"}, {("es.a", 0): 14}) == ({}, 0)


def test_live_view_renders_lag_rate_groups_and_last_error():
    state = Report(1500, {("orders", 0): 0, ("orders", 1): 70, ("clicks", 0): 3},
                   GroupSync(4, 0, ("billing",)), "Broker: Not enough replicas")
    console = Console(record=True, width=100, color_system=None)
    console.print(render(state, 250.4))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines[0] == ("mirror 1,500 records copied, 250 records/s, 73 behind, 4 group"
                        " offsets committed")
    assert [line.split() for line in lines[1:5]] == [
        ["TOPIC", "PARTITION", "LAG"], ["orders", "1", "70"], ["clicks", "0", "3"],
        ["orders", "0", "0"]]
    assert lines[5:] == ["left alone (active on the target): billing",
                         "last error: Broker: Not enough replicas"]
    rate = Rate()
    assert (rate.update(100, 10.0), rate.update(600, 12.0), rate.update(600, 12.0)) == (
        0.0, 250.0, 250.0)


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


def _mirror(source, target, *flags: str) -> subprocess.CompletedProcess:
    """`eventstore mirror` from server ``source`` to server ``target`` with ``flags``, run
    to its exit."""
    return subprocess.run(
        [*eventstore_command(), "mirror", "--source-bootstrap-server", source.bootstrap,
         "--target-bootstrap-server", target.bootstrap, *flags],
        capture_output=True, text=True, timeout=120)


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

    done = _mirror(source, target, "--exclude", "skip.*", "--prefix", "es.",
                   "--compression", "zstd", "--until-caught-up")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Mirrored 2000 records (caught up)."]

    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    topics = target_admin.list_topics(timeout=10).topics
    assert "es.skipped" not in topics and len(topics["es.orders"].partitions) == 4
    (configs,) = target_admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "es.orders")]).values()
    assert configs.result()["retention.ms"].value == "86400000"
    assert _read_all(target.bootstrap, "es.orders", 4) == _read_all(
        source.bootstrap, "orders", 4)


def _records_from(bootstrap: str, topic: str, partition: int, offset: int) -> list[tuple]:
    """The committed records of one partition from ``offset`` to its end (key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, partition, offset)])
    out = []
    while (message := consumer.poll(10)) is not None and message.error() is None:
        out.append((message.key(), message.value()))
    consumer.close()
    assert message is not None, "the partition was not read to its end"
    return out


def _group_resumes(bootstrap: str, group: str, topic: str, partitions: int
                   ) -> dict[int, list[tuple]]:
    """What a member of ``group`` reads on ``topic`` from the group's committed offsets."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "latest", "enable.partition.eof": True})
    consumer.subscribe([topic])
    out: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
    ended: set[int] = set()
    while len(ended) < partitions:
        message = consumer.poll(10)
        assert message is not None, f"group {group} read nothing more"
        if message.error() is not None:
            ended.add(message.partition())
        else:
            out[message.partition()].append((message.key(), message.value()))
    consumer.close()
    return out


def test_gaps_in_the_source_and_groups_resuming_on_the_target(serve):
    """Retention moved partition 0's log start, transactions (markers, an aborted one) left
    gaps in partition 1: the target starts at the first record there is, holds only the
    committed records, and a group committed on the source resumes at the same records."""
    source, target = serve(), serve()
    admin = AdminClient({"bootstrap.servers": source.bootstrap})
    admin.create_topics([NewTopic("events", 2)])["events"].result()
    plain = Producer({"bootstrap.servers": source.bootstrap})
    for i in range(10):
        plain.produce("events", key=b"p%d" % i, value=b"plain-%d" % i, partition=0)
    assert plain.flush(30) == 0
    (deleted,) = admin.delete_records([TopicPartition("events", 0, 4)]).values()
    deleted.result()
    txn = Producer({"bootstrap.servers": source.bootstrap, "transactional.id": "gaps"})
    txn.init_transactions(30)
    for n, commit in enumerate((True, False, True, True)):
        txn.begin_transaction()
        for i in range(5):
            txn.produce("events", key=b"t%d" % n, value=b"txn-%d-%d" % (n, i), partition=1)
        (txn.commit_transaction if commit else txn.abort_transaction)(30)
    app = Consumer({"bootstrap.servers": source.bootstrap, "group.id": "app"})
    app.commit(offsets=[TopicPartition("events", 0, 7), TopicPartition("events", 1, 14)],
               asynchronous=False)
    app.close()

    done = _mirror(source, target, "--until-caught-up", "--watch")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Mirrored 21 records (caught up)."]
    view = [line.split() for line in done.stderr.splitlines() if not line.startswith("%")]
    assert ["TOPIC", "PARTITION", "LAG"] in view and ["events", "0", "0"] in view, view
    for p in (0, 1):
        assert _records_from(target.bootstrap, "events", p, 0) == _records_from(
            source.bootstrap, "events", p, 0)
    probe = Consumer({"bootstrap.servers": target.bootstrap, "group.id": "probe"})
    assert [probe.get_watermark_offsets(TopicPartition("events", p), timeout=10)
            for p in (0, 1)] == [(0, 6), (0, 15)]
    probe.close()
    # partition 0: source 7 is target 3; partition 1: source 14, the third record of the
    # third transaction, is target 7 (a marker, an aborted transaction and its marker less)
    assert _group_resumes(target.bootstrap, "app", "events", 2) == {
        0: _records_from(source.bootstrap, "events", 0, 7),
        1: _records_from(source.bootstrap, "events", 1, 14)}


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return {name: float(value) for name, _, value in
            (line.rpartition(" ") for line in text.splitlines() if not line.startswith("#"))}


def _fill(bootstrap: str, topic: str, partitions: int, records: int) -> AdminClient:
    """A topic of ``partitions`` on ``bootstrap`` holding ``records`` values b"0", b"1", ...
    round the partitions; the admin client that made it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(records):
        producer.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert producer.flush(30) == 0
    return admin


def test_continuous_mirror_follows_new_partitions_leaves_active_groups_and_stops(serve):
    """A continuous mirror with metrics: partitions added to the source later are added on
    the target and copied; a group with a member on the target is left alone while an idle
    one gets its offsets; SIGTERM stops it with exit 0."""
    source, target = serve(), serve()
    admin = _fill(source.bootstrap, "live", 2, 100)
    for group in ("idle", "busy"):
        committer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group})
        committer.commit(offsets=[TopicPartition("live", 0, 30)], asynchronous=False)
        committer.close()
    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    target_admin.create_topics([NewTopic("other", 1)])["other"].result()
    member = Consumer({"bootstrap.servers": target.bootstrap, "group.id": "busy"})
    member.subscribe(["other"])
    wait_until(lambda: member.poll(0.2) is None and member.assignment(), 30,
               "the busy group's member on the target")

    mirror = subprocess.Popen(
        [*eventstore_command(), "mirror", "--source-bootstrap-server", source.bootstrap,
         "--target-bootstrap-server", target.bootstrap, "--topics", "live",
         "--metrics-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = mirror.stderr.readline()
        assert line.startswith("mirror: metrics on http://"), line
        url = line.split(" on ", 1)[1].strip()
        lag = 'eventstore_mirror_lag{partition="%d",topic="live"}'
        wait_until(lambda: _metrics(url).get("eventstore_mirror_records_total") == 100
                   and _metrics(url).get(lag % 1) == 0, 60, "100 records copied")
        admin.create_partitions([NewPartitions("live", 3)])["live"].result()
        producer = Producer({"bootstrap.servers": source.bootstrap})
        for i in range(10):
            producer.produce("live", value=b"new-%d" % i, partition=2)
        assert producer.flush(30) == 0
        wait_until(lambda: _metrics(url).get("eventstore_mirror_records_total") == 110
                   and _metrics(url).get(lag % 2) == 0, 60, "the new partition copied")
        assert _records_from(target.bootstrap, "live", 2, 0) == _records_from(
            source.bootstrap, "live", 2, 0)
        idle = ConsumerGroupTopicPartitions("idle", [TopicPartition("live", 0)])
        (offsets,) = target_admin.list_consumer_group_offsets([idle]).values()
        assert [tp.offset for tp in offsets.result().topic_partitions] == [30]
        busy = ConsumerGroupTopicPartitions("busy", [TopicPartition("live", 0)])
        (offsets,) = target_admin.list_consumer_group_offsets([busy]).values()
        assert [tp.offset for tp in offsets.result().topic_partitions] == [-1001]
    finally:
        mirror.send_signal(signal.SIGTERM)
        out, err = mirror.communicate(timeout=60)
        member.close()
    assert mirror.returncode == 0
    assert out.splitlines() == ["Mirrored 110 records."], err


def test_a_refusing_target_is_one_line_and_exit_1_and_status_shows_the_lag(serve):
    source, target = serve(), serve()
    _fill(source.bootstrap, "orders", 2, 30)
    producer = Producer({"bootstrap.servers": source.bootstrap})
    refused = _mirror(source, target, "--replication-factor", "3", "--until-caught-up")
    assert refused.returncode == 1
    lines = [line for line in refused.stderr.splitlines() if not line.startswith("%")]
    assert len(lines) == 1 and "the target refused to create topic orders:" in lines[0]
    assert "INVALID_REPLICATION_FACTOR" in lines[0]

    done = _mirror(source, target, "--until-caught-up")
    assert done.returncode == 0, done.stderr
    for _ in range(5):
        producer.produce("orders", value=b"more", partition=1)
    assert producer.flush(30) == 0
    status = _mirror(source, target, "--status")
    assert status.returncode == 0, status.stderr
    assert [line.split() for line in status.stdout.splitlines()] == [
        ["TOPIC", "PARTITION", "TARGET-TOPIC", "SOURCE-END", "MIRRORED", "LAG"],
        ["orders", "0", "orders", "15", "15", "0"],
        ["orders", "1", "orders", "20", "15", "5"]]


def test_a_compacted_source_topic_and_a_group_committed_in_a_gap(serve):
    """The cleaner removed older values of each key (gaps in the offsets): the target gets
    the records that are left, in order, as a compacted topic; a group committed at an
    offset the cleaner removed resumes on the target at the next record there is."""
    source = serve(settings={"log.cleaner.backoff.ms": 50})
    target = serve()
    admin = AdminClient({"bootstrap.servers": source.bootstrap})
    admin.create_topics([NewTopic("table", 1, config={
        "cleanup.policy": "compact", "segment.bytes": "1024",
        "min.cleanable.dirty.ratio": "0.01"})])["table"].result()
    producer = Producer({"bootstrap.servers": source.bootstrap, "linger.ms": 1,
                         "batch.num.messages": 10})
    for i in range(300):
        producer.produce("table", key=b"user-%d" % (i % 8), value=b"value-%d" % i)
    assert producer.flush(30) == 0
    wait_until(lambda: cleaning_status(f"{source.data_dir}/table-0").runs >= 1, 60,
               "a cleaning of table-0")
    kept = [offset for offset, _ in _offsets_and_records(source.bootstrap, "table")]
    assert len(kept) < 300
    gap = max(o for o in range(kept[-1]) if o not in kept)  # the last removed offset
    app = Consumer({"bootstrap.servers": source.bootstrap, "group.id": "app"})
    app.commit(offsets=[TopicPartition("table", 0, gap)], asynchronous=False)
    app.close()

    done = _mirror(source, target, "--until-caught-up")
    assert done.returncode == 0, done.stderr
    assert _records_from(target.bootstrap, "table", 0, 0) == _records_from(
        source.bootstrap, "table", 0, 0)
    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    (configs,) = target_admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "table")]).values()
    assert configs.result()["cleanup.policy"].value == "compact"
    assert _group_resumes(target.bootstrap, "app", "table", 1) == {
        0: _records_from(source.bootstrap, "table", 0, gap)}


def _offsets_and_records(bootstrap: str, topic: str) -> list[tuple[int, tuple]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    while (message := consumer.poll(10)) is not None and message.error() is None:
        out.append((message.offset(), (message.key(), message.value())))
    consumer.close()
    return out


def _closed_port() -> str:
    """HOST:PORT of a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_target_is_one_line_or_retries_saying_so(serve):
    """--until-caught-up: one line naming the target and why, exit 1, well before a request's
    timeout; continuous: a line saying it retries and in how long, again with the backoff
    doubled, until SIGTERM (exit 0)."""
    source = serve()
    _fill(source.bootstrap, "orders", 1, 3)
    target = _closed_port()
    command = [*eventstore_command(), "mirror", "--source-bootstrap-server", source.bootstrap,
               "--target-bootstrap-server", target]

    failed = subprocess.run([*command, "--until-caught-up"], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 1
    lines = [line for line in failed.stderr.splitlines() if not line.startswith("%")]
    assert len(lines) == 1 and lines[0].startswith(
        f"eventstore mirror: cannot reach the target cluster at {target}: "), lines
    assert "Connection refused" in lines[0]

    mirror = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        said = []
        while len(said) < 2:
            line = mirror.stderr.readline()
            assert line, f"the mirror ended: {said}"
            if line.startswith("mirror: "):
                said.append(line.strip())
    finally:
        mirror.send_signal(signal.SIGTERM)
        out, _ = mirror.communicate(timeout=60)
    assert [line.rpartition("; ")[2] for line in said] == ["retrying in 1 s",
                                                           "retrying in 2 s"]
    assert all(f"cannot reach the target cluster at {target}:" in line for line in said)
    assert mirror.returncode == 0 and out.splitlines() == ["Mirrored 0 records."]


def test_a_source_data_directory_mirrors_as_a_server_would(serve):
    """--source-data-dir reads the segments read-only beside the running server: the same
    topics, records (key, value, headers, timestamp, partition, order) and group offsets
    on the target as from the server; a topic written by transactions is refused in one
    line (its aborted records would be copied)."""
    source, target = serve(), serve()
    admin = AdminClient({"bootstrap.servers": source.bootstrap})
    admin.create_topics([NewTopic("orders", 3, config={"retention.ms": "86400000"})]
                        )["orders"].result()
    producer = Producer({"bootstrap.servers": source.bootstrap, "linger.ms": 5})
    for i in range(300):
        producer.produce("orders", key=b"k%d" % (i % 7), value=b"v%d" % i, partition=i % 3,
                         headers=[("n", b"%d" % i)], timestamp=1_700_000_000_000 + i)
    assert producer.flush(30) == 0
    app = Consumer({"bootstrap.servers": source.bootstrap, "group.id": "app"})
    app.commit(offsets=[TopicPartition("orders", 1, 40)], asynchronous=False)
    app.close()
    from_dir = [*eventstore_command(), "mirror", "--source-data-dir", str(source.data_dir),
                "--target-bootstrap-server", target.bootstrap]

    done = subprocess.run([*from_dir, "--until-caught-up"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Mirrored 300 records (caught up)."]
    assert _read_all(target.bootstrap, "orders", 3) == _read_all(source.bootstrap, "orders", 3)
    target_admin = AdminClient({"bootstrap.servers": target.bootstrap})
    (configs,) = target_admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "orders")]).values()
    assert configs.result()["retention.ms"].value == "86400000"
    resumed = _group_resumes(target.bootstrap, "app", "orders", 3)
    assert resumed[1] == _records_from(source.bootstrap, "orders", 1, 40)
    status = subprocess.run([*from_dir, "--status"], capture_output=True, text=True,
                            timeout=120)
    assert [line.split()[-1] for line in status.stdout.splitlines()] == ["LAG", "0", "0", "0"]

    txn = Producer({"bootstrap.servers": source.bootstrap, "transactional.id": "t"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce("payments", value=b"x")
    assert txn.flush(30) == 0
    txn.abort_transaction(30)
    refused = subprocess.run([*from_dir, "--topics", "payments", "--until-caught-up"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    lines = [line for line in refused.stderr.splitlines() if not line.startswith("%")]
    assert len(lines) == 1 and "payments-0:" in lines[0], lines
    assert "holds transactional batches" in lines[0]


def test_a_target_that_denies_the_mirror_is_one_line_and_exit_1(serve, tmp_path):
    """A target with an authorizer that gives the mirror's user no ACL (it may log in,
    nothing more): one line naming what was refused, exit 1, nothing made there."""
    data_dir = str(tmp_path / "secured")
    with CredentialStore.open(data_dir) as store:
        store.upsert("mirror", make_credential("SCRAM-SHA-256", "mirror-secret-pw"))
    target = serve(data_dir, settings={
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "PLAIN",
        "authorizer.class.name": "acl", "super.users": "User:admin"})
    source = serve()
    _fill(source.bootstrap, "orders", 2, 10)
    login = ["security.protocol=sasl_plaintext", "sasl.mechanism=PLAIN",
             "sasl.username=mirror", "sasl.password=mirror-secret-pw"]
    denied = _mirror(source, target, "--until-caught-up",
                     *[flag for setting in login for flag in ("--target-config", setting)])
    assert denied.returncode == 1
    lines = [line for line in denied.stderr.splitlines() if not line.startswith("%")]
    assert len(lines) == 1 and "AUTHORIZATION_FAILED" in lines[0], denied.stderr
    assert "Traceback" not in denied.stderr
    assert not [name for name in os.listdir(data_dir) if name.startswith("orders")]
