"""What the tests and scripts share: waiting for a condition, a clock moved by hand, a real
``eventstore serve`` process, and a raw Kafka connection to it with the requests tests
send by hand.

    value = wait_until(condition, timeout, "what it waits for")   # AssertionError on time-out
    records = poll_until(lambda: consumer.poll(timeout_ms=200), 10, timeout, "ten records")
    server = ServerProcess.start(data_dir)            # free loopback ports, waits for ready
    Producer({"bootstrap.servers": server.bootstrap})
    server.restart()                                  # SIGTERM, exit 0, same dir and ports
    server.stop()                                     # SIGTERM; asserts exit code 0

The server binds port 0 for both listeners, so no port is ever guessed; its ``msg=ready``
log line says which ports it got. Everything it prints (logfmt lines on stderr) is kept
in ``server.lines`` and can be waited for with :meth:`ServerProcess.wait_for_log`. The
``serve`` and ``server`` fixtures in conftest.py wrap it.

:class:`KafkaConnection` speaks the wire protocol over a plain socket, with kio's request
and response classes, for tests that send what no client library would (and to see exact
error codes): :func:`produce`, :func:`fetch`, :func:`create_topic`, :func:`metadata_errors`.
Its watchdog fails a test whose request is not answered within REQUEST_WATCHDOG_S (30 s),
naming the API (:class:`RequestNotAnswered`), so no test hangs on a lost answer.

Importable from tests (pytest puts tests/ on the path) and from scripts/, which add it.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kio.index import load_response_schema
from kio.serial import entity_reader

from eventstore.kafka.codec.protocol import api_name, encode_request
from eventstore.kafka.codec.recordbatch import decode_batches, encode_batch
from eventstore.storage.records import LogRecord

POLL_S = 0.02  # how often wait_until asks again when nothing wakes it
T0 = 1_700_000_000_000  # where a ManualClock starts unless told otherwise
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# the watchdog: a raw request (KafkaConnection) not answered by then fails its test
REQUEST_WATCHDOG_S = 30.0
# what every test server gets unless told otherwise: a group's first rebalance at once
DEFAULT_SETTINGS: Mapping[str, object] = {"group.initial.rebalance.delay.ms": 0}

_LOGFMT_PAIR = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)')

T = TypeVar("T")


# -- waiting and clocks ------------------------------------------------------------------------


def wait_until(condition: Callable[[], T], timeout: float, what: str,
               woken_by: threading.Condition | None = None) -> T:
    """The first truthy value of ``condition()``, asked again every POLL_S seconds or, with
    ``woken_by``, each time that is notified (``condition`` then runs holding it);
    AssertionError naming ``what`` once ``timeout`` seconds pass without one."""
    if woken_by is not None:
        with woken_by:
            result = woken_by.wait_for(condition, timeout)
    else:
        deadline = time.monotonic() + timeout
        while not (result := condition()) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    if not result:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return result


def poll_until(poll: Callable[[], Iterable[T]], count: int, timeout: float,
               what: str) -> list[T]:
    """Everything ``poll()`` hands out, called again until at least ``count`` items came
    (the last call's items are all kept); AssertionError naming ``what`` if fewer came
    within ``timeout``."""
    got: list[T] = []
    wait_until(lambda: got.extend(poll()) or len(got) >= count, timeout, what)
    return got


def read_output(proc: subprocess.Popen, lines: int, timeout: float) -> bytes:
    """What ``proc`` (run with stdout and stderr piped) wrote to stdout, read until it
    holds ``lines`` whole lines (it may hold more, and part of the next); AssertionError
    if stdout closes first (with what stderr says) or ``timeout`` passes."""
    assert proc.stdout is not None and proc.stderr is not None
    output = bytearray()

    def enough() -> bool:
        if select.select([proc.stdout], [], [], POLL_S)[0]:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"stdout closed after {bytes(output)!r}: "
                                     f"{proc.stderr.read()!r}")
            output.extend(chunk)
        return output.count(b"\n") >= lines

    wait_until(enough, timeout, f"{lines} lines of output")
    return bytes(output)


class ManualClock:
    """A clock for the core (``eventstore.clock.Clock``) that only moves when the test
    says so."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


# -- the server process ------------------------------------------------------------------------


def parse_logfmt(line: str) -> dict[str, str]:
    """The ``key=value`` pairs of one logfmt line, quoted values unescaped."""
    fields = {}
    for key, raw in _LOGFMT_PAIR.findall(line):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw[1:-1])
        fields[key] = raw
    return fields


def eventstore_command() -> list[str]:
    """The installed ``eventstore`` console script next to this Python, else ``-m``."""
    script = Path(sys.executable).with_name("eventstore")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "eventstore.cli"]


def serve_command(
    data_dir: str | None,
    *,
    listen: str = "127.0.0.1:0",
    metrics_listen: str = "127.0.0.1:0",
    settings: Mapping[str, object] | None = None,
    config_file: str | None = None,
) -> list[str]:
    """``eventstore serve`` argv: ``settings`` become ``--set`` flags (DEFAULT_SETTINGS
    first); no ``--data-dir`` when ``data_dir`` is None (the environment then decides)."""
    argv = [*eventstore_command(), "serve", "--listen", listen, "--metrics-listen",
            metrics_listen]
    if data_dir is not None:
        argv += ["--data-dir", data_dir]
    if config_file is not None:
        argv += ["--config", config_file]
    for key, value in {**DEFAULT_SETTINGS, **(settings or {})}.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["--set", f"{key}={text}"]
    return argv


class ServerFailed(AssertionError):
    """The server exited early, never got ready, or did not stop cleanly."""


class ServerProcess:
    """One ``eventstore serve`` on one data directory; restartable on the same ports."""

    def __init__(
        self,
        data_dir: str | None,
        *,
        settings: Mapping[str, object] | None = None,
        config_file: str | None = None,
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """``preexec_fn`` runs in the server's process before it starts (to set its
        resource limits, say), as ``subprocess.Popen`` runs it."""
        self.data_dir = data_dir
        self.settings = dict(settings or {})
        self.config_file = config_file
        self.env = {**os.environ, **(env or {})}
        self.preexec_fn = preexec_fn
        self.lines: list[str] = []
        self.ready: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._output_done = threading.Condition()
        self._reader: threading.Thread | None = None

    @classmethod
    def start(cls, data_dir: str | None, **kwargs: Any) -> ServerProcess:
        """Start a server on free loopback ports and wait until it is ready."""
        server = cls(data_dir, **kwargs)
        server.launch()
        return server

    # -- addresses ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` the Kafka listener advertises, for ``bootstrap.servers``."""
        return self.ready["advertised"]

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.ready["kafka"].rpartition(":")
        return host, int(port)

    @property
    def metrics_url(self) -> str:
        return self.ready["metrics"]

    @property
    def healthz_url(self) -> str:
        return self.metrics_url.rsplit("/", 1)[0] + "/healthz"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    # -- life cycle --------------------------------------------------------------------------

    def launch(
        self,
        listen: str = "127.0.0.1:0",
        metrics_listen: str = "127.0.0.1:0",
        timeout: float = READY_TIMEOUT_S,
    ) -> None:
        """Run the server and wait for its ready line; ServerFailed if it exits first."""
        assert not self.running, "the server is already running"
        argv = serve_command(self.data_dir, listen=listen, metrics_listen=metrics_listen,
                             settings=self.settings, config_file=self.config_file)
        self.ready = {}
        first_line = len(self.lines)
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=self.env, preexec_fn=self.preexec_fn,
        )
        self._reader = threading.Thread(target=self._read_output, args=(self._proc,),
                                        name=f"serve-{self._proc.pid}-output", daemon=True)
        self._reader.start()
        try:
            fields = self.wait_for_log(lambda f: f.get("msg") == "ready", timeout,
                                       since=first_line)
        except ServerFailed:
            self.kill()
            raise
        self.ready = fields

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float:
        """SIGTERM; ServerFailed unless it exits 0 within ``timeout``. Returns the seconds
        it took."""
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        took = time.monotonic() - started
        if code != 0:
            raise ServerFailed(f"server exited {code} after SIGTERM\n{self.log_tail()}")
        return took

    def restart(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Stop cleanly (see :meth:`stop`), then :meth:`relaunch`."""
        self.stop()
        self.relaunch(timeout)

    def relaunch(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the stopped server again on the same data directory and the same ports, so
        clients reconnect to the address they know."""
        host, port = self.address
        metrics = self.metrics_url.split("//", 1)[1].split("/", 1)[0]
        self.launch(f"{host}:{port}", metrics, timeout)

    def signal(self, signum: int) -> None:
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code; ServerFailed (after killing it) if it runs past ``timeout``."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerFailed(f"server still running after {timeout} s\n{self.log_tail()}"
                               ) from None
        assert self._reader is not None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """SIGKILL, for a test that needs a crash or gives up."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.stop()

    # -- output ------------------------------------------------------------------------------

    def _read_output(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._output_done:
                self.lines.append(line.rstrip("\n"))
                self._output_done.notify_all()
        proc.wait()
        with self._output_done:
            self._output_done.notify_all()

    def wait_for_log(
        self,
        match: Callable[[dict[str, str]], bool] | str,
        timeout: float,
        since: int = 0,
    ) -> dict[str, str]:
        """The fields of the first line from ``since`` on that ``match`` accepts (a
        predicate on the logfmt fields, or a regex searched in the raw line), waiting for
        it up to ``timeout``; ServerFailed if the server exits or time runs out first."""
        def accepts(line: str) -> bool:
            if isinstance(match, str):
                return re.search(match, line) is not None
            return match(parse_logfmt(line))

        deadline = time.monotonic() + timeout
        with self._output_done:
            checked = since
            while True:
                for line in self.lines[checked:]:
                    if accepts(line):
                        return parse_logfmt(line)
                checked = len(self.lines)
                remaining = deadline - time.monotonic()
                if not self.running and self._reader_done():
                    raise ServerFailed(
                        f"server exited {self.returncode} before logging {match!r}\n"
                        f"{self.log_tail()}")
                if remaining <= 0:
                    raise ServerFailed(
                        f"no log line matching {match!r} within {timeout} s\n{self.log_tail()}")
                self._output_done.wait(min(remaining, 0.5))

    def _reader_done(self) -> bool:
        return self._reader is None or not self._reader.is_alive()

    def log_tail(self, count: int = 30) -> str:
        return "\n".join(self.lines[-count:])

    # -- HTTP --------------------------------------------------------------------------------

    def http_get(self, url: str, timeout: float = 5.0) -> tuple[int, str]:
        """(status, body) of a GET on the metrics listener; error statuses are returned."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


# -- the wire protocol by hand -----------------------------------------------------------------

_SIZE = struct.Struct(">i")
# schema/catalog.sql as it was at older versions, for the tests of their migrations:
# v1 had no committed leader epochs, v2 no topic or cluster ids
_CATALOG_V1 = """
CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL CHECK (partitions > 0),
    config TEXT NOT NULL DEFAULT '{}', created_ms INTEGER NOT NULL);
CREATE TABLE group_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL, metadata TEXT,
    commit_ms INTEGER NOT NULL, PRIMARY KEY (group_id, topic, partition));
CREATE TABLE sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
OLD_CATALOG_SQL = {
    1: "PRAGMA user_version = 1;" + _CATALOG_V1,
    2: "PRAGMA user_version = 2;" + _CATALOG_V1.replace(
        "commit_ms INTEGER NOT NULL,",
        "commit_ms INTEGER NOT NULL, leader_epoch INTEGER NOT NULL DEFAULT -1,"),
}

PRODUCE_VERSION = 9  # the first flexible version; every client that matters sends it
FETCH_VERSION = 11  # the last before flexible encodings


def record_batch(*values: bytes | None, key: bytes | None = None) -> bytes:
    """One uncompressed v2 record batch holding ``values`` (all with ``key``), stamped now."""
    now = int(time.time() * 1000)
    return encode_batch(0, [LogRecord(i, now, key, value) for i, value in enumerate(values)])


class RequestNotAnswered(TimeoutError, AssertionError):
    """The watchdog fired: a request got no answer in time. An AssertionError, so the test
    that sent it fails naming the API; a TimeoutError too, for tests that expect silence."""

    def __init__(self, api_key: int, version: int, correlation_id: int, waited: float) -> None:
        super().__init__(f"{api_name(api_key)} v{version} request (correlation id "
                         f"{correlation_id}) not answered within {waited:.1f} s")


class KafkaConnection:
    """One TCP connection speaking Kafka's protocol by hand, request by request.

    ``request(api_key, version, **fields)`` builds the kio request from plain values (see
    ``eventstore.kafka.codec.protocol.build``), sends it and returns the kio response;
    ``send_frame`` sends any bytes as one size-prefixed frame.

    The watchdog: every response is waited for at most ``watchdog`` seconds in all (and at
    most ``timeout`` for each read); a request not answered by then raises
    :class:`RequestNotAnswered` naming its API, so the test that sent it fails rather
    than hangs.
    """

    def __init__(self, address: tuple[str, int], timeout: float = 10.0,
                 watchdog: float = REQUEST_WATCHDOG_S, tls: ssl.SSLContext | None = None
                 ) -> None:
        """``tls``: talk TLS (an SSL or SASL_SSL listener), handshaking here."""
        self.sock = socket.create_connection(address, timeout=timeout)
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
            except BaseException:
                self.sock.close()
                raise
        self.timeout = timeout
        self.watchdog = watchdog
        self._correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> KafkaConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_frame(self, payload: bytes, size: int | None = None) -> None:
        """``payload`` behind a size prefix (its length, unless ``size`` says otherwise)."""
        self.sock.sendall(_SIZE.pack(len(payload) if size is None else size) + payload)

    def encode(self, api_key: int, version: int, **fields: Any) -> tuple[int, bytes]:
        """(correlation id, request frame without the size prefix)."""
        self._correlation_id += 1
        return self._correlation_id, encode_request(
            api_key, version, self._correlation_id, "tests", **fields)

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        """Send one request and return its decoded response body."""
        correlation_id, frame = self.encode(api_key, version, **fields)
        self.send_frame(frame)
        return self.read_response(api_key, version, correlation_id)

    def produce(self, topic: str, partition: int, records: bytes, acks: int = -1) -> Any:
        """Produce ``records`` (a Produce request's records field) to one partition; the
        partition's response (``error_code``, ``base_offset``, ``error_message``...).
        With acks=0 there is no response: send ``encode(...)`` with ``send_frame``."""
        assert acks != 0, "acks=0 is never answered"
        response = self.request(
            0, PRODUCE_VERSION, **produce_fields(topic, partition, records, acks))
        [[answer]] = [t.partition_responses for t in response.responses]
        return answer

    def read_response(self, api_key: int, version: int, correlation_id: int) -> Any:
        """The decoded response to the request sent with ``correlation_id``, read within the
        watchdog (RequestNotAnswered, naming the API, if it does not come)."""
        started = time.monotonic()
        deadline = started + self.watchdog
        try:
            (size,) = _SIZE.unpack(self._read_exactly(_SIZE.size, deadline))
            frame = self._read_exactly(size, deadline)
        except TimeoutError:
            raise RequestNotAnswered(api_key, version, correlation_id,
                                     time.monotonic() - started) from None
        finally:
            self.sock.settimeout(self.timeout)  # sends wait as long as they always did
        response_type = load_response_schema(api_key, version)
        header, used = entity_reader(response_type.__header_schema__)(frame, 0)
        assert header.correlation_id == correlation_id, (header, correlation_id)
        body, body_size = entity_reader(response_type)(frame, used)
        assert used + body_size == len(frame), "response has bytes after its end"
        return body

    def _read_exactly(self, count: int, deadline: float) -> bytes:
        """``count`` bytes, each read waiting up to ``timeout`` and none past ``deadline``
        (TimeoutError)."""
        chunks = []
        while count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(min(self.timeout, remaining))
            chunk = self.sock.recv(count)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (reads end or reset), False if it
        is still open after ``timeout``. Anything the server sends meanwhile is dropped."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True


def produce_fields(topic: str, partition: int, records: bytes, acks: int = -1) -> dict:
    """The fields of a Produce request (PRODUCE_VERSION) of ``records`` to one partition."""
    return {"transactional_id": None, "acks": acks, "timeout": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": partition, "records": records}]}]}


@dataclass(frozen=True)
class Produced:
    error_code: int
    base_offset: int


@dataclass(frozen=True)
class Fetched:
    error_code: int
    high_watermark: int
    records: list[LogRecord]


def produce(conn: KafkaConnection, topic: str, partition: int,
            values: Sequence[bytes]) -> Produced:
    """Append ``values`` as one batch; the partition's error code and base offset."""
    answer = conn.produce(topic, partition, record_batch(*values))
    return Produced(int(answer.error_code), answer.base_offset)


def fetch(conn: KafkaConnection, topic: str, partition: int, offset: int,
          max_bytes: int = 1 << 20) -> Fetched:
    """Records from ``offset`` on (no waiting); the partition's error code and records."""
    response = conn.request(
        1, FETCH_VERSION, replica_id=-1, max_wait=0, min_bytes=0, max_bytes=max_bytes,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[{"topic": topic, "partitions": [{
            "partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
            "log_start_offset": -1, "partition_max_bytes": max_bytes}]}],
        forgotten_topics_data=[], rack_id="",
    )
    (answer,) = response.responses[0].partitions
    records = [
        LogRecord(batch.base_offset + i, r.timestamp, r.key, r.value)
        for batch in decode_batches(answer.records or b"") for i, r in enumerate(batch.records)
    ]
    return Fetched(int(answer.error_code), answer.high_watermark, records)


def create_topic(conn: KafkaConnection, topic: str, partitions: int) -> None:
    """Create ``topic`` over the wire (CreateTopics), asserting that it worked."""
    response = conn.request(19, 4, timeout=10000, validate_only=False, topics=[{
        "name": topic, "num_partitions": partitions, "replication_factor": 1,
        "assignments": [], "configs": []}])
    assert int(response.topics[0].error_code) == 0, response


def metadata_errors(conn: KafkaConnection, topic: str) -> dict[int, int]:
    """Partition index -> error code, as Metadata reports the topic."""
    response = conn.request(3, 8, topics=[{"name": topic}], allow_auto_topic_creation=False,
                            include_cluster_authorized_operations=False,
                            include_topic_authorized_operations=False)
    (found,) = response.topics
    return {p.partition_index: int(p.error_code) for p in found.partitions}
