"""The shipped workload scenarios run in their short form (``--ci``) and pass their own
verification, and their reports agree with what the store holds afterwards.

Each run is the one command a user types (``python -m scripts.workload``) with a kept
data directory; the store is then opened on its own and its log-end-offsets, segment
counts and committed offsets are compared with the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventstore import EventStore

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scripts" / "scenarios").glob("*.toml"))
RUN_TIMEOUT_S = 120


def run_scenario(scenario: Path, tmp_path: Path, *options: str) -> tuple[dict[str, Any], Path]:
    """Run a scenario in its CI form; its report and kept data directory."""
    out, data = tmp_path / "out", tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "scripts.workload", str(scenario), "--ci", "--quiet",
         "--out", str(out), "--data-dir", str(data), *options],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report_path = out / "report.json"
    assert report_path.exists(), done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "report.txt").read_text() in done.stdout
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    return report, data


def check_against_store(report: dict[str, Any], data_dir: Path) -> None:
    """The report's counts are what the store holds; every record is accounted for."""
    assert report["verification"] == {"passed": True, "failures": []}
    with EventStore.open(str(data_dir)) as store:
        held = {(p.topic, p.partition): p
                for name in store.list_topics() for p in store.describe_topic(name).partitions}
        for entry in report["store"]:
            partition = held[entry["topic"], entry["partition"]]
            assert entry["log_end_offset"] == partition.log_end_offset
            assert entry["log_start_offset"] == partition.log_start_offset
            assert entry["appended"] == entry["acknowledged"] == partition.log_end_offset
            if entry["segments"] is not None:
                assert entry["segments"] == partition.segments
        produced = sum(p.log_end_offset for p in held.values())
        assert report["produced"]["records"] == produced > 0
        for group in report["groups"]:
            check = group["verification"]
            assert check["read"] + check["lost_to_retention"] == produced, group["name"]
            assert check["missing"] == check["mismatched"] == check["order_violations"] == 0
            committed = {(p.topic, p.partition): p.committed_offset
                         for p in store.describe_group(group["name"]).partitions}
            assert committed == {tp: p.log_end_offset for tp, p in held.items()}


def groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {group["name"]: group for group in report["groups"]}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_shipped_scenario_passes_on_the_embedded_store(scenario: Path, tmp_path: Path) -> None:
    report, data_dir = run_scenario(scenario, tmp_path)
    check_against_store(report, data_dir)
    assert report["target"] == "embedded"
    by_name = groups(report)
    if scenario.stem == "slow-consumer":
        assert by_name["slow"]["lag"]["peak"] > by_name["fast"]["lag"]["peak"]
    elif scenario.stem == "join-leave":
        assert [c["members"] for c in report["changes"]] == [2, -1, -2]
        assert by_name["workers"]["members"]["most"] == 4
        assert by_name["workers"]["rebalances"]
        assert not by_name["observer"]["rebalances"]
    elif scenario.stem == "tiny-segments":
        assert all(entry["segments"] > 10 for entry in report["store"])
        segments = sum(entry["segments"] for entry in report["store"])
        assert f"store metrics: {segments:,} segments;" in report_text(report)
    elif scenario.stem == "retention":
        check_retention(report)


def report_text(report: dict[str, Any]) -> str:
    return Path(report["files"]["text"]).read_text()


def check_retention(report: dict[str, Any]) -> None:
    """What the retention scenario promises: the slow group loses records to retention,
    the one that keeps up none."""
    by_name = groups(report)
    assert any(entry["log_start_offset"] > 0 for entry in report["store"])
    assert by_name["archiver"]["verification"]["lost_to_retention"] > 0
    assert by_name["live"]["verification"]["lost_to_retention"] == 0


def test_steady_passes_over_the_kafka_protocol(tmp_path: Path) -> None:
    report, data_dir = run_scenario(ROOT / "scripts" / "scenarios" / "steady.toml", tmp_path,
                                    "--target", "kafka")
    assert report["target"] == "kafka"
    assert report["bootstrap_server"].startswith("127.0.0.1:")
    check_against_store(report, data_dir)
    # every client ran in its own process, and the report says what each one cost
    cpu = report["cpu_percent"]
    members = sum(group["members"]["start"] for group in groups(report).values())
    clients = [name for name in cpu if name not in ("server", "runner")]
    assert len(clients) == report["produced"]["producers"] + members
    assert cpu["server"] > 0 and all(cpu[name] > 0 for name in clients)
    assert "CPU (% of one core): server" in report_text(report)


def test_retention_loses_records_to_retention_over_the_kafka_protocol(tmp_path: Path) -> None:
    """librdkafka reads ahead up to 64 MiB by default, so a slow group held every record in
    memory before retention deleted it: the scenario bounds the archiver's read-ahead."""
    report, data_dir = run_scenario(ROOT / "scripts" / "scenarios" / "retention.toml",
                                    tmp_path, "--target", "kafka")
    assert report["target"] == "kafka"
    check_against_store(report, data_dir)
    check_retention(report)
    assert "store clicks: - segments;" in report_text(report)


def test_shipped_scenarios_cover_the_issue() -> None:
    assert {path.stem for path in SCENARIOS} >= {
        "steady", "burst", "slow-consumer", "join-leave", "tiny-segments", "retention"}
