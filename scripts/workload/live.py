"""The live view: a rich table of rates and lag, refreshed every tick on stderr.

Rates are over the last second; lag counts records in the store the group has not
reached. On a terminal the table redraws in place; elsewhere (CI logs) rich prints only
the last one.
"""

from __future__ import annotations

from collections import deque

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .runner import Runner, Sample

WINDOW_S = 1.0  # rates are over the last second of samples


class LiveView:
    """``show`` renders one sample; use as a context manager around the run."""

    def __init__(self, title: str, duration_s: float | None) -> None:
        self._title = title
        self._duration = f"/{duration_s:.0f}" if duration_s else ""
        self._window: deque[Sample] = deque()
        self._live = Live(Table(), console=Console(stderr=True), auto_refresh=False,
                          transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)

    def show(self, sample: Sample, runner: Runner) -> None:
        window = self._window
        window.append(sample)
        while sample.t - window[0].t > WINDOW_S:
            window.popleft()
        previous = window[0] if window[0] is not sample else Sample(0.0, 0, {}, {}, {}, "")
        elapsed = max(sample.t - previous.t, 1e-9)
        table = Table(title=f"{self._title}  {sample.phase}  {sample.t:.1f}{self._duration} s",
                      title_justify="left")
        for column in ("", "records", "rate/s", "lag", "members", "without partitions",
                       "errors"):
            table.add_column(column, justify="left" if not column else "right")
        errors = sum(sum(p.errors.values()) for p in runner.producers)
        table.add_row("produced", f"{sample.produced:,}",
                      f"{(sample.produced - previous.produced) / elapsed:,.0f}", "", "", "",
                      str(errors))
        for name, group in runner.groups.items():
            read = sample.consumed[name]
            waiting = sum(1 for m in group.active() if not m.assignment)
            table.add_row(f"group {name}", f"{read:,}",
                          f"{(read - previous.consumed.get(name, 0)) / elapsed:,.0f}",
                          f"{sample.lag[name]:,}", str(sample.members[name]),
                          str(waiting) if waiting else "",
                          str(sum(group.errors().values())))
        self._live.update(table, refresh=True)


def quiet(sample: Sample, runner: Runner) -> None:
    """The view for --quiet: nothing."""
