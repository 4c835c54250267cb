"""The workload runner's own checks catch what they claim to: the ledger's verification
on made-up acknowledgements and reads, and the scenario format's refusals.

The runner lives in ``scripts/`` (not an installed package), so it is imported from the
checkout.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ledger_module = importlib.import_module("scripts.workload.ledger")
scenario_module = importlib.import_module("scripts.workload.scenario")
clients_module = importlib.import_module("scripts.workload.clients")
Ledger = ledger_module.Ledger
PartitionOffsets = clients_module.PartitionOffsets

TP = ("t", 0)


def ledger_with_acks(count: int, base: int = 0) -> object:
    """A ledger of one partition with ``count`` records acknowledged from ``base`` on."""
    ledger = Ledger({TP: base}, {"g": [TP]})
    for i in range(count):
        ledger.ack("t", 0, base + i, 1000 + i, 10)
    return ledger


def store(start: int, end: int) -> dict:
    return {TP: PartitionOffsets(start, end)}


def test_every_record_read_once_passes() -> None:
    ledger = ledger_with_acks(5)
    for i in range(5):
        ledger.read("g", TP, i, 1000 + i, 10)
    verdict = ledger.verify_group("g", store(0, 5), {TP: 5}, 0)
    assert verdict.failures == []
    assert (verdict.read, verdict.duplicates, verdict.lost_to_retention) == (5, 0, 0)
    assert ledger.verify_store(store(0, 5), 0) == []
    assert ledger.lag("g", {TP: 5}) == 0


def test_duplicates_are_counted_not_failed() -> None:
    ledger = ledger_with_acks(3)
    for offset in (0, 1, 1, 2, 2, 2):
        ledger.read("g", TP, offset, 1000 + offset, 10)
    verdict = ledger.verify_group("g", store(0, 3), {TP: 3}, 0)
    assert verdict.failures == []
    assert (verdict.read, verdict.duplicates) == (3, 3)


def test_an_unread_record_still_stored_is_missing() -> None:
    ledger = ledger_with_acks(4)
    for offset in (0, 1, 3):
        ledger.read("g", TP, offset, 1000 + offset, 10)
    verdict = ledger.verify_group("g", store(0, 4), {TP: 4}, 0)
    assert verdict.missing == 1
    assert any("1 acknowledged records never read (offsets 2)" in f for f in verdict.failures)


def test_unread_records_below_the_log_start_are_lost_to_retention() -> None:
    ledger = ledger_with_acks(6)
    for offset in (0, 4, 5):
        ledger.read("g", TP, offset, 1000 + offset, 10)
    verdict = ledger.verify_group("g", store(4, 6), {TP: 6}, 0)
    assert verdict.failures == []
    assert (verdict.lost_to_retention, verdict.missing) == (3, 0)


def test_a_read_of_another_record_than_acknowledged_is_a_mismatch() -> None:
    ledger = ledger_with_acks(2)
    ledger.read("g", TP, 0, 1000, 10)
    ledger.read("g", TP, 1, 999, 10)
    verdict = ledger.verify_group("g", store(0, 2), {TP: 2}, 0)
    assert verdict.mismatched == 1 and verdict.failures


def test_a_read_before_its_acknowledgement_is_checked_at_the_end() -> None:
    ledger = Ledger({TP: 0}, {"g": [TP]})
    ledger.read("g", TP, 0, 7, 10)
    ledger.ack("t", 0, 0, 7, 10)
    assert ledger.verify_group("g", store(0, 1), {TP: 1}, 0).failures == []


def test_unacknowledged_reads_fail_only_without_produce_errors() -> None:
    ledger = ledger_with_acks(1)
    ledger.read("g", TP, 0, 1000, 10)
    ledger.read("g", TP, 1, 5, 10)
    assert ledger.verify_group("g", store(0, 2), {TP: 2}, 0).failures
    assert ledger.verify_group("g", store(0, 2), {TP: 2}, 1).unacked == 1
    assert not ledger.verify_group("g", store(0, 2), {TP: 2}, 1).failures


def test_the_store_must_hold_exactly_what_was_acknowledged() -> None:
    ledger = ledger_with_acks(3, base=10)
    assert ledger.verify_store(store(0, 13), 0) == []
    assert ledger.verify_store(store(0, 14), 0)  # a record nobody acknowledged
    assert ledger.verify_store(store(0, 12), 0)  # an acknowledged record past the end
    ledger.ack("t", 0, 11, 5, 10)
    assert any("acknowledged twice" in f for f in ledger.verify_store(store(0, 13), 0))


def test_a_committed_offset_short_of_the_end_fails() -> None:
    ledger = ledger_with_acks(2)
    ledger.read("g", TP, 0, 1000, 10)
    ledger.read("g", TP, 1, 1001, 10)
    failures = ledger.verify_group("g", store(0, 2), {TP: 1}, 0).failures
    assert failures == ["t-0: committed offset 1, log-end-offset 2"]


def test_lag_counts_records_in_the_store_not_yet_reached() -> None:
    ledger = ledger_with_acks(10)
    ledger.read("g", TP, 3, 1003, 10)
    assert ledger.lag("g", {TP: 10}) == 6
    assert ledger.lag("g", {TP: 12}) == 8


@pytest.mark.parametrize(("text", "complaint"), [
    ("duration_s = 1\n[[topics]]\nname = 't'\n[[producers]]\ntopic = 't'\nrtae = 5\n",
     "unknown key(s) rtae"),
    ("duration_s = 1\n[[topics]]\nname = 't'\n[[producers]]\ntopic = 'u'\n",
     "'u' is not among the topics"),
    ("[[topics]]\nname = 't'\n[[producers]]\ntopic = 't'\n", "give duration_s, records"),
    ("duration_s = 1\n[[topics]]\nname = 't'\n[[producers]]\ntopic = 't'\nkeys = 'zipf'\n",
     "keys: one of none, uniform, skewed"),
    ("duration_s = 1\n[[topics]]\nname = 't'\n[[producers]]\ntopic = 't'\n"
     "[[groups]]\nname = 'g'\ntopics = ['t']\nchanges = [{ at_s = 1, leave = 1 }]\n",
     "no member left"),
])
def test_bad_scenarios_are_refused_naming_the_key(text: str, complaint: str) -> None:
    with pytest.raises(scenario_module.ScenarioError, match=re.escape(complaint)):
        scenario_module.parse(tomllib.loads(text))


def test_scaling_shortens_times_but_not_rates() -> None:
    scenario = scenario_module.parse(tomllib.loads(
        "duration_s = 20\n[[topics]]\nname = 't'\n[[producers]]\ntopic = 't'\nrate = 100\n"
        "phases = [{ at_s = 10, rate = 50 }]\n"
        "[[groups]]\nname = 'g'\ntopics = ['t']\nchanges = [{ at_s = 5, join = 1 }]\n"))
    short = scenario.scaled(0.1)
    assert short.duration_s == 2
    assert [(p.at_s, p.rate) for p in short.producers[0].phases] == [(0, 100), (1, 50)]
    assert short.groups[0].changes[0].at_s == 0.5
