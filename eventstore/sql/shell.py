"""``run_shell``: apsw's interactive SQL shell on a read-only engine, tables ready.

The shell's dot-commands that open, attach, import or write databases, load extensions or
run Python or system commands are refused, as are settings that would undo the engine's
locks (``.dbconfig`` and ``.limit`` with a value); ``.output`` may write a file anywhere
but inside the data directory.
"""

from __future__ import annotations

import os
import shlex
from typing import TextIO

from apsw.shell import Shell

from eventstore.sql.engine import TABLES, SqlEngine

_REFUSED = {
    "autoimport", "backup", "close", "connection", "import", "load", "open", "pages_svg",
    "py", "shell",
}
_SETTERS = {"dbconfig", "limit"}  # show a value with one argument, set it with two


class ReadOnlyShell(Shell):
    """apsw's shell, minus the commands that could change a file of the data directory."""

    def __init__(self, engine: SqlEngine, **streams: TextIO | None) -> None:
        super().__init__(db=engine.connection, **streams)
        self.data_dir = engine.data_dir

    def process_command(self, command: str) -> None:
        words = shlex.split(command)
        name = words[0][1:].replace("-", "_")
        if name in _REFUSED or (name in _SETTERS and len(words) > 2):
            raise self.Error(f".{name} is not available: the eventstore SQL shell is read-only")
        if name == "output" and len(words) == 2 and _inside(words[1], self.data_dir):
            raise self.Error(f".output {words[1]}: cannot write inside the data directory")
        super().process_command(command)


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
) -> None:
    """Run the interactive shell on ``data_dir`` until the user leaves it."""
    with SqlEngine(data_dir) as engine:
        shell = ReadOnlyShell(engine, stdin=stdin, stdout=stdout, stderr=stderr)
        shell.cmdloop(
            intro=f"eventstore SQL on {engine.data_dir} (read-only)\n"
            f"tables: {', '.join(TABLES)}\n"
            'Enter ".help" for instructions, ".tables" and ".schema" to look around\n'
        )
