"""What the security tests share: real TLS material made with the ``openssl`` command
line, the ports of a server's listeners, and a produce-and-consume round trip with each
real client (confluent-kafka, kafka-python, kcat) given its TLS and SASL settings.

:func:`make_pki` writes, into a directory: a CA, a server certificate for 127.0.0.1 and
localhost signed by it (its key apart, and both in one PEM keystore whose key is
encrypted with :data:`KEY_PASSWORD`), a client certificate for ``CN=alice,OU=eng,O=acme``,
one that expired yesterday, and one signed by another CA the server does not trust.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import kafka
from support import ServerProcess, poll_until, wait_until

KEY_PASSWORD = "keystore-secret"
CLIENT_SUBJECT = "/O=acme/OU=eng/CN=alice"


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    keystore: str  # certificate and encrypted key in one PEM file
    client_cert: str
    client_key: str
    expired_cert: str
    expired_key: str
    untrusted_cert: str
    untrusted_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(name: str, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", f"{name}.key", cwd=cwd)


def _ca(name: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
             "-subj", f"/CN={name}", "-days", "2", cwd=cwd)


def _signed(name: str, subject: str, ca: str, cwd: Path, days: str = "2",
            extensions: str = "") -> None:
    _key(name, cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
             cwd=cwd)
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", days]
    if extensions:
        (cwd / f"{name}.ext").write_text(extensions)
        args += ["-extfile", f"{name}.ext"]
    _openssl(*args, cwd=cwd)


def make_pki(directory: Path) -> Pki:
    """Every file of :class:`Pki`, made afresh in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", directory)
    _ca("other-ca", directory)
    _signed("server", "/CN=localhost", "ca", directory,
            extensions="subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout", f"pass:{KEY_PASSWORD}",
             "-out", "server-encrypted.key", cwd=directory)
    keystore = directory / "keystore.pem"
    keystore.write_text((directory / "server.pem").read_text()
                        + (directory / "server-encrypted.key").read_text())
    _signed("alice", CLIENT_SUBJECT, "ca", directory)
    _signed("expired", "/CN=expired", "ca", directory, days="-1")
    _signed("stranger", "/CN=stranger", "other-ca", directory)
    path = str(directory)
    return Pki(
        ca=f"{path}/ca.pem", server_cert=f"{path}/server.pem", server_key=f"{path}/server.key",
        keystore=str(keystore), client_cert=f"{path}/alice.pem",
        client_key=f"{path}/alice.key", expired_cert=f"{path}/expired.pem",
        expired_key=f"{path}/expired.key", untrusted_cert=f"{path}/stranger.pem",
        untrusted_key=f"{path}/stranger.key",
    )


# -- listeners and clients ----------------------------------------------------------------------


def listener_ports(server: ServerProcess) -> dict[str, int]:
    """Each listener's bound port, by name, from the server's ready line."""
    return {name: int(port) for name, port in
            re.findall(r"(\w+)://[\w.:\[\]-]+?:(\d+) \(", server.ready["listeners"])}


def confluent_roundtrip(bootstrap: str, settings: dict[str, str], topic: str,
                        value: bytes) -> bytes:
    """Produce ``value`` with confluent-kafka and read it back as a group member; the value
    read. Raises what the client reports (an authentication failure, ...)."""
    errors: list[Any] = []
    common = {"bootstrap.servers": bootstrap, **settings, "error_cb": errors.append}
    producer = confluent_kafka.Producer({**common, "message.timeout.ms": 20000})
    delivered: list[Any] = []
    producer.produce(topic, value, on_delivery=lambda err, msg: delivered.append(err or msg))
    producer.flush(30)
    assert delivered and not isinstance(delivered[0], confluent_kafka.KafkaError), (
        delivered, errors)
    consumer = confluent_kafka.Consumer({**common, "group.id": f"g-{topic}",
                                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])

        def read() -> bytes | None:
            message = consumer.poll(0.5)
            return message.value() if message is not None and not message.error() else None

        return wait_until(read, 60, f"confluent-kafka reads {topic}")
    finally:
        consumer.close()


def kafka_python_roundtrip(bootstrap: str, settings: dict[str, Any], topic: str,
                           value: bytes) -> bytes:
    """The same with kafka-python (``settings`` in its names)."""
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, **settings)
    try:
        producer.send(topic, value).get(timeout=30)
    finally:
        producer.close()
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                                   auto_offset_reset="earliest", **settings)
    try:
        records = poll_until(lambda: [r for batch in consumer.poll(timeout_ms=500).values()
                                      for r in batch], 1, 60, f"kafka-python reads {topic}")
        return records[0].value
    finally:
        consumer.close()


KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat_roundtrip(bootstrap: str, settings: dict[str, str], topic: str, value: str) -> str:
    """The same with kcat (librdkafka's settings as ``-X``): produce one line, consume it."""
    assert KCAT is not None, "kcat is not installed"
    options = [f"-X{key}={val}" for key, val in settings.items()]
    produced = subprocess.run([KCAT, "-b", bootstrap, *options, "-P", "-t", topic],
                              input=value + "\n", capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run([KCAT, "-b", bootstrap, *options, "-C", "-t", topic,
                               "-o", "beginning", "-c", "1", "-e", "-q"],
                              capture_output=True, text=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    return consumed.stdout.strip()


def confluent_refusal(bootstrap: str, settings: dict[str, str]) -> confluent_kafka.KafkaError:
    """The first error a confluent-kafka producer reports connecting with ``settings``
    (an SSL handshake failure, an authentication failure, ...)."""
    errors: list[confluent_kafka.KafkaError] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **settings,
                                         "error_cb": errors.append})
    try:
        producer.produce("refused", b"never written")

        def first_error() -> confluent_kafka.KafkaError | None:
            producer.poll(0.2)
            return errors[0] if errors else None

        return wait_until(first_error, 30, "confluent-kafka reports an error")
    finally:
        producer.purge()
        producer.flush(0)
