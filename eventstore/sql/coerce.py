"""SQLite's comparison rules, applied to the values of constraints a table handles itself.

When a virtual table tells SQLite it filters ``offset > ?`` itself, SQLite trusts it and
does not check again, and it hands over the value as written, before the column's affinity
applies. So the table must compare exactly as SQLite would: ``offset > '5'`` means
``offset > 5`` (numeric affinity turns well-formed numeric text into a number), ``topic = 5``
means ``topic = '5'`` (text affinity turns numbers into text), numbers sort before text and
text before blobs, and NULL matches nothing. Applying affinity is delegated to SQLite itself
(a private in-memory table with an INTEGER and a TEXT column), so the rule is SQLite's own.
"""

from __future__ import annotations

import math

import apsw

# A value as SQLite stores it, and a row of them.
SqlValue = int | float | str | bytes | None
Row = tuple[SqlValue, ...]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# An inclusive range of integers; None when no integer can match.
IntRange = tuple[int, int] | None
FULL_RANGE: tuple[int, int] = (INT64_MIN, INT64_MAX)

EQ = apsw.SQLITE_INDEX_CONSTRAINT_EQ
GT = apsw.SQLITE_INDEX_CONSTRAINT_GT
GE = apsw.SQLITE_INDEX_CONSTRAINT_GE
LT = apsw.SQLITE_INDEX_CONSTRAINT_LT
LE = apsw.SQLITE_INDEX_CONSTRAINT_LE


class Affinity:
    """Applies an INTEGER or TEXT column's affinity to a value, the way SQLite does."""

    def __init__(self) -> None:
        self._conn = apsw.Connection(":memory:")
        self._conn.execute("CREATE TABLE probe (i INTEGER, t TEXT)")

    def _store(self, column: str, value: SqlValue) -> SqlValue:
        (stored,) = self._conn.execute(
            f"INSERT INTO probe ({column}) VALUES (?) RETURNING {column}", (value,)
        ).fetchone()
        self._conn.execute("DELETE FROM probe")
        return stored

    def integer(self, value: SqlValue) -> SqlValue:
        """``value`` as compared with an INTEGER column (only text can change)."""
        return self._store("i", value) if isinstance(value, str) else value

    def text(self, value: SqlValue) -> SqlValue:
        """``value`` as compared with a TEXT column (only numbers can change)."""
        return self._store("t", value) if isinstance(value, int | float) else value

    def close(self) -> None:
        self._conn.close()


def integer_range(op: int, value: SqlValue) -> IntRange:
    """The integers ``n`` for which ``n <op> value`` holds; ``value`` has had its affinity.

    Text and blobs sort after every number, NULL compares as unknown (never true).
    """
    if value is None:
        return None
    if isinstance(value, str | bytes):
        return FULL_RANGE if op in (LT, LE) else None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):  # every integer is below +inf and above -inf
            holds = op in (LT, LE) if value > 0 else op in (GT, GE)
            return FULL_RANGE if holds else None
        lowest, highest = math.ceil(value), math.floor(value)  # nearest integers >= / <=
        bounds = {
            EQ: (lowest, highest),
            GT: (highest + 1, INT64_MAX),
            GE: (lowest, INT64_MAX),
            LT: (INT64_MIN, lowest - 1),
            LE: (INT64_MIN, highest),
        }[op]
    else:
        bounds = {
            EQ: (value, value),
            GT: (value + 1, INT64_MAX),
            GE: (value, INT64_MAX),
            LT: (INT64_MIN, value - 1),
            LE: (INT64_MIN, value),
        }[op]
    return intersect(bounds, FULL_RANGE)


def intersect(a: IntRange, b: IntRange) -> IntRange:
    """The integers in both ranges (None if none)."""
    if a is None or b is None:
        return None
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None
