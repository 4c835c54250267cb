"""Writes grafana/dashboards/*.json, the dashboards users import or provision.

The JSON is generated so that every panel is built the same way (datasource variable,
template variables in every selector, legends, layout) and so that tests can run each
panel's PromQL against a real Prometheus. Edit the panels here, then run

    python grafana/build_dashboards.py

and commit the JSON it writes; tests/test_metrics_dashboards.py fails while the committed
JSON differs from what this script writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24

TOPIC = 'topic=~"$topic"'
GROUP = 'consumergroup=~"$consumergroup"'
GROUP_TOPIC = f"{GROUP}, {TOPIC}"


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and the legend of the series it returns."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A panel: ``kind`` is Grafana's type (timeseries, stat); ``width`` in grid columns."""

    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),)


def stat(title: str, description: str, target: Target, **kwargs: Any) -> Panel:
    return Panel(title, description, (target,), kind="stat", width=6, height=4, **kwargs)


def rate(metric: str, selector: str, by: str) -> str:
    """Per-second increase of ``metric`` summed by ``by``, over Grafana's rate interval."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def increase(metric: str, selector: str, by: str, window: str = "$__rate_interval") -> str:
    return f"sum by ({by}) (increase({metric}{{{selector}}}[{window}]))"


def latency_quantile(q: float) -> str:
    buckets = rate("eventstore_append_latency_seconds_bucket", TOPIC, "le, topic")
    return f"histogram_quantile({q}, {buckets})"


LAG_SUM = f"sum by (consumergroup, topic) (kafka_consumergroup_lag_sum{{{GROUP_TOPIC}}})"
# The committed offset is a gauge: rate() would read a reset-offsets back as a counter reset
# and show a burst of consumption that never happened; deriv() follows it down as it is.
COMMIT_RATE = ("sum by (consumergroup, topic) (deriv(kafka_consumergroup_current_offset"
               f"{{{GROUP_TOPIC}}}[$__rate_interval]))")

OVERVIEW_PANELS: tuple[Panel, ...] = (
    stat("Offline partitions", "Partitions that are offline (failed, corrupt, restarting).",
         Target(f"sum(eventstore_partitions_offline{{{TOPIC}}})", "offline"),
         thresholds=(("green", None), ("red", 1))),
    stat("Total lag", "Records the selected groups have not yet committed, all topics.",
         Target(f"sum(kafka_consumergroup_lag_sum{{{GROUP_TOPIC}}})", "lag")),
    stat("Group members", "Members of each consumer group.",
         Target(f"sum by (consumergroup) (kafka_consumergroup_members{{{GROUP}}})",
                "{{consumergroup}}")),
    stat("Rebalances", "Consumer-group rebalances started in the dashboard's time range.",
         Target("sum(increase(eventstore_group_rebalances_total[$__range]))", "rebalances")),
    Panel("Produce rate", "Records appended per second, by topic.",
          (Target(rate("eventstore_records_appended_total", TOPIC, "topic"), "{{topic}}"),),
          unit="rps"),
    Panel("Consume rate",
          "Records handed to consumers per second, by topic, and the rate at which each"
          " group's committed offsets advance.",
          (Target(rate("eventstore_records_fetched_total", TOPIC, "topic"), "fetched {{topic}}"),
           Target(COMMIT_RATE, "{{consumergroup}} committed {{topic}}")),
          unit="rps"),
    Panel("Throughput", "Bytes of records appended and fetched per second, by topic.",
          (Target(rate("eventstore_bytes_appended_total", TOPIC, "topic"), "in {{topic}}"),
           Target(rate("eventstore_bytes_fetched_total", TOPIC, "topic"), "out {{topic}}")),
          unit="Bps"),
    Panel("Log-end-offset per partition",
          "The offset the next record of each partition will get (solid), and the first"
          " offset retention still keeps (log-start-offset).",
          (Target(f"kafka_topic_partition_current_offset{{{TOPIC}}}",
                  "{{topic}}/{{partition}} end"),
           Target(f"kafka_topic_partition_oldest_offset{{{TOPIC}}}",
                  "{{topic}}/{{partition}} start"))),
    Panel("Lag per group and partition",
          "Log-end-offset minus committed offset; -1 where the group has committed nothing.",
          (Target(f"kafka_consumergroup_lag{{{GROUP_TOPIC}}}",
                  "{{consumergroup}} {{topic}}/{{partition}}"),)),
    Panel("Lag per group", "Lag summed over each topic's partitions, per group.",
          (Target(LAG_SUM, "{{consumergroup}} {{topic}}"),)),
    Panel("Time to drain",
          "Lag divided by the rate the group's committed offsets advance: how long the"
          " group needs to catch up at its current pace; no value while it makes no progress"
          " (an idle group). New records arriving meanwhile are not counted.",
          (Target(f"{LAG_SUM} / ({COMMIT_RATE} > 0)", "{{consumergroup}} {{topic}}"),),
          unit="s"),
    Panel("Segments per partition", "Segment files of each partition, the active one included.",
          (Target(f"eventstore_partition_segments{{{TOPIC}}}", "{{topic}}/{{partition}}"),)),
    Panel("Bytes per partition", "Bytes of records kept in each partition's segments.",
          (Target(f"eventstore_partition_bytes{{{TOPIC}}}", "{{topic}}/{{partition}}"),),
          unit="bytes"),
    Panel("Segment rolls and deletions",
          "Segments rolled, by reason (size: segment.bytes, age: segment.ms), and sealed"
          " segments deleted by retention.",
          (Target(increase("eventstore_segment_rolls_total", TOPIC, "topic, reason"),
                  "{{topic}} rolled ({{reason}})"),
           Target(increase("eventstore_segments_deleted_total", TOPIC, "topic"),
                  "{{topic}} deleted"))),
    Panel("Dirty ratio (compacted partitions)",
          "Share of each compacted partition's sealed segment bytes not cleaned yet; the"
          " log cleaner takes a partition once it reaches min.cleanable.dirty.ratio (0.5 by"
          " default), the dirtiest first. Only topics with compact in cleanup.policy.",
          (Target(f"eventstore_partition_dirty_ratio{{{TOPIC}}}", "{{topic}}/{{partition}}"),),
          unit="percentunit"),
    Panel("Log cleaner",
          "Cleanings (log compaction) swapped in, and the bytes of records they removed,"
          " by topic.",
          (Target(increase("eventstore_log_cleaner_runs_total", TOPIC, "topic"),
                  "{{topic}} cleanings"),
           Target(increase("eventstore_log_cleaner_bytes_removed_total", TOPIC, "topic"),
                  "{{topic}} bytes removed"))),
    Panel("Transactions",
          "Transactions committed and aborted per second (markers written), and the"
          " transactions open now.",
          (Target("rate(eventstore_transactions_committed_total[$__rate_interval])",
                  "commits/s"),
           Target("rate(eventstore_transactions_aborted_total[$__rate_interval])",
                  "aborts/s"),
           Target("eventstore_transactions_open", "open"))),
    Panel("LSO lag (transactional partitions)",
          "Log-end-offset minus last stable offset: records read_committed consumers cannot"
          " read yet, held back by open transactions. A lag that stays up is a transaction"
          " left open (it is aborted after its transaction.timeout.ms).",
          (Target(f"eventstore_partition_last_stable_offset_lag{{{TOPIC}}}",
                  "{{topic}}/{{partition}}"),)),
    Panel("Append latency",
          "Time a partition actor takes to append one batch durably: median and 99th"
          " percentile, by topic.",
          (Target(latency_quantile(0.5), "p50 {{topic}}"),
           Target(latency_quantile(0.99), "p99 {{topic}}")),
          unit="s"),
    Panel("Mailbox depth",
          "Messages waiting in actor inboxes: the deepest partition actor of each topic,"
          " the broker and the group coordinator. A growing queue means an actor falls"
          " behind.",
          (Target(f"max by (topic) (eventstore_partition_mailbox_depth{{{TOPIC}}})",
                  "partitions of {{topic}}"),
           Target("eventstore_actor_mailbox_depth", "{{actor}}"))),
    Panel("Partition health",
          "Offline partitions and partition actors restarted from disk, by topic.",
          (Target(f"eventstore_partitions_offline{{{TOPIC}}}", "{{topic}} offline"),
           Target(increase("eventstore_partition_restarts_total", TOPIC, "topic"),
                  "{{topic}} restarts"))),
)


def _variables() -> list[dict[str, Any]]:
    """The datasource variable, then topic and consumer group (multi-select, All = .*)."""
    datasource = {"name": "datasource", "label": "Data source", "type": "datasource",
                  "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
                  "regex": "", "options": []}

    def query(name: str, label: str, definition: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
                "definition": definition, "query": definition, "refresh": 2,
                "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
                "current": {}, "hide": 0, "options": [], "regex": ""}

    return [datasource,
            query("topic", "Topic", "label_values(kafka_topic_partitions, topic)"),
            query("consumergroup", "Consumer group",
                  "label_values(kafka_consumergroup_members, consumergroup)")]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    options: dict[str, Any] = (
        {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
         "colorMode": "value", "graphMode": "area", "textMode": "auto",
         "orientation": "auto", "justifyMode": "auto"}
        if panel.kind == "stat" else
        {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
         "tooltip": {"mode": "multi", "sort": "desc"}}
    )
    steps = [{"color": color, "value": value} for color, value in panel.thresholds]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit,
                                     "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": options,
        "targets": [{"datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend,
                     "refId": chr(ord("A") + i)} for i, t in enumerate(panel.targets)],
    }


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    """Panels left to right, wrapping at Grafana's 24 columns."""
    laid_out, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return laid_out


def overview() -> dict[str, Any]:
    """The overview dashboard: throughput, offsets, lag, storage, latency, health."""
    return {
        "uid": "eventstore-overview",
        "title": "eventstore overview",
        "description": "Produce and consume rates, offsets and consumer lag, segments,"
                       " append latency and health of an eventstore server.",
        "tags": ["eventstore", "kafka"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": _variables()},
        "panels": _layout(OVERVIEW_PANELS),
    }


def render() -> dict[str, str]:
    """Each dashboard's file name and the JSON text to commit."""
    return {"eventstore-overview.json": json.dumps(overview(), indent=2) + "\n"}


def main() -> int:
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (DASHBOARDS_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {DASHBOARDS_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
