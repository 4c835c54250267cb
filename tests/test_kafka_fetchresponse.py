"""The hand-written Fetch response is byte for byte what kio writes, at every version."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.fetchresponse import (
    FIRST_VERSION,
    LAST_VERSION,
    TOPIC_IDS_FROM,
    PartitionAnswer,
    encode_fetch_response,
)
from eventstore.kafka.codec.protocol import Request, encode_response, make_response
from eventstore.kafka.registry import SUPPORTED_VERSIONS

answers = st.builds(
    PartitionAnswer,
    partition=st.integers(0, 2**31 - 1),
    error_code=st.sampled_from([0, 1, 3, 56]),
    high_watermark=st.integers(-1, 2**63 - 1),
    log_start_offset=st.integers(-1, 2**63 - 1),
    records=st.binary(max_size=300),
)
topics = st.lists(st.tuples(st.text(min_size=1, max_size=150), st.lists(answers, max_size=4)),
                  max_size=4)


def test_the_versions_written_by_hand_are_the_ones_served() -> None:
    assert SUPPORTED_VERSIONS[ApiKey.FETCH] == (FIRST_VERSION, LAST_VERSION)


@given(version=st.integers(FIRST_VERSION, LAST_VERSION),
       correlation_id=st.integers(-(2**31), 2**31 - 1), topics=topics)
def test_matches_kio_byte_for_byte(version: int, correlation_id: int, topics: list) -> None:
    if version >= TOPIC_IDS_FROM:  # topics named by id
        topics = [(uuid.uuid5(uuid.NAMESPACE_DNS, name), partitions)
                  for name, partitions in topics]
    key = "topic_id" if version >= TOPIC_IDS_FROM else "topic"
    request = Request(ApiKey.FETCH, version, correlation_id, "test", None)
    body = make_response(request, responses=[{key: name, "partitions": [
        {"partition_index": p.partition, "error_code": p.error_code,
         "high_watermark": p.high_watermark, "last_stable_offset": p.high_watermark,
         "log_start_offset": p.log_start_offset, "preferred_read_replica": -1,
         "records": p.records} for p in partitions]} for name, partitions in topics])
    assert encode_fetch_response(correlation_id, version, topics) == encode_response(request,
                                                                                     body)


def test_other_versions_are_refused() -> None:
    with pytest.raises(ValueError, match=f"v{LAST_VERSION + 1}"):
        encode_fetch_response(1, LAST_VERSION + 1, [])
