"""Fixtures and settings shared by the whole test suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from support import ServerProcess

# "ci" keeps property tests fast and bounded; HYPOTHESIS_PROFILE=thorough digs deeper.
settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    """An empty data directory of its own for one test."""
    path = tmp_path / "data"
    path.mkdir()
    return str(path)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real ``eventstore serve`` processes: ``serve(data_dir=None, **kwargs)`` takes
    ServerProcess.start's arguments (a fresh data directory by default); each server still
    running at the end is stopped with SIGTERM and must exit 0 (see tests/support.py)."""
    servers: list[ServerProcess] = []

    def start(data_dir: str | None = None, **kwargs: Any) -> ServerProcess:
        directory = data_dir or str(tmp_path / f"serve-{len(servers)}")
        servers.append(ServerProcess.start(directory, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        if server.running:
            server.stop()


@pytest.fixture
def server(serve: Callable[..., ServerProcess]) -> ServerProcess:
    """One ``eventstore serve`` on a fresh data directory, ready for clients."""
    return serve()
