"""The wire, actor and SQL benchmarks run and print their tables (no timing is asserted here:
speed targets are ratios the scripts report, on machines too noisy for timed tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPTS / args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed, still a report
    return done.stdout


def test_bench_wire_reports_produce_and_consume_ratios() -> None:
    out = run_script("bench_wire.py", "--quick", "--records", "20000")
    rows = dict(re.findall(r"^(produce|consume)\s+[\d,]+\s+[\d,]+\s+(\d+\.\d+)", out, re.M))
    assert sorted(rows) == ["consume", "produce"], out
    assert all(float(ratio) > 0 for ratio in rows.values())


def test_bench_actors_reports_every_measure() -> None:
    out = run_script("bench_actors.py", "--quick")
    for measure in ("produce, 1 partition", "produce, 8 partitions", "consume", "latency"):
        assert re.search(rf"^{re.escape(measure)}\s", out, re.M), out


def test_bench_sql_reports_pushdown_and_scan_ratios() -> None:
    out = run_script("bench_sql.py", "--quick")
    assert re.search(r"^offset range of 1,000 rows, 10,000-record log .* \d+\.\d+x", out, re.M), out
    assert re.search(r"\(2 segment opens\)", out), out
    assert re.search(r"^  bare apsw, Python loop over whole rows .* \d\.\d\d$", out, re.M), out
