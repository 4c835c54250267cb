"""framecheck's bounds checks as straight-line code generated once per request class.

kio's native reader trusts the lengths it reads (eventstore/kafka/codec/framecheck.py says
why that can abort the process), so every request frame is checked before kio reads it.
framecheck walks a frame with a tree of closures, one call per field; :func:`frame_checker`
generates, once per request class, one Python function per struct doing the same checks
inline: an array of N elements needs room for N of its smallest element, a string, bytes
or records must fit in the frame, null only where the schema allows it, varints of at most
5 bytes, no unknown tagged field (a known one read by its type), consecutive fixed-size
fields skipped as one. A refusal is worded as framecheck words it.

A Python reader doing the checks and making kio's values in the same pass was tried: it
took longer than this check followed by kio's native reader (4.5 against 3.1 µs for a
one-record Produce v9), so values stay kio's to make.
tests/test_fast_codec.py compares the outcome with framecheck's for every served API and
version, on valid, random and mutated frames.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import Field, fields
from functools import cache
from typing import Any

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
)
from kio.static.protocol import Entity, RequestPayload

from eventstore.kafka.codec.codegen import Generator
from eventstore.kafka.codec.framecheck import (
    FIXED_SIZES,
    Malformed,
    check_frame,
    frame_ends,
    is_nullable,
    least_size,
    null_or_negative,
    read_uvarint,
    refusal,
    too_long,
)

Checker = Callable[[bytes], int]
"""A whole request frame (after its size) -> where the request in it ends."""

_HEADER_FIELDS = ["request_api_key", "request_api_version", "correlation_id", "client_id"]
_HEADER_SIZE = 8  # api key, version and correlation id, read by decode_request already


def _tagged(frame: bytes, pos: int, checkers: dict[int, Callable], name: str) -> int:
    """A flexible struct's tagged fields: each value walked by its tag's type, the
    declared size skipped over unused, as kio reads them; an unknown tag is refused."""
    count, pos = read_uvarint(frame, pos)
    for _ in range(count):
        tag, pos = read_uvarint(frame, pos)
        _, pos = read_uvarint(frame, pos)
        checker = checkers.get(tag)
        if checker is None:
            raise Malformed(f"{name} has no tagged field {tag}")
        pos = checker(frame, pos)
    return pos


def check_request(body_type: type[RequestPayload], frame: bytes) -> int:
    """Where the request in ``frame`` ends, as :func:`check_frame` says (and by it, for a
    class no code is generated for); raises InvalidRequest as it does."""
    checker = frame_checker(body_type)
    if checker is None:
        return check_frame(body_type, frame)
    try:
        end = checker(frame)
    except Malformed as problem:
        raise refusal(body_type, str(problem)) from None
    except (IndexError, struct.error):
        end = len(frame) + 1  # a read past the end
    if end > len(frame):
        raise refusal(body_type, frame_ends(frame))
    return end


@cache
def frame_checker(body_type: type[RequestPayload]) -> Checker | None:
    """The generated check of a whole request of ``body_type``, header included; None
    for a header of other fields than Kafka's request headers have."""
    header_type = body_type.__header_schema__
    if [field.name for field in fields(header_type)] != _HEADER_FIELDS:
        return None
    return _Generator().request(header_type, body_type)


class _Generator(Generator):
    """A function ``(frame, pos) -> pos after the struct`` per struct class."""

    prefix = "_check_"

    def __init__(self) -> None:
        super().__init__({
            "_tagged": _tagged, "_uvarint": read_uvarint, "_Malformed": Malformed,
            "_too_long": too_long, "_null": null_or_negative, "_NO_TAGS": {},
            "_int16": struct.Struct(">h").unpack_from, "_int32": struct.Struct(">i").unpack_from,
        })
        self.locals = 0
        self.tag_tables: list[tuple[str, dict[int, str]]] = []

    def request(self, header_type: type[Entity], body_type: type[RequestPayload]) -> Checker:
        # Kafka (and kio) read the header's client_id as a nullable legacy string even in
        # header v2, so that any broker can read it before knowing the API version.
        lines = [f"    p = {_HEADER_SIZE}"]
        self.string("string", False, True, "RequestHeader.client_id", lines, "    ")
        if header_type.__flexible__:
            lines += ["    if f[p]:", "        p = _tagged(f, p, _NO_TAGS, 'RequestHeader')",
                      "    else:", "        p += 1"]
        lines.append(f"    return {self.function(body_type)}(f, p)")
        self.sources.append("def _request(f):\n" + "\n".join(lines))
        self.compiled(body_type)
        for table, checkers in self.tag_tables:
            self.namespace[table].update(
                {tag: self.namespace[checker] for tag, checker in checkers.items()})
        return self.namespace["_request"]

    def local(self) -> str:
        self.locals += 1
        return f"t{self.locals}"

    def source(self, entity_type: type) -> str:
        flexible = entity_type.__flexible__
        name = entity_type.__name__
        lines: list[str] = []
        skip = 0  # fixed-size fields not yet skipped
        tagged: dict[int, str] = {}
        for field in fields(entity_type):
            tag = get_field_tag(field)
            path = f"{name}.{field.name}"
            if tag is not None:
                checker = tagged[tag] = f"_tag_{len(self.sources)}_{tag}"
                body: list[str] = []
                self.field(field, flexible, True, path, body, "    ")
                self.sources.append(f"def {checker}(f, p):\n"
                                    + "\n".join([*body, "    return p"]))
                continue
            size = self.fixed_size(field)
            if size is not None:
                skip += size
                continue
            if skip:
                lines.append(f"    p += {skip}")
                skip = 0
            self.field(field, flexible, False, path, lines, "    ")
        if skip:
            lines.append(f"    p += {skip}")
        if flexible:
            table = self.constant({})  # filled once the checkers are compiled
            self.tag_tables.append((table, tagged))
            lines += ["    if f[p]:", f"        return _tagged(f, p, {table}, {name!r})",
                      "    return p + 1"]
        else:
            lines.append("    return p")
        return "(f, p):\n" + "\n".join(lines)

    @staticmethod
    def fixed_size(field: Field[Any]) -> int | None:
        kind = classify_field(field)
        if kind.is_array or isinstance(kind, EntityField):
            return None
        return FIXED_SIZES.get(get_schema_field_type(field))

    def field(self, field: Field[Any], flexible: bool, is_tagged: bool, path: str,
              lines: list[str], indent: str) -> None:
        """Lines walking one field as framecheck walks it (a tagged primitive is never
        null: kio reads its absence as its null)."""
        kind = classify_field(field)
        nullable = is_nullable(field.type)
        if isinstance(kind, EntityField):
            function = self.function(kind.type_)
            if nullable:  # an int8 marker, -1 for null (KIP-893)
                lines += [f"{indent}if f[p] == 0xFF:", f"{indent}    p += 1",
                          f"{indent}else:", f"{indent}    p = {function}(f, p + 1)"]
            else:
                lines.append(f"{indent}p = {function}(f, p)")
            return
        if isinstance(kind, EntityTupleField):
            self.array(kind.type_, None, flexible, nullable, path, lines, indent)
            return
        kafka_type = get_schema_field_type(field)
        if kind.is_array:
            self.array(None, kafka_type, flexible, nullable, path, lines, indent)
        elif kafka_type in FIXED_SIZES:
            lines.append(f"{indent}p += {FIXED_SIZES[kafka_type]}")
        else:
            self.string(kafka_type, flexible, nullable and not is_tagged, path, lines, indent)

    def length(self, flexible: bool, width: int, lines: list[str], indent: str) -> str:
        """Lines reading a length into a new local: a compact one (a varint of the length
        plus one, so -1 for null) or a legacy int16 or int32 (-1 for null)."""
        n = self.local()
        if flexible:
            lines += [f"{indent}{n} = f[p]", f"{indent}if {n} < 0x80:", f"{indent}    p += 1",
                      f"{indent}else:", f"{indent}    {n}, p = _uvarint(f, p)",
                      f"{indent}{n} -= 1"]
        else:
            lines += [f"{indent}{n}, = _int{8 * width}(f, p)", f"{indent}p += {width}"]
        return n

    def null(self, n: str, nullable: bool, path: str, lines: list[str], indent: str) -> None:
        """Lines refusing a negative length ``n``, but -1 where null is allowed."""
        lowest = -1 if nullable else 0
        lines += [f"{indent}if {n} < {lowest}:",
                  f"{indent}    raise _Malformed(_null({path!r}, {n}))"]

    def array(self, item_type: type | None, kafka_type: str | None, flexible: bool,
              nullable: bool, path: str, lines: list[str], indent: str) -> None:
        """Lines walking an array: its count, bounded by the bytes left, then its items,
        each walked, or all skipped when of fixed size."""
        n = self.length(flexible, 4, lines, indent)
        self.null(n, nullable, path, lines, indent)
        if item_type is not None:
            least = least_size(item_type)
        elif kafka_type in FIXED_SIZES:
            least = FIXED_SIZES[kafka_type]
        else:
            least = 1 if flexible else (2 if kafka_type == "string" else 4)
        least = max(least, 1)  # Kafka allows no more elements than bytes, whatever they are
        lines += [f"{indent}if {n} * {least} > len(f) - p:",
                  f"{indent}    raise _Malformed(_too_long({path!r}, "
                  f"f'{{{n}}} elements of {least}+ bytes', f, p))"]
        if kafka_type in FIXED_SIZES:
            lines.append(f"{indent}if {n} > 0:")
            lines.append(f"{indent}    p += {n} * {least}")
            return
        lines.append(f"{indent}for _ in range({n}):")
        if item_type is not None:
            lines.append(f"{indent}    p = {self.function(item_type)}(f, p)")
        else:
            assert kafka_type is not None
            self.string(kafka_type, flexible, False, path, lines, indent + "    ")

    def string(self, kafka_type: str, flexible: bool, nullable: bool, path: str,
               lines: list[str], indent: str) -> None:
        """Lines walking a string, bytes or records value: skipped by its length, which
        must fit in the frame."""
        n = self.length(flexible, 2 if kafka_type == "string" else 4, lines, indent)
        self.null(n, nullable, path, lines, indent)
        lines += [f"{indent}if {n} > 0:",
                  f"{indent}    p += {n}",
                  f"{indent}    if p > len(f):",
                  f"{indent}        raise _Malformed(_too_long({path!r}, f'{{{n}}} bytes', "
                  f"f, p - {n}))"]
