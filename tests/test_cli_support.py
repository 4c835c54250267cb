"""Running the real ``eventstore`` executable for the command-line tests (test_cli_*.py).

``cli(...)`` runs one command to completion and returns its exit code and output;
``assert_error`` checks what every failure must look like: a non-zero exit code, exactly
one line on stderr, and no traceback.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from support import eventstore_command

COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        assert self.code == 0, self
        return [json.loads(line) for line in self.stdout.splitlines()]

    def table(self) -> list[list[str]]:
        """The rows of a printed table, header first, split on runs of blanks."""
        assert self.code == 0, self
        return [line.split() for line in self.stdout.splitlines() if line.strip()]


def cli(*args: str, stdin: str | bytes | None = None, stdin_file: str | None = None,
        env: dict[str, str] | None = None) -> Result:
    """Run ``eventstore ARGS`` and wait for it; stdin from text or from a file."""
    if stdin_file is not None:
        with open(stdin_file, "rb") as source:
            done = subprocess.run([*eventstore_command(), *args], stdin=source,
                                  capture_output=True, timeout=COMMAND_TIMEOUT_S, env=env)
    else:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run([*eventstore_command(), *args], input=data or b"",
                              capture_output=True, timeout=COMMAND_TIMEOUT_S, env=env)
    return Result(done.returncode, done.stdout.decode(errors="replace"),
                  done.stderr.decode(errors="replace"))


def assert_ok(result: Result) -> Result:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """A failure as the CLI promises it: exit ``code``, one stderr line naming the problem
    (each of ``fragments`` in it), no traceback. Returns the line."""
    assert result.code == code, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def table_rows(result: Result) -> list[dict[str, str]]:
    """A printed table as dicts keyed by its header cells (the first upper-case line;
    lines before it, such as a topic's summary line, are skipped)."""
    lines = result.table()
    start = next(i for i, cells in enumerate(lines) if all(c.isupper() for c in cells))
    header, *rows = lines[start:]
    for row in rows:
        assert len(row) == len(header), (header, row)
    return [dict(zip(header, row, strict=True)) for row in rows]
