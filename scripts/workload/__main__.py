"""Run a workload scenario and write its report.

    python -m scripts.workload SCENARIO.toml [--target embedded|kafka]
        [--bootstrap-server HOST:PORT] [--duration-scale X | --ci] [--out DIR]
        [--data-dir DIR] [--tick S] [--quiet]

``--target embedded`` (default) opens the store in this process; ``--target kafka``
starts ``eventstore serve`` on free loopback ports (its log goes to OUT/server.log) and
drives it with confluent-kafka, or uses the server at ``--bootstrap-server`` (then the
scenario's topic and group names get a unique suffix, and its [server] keys cannot be
applied). The data directory is a temporary one unless ``--data-dir`` is given (kept).
Exit code: 0 when the verification passed and no client saw an error, 1 otherwise, 2 for
a bad scenario.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .clients import EmbeddedTarget, Target, WireTarget
from .live import LiveView, quiet
from .process import start_eventstore
from .report import build, text_table, write
from .runner import Runner
from .scenario import Scenario, ScenarioError, load

DEFAULT_SERVER = {"group.initial.rebalance.delay.ms": 0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.workload",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path, help="a TOML scenario (scripts/scenarios/)")
    parser.add_argument("--target", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--bootstrap-server", metavar="HOST:PORT",
                        help="with --target kafka: a running server instead of starting one")
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--duration-scale", type=float, default=1.0, metavar="X",
                       help="multiply the scenario's times and record counts by X")
    scale.add_argument("--ci", action="store_true",
                       help="the scenario's short form: its [ci] duration_scale")
    parser.add_argument("--out", type=Path, help="report directory (default: a new one"
                        " under the system's temp directory)")
    parser.add_argument("--data-dir", type=Path, help="keep the store's data here")
    parser.add_argument("--tick", type=float, default=0.2, metavar="S",
                        help="sampling interval in seconds (default 0.2)")
    parser.add_argument("--quiet", action="store_true", help="no live view")
    args = parser.parse_args(argv)
    if args.bootstrap_server and args.target != "kafka":
        parser.error("--bootstrap-server needs --target kafka")
    return args


@contextmanager
def open_target(args: argparse.Namespace, scenario: Scenario, out_dir: Path
                ) -> Iterator[tuple[Target, dict[str, Any]]]:
    """The target to run on, and what the report should say about it; on exit the
    clients close before the server they talk to stops, then a temporary data dir goes."""
    with ExitStack() as stack:
        if args.bootstrap_server:
            target: Target = WireTarget(args.bootstrap_server)
            about = {"bootstrap_server": args.bootstrap_server}
        else:
            data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="workload-data-"))
            if args.data_dir is None:
                stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            about = {"data_dir": str(data_dir)}
            config = {**DEFAULT_SERVER, **scenario.server}
            if args.target == "embedded":
                target = EmbeddedTarget(str(data_dir), config)
            else:
                server, address = start_eventstore(data_dir, config, out_dir / "server.log")
                stack.callback(server.stop)
                target = WireTarget(address)
                about["bootstrap_server"] = address
                about["server_pid"] = server.pid
        stack.callback(target.close)
        yield target, about


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        scenario = load(args.scenario)
        scale = scenario.ci_scale if args.ci else args.duration_scale
        scenario = scenario.scaled(scale)
    except (OSError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.bootstrap_server:
        if scenario.server:
            print(f"note: [server] keys {sorted(scenario.server)} are not applied to a"
                  " running server", file=sys.stderr)
        scenario = scenario.renamed(f"-{stamp}")
    out_dir = args.out or Path(tempfile.gettempdir()) / "eventstore-workload" / (
        f"{scenario.name}-{args.target}-{stamp}")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"file": str(args.scenario), "duration_scale": scale,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open_target(args, scenario, out_dir) as (target, about):
        title = f"{scenario.name} on {target.name}"
        server_pid = about.pop("server_pid", None)
        if args.quiet:
            result = Runner(scenario, target, args.tick, quiet, server_pid).run()
        else:
            with LiveView(title, scenario.duration_s) as view:
                result = Runner(scenario, target, args.tick, view.show, server_pid).run()
        report = build(result, {**meta, **about})
    paths = write(report, out_dir)
    print(text_table(report), end="")
    print(f"report: {paths['json']}  {paths['text']}  {paths['plot']}")
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
