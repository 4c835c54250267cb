"""SASL listeners of a real ``eventstore serve``: PLAIN and SCRAM-SHA-256/512 logins.

kcat, confluent-kafka and kafka-python produce and consume over SASL_SSL with
SCRAM-SHA-512 and over SASL_PLAINTEXT with PLAIN. A wrong password, an unknown user and a
mechanism not enabled are refused with Kafka's codes (SASL_AUTHENTICATION_FAILED,
UNSUPPORTED_SASL_MECHANISM), logged with the client's address, and slowed down when
repeated, while others are served; before a login only ApiVersions and SASL requests are
served. Users are managed with AlterUserScramCredentials / DescribeUserScramCredentials
(confluent-kafka's admin client) and survive a restart; the catalog, read with
``sqlite3``, holds salted and iterated credentials and no password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from secure import (
    KCAT,
    Pki,
    confluent_refusal,
    confluent_roundtrip,
    kafka_python_roundtrip,
    kcat_roundtrip,
    listener_ports,
    make_pki,
)
from support import KafkaConnection, ServerProcess, wait_until

from eventstore.kafka.codec.apikeys import ApiKey
from eventstore.security.scram import make_credential
from eventstore.storage.credentials import CredentialStore

PASSWORD = "alice-secret-password"
SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
DELAY_MS = 300


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """SASL_SSL, SASL_PLAINTEXT and a loopback PLAINTEXT listener; alice has both SCRAM
    credentials, written on the data directory before the server starts."""
    data_dir = str(tmp_path_factory.mktemp("sasl") / "data")
    with CredentialStore.open(data_dir) as store:
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            store.upsert("alice", make_credential(mechanism, PASSWORD))
    settings = {
        "listeners": "SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,"
                     "PLAINTEXT://127.0.0.1:0",
        "ssl.certificate.location": pki.server_cert, "ssl.key.location": pki.server_key,
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512,SCRAM-SHA-256",
        "connection.failed.authentication.delay.ms": DELAY_MS,
    }
    with ServerProcess.start(data_dir, settings=settings) as server:
        yield server


def address(server: ServerProcess, name: str) -> tuple[str, int]:
    return "127.0.0.1", listener_ports(server)[name]


def bootstrap(server: ServerProcess, name: str) -> str:
    host, port = address(server, name)
    return f"{host}:{port}"


def scram_ssl(pki: Pki, user: str = "alice", password: str = PASSWORD,
              mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {"security.protocol": "sasl_ssl", "ssl.ca.location": pki.ca,
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def plain(user: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": password}


def end_offset(server: ServerProcess, topic: str) -> int:
    """Partition 0's log-end-offset (-1: no such topic), asked on the PLAINTEXT listener."""
    with KafkaConnection(address(server, "PLAINTEXT")) as conn:
        answer = conn.request(ApiKey.LIST_OFFSETS, 1, replica_id=-1, topics=[
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}])
    partition = answer.topics[0].partitions[0]
    return partition.offset if partition.error_code == 0 else -1


def test_the_ready_line_says_the_sasl_listeners_require_authentication(server):
    listeners = server.ready["listeners"]
    assert f"SASL_SSL://{bootstrap(server, 'SASL_SSL')} (authentication required)" in listeners
    assert (f"SASL_PLAINTEXT://{bootstrap(server, 'SASL_PLAINTEXT')}"
            " (authentication required)") in listeners
    assert f"PLAINTEXT://{bootstrap(server, 'PLAINTEXT')} (no authentication)" in listeners


def test_confluent_kafka_scram_sha_512_over_sasl_ssl(server, pki):
    got = confluent_roundtrip(bootstrap(server, "SASL_SSL"), scram_ssl(pki), "ck-scram", b"a")
    assert got == b"a"
    fields = server.wait_for_log(lambda f: f.get("msg") == "authenticated"
                                 and f.get("mechanism") == "SCRAM-SHA-512", 10)
    assert fields["principal"] == "User:alice"


def test_confluent_kafka_plain_over_sasl_plaintext(server):
    assert confluent_roundtrip(bootstrap(server, "SASL_PLAINTEXT"), plain(), "ck-plain",
                               b"b") == b"b"


def kafka_python_settings(pki: Pki | None) -> dict[str, object]:
    if pki is None:
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}
    return {"security_protocol": "SASL_SSL", "ssl_cafile": pki.ca,
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
            "sasl_plain_password": PASSWORD}


def test_kafka_python_scram_sha_512_over_sasl_ssl(server, pki):
    assert kafka_python_roundtrip(bootstrap(server, "SASL_SSL"), kafka_python_settings(pki),
                                  "kp-scram", b"c") == b"c"


def test_kafka_python_plain_over_sasl_plaintext(server):
    assert kafka_python_roundtrip(bootstrap(server, "SASL_PLAINTEXT"),
                                  kafka_python_settings(None), "kp-plain", b"d") == b"d"


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_scram_sha_512_over_sasl_ssl_and_plain_over_sasl_plaintext(server, pki):
    assert kcat_roundtrip(bootstrap(server, "SASL_SSL"), scram_ssl(pki), "kcat-scram",
                          "e") == "e"
    assert kcat_roundtrip(bootstrap(server, "SASL_PLAINTEXT"), plain(), "kcat-plain",
                          "f") == "f"


def forgive(server: ServerProcess) -> None:
    """A good login from this host: the delays of its earlier failures are forgotten."""
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        assert authenticate_raw(conn, "PLAIN", f"\0alice\0{PASSWORD}".encode()) == (0, 0)


def authenticate_raw(conn: KafkaConnection, mechanism: str, token: bytes) -> tuple[int, int]:
    """SaslHandshake v1 then one SaslAuthenticate v2 by hand: the two error codes."""
    handshake = conn.request(ApiKey.SASL_HANDSHAKE, 1, mechanism=mechanism)
    if handshake.error_code:
        return handshake.error_code, -1
    answer = conn.request(ApiKey.SASL_AUTHENTICATE, 2, auth_bytes=token)
    return 0, answer.error_code


@pytest.mark.parametrize("case", ["wrong password", "unknown user"])
def test_a_bad_plain_login_is_sasl_authentication_failed_and_writes_nothing(server, case):
    user, password = ("alice", "not-it") if case == "wrong password" else ("mallory", "x")
    forgive(server)
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        codes = authenticate_raw(conn, "PLAIN", f"\0{user}\0{password}".encode())
        assert codes == (0, SASL_AUTHENTICATION_FAILED)
        conn.send_frame(conn.encode(ApiKey.METADATA, 9, topics=[])[1])
        assert conn.closed_by_server(timeout=20)  # a failed login serves nothing more
    error = confluent_refusal(bootstrap(server, "SASL_PLAINTEXT"), plain(user, password))
    assert error.code() == confluent_kafka.KafkaError._AUTHENTICATION, error
    fields = server.wait_for_log(lambda f: f.get("msg") == "authentication failed"
                                 and f.get("user") == user, 10)
    assert fields["client_host"] == "127.0.0.1"
    assert end_offset(server, "refused") == -1


@pytest.mark.parametrize("case", ["wrong password", "unknown user"])
def test_a_bad_scram_login_is_refused_with_kafkas_error(server, pki, case):
    user, password = ("alice", "not-it") if case == "wrong password" else ("mallory", "x")
    forgive(server)
    error = confluent_refusal(bootstrap(server, "SASL_SSL"), scram_ssl(pki, user, password))
    assert error.code() == confluent_kafka.KafkaError._AUTHENTICATION, error
    assert "SASL_AUTHENTICATION_FAILED" in error.str() or "uthentication" in error.str()
    assert end_offset(server, "refused") == -1


def test_a_mechanism_not_enabled_is_unsupported_sasl_mechanism(server):
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        answer = conn.request(ApiKey.SASL_HANDSHAKE, 1, mechanism="GSSAPI")
        assert answer.error_code == UNSUPPORTED_SASL_MECHANISM
        assert set(answer.mechanisms) == {"PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"}
    settings = {**plain(), "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": "true"}
    error = confluent_refusal(bootstrap(server, "SASL_PLAINTEXT"), settings)
    assert error.code() in (confluent_kafka.KafkaError._AUTHENTICATION,
                            confluent_kafka.KafkaError._UNSUPPORTED_FEATURE), error
    assert end_offset(server, "refused") == -1
    forgive(server)  # others log in and are served


@pytest.mark.parametrize("api_key", [ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.CREATE_TOPICS])
def test_nothing_but_api_versions_and_sasl_before_a_login(server, api_key):
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        assert conn.request(ApiKey.API_VERSIONS, 3, client_software_name="t",
                            client_software_version="1").error_code == 0
        version = {ApiKey.METADATA: 9, ApiKey.PRODUCE: 8, ApiKey.CREATE_TOPICS: 5}[api_key]
        fields = {ApiKey.PRODUCE: {"acks": -1, "timeout": 1000}}.get(api_key, {})
        conn.send_frame(conn.encode(api_key, version, **fields)[1])
        assert conn.closed_by_server(timeout=20)
    # after the handshake, only SaslAuthenticate
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        assert conn.request(ApiKey.SASL_HANDSHAKE, 1, mechanism="PLAIN").error_code == 0
        conn.send_frame(conn.encode(ApiKey.METADATA, 9, topics=[])[1])
        assert conn.closed_by_server(timeout=20)


def test_repeated_failures_are_slowed_down_without_holding_up_others(server):
    """Each failure in a row from a host waits longer (300 ms, 600 ms, ...); meanwhile a
    client that logs in correctly is answered at once."""
    forgive(server)
    waits = []
    for _ in range(3):
        with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
            started = time.monotonic()
            assert authenticate_raw(conn, "PLAIN", b"\0alice\0nope") == (
                0, SASL_AUTHENTICATION_FAILED)
            waits.append(time.monotonic() - started)
    assert waits[1] >= 2 * DELAY_MS / 1000 * 0.9 and waits[2] >= 4 * DELAY_MS / 1000 * 0.9

    others: list[float] = []

    def good_login() -> None:
        with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
            started = time.monotonic()
            conn.request(ApiKey.API_VERSIONS, 3, client_software_name="t",
                         client_software_version="1")
            others.append(time.monotonic() - started)

    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        conn.request(ApiKey.SASL_HANDSHAKE, 1, mechanism="PLAIN")
        correlation_id, frame = conn.encode(ApiKey.SASL_AUTHENTICATE, 2,
                                            auth_bytes=b"\0alice\0nope")
        conn.send_frame(frame)  # answered after 8 x 300 ms
        helper = threading.Thread(target=good_login)
        helper.start()
        helper.join(30)
        assert others and others[0] < 4 * DELAY_MS / 1000, others
        assert conn.read_response(ApiKey.SASL_AUTHENTICATE, 2, correlation_id).error_code == (
            SASL_AUTHENTICATION_FAILED)
    forgive(server)  # a success forgets the host's failures
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        started = time.monotonic()
        assert authenticate_raw(conn, "PLAIN", b"\0alice\0nope") == (
            0, SASL_AUTHENTICATION_FAILED)
        assert time.monotonic() - started < 2 * DELAY_MS / 1000


def salted(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac({"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism],
                               password.encode(), salt, iterations)


def test_users_made_over_the_wire_log_in_survive_a_restart_and_no_password_is_stored(
        server, pki):
    admin = AdminClient({"bootstrap.servers": bootstrap(server, "SASL_SSL"),
                         **scram_ssl(pki)})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(
            ScramMechanism.SCRAM_SHA_256, 8192), b"bob-secret-pw", os.urandom(16)),
    ])
    for future in futures.values():
        future.result(30)
    described = {user: future.result(30) for user, future in
                 admin.describe_user_scram_credentials(["bob", "alice"]).items()}
    assert [(info.mechanism, info.iterations) for info in described["bob"].scram_credential_infos
            ] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    assert {info.mechanism for info in described["alice"].scram_credential_infos} == {
        ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512}

    server.restart()
    got = confluent_roundtrip(bootstrap(server, "SASL_SSL"),
                              scram_ssl(pki, "bob", "bob-secret-pw", "SCRAM-SHA-256"),
                              "bob-topic", b"g")
    assert got == b"g"

    catalog = os.path.join(server.data_dir, "catalog.db")
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT user, mechanism, salt, iterations, stored_key, server_key"
                          " FROM scram_credentials ORDER BY user, mechanism").fetchall()
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("alice", "SCRAM-SHA-256", 4096), ("alice", "SCRAM-SHA-512", 4096),
        ("bob", "SCRAM-SHA-256", 8192)]
    assert len({row[2] for row in rows}) == 3 and all(len(row[2]) >= 16 for row in rows)
    # StoredKey is H(HMAC(SaltedPassword, "Client Key")): salted and iterated
    bob = rows[2]
    key = hmac.new(salted("SCRAM-SHA-256", "bob-secret-pw", bob[2], 8192), b"Client Key",
                   "sha256").digest()
    assert bob[4] == hashlib.sha256(key).digest()
    dump = b"".join(Path(server.data_dir, name).read_bytes()
                    for name in os.listdir(server.data_dir) if name.startswith("catalog.db"))
    for secret in (PASSWORD, "bob-secret-pw"):
        for form in (secret.encode(), base64.b64encode(secret.encode()),
                     secret.encode("utf-16-le")):
            assert form not in dump
    if shutil.which("sqlite3"):
        shown = subprocess.run(["sqlite3", catalog, ".dump scram_credentials"],
                               capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0 and "INSERT INTO" in shown.stdout
        assert PASSWORD not in shown.stdout and "bob-secret-pw" not in shown.stdout


def test_an_unauthenticated_client_cannot_alter_users(server, pki):
    """Only a logged-in client reaches AlterUserScramCredentials on a SASL listener."""
    context = ssl.create_default_context(cafile=pki.ca)
    with KafkaConnection(address(server, "SASL_SSL"), tls=context) as conn:
        conn.send_frame(conn.encode(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, deletions=[
            {"name": "alice", "mechanism": 2}], upsertions=[])[1])
        assert conn.closed_by_server(timeout=20)
    wait_until(lambda: end_offset(server, "x") == -1, 10, "the server still answers")
    with CredentialStore.open(server.data_dir, readonly=True) as store:
        assert store.credential("alice", "SCRAM-SHA-512") is not None


def test_a_v0_handshake_takes_bare_tokens(server):
    """After SaslHandshake v0 the tokens are bare frames (no Kafka header), as old clients
    send them; the login then serves requests, and a bad bare token closes the connection."""
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        assert conn.request(ApiKey.SASL_HANDSHAKE, 0, mechanism="PLAIN").error_code == 0
        conn.send_frame(f"\0alice\0{PASSWORD}".encode())
        assert conn._read_exactly(4, time.monotonic() + 20) == b"\0\0\0\0"  # empty answer
        assert conn.request(ApiKey.METADATA, 9, topics=[]).brokers
    with KafkaConnection(address(server, "SASL_PLAINTEXT")) as conn:
        assert conn.request(ApiKey.SASL_HANDSHAKE, 0, mechanism="PLAIN").error_code == 0
        conn.send_frame(b"\0alice\0wrong")
        assert conn.closed_by_server(timeout=30)
