"""The metrics endpoint of a real ``eventstore serve`` over HTTPS with HTTP basic auth.

``metrics.ssl.enable`` serves ``/metrics`` with the listeners' certificate (made by
``openssl``, tests/secure.py); ``metrics.basic.auth.users`` lets the users named read it
with their SCRAM password (made with ``eventstore users add``). A real Prometheus scrapes
it over TLS with ``basic_auth``; urllib shows the refusals: no login, a wrong password, an
unknown user and a user not named are 401 with ``WWW-Authenticate``, repeated wrong logins
are answered later and later, a plain HTTP client and one that does not trust the CA fail,
the server serving others throughout. The exposition never holds record contents.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from secure import Pki, make_pki
from support import (
    KafkaConnection,
    ServerProcess,
    create_topic,
    eventstore_command,
    produce,
    wait_until,
)

PROMETHEUS = "/usr/bin/prometheus"
PASSWORD = "prom-scrape-secret"
ALICE_PASSWORD = "alice-secret"
SECRET_VALUE = b"card-number-4111111111111111"
DELAY_MS = 100


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def add_user(data_dir: str, user: str, password: str) -> None:
    done = subprocess.run([*eventstore_command(), "users", "add", user, "--data-dir", data_dir,
                           "--password", password], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """HTTPS metrics readable by ``prom``; ``alice`` is a user, but not one named."""
    data_dir = str(tmp_path_factory.mktemp("metrics-tls") / "data")
    add_user(data_dir, "prom", PASSWORD)
    add_user(data_dir, "alice", ALICE_PASSWORD)
    settings = {"ssl.certificate.location": pki.server_cert, "ssl.key.location": pki.server_key,
                "metrics.ssl.enable": True, "metrics.basic.auth.users": "prom, ops",
                "connection.failed.authentication.delay.ms": DELAY_MS}
    with ServerProcess.start(data_dir, settings=settings) as server:
        with KafkaConnection(server.address) as conn:
            create_topic(conn, "payments", 1)
            assert produce(conn, "payments", 0, [SECRET_VALUE]).error_code == 0
        yield server


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(url: str, pki: Pki | None, authorization: str | None = None
        ) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET over HTTPS trusting ``pki``'s CA (the system's
    CAs when None); error statuses are returned."""
    context = ssl.create_default_context(cafile=pki.ca if pki else None)
    request = urllib.request.Request(url, headers={"Authorization": authorization}
                                     if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_the_ready_line_names_https_and_basic_auth(server):
    assert server.metrics_url.startswith("https://127.0.0.1:")
    assert server.ready["metrics_auth"] == "basic"


def test_a_named_user_reads_the_metrics_and_no_record_contents(server, pki):
    status, _, body = get(server.metrics_url, pki, basic("prom", PASSWORD))
    assert status == 200
    assert "eventstore_" in body and 'topic="payments"' in body
    assert SECRET_VALUE.decode() not in body and "4111" not in body


@pytest.mark.parametrize("login", [None, ("prom", "wrong"), ("nobody", PASSWORD),
                                   ("alice", ALICE_PASSWORD), ("ops", "")],
                         ids=["none", "wrong password", "unknown user", "user not named",
                              "named but no such user"])
def test_a_missing_or_wrong_login_is_401_with_www_authenticate(server, pki, login):
    status, headers, body = get(server.metrics_url, pki, basic(*login) if login else None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "eventstore_" not in body
    status, _, _ = get(server.metrics_url, pki, basic("prom", PASSWORD))  # forgives the host
    assert status == 200


def test_healthz_needs_no_login(server, pki):
    assert get(server.healthz_url, pki)[0] == 200


def test_repeated_wrong_logins_are_answered_later_and_later(server, pki):
    took = []
    for _ in range(3):
        started = time.monotonic()
        assert get(server.metrics_url, pki, basic("prom", "guess"))[0] == 401
        took.append(time.monotonic() - started)
    assert took[2] >= 4 * DELAY_MS / 1000, took  # 100, 200, then 400 ms
    assert get(server.metrics_url, pki, basic("prom", PASSWORD))[0] == 200


@pytest.mark.parametrize("client", ["plain http", "untrusted CA"])
def test_a_client_without_tls_or_trust_fails_and_others_are_served(server, pki, client):
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        if client == "plain http":
            urllib.request.urlopen(server.metrics_url.replace("https:", "http:"), timeout=10)
        else:
            get(server.metrics_url, None, basic("prom", PASSWORD))
    assert get(server.metrics_url, pki, basic("prom", PASSWORD))[0] == 200
    with KafkaConnection(server.address) as conn:
        assert conn.request(3, 9, topics=[]).brokers
    assert not [line for line in server.lines if "Traceback" in line]


def test_a_stalled_handshake_holds_up_nobody(server, pki):
    """A connection that never starts its TLS handshake does not block the next one."""
    host, port = urllib.parse.urlsplit(server.metrics_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10):
        assert get(server.metrics_url, pki, basic("prom", PASSWORD))[0] == 200


def test_metrics_ssl_without_a_certificate_is_one_clear_line(tmp_path):
    refused = subprocess.run(
        [*eventstore_command(), "serve", "--data-dir", str(tmp_path / "d"), "--listen",
         "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--set", "metrics.ssl.enable=true"],
        capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "metrics.ssl.enable" in last and "ssl.keystore.location" in last, refused.stderr
    assert "Traceback" not in refused.stderr


# -- a real Prometheus --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_job(name: str, target: str, ca: str, password: str) -> str:
    return (f"  - job_name: {name}\n    scheme: https\n    scrape_interval: 1s\n"
            f"    tls_config:\n      ca_file: {ca}\n"
            f"    basic_auth:\n      username: prom\n      password: {password}\n"
            f"    static_configs:\n      - targets: [\"{target}\"]\n")


def prometheus_api(address: str, path: str, **params: str) -> dict:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"http://{address}{path}?{query}", timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK),
                    reason=f"{PROMETHEUS} is absent (Debian package prometheus)")
def test_prometheus_scrapes_over_tls_with_basic_auth(server, pki, tmp_path: Path):
    target = urllib.parse.urlsplit(server.metrics_url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                      + scrape_job("eventstore", target, pki.ca, PASSWORD)
                      + scrape_job("wrong", target, pki.ca, "not-the-password"))
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={address}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            def scraped() -> dict[str, dict] | None:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    targets = prometheus_api(address, "/api/v1/targets")["activeTargets"]
                except OSError:
                    return None
                by_job = {t["labels"]["job"]: t for t in targets}
                done = len(by_job) == 2 and all(t["health"] != "unknown"
                                                for t in by_job.values())
                return by_job if done else None

            targets = wait_until(scraped, 60, "Prometheus to scrape both jobs")
            assert targets["eventstore"]["health"] == "up", targets["eventstore"]
            assert targets["wrong"]["health"] == "down"
            assert "401" in targets["wrong"]["lastError"], targets["wrong"]

            def series() -> list:
                return prometheus_api(address, "/api/v1/query", query=(
                    'eventstore_records_appended_total{job="eventstore",topic="payments"}'
                ))["result"]

            result = wait_until(series, 30, "a partition series in Prometheus")
            assert float(result[0]["value"][1]) == 1
        finally:  # its data is a temporary directory: nothing to shut down cleanly
            proc.kill()
            proc.wait()
