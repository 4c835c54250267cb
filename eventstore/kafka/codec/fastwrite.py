"""Response bodies written by code generated once per kio schema class: kio's bytes, faster.

kio's ``entity_writer`` walks a dict of field writers for every entity it writes, one
``struct.pack`` and one buffer write per field, and writes each entity's tagged fields
through a temporary buffer. Small responses (Heartbeat, Produce of one record, a commit)
spent most of their encoding time there. :func:`body_writer` generates, once per schema
class, the source of one function per entity: its consecutive fixed-size fields packed by
one ``struct.Struct``, strings and arrays written inline, nested entities by their own
generated functions, and the tagged-field count written as one byte when no tagged field
differs from its default (nearly always). The bytes are exactly kio's: the encodings, the
nullable-struct marker, tags in order, a tagged field skipped when equal to its default
(tests/test_fast_codec.py compares the two for every served API and version).

Values kio's writers refuse (a string too long for its length, an int out of range, a
None where none is allowed) make the generated code raise too, by another exception;
:func:`~eventstore.kafka.codec.protocol.encode_response` then writes the body with kio,
so that the error raised is kio's.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from functools import cache
from typing import Any

from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.serial._serialize import get_field_writer
from kio.static.constants import uuid_zero
from kio.static.protocol import Entity

from eventstore.kafka.codec.codegen import Generator

Parts = list[bytes]
BodyWriter = Callable[[Callable[[bytes], None], Entity], None]
"""Appends the bytes of an entity, in order, with the ``append`` it is given."""

# kafka type -> (struct format character, expression of the packed value from ``{v}``)
_FIXED: dict[str, tuple[str, str]] = {
    "bool": ("?", "{v}"),
    "int8": ("b", "{v}"), "uint8": ("B", "{v}"),
    "int16": ("h", "{v}"), "uint16": ("H", "{v}"),
    "int32": ("i", "{v}"), "uint32": ("I", "{v}"),
    "int64": ("q", "{v}"), "uint64": ("Q", "{v}"),
    "float64": ("d", "{v}"),
    "error_code": ("h", "{v}.value"),
    "timedelta_i32": ("i", "round({v}.total_seconds() * 1000)"),
    "timedelta_i64": ("q", "round({v}.total_seconds() * 1000)"),
    "datetime_i64": ("q", "round({v}.timestamp() * 1000)"),
    "uuid": ("16s", "_uuid_bytes({v})"),
}
_PACKED_ARRAY_ITEMS = frozenset("bBhHiIqQd")  # int and float arrays: one pack for all


def _uuid_bytes(value: Any) -> bytes:
    return (uuid_zero if value is None else value).bytes


def _nullable_datetime_ms(value: Any) -> int:
    return -1 if value is None else round(value.timestamp() * 1000)


_SMALL = tuple(bytes((n,)) for n in range(0x80))


def _uvarint(value: int) -> bytes:
    """An unsigned varint, as kio writes it (7 bits a byte, least significant first)."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _tagged(values: list[tuple[int, Field[Any], Callable, Any]], entity: Entity) -> bytes:
    """A flexible entity's tagged fields, in tag order, those equal to their default left
    out: written with kio's own field writers (rare, so not worth generating)."""
    written = []
    for tag, field, writer, default in values:
        value = getattr(entity, field.name)
        if value == default:
            continue
        buffer = io.BytesIO()
        writer(buffer, value)
        encoded = buffer.getvalue()
        written.append(_uvarint(tag) + _uvarint(len(encoded)) + encoded)
    return _uvarint(len(written)) + b"".join(written)


def encode_body(entity: Entity) -> bytes | None:
    """``entity``'s bytes as kio's ``entity_writer`` writes them, by generated code; None
    for a schema class no code is generated for (one kio cannot write either)."""
    writer = body_writer(type(entity))
    if writer is None:
        return None
    parts: Parts = []
    writer(parts.append, entity)
    return b"".join(parts)


@cache
def body_writer(entity_type: type[Entity]) -> BodyWriter | None:
    """The generated writer of ``entity_type`` (nested entities get their own), or None
    when a field has a type kio has no writer for."""
    try:
        return _Generator().compiled(entity_type)
    except (NotImplementedError, ValueError, TypeError):
        return None


class _Generator(Generator):
    """A writer function ``(append, entity)`` per entity class."""

    prefix = "_write_"

    def __init__(self) -> None:
        super().__init__({
            "_uvarint": _uvarint, "_uuid_bytes": _uuid_bytes, "_tagged": _tagged,
            "_nullable_datetime_ms": _nullable_datetime_ms, "_pack": struct.pack,
        })

    def source(self, entity_type: type[Entity]) -> str:
        flexible = entity_type.__flexible__
        lines: list[str] = []
        pending: list[tuple[str, str]] = []  # fixed fields not yet packed
        tagged = []
        for field in fields(entity_type):
            tag = get_field_tag(field)
            if tag is not None:
                writer = get_field_writer(field, flexible=flexible, is_request_header=False,
                                          is_tag=True)
                default = (field.default if field.default is not MISSING
                           else get_tagged_field_default(field))
                tagged.append((tag, field, writer, default))
                continue
            value = f"e.{field.name}"
            fixed = self.fixed(field)
            if fixed is not None:
                char, expression = fixed
                pending.append((char, expression.format(v=value)))
                continue
            self.flush(pending, lines)
            self.field(field, flexible, value, lines, "    ")
        self.flush(pending, lines)
        if tagged and not flexible:
            raise ValueError(f"{entity_type.__name__} has tagged fields but is not flexible")
        if flexible:
            if tagged:
                tagged.sort(key=lambda item: item[0])
                lines.append(f"    ap(_tagged({self.constant(tagged)}, e))")
            else:
                lines.append("    ap(b'\\x00')")
        return "(ap, e):\n" + ("\n".join(lines) or "    pass")

    def fixed(self, field: Field[Any]) -> tuple[str, str] | None:
        """(format character, value expression) of a fixed-size, non-array field."""
        kind = classify_field(field)
        if kind.is_array or isinstance(kind, EntityField):
            return None
        kafka_type = get_schema_field_type(field)
        if kafka_type == "datetime_i64" and is_optional(field):
            return "q", "_nullable_datetime_ms({v})"
        if kafka_type not in _FIXED or (is_optional(field) and kafka_type != "uuid"):
            return None
        return _FIXED[kafka_type]

    def flush(self, pending: list[tuple[str, str]], lines: list[str]) -> None:
        if not pending:
            return
        pack = self.constant(struct.Struct(">" + "".join(c for c, _ in pending)).pack)
        lines.append(f"    ap({pack}({', '.join(v for _, v in pending)}))")
        pending.clear()

    def field(self, field: Field[Any], flexible: bool, value: str, lines: list[str],
              indent: str) -> None:
        """Lines writing a string, bytes, array or entity field ``value``."""
        kind = classify_field(field)
        optional = is_optional(field)
        if isinstance(kind, EntityField):
            function = self.function(kind.type_)
            if optional:
                lines += [f"{indent}v = {value}",
                          f"{indent}if v is None:", f"{indent}    ap(b'\\xff')",
                          f"{indent}else:", f"{indent}    ap(b'\\x01')",
                          f"{indent}    {function}(ap, v)"]
            else:
                lines.append(f"{indent}{function}(ap, {value})")
            return
        if not kind.is_array:
            self.primitive(get_schema_field_type(field), flexible, optional, value, lines,
                           indent)
            return
        lines.append(f"{indent}a = {value}")
        if flexible:
            lines += [f"{indent}if a is None:", f"{indent}    ap(b'\\x00')",
                      f"{indent}else:", f"{indent}    ap(_uvarint(len(a) + 1))"]
        else:
            lines += [f"{indent}if a is None:", f"{indent}    ap(b'\\xff\\xff\\xff\\xff')",
                      f"{indent}else:", f"{indent}    ap(_pack('>i', len(a)))"]
        inner = indent + "    "
        if isinstance(kind, EntityTupleField):
            lines += [f"{inner}for x in a:", f"{inner}    {self.function(kind.type_)}(ap, x)"]
            return
        assert isinstance(kind, PrimitiveTupleField)
        kafka_type = get_schema_field_type(field)
        char = _FIXED.get(kafka_type, ("", ""))[0]
        if char in _PACKED_ARRAY_ITEMS and _FIXED[kafka_type][1] == "{v}":
            lines.append(f"{inner}ap(_pack('>%d{char}' % len(a), *a))")
            return
        lines.append(f"{inner}for x in a:")
        if kafka_type in _FIXED:
            char, expression = _FIXED[kafka_type]
            pack = self.constant(struct.Struct(">" + char).pack)
            lines.append(f"{inner}    ap({pack}({expression.format(v='x')}))")
        else:
            self.primitive(kafka_type, flexible, False, "x", lines, inner + "    ")

    def primitive(self, kafka_type: str, flexible: bool, optional: bool, value: str,
                  lines: list[str], indent: str) -> None:
        """Lines writing a string, bytes or records value (or a nullable fixed one)."""
        if kafka_type in _FIXED:  # nullable: kio has no writer for it either
            raise NotImplementedError(f"no writer for a nullable {kafka_type}")
        lines.append(f"{indent}v = {value}")
        inner = indent
        if optional:
            null = "b'\\x00'" if flexible else (
                "b'\\xff\\xff'" if kafka_type == "string" else "b'\\xff\\xff\\xff\\xff'")
            lines += [f"{indent}if v is None:", f"{indent}    ap({null})", f"{indent}else:"]
            inner = indent + "    "
        if flexible:
            lines += [f"{inner}if isinstance(v, str):", f"{inner}    v = v.encode()",
                      f"{inner}ap(_uvarint(len(v) + 1))"]
        elif kafka_type == "string":
            lines += [f"{inner}v = v.encode()", f"{inner}ap(_pack('>h', len(v)))"]
        else:
            lines.append(f"{inner}ap(_pack('>i', len(v)))")
        lines.append(f"{inner}ap(v)")
