"""Making the planned topics exist on the target, through confluent-kafka's AdminClient.

Only Kafka APIs (Metadata, DescribeConfigs, CreateTopics, CreatePartitions), so a Kafka
cluster serves as well as an eventstore. A refusal is raised as MirrorError with the
target's own words, never skipped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from eventstore.mirror.plan import Selection, TopicChange, TopicPlan, changes, plan_topics

TIMEOUT_S = 30.0


class MirrorError(Exception):
    """A failure the mirror reports as one line and a non-zero exit."""


def reach(settings: Mapping[str, str], side: str) -> AdminClient:
    """An admin client of the cluster ``settings`` name, once it answered a Metadata request;
    MirrorError as soon as the client finds every broker down (refused, unresolved,
    failed TLS or SASL: the client's own words), rather than after a request's timeout."""
    errors: dict[int, KafkaError] = {}  # the newest of each kind, as the client gives them
    admin = AdminClient({**settings, "error_cb": lambda e: errors.__setitem__(e.code(), e)})
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            admin.list_topics(timeout=0.5)
            return admin
        except KafkaException:
            admin.poll(0)  # the client's errors, to error_cb
        down = errors.pop(KafkaError._ALL_BROKERS_DOWN, None)
        if down or time.monotonic() > deadline:
            why = next((e.str() for e in errors.values()), f"no answer in {TIMEOUT_S:g} s")
            raise MirrorError(f"cannot reach the {side} cluster at"
                              f" {settings.get('bootstrap.servers')}: {why}")


def partition_counts(admin: AdminClient) -> dict[str, int]:
    """Every topic of a cluster with its partition count."""
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as error:
        raise MirrorError(f"cannot list the topics: {error.args[0].str()}") from error
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()
            if topic.error is None}


def topic_configs(admin: AdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """The configs of ``topics`` set on the topic itself (not the cluster's defaults)."""
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
    out: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources).items():
        entries = answer(future, f"cannot read the configs of {resource.name}")
        out[resource.name] = {key: entry.value for key, entry in entries.items()
                              if not entry.is_default and entry.value is not None}
    return out


def source_plan(source: AdminClient, selection: Selection, prefix: str
                ) -> tuple[TopicPlan, ...]:
    """The plans of the selected source topics, with their carried configs."""
    counts = partition_counts(source)
    wanted = sorted(name for name in counts if selection.wants(name))
    return plan_topics(counts, topic_configs(source, wanted), selection, prefix)


def apply(target: AdminClient, plans: tuple[TopicPlan, ...], replication_factor: int
          ) -> tuple[TopicChange, ...]:
    """Create the missing topics and add the missing partitions on the target; the changes
    made. ``replication_factor`` -1 takes the target's default."""
    todo = changes(plans, partition_counts(target))
    new = [NewTopic(change.plan.target, change.plan.partitions, replication_factor,
                    config=dict(change.plan.configs))
           for change in todo if change.create]
    if new:
        for name, future in target.create_topics(new, request_timeout=TIMEOUT_S).items():
            answer(future, f"the target refused to create topic {name}",
                    ok=("TOPIC_ALREADY_EXISTS",))
    grow = [NewPartitions(change.plan.target, change.plan.partitions)
            for change in todo if change.add_partitions]
    if grow:
        for name, future in target.create_partitions(grow, request_timeout=TIMEOUT_S).items():
            answer(future, f"the target refused to add partitions to {name}")
    return todo


def answer(future: object, what: str, ok: tuple[str, ...] = ()) -> Mapping:
    """What ``future`` holds; a refusal as MirrorError saying ``what`` (an error named in
    ``ok`` as an empty answer)."""
    try:
        return future.result()  # type: ignore[attr-defined]
    except KafkaException as exception:
        error = exception.args[0]
        if error.name() in ok:
            return {}
        raise MirrorError(f"{what}: {error.name()}: {error.str()}") from exception
