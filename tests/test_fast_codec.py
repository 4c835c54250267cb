"""The generated codec against kio: the same bytes, for every API and version served.

eventstore/kafka/codec/fastwrite.py writes response bodies by code generated from kio's
schema classes; kio's own ``entity_writer`` is the reference. Entities come from
hypothesis (kio registers strategies for its types) and from plain values with every
array, string, nullable and tagged field set.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    is_optional,
)
from kio.serial.errors import OutOfBoundValue
from kio.static.primitive import Records
from kio.static.protocol import Entity, ResponsePayload

from eventstore.errors import InvalidRequest
from eventstore.kafka.codec.fastcheck import check_request, frame_checker
from eventstore.kafka.codec.fastwrite import body_writer, encode_body
from eventstore.kafka.codec.framecheck import check_frame
from eventstore.kafka.codec.protocol import (
    Request,
    build,
    encode_frame,
    encode_response,
    response_schema,
)
from eventstore.kafka.registry import SUPPORTED_VERSIONS

st.register_type_strategy(Records, st.binary(max_size=64))

VERSIONS = [(k, v) for k, (low, high) in SUPPORTED_VERSIONS.items() for v in range(low, high + 1)]
RESPONSES = [load_response_schema(key, version) for key, version in VERSIONS]


def kio_body(entity: Entity) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def kio_response(request: Request, body: ResponsePayload) -> bytes:
    write = entity_writer(type(body))
    return encode_frame(request.correlation_id, body.__header_schema__,
                        lambda buffer: write(buffer, body))


SAMPLE_ITEMS = {"string": ["a", "é-ü"], "uuid": [uuid.UUID(int=1), uuid.uuid4()],
                "bool": [True, False]}


def sample_values(entity_type: type, nulls: bool) -> dict[str, Any]:
    """Values for :func:`build`: two elements in every array, multi-byte text, bytes, a
    UUID, non-zero numbers (so tagged fields differ from their defaults and are written)
    and with ``nulls`` None in every nullable field."""
    values: dict[str, Any] = {}
    for field in fields(entity_type):
        kind = classify_field(field)
        kafka_type = field.metadata.get("kafka_type")
        if nulls and is_optional(field):
            values[field.name] = None
        elif isinstance(kind, EntityTupleField):
            values[field.name] = [sample_values(kind.type_, nulls)] * 2
        elif isinstance(kind, EntityField):
            values[field.name] = sample_values(kind.type_, nulls)
        elif isinstance(kind, PrimitiveTupleField):
            values[field.name] = SAMPLE_ITEMS.get(kafka_type, [1, 300])
        elif kafka_type == "string":
            values[field.name] = f"{field.name}-é" * 20
        elif kafka_type in ("bytes", "records"):
            values[field.name] = b"\x00\xff" * 100
        elif kafka_type == "uuid":
            values[field.name] = uuid.UUID(int=42)
        elif kafka_type == "bool":
            values[field.name] = True
        elif kafka_type in ("error_code",):
            values[field.name] = 3
        elif kafka_type == "float64":
            values[field.name] = 1.5
        elif kafka_type is not None and kafka_type.startswith(("int", "uint", "time", "date")):
            values[field.name] = 7
    return values


def test_every_served_response_has_generated_code() -> None:
    assert [t for t in RESPONSES if body_writer(t) is None] == []


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_sample_responses_are_kio_bytes(api_key: int, version: int) -> None:
    body_type = response_schema(api_key, version)
    request = Request(api_key, version, 12345, "c", None)  # type: ignore[arg-type]
    for body in (build(body_type), build(body_type, **sample_values(body_type, nulls=False)),
                 build(body_type, **sample_values(body_type, nulls=True))):
        assert encode_body(body) == kio_body(body)
        assert encode_response(request, body) == kio_response(request, body)


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_responses_are_kio_bytes(data: st.DataObject) -> None:
    body = data.draw(st.from_type(data.draw(st.sampled_from(RESPONSES))))
    try:
        expected = kio_body(body)
    except Exception as error:  # noqa: BLE001 - kio refuses it: so does encode_response
        request = Request(body.__api_key__, body.__version__, 1, None, None)  # type: ignore[arg-type]
        with pytest.raises(type(error)):
            encode_response(request, body)
        return
    assert encode_body(body) == expected


def test_a_value_kio_refuses_raises_kios_error() -> None:
    body_type = response_schema(15, 0)  # DescribeGroups v0: legacy group_id strings
    body = build(body_type, groups=[{"group_id": "g" * 40_000}])
    request = Request(15, 0, 1, None, None)  # type: ignore[arg-type]
    with pytest.raises(OutOfBoundValue):
        encode_response(request, body)


def as_values(entity: Any) -> Any:
    """``entity`` as plain values for :func:`build`: nested entities as dicts."""
    if isinstance(entity, tuple):
        return [as_values(item) for item in entity]
    if not hasattr(entity, "__dataclass_fields__"):
        return entity
    return {field.name: as_values(getattr(entity, field.name)) for field in fields(entity)}


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_build_from_plain_values_gives_the_entity_back(data: st.DataObject) -> None:
    """The generated builders (codec/fastbuild.py) set every field of every nested entity
    as kio's own constructor does."""
    body = data.draw(st.from_type(data.draw(st.sampled_from(RESPONSES))))
    rebuilt = build(type(body), **as_values(body))
    assert rebuilt == body
    assert repr(rebuilt) == repr(body)


# -- the generated frame check (codec/fastcheck.py) against framecheck's walk --------------

REQUESTS = [load_request_schema(key, version) for key, version in VERSIONS]


def check_outcome(check: Any, body_type: type, frame: bytes) -> str:
    try:
        return f"ends at {check(body_type, frame)}"
    except InvalidRequest as error:
        return str(error)


def request_frame(body: Any) -> bytes:
    header_type = type(body).__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_type)(buffer, header_type(
        request_api_key=body.__api_key__, request_api_version=body.__version__,
        correlation_id=7, client_id="tester"))
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


HOSTILE = [b"\xff\xff\xff\xff\x7f", b"\x7f\xff\xff\xff", b"\xff\xff", b"\x00",
           b"\x80\x80\x80\x80\x80\x01"]  # huge, negative or null lengths, a long varint


def test_every_served_request_has_a_generated_check() -> None:
    assert [t for t in REQUESTS if frame_checker(t) is None] == []


@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_generated_check_says_what_framecheck_says(data: st.DataObject) -> None:
    """On kio-written frames of random entities, cut, with bytes changed or put in: the
    same end or the same refusal, in the same words."""
    body_type = data.draw(st.sampled_from(REQUESTS))
    frame = request_frame(data.draw(st.from_type(body_type)))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(8, len(frame)))
        kind = data.draw(st.sampled_from(["byte", "cut", "insert", "varint"]))
        if kind == "byte":
            frame = frame[:at] + bytes([data.draw(st.integers(0, 255))]) + frame[at + 1:]
        elif kind == "cut":
            frame = frame[:at] + frame[at + data.draw(st.integers(1, 16)):]
        elif kind == "varint":
            frame = frame[:at] + data.draw(st.sampled_from(HOSTILE)) + frame[at + 1:]
        else:
            frame = frame[:at] + data.draw(st.binary(min_size=1, max_size=8)) + frame[at:]
    assert (check_outcome(check_request, body_type, frame)
            == check_outcome(check_frame, body_type, frame))
