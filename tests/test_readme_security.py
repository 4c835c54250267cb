"""README's "Securing eventstore" stays true: its setup (a CA and a server certificate made
with ``openssl``, SCRAM users made with ``eventstore users add``) and its config file start
a real server, and its kcat, confluent-kafka and kafka-python settings log in over
SASL_SSL; Prometheus's basic auth reads ``/metrics`` over HTTPS; its ACL command runs.

Only what a test cannot use as written is changed: ports (0, any free one) and file names
(made absolute, or run from the directory holding them).
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from secure import KCAT, listener_ports
from support import ServerProcess, eventstore_command

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("\n## Securing eventstore\n", 1)[1].split("\n## ", 1)[0]
DOCUMENTED = "127.0.0.1:9093"  # the SASL_SSL address the client examples use


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.S)


def shell(script: str, cwd: Path) -> None:
    """Run ``script`` with bash -e in ``cwd``, this venv's ``eventstore`` first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def acls_command_exists() -> bool:
    return subprocess.run([*eventstore_command(), "acls", "add", "--help"],
                          capture_output=True, timeout=60).returncode == 0


def test_the_setup_config_and_client_settings_work(tmp_path: Path) -> None:
    setup = blocks("sh")[0]
    assert "openssl req -x509" in setup and "eventstore users add alice" in setup
    shell(setup, tmp_path)
    (config,) = blocks("toml")
    config = (config.replace("0.0.0.0:9093", "127.0.0.1:0").replace("127.0.0.1:9092",
                                                                      "127.0.0.1:0")
              .replace('"server.pem"', f'"{tmp_path}/server.pem"')
              .replace('"server.key"', f'"{tmp_path}/server.key"'))
    (tmp_path / "secure.toml").write_text(config)
    ca = str(tmp_path / "ca.pem")
    with ServerProcess.start(str(tmp_path / "data"),
                             config_file=str(tmp_path / "secure.toml")) as server:
        assert "(authentication required)" in server.ready["listeners"]
        bootstrap = f"127.0.0.1:{listener_ports(server)['SASL_SSL']}"

        if KCAT is not None:
            kcat = shlex.split(blocks("sh")[2].replace("\\\n", " "))
            assert kcat[0] == "kcat"
            listed = subprocess.run(
                [KCAT, *[bootstrap if arg == DOCUMENTED else arg for arg in kcat[1:]]],
                cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0 and "1 brokers" in listed.stdout, listed.stderr

        confluent, kafka_python = (block.replace(DOCUMENTED, bootstrap)
                                   .replace('"ca.pem"', repr(ca)) for block in blocks("python"))
        names: dict = {}
        exec(confluent, names)  # noqa: S102 - the README's own example
        delivered: list = []
        names["producer"].produce("readme-secure", b"ck", on_delivery=lambda err, msg:
                                  delivered.append(err or msg.offset()))
        assert names["producer"].flush(30) == 0 and delivered == [0], delivered

        names = {}
        exec(kafka_python, names)  # noqa: S102 - the README's own example
        try:
            assert names["producer"].send("readme-secure", b"kp").get(timeout=30).offset == 1
        finally:
            names["producer"].close()

        user, password = re.search(r"basic_auth: \{username: (\S+), password: ([^}\s]+)\}",
                                   SECTION).groups()
        login = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(server.metrics_url,
                                         headers={"Authorization": f"Basic {login}"})
        context = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            assert answer.status == 200 and b"readme-secure" in answer.read()


@pytest.mark.skipif(not acls_command_exists(), reason="eventstore acls is not there yet")
def test_the_acl_example_runs(tmp_path: Path) -> None:
    (command,) = [line for block in blocks("sh") for line in block.splitlines()
                  if line.startswith("eventstore acls add")]
    shell(command, tmp_path)
