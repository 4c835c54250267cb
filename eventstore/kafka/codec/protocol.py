"""Kafka wire-protocol codec: request frames to kio objects, kio responses to frames.

No sockets here. The listener reads a size-prefixed frame, hands the bytes after the
4-byte size to :func:`decode_request`, and writes what :func:`encode_response` returns.
kio, generated from Kafka's own message schemas, knows every API's layout at every
version; this module adds what a broker does around it: request and response headers, the
ApiVersions special cases, typed errors for bad input, and :func:`build` to make kio
response objects from plain values. Which APIs and versions are served is not its business:
callers pass the table (eventstore/kafka/registry.py holds it).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, TypeVar

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.protocol import Entity, RequestPayload, ResponsePayload

from eventstore.errors import InvalidRequest, UnsupportedVersion
from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.fastbuild import NESTED, entity_builder, field_specs
from eventstore.kafka.codec.fastcheck import check_request
from eventstore.kafka.codec.fastwrite import encode_body

# api_key -> (lowest, highest) version served: what ApiVersions advertises
ApiVersionRanges = Mapping[int, tuple[int, int]]

_PREFIX = struct.Struct(">hhi")  # api_key, api_version, correlation_id: every header
_SIZE = struct.Struct(">i")
_SIZE_AND_ID = struct.Struct(">ii")  # a response frame's size, then its correlation id


def api_name(api_key: int) -> str:
    """Kafka's name of an API (``ApiVersions``), or ``ApiKey<n>`` when kio knows none."""
    snake = api_key_map.get(api_key)
    if snake is None:
        return f"ApiKey{api_key}"
    return "".join(word.capitalize() for word in snake.split("_"))


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: its header fields and ``body``, the kio request object."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: RequestPayload


class UnsupportedApiVersion(UnsupportedVersion):
    """An API key or version we do not advertise, with what an answer still needs.

    Kafka answers an ApiVersions request of a too-new version with a v0 response holding
    error 35 and the key list (see :func:`api_versions_response`); for any other API it
    closes the connection.
    """

    def __init__(self, api_key: int, api_version: int, correlation_id: int,
                 versions: tuple[int, int] | None) -> None:
        """``versions``: the API's range served, None for an API not served at all."""
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        if versions is None:
            message = f"unknown or unsupported API key {api_key} ({api_name(api_key)})"
        else:
            message = (f"{api_name(api_key)} v{api_version} is not supported, "
                       f"only v{versions[0]}-v{versions[1]}")
        super().__init__(message)

    @property
    def name(self) -> str:
        return "UnsupportedVersion"


def decode_request(frame: bytes, supported: ApiVersionRanges) -> Request:
    """The request in ``frame`` (the bytes after the 4-byte size prefix).

    Raises UnsupportedApiVersion for an API or version outside ``supported`` and
    InvalidRequest for bytes that do not parse; nothing else, whatever the input. Bytes
    after the request's end are ignored, as Kafka ignores them: librdkafka 2.x sends three
    stray bytes after an all-topics Metadata v12 request.

    The frame is checked (:func:`~eventstore.kafka.codec.fastcheck.check_request`, which
    is :func:`~eventstore.kafka.codec.framecheck.check_frame` generated as straight code)
    before kio reads it: kio believes array lengths and null arrays, and a single hostile
    length would make it abort the process.
    """
    if not isinstance(frame, bytes):
        frame = bytes(frame)  # kio reads only immutable buffers
    if len(frame) < _PREFIX.size:
        raise InvalidRequest(f"request of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, correlation_id = _PREFIX.unpack_from(frame)
    versions = supported.get(api_key)
    if versions is None or not versions[0] <= api_version <= versions[1]:
        raise UnsupportedApiVersion(api_key, api_version, correlation_id, versions)
    body_type, read_header, read_body = _request_readers(api_key, api_version)
    check_request(body_type, frame)
    try:
        header, header_size = read_header(frame, 0)
        body, _ = read_body(frame, header_size)
    # kio raises its DecodeError family, but also ValueError, KeyError (an unknown tagged
    # field) and others from native code; whatever it is, the bytes are at fault.
    except Exception as exc:
        raise InvalidRequest(
            f"malformed {api_name(api_key)} v{api_version} request: {exc}"
        ) from None
    return Request(api_key, api_version, correlation_id, header.client_id, body)


@cache
def _request_readers(
    api_key: int, api_version: int
) -> tuple[type[RequestPayload], Callable, Callable]:
    body_type = load_request_schema(api_key, api_version)
    return body_type, entity_reader(body_type.__header_schema__), entity_reader(body_type)


def encode_request(api_key: int, version: int, correlation_id: int, client_id: str,
                   **fields: Any) -> bytes:
    """A request frame (without its size prefix) as a client sends it: the header of the
    version's schema, then the body built from ``fields`` (defaults for the rest)."""
    body = build(load_request_schema(api_key, version), **fields)
    header_type = type(body).__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_type)(buffer, header_type(
        request_api_key=api_key, request_api_version=version,
        correlation_id=correlation_id, client_id=client_id))
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def encode_response(request: Request | UnsupportedApiVersion, body: ResponsePayload) -> bytes:
    """The whole response frame for ``request``, 4-byte size prefix included.

    The header follows ``body``'s version: v1 (tagged fields) for flexible versions, v0
    otherwise and for every ApiVersions response, as kio's schemas say. ``body`` must be
    the response of the request's API and version; ApiVersions may also answer with v0.
    """
    version_ok = body.__version__ == request.api_version or (
        request.api_key == ApiKey.API_VERSIONS and body.__version__ == 0
    )
    if body.__api_key__ != request.api_key or not version_ok:
        raise ValueError(
            f"{type(body).__name__} v{body.__version__} cannot answer "
            f"{api_name(request.api_key)} v{request.api_version}"
        )
    header_type = body.__header_schema__
    header_tail = _header_tail(header_type)
    if header_tail is not None:
        try:
            payload = encode_body(body)
        except Exception:  # noqa: BLE001 - kio's writer below raises kio's error
            payload = None
        if payload is not None:
            return _SIZE_AND_ID.pack(4 + len(header_tail) + len(payload),
                                     request.correlation_id) + header_tail + payload
    write_body = entity_writer(type(body))
    return encode_frame(request.correlation_id, header_type,
                        lambda buffer: write_body(buffer, body))


@cache
def _header_tail(header_type: type) -> bytes | None:
    """What a response header of ``header_type`` holds after its correlation id (no
    tagged field, in a flexible one), None for a header holding anything else."""
    if [field.name for field in fields(header_type)] != ["correlation_id"]:
        return None
    return b"\x00" if header_type.__flexible__ else b""


def encode_frame(correlation_id: int, header_type: type, write_body: Callable[[io.BytesIO], None]
                 ) -> bytes:
    """A response frame: its 4-byte size, a header of ``header_type``, then whatever
    ``write_body`` writes."""
    buffer = io.BytesIO()
    buffer.write(bytes(_SIZE.size))
    entity_writer(header_type)(buffer, header_type(correlation_id=correlation_id))
    write_body(buffer)
    with buffer.getbuffer() as frame:
        _SIZE.pack_into(frame, 0, len(frame) - _SIZE.size)
    return buffer.getvalue()


def api_versions_response(
    supported: ApiVersionRanges, request_api_version: int, error_code: int = 0
) -> ResponsePayload:
    """The ApiVersions response listing ``supported``, at the request's version.

    A version we do not support gets what Kafka sends: a v0 response with
    UNSUPPORTED_VERSION (35) and the full key list, so the client can retry.
    """
    low, high = supported[ApiKey.API_VERSIONS]
    version = request_api_version
    if not low <= version <= high:
        version, error_code = 0, error_code or UnsupportedVersion.code
    api_keys = [
        {"api_key": key, "min_version": versions[0], "max_version": versions[1]}
        for key, versions in sorted(supported.items())
    ]
    return build(
        response_schema(ApiKey.API_VERSIONS, version),
        error_code=error_code,
        api_keys=api_keys,
    )


def make_response(request: Request, **values: Any) -> ResponsePayload:
    """The kio response for ``request``'s API and version, built from plain values.

    See :func:`build`; one call serves every version, since fields a version lacks are
    dropped and fields it needs but that were not given get their zero value.
    """
    return build(response_schema(request.api_key, request.api_version), **values)


@cache
def response_schema(api_key: int, api_version: int) -> type[ResponsePayload]:
    """kio's response class, looked up once per API and version, not once per request."""
    return load_response_schema(api_key, api_version)


E = TypeVar("E")


def build(entity_type: type[E], /, **values: Any) -> E:
    """A kio entity of ``entity_type`` from plain values, nested entities as mappings.

    kio's classes differ per version, are keyword-only and want typed values; this fills
    the gap. Values for fields ``entity_type`` lacks are ignored when another version of
    its API's schema has them (one call serves every version), and raise UnknownField when
    none has: a misspelt field would otherwise go out as its zero. A field left out takes
    its schema default, or else its zero: () for an array and b"" for records even when
    nullable, else None when nullable, else 0, "", b"", False, the zero UUID,
    ErrorCode.none or a nested entity of such zeros. Given values are converted:

    - error codes: an int, an ErrorCode or a KafkaError (its ``code``);
    - durations (``throttle_time``, ``timeout``...): int milliseconds or a timedelta;
    - timestamps (``log_append_time``): int milliseconds since the epoch, -1 for None;
    - nested entities: a mapping (built recursively) or an entity; arrays: any iterable.
    """
    return entity_builder(entity_type, _check_names)(values)  # generated once per class


def _check_names(entity_type: type[Entity], names: Iterable[str]) -> None:
    """Raises UnknownField for the first of ``names`` no version of the entity has."""
    for name in names:
        if not _in_some_version(entity_type, name):
            raise UnknownField(entity_type, name)


class UnknownField(TypeError):
    """A value for a field that no version of the entity's schema has: a bug in the
    caller (a misspelt field), never something a client sent."""

    def __init__(self, entity_type: type[Entity], name: str) -> None:
        place = _place(entity_type)
        if place is None:
            where = entity_type.__name__
        else:
            api_key, side, path = place
            name = ".".join((*path, name))
            where = f"{api_name(api_key)} {side.name}"
        super().__init__(f"{where} has no field {name!r} in any version")


@cache
def _in_some_version(entity_type: type[Entity], name: str) -> bool:
    """Whether the entity at ``entity_type``'s place in its API's request or response has
    a field ``name`` in some version kio knows: the nearest versions are looked at first,
    so a field of a neighbouring version loads one or two schemas, once."""
    place = _place(entity_type)
    if place is None:
        return False
    api_key, side, path = place
    version = entity_type.__version__
    versions = [v for v, entities in schema_name_map[api_key_map[api_key]].items()
                if side in entities]
    for other in sorted(versions, key=lambda v: abs(v - version)):
        entity = _entity_at(_payload_schema(api_key, other, side), path)
        if entity is not None and any(f.name == name for f in fields(entity)):
            return True
    return False


@cache
def _place(entity_type: type[Entity]) -> tuple[int, EntityType, tuple[str, ...]] | None:
    """Where ``entity_type`` sits: its API key, request or response, and the fields that
    lead to it from the payload (``()`` for the payload itself); None for an entity of
    no API (a header)."""
    api_key = getattr(entity_type, "__api_key__", None)
    if api_key is None:
        return None
    version = entity_type.__version__
    for side in (EntityType.request, EntityType.response):
        if side not in schema_name_map[api_key_map[api_key]].get(version, {}):
            continue
        path = _path_to(_payload_schema(api_key, version, side), entity_type)
        if path is not None:
            return api_key, side, path
    return None


def _payload_schema(api_key: int, version: int, side: EntityType) -> type[Entity]:
    if side is EntityType.request:
        return load_request_schema(api_key, version)
    return load_response_schema(api_key, version)


def _path_to(root: type, target: type) -> tuple[str, ...] | None:
    """The field names leading from entity ``root`` down to entity ``target``."""
    if root is target:
        return ()
    for spec in field_specs(root):
        if spec.kind in NESTED:
            below = _path_to(spec.inner, target)
            if below is not None:
                return (spec.name, *below)
    return None


def _entity_at(root: type, path: tuple[str, ...]) -> type | None:
    """The entity class at ``path`` below ``root``, None where a field of it is missing."""
    entity = root
    for name in path:
        spec = next((s for s in field_specs(entity) if s.name == name), None)
        if spec is None or spec.kind not in NESTED:
            return None
        entity = spec.inner
    return entity
