"""`eventstore delete-records`: move a partition's log-start-offset, as
kafka-delete-records.sh does.

Through ``--bootstrap-server`` it sends DeleteRecords with kafka-python's admin client; on
``--data-dir`` it asks the partition's own actor in the embedded store (which takes the
directory's lock). Either way the partition log does the work (see
PartitionLog.delete_records): whole segments below the new start are deleted, the rest is
hidden, and the answer is the new log-start-offset (Kafka's low watermark).
"""

from __future__ import annotations

import argparse

from eventstore.cli.base import EXIT_OK, Target, add_command
from eventstore.cli.output import print_line


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "delete-records", "delete a partition's records before an offset",
        "Delete the records of one partition before an offset: its log-start-offset moves"
        " there (Kafka's DeleteRecords); -1 deletes up to the high watermark.",
        "  eventstore delete-records clicks --partition 0 --offset 1000\n"
        "  eventstore delete-records clicks --partition 2 --offset -1"
        " --bootstrap-server 127.0.0.1:9092\n",
        _run,
        target="server or dir",
    )
    parser.add_argument("topic")
    parser.add_argument("--partition", type=int, required=True, metavar="P")
    parser.add_argument("--offset", type=int, required=True, metavar="O",
                        help="the first offset to keep (-1: the high watermark)")


def _run(args: argparse.Namespace) -> int:
    target = Target.of(args)
    if target.bootstrap_server:
        low = _over_server(target.bootstrap_server, args.topic, args.partition, args.offset)
    else:
        low = _on_data_dir(target.data_dir, args.topic, args.partition, args.offset)
    print_line(f"Deleted the records of {args.topic} partition {args.partition} before"
               f" offset {low}.")
    return EXIT_OK


def _over_server(address: str, topic: str, partition: int, offset: int) -> int:
    from kafka import TopicPartition

    from eventstore.cli.wire import admin_client, wire_errors

    admin = admin_client(address)
    try:
        with wire_errors(address):
            result = admin.delete_records({TopicPartition(topic, partition): offset})
    finally:
        admin.close()
    (answer,) = result.values()
    return answer["low_watermark"]


def _on_data_dir(data_dir: str, topic: str, partition: int, offset: int) -> int:
    from eventstore.cli.local import open_store

    store = open_store(data_dir)
    try:
        handle = store.system.broker.partition(topic, partition).get()
        return handle.actor.delete_records(offset).get()
    finally:
        store.close()
