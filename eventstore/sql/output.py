"""Printing query results for the command line: table, csv, json or jsonl.

Bytes (keys, values) are shown as text when they are valid UTF-8, which is what most
events are (JSON, plain strings); other bytes are shown with Python's escapes, ``\\xNN`` for
every byte that is not printable ASCII (``b'\\x00\\xffab'`` prints as ``\\x00\\xffab``). Hex
escapes keep short binary keys readable and recognisable; use SQL's ``hex(value)`` or
``base64`` in the query itself when a lossless, unambiguous form is needed.

NULL is empty in csv, ``null`` in JSON and ``NULL`` in a table. ``json`` writes one array
of objects and ``jsonl`` one object per line; both stream, as csv does. ``table`` aligns
columns to the widest value among the first ``TABLE_SAMPLE`` rows and then streams.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TextIO

from eventstore.errors import InvalidRequest
from eventstore.sql.coerce import SqlValue

FORMATS = ("table", "csv", "json", "jsonl")
TABLE_SAMPLE = 1000
_TABLE_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def render_bytes(data: bytes) -> str:
    """Bytes as text if they are UTF-8, else with ``\\xNN`` escapes for non-printable bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)[2:-1]


def render_value(value: SqlValue) -> str | int | float | None:
    """A value as JSON carries it: bytes become text (see the module doc)."""
    return render_bytes(value) if isinstance(value, bytes) else value


def _text(value: SqlValue, null: str) -> str:
    shown = render_value(value)
    return null if shown is None else str(shown)


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_text(v, "") for v in row])
        count += 1
    return count


def write_jsonl(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(dict(zip(columns, map(render_value, row), strict=True))) + "\n")
        count += 1
    return count


def write_json(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n " if count else "\n ")
        out.write(json.dumps(dict(zip(columns, map(render_value, row), strict=True))))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_table(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    iterator = iter(rows)
    sample: list[list[str]] = []
    for row in iterator:
        sample.append([_text(v, "NULL").translate(_TABLE_ESCAPES) for v in row])
        if len(sample) == TABLE_SAMPLE:
            break
    widths = [len(c) for c in columns]
    for cells in sample:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n"

    out.write(line(columns))
    out.write(line(["-" * w for w in widths]))
    for cells in sample:
        out.write(line(cells))
    count = len(sample)
    for row in iterator:
        out.write(line([_text(v, "NULL").translate(_TABLE_ESCAPES) for v in row]))
        count += 1
    return count


_WRITERS: dict[str, Callable[[TextIO, Sequence[str], Iterable[Sequence]], int]] = {
    "table": write_table,
    "csv": write_csv,
    "json": write_json,
    "jsonl": write_jsonl,
}


def write_rows(out: TextIO, fmt: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write ``rows`` to ``out`` in format ``fmt`` (one of FORMATS); returns the row count."""
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise InvalidRequest(
            f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}"
        ) from None
    return writer(out, columns, rows)
