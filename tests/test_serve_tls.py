"""TLS listeners of a real ``eventstore serve``, with certificates made by ``openssl``.

kcat, confluent-kafka and kafka-python produce and consume over SSL; mutual TLS names the
client by its certificate (``ssl.principal.mapping.rules``); a plaintext client on the TLS
port, an expired certificate, one from a CA the server does not trust, and none where one
is required each fail the handshake, write nothing, and leave the server serving others.
Safe by default: a non-loopback PLAINTEXT listener is refused unless told, and the ready
line says which listeners require authentication.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
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
from support import (
    PRODUCE_VERSION,
    KafkaConnection,
    ServerProcess,
    eventstore_command,
    produce_fields,
    record_batch,
    wait_until,
)

from eventstore.kafka.codec.apikeys import ApiKey

LIST_OFFSETS_LATEST = -1


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, client_auth: str) -> dict[str, object]:
    """A PLAINTEXT and an SSL listener; the key in a PEM keystore, encrypted."""
    return {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "ssl.keystore.location": pki.keystore, "ssl.key.password": "keystore-secret",
            "ssl.truststore.location": pki.ca, "ssl.client.auth": client_auth}


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Client certificates requested (a client may send one)."""
    with ServerProcess.start(str(tmp_path_factory.mktemp("tls") / "data"),
                             settings=tls_settings(pki, "requested")) as server:
        yield server


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Client certificates required, mapped to their CN in lower case; the certificate and
    key given as two files this time."""
    settings = {**tls_settings(pki, "required"), "ssl.keystore.location": "",
                "ssl.key.password": "", "ssl.certificate.location": pki.server_cert,
                "ssl.key.location": pki.server_key,
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT"}
    with ServerProcess.start(str(tmp_path_factory.mktemp("mtls") / "data"),
                             settings=settings) as server:
        yield server


def ssl_bootstrap(server: ServerProcess) -> str:
    return f"127.0.0.1:{listener_ports(server)['SSL']}"


def plaintext(server: ServerProcess) -> tuple[str, int]:
    return "127.0.0.1", listener_ports(server)["PLAINTEXT"]


def end_offset(server: ServerProcess, topic: str) -> int:
    """The topic's partition 0 log-end-offset, asked on the PLAINTEXT listener (-1 when the
    topic does not exist)."""
    with KafkaConnection(plaintext(server)) as conn:
        answer = conn.request(ApiKey.LIST_OFFSETS, 1, replica_id=-1, topics=[
            {"name": topic, "partitions": [{"partition_index": 0,
                                            "timestamp": LIST_OFFSETS_LATEST}]}])
    partition = answer.topics[0].partitions[0]
    return partition.offset if partition.error_code == 0 else -1


def test_the_ready_line_says_which_listeners_require_authentication(server, mtls):
    assert "PLAINTEXT://127.0.0.1:" in server.ready["listeners"]
    assert "SSL://127.0.0.1:" in server.ready["listeners"]
    assert server.ready["listeners"].count("(no authentication)") == 2
    assert ("SSL://127.0.0.1:" + str(listener_ports(mtls)["SSL"])
            + " (authentication required)") in mtls.ready["listeners"]
    assert "hidden" in next(line for line in server.lines if "msg=starting" in line)
    assert not any("keystore-secret" in line for line in server.lines)


def test_confluent_kafka_over_ssl(server, pki):
    settings = {"security.protocol": "ssl", "ssl.ca.location": pki.ca}
    assert confluent_roundtrip(ssl_bootstrap(server), settings, "tls-ck", b"v1") == b"v1"


def test_kafka_python_over_ssl(server, pki):
    settings = {"security_protocol": "SSL", "ssl_cafile": pki.ca}
    assert kafka_python_roundtrip(ssl_bootstrap(server), settings, "tls-kp", b"v2") == b"v2"


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_over_ssl(server, pki):
    settings = {"security.protocol": "ssl", "ssl.ca.location": pki.ca}
    assert kcat_roundtrip(ssl_bootstrap(server), settings, "tls-kcat", "v3") == "v3"


def test_metadata_advertises_the_listener_the_client_came_in_on(server, pki):
    """A client that came over TLS is told the TLS port, one on PLAINTEXT the plain one."""
    context = ssl.create_default_context(cafile=pki.ca)
    ports = listener_ports(server)
    for name, wrap in (("SSL", True), ("PLAINTEXT", False)):
        with KafkaConnection(("127.0.0.1", ports[name]), tls=context if wrap else None
                             ) as conn:
            answer = conn.request(ApiKey.METADATA, 9, topics=[])
            assert [(b.host, b.port) for b in answer.brokers] == [("127.0.0.1", ports[name])]
            coordinator = conn.request(ApiKey.FIND_COORDINATOR, 3, key="g", key_type=0)
            assert (coordinator.host, coordinator.port) == ("127.0.0.1", ports[name])


def test_mutual_tls_names_the_client_by_its_certificate(mtls, pki):
    settings = {"security.protocol": "ssl", "ssl.ca.location": pki.ca,
                "ssl.certificate.location": pki.client_cert,
                "ssl.key.location": pki.client_key}
    assert confluent_roundtrip(ssl_bootstrap(mtls), settings, "mtls", b"m") == b"m"
    fields = mtls.wait_for_log(lambda f: f.get("msg") == "TLS client certificate", 10)
    assert fields["subject"] == "CN=alice,OU=eng,O=acme"
    assert fields["principal"] == "User:alice"  # the rule: the CN, lower case


def connected(server: ServerProcess, pki: Pki, cert: str | None, key: str | None
              ) -> KafkaConnection:
    """A connection to the SSL listener with the given client certificate (none when
    None), served one ApiVersions; raises what fails (ssl.SSLError, ConnectionError)."""
    context = ssl.create_default_context(cafile=pki.ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    conn = KafkaConnection(("127.0.0.1", listener_ports(server)["SSL"]), tls=context)
    try:
        conn.request(ApiKey.API_VERSIONS, 3, client_software_name="t",
                     client_software_version="1")
    except BaseException:
        conn.close()
        raise
    return conn


def tls_handshake(server: ServerProcess, pki: Pki, cert: str | None, key: str | None) -> None:
    """One TLS handshake and ApiVersions on the SSL listener, as :func:`connected`."""
    connected(server, pki, cert, key).close()


@pytest.mark.parametrize("which", ["expired", "untrusted", "none"])
def test_a_bad_client_certificate_is_refused_and_writes_nothing(mtls, pki, which):
    cert, key = {"expired": (pki.expired_cert, pki.expired_key),
                 "untrusted": (pki.untrusted_cert, pki.untrusted_key),
                 "none": (None, None)}[which]
    bystander = connected(mtls, pki, pki.client_cert, pki.client_key)  # logged in before
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_handshake(mtls, pki, cert, key)
    settings = {"security.protocol": "ssl", "ssl.ca.location": pki.ca}
    if cert is not None:
        settings |= {"ssl.certificate.location": cert, "ssl.key.location": key}
    error = confluent_refusal(ssl_bootstrap(mtls), settings)
    assert error.code() in (confluent_kafka.KafkaError._SSL,
                            confluent_kafka.KafkaError._TRANSPORT,
                            confluent_kafka.KafkaError._ALL_BROKERS_DOWN), error
    assert end_offset(mtls, "refused") == -1  # never even created
    with bystander:  # served throughout, and new clients too
        assert bystander.request(ApiKey.METADATA, 9, topics=[]).brokers
    tls_handshake(mtls, pki, pki.client_cert, pki.client_key)
    assert not [line for line in mtls.lines if "Traceback" in line]


@pytest.mark.parametrize("request_kind", ["ApiVersions", "Produce"])
def test_a_plaintext_client_on_the_tls_port_is_refused(server, pki, request_kind):
    bystander = connected(server, pki, None, None)
    with KafkaConnection(("127.0.0.1", listener_ports(server)["SSL"])) as conn:
        if request_kind == "Produce":
            conn.send_frame(conn.encode(ApiKey.PRODUCE, PRODUCE_VERSION, **produce_fields(
                "plain-on-tls", 0, record_batch(b"never written")))[1])
        else:
            conn.send_frame(b"\x00\x12\x00\x03" + b"\x00" * 20)
        assert conn.closed_by_server(timeout=20)
    assert end_offset(server, "plain-on-tls") == -1
    # the server kept serving TLS and plaintext clients
    with bystander:
        assert bystander.request(ApiKey.METADATA, 9, topics=[]).brokers
    tls_handshake(server, pki, None, None)
    with KafkaConnection(plaintext(server)) as conn:
        assert conn.request(ApiKey.METADATA, 9, topics=[]).brokers


def run_serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*eventstore_command(), "serve", "--data-dir", str(tmp_path / "d"),
                             "--metrics-listen", "127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_non_loopback_plaintext_listener_is_refused_unless_told(tmp_path):
    refused = run_serve(tmp_path, "--listen", "0.0.0.0:0")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode != 0
    lines = [line for line in err.splitlines() if "refusing to start" in line]
    assert len(lines) == 1 and "--allow-plaintext" in lines[0], err
    assert "Traceback" not in err

    allowed = run_serve(tmp_path, "--listen", "0.0.0.0:0", "--allow-plaintext")
    try:
        wait_until(lambda: "msg=ready" in (allowed.stderr.readline() or "x"), 60,
                   "the server starts with --allow-plaintext")
    finally:
        allowed.terminate()
        allowed.communicate(timeout=30)


def test_a_tls_listener_without_a_certificate_is_one_clear_line(tmp_path):
    refused = run_serve(tmp_path, "--set", "listeners=SSL://127.0.0.1:0")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode != 0
    assert "ssl.keystore.location" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
