"""Talking to a running server with a real Kafka client (kafka-python), so every command
that takes ``--bootstrap-server`` goes through the Kafka protocol as any client would.

Connecting is bounded: the address is tried with a plain TCP connect first, for at most
``CONNECT_TIMEOUT_S``, so an unreachable server is one clear line instead of a client
library retrying for a minute. The client's own errors become eventstore's typed errors
(named as Kafka names them), and an API the server does not implement is said so plainly.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import kafka
import kafka.errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec, OffsetTimestamp
from kafka.structs import OffsetAndMetadata

from eventstore.cli.base import EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from eventstore.cli.details import GroupDetail, Member, PartitionDetail, TopicDetail
from eventstore.cli.partition_probe import PartitionProbe
from eventstore.errors import KafkaError, error_for_code

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_MS = 10_000
CLIENT_ID = "eventstore-cli"



def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CliError(f"--bootstrap-server {address!r} is not HOST:PORT", EXIT_USAGE)
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """CliError (exit 3) unless a TCP connection to ``address`` opens within the timeout."""
    host, port = _split_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise CliError(f"cannot reach the server at {address}: {reason}",
                       EXIT_UNAVAILABLE) from None


def client_config(address: str) -> dict[str, Any]:
    """Settings every kafka-python client of the command line shares."""
    return {
        "bootstrap_servers": address,
        "client_id": CLIENT_ID,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "bootstrap_timeout_ms": int(CONNECT_TIMEOUT_S * 1000),
        "reconnect_backoff_max_ms": 1000,
    }


def _quiet_client_logs() -> None:
    """kafka-python logs every retry at WARNING; the command reports the outcome itself."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def broker_error(code: int, message: str | None = None) -> KafkaError:
    """The typed error for a broker's error code; the server's message already starts with
    the error's name, which is not repeated."""
    error = error_for_code(code)
    text = message or ""
    prefix = f"{error.name}: "
    return error_for_code(code, text[len(prefix):] if text.startswith(prefix) else text)


@contextlib.contextmanager
def wire_errors(address: str) -> Iterator[None]:
    """kafka-python's exceptions as eventstore's one-line errors."""
    try:
        yield
    except kafka_errors.IncompatibleBrokerVersion as exc:
        api = str(exc).split("'")[1] if str(exc).count("'") >= 2 else str(exc)
        raise CliError(f"the server at {address} does not support {api.removesuffix('Request')}"
                       " (not implemented by this server)") from None
    except kafka_errors.BrokerResponseError as exc:
        raise broker_error(exc.errno, _server_message(exc)) from None
    except (kafka_errors.KafkaConnectionError,
            kafka_errors.KafkaTimeoutError) as exc:
        raise CliError(f"the server at {address} did not answer: {type(exc).__name__}",
                       EXIT_UNAVAILABLE) from None
    except kafka_errors.KafkaError as exc:  # client-side: a commit after a rebalance, ...
        raise CliError(_client_error(exc)) from None
    except OSError as exc:  # a partition probe's connection (see probe())
        raise CliError(f"the server at {address} did not answer: {exc.strerror or exc}",
                       EXIT_UNAVAILABLE) from None


def _server_message(exc: kafka_errors.BrokerResponseError) -> str:
    """What the server said with the error code (a Produce answer's error_message, which
    kafka-python passes as the exception's argument), else kafka-python's generic text."""
    said = exc.args[0] if exc.args else None
    return said if isinstance(said, str) and said else getattr(exc, "description", "")


def _client_error(exc: Exception) -> str:
    """One line for an error kafka-python raised itself, named once (its text often starts
    with its class name already)."""
    text = str(exc)
    if "InitProducerId" in text:
        # the answer carries no message: the server's log says why (a full disk, ...)
        return ("the server could not hand out a producer id (InitProducerId failed:"
                f" {text.rsplit(': ', 1)[-1]}); its log says why")
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def admin_client(address: str, **settings: Any) -> Any:
    """A connected KafkaAdminClient (reachability checked first); ``settings`` add to the
    shared ones (TLS and SASL, see client_security.py)."""
    check_reachable(address)
    _quiet_client_logs()
    with wire_errors(address):
        return kafka.KafkaAdminClient(**client_config(address), **settings)


def producer(address: str, **settings: Any) -> Any:
    """An idempotent KafkaProducer (kafka-python's default) waiting for acks=all."""
    check_reachable(address)
    _quiet_client_logs()
    with wire_errors(address):
        return kafka.KafkaProducer(**client_config(address), acks="all", **settings)


def consumer(address: str, **settings: Any) -> Any:
    """A KafkaConsumer that commits only when told (the command commits what it printed)."""
    check_reachable(address)
    _quiet_client_logs()
    with wire_errors(address):
        return kafka.KafkaConsumer(**client_config(address), enable_auto_commit=False,
                                   **settings)


def probe(address: str) -> PartitionProbe:
    """A connection asking the server what it answers for single partitions (see
    :mod:`eventstore.cli.partition_probe`); its OSErrors become CliErrors (exit 3) in
    :func:`wire_errors`."""
    host, port = _split_address(address)
    return PartitionProbe(host, port, REQUEST_TIMEOUT_MS / 1000, CLIENT_ID)


def topic_partition(topic: str, partition: int) -> Any:
    return kafka.TopicPartition(topic, partition)


def _check_results(entries: Any) -> None:
    """Raise the first per-topic error of an admin response (entries are dicts or structs)."""
    for entry in entries:
        field = entry.get if isinstance(entry, dict) else lambda name, e=entry: getattr(e, name)
        if field("error_code"):
            raise broker_error(field("error_code"), field("error_message"))


UNKNOWN_TOPIC = kafka_errors.UnknownTopicOrPartitionError.errno


def offline_problem(code: int) -> str:
    """What ``topics describe`` says of a partition Metadata answered with ``code``."""
    name = kafka_errors.for_code(code).message
    return (f"offline: the server answered {name} for it (its log, or `eventstore verify`"
            " on its data directory, says why)")


def _topic_detail(name: str, errors: Mapping[int, int], starts: Mapping[tuple[str, int], int],
                  ends: Mapping[tuple[str, int], int], sizes: Mapping[tuple[str, int], int],
                  config: Mapping[str, Any]) -> TopicDetail:
    """One topic's detail from the batched answers; ``errors``: partition -> Metadata's
    error code for it (an offline partition's offsets are -1, its size unknown)."""
    return TopicDetail(
        name,
        tuple(PartitionDetail(name, p, starts.get((name, p), -1), ends.get((name, p), -1),
                              bytes=None if code else sizes.get((name, p)),
                              problem=offline_problem(code) if code else None)
              for p, code in sorted(errors.items())),
        {key: entry["value"] for key, entry in sorted(config.items())},
        {key: entry["value"] for key, entry in sorted(config.items())
         if entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"},
    )


# kafka-python 3 reports each resource of an AlterConfigs answer as "OK" or as the text of
# the error it stands for: "[Error 40] InvalidConfigurationError: <the server's message>".
_CONFIG_ERROR = re.compile(r"\[Error (-?\d+)\] \w+: (.*)", re.DOTALL)


def _check_config_result(result: Any) -> None:
    """Raise the error a resource's AlterConfigs result names (kafka-python 2 gave an
    error object, 3 gives its text); "OK" and no error pass."""
    if isinstance(result, str):
        if result == "OK":
            return
        found = _CONFIG_ERROR.fullmatch(result)
        if found is None:
            raise CliError(f"the server refused the change: {result}")
        raise broker_error(int(found.group(1)), found.group(2))
    if getattr(result, "errno", 0):
        raise broker_error(result.errno, getattr(result, "description", ""))


# What a refused DeleteGroups means, said as the data-directory path says it.
_DELETE_GROUP_REFUSALS = {
    kafka_errors.GroupIdNotFoundError.errno: " does not exist",
    kafka_errors.NonEmptyGroupError.errno: " has active members: stop them first",
}


class WireCluster:
    """Topic and group administration through a server's Kafka protocol."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._admin = admin_client(address)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return wire_errors(self.address)

    # -- topics -----------------------------------------------------------------------------

    def list_topics(self) -> list[tuple[str, int]]:
        with self._errors():
            described = self._admin.describe_topics()
        return sorted((t["name"], len(t["partitions"])) for t in described if not t["error_code"])

    def _partition_count(self, name: str) -> int:
        with self._errors():
            (described,) = self._admin.describe_topics([name])
        if described["error_code"]:
            raise broker_error(described["error_code"], f"topic {name!r} does not exist")
        return len(described["partitions"])

    def describe_topic(self, name: str) -> TopicDetail:
        (described,) = self.describe_topics([name])
        return described

    def describe_topics(self, names: Sequence[str] | None) -> list[TopicDetail]:
        """The topics named (every topic when None) in the same few requests however many
        there are: one Metadata, one ListOffsets for each end of the online partitions, one
        DescribeConfigs and one DescribeLogDirs. A partition the server reports offline
        (KAFKA_STORAGE_ERROR in Metadata, with no leader to ask) is described as offline,
        its offsets unknown (-1)."""
        with self._errors():
            described = self._admin.describe_topics(None if names is None else list(names))
        found = {t["name"]: t for t in described}
        if names is None:
            topics = [found[n] for n in sorted(found) if not found[n]["error_code"]]
        else:
            topics = [found.get(n, {"name": n, "error_code": UNKNOWN_TOPIC}) for n in names]
        for topic in topics:
            if topic["error_code"]:
                raise broker_error(topic["error_code"], f"topic {topic['name']!r} does not exist"
                                   if topic["error_code"] == UNKNOWN_TOPIC else topic["name"])
        errors = {t["name"]: {p["partition_index"]: p["error_code"] for p in t["partitions"]}
                  for t in topics}
        online = [topic_partition(name, p) for name, codes in errors.items()
                  for p, code in codes.items() if not code]
        with self._errors():
            starts = self._offsets(online, OffsetSpec.EARLIEST)
            ends = self._offsets(online, OffsetSpec.LATEST)
            configs = self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t["name"]) for t in topics],
                config_filter="All")["topic"] if topics else {}
            sizes = {
                (topic["name"], p["partition_index"]): p["partition_size"]
                for broker in self._admin.describe_log_dirs(
                    {t["name"]: [p["partition_index"] for p in t["partitions"]] for t in topics})
                for log_dir in broker["log_dirs"]
                for topic in log_dir["topics"]
                for p in topic["partitions"]
            } if topics else {}
        return [_topic_detail(t["name"], errors[t["name"]], starts, ends, sizes,
                              configs[t["name"]]) for t in topics]

    def _offsets(self, tps: list[Any], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset ``spec`` names, in one ListOffsets request."""
        if not tps:
            return {}
        listed = self._admin.list_partition_offsets(dict.fromkeys(tps, spec))
        return {(tp.topic, tp.partition): found.offset for tp, found in listed.items()}

    def create_topic(self, name: str, partitions: int | None, config: Mapping[str, str]) -> None:
        count = -1 if partitions is None else partitions  # 0 is the server's to refuse
        spec = {"num_partitions": count, "replication_factor": -1, "configs": dict(config)}
        with self._errors():
            response = self._admin.create_topics({name: spec}, raise_errors=False)
        _check_results(response["topics"])

    def alter_topic(self, name: str, partitions: int | None,
                    config: Mapping[str, str | None]) -> None:
        self._partition_count(name)  # UnknownTopicOrPartition before anything changes
        with self._errors():
            if config:
                changes = {k: ("SET", v) if v is not None else ("DELETE", None)
                           for k, v in config.items()}
                resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=changes)
                results = self._admin.alter_configs([resource], raise_on_unknown=False)
                _check_config_result(results["topic"][name])
            if partitions is not None:
                response = self._admin.create_partitions({name: partitions}, raise_errors=False)
                _check_results(response.results)

    def delete_topic(self, name: str) -> None:
        with self._errors():
            response = self._admin.delete_topics([name], raise_errors=False)
        _check_results(response["topics"])

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int | None:
        tp = topic_partition(topic, partition)
        with self._errors():
            found = self._admin.list_partition_offsets({tp: OffsetTimestamp(timestamp_ms)})
        offset = found[tp].offset
        return None if offset < 0 else offset

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str]]:
        with self._errors():
            groups = self._admin.list_groups()
        return sorted((g["group_id"], g["group_state"]) for g in groups)

    def describe_group(self, group_id: str) -> GroupDetail:
        with self._errors():
            described = self._admin.describe_groups([group_id])[group_id]
            committed = self._admin.list_group_offsets({group_id: None})[group_id]
        members = tuple(
            Member(m["member_id"], m["client_id"], m["client_host"], tuple(
                (a["topic"], p)
                for a in (m["member_assignment"] or {}).get("assigned_partitions", ())
                for p in a["partitions"]), m.get("group_instance_id"))
            for m in described["members"]
        )
        return GroupDetail(group_id, described["group_state"], members, {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in committed.items() if meta.offset >= 0
        }, described.get("protocol_data") or "", *self._group_epochs(group_id))

    def _group_epochs(self, group_id: str) -> tuple[int, int] | tuple[None, None]:
        """A ``consumer`` group's epochs through ConsumerGroupDescribe, which DescribeGroups
        lacks; (None, None) for a classic group, or from a server that closes the
        connection at the request (Kafka before 3.7 has no API 69)."""
        with self._errors():
            connection = probe(self.address)
            try:
                return connection.group_epochs(group_id) or (None, None)
            except ConnectionError:
                return None, None
            finally:
                connection.close()

    def commit_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        with self._errors():
            results = self._admin.alter_group_offsets(group_id, {
                topic_partition(*tp): OffsetAndMetadata(offset, "", -1)
                for tp, offset in offsets.items()
            })
        for error in results.values():
            if error.errno:
                raise broker_error(error.errno, f"group {group_id!r}: {error.description}")

    def delete_group(self, group_id: str) -> None:
        with self._errors():
            results = self._admin.delete_groups([group_id])
        outcome = results[group_id]  # "OK" or the name of kafka-python's error class
        if outcome != "OK":
            error = getattr(kafka_errors, outcome, kafka_errors.UnknownError)
            why = _DELETE_GROUP_REFUSALS.get(error.errno, "")
            raise broker_error(error.errno, f"consumer group {group_id!r}{why}")

    def close(self) -> None:
        self._admin.close()

