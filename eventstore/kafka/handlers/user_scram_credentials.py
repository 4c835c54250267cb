"""AlterUserScramCredentials and DescribeUserScramCredentials: SCRAM users over the wire,
as ``kafka-configs --alter --entity-type users`` and admin clients manage them.

The client salts and iterates the password itself and sends only the salted password, of
which the catalog keeps StoredKey and ServerKey (eventstore/storage/credentials.py).
As Kafka does: one result per user, all of a user's changes applied or none; a
mechanism Kafka does not know is UNSUPPORTED_SASL_MECHANISM, an iteration count outside
4096 to 16384 or an empty name UNACCEPTABLE_CREDENTIAL, a (user, mechanism) named twice
DUPLICATE_RESOURCE, deleting a credential that does not exist RESOURCE_NOT_FOUND.
Describing lists mechanisms and iteration counts, never a key or a salt.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kio.static.protocol import ResponsePayload

from eventstore.errors import (
    DuplicateResource,
    KafkaError,
    ResourceNotFound,
    UnacceptableCredential,
    UnsupportedSaslMechanism,
)
from eventstore.kafka.authorization import authorize
from eventstore.kafka.codec.protocol import Request, make_response
from eventstore.kafka.connection import Connection
from eventstore.security.acl import Operation, ResourceType
from eventstore.security.scram import ScramCredential, credential_from_salted
from eventstore.storage.credentials import CredentialStore, check_credential

# Kafka's ScramMechanism type numbers on the wire
MECHANISM_TYPES = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
TYPE_OF_MECHANISM = {name: number for number, name in MECHANISM_TYPES.items()}


def _mechanism(number: int) -> str:
    if number not in MECHANISM_TYPES:
        raise UnsupportedSaslMechanism(f"unknown SCRAM mechanism type {number}")
    return MECHANISM_TYPES[number]


def _store(conn: Connection, operation: Operation) -> CredentialStore:
    """The server's credentials, if the principal may ``operation`` (ALTER or DESCRIBE)
    on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise, as in Kafka)."""
    authorize(conn, operation, ResourceType.CLUSTER)
    if conn.ctx.credentials is None:
        raise ResourceNotFound("this server keeps no credentials")
    return conn.ctx.credentials


def _alter_user(store: CredentialStore, user: str, changes: list[tuple[str, Any]]) -> None:
    """Check every change of one user, then apply them together (blocking: PBKDF2-free,
    but a catalog write)."""
    seen = Counter(mechanism for mechanism, _ in changes)
    if any(count > 1 for count in seen.values()):
        raise DuplicateResource(f"a credential of user {user!r} is altered twice")
    upserts: list[ScramCredential] = []
    deletions: list[str] = []
    for mechanism, upsertion in changes:
        if upsertion is None:
            deletions.append(mechanism)
            continue
        if not upsertion.salted_password:
            raise UnacceptableCredential("the salted password is empty")
        credential = credential_from_salted(mechanism, bytes(upsertion.salted_password),
                                            bytes(upsertion.salt), upsertion.iterations)
        check_credential(user, credential)
        upserts.append(credential)
    store.alter(user, upserts, deletions)


async def handle_alter_user_scram_credentials(conn: Connection, request: Request
                                              ) -> ResponsePayload:
    body = request.body
    by_user: dict[str, list[tuple[str, Any]]] = {}
    for item in (*body.deletions, *body.upsertions):
        entry = (item.mechanism, item if hasattr(item, "salted_password") else None)
        by_user.setdefault(item.name, []).append(entry)
    results = []
    for user, entries in by_user.items():
        error: KafkaError | None = None
        try:
            if not user:
                raise UnacceptableCredential("the user name is empty")
            changes = [(_mechanism(number), upsertion) for number, upsertion in entries]
            await conn.ctx.run(_alter_user, _store(conn, Operation.ALTER), user, changes)
        except KafkaError as failed:
            error = failed
        results.append({"user": user, "error_code": error.code if error else 0,
                        "error_message": str(error) if error else None})
    return make_response(request, results=results)


async def handle_describe_user_scram_credentials(conn: Connection, request: Request
                                                 ) -> ResponsePayload:
    names = [user.name for user in request.body.users or ()]
    try:
        store = _store(conn, Operation.DESCRIBE)
    except KafkaError as error:
        return make_response(request, error_code=error.code, error_message=str(error),
                             results=[])
    described = await conn.ctx.run(store.users, names or None)
    infos: dict[str, list[dict[str, int]]] = {}
    for found in described:
        infos.setdefault(found.user, []).append({
            "mechanism": TYPE_OF_MECHANISM[found.mechanism], "iterations": found.iterations})
    counts = Counter(names)
    results = []
    for user in (dict.fromkeys(names) or sorted(infos)):
        error: KafkaError | None
        if counts[user] > 1:
            error = DuplicateResource(f"user {user!r} is named twice")
        elif user not in infos:
            error = ResourceNotFound(
                f"Attempt to describe a user credential that does not exist: {user}")
        else:
            error = None
        results.append({"user": user, "error_code": error.code if error else 0,
                        "error_message": str(error) if error else None,
                        "credential_infos": [] if error else infos[user]})
    return make_response(request, error_code=0, results=results)
