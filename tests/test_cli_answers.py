"""The CLI's answers to a new user's first commands: exit codes and one line on stderr."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import eventstore_command


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
