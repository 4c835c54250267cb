"""The Grafana and Prometheus files under grafana/ are what their generator and tools accept.

The committed dashboard JSON (what users import) must be exactly what
``grafana/build_dashboards.py`` writes, every panel must query only metrics eventstore
exports and filter by the template variables where they apply, and the shipped
Prometheus example must pass ``promtool check config`` as it is.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from actors.exposition import METRICS

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards",
                                                  GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_what_the_generator_writes():
    rendered = load_builder().render()
    committed = {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == set(rendered), "run python grafana/build_dashboards.py"
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from the generator's output: run"
            " python grafana/build_dashboards.py and commit the result")


def test_panels_query_exported_metrics_through_the_template_variables():
    labels_of = {spec.name: spec.labels for spec in METRICS}
    labels_of |= {f"{spec.name}{suffix}": spec.labels for spec in METRICS
                  if spec.kind == "histogram" for suffix in HISTOGRAM_SUFFIXES}
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "topic", "consumergroup"} <= variables
        for panel in dashboard["panels"]:
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                expr = target["expr"]
                names = set(re.findall(r"\b(?:kafka|eventstore)_\w+", expr))
                assert names and names <= set(labels_of), (panel["title"], names)
                for name in names:
                    labels = labels_of[name]
                    if "topic" in labels:
                        assert 'topic=~"$topic"' in expr, (panel["title"], expr)
                    if "consumergroup" in labels:
                        assert 'consumergroup=~"$consumergroup"' in expr, (panel["title"], expr)


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian package prometheus)")
def test_the_prometheus_example_passes_promtool_as_shipped():
    done = subprocess.run(["promtool", "check", "config", str(GRAFANA / "prometheus.yml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
