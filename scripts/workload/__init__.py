"""Scripted workload runs against eventstore: ``python -m scripts.workload SCENARIO.toml``.

A scenario (``scripts/scenarios/*.toml``, see :mod:`.scenario`) names topics, producers
and consumer groups; the runner drives them against the embedded store or a server over
the Kafka protocol (confluent-kafka), shows live rates and lag (rich), then writes a
report (JSON, a text table, a PNG plot) whose verification says whether every
acknowledged record was read by every group, in per-partition order.

The modules, bottom up: ``scenario`` (the TOML format), ``process`` (child processes that
print a ready line), ``clients`` (one producer/consumer shape over both targets),
``ledger`` (what was acknowledged and read, and the checks), ``workers`` (producer and
group-member threads), ``remote`` (the same workers in processes of their own, over the
wire), ``runner`` (one run, start to finish), ``live`` and ``report``
(what the user sees).
"""
