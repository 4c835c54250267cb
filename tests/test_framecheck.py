"""The request frame check (eventstore/kafka/codec/framecheck.py) against kio and real clients.

The check must walk every valid frame exactly as kio reads it (ending where kio's read
ends) and refuse, with InvalidRequest, what kio would choke on: lengths larger than the
frame and nulls where the schema has none. Valid frames come from kio's writers (zeros,
then non-empty arrays, strings and nulls, for every supported API and version, and
random entities of every request schema kio knows) and from kafka-python's encoders.
Mutated frames are decoded in a separate process, so that a frame that still aborted
the decoder would fail its test instead of killing pytest.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import fields, is_dataclass, replace
from types import NoneType, UnionType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from kafka.protocol import admin, consumer, metadata, producer, sasl
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.parser import KafkaProtocol
from kio.index import load_request_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
)
from kio.static.constants import EntityType
from kio.static.primitive import Records
from kio.static.protocol import RequestPayload

from eventstore.errors import InvalidRequest
from eventstore.kafka.codec.framecheck import check_frame
from eventstore.kafka.codec.protocol import build, decode_request
from eventstore.kafka.registry import SUPPORTED_VERSIONS

# kio registers strategies for its own types, records excepted (plain bytes to its writer).
st.register_type_strategy(Records, st.binary(max_size=64))

VERSIONS = [(k, v) for k, (low, high) in SUPPORTED_VERSIONS.items() for v in range(low, high + 1)]
ALL_KIO_REQUESTS = [load_request_schema(key, version) for key, name in api_key_map.items()
                    for version, entities in schema_name_map[name].items()
                    if EntityType.request in entities]


def kio_frame(body: RequestPayload, client_id: str | None = "tester") -> bytes:
    """A request frame (without the size prefix) written by kio's own writers."""
    header_type = type(body).__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_type)(buffer, header_type(
        request_api_key=body.__api_key__, request_api_version=body.__version__,
        correlation_id=7, client_id=client_id))
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def kio_end(body_type: type[RequestPayload], frame: bytes) -> int:
    """Where kio's read of the request in ``frame`` ends."""
    _, header_size = entity_reader(body_type.__header_schema__)(frame, 0)
    _, body_size = entity_reader(body_type)(frame, header_size)
    return header_size + body_size


def is_nullable(field_type: object) -> bool:
    return isinstance(field_type, UnionType) and NoneType in field_type.__args__


SAMPLE_ITEMS = {"string": ["a", "é-ü"], "uuid": [uuid.UUID(int=1), uuid.uuid4()]}


def sample_values(entity_type: type, nulls: bool) -> dict[str, Any]:
    """Values for :func:`build`: two elements in every array, text in every string (some
    of it multi-byte), bytes in bytes and records, a UUID in every uuid, and with
    ``nulls`` None in every nullable field. Tagged fields get values too, so that they
    are written."""
    values: dict[str, Any] = {}
    for field in fields(entity_type):
        kind = classify_field(field)
        kafka_type = field.metadata.get("kafka_type")
        if nulls and is_nullable(field.type) and get_field_tag(field) is None:
            values[field.name] = None
        elif isinstance(kind, EntityTupleField):
            values[field.name] = [sample_values(kind.type_, nulls)] * 2
        elif isinstance(kind, EntityField):
            values[field.name] = sample_values(kind.type_, nulls)
        elif isinstance(kind, PrimitiveTupleField):
            values[field.name] = SAMPLE_ITEMS.get(kafka_type, [1, 2])
        elif kafka_type == "string":
            values[field.name] = f"{field.name}-é"
        elif kafka_type in ("bytes", "records"):
            values[field.name] = b"\x00\xff" * 5
        elif kafka_type == "uuid":
            values[field.name] = uuid.UUID(int=42)
    return values


def with_null(value: Any, struct_type: type, name: str) -> Any:
    """``value`` with field ``name`` of every ``struct_type`` in it set to None, whatever
    its schema says (kio's writer writes what it is given)."""
    if isinstance(value, tuple):
        return tuple(with_null(item, struct_type, name) for item in value)
    if not is_dataclass(value):
        return value
    changes = {f.name: with_null(getattr(value, f.name), struct_type, name)
               for f in fields(value)}
    if type(value) is struct_type:
        changes[name] = None
    return replace(value, **changes)


def array_fields(entity_type: type) -> Iterator[tuple[type, str, bool]]:
    """(struct, name, nullable) of every array field in ``entity_type``, nested ones too."""
    for field in fields(entity_type):
        kind = classify_field(field)
        if kind.is_array:
            yield entity_type, field.name, is_nullable(field.type)
        if isinstance(kind, EntityField | EntityTupleField):
            yield from array_fields(kind.type_)


# -- a process to decode hostile frames in ------------------------------------------------

DECODER = """
import struct, sys
from eventstore.errors import InvalidRequest
from eventstore.kafka.codec.framecheck import check_frame
from eventstore.kafka.codec.protocol import UnsupportedApiVersion, decode_request
from eventstore.kafka.registry import SUPPORTED_VERSIONS
from kio.index import load_request_schema
from kio.serial import entity_reader

def outcome(frame):
    try:
        decode_request(frame, SUPPORTED_VERSIONS)
    except (InvalidRequest, UnsupportedApiVersion) as error:
        return str(error)
    body_type = load_request_schema(*struct.unpack_from(">hh", frame))
    _, header_size = entity_reader(body_type.__header_schema__)(frame, 0)
    _, body_size = entity_reader(body_type)(frame, header_size)
    try:
        end = check_frame(body_type, frame)
    except InvalidRequest as error:
        return f"decoded, yet the check refuses it: {error}"
    if end != header_size + body_size:
        return f"decoded, but the check ends at {end} and kio at {header_size + body_size}"
    return "decoded"

stdin, stdout = sys.stdin.buffer, sys.stdout
while size := stdin.read(4):
    frame = stdin.read(struct.unpack(">i", size)[0])
    try:
        result = outcome(frame)
    except Exception as error:
        result = f"{type(error).__name__}: {error}"
    print(result, file=stdout, flush=True)
"""


class Decoder:
    """A process decoding frames one at a time; a frame that kills it is reported."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def outcome(self, frame: bytes) -> str:
        """How decode_request ended: "decoded" (the check ending where kio's read ends),
        the error it raised ("InvalidRequest: ..."), or how the process died."""
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", DECODER], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(struct.pack(">i", len(frame)) + frame)
            process.stdin.flush()
            line = process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if line:
            return line.decode().strip()
        self._process = None
        process.kill()
        _, stderr = process.communicate()
        return f"the decoder died ({process.returncode}): {stderr[:300].decode()}"

    def close(self) -> None:
        if self._process is not None:
            self._process.communicate()  # end of input: it exits


@pytest.fixture(scope="module")
def decoder() -> Iterator[Decoder]:
    process = Decoder()
    yield process
    process.close()


# -- valid frames are walked as kio reads them --------------------------------------------


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_kio_written_frames_of_every_supported_version_pass_and_end_where_kio_ends(
        api_key: int, version: int) -> None:
    body_type = load_request_schema(api_key, version)
    bodies = [build(body_type), build(body_type, **sample_values(body_type, nulls=False)),
              build(body_type, **sample_values(body_type, nulls=True))]
    for body in bodies:
        for client_id in ("tester", None, ""):
            frame = kio_frame(body, client_id)
            assert check_frame(body_type, frame) == len(frame) == kio_end(body_type, frame)
            assert check_frame(body_type, frame + b"\x00\xff") == len(frame)  # extra bytes
            decoded = decode_request(frame, SUPPORTED_VERSIONS)
            assert (decoded.body, decoded.client_id) == (body, client_id)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_entities_of_every_kio_request_schema_end_where_kio_ends(
        data: st.DataObject) -> None:
    """Every request schema kio has, supported or not: nullable structs, tagged structs
    and uuid arrays appear only in some of those we do not serve."""
    body_type = data.draw(st.sampled_from(ALL_KIO_REQUESTS))
    body = data.draw(st.from_type(body_type))
    frame = kio_frame(body, data.draw(st.none() | st.text(max_size=8)))
    try:
        read_end = kio_end(body_type, frame)
    except ValueError:  # a timedelta of kio's strategy that its reader cannot convert back
        reject()
    assert check_frame(body_type, frame) == len(frame) == read_end


KAFKA_PYTHON_REQUESTS = {
    cls.API_KEY: cls for module in (admin, consumer, metadata, producer, sasl)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, ApiMessage) and cls is not ApiMessage
    and cls.is_request() and cls.API_KEY in SUPPORTED_VERSIONS
}


def kafka_python_values(struct: Any, version: int) -> dict[str, Any]:
    """Fields for a kafka-python message or struct: two elements in every array, text in
    strings and bytes in bytes and records (tagged fields too); the rest defaults."""
    values: dict[str, Any] = {}
    for field in struct.fields.values():
        if not field.for_version_q(version):
            continue
        if field.is_struct_array():
            element = field.data_class(version=version, **kafka_python_values(field, version))
            values[field.name] = [element, element]
        elif field.is_struct():
            values[field.name] = field.data_class(
                version=version, **kafka_python_values(field, version))
        elif field.is_array():
            values[field.name] = ["a", "b"] if field.array_of.type_str == "string" else [1, 2]
        elif field.type_str == "string":
            values[field.name] = f"{field.name}-é"
        elif field.type_str in ("bytes", "records"):
            values[field.name] = b"\x01\x02\x03"
    return values


def kafka_python_frame(request: Any) -> bytes:
    client = KafkaProtocol(client_id="kafka-python")
    client.send_request(request)
    return bytes(client.send_bytes()[4:])


# KIP-848's APIs, which kafka-python does not speak (kio's frames above cover them)
NOT_IN_KAFKA_PYTHON = {68, 69}


def test_kafka_python_knows_every_supported_api() -> None:
    assert set(KAFKA_PYTHON_REQUESTS) == set(SUPPORTED_VERSIONS) - NOT_IN_KAFKA_PYTHON


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_kafka_python_frames_pass_and_end_where_kio_ends(api_key: int, version: int) -> None:
    if api_key in NOT_IN_KAFKA_PYTHON:
        pytest.skip("kafka-python has no class for this API")
    request_type = KAFKA_PYTHON_REQUESTS[api_key][version]
    body_type = load_request_schema(api_key, version)
    for request in (request_type(),
                    request_type(**kafka_python_values(request_type._struct, version))):
        frame = kafka_python_frame(request)
        assert check_frame(body_type, frame) == len(frame) == kio_end(body_type, frame)
        decode_request(frame, SUPPORTED_VERSIONS)


# -- what the check refuses ---------------------------------------------------------------


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_a_null_array_is_refused_exactly_where_the_schema_has_none(
        api_key: int, version: int) -> None:
    body_type = load_request_schema(api_key, version)
    full = build(body_type, **sample_values(body_type, nulls=False))
    for struct_type, name, nullable in array_fields(body_type):
        body = with_null(full, struct_type, name)
        frame = kio_frame(body)
        if nullable:
            assert decode_request(frame, SUPPORTED_VERSIONS).body == body
        else:
            with pytest.raises(InvalidRequest, match=rf"{struct_type.__name__}\.{name} is null"):
                decode_request(frame, SUPPORTED_VERSIONS)


def frame_of(api_key: int, version: int, body: bytes, client_id: bytes = b"\x00\x01c") -> bytes:
    """A hand-written frame: header v1 (client_id "c"), or v2 (and no tagged fields)
    for a flexible version, then ``body``."""
    flexible = load_request_schema(api_key, version).__flexible__
    header = struct.pack(">hhi", api_key, version, 1) + client_id
    return header + (b"\x00" if flexible else b"") + body


MAX_VARINT = b"\xff\xff\xff\xff\x7f"  # 2^35 - 1, the largest kio reads

REFUSED = {
    "a compact array of 2^35 elements (JOIN_GROUP_HUGE_ARRAY, which aborted the server)": (
        bytes.fromhex("000b000900000013000a73657276657270726f63000b66757a7a2d67726f7570"
                      "00001770000003e8010009636f6e73756d6572ffffffff6e676507000189"),
        r"JoinGroupRequest\.protocols claims 29796335614 elements of 3\+ bytes"),
    "a legacy array of 2^31 - 1 elements": (
        frame_of(3, 1, b"\x7f\xff\xff\xff"),
        r"MetadataRequest\.topics claims 2147483647 elements of 2\+ bytes but only 0"),
    "a compact array of 2^35 - 2 elements": (
        frame_of(3, 12, MAX_VARINT),
        r"MetadataRequest\.topics claims 34359738366 elements"),
    "elements that cannot fit, though fewer than the bytes": (
        frame_of(1, 4, struct.pack(">iiiiBi", -1, 0, 1, 1, 0, 3) + b"\x00\x01t" * 3),
        r"FetchRequest\.topics claims 3 elements of 6\+ bytes but only 9 bytes remain"),
    "fixed-size elements that cannot fit": (
        frame_of(9, 1, b"\x00\x01g" + struct.pack(">i", 1) + b"\x00\x01t"
                 + struct.pack(">i", 3) + b"\x00" * 11),
        r"OffsetFetchRequestTopic\.partition_indexes claims 3 elements of 4\+ bytes"),
    "a negative legacy array length": (
        frame_of(3, 1, struct.pack(">i", -2)), r"MetadataRequest\.topics has a negative length"),
    "a legacy string longer than the frame": (
        frame_of(3, 1, struct.pack(">ih", 1, 100) + b"abc"),
        r"MetadataRequestTopic\.name claims 100 bytes but only 3 bytes remain"),
    "a null legacy string that may not be null": (
        frame_of(3, 1, struct.pack(">ih", 1, -1)), r"MetadataRequestTopic\.name is null"),
    "a negative legacy string length": (
        frame_of(3, 1, struct.pack(">ih", 1, -7)),
        r"MetadataRequestTopic\.name has a negative length -7"),
    "a compact string longer than the frame": (
        frame_of(12, 4, b"\x80\x01g"), r"HeartbeatRequest\.group_id claims 127 bytes"),
    "a null compact string that may not be null": (
        frame_of(12, 4, b"\x00"), r"HeartbeatRequest\.group_id is null"),
    "records longer than the frame": (
        frame_of(0, 3, struct.pack(">hhii", -1, 1, 1000, 1) + b"\x00\x01t"
                 + struct.pack(">iii", 1, 0, 1 << 30) + b"x" * 10),
        r"PartitionProduceData\.records claims 1073741824 bytes but only 10"),
    "a client_id longer than the frame": (
        frame_of(3, 1, b"", client_id=b"\x7f\xff"), r"RequestHeader\.client_id claims 32767"),
    "a varint longer than 5 bytes": (
        frame_of(12, 4, b"\x80\x80\x80\x80\x80\x01"), r"the varint at byte \d+ runs past 5"),
    "an unknown tagged field": (
        frame_of(3, 12, b"\x01\x00\x00\x01\x07\x00"), r"MetadataRequest has no tagged field 7"),
    "an unknown tagged field in the header": (
        struct.pack(">hhih", 3, 12, 1, -1) + b"\x01\x05\x00",
        r"RequestHeader has no tagged field 5"),
    "a frame cut inside the header": (struct.pack(">hhib", 3, 1, 1, 0), r"frame ends"),
    "a frame cut inside a struct": (frame_of(1, 4, struct.pack(">ii", -1, 0)), r"frame ends"),
}


@pytest.mark.parametrize("frame, message", REFUSED.values(), ids=REFUSED)
def test_hostile_frames_are_refused_with_the_field_named(decoder: Decoder, frame: bytes,
                                                         message: str) -> None:
    outcome = decoder.outcome(frame)  # in a process of its own: kio alone would abort
    assert outcome.startswith("InvalidRequest: ") and re.search(message, outcome), outcome


def test_every_truncation_is_refused() -> None:
    for api_key, version in ((0, 3), (0, 9), (1, 12), (3, 12), (11, 9)):
        body_type = load_request_schema(api_key, version)
        frame = kio_frame(build(body_type, **sample_values(body_type, nulls=False)))
        for size in range(len(frame)):
            with pytest.raises(InvalidRequest):
                check_frame(body_type, frame[:size])


def test_a_tagged_field_is_read_by_its_type_not_its_declared_size() -> None:
    """As kio (and Kafka, for the tags it knows) read it: the size is not used."""
    body_type = load_request_schema(1, 12)
    frame = kio_frame(build(body_type, cluster_id="abc"))
    assert frame.endswith(b"\x01\x00\x04\x04abc")  # one tagged field: tag 0, 4 bytes
    for size in (0, 3, 100):
        misdeclared = frame[:-5] + bytes([size]) + frame[-4:]
        assert check_frame(body_type, misdeclared) == len(frame)
        assert decode_request(misdeclared, SUPPORTED_VERSIONS).body.cluster_id == "abc"


# -- mutated frames -----------------------------------------------------------------------


def seed_frames() -> list[bytes]:
    """Valid frames of every supported version, with arrays, strings and nulls."""
    frames = []
    for api_key, version in VERSIONS:
        body_type = load_request_schema(api_key, version)
        for nulls in (False, True):
            frames.append(kio_frame(build(body_type, **sample_values(body_type, nulls))))
    return frames


SEEDS = seed_frames()
# Values that make lengths huge, negative or null: int16 and int32 of every sign, and
# varints of 1 to 5 bytes (the largest kio reads, then one too long).
LEGACY_HOSTILE = [b"\xff\xff", b"\x7f\xff", b"\x80\x00", b"\xff\xff\xff\xff",
                  b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff\xff\xfe"]
VARINT_HOSTILE = [b"\x00", b"\x01", b"\x7f", b"\xff\x7f", b"\xff\xff\x7f", b"\xff\xff\xff\x6e",
                  MAX_VARINT, b"\xff\xff\xff\xff\x6e", b"\xff\xff\xff\xff\xff"]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A seed frame changed one to three times past its api key, version and correlation
    id: a hostile value written over its bytes (a legacy length, perhaps) or in place of
    a byte below 0x80 (a compact length, perhaps: the frame that aborted the server had
    a 5-byte varint there), a byte changed, bytes cut out or put in."""
    frame = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["over", "varint", "varint", "byte", "cut", "insert"]))
        if kind == "varint":
            small = [i for i in range(8, len(frame)) if frame[i] < 0x80] or [len(frame)]
            at = draw(st.sampled_from(small))
            frame = frame[:at] + draw(st.sampled_from(VARINT_HOSTILE)) + frame[at + 1:]
            continue
        at = draw(st.integers(8, len(frame)))
        if kind == "over":
            value = draw(st.sampled_from(LEGACY_HOSTILE + VARINT_HOSTILE))
            frame = frame[:at] + value + frame[at + len(value):]
        elif kind == "byte":
            frame = frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1:]
        elif kind == "cut":
            frame = frame[:at] + frame[at + draw(st.integers(1, 16)):]
        else:
            frame = frame[:at] + draw(st.binary(min_size=1, max_size=8)) + frame[at:]
    return frame


def refused_or_decoded(outcome: str) -> bool:
    return outcome == "decoded" or outcome.startswith("InvalidRequest: ")


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=mutated_frames())
def test_mutated_frames_are_refused_or_decoded_never_crash(decoder: Decoder,
                                                          frame: bytes) -> None:
    assert refused_or_decoded(decoder.outcome(frame)), frame.hex()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.sampled_from(VERSIONS), body=st.binary(max_size=100))
def test_random_bodies_are_refused_or_decoded_never_crash(
        decoder: Decoder, version: tuple[int, int], body: bytes) -> None:
    frame = struct.pack(">hhi", *version, 1) + body
    assert refused_or_decoded(decoder.outcome(frame)), frame.hex()

