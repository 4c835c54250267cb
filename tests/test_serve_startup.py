"""`eventstore serve` refuses to start with one line naming what and where (issue 24):
never "internal error" with a raw exception, and the ready line is printed at any level."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ServerProcess, eventstore_command


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def refused(tmp_path: Path, *argv: str) -> str:
    """The one stderr line of a serve that must not start (exit 1)."""
    done = subprocess.run([*eventstore_command(), "serve", "--data-dir", str(tmp_path / "d"),
                           *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    problems = [line for line in done.stderr.splitlines() if "level=info" not in line]
    assert len(problems) == 1, problems
    assert "internal error" not in problems[0] and "Traceback" not in done.stderr
    return problems[0]


def test_a_kafka_port_in_use_is_named(tmp_path: Path, taken_port: int) -> None:
    line = refused(tmp_path, "--listen", f"127.0.0.1:{taken_port}",
                   "--metrics-listen", "127.0.0.1:0")
    assert line.endswith(f"cannot listen on 127.0.0.1:{taken_port} (listen):"
                         " address already in use")


def test_a_metrics_port_in_use_is_named(tmp_path: Path, taken_port: int) -> None:
    line = refused(tmp_path, "--listen", "127.0.0.1:0",
                   "--metrics-listen", f"127.0.0.1:{taken_port}")
    assert f"cannot listen on 127.0.0.1:{taken_port} (metrics-listen)" in line


def test_a_host_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    line = refused(tmp_path, "--listen", "nosuchhost.invalid:0",
                   "--metrics-listen", "127.0.0.1:0")
    assert "host 'nosuchhost.invalid' does not resolve" in line


def test_an_address_not_on_this_machine_is_named(tmp_path: Path) -> None:
    line = refused(tmp_path, "--listen", "192.0.2.1:0", "--metrics-listen", "127.0.0.1:0")
    assert "cannot listen on 192.0.2.1:0 (listen): not an address of this machine" in line


@pytest.mark.parametrize("setting, said", [
    ('log-level = "loud"', "InvalidConfig: log-level must be one of debug, info, warning,"
                           " error, got 'loud'"),
    ("data-dir = 5", "data-dir must be a string, got 5"),
])
def test_a_bad_config_file_value_is_invalid_config(tmp_path: Path, setting: str,
                                                   said: str) -> None:
    config = tmp_path / "eventstore.toml"
    config.write_text(setting + "\n")
    assert said in refused(tmp_path, "--config", str(config), "--listen", "127.0.0.1:0",
                           "--metrics-listen", "127.0.0.1:0")


def test_the_ready_line_is_printed_at_log_level_warning(tmp_path: Path) -> None:
    config = tmp_path / "eventstore.toml"
    config.write_text('log-level = "warning"\n')
    with ServerProcess.start(str(tmp_path / "d"), config_file=str(config)) as server:
        assert server.address[1] > 0
