"""Time as the core reads it: milliseconds since the epoch, like Kafka's timestamps.

Every core component takes its clock as an argument (a ``Clock``), so tests drive time by
hand; ``wall_clock_ms`` is the real one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
