"""A server SIGKILLed again and again under load loses no acknowledged record.

scripts/crash_loop.py does the work (see its docstring): librdkafka producing with
acks=all while a consumer group reads and commits, a SIGKILL after a random number of new
acknowledgements, then, on the stopped server's files, `eventstore verify`, every
acknowledged record at its acknowledged offset, offsets without a gap, the committed
offsets at least the acknowledged commits; after each restart the server answers those
committed offsets; at the end every offset has been consumed. Here it runs ten kills.
"""

from __future__ import annotations

import random
from pathlib import Path

from reliability import load_script

KILLS = 10


def test_sigkill_loop_loses_no_acknowledged_record(tmp_path: Path) -> None:
    crash_loop = load_script("crash_loop")
    seed = random.randrange(1 << 32)
    tally = crash_loop.run(KILLS, seed, str(tmp_path / "data"))
    assert tally.violations == [], f"seed {seed}"
    assert (tally.kills, tally.lost) == (KILLS, 0), tally
    assert tally.acknowledged >= KILLS * crash_loop.ACKS_PER_KILL[0], tally
    assert tally.consumed >= tally.acknowledged, tally
