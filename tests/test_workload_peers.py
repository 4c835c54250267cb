"""The peer benchmark runs end to end on a few records and prints its table (no timing is
asserted here): every path measured, Redis Streams included when redis-server is
installed, ratios to the bare apsw ceiling, and nothing left behind."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_peers.py"


def test_bench_peers_measures_every_path(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--records", "2000", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {match[0].strip(): match[1:] for match in re.findall(
        r"^(\S.*?)\s+([\d,]+)\s+[\d,.]+\s+(\d+\.\d\d)\s+([\d,]+)\s+[\d,.]+\s+(\d+\.\d\d)$",
        done.stdout, re.M)}
    expected = ["bare apsw insert (ceiling)", "eventstore embedded produce",
                "eventstore Kafka protocol produce (confluent-kafka)",
                "bare apsw scan (ceiling)", "eventstore embedded consume",
                "eventstore Kafka protocol consume (confluent-kafka)"]
    if shutil.which("redis-server"):
        expected += ["Redis Streams XADD, pipelined (AOF everysec)",
                     "Redis Streams XREADGROUP + XACK"]
    else:
        assert "Redis Streams skipped: redis-server is not installed" in done.stdout
    assert sorted(rows) == sorted(expected), done.stdout
    for ceiling in ("bare apsw insert (ceiling)", "bare apsw scan (ceiling)"):
        assert rows[ceiling][1] == rows[ceiling][3] == "1.00"
    assert all(int(rate.replace(",", "")) > 0 for row in rows.values() for rate in row[::2])
    assert list(tmp_path.iterdir()) == [], "the benchmark must remove what it built"
