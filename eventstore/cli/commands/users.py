"""`eventstore users add|remove|list`: SCRAM users, as ``kafka-configs --entity-type users``
manages them.

On ``--data-dir`` the catalog's credentials are written directly (the directory's lock
taken, so not while a server runs on it); through ``--bootstrap-server`` the command
sends AlterUserScramCredentials / DescribeUserScramCredentials with kafka-python, its
TLS and SASL settings from ``--command-config`` (log in as a super user where ACLs are
on). Either way only salted, iterated credentials are stored, never the password; the
password is read from ``--password`` or, without it, from standard input (a prompt on a
terminal).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from eventstore.cli.admin_command import (
    LockedStore,
    WireAdmin,
    add_admin_action,
    admin_target,
)
from eventstore.cli.base import EXIT_OK, EXIT_USAGE, CliError, add_command
from eventstore.cli.output import Column, print_line, print_rows
from eventstore.errors import ResourceNotFound
from eventstore.security.scram import MAX_ITERATIONS, MECHANISMS, MIN_ITERATIONS, make_credential
from eventstore.storage.credentials import CredentialStore, UserCredential

COLUMNS = (Column("USER", "user"), Column("MECHANISM", "mechanism"),
           Column("ITERATIONS", "iterations"))


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "users", "add, remove and list SCRAM users (SASL logins)",
        "Manage the SCRAM-SHA-256/512 credentials SASL clients log in with (PLAIN checks"
        " against them too). Only a salted, iterated credential is stored, never the"
        " password.",
        "  eventstore users add alice --password alice-secret --data-dir data\n"
        "  echo alice-secret | eventstore users add alice --mechanism SCRAM-SHA-256"
        " --bootstrap-server 127.0.0.1:9093 --command-config admin.properties\n"
        "  eventstore users list --data-dir data\n"
        "  eventstore users remove alice --data-dir data\n",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = _action(actions, "add", "add a user, or change its password")
    add.add_argument("user")
    add.add_argument("--password", help="the password (default: read from standard input)")
    add.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS),
                     help="repeatable (default: both SCRAM-SHA-256 and SCRAM-SHA-512)")
    add.add_argument("--iterations", type=int, default=MIN_ITERATIONS,
                     help=f"PBKDF2 iterations, {MIN_ITERATIONS} to {MAX_ITERATIONS}"
                     f" (default {MIN_ITERATIONS})")
    remove = _action(actions, "remove", "remove a user's credentials")
    remove.add_argument("user")
    remove.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS),
                        help="repeatable (default: every mechanism the user has)")
    listing = _action(actions, "list", "list users with their mechanisms and iterations")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")


def _action(actions: argparse._SubParsersAction, name: str, summary: str
            ) -> argparse.ArgumentParser:
    return add_admin_action(actions, name, summary, _run)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("the password is empty", EXIT_USAGE)
    return password


def _run(args: argparse.Namespace) -> int:
    target = admin_target(args)
    users: LocalUsers | WireUsers
    if target.bootstrap_server:
        users = WireUsers(target.bootstrap_server, args.command_config)
    else:
        users = LocalUsers(target.data_dir)
    try:
        if args.action == "list":
            print_rows(args.json, COLUMNS, [
                {"user": found.user, "mechanism": found.mechanism,
                 "iterations": found.iterations} for found in users.list()])
        elif args.action == "add":
            if not MIN_ITERATIONS <= args.iterations <= MAX_ITERATIONS:
                raise CliError(f"--iterations must be between {MIN_ITERATIONS} and"
                               f" {MAX_ITERATIONS}", EXIT_USAGE)
            mechanisms = args.mechanism or sorted(MECHANISMS)
            users.add(args.user, _password(args), mechanisms, args.iterations)
            print_line(f"User {args.user} has {', '.join(mechanisms)} credentials.")
        else:
            removed = users.remove(args.user, args.mechanism)
            print_line(f"Removed the {', '.join(removed)} credentials of user {args.user}.")
    finally:
        users.close()
    return EXIT_OK


class LocalUsers(LockedStore[CredentialStore]):
    """The credentials of a data directory, its lock held (no server runs on it)."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir, "eventstore users", CredentialStore.open)

    def list(self) -> list[UserCredential]:
        return self.store.users()

    def add(self, user: str, password: str, mechanisms: Sequence[str], iterations: int) -> None:
        self.store.alter(user, [make_credential(mechanism, password, iterations)
                                for mechanism in mechanisms], [])

    def remove(self, user: str, mechanisms: Sequence[str] | None) -> list[str]:
        held = [credential.mechanism for credential in self.store.credentials(user)]
        removing = list(mechanisms or held)
        if not held or not set(removing) <= set(held):
            missing = sorted(set(removing) - set(held)) or sorted(MECHANISMS)
            raise ResourceNotFound(f"user {user!r} has no {' or '.join(missing)} credential")
        self.store.alter(user, [], removing)
        return removing


class WireUsers(WireAdmin):
    """A server's credentials, through AlterUserScramCredentials and
    DescribeUserScramCredentials (kafka-python's admin client)."""

    def list(self) -> list[UserCredential]:
        from eventstore.cli.wire import wire_errors

        with wire_errors(self._address):
            described = self._admin.describe_user_scram_credentials()
        return [UserCredential(user, info["mechanism"].name.replace("_", "-"),
                               info["iterations"])
                for user, entry in sorted(described.items())
                for info in entry["credential_infos"]]

    def add(self, user: str, password: str, mechanisms: Sequence[str], iterations: int) -> None:
        from kafka.admin import UserScramCredentialUpsertion

        self._alter(user, [UserScramCredentialUpsertion(user, mechanism, password, iterations)
                           for mechanism in mechanisms])

    def remove(self, user: str, mechanisms: Sequence[str] | None) -> list[str]:
        from kafka.admin import UserScramCredentialDeletion

        from eventstore.cli.wire import wire_errors

        if mechanisms is None:
            with wire_errors(self._address):
                described = self._admin.describe_user_scram_credentials([user])
            entry = described.get(user, {})
            if entry.get("error"):
                raise ResourceNotFound(f"user {user!r} has no credential")
            mechanisms = [info["mechanism"].name.replace("_", "-")
                          for info in entry.get("credential_infos", [])]
        self._alter(user, [UserScramCredentialDeletion(user, mechanism)
                           for mechanism in mechanisms])
        return list(mechanisms)

    def _alter(self, user: str, alterations: list) -> None:
        from eventstore.cli.wire import wire_errors

        with wire_errors(self._address):
            results = self._admin.alter_user_scram_credentials(alterations)
        if results.get(user):
            raise CliError(results[user])
