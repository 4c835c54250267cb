"""Output formats for the command line: table, csv, json, jsonl, and how bytes are shown."""

from __future__ import annotations

import csv
import io
import json

import pytest

from eventstore.errors import InvalidRequest
from eventstore.sql import FORMATS, render_bytes, write_rows

COLUMNS = ["offset", "key", "value", "note"]
ROWS = [
    (0, b"user-1", b'{"n": 1}', None),
    (1, None, b"\x00\xffab", "two\nlines"),
    (2, b"caf\xc3\xa9", b"", 2.5),
]


def render(fmt: str, rows: list[tuple] = ROWS) -> str:
    out = io.StringIO()
    assert write_rows(out, fmt, COLUMNS, iter(rows)) == len(rows)
    return out.getvalue()


def test_bytes_are_text_when_utf8_else_escaped() -> None:
    assert render_bytes(b"caf\xc3\xa9") == "café"
    assert render_bytes(b"\x00\xffab") == "\\x00\\xffab"
    assert render_bytes(b"") == ""


def test_table_aligns_columns() -> None:
    lines = render("table").splitlines()
    assert lines[0].split() == COLUMNS
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["0", "user-1", '{"n":', '1}', "NULL"]
    assert "two\\nlines" in lines[3] and "\\x00\\xffab" in lines[3]
    assert lines[0].index("key") == lines[2].index("user-1") == lines[3].index("NULL")
    assert lines[0].index("note") == lines[2].index("NULL", 20) == lines[3].index("two")


def test_csv_round_trips_text() -> None:
    parsed = list(csv.reader(io.StringIO(render("csv"))))
    assert parsed[0] == COLUMNS
    assert parsed[1] == ["0", "user-1", '{"n": 1}', ""]
    assert parsed[2] == ["1", "", "\\x00\\xffab", "two\nlines"]


def test_json_and_jsonl_hold_the_same_objects() -> None:
    as_json = json.loads(render("json"))
    as_jsonl = [json.loads(line) for line in render("jsonl").splitlines()]
    assert as_json == as_jsonl
    assert as_json[0] == {"offset": 0, "key": "user-1", "value": '{"n": 1}', "note": None}
    assert as_json[2]["key"] == "café" and as_json[2]["note"] == 2.5
    assert json.loads(render("json", [])) == []


def test_every_format_is_listed_and_others_refused() -> None:
    for fmt in FORMATS:
        render(fmt)
    with pytest.raises(InvalidRequest, match="unknown output format"):
        render("xml")
