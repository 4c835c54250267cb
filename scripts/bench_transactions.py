"""Records/s of a transactional consume-transform-produce loop against the same loop
without transactions, against one local server in the same run (issue 19; target: at
least 0.7 of the plain loop).

    python scripts/bench_transactions.py [--quick] [--records N] [--partitions N]
                                         [--per-transaction N]

Topic ``a`` is written first (idempotent, round robin over the partitions). Then the loop
of tests/txn_loop.py copies it twice with confluent-kafka, each time in a group of its own
reading read_committed: once into ``plain``, producing each batch of ``--per-transaction``
records idempotently and committing the group's offsets after a flush; once into ``txn``,
the same batches each in a transaction that commits the offsets with
``send_offsets_to_transaction`` and ``commit_transaction``. The copy into ``txn`` is then
read back read_committed and compared with ``a`` (no record lost or duplicated, order kept
per partition). Exit 1 when the ratio misses the target or the copy is not exact.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import txn_loop  # noqa: E402 - and the loop the transaction tests run
from support import ServerProcess  # noqa: E402 - tests/ holds the server fixture

TARGET_RATIO = 0.7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records (a smoke run)")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--per-transaction", type=int, default=1000)
    args = parser.parse_args()
    records = args.records or (20_000 if args.quick else 200_000)
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess.start(os.path.join(scratch, "data"))
        try:
            b = server.bootstrap
            txn_loop.create_topics(b, args.partitions, "a", "plain", "txn")
            txn_loop.fill(b, "a", args.partitions, records)
            ends = txn_loop.end_offsets(b, "a", args.partitions)
            deadline = max(300.0, records / 100)
            batch = args.per_transaction
            plain = txn_loop.copy_loop(b, "a", "plain", ends, per_transaction=batch,
                                       transactional=False, group="plain",
                                       deadline_s=deadline)
            txn = txn_loop.copy_loop(b, "a", "txn", ends, per_transaction=batch, group="txn",
                                     transactional_id="bench-1", deadline_s=deadline)
            source = txn_loop.read_committed(b, "a", args.partitions, records)
            copied = txn_loop.read_committed(b, "txn", args.partitions, records)
            duplicates, losses = txn_loop.check_exactly_once(source, copied)
        finally:
            server.stop()
    ratio = plain.seconds / txn.seconds
    print(f"{'loop':<40}{'records/s':>12}{'commits':>10}")
    print(f"{'plain (offsets committed, no txn)':<40}{records / plain.seconds:>12,.0f}"
          f"{plain.committed:>10,}")
    print(f"{'transactional':<40}{records / txn.seconds:>12,.0f}{txn.committed:>10,}")
    print(f"exactly once: {duplicates} duplicates, {losses} losses")
    print(f"ratio {ratio:.2f} (target >= {TARGET_RATIO}): "
          f"{'met' if ratio >= TARGET_RATIO else 'missed'}")
    return 0 if ratio >= TARGET_RATIO and duplicates == losses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
