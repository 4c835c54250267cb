"""The command line over a server with a partition offline, over many topics, and the
commands that read files only: real `eventstore serve`, the real CLI, exit code and the
one line on stderr.

Topic ``t`` (two partitions of 300 records) is built on disk and partition 0's second
segment has its header overwritten, so the server takes that partition offline at start-up
(as tests/test_reliability_corruption.py shows) while partition 1 serves.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability import build_topic, overwrite, segment_files
from support import KafkaConnection, ServerProcess, create_topic
from test_cli_support import assert_error, assert_ok, cli, table_rows

TOPIC = "t"
RECORDS = 300
OFFLINE = "offline: the server answered KAFKA_STORAGE_ERROR for it"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = str(tmp_path_factory.mktemp("cli-offline"))
    build_topic(data_dir, TOPIC, 2, RECORDS)
    overwrite(segment_files(data_dir, TOPIC, 0)[1], 0, b"\xff" * 16)  # SQLite's magic
    with ServerProcess.start(data_dir) as running:
        running.wait_for_log(lambda f: f.get("msg") == "partition offline", 10)
        yield running


def on(server: ServerProcess, *args: str):
    return cli(*args, "--bootstrap-server", server.bootstrap)


def test_describe_marks_the_offline_partition(server: ServerProcess) -> None:
    described = assert_ok(on(server, "topics", "describe", TOPIC))
    rows = {row["PARTITION"]: row for row in table_rows(described)}
    assert (rows["0"]["LOG-START-OFFSET"], rows["0"]["LOG-END-OFFSET"]) == ("-", "-")
    assert (rows["1"]["LOG-START-OFFSET"], rows["1"]["LOG-END-OFFSET"]) == ("0", str(RECORDS))
    assert described.stderr.splitlines() == [
        f"warning: partition {TOPIC}-0: {OFFLINE} (its log, or `eventstore verify` on its"
        " data directory, says why)"]
    (topic,) = on(server, "topics", "describe", TOPIC, "--json").json()
    assert [p["problem"] is not None for p in topic["partitions"]] == [True, False]


def test_consuming_the_offline_partition_is_one_storage_error(server: ServerProcess) -> None:
    refused = on(server, "consume", TOPIC, "--partition", "0", "--from-beginning",
                 "--exit-at-end")
    assert_error(refused, 1, f"KafkaStorageError: partition {TOPIC}-0 is {OFFLINE}")
    assert refused.stdout == ""

    other = assert_ok(on(server, "consume", TOPIC, "--partition", "1", "--from-beginning",
                         "--exit-at-end"))
    assert len(other.stdout.splitlines()) == RECORDS

    # every partition, standalone and in a group: the online one is printed, then the
    # offline one is named
    for group in ((), ("--group", "readers")):
        both = on(server, "consume", TOPIC, *group, "--from-beginning", "--exit-at-end")
        assert len(both.stdout.splitlines()) == RECORDS, group
        assert_error(both, 1, f"partition {TOPIC}-0 not read: {OFFLINE}")


def test_a_group_committed_on_the_offline_partition(server: ServerProcess) -> None:
    """Its lag there is unknown, not negative, and a reset refuses it in one line."""
    with KafkaConnection(server.address) as conn:
        response = conn.request(8, 8, group_id="parked", generation_id_or_member_epoch=-1,
                                member_id="", group_instance_id=None, topics=[
                                    {"name": TOPIC, "partitions": [{
                                        "partition_index": p, "committed_offset": 5,
                                        "committed_leader_epoch": -1,
                                        "committed_metadata": ""} for p in (0, 1)]}])
        assert [p.error_code for t in response.topics for p in t.partitions] == [0, 0]
    rows = {r["PARTITION"]: r for r in table_rows(
        assert_ok(on(server, "groups", "describe", "parked")))}
    assert (rows["0"]["CURRENT-OFFSET"], rows["0"]["LOG-END-OFFSET"], rows["0"]["LAG"]) == (
        "5", "-", "-")
    assert (rows["1"]["LOG-END-OFFSET"], rows["1"]["LAG"]) == (str(RECORDS), str(RECORDS - 5))
    refused = on(server, "groups", "reset-offsets", "parked", "--topic", TOPIC,
                 "--to-latest", "--execute")
    assert_error(refused, 1, f"KafkaStorageError: partition {TOPIC}-0 is {OFFLINE}")


# -- many topics, asked in a few requests -----------------------------------------------------

MANY = 50


class CountingProxy:
    """Forwards TCP connections from ``listen`` to ``target`` and counts the API key of
    every request frame the clients send (the server advertises the proxy's address, so a
    client's every connection goes through it)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.requests: collections.Counter[int] = collections.Counter()
        self._target = target
        self._lock = threading.Lock()
        self._sock = socket.create_server(listen)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        try:
            while chunk := client.recv(65536):
                upstream.sendall(chunk)
                buffer += chunk
                while len(buffer) >= 6 and len(buffer) >= 4 + struct.unpack(">i", buffer[:4])[0]:
                    size, api_key = struct.unpack(">ih", buffer[:6])
                    with self._lock:
                        self.requests[api_key] += 1
                    buffer = buffer[4 + size:]
        except OSError:
            pass
        finally:
            upstream.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self._sock.close()


METADATA, LIST_OFFSETS, DESCRIBE_CONFIGS, DESCRIBE_LOG_DIRS = 3, 2, 32, 35


def test_describing_many_topics_asks_in_a_few_requests(tmp_path: Path) -> None:
    config = tmp_path / "eventstore.toml"
    config.write_text('advertised-host = "127.0.0.2"\n')
    with ServerProcess.start(str(tmp_path / "data"), config_file=str(config)) as server:
        with KafkaConnection(server.address) as conn:
            for n in range(MANY):
                create_topic(conn, f"many-{n:02}", 2)
        host, port = server.bootstrap.rsplit(":", 1)
        assert host == "127.0.0.2"
        proxy = CountingProxy((host, int(port)), server.address)
        try:
            described = assert_ok(on(server, "topics", "describe", "--json")).json()
        finally:
            proxy.close()
    assert [t["topic"] for t in described] == [f"many-{n:02}" for n in range(MANY)]
    assert all(len(t["partitions"]) == 2 for t in described)
    asked = proxy.requests
    assert asked[DESCRIBE_CONFIGS] == 1 and asked[DESCRIBE_LOG_DIRS] == 1, asked
    assert asked[LIST_OFFSETS] == 2, asked  # the start and the end of every partition
    assert asked[METADATA] <= 5, asked  # the client's own, the topics', the leaders'
    assert sum(asked.values()) <= 15, asked


# -- commands that read files only -----------------------------------------------------------


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["segments", TOPIC], ["verify"]])
def test_file_commands_neither_take_nor_suggest_bootstrap_server(tmp_path: Path,
                                                                  command: list[str]) -> None:
    missing = str(tmp_path / "nope")
    said = cli(*command, "--data-dir", missing)
    told = said.stdout + said.stderr  # verify reports it as one of its problems, on stdout
    assert said.code == 1 and "does not exist" in told, said
    assert "--bootstrap-server" not in told, told
    refused = cli(*command, "--bootstrap-server", "127.0.0.1:9092")
    assert_error(refused, 2, "unrecognized arguments: --bootstrap-server")


def test_commands_that_take_bootstrap_server_suggest_it(tmp_path: Path) -> None:
    assert_error(cli("topics", "list", "--data-dir", str(tmp_path / "nope")), 1,
                 "does not exist", "--bootstrap-server HOST:PORT")
