"""`eventstore produce TOPIC`: one record per line of stdin, the kafka-console-producer job.

Silent on success, like Unix tools; ``--print-offsets`` prints where each record landed (in
input order) and ``--verbose`` a count at the end. Both targets use a producer with
kafka-python's shape (``send`` returns a future with ``is_done``, ``exception``, ``value``),
the wire one kafka-python's own, the data-directory one the embedded store's, so one loop
serves both. A failed send stops the input: the records before it are kept (and counted in
the error), none after it is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any, BinaryIO

from eventstore.cli.base import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    add_command,
    parse_key_values,
)
from eventstore.cli.cluster import check_partition, partition_count, target_errors
from eventstore.cli.output import progress
from eventstore.errors import InvalidRequest, KafkaError

LINGER_MS = 5
PROGRESS_MIN_BYTES = 1 << 20  # a smaller file is sent before a bar would be worth drawing
FLUSH_TIMEOUT_S = 60.0


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "produce", "send one record per line of stdin to a topic",
        "Read stdin and send each line (without its line ending) as one record's value."
        " With --key-separator the text before the first separator is the key (like kcat"
        " -K). A line without the separator is an error. Prints nothing on success unless"
        " --print-offsets or --verbose; shows a progress bar when stdin is a large file.",
        "  echo 'hello' | eventstore produce greetings\n"
        "  printf 'user-1:{\"page\": \"/\"}\\n' | eventstore produce clicks --key-separator :\n"
        "  eventstore produce clicks --header source=web --partition 0 < events.txt\n"
        "  eventstore produce clicks --bootstrap-server 127.0.0.1:9092 --print-offsets"
        " < events.txt\n",
        run,
        target="server or dir",
    )
    parser.add_argument("topic")
    parser.add_argument("--key-separator", "-K", metavar="SEP",
                        help="split each line into KEY SEP VALUE at the first SEP")
    parser.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                        help="a header on every record (repeatable)")
    parser.add_argument("--partition", type=int, metavar="P",
                        help="send every record to partition P (default: by key, else spread)")
    parser.add_argument("--print-offsets", action="store_true",
                        help="print TOPIC-PARTITION@OFFSET of each record, in input order")
    parser.add_argument("--json", action="store_true",
                        help="with --print-offsets: one JSON object per record")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print how many records were sent, on stderr")


@contextlib.contextmanager
def _open_producer(target: Target) -> Iterator[Any]:
    """A producer with kafka-python's shape for the target, flushed and closed afterwards."""
    if target.bootstrap_server:
        from eventstore.cli import wire

        producer = wire.producer(target.bootstrap_server, linger_ms=LINGER_MS)
        try:
            yield producer
        finally:
            producer.close(timeout=FLUSH_TIMEOUT_S)
    else:
        from eventstore.cli.local import open_store

        with open_store(target.data_dir) as store:
            yield store.producer(linger_ms=LINGER_MS)


def _input_size(stream: BinaryIO) -> int | None:
    """Bytes left to read when stdin is a large regular file (a progress bar's total)."""
    try:
        info = os.fstat(stream.fileno())
        left = info.st_size - stream.tell() if stat.S_ISREG(info.st_mode) else 0
    except (OSError, ValueError):
        return None
    return left if left >= PROGRESS_MIN_BYTES else None


class _Reporter:
    """Checks sends in input order as they complete; prints offsets if asked."""

    def __init__(self, topic: str, print_offsets: bool, as_json: bool) -> None:
        self.topic = topic
        self.print_offsets = print_offsets
        self.as_json = as_json
        self.pending: deque[Any] = deque()
        self.sent = 0
        self.acknowledged = 0

    def drain(self, *, wait: bool) -> None:
        """Handle the finished sends at the head of the queue (all of them with ``wait``)."""
        while self.pending and (wait or self.pending[0].is_done):
            future = self.pending.popleft()
            if wait:
                future.get(FLUSH_TIMEOUT_S)
            if future.exception is not None:
                raise future.exception
            self.acknowledged += 1
            if self.print_offsets:
                self._print(future.value)

    def kept(self) -> str:
        """What of the input a failure left written, for the error line."""
        if not self.acknowledged:
            return "no record was written"
        return f"after {self.acknowledged} of {self.sent} records were sent"

    def _print(self, metadata: Any) -> None:
        if self.as_json:
            line = json.dumps({"topic": self.topic, "partition": metadata.partition,
                               "offset": metadata.offset})
        else:
            line = f"{self.topic}-{metadata.partition}@{metadata.offset}"
        sys.stdout.write(line + "\n")


def _split(line: bytes, separator: bytes | None, number: int) -> tuple[bytes | None, bytes]:
    if separator is None:
        return None, line
    key, found, value = line.partition(separator)
    if not found:
        raise InvalidRequest(f"line {number} has no key separator {separator.decode()!r}")
    return key, value


def run(args: argparse.Namespace) -> int:
    headers = [(k, v.encode()) for k, v in parse_key_values(args.header, "--header").items()]
    if args.key_separator == "":
        raise CliError("--key-separator must not be empty", EXIT_USAGE)
    separator = args.key_separator.encode() if args.key_separator is not None else None
    reporter = _Reporter(args.topic, args.print_offsets, args.json)
    target = Target.of(args)
    partitions = partition_count(target, args.topic)
    if args.partition is not None:
        check_partition(args.topic, args.partition, partitions)
    with _open_producer(target) as producer:
        try:
            with target_errors(target):
                _send_lines(producer, args, separator, headers, reporter)
        except KafkaError as error:
            # what was sent before the failure is kept: finish it, then say how far it got
            with contextlib.suppress(Exception), target_errors(target):
                producer.flush(FLUSH_TIMEOUT_S)
                reporter.drain(wait=True)
            error.args = (f"{error.args[0] if error.args else ''} ({reporter.kept()})",)
            raise
    if args.verbose:
        print(f"Produced {reporter.acknowledged} records to {args.topic}.", file=sys.stderr)
    return EXIT_OK


def _send_lines(producer: Any, args: argparse.Namespace, separator: bytes | None,
                headers: list[tuple[str, bytes]], reporter: _Reporter) -> None:
    """Send every line of stdin, then wait until each one is acknowledged."""
    stdin = sys.stdin.buffer
    with progress(f"producing to {args.topic}", _input_size(stdin), "bytes") as advance:
        for number, raw in enumerate(stdin, 1):
            key, value = _split(raw.rstrip(b"\n").removesuffix(b"\r"), separator, number)
            reporter.pending.append(producer.send(
                args.topic, value=value, key=key, headers=headers or None,
                partition=args.partition))
            reporter.sent += 1
            reporter.drain(wait=False)
            advance(len(raw))
    producer.flush(FLUSH_TIMEOUT_S)
    reporter.drain(wait=True)
