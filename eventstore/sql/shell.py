"""``run_shell``: apsw's interactive SQL shell on a read-only engine, tables ready.

The shell's dot-commands that open, attach, import, restore or write databases, load
extensions or run Python or system commands are refused (``.read`` of a ``.py`` file runs
Python; ``.read`` of SQL only feeds the shell what could be typed), as are settings that
would undo the engine's locks (``.dbconfig`` and ``.limit`` with a value); ``.output`` may
write a file anywhere but inside the data directory. Ctrl-C stops a running statement and
returns to the prompt; a timeout, if given, stops any statement that runs longer.
"""

from __future__ import annotations

import os
import shlex
from typing import TextIO

import apsw
from apsw.shell import Shell

from eventstore.sql.engine import TABLES, SqlEngine
from eventstore.sql.timeout import QueryTimeout

_REFUSED = {
    "autoimport", "backup", "close", "connection", "import", "load", "open", "pages_svg",
    "py", "restore", "shell",
}
_SETTERS = {"dbconfig", "limit"}  # show a value with one argument, set it with two


class ReadOnlyShell(Shell):
    """apsw's shell, minus the commands that could change a file of the data directory;
    each statement stopped after ``timeout`` seconds (None: no limit)."""

    def __init__(
        self, engine: SqlEngine, timeout: float | None = None, **streams: TextIO | None
    ) -> None:
        super().__init__(db=engine.connection, **streams)
        self.data_dir = engine.data_dir
        self.timeout = timeout
        self._engine = engine

    def process_command(self, command: str) -> None:
        words = shlex.split(command)
        name = words[0][1:].replace("-", "_")
        python = name == "read" and words[-1].lower().endswith(".py")
        if name in _REFUSED or python or (name in _SETTERS and len(words) > 2):
            raise self.Error(f".{name} is not available: the eventstore SQL shell is read-only")
        if name == "output" and len(words) == 2 and _inside(words[1], self.data_dir):
            raise self.Error(f".output {words[1]}: cannot write inside the data directory")
        super().process_command(command)

    def process_sql(self, sql: str, *args: object, **kwargs: object) -> None:
        """Run ``sql`` as apsw's shell does, under the time limit (and open to Ctrl-C);
        then a ``warning:`` line for each problem it met (records its result left out)."""
        limit = QueryTimeout(self.db, self.timeout)
        try:
            super().process_sql(sql, *args, **kwargs)
        except apsw.InterruptError as error:
            limit.raise_if_expired(error)
            raise
        finally:
            limit.close()
            for warning in self._engine.warnings():
                self.write_error(f"warning: {warning}\n")


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (symbolic links resolved)."""
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def run_shell(
    data_dir: str,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    timeout: float | None = None,
) -> None:
    """Run the interactive shell on ``data_dir`` until the user leaves it; ``timeout``
    seconds is the most any statement may run."""
    with SqlEngine(data_dir) as engine:
        shell = ReadOnlyShell(engine, timeout, stdin=stdin, stdout=stdout, stderr=stderr)
        shell.cmdloop(
            intro=f"eventstore SQL on {engine.data_dir} (read-only)\n"
            f"tables: {', '.join(TABLES)}\n"
            'Enter ".help" for instructions, ".tables" and ".schema" to look around\n'
        )
