"""The Kafka codec against independent implementations.

Record batches are checked against kafka-python's own builder and reader, requests are
written by kio's and kafka-python's encoders, and responses are read back by
kafka-python's decoders, so a shared misreading of the protocol cannot pass unnoticed.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import struct
from functools import cache
from types import SimpleNamespace

import cramjam
import kafka.codec
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataResponse,
)
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.producer import ProduceResponse
from kafka.record import default_records
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v1.request import MetadataRequest as KioMetadataRequestV1
from kio.schema.metadata.v1.request import MetadataRequestTopic as KioMetadataTopicV1
from kio.schema.metadata.v12.request import MetadataRequest as KioMetadataRequestV12
from kio.schema.metadata.v12.request import MetadataRequestTopic as KioMetadataTopicV12
from kio.schema.produce.v3 import request as kio_produce_v3
from kio.schema.produce.v9 import request as kio_produce_v9
from kio.serial import entity_writer

from eventstore.errors import (
    CorruptRecord,
    InvalidRequest,
    RecordTooLarge,
    UnknownTopicOrPartition,
)
from eventstore.errors import UnsupportedVersion as UnsupportedVersionError
from eventstore.kafka.codec.protocol import (
    Request,
    UnknownField,
    UnsupportedApiVersion,
    api_versions_response,
    build,
    decode_request,
    encode_response,
    make_response,
)
from eventstore.kafka.codec.recordbatch import decode_batches, encode_batch
from eventstore.kafka.registry import SUPPORTED_VERSIONS
from eventstore.storage.records import LogRecord, Record, encode_headers

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
BASE_TIME = 1_700_000_000_123


def sample_records(count: int = 30) -> list[Record]:
    """Keys and values None, empty and set; headers with None values; timestamps that
    go back before the first one (negative deltas) as well as forward."""
    records = []
    for i in range(count):
        key = None if i % 4 == 0 else b"" if i % 4 == 1 else b"key-%d" % i
        value = None if i % 7 == 3 else b"" if i % 7 == 5 else b"value %d, " % i * 12
        headers = () if i % 3 == 0 else (
            ("trace", b"\x00\xff\x10"), ("null", None), ("empty", b""), ("clé", b"v"),
        )
        timestamp = BASE_TIME + (i * 997 if i % 5 else -i * 31)
        records.append(Record(value, key, headers, timestamp))
    return records


def _enable_kafka_python_codecs(patch: pytest.MonkeyPatch) -> None:
    """Let kafka-python compress with every codec: with its own libraries when they are
    installed, else with cramjam's primitives. kafka-python still frames and batches on
    its own (xerial blocks for snappy, its own batch header and CRC)."""
    if not kafka.codec.has_snappy():
        patch.setattr(kafka.codec, "snappy", SimpleNamespace(
            compress=lambda data: bytes(cramjam.snappy.compress_raw(data)),
            decompress=lambda data: bytes(cramjam.snappy.decompress_raw(data)),
        ))
    for name in ("lz4", "zstd"):
        if not getattr(kafka.codec, f"has_{name}")():
            codec = getattr(cramjam, name)
            patch.setattr(kafka.codec, f"has_{name}", lambda: True)
            patch.setattr(default_records, f"{name}_encode",
                          lambda data, c=codec: bytes(c.compress(data)))
            patch.setattr(default_records, f"{name}_decode",
                          lambda data, c=codec: bytes(c.decompress(data)))


def kafka_python_batch(
    records: list[Record], codec: str, *, raw_snappy: bool = False, producer=(-1, -1, -1)
) -> bytes:
    """One batch as kafka-python's producer builds it (offsets 0..n-1)."""
    with pytest.MonkeyPatch.context() as patch:
        _enable_kafka_python_codecs(patch)
        if raw_snappy:  # librdkafka's framing: one raw snappy block
            patch.setattr(default_records, "snappy_encode",
                          lambda data: kafka.codec.snappy_encode(data, xerial_compatible=False))
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=CODECS[codec], is_transactional=False,
            producer_id=producer[0], producer_epoch=producer[1], base_sequence=producer[2],
            batch_size=1 << 24,
        )
        for offset, record in enumerate(records):
            builder.append(offset, record.timestamp, record.key, record.value,
                           list(record.headers))
        return bytes(builder.build())


def read_with_kafka_python(data: bytes) -> list[tuple]:
    """(batch attributes, [(offset, timestamp, key, value, headers)]) per batch."""
    memory = MemoryRecords(data)
    batches = []
    while memory.has_next():
        batch = memory.next_batch()
        assert batch.validate_crc()
        records = [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]
        batches.append(((batch.base_offset, batch.timestamp_type, batch.producer_id,
                         batch.producer_epoch, batch.base_sequence), records))
    return batches


# --- record batches ------------------------------------------------------------------


@pytest.mark.parametrize("codec", list(CODECS))
def test_decodes_kafka_python_batches_for_every_codec(codec):
    records = sample_records()
    data = kafka_python_batch(records, codec, producer=(4242, 7, 100))

    [batch] = decode_batches(data)

    assert DefaultRecordBatch(data).compression_type == CODECS[codec]  # really compressed
    if codec == "snappy":
        assert data[61:].startswith(b"\x82SNAPPY\x00")  # xerial framing, as Java sends
    assert batch.compression == codec
    assert batch.records == tuple(records)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (4242, 7, 100)
    assert batch.timestamp_type == "CreateTime"
    assert not batch.is_transactional and not batch.is_control
    assert batch.base_offset == 0
    assert batch.size_in_bytes == len(data)


def test_decodes_raw_snappy_as_librdkafka_sends_it():
    records = sample_records()
    data = kafka_python_batch(records, "snappy", raw_snappy=True)
    assert not data[61:].startswith(b"\x82SNAPPY")

    [batch] = decode_batches(data)

    assert batch.compression == "snappy"
    assert batch.records == tuple(records)


def test_decodes_several_batches_in_one_records_field():
    first, second = sample_records(5), sample_records(9)
    data = kafka_python_batch(first, "none") + kafka_python_batch(second, "gzip")

    batches = decode_batches(data)

    assert [b.records for b in batches] == [tuple(first), tuple(second)]
    assert sum(b.size_in_bytes for b in batches) == len(data)
    assert decode_batches(b"") == []


def to_log_records(records: list[Record], base_offset: int) -> list[LogRecord]:
    return [LogRecord(base_offset + i, r.timestamp, r.key, r.value, r.headers)
            for i, r in enumerate(records)]


def test_encoded_batch_is_byte_for_byte_what_kafka_python_builds():
    records = sample_records()
    ours = encode_batch(0, to_log_records(records, 0),
                        producer_id=99, producer_epoch=3, base_sequence=17)
    theirs = kafka_python_batch(records, "none", producer=(99, 3, 17))
    # Only the partition leader epoch differs: kafka-python's producer leaves it 0 for the
    # broker to set, we send -1 (unknown). The CRC does not cover it.
    assert ours[:12] + ours[16:] == theirs[:12] + theirs[16:]
    assert ours[12:16] == b"\xff\xff\xff\xff"


def test_encoded_batches_read_back_by_kafka_python():
    first = to_log_records(sample_records(12), 1000)
    # offsets with gaps, as compaction leaves them
    second = [LogRecord(2000 + 3 * i, BASE_TIME + i, b"k", b"v" * i, (("h", None),))
              for i in range(5)]
    data = encode_batch(1000, first) + encode_batch(2000, second)

    batches = read_with_kafka_python(data)

    assert [attrs for attrs, _ in batches] == [(1000, 0, -1, -1, -1), (2000, 0, -1, -1, -1)]
    assert [records for _, records in batches] == [
        [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in first],
        [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in second],
    ]


def test_log_append_time_batch():
    records = [LogRecord(5 + i, BASE_TIME, b"k%d" % i, b"v", ()) for i in range(3)]
    data = encode_batch(5, records, timestamp_type="LogAppendTime")

    [(attrs, read)] = read_with_kafka_python(data)
    [batch] = decode_batches(data)

    assert attrs[1] == 1  # kafka-python's LOG_APPEND_TIME
    assert [r[1] for r in read] == [BASE_TIME] * 3
    assert batch.timestamp_type == "LogAppendTime"


def test_encode_then_decode_round_trips():
    records = sample_records()
    [batch] = decode_batches(encode_batch(40, to_log_records(records, 40)))
    assert batch.records == tuple(records)
    assert batch.base_offset == 40


def test_stored_rows_encode_as_their_log_records_do():
    """Fetch encodes rows as a segment read returns them, headers still JSON text; offset
    deltas past the precomputed varints and timestamps going back included."""
    records = [LogRecord(7 + 3 * i, BASE_TIME - 1000 * (i % 7) + i, b"k%d" % i, b"v" * (i % 300),
                         (("h", b"\x00\xff"), ("none", None)) if i % 3 else ())
               for i in range(40_000)]
    rows = [(r.offset, r.timestamp, r.key, r.value, encode_headers(r.headers)) for r in records]
    assert encode_batch(7, rows) == encode_batch(7, records)
    [(_, read)] = read_with_kafka_python(encode_batch(7, rows))
    assert read == [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records]


def test_encode_rejects_bad_arguments():
    with pytest.raises(ValueError):
        encode_batch(0, [])
    with pytest.raises(ValueError):
        encode_batch(0, to_log_records(sample_records(1), 0), timestamp_type="Whenever")


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_every_flipped_byte_is_corrupt(codec):
    data = kafka_python_batch(sample_records(6), codec)
    for position in range(len(data)):
        if position < 8 or 12 <= position < 16:
            continue  # baseOffset and partitionLeaderEpoch: the CRC skips them, as in Kafka
        flipped = bytearray(data)
        flipped[position] ^= 0x41
        with pytest.raises(CorruptRecord):
            decode_batches(bytes(flipped))


def test_crc_mismatch_is_named():
    data = bytearray(kafka_python_batch(sample_records(3), "none"))
    data[-1] ^= 1
    with pytest.raises(CorruptRecord, match="CRC32C"):
        decode_batches(bytes(data))


def test_only_magic_2_is_supported():
    data = bytearray(kafka_python_batch(sample_records(3), "none"))
    data[16] = 1
    with pytest.raises(CorruptRecord, match="only v2 record batches"):
        decode_batches(bytes(data))


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_every_truncation_is_corrupt(codec):
    data = kafka_python_batch(sample_records(4), codec)
    for size in range(1, len(data)):
        with pytest.raises(CorruptRecord):
            decode_batches(data[:size])


@cache
def seed_batches() -> tuple[bytes, ...]:
    records = sample_records(6)
    return (
        *(kafka_python_batch(records, codec) for codec in CODECS),
        kafka_python_batch(records, "snappy", raw_snappy=True),
    )


def with_fixed_crc(data: bytes) -> bytes:
    """``data`` with its first batch's CRC made right, so decoding goes past the check."""
    if len(data) < 61:
        return data
    fixed = bytearray(data)
    struct.pack_into(">I", fixed, 17, crc32c(data[21:]))
    return bytes(fixed)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_corrupt_record(data):
    with contextlib.suppress(CorruptRecord):
        decode_batches(data)
    with contextlib.suppress(CorruptRecord):
        decode_batches(with_fixed_crc(b"\x00" * 16 + b"\x02" + data))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, len(CODECS)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4),
    keep=st.integers(0, 1 << 16),
    fix_crc=st.booleans(),
)
def test_mutated_batches_raise_only_corrupt_or_too_large(seed, edits, keep, fix_crc):
    """A mutation may break a batch (CorruptRecord) or make its compressed payload claim
    more than a batch may expand to (RecordTooLarge); nothing else escapes."""
    data = bytearray(seed_batches()[seed])
    for position, byte in edits:
        data[position % len(data)] = byte
    data = bytes(data[: max(keep, 1)])
    if fix_crc:
        data = with_fixed_crc(data)
    with contextlib.suppress(CorruptRecord, RecordTooLarge):
        decode_batches(data)


# --- requests and responses ------------------------------------------------------------


def kio_frame(body, correlation_id: int = 7, client_id: str | None = "tester") -> bytes:
    """A request frame (without the size prefix) written by kio's own encoders."""
    header_type = type(body).__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_type)(buffer, header_type(
        request_api_key=body.__api_key__, request_api_version=body.__version__,
        correlation_id=correlation_id, client_id=client_id,
    ))
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def kafka_python_frame(request) -> tuple[KafkaProtocol, bytes]:
    """kafka-python's client protocol with ``request`` in flight, and the request frame."""
    client = KafkaProtocol(client_id="kafka-python-test")
    client.send_request(request)
    return client, bytes(client.send_bytes()[4:])


def test_supported_apis_are_the_ones_we_serve_and_kio_knows():
    names = {0: 3, 1: 4, 2: 1, 3: 0, 8: None, 9: 1, 10: 0, 11: 0, 12: 0, 13: 0, 14: 0,
             15: 0, 16: 0, 18: 0, 19: None, 20: None, 22: 0, 24: 0, 32: None, 33: 0, 35: None,
             37: 0, 42: 0, 44: 0, 46: None, 60: None, 23: None, 61: None, 75: None,
             21: None, 47: None, 17: None, 36: None, 50: None, 51: None,
             25: 0, 26: 0, 28: 0, 29: None, 30: None, 31: None, 65: None, 66: None,
             68: None, 69: None}
    assert set(SUPPORTED_VERSIONS) == set(names)
    for api_key, (low, high) in SUPPORTED_VERSIONS.items():
        assert low <= high
        if names[api_key] is not None:
            assert low <= names[api_key]
        for version in range(low, high + 1):
            assert load_request_schema(api_key, version).__version__ == version
            assert load_response_schema(api_key, version).__version__ == version
    # flexible; Fetch up to v16 (topic ids, issue 16)
    assert SUPPORTED_VERSIONS[0][1] >= 9 and SUPPORTED_VERSIONS[1][1] == 16
    assert SUPPORTED_VERSIONS[3][1] >= 9 and SUPPORTED_VERSIONS[18][1] >= 3


@pytest.mark.parametrize("version", range(SUPPORTED_VERSIONS[18][1] + 1))
def test_api_versions_round_trip(version):
    request = ApiVersionsRequest[version](
        **({"client_software_name": "t", "client_software_version": "1"} if version >= 3 else {})
    )
    client, frame = kafka_python_frame(request)

    decoded = decode_request(frame, SUPPORTED_VERSIONS)
    response = encode_response(
        decoded, api_versions_response(SUPPORTED_VERSIONS, decoded.api_version))

    assert (decoded.api_key, decoded.api_version, decoded.client_id) == (
        18, version, "kafka-python-test")
    # Response header v0 even for flexible versions: size, correlation id, error code.
    assert response[4:8] == struct.pack(">i", decoded.correlation_id)
    assert response[8:10] == b"\x00\x00"
    [(_, parsed)] = client.receive_bytes(response)
    assert parsed.error_code == 0
    advertised = {k.api_key: (k.min_version, k.max_version) for k in parsed.api_keys}
    assert advertised == SUPPORTED_VERSIONS


def test_api_versions_too_new_gets_v0_error_with_the_key_list():
    client, frame = kafka_python_frame(ApiVersionsRequest[4](
        client_software_name="t", client_software_version="1"))
    too_new = frame[:2] + struct.pack(">h", 9) + frame[4:]

    with pytest.raises(UnsupportedApiVersion) as caught:
        decode_request(too_new, SUPPORTED_VERSIONS)
    error = caught.value
    assert isinstance(error, UnsupportedVersionError) and error.code == 35
    assert (error.api_key, error.api_version) == (18, 9)
    assert str(error).startswith("UnsupportedVersion: ApiVersions v9")

    body = api_versions_response(SUPPORTED_VERSIONS, error.api_version)
    assert body.__version__ == 0 and body.error_code == ErrorCode.unsupported_version
    response = encode_response(error, body)
    parsed = ApiVersionsResponse[0].decode(response, header=True, framed=True)
    assert parsed.header.correlation_id == error.correlation_id
    assert parsed.error_code == 35
    advertised = {k.api_key: (k.min_version, k.max_version) for k in parsed.api_keys}
    assert advertised == SUPPORTED_VERSIONS
    # kafka-python, having asked v4, reads it too (it decodes errors as v0).
    [(_, parsed)] = client.receive_bytes(response)
    assert parsed.error_code == 35 and len(parsed.api_keys) == len(SUPPORTED_VERSIONS)


METADATA_VALUES = {
    "brokers": [{"node_id": 0, "host": "127.0.0.1", "port": 9092}],
    "cluster_id": "eventstore",
    "controller_id": 0,
    "topics": [
        {"error_code": 0, "name": "orders", "partitions": [
            {"error_code": 0, "partition_index": p, "leader_id": 0, "replica_nodes": [0],
             "isr_nodes": [0]} for p in range(3)]},
        {"error_code": UnknownTopicOrPartition(), "name": "missing", "partitions": []},
    ],
}


@pytest.mark.parametrize("kio_request", [
    KioMetadataRequestV1(topics=(KioMetadataTopicV1(name="orders"),)),
    KioMetadataRequestV12(topics=(KioMetadataTopicV12(name="orders", topic_id=None),),
                          allow_auto_topic_creation=True,
                          include_topic_authorized_operations=False),
])
def test_metadata_round_trip(kio_request):
    version = kio_request.__version__
    decoded = decode_request(kio_frame(kio_request, correlation_id=1234), SUPPORTED_VERSIONS)
    assert decoded == Request(3, version, 1234, "tester", kio_request)

    response = encode_response(decoded, make_response(decoded, **METADATA_VALUES))

    parsed = MetadataResponse[version].decode(response, header=True, framed=True)
    assert parsed.header.correlation_id == 1234
    assert [(b.node_id, b.host, b.port) for b in parsed.brokers] == [(0, "127.0.0.1", 9092)]
    assert [(t.name, t.error_code, [p.partition_index for p in t.partitions])
            for t in parsed.topics] == [("orders", 0, [0, 1, 2]), ("missing", 3, [])]
    # kafka-python encodes the same response to the same bytes.
    assert bytes(parsed.encode(header=True, framed=True)) == response


@pytest.mark.parametrize("module", [kio_produce_v3, kio_produce_v9])
def test_produce_round_trip(module):
    records = sample_records(8)
    batch = kafka_python_batch(records, "lz4", producer=(1, 0, 0))
    kio_request = module.ProduceRequest(
        transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=30),
        topic_data=(module.TopicProduceData(name="orders", partition_data=(
            module.PartitionProduceData(index=2, records=batch),)),),
    )

    decoded = decode_request(kio_frame(kio_request, correlation_id=5), SUPPORTED_VERSIONS)

    assert decoded.body == kio_request
    [topic] = decoded.body.topic_data
    [batch_out] = decode_batches(topic.partition_data[0].records)
    assert batch_out.records == tuple(records)

    body = make_response(decoded, responses=[{"name": "orders", "partition_responses": [
        {"index": 2, "error_code": 0, "base_offset": 42, "log_append_time": -1,
         "log_start_offset": 0}]}])
    response = encode_response(decoded, body)
    parsed = ProduceResponse[module.ProduceRequest.__version__].decode(
        response, header=True, framed=True)
    assert parsed.header.correlation_id == 5
    [partition] = parsed.responses[0].partition_responses
    assert (partition.index, partition.error_code, partition.base_offset) == (2, 0, 42)
    assert partition.log_append_time_ms == -1
    assert bytes(parsed.encode(header=True, framed=True)) == response


@pytest.mark.parametrize("version", [4, 12])
def test_fetch_response_carries_encoded_batches(version):
    request_type = FetchRequest[version]
    client, frame = kafka_python_frame(request_type(
        replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        topics=[request_type.FetchTopic(topic="orders", partitions=[
            request_type.FetchTopic.FetchPartition(
                partition=0, fetch_offset=10, partition_max_bytes=1 << 20)])],
    ))
    decoded = decode_request(frame, SUPPORTED_VERSIONS)
    assert decoded.body.max_wait == datetime.timedelta(milliseconds=500)
    log = to_log_records(sample_records(7), 10)

    body = make_response(decoded, throttle_time=0, responses=[{"topic": "orders", "partitions": [
        {"partition_index": 0, "error_code": 0, "high_watermark": 17,
         "last_stable_offset": 17, "log_start_offset": 0, "records": encode_batch(10, log)}]}])
    [(_, parsed)] = client.receive_bytes(encode_response(decoded, body))

    assert isinstance(parsed, FetchResponse)
    [partition] = parsed.responses[0].partitions
    assert partition.high_watermark == 17
    [(_, read)] = read_with_kafka_python(partition.records)
    assert read == [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in log]


def test_unknown_api_key_is_unsupported_with_the_correlation_id():
    with pytest.raises(UnsupportedApiVersion) as caught:
        decode_request(struct.pack(">hhi", 999, 0, 31337) + b"\xff\xff", SUPPORTED_VERSIONS)
    assert (caught.value.api_key, caught.value.api_version) == (999, 0)
    assert caught.value.correlation_id == 31337
    assert caught.value.code == 35
    # Known to Kafka but not served here (CreateDelegationToken), and a too-new Produce.
    for api_key, version in ((38, 1), (0, 13), (0, 2)):
        with pytest.raises(UnsupportedApiVersion):
            decode_request(struct.pack(">hhi", api_key, version, 1), SUPPORTED_VERSIONS)


def test_malformed_frames_are_invalid_requests():
    frame = kio_frame(KioMetadataRequestV1(topics=(KioMetadataTopicV1(name="orders"),)))
    for size in range(len(frame)):
        with pytest.raises(InvalidRequest):
            decode_request(frame[:size], SUPPORTED_VERSIONS)
    # bytes after the end are ignored, as Kafka does (librdkafka sends some)
    assert (decode_request(frame + b"\x00\x01", SUPPORTED_VERSIONS)
            == decode_request(frame, SUPPORTED_VERSIONS))


def test_encode_response_refuses_a_body_of_another_api_or_version():
    decoded = decode_request(kio_frame(KioMetadataRequestV1(topics=None)), SUPPORTED_VERSIONS)
    with pytest.raises(ValueError):
        encode_response(decoded, api_versions_response(SUPPORTED_VERSIONS, 0))
    with pytest.raises(ValueError):
        encode_response(decoded, build(load_response_schema(3, 2), **METADATA_VALUES))


def test_build_converts_plain_values_and_fills_zeros():
    body = build(load_response_schema(1, 12), throttle_time=25, error_code=CorruptRecord,
                 responses=[{"topic": "t", "partitions": [{"partition_index": 1}]}],
                 node_endpoints=[])  # Fetch v16's, not v12's: dropped
    assert body.throttle_time == datetime.timedelta(milliseconds=25)
    assert body.error_code is ErrorCode.corrupt_message
    [partition] = body.responses[0].partitions
    assert partition.error_code is ErrorCode.none
    assert partition.high_watermark == 0 and partition.records == b""
    assert partition.aborted_transactions == ()  # arrays are empty, even nullable ones
    assert partition.diverging_epoch.epoch == -1  # nested entity of schema defaults
    produced = build(load_response_schema(0, 9), responses=[{"name": "t", "partition_responses": [
        {"index": 0, "base_offset": 1, "log_append_time": BASE_TIME}]}])
    log_append_time = produced.responses[0].partition_responses[0].log_append_time
    assert round(log_append_time.timestamp() * 1000) == BASE_TIME


def test_build_refuses_a_field_no_version_has():
    """A misspelt field would go out as its zero (error code 0 for a failure): it is a bug,
    and says which field of which API."""
    metadata_v12 = load_response_schema(3, 12)
    with pytest.raises(UnknownField, match="Metadata response has no field 'clusterid'"):
        build(metadata_v12, clusterid="eventstore")
    with pytest.raises(UnknownField, match=r"'topics\.partitions\.leader_idd' in any version"):
        build(metadata_v12, topics=[{"name": "t", "partitions": [{"leader_idd": 0}]}])
    produce = decode_request(kio_frame(kio_produce_v9.ProduceRequest(
        acks=1, timeout=datetime.timedelta(seconds=1), topic_data=())), SUPPORTED_VERSIONS)
    with pytest.raises(UnknownField, match="Produce response has no field 'responses.nmae'"):
        make_response(produce, responses=[{"nmae": "t"}])
    with pytest.raises(UnknownField, match="Metadata request has no field 'topics.nam'"):
        build(load_request_schema(3, 1), topics=[{"nam": "t"}])


def test_build_drops_a_field_only_other_versions_have():
    """One call serves every version: Metadata v12 lacks cluster_authorized_operations
    (v8-v10 have it) and v0 lacks each partition's offline_replicas (v5 on)."""
    values = {**METADATA_VALUES, "cluster_authorized_operations": 8}
    assert build(load_response_schema(3, 10), **values).cluster_authorized_operations == 8
    assert not hasattr(build(load_response_schema(3, 12), **values),
                       "cluster_authorized_operations")
    old = build(load_response_schema(3, 0), topics=[{"name": "t", "partitions": [
        {"partition_index": 0, "offline_replicas": [0]}]}])
    assert old.topics[0].partitions[0].partition_index == 0


def frames_of_every_supported_version() -> list[tuple[int, int]]:
    return [(k, v) for k, (low, high) in SUPPORTED_VERSIONS.items() for v in range(low, high + 1)]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_frames_raise_only_typed_errors(frame):
    with contextlib.suppress(InvalidRequest, UnsupportedVersionError):
        decode_request(frame, SUPPORTED_VERSIONS)


@settings(max_examples=1000, deadline=None)
@given(
    api=st.sampled_from(frames_of_every_supported_version()),
    correlation_id=st.integers(-(1 << 31), (1 << 31) - 1),
    rest=st.binary(max_size=200),
)
def test_random_bodies_of_supported_apis_raise_only_invalid_request(api, correlation_id, rest):
    with contextlib.suppress(InvalidRequest):
        decode_request(struct.pack(">hhi", *api, correlation_id) + rest, SUPPORTED_VERSIONS)


@settings(max_examples=500, deadline=None)
@given(
    seed=st.sampled_from([
        kio_frame(KioMetadataRequestV12(topics=(KioMetadataTopicV12(name="t", topic_id=None),),
                                        allow_auto_topic_creation=True,
                                        include_topic_authorized_operations=False)),
        kio_frame(kio_produce_v9.ProduceRequest(
            acks=1, timeout=datetime.timedelta(seconds=1), topic_data=(
                kio_produce_v9.TopicProduceData(name="t", partition_data=(
                    kio_produce_v9.PartitionProduceData(index=0, records=b"x" * 70),)),))),
    ]),
    edits=st.lists(st.tuples(st.integers(0, 1 << 10), st.integers(0, 255)), min_size=1,
                   max_size=4),
)
def test_mutated_frames_raise_only_typed_errors(seed, edits):
    frame = bytearray(seed)
    for position, byte in edits:
        frame[position % len(frame)] = byte
    with contextlib.suppress(InvalidRequest, UnsupportedVersionError):
        decode_request(bytes(frame), SUPPORTED_VERSIONS)


@pytest.mark.parametrize(("codec", "raw_snappy"), [
    ("gzip", False), ("snappy", False), ("snappy", True), ("lz4", False), ("zstd", False)])
def test_a_compression_bomb_is_refused_within_its_limit(codec, raw_snappy):
    """A batch of a few KiB that would expand to megabytes is RecordTooLarge past the
    limit, and decodes whole below it."""
    bomb = [Record(b"\0" * 200_000, None, (), 1_700_000_000_000 + i) for i in range(20)]
    data = kafka_python_batch(bomb, codec, raw_snappy=raw_snappy)
    assert len(data) < 400_000
    with pytest.raises(RecordTooLarge, match="expand past 1000000 bytes"):
        decode_batches(data, max_decompressed_bytes=1_000_000)
    [batch] = decode_batches(data, max_decompressed_bytes=8_000_000)
    assert [r.value for r in batch.records] == [b"\0" * 200_000] * 20
