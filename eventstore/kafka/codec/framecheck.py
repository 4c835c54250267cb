"""Bounds checks on a request frame, done before kio decodes it.

kio 0.6.5 reads request frames natively, and its array reader reserves room for as many
elements as the array's length claims before it reads the first one: a 60-byte JoinGroup
whose protocols array claims about 2^35 elements makes it ask for over 200 GB at once, and
the allocation failure aborts the whole server process. It also reads a null array
(length -1, or 0 in the compact form) as None in any field, nullable or not, which the
handlers then trip over. Neither reader can be wrapped from Python, so
:func:`check_frame` walks the frame first, the way kio will read it, from the same
schema classes kio reads with:

- an array of N elements must have room for N times the least size of one element, as
  Kafka's own readers require (they refuse an array longer than the bytes remaining);
- a string, bytes or records field must fit in the frame, and is skipped by its length,
  never scanned, so a check costs the number of fields it passes, not of bytes;
- null may only appear where the schema allows it (``X | None``);
- everything else kio decides as kio does: legacy encodings in non-flexible versions,
  compact ones and tagged fields in flexible versions, the request header's client_id a
  nullable legacy string in every version, a tagged field read by its type and not its
  declared size, a nullable struct led by an int8 marker, unsigned varints of at most 5
  bytes. Values kio checks safely itself (UTF-8, booleans, timestamps) are left to it.

A walk is compiled once per schema class into closures, consecutive fixed-size fields
folded into one skip; the walk of a valid frame ends exactly where kio's read does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import Field, fields
from functools import cache
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
)
from kio.static.protocol import Entity, RequestPayload

from eventstore.errors import InvalidRequest

Step = Callable[[bytes, int], int]
"""Checks the value at ``frame[pos:]`` and returns the position after it."""

# A walk is a Step, or None for a value of fixed size; either goes with the least number
# of bytes the value takes (its size when fixed), which bounds the element count of an
# array of such values.
Walk = tuple[Step | None, int]

FIXED_SIZES = {
    "bool": 1, "int8": 1, "uint8": 1,
    "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4,
    "int64": 8, "uint64": 8, "float64": 8, "timedelta_i64": 8, "datetime_i64": 8,
    "uuid": 16,
}
_LENGTH_PREFIXED = ("string", "bytes", "records")
_INT16 = struct.Struct(">h").unpack_from
_INT32 = struct.Struct(">i").unpack_from
_NULL_MARKER = 0xFF  # int8 -1 before a nullable struct (KIP-893); anything else: present


def frame_size_problem(size: int, limit: int) -> str | None:
    """Why a frame's 4-byte size prefix ``size`` is refused (None if it is not), said as
    Kafka says it ("Invalid receive (size = ...)"): a negative or absurd size is random
    bytes, often another protocol's text, not a request that merely grew too large.
    """
    if 0 <= size <= limit:
        return None
    why = "negative" if size < 0 else f"larger than socket.request.max.bytes={limit}"
    prefix = size.to_bytes(4, "big", signed=True)
    if all(0x20 <= byte < 0x7F for byte in prefix):  # "GET ", "HTTP", "SSH-", ...
        why += f"; its first bytes read as text {prefix.decode()!r}: not a Kafka client?"
    return f"invalid request size {size} ({why})"


class Malformed(Exception):
    """What is wrong in a frame; :func:`check_frame` adds which request it was (so does
    eventstore/kafka/codec/fastread.py, whose one-pass readers refuse what this refuses,
    with the same words)."""


def check_frame(body_type: type[RequestPayload], frame: bytes) -> int:
    """Where the request in ``frame`` (header and ``body_type`` body) ends.

    ``frame`` is a request without its size prefix, as
    :func:`~eventstore.kafka.codec.protocol.decode_request` gets it, which calls this first.
    Raises InvalidRequest, naming the field, if a length claims more than the frame
    holds, a null is where the schema allows none, a varint runs past 5 bytes, a tagged
    field is unknown, or the frame ends before the request does.
    """
    try:
        end = _request_walk(body_type)(frame, 0)
    except Malformed as problem:
        raise refusal(body_type, str(problem)) from None
    except (IndexError, struct.error):
        end = len(frame) + 1  # a read past the end
    if end > len(frame):
        raise refusal(body_type, frame_ends(frame))
    return end


def refusal(body_type: type[RequestPayload], problem: str) -> InvalidRequest:
    """The error for a request of ``body_type`` refused for ``problem``."""
    return InvalidRequest(f"malformed {body_type.__name__} v{body_type.__version__}: {problem}")


def frame_ends(frame: bytes) -> str:
    return f"the frame ends inside the request ({len(frame)} bytes)"


def least_size(entity_type: type[Entity]) -> int:
    """The fewest bytes a (not nullable) struct of ``entity_type`` takes on the wire,
    which bounds the element count of an array of them as Kafka bounds it."""
    return _entity_walk(entity_type, False)[1]


@cache
def _request_walk(body_type: type[RequestPayload]) -> Step:
    """The walk over a whole request of ``body_type``: its header, then its body."""
    header = _as_step(_entity_walk(body_type.__header_schema__, False))
    body = _as_step(_entity_walk(body_type, False))

    def walk_request(frame: bytes, pos: int) -> int:
        return body(frame, header(frame, pos))

    return walk_request


@cache
def _entity_walk(entity_type: type[Entity], nullable: bool) -> Walk:
    """The walk over one struct: its fields in order, then (if flexible) its tagged fields."""
    flexible = entity_type.__flexible__
    is_header = entity_type.__name__ == "RequestHeader"  # kio's test, see _field_walk
    steps: list[tuple[int, Step]] = []  # (fixed bytes to skip first, step)
    skip = least = 0
    tagged: dict[int, Step] = {}
    for field in fields(entity_type):
        tag = get_field_tag(field)
        step, size = _field_walk(entity_type, field, is_header, tag is not None)
        if tag is not None:
            tagged[tag] = _as_step((step, size))
            continue
        least += size
        if step is None:
            skip += size
        else:
            steps.append((skip, step))
            skip = 0
    if flexible:
        least += 1  # the count of tagged fields
    if not (steps or flexible or nullable):
        return None, least
    field_steps, tail = tuple(steps), skip
    read_tagged = _tagged_fields_step(entity_type.__name__, tagged)

    def walk_entity(frame: bytes, pos: int) -> int:
        for gap, field_step in field_steps:
            pos = field_step(frame, pos + gap)
        pos += tail
        if not flexible:
            return pos
        if frame[pos]:  # a count of tagged fields, nearly always 0
            return read_tagged(frame, pos)
        return pos + 1

    if not nullable:
        return walk_entity, least

    def walk_nullable_entity(frame: bytes, pos: int) -> int:
        if frame[pos] == _NULL_MARKER:
            return pos + 1
        return walk_entity(frame, pos + 1)

    return walk_nullable_entity, 1


def _field_walk(entity_type: type[Entity], field: Field[Any], is_header: bool,
                is_tagged: bool) -> Walk:
    """The walk over one field of ``entity_type``, with the encoding kio reads it in."""
    path = f"{entity_type.__name__}.{field.name}"
    flexible = entity_type.__flexible__
    if is_header and field.name == "client_id":
        # Kafka (and kio) read the header's client_id as a nullable legacy string even
        # in header v2, so that any broker can read it before knowing the API version.
        return _legacy_length_step(path, 2, True), 2
    kind = classify_field(field)
    nullable = is_nullable(field.type)
    if isinstance(kind, EntityField):
        return _entity_walk(kind.type_, nullable)
    if isinstance(kind, EntityTupleField):
        item = _entity_walk(kind.type_, False)
    else:
        # kio reads a tagged field's value as not nullable: its absence is its null.
        is_array = isinstance(kind, PrimitiveTupleField)
        item = _primitive_walk(path, get_schema_field_type(field), flexible,
                               nullable and not is_tagged and not is_array)
        if not is_array:
            return item
    return _array_step(path, flexible, nullable, *item), 1 if flexible else 4


def is_nullable(field_type: object) -> bool:
    """Whether a field's type is ``X | None``: for an array, the array itself (an array
    of nullable elements, ``tuple[X | None, ...]``, is not nullable)."""
    return get_origin(field_type) in (UnionType, Union) and NoneType in get_args(field_type)


def _primitive_walk(path: str, kafka_type: str, flexible: bool, nullable: bool) -> Walk:
    if kafka_type not in _LENGTH_PREFIXED:
        return None, FIXED_SIZES[kafka_type]
    if flexible:
        return _compact_length_step(path, nullable), 1
    width = 2 if kafka_type == "string" else 4
    return _legacy_length_step(path, width, nullable), width


def _as_step(walk: Walk) -> Step:
    step, size = walk
    if step is not None:
        return step

    def skip_fixed(frame: bytes, pos: int) -> int:
        return pos + size

    return skip_fixed


def read_uvarint(frame: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it, read as kio reads one:
    7 bits a byte, least significant first, at most 5 bytes (overlong forms allowed)."""
    byte = frame[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    for index in range(pos + 1, pos + 5):
        byte = frame[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    raise Malformed(f"the varint at byte {pos} runs past 5 bytes")


def _compact_length_step(path: str, nullable: bool) -> Step:
    """A compact string or bytes: a varint of the length plus one (0 for null)."""

    def walk_compact(frame: bytes, pos: int) -> int:
        length = frame[pos]
        if length < 0x80:  # inlined: nearly every length fits in one byte
            pos += 1
        else:
            length, pos = read_uvarint(frame, pos)
        if not length:
            if nullable:
                return pos
            raise Malformed(f"{path} is null, which it may not be")
        end = pos + length - 1
        if end > len(frame):
            raise Malformed(too_long(path, f"{length - 1} bytes", frame, pos))
        return end

    return walk_compact


def _legacy_length_step(path: str, width: int, nullable: bool) -> Step:
    """A legacy string (int16 length) or bytes (int32 length); -1 is null."""
    unpack = _INT16 if width == 2 else _INT32

    def walk_legacy(frame: bytes, pos: int) -> int:
        (length,) = unpack(frame, pos)
        pos += width
        if length < 0:
            if length == -1 and nullable:
                return pos
            raise Malformed(null_or_negative(path, length))
        end = pos + length
        if end > len(frame):
            raise Malformed(too_long(path, f"{length} bytes", frame, pos))
        return end

    return walk_legacy


def _array_step(path: str, flexible: bool, nullable: bool, item: Step | None,
                item_size: int) -> Step:
    """An array: its count (a compact varint of count plus one, or a legacy int32; null
    as for strings), then its elements, each walked, or all skipped when of fixed size."""
    least = max(item_size, 1)  # Kafka allows no more elements than bytes, whatever they are

    def walk_array(frame: bytes, pos: int) -> int:
        if flexible:
            count = frame[pos]
            if count < 0x80:  # inlined, as in walk_compact
                pos += 1
            else:
                count, pos = read_uvarint(frame, pos)
            count -= 1
        else:
            (count,) = _INT32(frame, pos)
            pos += 4
        if count < 0:
            if count == -1 and nullable:
                return pos
            raise Malformed(null_or_negative(path, count))
        if count * least > len(frame) - pos:
            raise Malformed(too_long(path, f"{count} elements of {least}+ bytes", frame, pos))
        if item is None:
            return pos + count * item_size
        for _ in range(count):
            pos = item(frame, pos)
        return pos

    return walk_array


def _tagged_fields_step(entity_name: str, tagged: dict[int, Step]) -> Step:
    """A flexible struct's tagged fields: a varint count, then for each a varint tag, a
    varint size and the value. kio reads the value by the tag's field type and ignores
    the size (Kafka does the same for the tags it knows), and refuses unknown tags."""

    def walk_tagged_fields(frame: bytes, pos: int) -> int:
        count, pos = read_uvarint(frame, pos)
        for _ in range(count):  # each pass reads at least two bytes, or fails
            tag, pos = read_uvarint(frame, pos)
            _, pos = read_uvarint(frame, pos)
            step = tagged.get(tag)
            if step is None:
                raise Malformed(f"{entity_name} has no tagged field {tag}")
            pos = step(frame, pos)
        return pos

    return walk_tagged_fields


def too_long(path: str, claim: str, frame: bytes, pos: int) -> str:
    return f"{path} claims {claim} but only {max(len(frame) - pos, 0)} bytes remain"


def null_or_negative(path: str, length: int) -> str:
    if length == -1:
        return f"{path} is null, which it may not be"
    return f"{path} has a negative length {length}"
