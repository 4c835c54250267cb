"""Producers faster than the disk are held back, and the server's memory stays bounded.

The listener reads one request at a time per connection, and all connections together
hold at most ``queued.max.request.bytes`` of requests (plus one) in memory: the rest waits
in TCP, which fills the producers' own buffers. The budget itself is checked first on
its own (no deadlock between requests read in part, nothing lost to a closed connection),
then scripts/overload.py loads a server whose every append is fsynced.
"""

from __future__ import annotations

import asyncio

from reliability import load_script

from eventstore.kafka.server import RequestBudget

LIMIT = 1000
CHUNK = 100

# the server under load: every append fsynced, a small budget, two partitions
LOAD_SECONDS = 6.0
PRODUCERS, CONNECTIONS = 4, 64
BUDGET = 4 << 20
# Memory a loaded server may grow by: SQLite's writer cache (16 MiB a partition), the
# budget, what asyncio buffers per connection (up to ~384 KiB), the decoded requests.
RSS_GROWTH_BOUND_MIB = 256


async def read(budget: RequestBudget, request: object, size: int, trace: list[int]) -> None:
    """Read a request of ``size`` bytes chunk by chunk, as the listener does."""
    budget.start_reading(request)
    taken = 0
    while taken < size:
        step = min(CHUNK, size - taken)
        await budget.take(request, step)
        taken += step
        trace.append(budget.used)
        await asyncio.sleep(0)  # let the others run between chunks
    budget.stop_reading(request, handled=True)


def test_requests_read_in_part_never_wait_on_each_other_for_good() -> None:
    """Three requests, each nearly the whole budget, all started at once: with nothing
    being handled, the oldest may go over; the others wait their turn; memory held never
    passes the budget plus one request."""

    async def scenario() -> list[int]:
        budget = RequestBudget(LIMIT)
        trace: list[int] = []

        async def serve_one(size: int) -> None:
            await read(budget, object(), size, trace)
            await asyncio.sleep(0.001)  # handling it
            budget.answered(size)

        await asyncio.wait_for(asyncio.gather(*(serve_one(900) for _ in range(3))), 5)
        assert (budget.used, budget.handling) == (0, 0)
        return trace

    trace = asyncio.run(scenario())
    assert max(trace) <= LIMIT + 900
    assert len(trace) == 27


def test_a_request_larger_than_the_budget_is_read_alone() -> None:
    async def scenario() -> None:
        budget = RequestBudget(LIMIT)
        trace: list[int] = []
        await asyncio.wait_for(read(budget, object(), 3 * LIMIT, trace), 5)
        assert trace[-1] == 3 * LIMIT
        budget.answered(3 * LIMIT)
        assert budget.used == 0

    asyncio.run(scenario())


def test_a_connection_closed_while_waiting_gives_its_bytes_back() -> None:
    async def scenario() -> None:
        budget = RequestBudget(LIMIT)
        handled, waiter = object(), object()
        await read(budget, handled, LIMIT, [])  # spends the budget, now being handled
        budget.start_reading(waiter)
        waiting = asyncio.create_task(budget.take(waiter, CHUNK))
        await asyncio.sleep(0.01)
        assert not waiting.done(), "the budget is spent and an answer will free it: wait"
        waiting.cancel()  # the connection closed
        await asyncio.gather(waiting, return_exceptions=True)
        budget.stop_reading(waiter, handled=False)
        budget.answered(LIMIT)
        assert (budget.used, budget.handling) == (0, 0)
        await asyncio.wait_for(read(budget, object(), LIMIT, []), 1)  # all free again

    asyncio.run(scenario())


def test_producers_faster_than_the_disk_are_held_back_in_bounded_memory(serve) -> None:
    overload = load_script("overload")
    server = serve(settings={**overload.SETTINGS, "queued.max.request.bytes": BUDGET})
    stats = overload.run(server, LOAD_SECONDS, PRODUCERS, CONNECTIONS)
    print(stats)
    assert stats.errors == []
    assert stats.acknowledged > 0 and stats.big_requests > CONNECTIONS, stats
    assert stats.refused > 0, "the producers' queues must have filled: held back"
    growth_mib = (stats.rss_peak_kib - stats.rss_before_kib) / 1024
    assert growth_mib < RSS_GROWTH_BOUND_MIB, stats
