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
from kio.index import load_response_schema
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

from eventstore.kafka.codec.fastwrite import body_writer, encode_body
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
