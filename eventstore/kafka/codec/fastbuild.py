"""kio entities from plain values, by code generated once per schema class.

:func:`~eventstore.kafka.codec.protocol.build` (behind every handler's ``make_response``)
fills a kio entity from keyword values: each field converted by its kind (error codes,
durations, timestamps, nested mappings), or its zero when not given. Looking the kinds up
and branching on them for every field of every response cost more than writing the
response; :func:`entity_builder` generates, once per class, a function doing only what
that class's fields need, nested classes by their own functions.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.schema.errors import ErrorCode

from eventstore.kafka.codec.codegen import Generator

Builder = Callable[[Mapping[str, Any]], Any]
"""The entity of its class from a mapping of field names to plain values."""
CheckNames = Callable[[type, Iterable[str]], None]
"""Raises for names of values given that no field of the class takes."""

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ZEROS: dict[str | None, Any] = {
    "error": ErrorCode.none,
    "duration": datetime.timedelta(0),
    "timestamp": EPOCH,
    "uuid": uuid.UUID(int=0),
    "bool": False,
    "string": "",
    "bytes": b"",
    "float64": 0.0,
    **{t: 0 for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
}
_KINDS = {
    "error_code": "error",
    "timedelta_i32": "duration",
    "timedelta_i64": "duration",
    "datetime_i64": "timestamp",
    "uuid": "uuid",
}
NESTED = ("entity", "entities")  # the kinds of field that hold entities


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one field of a kio entity is converted and filled."""

    name: str
    kind: str  # entity, entities, array, error, duration, timestamp, uuid or plain
    kafka_type: str | None
    inner: Any  # the entity class for entity/entities
    nullable: bool
    has_default: bool


@cache
def field_specs(entity_type: type) -> tuple[FieldSpec, ...]:
    specs = []
    for field in fields(entity_type):
        field_type, nullable = field.type, False
        if get_origin(field_type) in (UnionType, Union):
            nullable = NoneType in get_args(field_type)
            field_type = next(arg for arg in get_args(field_type) if arg is not NoneType)
        kafka_type = field.metadata.get("kafka_type")
        inner = None
        if get_origin(field_type) is tuple:
            inner = get_args(field_type)[0]
            kind = "entities" if is_dataclass(inner) else "array"
        elif is_dataclass(field_type):
            kind, inner = "entity", field_type
        else:
            kind = _KINDS.get(kafka_type, "plain")
        has_default = field.default is not MISSING or field.default_factory is not MISSING
        specs.append(FieldSpec(field.name, kind, kafka_type, inner, nullable, has_default))
    return tuple(specs)


_ERRORS: dict[Any, ErrorCode] = {code.value: code for code in ErrorCode}


def _error(value: Any) -> ErrorCode:
    """An error code from an int, an ErrorCode or a KafkaError (its ``code``)."""
    try:
        return _ERRORS[value]
    except (KeyError, TypeError):
        return ErrorCode(getattr(value, "code", value))


_NO_DURATION = datetime.timedelta(0)


def _duration(value: Any) -> Any:
    """int milliseconds as a timedelta; a timedelta as it is."""
    if not isinstance(value, int):
        return value
    return _NO_DURATION if value == 0 else datetime.timedelta(milliseconds=value)


def _timestamp(value: Any, nullable: bool) -> Any:
    """int milliseconds since the epoch as a datetime (-1: None, when nullable)."""
    if not isinstance(value, int):
        return value
    if value < 0 and nullable:
        return None
    return EPOCH + datetime.timedelta(milliseconds=value)


def _is_mapping(value: Any) -> bool:
    return value.__class__ is dict or isinstance(value, Mapping)


@cache
def entity_builder(entity_type: type, check_names: CheckNames) -> Builder:
    """The generated builder of ``entity_type``; ``check_names`` is called with the names
    of given values that no field of the class (or of a nested one) takes."""
    return _Generator(check_names).compiled(entity_type)


class _Generator(Generator):
    """A builder function ``(values) -> entity`` per entity class."""

    prefix = "_build_"

    def __init__(self, check_names: CheckNames) -> None:
        super().__init__({
            "_M": object(), "_EMPTY": {}, "_check": check_names, "_error": _error,
            "_duration": _duration, "_timestamp": _timestamp, "_is_mapping": _is_mapping,
        })

    def source(self, entity_type: type) -> str:
        lines = ["    get = values.get", "    n = 0"]
        specs = field_specs(entity_type)
        for index, (spec, field) in enumerate(zip(specs, fields(entity_type), strict=True)):
            lines += [f"    v = get({spec.name!r}, _M)", "    if v is _M:",
                      f"        f{index} = {self.missing(spec, field)}", "    else:",
                      "        n += 1", f"        f{index} = {self.convert(spec)}"]
        known = self.constant(frozenset(spec.name for spec in specs))
        lines += ["    if n < len(values):",
                  f"        _check({self.constant(entity_type)}, values.keys() - {known})"]
        lines += self.construction(entity_type, [f"f{i}" for i in range(len(specs))], "    ")
        return "(values):\n" + "\n".join([*lines, "    return o"])

    def missing(self, spec: FieldSpec, field: Any) -> str:
        """The expression of a field not given: its default, else its zero."""
        if field.default is not MISSING:
            return self.constant(field.default)
        if field.default_factory is not MISSING:
            return f"{self.constant(field.default_factory)}()"
        if spec.kind in ("entities", "array"):
            return "()"
        if spec.kafka_type == "records":
            return "b''"
        if spec.nullable:
            return "None"
        if spec.kind == "entity":
            return f"{self.function(spec.inner)}(_EMPTY)"
        return self.constant(_ZEROS[spec.kind if spec.kind != "plain" else spec.kafka_type])

    def convert(self, spec: FieldSpec) -> str:
        """The expression converting given value ``v`` to the field's type."""
        kind = spec.kind
        if kind == "error":
            expression = "_error(v)"
        elif kind == "duration":
            expression = "_duration(v)"
        elif kind == "timestamp":
            expression = f"_timestamp(v, {spec.nullable})"
        elif kind == "entity":
            expression = f"{self.function(spec.inner)}(v) if _is_mapping(v) else v"
        elif kind == "entities":
            function = self.function(spec.inner)
            expression = f"tuple([{function}(x) if _is_mapping(x) else x for x in v])"
        elif kind == "array":
            expression = "tuple(v)"
        else:
            return "v"
        if spec.nullable:
            return f"None if v is None else {expression}"
        return expression
