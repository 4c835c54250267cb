"""The wire, actor, SQL and request-cost benchmarks run and print their tables (no timing
is asserted here: speed targets are ratios the scripts report, on machines too noisy for
timed tests)."""

from __future__ import annotations

import json
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


def test_bench_partitions_reports_every_figure_and_target() -> None:
    out = run_script("bench_partitions.py", "--topics", "3", "--partitions", "2",
                     "--topics-per-request", "2", "--idle-seconds", "0.5")
    document = json.loads(out[out.index("\n{") + 1:])
    figures = document["figures"]
    assert document["partitions"] == 6
    assert figures["create_topics_requests"] == 2
    assert figures["produce_each_failed"] == 0
    assert figures["limited_soft_limit"] == 1024
    assert figures["limited_offline"] == 0  # 6 partitions fit in 1,024 open files
    assert all(figures[key] > 0 for key in (
        "create_topics_s", "idle_threads", "idle_rss_mib", "idle_open_files",
        "restart_metadata_s", "produce_each_s", "limited_open_files"))
    assert set(document["targets"]) <= set(figures)
    for label in ("CreateTopics of every partition", "restart until it answers Metadata",
                  "one record produced to each partition", "ulimit -n 1,024: offline"):
        assert label in out, out


def test_bench_requests_reports_server_cpu_per_request(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    out = run_script("bench_requests.py", "--requests", "200", "--only", "produce,requests,idle",
                     "--idle-seconds", "1", "--json", str(figures))
    assert re.search(r"eventstore, confluent-kafka linger\.ms=0 acks=all\s*│\s*[\d,]+\s*│\s*[\d,]+",
                     out), out
    for request in ("Fetch, caught up, one record", "Heartbeat", "OffsetCommit",
                    "Metadata, one topic"):
        assert re.search(rf"{re.escape(request)}\s*│.*│\s*-?[\d,]+\s*│", out), out
    assert re.search(r"eventstore \(librdkafka consumers\)\s*│\s*\d+\.\d\d", out), out
    found = json.loads(figures.read_text())
    assert found["produce"]["eventstore"]["count"] == 200
    assert sorted(found["requests"]) == ["echo", "fetch", "heartbeat", "metadata",
                                         "offset_commit", "produce"]


def test_bench_transactions_reports_both_loops_and_exactly_once() -> None:
    out = run_script("bench_transactions.py", "--quick", "--records", "6000")
    rates = re.findall(r"^(plain|transactional)\b.*?\s([\d,]+)\s+([\d,]+)$", out, re.M)
    assert [name for name, _, _ in rates] == ["plain", "transactional"], out
    assert all(int(commits.replace(",", "")) >= 6 for _, _, commits in rates), out
    assert "exactly once: 0 duplicates, 0 losses" in out, out
    assert re.search(r"^ratio \d+\.\d+ \(target >= 0\.7\)", out, re.M), out
