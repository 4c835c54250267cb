"""The storage benchmark runs and reports its three ratios (no timing is asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_storage.py"


def test_bench_storage_quick_prints_the_three_ratios(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ratios = dict(re.findall(r"^ratio (\w+) = (\d+\.\d+) \(target ", done.stdout, re.M))
    assert sorted(ratios) == ["append", "open", "read"], done.stdout
    assert all(float(value) > 0 for value in ratios.values())
    assert list(tmp_path.iterdir()) == [], "the benchmark must remove what it built"
