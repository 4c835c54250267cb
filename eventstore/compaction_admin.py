"""Running a cleaning (log compaction) of a topic's partitions now, on request.

Kafka has no API for it, so it is not on the Kafka listener. `eventstore compact` asks
for it on a data directory (through the embedded store, which holds the directory's lock)
or through a running server with an admin POST on the server's HTTP endpoint,
``POST /admin/compact?topic=T[&partition=P]``, answered only to clients on the server's own
host (loopback), since the endpoint has no login of its own. Both end in the log cleaner's
:meth:`~actors.cleaner.LogCleaner.clean_now`: the cleaning is prepared on a cleaner thread
and swapped in by the partition's actor, as the cleaner's own cleanings are.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from eventstore.config import TopicConfig
from eventstore.errors import (
    InvalidRequest,
    KafkaError,
    KafkaStorageError,
    PolicyViolation,
    UnknownTopicOrPartition,
)
from eventstore.storage.compaction import is_compacted

if TYPE_CHECKING:  # the CLI imports this module for its path: no actors loaded for that
    from actors.system import ActorSystem

log = logging.getLogger(__name__)

ADMIN_COMPACT_PATH = "/admin/compact"
# a cleaning is refused when the partition's chain changed while it ran (a roll,
# retention): it is asked again this many times before the refusal is the answer
ATTEMPTS = 5

StartResponse = Callable[..., Any]


def compact_now(system: ActorSystem, topic: str, partition: int | None) -> list[dict]:
    """Clean ``topic``'s partitions (or just ``partition``) now, one after the other;
    each one's result as ``eventstore compact`` prints it. The Kafka error of the first
    refusal (unknown topic or partition, a topic that is not compacted) ends it."""
    if system.broker is None or not system.cleaners:
        raise KafkaStorageError("the store is not running (starting or stopping): try again")
    described = system.broker.describe_topic(topic).get()
    config = TopicConfig.from_mapping(described.config)
    if not is_compacted(config):
        raise PolicyViolation(f"topic {topic!r} has cleanup.policy={config.cleanup_policy}:"
                              " only a topic with compact in it is cleaned")
    count = len(described.partitions)
    if partition is not None and not 0 <= partition < count:
        raise UnknownTopicOrPartition(
            f"topic {topic!r} has no partition {partition} (it has {count})")
    chosen = range(count) if partition is None else [partition]
    return [_clean(system, topic, index) for index in chosen]


def _clean(system: ActorSystem, topic: str, partition: int) -> dict:
    for _ in range(ATTEMPTS):
        result = system.cleaners[0].clean_now(topic, partition).get()
        if result is not None:
            return {"partition": partition, "records_removed": result.records_removed,
                    "bytes_removed": result.bytes_removed,
                    "segments_before": result.segments_before,
                    "segments_after": result.segments_after,
                    "cleaned_through": result.cleaned_through}
    raise KafkaStorageError(f"partition {topic}-{partition} changed during each of"
                            f" {ATTEMPTS} cleanings (rolls, retention): try again")


def compaction_route(system: ActorSystem) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    """The WSGI application of ``POST /admin/compact`` on the server's HTTP endpoint."""

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed",
                           _refusal(InvalidRequest(f"{ADMIN_COMPACT_PATH} takes POST")))
        if not _loopback(environ.get("REMOTE_ADDR", "")):
            return _answer(start_response, "403 Forbidden", _refusal(InvalidRequest(
                f"{ADMIN_COMPACT_PATH} is answered only on the server's own host")))
        try:
            topic, partition = _parameters(environ.get("QUERY_STRING", ""))
            done = compact_now(system, topic, partition)
        except UnknownTopicOrPartition as exc:
            return _answer(start_response, "404 Not Found", _refusal(exc))
        except KafkaError as exc:  # a retriable one (storage, a changing chain): try later
            status = "503 Service Unavailable" if exc.retriable else "400 Bad Request"
            return _answer(start_response, status, _refusal(exc))
        except Exception as exc:  # the store stopping under it, a bug: answered all the same
            log.exception("compaction request failed")
            return _answer(start_response, "500 Internal Server Error", _refusal(
                KafkaError(f"the compaction failed on the server: {exc!r} (see its log)")))
        return _answer(start_response, "200 OK", {"topic": topic, "partitions": done})

    return app


def _parameters(query: str) -> tuple[str, int | None]:
    """``topic`` and the optional ``partition`` of the request; InvalidRequest if bad."""
    values = urllib.parse.parse_qs(query)
    topics = values.get("topic", [])
    partitions = values.get("partition", [])
    if len(topics) != 1 or not topics[0] or len(partitions) > 1:
        raise InvalidRequest(f"{ADMIN_COMPACT_PATH} takes ?topic=T and at most one"
                             " &partition=P")
    if not partitions:
        return topics[0], None
    try:
        return topics[0], int(partitions[0])
    except ValueError:
        raise InvalidRequest(f"partition must be an integer, got {partitions[0]!r}") from None


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return (mapped or ip).is_loopback


def _refusal(error: KafkaError) -> dict:
    return {"error_code": error.code, "error": type(error).__name__, "message": str(error)}


def _answer(start_response: StartResponse, status: str, body: dict) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
