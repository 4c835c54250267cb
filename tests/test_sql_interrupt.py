"""A running SQL query can be stopped: Ctrl-C in the shell (driven under a pseudo-terminal)
and SIGINT for ``eventstore sql QUERY`` stop a recursive CTE that would run forever, and so
do ``--timeout`` and ``store.sql(..., timeout=)``, with one line. The shell refuses
``.restore``, which would create a file inside a partition folder.

The endless query returns one row at once and then searches forever for a second: its
first row says it is running when the interrupt is sent (the shell shows rows only at the
end of a statement, so there the CPU time it burns says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest
from support import eventstore_command, wait_until
from test_sql_data import file_hashes

from eventstore import EventStore
from eventstore.errors import KafkaTimeoutError

ENDLESS = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
           " SELECT 'running-' || i FROM n WHERE i = 1 OR i < 0")
STOP_S = 10.0  # how long an interrupted query may take to stop (it stops in milliseconds)
BUSY_S = 0.3  # CPU time an idle shell never burns, a running query in a fraction of a second


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _controlling_terminal() -> None:
    """In the child (a new session): make stdin, the pty, its controlling terminal, so ^C
    typed there is SIGINT to it, with SIGINT's default action whatever the parent ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``eventstore`` run with a pseudo-terminal as its terminal, as a user types at it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*eventstore_command(), *args], stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.screen = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears on the screen after what was expected before it."""

        def shown() -> bool:
            if select.select([self.master], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):  # OSError: the child closed the terminal
                    self.screen += os.read(self.master, 65536)
            return text.encode() in self.screen

        wait_until(shown, timeout, f"{text!r} on the terminal; it shows {self.screen[-500:]!r}")
        self.screen = self.screen[self.screen.index(text.encode()) + len(text):]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(data_dir: str) -> Iterator[Terminal]:
    shell = Terminal("sql", "--data-dir", data_dir)
    yield shell
    shell.close()


def test_ctrl_c_stops_a_running_query_in_the_shell(terminal: Terminal) -> None:
    terminal.expect("sqlite> ")
    terminal.type(".mode list\n")
    terminal.expect("sqlite> ")
    idle = cpu_seconds(terminal.proc.pid)
    terminal.type(ENDLESS + ";\n")
    wait_until(lambda: cpu_seconds(terminal.proc.pid) > idle + BUSY_S, 30, "the query to run")
    started = time.monotonic()
    terminal.type("\x03")
    terminal.expect("sqlite> ", timeout=STOP_S)
    assert time.monotonic() - started < STOP_S
    terminal.type("SELECT 'after-' || 2;\n")
    terminal.expect("after-2")
    terminal.type(".quit\n")
    assert terminal.proc.wait(timeout=30) == 0


@pytest.fixture
def store_dir(data_dir: str) -> str:
    """A data directory with one topic of two partitions."""
    with EventStore.open(data_dir) as store:
        store.create_topic("t", partitions=2)
        store.producer().send("t", b"v", partition=0).get(timeout=10)
    return data_dir


def test_restore_is_refused_and_creates_no_file(store_dir: str) -> None:
    before = file_hashes(store_dir)
    target = os.path.join(store_dir, "t-0", "restored.db")
    shell = Terminal("sql", "--data-dir", store_dir)
    try:
        shell.expect("sqlite> ")
        shell.type(f".restore {target}\n")
        shell.expect(".restore is not available")
        shell.type(f".restore main {target}\n")
        shell.expect(".restore is not available")
        shell.type(".quit\n")
        assert shell.proc.wait(timeout=30) == 0
    finally:
        shell.close()
    assert not os.path.exists(target)
    assert file_hashes(store_dir) == before


def test_sigint_stops_eventstore_sql_query(data_dir: str) -> None:
    proc = subprocess.Popen(
        [*eventstore_command(), "sql", "--data-dir", data_dir, "--format", "csv", ENDLESS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        output = b""

        def running() -> bool:
            nonlocal output
            if select.select([proc.stdout], [], [], 0.05)[0]:
                output += os.read(proc.stdout.fileno(), 4096)
            return b"running-1" in output

        wait_until(running, 30, "the query's first row")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOP_S) == 130
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_timeout_stops_eventstore_sql_query_with_one_line(data_dir: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [*eventstore_command(), "sql", "--data-dir", data_dir, ENDLESS, "--timeout", "0.5"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "KafkaTimeoutError" in lines[0] and "0.5 s" in lines[0]
    assert time.monotonic() - started < 30


def test_timeout_in_the_shell_stops_each_statement(data_dir: str) -> None:
    shell = Terminal("sql", "--data-dir", data_dir, "--timeout", "0.5")
    try:
        shell.expect("sqlite> ")
        shell.type(ENDLESS + ";\n")
        shell.expect("KafkaTimeoutError")
        shell.expect("sqlite> ", timeout=STOP_S)
        shell.type("SELECT 'after-' || 3;\n")
        shell.expect("after-3")
    finally:
        shell.close()


def test_store_sql_timeout(store_dir: str) -> None:
    with EventStore.open(store_dir) as store:
        with pytest.raises(KafkaTimeoutError, match="timeout of 0.2 s"):
            store.sql(ENDLESS, timeout=0.2)
        assert store.sql("SELECT count(*) FROM records", timeout=5) == [(1,)]


def test_bad_timeouts_are_usage_errors(data_dir: str) -> None:
    for value in ("0", "-1", "nan", "soon"):
        done = subprocess.run(
            [*eventstore_command(), "sql", "--data-dir", data_dir, "SELECT 1", "--timeout",
             value], capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2 and "positive number of seconds" in done.stderr
