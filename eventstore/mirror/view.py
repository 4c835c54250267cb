"""The mirror's live view in the terminal (rich): lag per partition, rate, groups, last error.

``render`` is plain code from one report to a rich renderable, so it is tested without a
terminal; the command line shows it in a ``rich.live.Live`` on stderr (``--watch``, the
default when stderr is a terminal). ``Rate`` turns the reports' record counts into records
per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text

from eventstore.mirror.session import Report


@dataclass
class Rate:
    """Records per second between the last two reports."""

    copied: int = 0
    at: float | None = None
    per_second: float = 0.0

    def update(self, copied: int, now: float) -> float:
        """Take the count ``copied`` at time ``now``; the rate since the previous one."""
        if self.at is not None and now > self.at:
            self.per_second = (copied - self.copied) / (now - self.at)
        self.copied, self.at = copied, now
        return self.per_second


def render(state: Report, rate: float) -> Group:
    """The live view of ``state``: a summary line, one row per partition (lag, most behind
    first), and the last error if any."""
    behind = sum(state.lag.values())
    summary = Text.assemble(
        ("mirror ", "bold"), f"{state.copied:,} records copied, {rate:,.0f} records/s, ",
        (f"{behind:,} behind", "yellow" if behind else "green"),
        f", {state.groups.committed} group offsets committed")
    table = Table("TOPIC", "PARTITION", "LAG", box=None, pad_edge=False)
    for (topic, partition), lag in sorted(state.lag.items(),
                                          key=lambda item: (-item[1], item[0])):
        table.add_row(topic, str(partition), Text(f"{lag:,}", "yellow" if lag else "green"))
    parts: list[Text | Table] = [summary, table]
    if state.groups.active:
        parts.append(Text("left alone (active on the target): "
                          + ", ".join(state.groups.active)))
    if state.last_error:
        parts.append(Text(f"last error: {state.last_error}", "red"))
    return Group(*parts)
