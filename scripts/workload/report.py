"""The report of a run: a JSON document, a short text table, and a PNG plot.

Rates: produced = acknowledged records (value bytes; MB = 10^6 bytes) over the time from
t0 until the last producer flushed; consumed = records a group read (re-reads included)
over the time from t0 until it reached lag 0 (or the run ended). Latency: from send to
the record coming out of a member's poll, every read. Lag: records in the store (its
log-end-offsets) that the group has not reached yet, sampled every tick; ``drain_s`` is
the time from the peak until the lag first fell to 1 % of it, ``final_drain_s`` the
time from the end of producing to lag 0. Rebalances: the spans during which some of a
group's partitions had no member (from the first revocation, or a member leaving, until
every partition is assigned again).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from .runner import GroupRun, RunResult  # noqa: E402

MB = 1_000_000
DRAIN_FRACTION = 0.01
RATE_WINDOW_S = 1.0


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of an already sorted list (None when empty)."""
    if not ordered:
        return None
    return ordered[min(max(math.ceil(fraction * len(ordered)) - 1, 0), len(ordered) - 1)]


def rebalances(group: GroupRun, t0: float) -> list[dict[str, float]]:
    """The group's rebalances after t0: spans during which some of its partitions had no
    member (from the first revocation, or a member leaving, to the last assignment)."""
    events = sorted((at, number, kind, count)
                    for number, member in enumerate(group.members)
                    for at, kind, count in member.events)
    held: dict[int, int] = {}
    spans = []
    begun: float | None = None
    for at, number, kind, count in events:
        held[number] = count if kind == "assigned" else 0
        short = sum(held.values()) < len(group.partitions)
        if short and begun is None:
            begun = at
        elif not short and begun is not None:
            spans.append((begun, at))
            begun = None
    return [{"at_s": round(start - t0, 3), "duration_ms": round((end - start) * 1000, 1)}
            for start, end in spans if start >= t0]


def _rate(amount: float, seconds: float | None) -> float:
    return amount / seconds if seconds else 0.0


def _lag(result: RunResult, name: str) -> dict[str, Any]:
    series = [(s.t, s.lag[name]) for s in result.samples]
    peak_at, peak = max(series, key=lambda point: point[1], default=(0.0, 0))
    drained = next((t for t, lag in series if t > peak_at and lag <= peak * DRAIN_FRACTION),
                   None)
    group = result.groups[name]
    return {
        "peak": peak,
        "peak_at_s": round(peak_at, 2),
        "drain_s": None if drained is None or not peak else round(drained - peak_at, 2),
        "final_drain_s": None if group.drained_at is None
        else round(max(group.drained_at - result.producing_done_at, 0.0), 2),
    }


def _group(result: RunResult, name: str) -> dict[str, Any]:
    group = result.groups[name]
    reads = result.ledger.reads[name]
    latencies = sorted(x for m in group.members for x in m.latencies_ms)
    end = group.drained_at or result.ended_at
    verdict = group.verdict
    return {
        "name": name,
        "members": {"start": group.spec.members,
                    "most": max(s.members[name] for s in result.samples),
                    "processing_ms_per_record": group.spec.processing_ms},
        "consumed": {
            "records": reads.records,
            "mb": round(reads.bytes / MB, 3),
            "seconds": round(end - result.t0, 3),
            "records_per_s": round(_rate(reads.records, end - result.t0), 1),
            "mb_per_s": round(_rate(reads.bytes / MB, end - result.t0), 3),
        },
        "latency_ms": {label: None if (v := percentile(latencies, q)) is None else round(v, 2)
                       for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99),
                                        ("max", 1.0))},
        "lag": _lag(result, name),
        "initial_join_ms": round(group.joined_s * 1000, 1),
        "rebalances": rebalances(group, result.t0),
        "errors": dict(group.errors()),
        "verification": {
            "passed": not any(f.startswith(f"group {name}:") for f in result.failures),
            "read": verdict.read,
            "duplicates": verdict.duplicates,
            "lost_to_retention": verdict.lost_to_retention,
            "skipped_deleted": group.counter("skipped_deleted"),
            "missing": verdict.missing,
            "mismatched": verdict.mismatched,
            "unacknowledged_reads": verdict.unacked,
            "order_violations": group.counter("order_violations"),
            "skipped_present": group.counter("skipped_present"),
            "committed": {f"{t}-{p}": offset for (t, p), offset in group.committed.items()},
        },
    }


def build(result: RunResult, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a run; ``meta`` says how it was started (file, target...)."""
    ledger = result.ledger
    producing = result.producing_done_at - result.t0
    scenario = result.scenario
    return {
        **meta,
        "scenario": {"name": scenario.name, "description": scenario.description,
                     "duration_s": scenario.duration_s, "records": scenario.records},
        "target": result.target,
        "producing_s": round(producing, 3),
        "run_s": round(result.ended_at - result.t0, 3),
        "produced": {
            "records": ledger.produced,
            "mb": round(ledger.produced_bytes / MB, 3),
            "records_per_s": round(_rate(ledger.produced, producing), 1),
            "mb_per_s": round(_rate(ledger.produced_bytes / MB, producing), 3),
            "producers": len(result.producers),
            "errors": dict(result.produce_errors()),
        },
        "groups": [_group(result, name) for name in result.groups],
        "changes": [{"at_s": round(t, 2), "group": g, "members": d}
                    for t, g, d in result.changes],
        "changes_not_reached": [{"at_s": t, "group": g, "members": d}
                                for t, g, d in result.changes_not_reached],
        "store": [
            {"topic": t, "partition": p, "log_start_offset": o.log_start_offset,
             "log_end_offset": o.log_end_offset, "segments": o.segments,
             "appended": o.log_end_offset - ledger.acks[t, p].base,
             "acknowledged": ledger.acks[t, p].count}
            for (t, p), o in sorted(result.store.items())
        ],
        "cpu_percent": result.cpu,
        "verification": {"passed": result.passed, "failures": result.failures},
        "errors": result.errors(),
        "clean": result.clean,
        "timeline": [
            {"t": round(s.t, 3), "phase": s.phase, "produced": s.produced,
             "consumed": s.consumed, "lag": s.lag, "members": s.members}
            for s in result.samples
        ],
    }


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


CLIENT_BOUND_PERCENT = 90.0  # a process this busy limits the run, not the others


def cpu_lines(cpu: dict[str, float]) -> list[str]:
    """Who used how much CPU during the run (% of one core), and who, if anyone, was the
    bottleneck: the server, or a client process near a whole core."""
    if not cpu:
        return []
    parts = [f"{name} {value:.0f} %" for name, value in sorted(
        cpu.items(), key=lambda item: (item[0] != "server", -item[1]))]
    lines = ["  CPU (% of one core): " + ", ".join(parts)]
    bound = [name for name, value in cpu.items() if value >= CLIENT_BOUND_PERCENT]
    if bound:
        lines.append(f"  near a whole core: {', '.join(sorted(bound))}: "
                     + ("the server limits this run" if bound == ["server"]
                        else "these, not only the server, may limit this run"))
    return lines


def text_table(report: dict[str, Any]) -> str:
    """The short table: one line for producing, one per group, then any failures."""
    verdict = "PASSED" if report["verification"]["passed"] else "FAILED"
    errors = sum(sum(counts.values()) for counts in report["errors"].values())
    lines = [f"scenario {report['scenario']['name']} on {report['target']}:"
             f" {report['producing_s']:.1f} s producing, {report['run_s']:.1f} s in all;"
             f" verification {verdict}, {errors or 'no'} error{'' if errors == 1 else 's'}"]
    header = ("", "records", "rec/s", "MB/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
              "peak lag", "drain s", "rebalances", "dup", "lost(ret)", "errors")
    produced = report["produced"]
    rows = [("produced", _fmt(produced["records"]), _fmt(produced["records_per_s"]),
             _fmt(produced["mb_per_s"], ".2f"), "", "", "", "", "", "", "", "", "",
             str(sum(produced["errors"].values())))]
    for group in report["groups"]:
        consumed, latency, lag = group["consumed"], group["latency_ms"], group["lag"]
        spans = group["rebalances"]
        mean = sum(r["duration_ms"] for r in spans) / len(spans) if spans else None
        check = group["verification"]
        rows.append((
            f"group {group['name']}", _fmt(consumed["records"]),
            _fmt(consumed["records_per_s"]), _fmt(consumed["mb_per_s"], ".2f"),
            *(_fmt(latency[k], ".1f") for k in ("p50", "p95", "p99", "max")),
            _fmt(lag["peak"]), _fmt(lag["drain_s"], ".1f"),
            f"{len(spans)}" + (f" ({mean:.0f} ms)" if spans else ""),
            _fmt(check["duplicates"]), _fmt(check["lost_to_retention"]),
            str(sum(group["errors"].values()))))
    lines += _columns([header, *rows])
    lines += cpu_lines(report.get("cpu_percent", {}))
    lines += store_lines(report["store"])
    lines += [f"  FAILED: {failure}" for failure in report["verification"]["failures"]]
    lines += [f"  ERROR: {who}: {error} (x{count})"
              for who, counts in report["errors"].items() for error, count in counts.items()]
    return "\n".join(lines) + "\n"


def store_lines(store: list[dict[str, Any]]) -> list[str]:
    """One line per topic: its partitions' offsets and segment files at the end (the
    segment count is known only on the embedded store: "-" over the wire)."""
    topics: dict[str, list[dict[str, Any]]] = {}
    for entry in store:
        topics.setdefault(entry["topic"], []).append(entry)
    lines = []
    for topic, entries in topics.items():
        counts = [entry["segments"] for entry in entries]
        segments = "-" if None in counts else f"{sum(counts):,}"
        offsets = ", ".join(f"{e['partition']}: {e['log_start_offset']:,}-{e['log_end_offset']:,}"
                            for e in entries)
        lines.append(f"store {topic}: {segments} segments; log-start-end offsets {offsets}")
    return lines


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def _rates(times: list[float], totals: Iterable[int]) -> list[float]:
    """Rates over a trailing window of about RATE_WINDOW_S (one tick's batches alias)."""
    values = list(totals)
    rates = []
    back = 0
    for i, (t, total) in enumerate(zip(times, values, strict=True)):
        while back < i and t - times[back] > RATE_WINDOW_S:
            back += 1
        before_t, before = (times[back - 1], values[back - 1]) if back else (0.0, 0)
        rates.append((total - before) / max(t - before_t, 1e-9))
    return rates


def plot(report: dict[str, Any], path: Path) -> None:
    """Throughput (records/s) and lag over time; rebalances shaded, changes marked."""
    timeline = report["timeline"]
    times = [s["t"] for s in timeline]
    figure, (rates, lags) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    rates.plot(times, _rates(times, (s["produced"] for s in timeline)), label="produced",
               color="black")
    for group in report["groups"]:
        name = group["name"]
        line, = rates.plot(times, _rates(times, (s["consumed"][name] for s in timeline)),
                           label=f"consumed by {name}")
        lags.plot(times, [s["lag"][name] for s in timeline], label=name,
                  color=line.get_color())
        for span in group["rebalances"]:
            for axis in (rates, lags):
                axis.axvspan(span["at_s"], span["at_s"] + span["duration_ms"] / 1000,
                             color=line.get_color(), alpha=0.15)
    for change in report["changes"]:
        for axis in (rates, lags):
            axis.axvline(change["at_s"], color="grey", linestyle="--", linewidth=0.8)
        rates.annotate(f"{change['group']} {change['members']:+d}", (change["at_s"], 0),
                       xycoords=("data", "axes fraction"), fontsize=8, rotation=90,
                       va="bottom", ha="right")
    for axis in (rates, lags):
        axis.axvline(report["producing_s"], color="black", linestyle=":", linewidth=0.8)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", fontsize=8)
    rates.set_ylabel(f"records/s ({RATE_WINDOW_S:g} s window)")
    lags.set_ylabel("lag (records)")
    lags.set_xlabel("seconds since producers started (dotted: producing ended)")
    rates.set_title(f"{report['scenario']['name']} on {report['target']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.txt and report.png in ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "text": out_dir / "report.txt",
             "plot": out_dir / "report.png"}
    report = {**report, "files": {kind: str(path) for kind, path in paths.items()}}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["text"].write_text(text_table(report), encoding="utf-8")
    plot(report, paths["plot"])
    return paths
