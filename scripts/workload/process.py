"""Child processes that say when they are ready: an eventstore server, a redis-server.

The workload runner and the peer benchmark start their servers themselves (they are
scripts, not tests). A server is ready once it prints a known line; the parent waits for
that line (not for a fixed time) and keeps copying the child's output to a log file, so a
chatty child never blocks on a full pipe and a failure can be read afterwards.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class ProcessFailed(RuntimeError):
    """The child exited, or never printed its ready line; the message quotes its log."""


class ReadyProcess:
    """A child process started by :meth:`start`; ``match`` is its ready line's match."""

    def __init__(self, argv: list[str], ready: re.Pattern[str], log_path: Path,
                 stream: str) -> None:
        self.argv = argv
        self.log_path = log_path
        self._ready = ready
        self._matched = threading.Event()
        self.match: re.Match[str] | None = None
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
        if stream == "stderr":
            pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        self._proc = subprocess.Popen(argv, text=True, stdin=subprocess.DEVNULL, **pipes)
        output = self._proc.stdout if stream == "stdout" else self._proc.stderr
        self._copier = threading.Thread(target=self._copy, args=(output,), daemon=True,
                                        name=f"log-{Path(argv[0]).name}")
        self._copier.start()

    @classmethod
    def start(cls, argv: list[str], ready: str, log_path: Path,
              stream: str = "stderr") -> ReadyProcess:
        """Start ``argv``; return once a line of its ``stream`` matches ``ready``."""
        child = cls(argv, re.compile(ready), log_path, stream)
        if not child._matched.wait(READY_TIMEOUT_S) or child.match is None:
            child.stop()
            raise ProcessFailed(f"{argv[0]} did not get ready (exit code {child._proc.poll()});"
                                f" its log, {log_path}:\n{child.log_tail()}")
        return child

    def _copy(self, output: IO[str]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in output:
                log.write(line)
                log.flush()
                if self.match is None:
                    self.match = self._ready.search(line)
                    if self.match is not None:
                        self._matched.set()
        self._matched.set()  # the child closed its output: waiting longer is pointless

    @property
    def pid(self) -> int:
        """The child's process id (to read its CPU time from /proc)."""
        return self._proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "".join(self.log_path.read_text(encoding="utf-8").splitlines(True)[-lines:])
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM, wait for a clean exit (SIGKILL after STOP_TIMEOUT_S); the exit code."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._copier.join(STOP_TIMEOUT_S)
        return self._proc.returncode


def start_eventstore(data_dir: Path, settings: dict[str, object], log_path: Path
                     ) -> tuple[ReadyProcess, str]:
    """``eventstore serve`` on free loopback ports; the child and its Kafka address."""
    argv = [sys.executable, "-m", "eventstore.cli", "serve", "--data-dir", str(data_dir),
            "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["--set", f"{key}={text}"]
    child = ReadyProcess.start(argv, r"msg=ready .*?kafka=(\S+)", log_path)
    return child, child.match.group(1)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for servers that cannot pick one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
