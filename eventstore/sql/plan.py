"""How the ``records`` table answers WHERE and ORDER BY: its xBestIndex and its scan plan.

``best_index`` tells SQLite which constraints the table applies itself (and SQLite then does
not check them again): ``topic =``, ``partition =`` (also ``IN`` lists, received whole),
``offset`` =, <, <=, >, >= (and ``IN``) and ``timestamp`` ranges. It also says when the
requested ORDER BY is the table's own order, (topic, partition, offset), ascending or
descending, so SQLite does not sort. The choice travels to xFilter in ``idxNum`` (the columns
the statement uses, and the direction) and ``idxStr`` (one term per constraint value);
``scan_plan`` turns those and the constraint values into a ``ScanPlan``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from eventstore.sql.coerce import (
    EQ,
    FULL_RANGE,
    GE,
    GT,
    LE,
    LT,
    Affinity,
    IntRange,
    SqlValue,
    integer_range,
    intersect,
)

COLUMNS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers", "txn_state")
TOPIC, PARTITION, OFFSET, TIMESTAMP = range(4)
TXN_STATE = 7  # not stored in the records row: see eventstore.sql.txn_states
_ORDER = (TOPIC, PARTITION, OFFSET)

_SYMBOLS = {EQ: "=", GT: ">", GE: ">=", LT: "<", LE: "<="}
_OPS = {symbol: op for op, symbol in _SYMBOLS.items()}
_IN = "in"
_HANDLED = {TOPIC: {EQ}, PARTITION: {EQ}, OFFSET: set(_SYMBOLS), TIMESTAMP: set(_SYMBOLS)}
_DESCENDING = 1 << len(COLUMNS)  # idxNum bit; the bits below it are the columns used

# Rough row counts, so that SQLite prefers plans that let the table narrow its scan.
_ALL_ROWS = 10**9
_SELECTIVITY = {TOPIC: 10, PARTITION: 10, OFFSET: 1000, TIMESTAMP: 10}


def best_index(info: apsw.IndexInfo) -> bool:
    """xBestIndex of ``records``: claim every constraint the scan can apply exactly."""
    terms: list[str] = []
    single: set[int] = set()  # columns constrained to exactly one value
    rows = _ALL_ROWS
    for n in range(info.nConstraint):
        column, op = info.get_aConstraint_iColumn(n), info.get_aConstraint_op(n)
        if not info.get_aConstraint_usable(n) or op not in _HANDLED.get(column, ()):
            continue
        if column == TOPIC and info.get_aConstraint_collation(n).upper() != "BINARY":
            continue  # topic = 'X' COLLATE NOCASE: leave it to SQLite
        is_in = op == EQ and info.get_aConstraintUsage_in(n)
        if is_in and column == TIMESTAMP:
            continue  # would be one xFilter per value, each scanning: let SQLite filter
        if is_in:
            info.set_aConstraintUsage_in(n, True)
        elif op == EQ:
            single.add(column)
        terms.append(f"{column}{_IN if is_in else _SYMBOLS[op]}")
        info.set_aConstraintUsage_argvIndex(n, len(terms))
        info.set_aConstraintUsage_omit(n, True)
        rows = max(rows // _SELECTIVITY[column], 1)
    if {TOPIC, PARTITION, OFFSET} <= single:
        rows = 1
        info.idxFlags |= apsw.SQLITE_INDEX_SCAN_UNIQUE
    descending = _order_consumed(info, single)
    info.orderByConsumed = descending is not None
    info.idxNum = sum(1 << c for c in info.colUsed if c < len(COLUMNS))
    if descending:
        info.idxNum |= _DESCENDING
    info.idxStr = ",".join(terms)
    info.estimatedRows = rows
    info.estimatedCost = float(rows)
    return True


def _order_consumed(info: apsw.IndexInfo, single: set[int]) -> bool | None:
    """Whether the scan's order satisfies the ORDER BY: None if not, else if descending.

    The scan runs by (topic, partition, offset), all ascending or all descending. A column
    fixed to one value may be skipped or appear anywhere; once offset is reached rows are
    unique, so later terms never decide anything.
    """
    if info.nOrderBy == 0:
        return None
    position = 0
    descending: bool | None = None
    for n in range(info.nOrderBy):
        if position == len(_ORDER):
            break
        column, desc = info.get_aOrderBy_iColumn(n), info.get_aOrderBy_desc(n)
        if column in single:
            continue
        while position < len(_ORDER) and _ORDER[position] != column and _ORDER[position] in single:
            position += 1
        if position == len(_ORDER) or _ORDER[position] != column:
            return None
        if descending is not None and desc != descending:
            return None
        descending = desc
        position += 1
    return bool(descending)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What one xFilter call must return; None sets mean "any", empty ones "none"."""

    columns: frozenset[int]
    descending: bool
    topics: frozenset[str] | None
    partitions: frozenset[int] | None
    offsets: IntRange
    offset_points: frozenset[int] | None
    timestamps: IntRange

    @property
    def matches_nothing(self) -> bool:
        return (
            self.offsets is None
            or self.timestamps is None
            or self.topics == frozenset()
            or self.partitions == frozenset()
            or self.offset_points == frozenset()
        )


def scan_plan(
    idx_num: int, idx_str: str | None, args: Iterable[SqlValue], affinity: Affinity
) -> ScanPlan:
    """The plan for xFilter's arguments, comparing values exactly as SQLite would."""
    topics: set[str] | None = None
    partitions: set[int] | None = None
    points: set[int] | None = None
    offsets: IntRange = FULL_RANGE
    timestamps: IntRange = FULL_RANGE
    for term, value in zip(idx_str.split(",") if idx_str else (), args, strict=True):
        column, symbol = int(term[0]), term[1:]
        values = value if symbol == _IN else (value,)  # an IN list arrives whole, as a set
        if column == TOPIC:
            names = {v for v in map(affinity.text, values) if isinstance(v, str)}
            topics = names if topics is None else topics & names
        elif column == PARTITION:
            numbers = _integers_equal(values, affinity)
            partitions = numbers if partitions is None else partitions & numbers
        elif symbol == _IN:
            numbers = _integers_equal(values, affinity)
            points = numbers if points is None else points & numbers
        elif column == OFFSET:
            offsets = intersect(offsets, integer_range(_OPS[symbol], affinity.integer(value)))
        else:
            timestamps = intersect(timestamps, integer_range(_OPS[symbol], affinity.integer(value)))
    return ScanPlan(
        columns=frozenset(c for c in range(len(COLUMNS)) if idx_num & (1 << c)),
        descending=bool(idx_num & _DESCENDING),
        topics=None if topics is None else frozenset(topics),
        partitions=None if partitions is None else frozenset(partitions),
        offsets=offsets,
        offset_points=None if points is None else frozenset(points),
        timestamps=timestamps,
    )


def _integers_equal(values: Iterable[SqlValue], affinity: Affinity) -> set[int]:
    """The integers equal to any of ``values`` under SQLite's rules."""
    found = set()
    for value in values:
        match = integer_range(EQ, affinity.integer(value))
        if match is not None:
            found.add(match[0])
    return found
