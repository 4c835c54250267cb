"""The CLI's answers to a new user's first commands: exit codes and one line on stderr."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import KafkaConnection, ServerProcess, eventstore_command
from test_cli_support import assert_error, assert_ok, cli


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*eventstore_command(), *argv], capture_output=True, text=True,
                          timeout=60)


def test_version_prints_the_package_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("eventstore 0.")


def test_zero_partitions_is_refused_with_invalid_partitions(tmp_path: Path) -> None:
    result = _run("topics", "create", "p", "--partitions", "0", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "InvalidPartitions" in result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(str(tmp_path_factory.mktemp("cli-answers"))) as running:
        assert_ok(cli("topics", "create", "alt", "--config", "retention.ms=5000",
                      "--bootstrap-server", running.bootstrap))
        yield running


def on(server: ServerProcess, *args: str):
    return cli(*args, "--bootstrap-server", server.bootstrap)


@pytest.mark.parametrize("change, said", [
    ("bogus=1", "unknown topic config key 'bogus'"),
    ("segment.bytes=abc", "segment.bytes: expected an integer, got 'abc'"),
    ("retention.ms=-7", "retention.ms: must be -1 or a non-negative integer, got -7"),
])
def test_a_refused_config_change_is_an_error_not_altered(server: ServerProcess, change: str,
                                                         said: str) -> None:
    assert_error(on(server, "topics", "alter", "alt", "--config", change), 1, "InvalidConfig", said)
    described = json.loads(assert_ok(on(server, "topics", "describe", "alt", "--json")).stdout)
    assert described[0]["config"]["retention.ms"] == "5000"


def _exists(server: ServerProcess, topic: str) -> bool:
    listed = assert_ok(on(server, "topics", "list", "--json")).stdout
    return topic in {row["topic"] for row in json.loads(listed)}


def test_zero_partitions_over_the_wire_is_invalid_partitions(server: ServerProcess) -> None:
    assert_error(on(server, "topics", "create", "zero", "--partitions", "0"), 1,
                 "InvalidPartitions", "got 0")
    assert not _exists(server, "zero")


def test_replication_factor_one_is_taken_more_is_refused(server: ServerProcess,
                                                         tmp_path: Path) -> None:
    assert_ok(on(server, "topics", "create", "rf", "--replication-factor", "1"))
    assert _exists(server, "rf")
    assert_error(on(server, "topics", "create", "rf3", "--replication-factor", "3"), 1,
                 "InvalidReplicationFactor", "3 larger than available brokers: 1")
    assert_error(cli("topics", "create", "rf0", "--replication-factor", "0",
                     "--data-dir", str(tmp_path / "d")), 1, "InvalidReplicationFactor")
    assert not _exists(server, "rf3")


def test_deleting_a_missing_group_says_it_does_not_exist(server: ServerProcess) -> None:
    assert_error(on(server, "groups", "delete", "gdel"), 1, "GroupIdNotFound",
                 "consumer group 'gdel' does not exist")


@pytest.mark.parametrize("size, said", [
    (-1326692701, "invalid request size -1326692701 (negative)"),
    (struct.unpack(">i", b"GET ")[0], "invalid request size 1195725856 (larger than"
     " socket.request.max.bytes=104857600; its first bytes read as text 'GET ': not a Kafka"
     " client?)"),
])
def test_a_random_frame_is_logged_as_an_invalid_size(server: ServerProcess, size: int,
                                                      said: str) -> None:
    since = len(server.lines)
    with KafkaConnection(server.address) as conn:
        conn.sock.sendall(struct.pack(">i", size))
        assert conn.closed_by_server(10)
    logged = server.wait_for_log(lambda f: f.get("msg", "").startswith("connection closed"),
                                 10, since=since)
    assert logged["msg"].startswith(f"connection closed: {said}; peer="), logged
    assert "is over" not in logged["msg"]


def test_a_record_over_max_message_bytes_shows_the_servers_message(server: ServerProcess
                                                                   ) -> None:
    assert_ok(on(server, "topics", "create", "small", "--config", "max.message.bytes=100"))
    refused = cli("produce", "small", "--bootstrap-server", server.bootstrap,
                  stdin="x" * 500 + "\n")
    line = assert_error(refused, 1, "RecordTooLarge: batch of 1 records is 570 bytes,"
                        " over max.message.bytes 100")
    assert "configurable maximum" not in line and "0 of" not in line, line


README = Path(__file__).resolve().parent.parent / "README.md"
TOUR_DESCRIBE = "$ eventstore topics describe clicks --bootstrap-server 127.0.0.1:9092"


def _tour_block(command: str) -> list[list[str]]:
    """The output the README's tour shows after ``command``, as rows of cells."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == command) + 1
    block = []
    for line in lines[start:]:
        if not line.strip() or line.strip().startswith("$"):
            break
        block.append(line.split())
    return block


def test_the_tours_describe_over_the_wire_is_real_output(server: ServerProcess) -> None:
    clicks = "".join(f"user-{i % 5}:{{\"page\": \"/p/{i}\"}}\n" for i in range(1, 301))
    assert_ok(on(server, "topics", "create", "clicks", "--partitions", "3",
                 "--config", "segment.bytes=2048"))
    first = 'alice:{"page": "/"}\nbob:{"page": "/docs"}\nalice:{"page": "/pricing"}\n'
    for lines, extra in [(first, ()), (clicks, ("--header", "source=tour")),
                         (clicks, ("--header", "source=tour"))]:
        assert_ok(cli("produce", "clicks", "-K", ":", *extra, "--bootstrap-server",
                      server.bootstrap, stdin=lines))
    described = assert_ok(on(server, "topics", "describe", "clicks"))
    assert described.table() == _tour_block(TOUR_DESCRIBE)
