"""Fetch read-ahead: a consumer catching up gets the next fetch prepared while it reads
the last one. Whatever it asks next, the answer must be what a fresh read would give."""

from __future__ import annotations

from support import KafkaConnection, create_topic, fetch, produce

TOPIC = "ahead"
VALUES = [b"value-%05d" % i + b"." * 90 for i in range(4000)]
CHUNK = 64 * 1024  # a fetch's byte limit: several fetches to read it all


def test_fetches_in_sequence_and_out_of_it_return_the_log_exactly(server):
    with KafkaConnection(server.address) as conn:
        create_topic(conn, TOPIC, 1)
        for start in range(0, len(VALUES), 500):
            assert produce(conn, TOPIC, 0, VALUES[start:start + 500]).error_code == 0
        offset, seen = 0, []
        while offset < len(VALUES):  # in sequence: every fetch after the first read ahead
            got = fetch(conn, TOPIC, 0, offset, max_bytes=CHUNK)
            assert got.error_code == 0 and got.records, got
            assert got.high_watermark == len(VALUES)
            seen += [r.value for r in got.records if r.offset >= offset]
            offset = got.records[-1].offset + 1
        assert seen == VALUES

        # A fetch may start with the whole batch holding its offset, as Kafka's do; a
        # client skips the records before the offset it asked for, and so does from_().
        first = fetch(conn, TOPIC, 0, 0, max_bytes=CHUNK)  # reads ahead from its end ...
        again = from_(fetch(conn, TOPIC, 0, 100, max_bytes=CHUNK), 100)  # ... this is not
        assert again[0].offset == 100
        assert [r.value for r in again] == VALUES[100:100 + len(again)]

        assert first.records[0].offset == 0
        ahead = from_(fetch(conn, TOPIC, 0, 1000, max_bytes=CHUNK), 1000)  # reads ahead ...
        assert produce(conn, TOPIC, 0, [b"late"]).error_code == 0  # ... then the log grows
        after = ahead[-1].offset + 1
        later = fetch(conn, TOPIC, 0, after, max_bytes=CHUNK)
        assert later.high_watermark == len(VALUES) + 1, "watermarks are today's"
        values = [r.value for r in from_(later, after)]
        assert values == VALUES[after:][:len(values)]


def from_(fetched, offset: int) -> list:
    """The records of a fetch at ``offset``, as a client keeps them."""
    return [r for r in fetched.records if r.offset >= offset]
