"""How commands print: aligned tables for people (rich), JSON for scripts, progress bars.

A table's rows are the same dicts that ``--json`` prints, so both always say the same
thing; a missing value (nothing committed, unknown over the wire) is ``-`` in a table, as
Kafka's tools print it, and ``null`` in JSON. Tables are borderless and never wrapped or
cut, also when stdout is a pipe, so ``grep`` and ``awk`` work on them. Progress bars go to
stderr, and only when it is a terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    """A table column: its header (Kafka's spelling) and the row key it shows."""

    header: str
    key: str


def _print(renderable: Any) -> None:
    """Print with rich: styled on a terminal; elsewhere unwrapped, with no trailing blanks."""
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable, crop=False)
        return
    # off a terminal rich would wrap at 80 columns and pad every cell: render unlimited,
    # then strip the padding at line ends
    buffer = io.StringIO()
    Console(file=buffer, highlight=False, width=1_000_000).print(renderable, crop=False)
    sys.stdout.writelines(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def print_table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as an aligned, borderless table with Kafka-style upper-case headers."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                  padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column.header, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(_cell(row.get(c.key)) for c in columns))
    _print(table)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_rows(as_json: bool, columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]
               ) -> None:
    """The rows as JSON (a list of objects) or as a table."""
    if as_json:
        print_json(list(rows))
    else:
        print_table(columns, rows)


def print_line(text: str) -> None:
    """One line of plain text (no markup or highlighting)."""
    _print(Text(text))


def print_warnings(warnings: Iterable[str]) -> None:
    """One ``warning:`` line on stderr for each problem a read met (a gap, a missing or
    damaged segment): what the command printed leaves those records out."""
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


@contextlib.contextmanager
def progress(description: str, total: int | None, unit: str = ""
             ) -> Iterator[Callable[[int], None]]:
    """A bar on stderr for long work; yields ``advance(n)``. Silent off a terminal and
    when ``total`` is None (unknown, or too small to be worth a bar)."""
    if total is None or not sys.stderr.isatty():
        yield lambda _n: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeRemainingColumn()]
    if unit:
        columns.insert(3, TextColumn(f"{{task.completed:,}}/{{task.total:,}} {unit}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
