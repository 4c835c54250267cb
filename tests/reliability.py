"""What the reliability tests and scripts share: data built on disk, file fingerprints, a
check that a fresh client is served, scripts loaded as modules, and a process's memory.
Waiting, the server process and raw Kafka requests (produce, fetch...) are in support.py.

Importable from tests (pytest puts tests/ on the path) and from scripts/, which add it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import apsw
from support import KafkaConnection, ServerProcess, fetch, metadata_errors, produce

from eventstore.config import TopicConfig
from eventstore.storage.catalog import Catalog, partition_dir
from eventstore.storage.log import PartitionLog

KAFKA_STORAGE_ERROR = 56

# Files SQLite may touch on a read-only open (the shared-memory index of a WAL, rebuilt
# from the WAL itself) and the lock file: neither holds data.
_NOT_DATA = re.compile(r"(-shm|/\.lock)$")


# -- data on disk ------------------------------------------------------------------------------


def value_of(partition: int, offset: int) -> bytes:
    """The value built data holds at ``offset`` of ``partition``: recognisable, 200 bytes."""
    return f"p{partition}-o{offset}-".encode().ljust(200, b".")


def build_topic(data_dir: str, topic: str, partitions: int, records: int,
                segment_bytes: int = 8192, batch: int = 10) -> None:
    """A topic written straight through the storage core, as a server would have left it:
    ``records`` records per partition in batches of ``batch``, in segments of
    ``segment_bytes`` (so each partition has several sealed segments)."""
    config = {"segment.bytes": segment_bytes}
    catalog = Catalog.open(data_dir)
    try:
        for partition in range(partitions):
            log = PartitionLog.open(partition_dir(data_dir, topic, partition),
                                    TopicConfig.from_mapping(config), create=True)
            for base in range(0, records, batch):
                log.append([(None, b"k", value_of(partition, offset), None)
                            for offset in range(base, min(base + batch, records))])
            log.close()
        catalog.create_topic(topic, partitions, config, now_ms=int(time.time() * 1000))
    finally:
        catalog.close()


def segment_files(data_dir: str, topic: str, partition: int) -> list[str]:
    """The partition's segment files, oldest first (the last is the active one)."""
    directory = partition_dir(data_dir, topic, partition)
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.endswith(".db")]


PAGE = 4096  # SQLite's page size, which segments use


def overwrite(path: str, at: int, data: bytes) -> None:
    """Write ``data`` over the bytes of the file at ``at``, as a failing disk would."""
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(data)


def records_leaf_page(path: str) -> int:
    """The number of a page in the middle of the ``records`` table's leaf pages."""
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        leaves = [n for (n,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'records' AND pagetype = 'leaf'"
            " ORDER BY pageno")]
    finally:
        conn.close()
    assert len(leaves) >= 3, leaves
    return leaves[len(leaves) // 2]


def file_hashes(directory: str) -> dict[str, str]:
    """SHA-256 of every data file under ``directory`` by relative path (``-shm`` indexes
    and the lock file left out: they hold no data)."""
    hashes = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if not _NOT_DATA.search(path):
                with open(path, "rb") as fh:
                    hashes[os.path.relpath(path, directory)] = hashlib.sha256(
                        fh.read()).hexdigest()
    return hashes


# -- serving -----------------------------------------------------------------------------------


def serves(server: ServerProcess, topic: str, partition: int, timeout: float = 10.0) -> None:
    """Assert that a fresh client is served as a client library starts: ApiVersions and
    Metadata, then a record produced to the partition and fetched back."""
    with KafkaConnection(server.address, timeout=timeout) as conn:
        assert int(conn.request(18, 3, client_software_name="reliability",
                                client_software_version="1").error_code) == 0
        assert metadata_errors(conn, topic).get(partition) == 0
        value = f"alive-{time.monotonic_ns()}".encode()
        produced = produce(conn, topic, partition, [value])
        assert produced.error_code == 0, produced
        fetched = fetch(conn, topic, partition, produced.base_offset)
        assert fetched.error_code == 0 and fetched.records[0].value == value, fetched


# -- scripts and processes ----------------------------------------------------------------


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package), for tests that run
    in CI what the script runs for longer."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def proc_status(pid: int, field: str) -> int:
    """The number in the ``field:`` line of ``/proc/PID/status`` (VmRSS in KiB, Threads)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` (VmRSS), in KiB."""
    return proc_status(pid, "VmRSS")


def metric(server: ServerProcess, name: str, **labels: str) -> float | None:
    """The value of one sample on the server's /metrics, or None if it is not exported."""
    _, body = server.http_get(server.metrics_url)
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in body.splitlines():
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        if metric_name == name and ",".join(sorted(label_text.rstrip("}").split(","))) == wanted:
            return float(value)
    return None
