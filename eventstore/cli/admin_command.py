"""What the commands managing a server's security state share (``eventstore users``,
``eventstore acls``): each action's parser with ``--bootstrap-server``/``--data-dir`` and
``--command-config``, the target those name, and a data directory's store opened with
the directory's lock held (so never while a server runs on it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from eventstore.cli.base import EXIT_USAGE, CliError, Target, add_target


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


def add_admin_action(actions: argparse._SubParsersAction, name: str, summary: str,
                     run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """One action's parser: its target and the client properties for a server."""
    parser = actions.add_parser(name, help=summary, description=summary)
    parser.set_defaults(run=run, prog=parser.prog)
    add_target(parser)
    parser.add_argument("--command-config", metavar="FILE",
                        help="client properties (security.protocol, sasl.mechanism,"
                        " sasl.username, sasl.password, ssl.ca.location, ...)")
    return parser


def admin_target(args: argparse.Namespace) -> Target:
    """Where the action works; ``--command-config`` only makes sense with a server."""
    target = Target.of(args)
    if args.command_config and not target.bootstrap_server:
        raise CliError("--command-config goes with --bootstrap-server", EXIT_USAGE)
    return target


class LockedStore(Generic[S]):
    """A store of a data directory, opened with the directory's lock held until closed."""

    def __init__(self, data_dir: str, command: str, open_store: Callable[[str], S]) -> None:
        from eventstore.storage.lock import DataDirLock

        self._lock = DataDirLock(data_dir, command)
        self._lock.__enter__()
        try:
            self.store = open_store(data_dir)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise

    def close(self) -> None:
        self.store.close()
        self._lock.__exit__(None, None, None)


class WireAdmin:
    """A server reached with kafka-python's admin client, its TLS and SASL settings from
    ``--command-config``."""

    def __init__(self, address: str, command_config: str | None) -> None:
        from eventstore.cli.client_security import kafka_python_security
        from eventstore.cli.wire import admin_client

        self._address = address
        self._admin = admin_client(address, **kafka_python_security(command_config))

    def close(self) -> None:
        self._admin.close()
