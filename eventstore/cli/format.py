"""kcat-style format strings for printing records (``eventstore consume --format``).

``%s`` value, ``%k`` key, ``%p`` partition, ``%o`` offset, ``%t`` timestamp (ms; kcat's
``%T`` works too), ``%h`` headers as ``k=v,k=v``, ``%S`` / ``%K`` value / key length
(-1 when null, as kcat prints), ``%%`` a percent sign; ``\\n``, ``\\t``, ``\\r`` and ``\\\\``
escapes. Values and keys are written as their raw bytes; a null one prints as nothing.
A format is compiled once into a list of parts, so printing a record does no parsing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from eventstore.cli.base import EXIT_USAGE, CliError

Render = Callable[[Any], bytes]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_TOKEN = re.compile(r"%(.)|\\(.)|[^%\\]+", re.DOTALL)


def _length(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


def _headers(record: Any) -> bytes:
    return b",".join(k.encode() + b"=" + (v or b"") for k, v in record.headers)


_FIELDS: dict[str, Render] = {
    "s": lambda r: r.value or b"",
    "k": lambda r: r.key or b"",
    "p": lambda r: str(r.partition).encode(),
    "o": lambda r: str(r.offset).encode(),
    "t": lambda r: str(r.timestamp).encode(),
    "T": lambda r: str(r.timestamp).encode(),
    "h": _headers,
    "S": lambda r: _length(r.value),
    "K": lambda r: _length(r.key),
}


def compile_format(fmt: str) -> Render:
    """A function printing one record as ``fmt`` says; a usage error for an unknown token."""
    parts: list[bytes | Render] = []
    for match in _TOKEN.finditer(fmt):
        field, escape = match.group(1), match.group(2)
        if field is not None and field != "%":
            if field not in _FIELDS:
                raise CliError(f"--format: unknown token %{field} (known: %"
                               + ", %".join(_FIELDS) + ", %%)", EXIT_USAGE)
            parts.append(_FIELDS[field])
        elif escape is not None:
            parts.append(_ESCAPES.get(escape, "\\" + escape).encode())
        else:
            parts.append(b"%" if field == "%" else match.group(0).encode())

    def render(record: Any) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(record) for p in parts)

    return render
