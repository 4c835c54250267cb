"""`eventstore serve`: the actor system as a long-lived service speaking Kafka's protocol.

Start-up: take the data-directory lock, start the actor system, bind the Kafka listener
and the HTTP endpoint (/metrics, /healthz), then log one line with the addresses
actually bound. SIGTERM / SIGINT: stop accepting, let in-flight requests finish, stop
every actor (flushing and closing every file), release the lock, exit 0. A listener that
cannot accept at the open-file limit logs one line a minute naming the limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import math
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any

from actors.system import ActorSystem
from eventstore.basic_auth import BasicAuth, BasicAuthGuard, parse_users
from eventstore.compaction_admin import ADMIN_COMPACT_PATH, compaction_route
from eventstore.config import ServerConfig
from eventstore.errors import CorruptLog, InvalidConfig
from eventstore.http import HttpEndpoint
from eventstore.kafka.authorization import acl_authority
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.listeners import ListenerContext, check_exposure, listener_contexts
from eventstore.kafka.server import KafkaListener
from eventstore.kafka.session import Session
from eventstore.kafka.tls import server_context
from eventstore.logs import setup_logging
from eventstore.open_files import is_too_many_open_files, too_many_open_files
from eventstore.security.login import FailureDelay
from eventstore.settings import ServeSettings
from eventstore.storage.catalog import Catalog
from eventstore.storage.credentials import CredentialStore
from eventstore.storage.lock import DataDirLock

log = logging.getLogger("eventstore.service")

SHUTDOWN_GRACE_S = 5.0


class LoopErrors:
    """The event loop's exception handler. At the open-file limit asyncio retries accepting
    every second and reports each pending connection it cannot take, with a traceback: here
    that is one line a minute (``every_s``) naming the limit. Anything else is logged as
    asyncio would."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._logged = -math.inf

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not is_too_many_open_files(context.get("exception")):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._logged >= self.every_s:
            self._logged = now
            error = too_many_open_files("the Kafka listener", fewer="max.connections")
            log.error("connections not accepted", extra={"fields": {"error": str(error)}})


def advertised_host(bound_host: str, configured: str | None) -> str:
    """The host clients are told to connect to: the configured one, else the bound one."""
    if configured:
        return configured
    if bound_host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return bound_host


def check_catalog(data_dir: str) -> str:
    """Refuse to start on a damaged or lost catalog, with the error naming the file;
    returns the data directory's cluster id (made on its first start).

    Unlike a damaged partition, which goes offline alone, a damaged catalog leaves every
    topic and committed offset unknown: serving would mean answering "no such topic" for
    topics whose data is on disk, and recreating one would remove its folders. Only the
    catalog is read here, never a segment, so start-up time does not grow with the data.
    """
    try:
        catalog = Catalog.open(data_dir)
        try:
            catalog.check()
            return catalog.cluster_id()
        finally:
            catalog.close()
    except CorruptLog as error:
        log.error("catalog is damaged or missing: not starting (see eventstore verify)",
                  extra={"fields": {"error": str(error)}})
        raise


class StartupError(Exception):
    """The server cannot start for a reason the operator can fix; its message is one line
    naming what and where."""


_BIND_HINTS = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


@contextlib.contextmanager
def binding(what: str, host: str, port: int) -> Iterator[None]:
    """StartupError naming the address for an OSError while ``what`` binds it."""
    try:
        yield
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port} ({what}): host {host!r} does"
                           f" not resolve ({exc.strerror})") from None
    except OSError as exc:
        if is_too_many_open_files(exc):
            raise
        reason = _BIND_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
        raise StartupError(f"cannot listen on {host}:{port} ({what}): {reason}") from None


@contextlib.contextmanager
def writable(data_dir: str) -> Iterator[None]:
    """StartupError naming the file for a PermissionError while the server takes and
    opens its data directory (a read-only directory, files owned by another user)."""
    try:
        yield
    except PermissionError as exc:
        raise StartupError(f"cannot write the data directory {data_dir}: permission denied"
                           f" ({exc.filename or data_dir})") from None


MetricsSecurity = tuple[ssl.SSLContext | None, BasicAuthGuard | None]


def metrics_security(config: Mapping[str, Any], credentials: CredentialStore
                     ) -> MetricsSecurity:
    """The metrics endpoint's TLS context (``metrics.ssl.enable``: the listeners'
    certificate; no client certificate asked for, a login is basic auth's job) and its
    guard (``metrics.basic.auth.users``), each None when off. InvalidConfig at start-up
    for a certificate missing or unreadable."""
    tls = None
    if config["metrics.ssl.enable"]:
        try:
            tls = server_context({**config, "ssl.client.auth": "none"})
        except InvalidConfig as error:
            raise InvalidConfig(f"metrics.ssl.enable: {error}") from None
    users = parse_users(str(config["metrics.basic.auth.users"]))
    if not users:
        return tls, None
    if tls is None:
        log.warning("metrics.basic.auth.users without metrics.ssl.enable: the passwords"
                    " cross the network in the clear")
    delay = FailureDelay(int(config["connection.failed.authentication.delay.ms"]))
    return tls, BasicAuthGuard(BasicAuth(users, credentials.credential), delay)


def serve(settings: ServeSettings) -> int:
    """Run until SIGTERM or SIGINT; returns the process exit code."""
    setup_logging(settings.log_level)
    # pykka logs each typed error an actor returns to its caller, with its traceback, at
    # INFO: every request for an unknown topic would cost a formatted traceback in the log
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pykka").setLevel(logging.WARNING)
    config = ServerConfig.from_mapping(settings.config)
    data_dir = os.path.abspath(settings.data_dir)
    with DataDirLock(data_dir, "eventstore serve"):
        shown = {name: "[hidden]" if name in config.keys and config.keys[name].sensitive
                 and value else value for name, value in config.to_mapping().items()}
        log.info("starting", extra={"fields": {"data_dir": data_dir, **shown}})
        cluster_id = check_catalog(data_dir)
        credentials = CredentialStore.open(data_dir)
        try:
            listeners = listener_contexts(config.to_mapping(), settings.listen.host,
                                          settings.listen.port, credentials.credential)
            metrics = metrics_security(config.to_mapping(), credentials)
            system = ActorSystem(data_dir, config).start()
            try:
                asyncio.run(_run(settings, config, system, cluster_id, credentials, listeners,
                                 metrics))
            finally:
                system.stop()
        finally:
            credentials.close()
    log.info("stopped", extra={"fields": {"data_dir": data_dir}})
    return 0


async def _run(settings: ServeSettings, config: ServerConfig, system: ActorSystem,
               cluster_id: str, credentials: CredentialStore,
               listeners: list[tuple[ListenerContext, ssl.SSLContext | None]],
               metrics: MetricsSecurity) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(LoopErrors())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    with binding("metrics-listen", settings.metrics_listen.host, settings.metrics_listen.port):
        http = HttpEndpoint(
            settings.metrics_listen.host, settings.metrics_listen.port, system.registry,
            healthy=lambda: not stopping.is_set(),
            routes={ADMIN_COMPACT_PATH: compaction_route(system)},
            tls=metrics[0], guard=metrics[1],
        ).start()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="kafka-io")
    ctx = BrokerContext(system.broker, system.coordinator, "", 0, pool, config.to_mapping(),
                        system.data_dir, cluster_id=cluster_id, credentials=credentials,
                        transactions=system.transactions,
                        acls=acl_authority(config.to_mapping(), system.data_dir))
    servers: list[KafkaListener] = []
    try:
        bound = []
        for context, tls in listeners:
            server = KafkaListener(
                lambda client_host, context=context: Session(ctx, client_host, context),
                config.listener_limits(),
            )
            servers.append(server)
            listener = context.listener
            what = f"listener {listener.name}" if config.listeners else "listen"
            with binding(what, listener.host, listener.port):
                host, port = await server.start(listener.host, listener.port, tls)
            if context.advertised == (listener.host, listener.port):  # none configured
                context.advertised = (advertised_host(host, settings.advertised_host), port)
            bound.append((context, host, port))
        # refused once every address is known to bind, so a bind error is named first
        check_exposure(tuple(context.listener for context, _ in listeners),
                       settings.allow_plaintext)
        first = bound[0][0]
        ctx.host, ctx.port = first.advertised
        client_auth = config.to_mapping()["ssl.client.auth"]
        metrics_host, metrics_port = http.address
        # the ready line names the bound port (port 0 picks one): printed at any log-level
        ready_level = max(logging.INFO, logging.getLogger().getEffectiveLevel())
        log.log(ready_level, "ready", extra={"fields": {
            "kafka": f"{bound[0][1]}:{bound[0][2]}", "advertised": f"{ctx.host}:{ctx.port}",
            "listeners": ", ".join(
                f"{context.listener.name}://{host}:{port} ("
                + ("authentication required" if context.listener.requires_authentication(
                    client_auth) else "no authentication") + ")"
                for context, host, port in bound),
            "metrics": f"{http.scheme}://{metrics_host}:{metrics_port}/metrics",
            "metrics_auth": "basic" if metrics[1] is not None else "none",
            "data_dir": system.data_dir, "pid": os.getpid(),
        }})
        await stopping.wait()
        log.info("stopping: no new connections, finishing in-flight requests")
        await asyncio.gather(*(server.stop(SHUTDOWN_GRACE_S) for server in servers))
    finally:
        http.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        if ctx.acls is not None:
            ctx.acls.close()
        # threads still waiting on an actor's reply are released when the actors stop
        ctx.asks.shutdown(wait=False, cancel_futures=True)
