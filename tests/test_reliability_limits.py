"""Limits refuse clearly instead of taking the server down: a request past
``max.partitions.per.request`` (INVALID_PARTITIONS), the server past ``max.partitions``
(POLICY_VIOLATION), each named in one line and leaving no folder behind; a data directory
with more partitions than the open-file limit holds open at once serves them all; the
listener at the limit logs one line, not a traceback per connection; SQLite at the limit
names it; ``verify`` reports folders no topic owns.

Servers run with a low open-file limit (the soft RLIMIT_NOFILE is lowered around their
start: a child keeps the limit it was started with).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from reliability import build_topic
from support import (
    KafkaConnection,
    ServerProcess,
    eventstore_command,
    metadata_errors,
    parse_logfmt,
    produce,
    wait_until,
)

from eventstore.errors import TooManyOpenFiles
from eventstore.open_files import open_file_count
from eventstore.storage.segment import ActiveSegment, open_readonly, read_rows
from eventstore.storage.verify import verify

LOW_LIMIT = 400  # room for a few dozen partitions beside the 256 files kept for the rest


@contextlib.contextmanager
def open_file_limit(soft: int) -> Iterator[None]:
    """This process's soft open-file limit lowered to ``soft`` inside the block."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


def start_limited(data_dir: str, soft: int = LOW_LIMIT, **settings: object) -> ServerProcess:
    """A server started with the soft open-file limit ``soft``."""
    with open_file_limit(soft):
        return ServerProcess.start(data_dir, settings=settings)


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*eventstore_command(), *args, "--bootstrap-server", server.bootstrap],
                          capture_output=True, text=True, timeout=60)


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one line a refused command printed, checked to hold every one of ``words``."""
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 1, done
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def logged(server: ServerProcess, message: str) -> list[str]:
    return [line for line in server.lines if parse_logfmt(line).get("msg") == message]


def folders(data_dir: str, topic: str) -> list[str]:
    return [name for name in os.listdir(data_dir) if name.rpartition("-")[0] == topic]


def test_one_request_may_not_add_more_than_the_per_request_cap(serve) -> None:
    server = serve()
    refused(cli(server, "topics", "create", "huge", "--partitions", "100000"),
            "InvalidPartitions", "100000", "max.partitions.per.request")
    assert cli(server, "topics", "create", "grows", "--partitions", "2").returncode == 0
    refused(cli(server, "topics", "alter", "grows", "--partitions", "5000"),
            "InvalidPartitions", "max.partitions.per.request")
    assert not folders(server.data_dir, "huge") and len(folders(server.data_dir, "grows")) == 2
    assert cli(server, "topics", "list").returncode == 0, "the server answers at once"


def test_the_server_holds_at_most_max_partitions(serve) -> None:
    server = serve(settings={"max.partitions": 10})
    assert cli(server, "topics", "create", "first", "--partitions", "8").returncode == 0
    refused(cli(server, "topics", "create", "second", "--partitions", "5"),
            "PolicyViolation", "would make 13", "max.partitions 10")
    refused(cli(server, "topics", "alter", "first", "--partitions", "11"),
            "PolicyViolation", "max.partitions 10")
    assert cli(server, "topics", "create", "second", "--partitions", "2").returncode == 0
    assert not folders(server.data_dir, "second")[2:]


def test_more_partitions_than_the_open_file_limit_holds_are_created_and_all_serve(
        tmp_path) -> None:
    """A partition holds files only while in use (at most ``partition.open.max`` at once,
    by default what the limit holds): 120 partitions under a limit with room for 28 open
    are created, start and serve, none offline (tests/test_idle_partitions.py has more)."""
    data_dir = str(tmp_path / "data")
    build_topic(data_dir, "many", 120, 5)
    server = start_limited(data_dir)
    try:
        assert cli(server, "topics", "create", "wide", "--partitions", "60").returncode == 0
        with KafkaConnection(server.address) as conn:
            assert not any(metadata_errors(conn, "many").values())
            for p in range(120):
                assert produce(conn, "many", p, [b"x"]).error_code == 0, p
            for p in range(60):
                assert produce(conn, "wide", p, [b"x"]).error_code == 0, p
        assert not logged(server, "partition offline")
        assert not [line for line in server.lines if "Traceback" in line]
        server.stop()
    finally:
        server.kill()
    assert verify(data_dir).ok


def answers(server: ServerProcess) -> bool:
    """Whether the server answers an ApiVersions request on a new connection."""
    with contextlib.suppress(OSError), KafkaConnection(server.address, timeout=2) as conn:
        return int(conn.request(18, 0).error_code) == 0
    return False


def test_the_listener_at_the_open_file_limit_logs_one_line(tmp_path) -> None:
    server = start_limited(str(tmp_path / "data"), soft=300)
    sockets: list[socket.socket] = []
    try:
        def refused_one() -> bool:
            with contextlib.suppress(OSError):
                sockets.append(socket.create_connection(server.address, timeout=1))
            return bool(logged(server, "connections not accepted"))

        wait_until(refused_one, 60, "the listener to reach the open-file limit")
        for sock in sockets:
            sock.close()
        wait_until(lambda: answers(server), 30, "the listener to accept again")
        lines = logged(server, "connections not accepted")
        assert len(lines) == 1 and "open-file limit is 300" in lines[0]
        assert "max.connections" in lines[0]
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_sqlite_at_the_open_file_limit_names_it(data_dir: str) -> None:
    active = ActiveSegment.create(data_dir, 0, 0, 0, fsync=False)
    active.close()
    conns = []
    try:
        with open_file_limit(open_file_count() + 20), pytest.raises(
                TooManyOpenFiles, match=r"open-file limit is \d+ \(ulimit -n\): raise it"):
            for _ in range(40):
                conn = open_readonly(active.path)
                conns.append(conn)
                read_rows(conn, active.path, 0, 1, 1)  # how every reader reads a segment
    finally:
        for conn in conns:
            conn.close()


def test_verify_reports_folders_no_topic_owns(data_dir: str) -> None:
    build_topic(data_dir, "kept", 2, 5)
    shutil.copytree(os.path.join(data_dir, "kept-0"), os.path.join(data_dir, "gone-0"))
    os.mkdir(os.path.join(data_dir, "kept-7"))
    report = verify(data_dir)
    assert sorted(os.path.basename(p.path) for p in report.problems) == ["gone-0", "kept-7"]
    assert all("no topic owns" in p.message for p in report.problems)
    done = subprocess.run([*eventstore_command(), "verify", "--data-dir", data_dir],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "gone-0" in done.stdout + done.stderr
