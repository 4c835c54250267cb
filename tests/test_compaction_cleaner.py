"""The log cleaner: which partitions it picks (dirty ratio, max.compaction.lag.ms, dirtiest
first), its throttle, and its threads cleaning partitions of a running actor system while
appends go on."""

from __future__ import annotations

import threading

import pytest

from actors.cleaner import Throttle
from actors.system import ActorSystem
from eventstore.errors import PolicyViolation
from eventstore.storage.cleaner import Candidate, dirtiest_first
from eventstore.storage.log_reader import LogReader
from eventstore.storage.segment import SegmentInfo
from tests.support import wait_until

TIMEOUT = 30.0


def segment(base: int, end: int, size: int, oldest: int = 0) -> SegmentInfo:
    return SegmentInfo(f"{base}.db", base, end, 0, size, oldest, oldest, 0, 0, 1)


def test_the_dirtiest_partition_due_comes_first():
    chain = [segment(0, 10, 100), segment(10, 20, 100), segment(20, 30, 100)]
    candidates = [
        Candidate("a third dirty", chain, 20, 0.3, 1 << 62),
        Candidate("all dirty", chain, 0, 0.5, 1 << 62),
        Candidate("below its ratio", chain, 10, 0.9, 1 << 62),
        Candidate("clean", chain, 30, 0.0, 1 << 62),
        Candidate("overdue", chain, 20, 0.9, 500),  # max.compaction.lag.ms passed
        Candidate("empty", [], 0, 0.0, 1),
    ]
    assert dirtiest_first(candidates, now_ms=1000) == ["all dirty", "a third dirty", "overdue"]


def test_the_throttle_holds_the_rate_and_does_not_save_up_idle_time():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(1000.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        throttle(500)  # 2000 bytes at 1000/s: two seconds
    assert now[0] == pytest.approx(2.0)
    now[0] += 60  # idle: no burst allowed after it
    throttle(1000)
    assert now[0] == pytest.approx(63.0)
    unlimited = Throttle(1.7976931348623157e308, clock=lambda: 0.0, sleep=sleep)
    count = len(slept)
    unlimited(1 << 40)
    assert len(slept) == count


def read_all(handle) -> list[tuple[int, bytes, bytes | None]]:
    reader = LogReader()
    try:
        view = handle.state.view
        return [(row[0], row[2], row[3]) for row in reader.read(view, view.log_start_offset,
                                                                100_000)]
    finally:
        reader.close()


def test_the_cleaner_compacts_while_appends_go_on(tmp_path):
    system = ActorSystem(str(tmp_path / "data"), {
        "log.cleaner.backoff.ms": 20, "log.cleaner.threads": 2}).start()
    try:
        system.broker.create_topic("table", 2, {
            "cleanup.policy": "compact", "segment.bytes": 300,
            "min.cleanable.dirty.ratio": 0.1}).get()
        system.broker.create_topic("plain", 1, {"segment.bytes": 300}).get()
        handles = [system.broker.partition("table", p).get() for p in (0, 1)]
        plain = system.broker.partition("plain", 0).get()
        latest: list[dict[bytes, int]] = [{}, {}]
        stop = threading.Event()

        def write() -> None:
            index = 0
            while not stop.is_set() and index < 3000:
                for number, handle in enumerate(handles):
                    key = b"k%d" % (index % 5)
                    offset = handle.append([(None, key, b"v%d" % index, None)]).result(10)
                    latest[number][key] = offset.base_offset
                plain.append([(None, b"k", b"v", None)]).result(10)
                index += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for handle in handles:
                wait_until(lambda h=handle: h.state.cleaning_status().runs >= 2, TIMEOUT,
                           "two cleanings of each partition while appends go on")
        finally:
            stop.set()
            writer.join(TIMEOUT)
        for number, handle in enumerate(handles):
            rows = read_all(handle)
            offsets = [offset for offset, _, _ in rows]
            assert offsets == sorted(offsets)
            assert handle.state.view.log_start_offset == 0
            assert len(rows) < handle.state.high_watermark  # gaps
            last = {key: offset for offset, key, _ in rows}
            assert last == latest[number]  # every key's last record, at its offset
        assert plain.state.cleaning_status().runs == 0
        assert len(read_all(plain)) == plain.state.high_watermark
    finally:
        system.stop()


def test_clean_now_runs_one_cleaning_with_the_cleaner_disabled(tmp_path):
    system = ActorSystem(str(tmp_path / "data"), {"log.cleaner.enable": False}).start()
    try:
        system.broker.create_topic("table", 1, {
            "cleanup.policy": "compact", "segment.bytes": 200}).get()
        system.broker.create_topic("plain", 1).get()
        handle = system.broker.partition("table", 0).get()
        for index in range(40):
            handle.append([(None, b"k%d" % (index % 2), b"v%d" % index, None)]).result(10)
        assert handle.state.cleaning_status().runs == 0
        result = system.cleaners[0].clean_now("table", 0).get(timeout=TIMEOUT)
        assert result.records_removed > 0
        status = handle.state.cleaning_status()
        assert status.runs == 1 and status.bytes_removed == result.bytes_removed
        with pytest.raises(PolicyViolation):
            system.cleaners[0].clean_now("plain", 0).get(timeout=TIMEOUT)
    finally:
        system.stop()
