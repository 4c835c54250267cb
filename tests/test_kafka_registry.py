"""The registry of the wire API (eventstore/kafka/registry.py): the one table ApiVersions
answers from, the listener decodes against and sessions route by."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import pkgutil
import struct

import pytest
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol
from kio.schema.index import api_key_map

import eventstore.kafka.handlers
from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.kafka.codec.protocol import UnsupportedApiVersion, decode_request, encode_response
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.registry import APIS, SUPPORTED_VERSIONS, handle_api_versions
from eventstore.kafka.session import Session


def test_api_keys_are_kafkas_names_and_numbers():
    assert {key.value: key.name for key in ApiKey} == {
        number: name.upper() for number, name in api_key_map.items()}


def test_every_handler_is_a_coroutine_of_a_connection_and_a_request():
    for key, api in APIS.items():
        assert inspect.iscoroutinefunction(api.handler), key
        assert list(inspect.signature(api.handler).parameters) == ["conn", "request"], key
        module = api.handler.__module__
        assert module.startswith("eventstore.kafka.handlers.") or (
            api.handler is handle_api_versions), (key, module)


def test_every_handler_module_serves_an_api():
    """A module of handlers/ that no entry names is dead, or an entry is missing."""
    registered = {api.handler.__module__ for api in APIS.values()}
    for module in pkgutil.iter_modules(eventstore.kafka.handlers.__path__):
        name = f"eventstore.kafka.handlers.{module.name}"
        importlib.import_module(name)
        assert name in registered, name


def session() -> Session:
    """A session over a context with no actors: only for requests that touch none."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    return Session(BrokerContext(None, None, "localhost", 9092, pool, {}), "127.0.0.1")


@pytest.mark.parametrize("version", range(SUPPORTED_VERSIONS[ApiKey.API_VERSIONS][1] + 1))
def test_api_versions_answers_exactly_the_registry(version: int):
    client = KafkaProtocol(client_id="registry-test")
    client.send_request(ApiVersionsRequest[version](
        **({"client_software_name": "t", "client_software_version": "1"} if version >= 3 else {})
    ))
    request = decode_request(bytes(client.send_bytes()[4:]), SUPPORTED_VERSIONS)
    connection = session()
    try:
        body = asyncio.run(connection.handle(request))
    finally:
        connection.close()
    [(_, parsed)] = client.receive_bytes(encode_response(request, body))
    assert parsed.error_code == 0
    assert {k.api_key: (k.min_version, k.max_version) for k in parsed.api_keys} == {
        key: api.versions for key, api in APIS.items()}


def test_apis_and_versions_outside_the_registry_are_refused():
    for key in ApiKey:
        api = APIS.get(key)
        refused = [0] if api is None else [api.versions[0] - 1, api.versions[1] + 1]
        for version in refused:
            with pytest.raises(UnsupportedApiVersion):
                decode_request(struct.pack(">hhi", key, version, 1), SUPPORTED_VERSIONS)
