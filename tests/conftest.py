"""Fixtures and settings shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
