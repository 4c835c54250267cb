"""Every typed error of eventstore, named and numbered as Kafka names and numbers them.

Each error carries Kafka's protocol error code (``code``) so the wire-protocol front end
can answer with it, and whether a client may retry (``retriable``). Messages are one
line and name the thing that is wrong, so a command-line user can read them as they are.
"""

from __future__ import annotations


class KafkaError(Exception):
    """Base of every eventstore error; ``code`` is Kafka's protocol error code."""

    code: int = -1  # UNKNOWN_SERVER_ERROR
    retriable: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.name}: {message}" if message else self.name


class OffsetOutOfRange(KafkaError):
    code = 1


class CorruptRecord(KafkaError):
    """A record batch failed its CRC or could not be decoded (Kafka's CORRUPT_MESSAGE)."""

    code = 2
    retriable = True


class UnknownTopicOrPartition(KafkaError):
    code = 3
    retriable = True


class InvalidFetchSize(KafkaError):
    code = 4


class KafkaTimeoutError(KafkaError):
    """A request or a client-side wait ran past its deadline (Kafka's REQUEST_TIMED_OUT)."""

    code = 7
    retriable = True


class RecordTooLarge(KafkaError):
    code = 10


class OffsetMetadataTooLarge(KafkaError):
    """A committed offset's metadata string is longer than ``offset.metadata.max.bytes``."""

    code = 12


class CoordinatorNotAvailable(KafkaError):
    code = 15
    retriable = True


class NotCoordinator(KafkaError):
    code = 16
    retriable = True


class InvalidTopic(KafkaError):
    code = 17


class InvalidRequiredAcks(KafkaError):
    code = 21


class IllegalGeneration(KafkaError):
    code = 22


class InconsistentGroupProtocol(KafkaError):
    code = 23


class InvalidGroupId(KafkaError):
    code = 24


class UnknownMemberId(KafkaError):
    code = 25


class InvalidSessionTimeout(KafkaError):
    code = 26


class RebalanceInProgress(KafkaError):
    code = 27


class InvalidCommitOffsetSize(KafkaError):
    code = 28


class InvalidTimestamp(KafkaError):
    code = 32


class UnsupportedVersion(KafkaError):
    code = 35


class TopicAlreadyExists(KafkaError):
    code = 36


class InvalidPartitions(KafkaError):
    code = 37


class InvalidReplicationFactor(KafkaError):
    code = 38


class InvalidReplicaAssignment(KafkaError):
    """A manual replica assignment names a broker that is not registered, one twice, or
    none (Kafka's ReplicationControlManager.validateManualPartitionAssignment)."""

    code = 39


class InvalidConfig(KafkaError):
    code = 40


class InvalidRequest(KafkaError):
    code = 42


class PolicyViolation(KafkaError):
    """The request breaks a limit the server sets (a partition cap, the open-file budget)."""

    code = 44


class OutOfOrderSequenceNumber(KafkaError):
    code = 45


class DuplicateSequenceNumber(KafkaError):
    code = 46


class InvalidProducerEpoch(KafkaError):
    code = 47


class KafkaStorageError(KafkaError):
    """The log could not be read or written (disk full, I/O error); the partition may be offline."""

    code = 56
    retriable = True


class DiskFull(KafkaStorageError):
    """No space was left where a file is written (SQLITE_FULL, ENOSPC): nothing was written,
    and the same write succeeds once space is freed (still KAFKA_STORAGE_ERROR on the wire)."""


class TooManyOpenFiles(KafkaStorageError):
    """The process reached its open-file limit (EMFILE); the message names the limit."""


class CorruptLog(KafkaStorageError):
    """A partition's files fail their checks; the partition is offline until an operator acts."""


class UnsupportedSchemaVersion(CorruptLog):
    """A segment or catalog file was written by a newer (or unknown) eventstore."""


class TopicAuthorizationFailed(KafkaError):
    """The principal may not do this to the topic (the authorizer's decision)."""

    code = 29


class GroupAuthorizationFailed(KafkaError):
    """The principal may not do this to the group."""

    code = 30


class ClusterAuthorizationFailed(KafkaError):
    """The principal may not do this to the cluster."""

    code = 31


class SecurityDisabled(KafkaError):
    """An ACL request to a server with no authorizer configured."""

    code = 54


class TransactionalIdAuthorizationFailed(KafkaError):
    code = 53


class UnknownProducerId(KafkaError):
    code = 59


class InvalidTxnState(KafkaError):
    """A transactional request the transaction's state does not allow (EndTxn with no
    transaction open, a commit while an abort completes)."""

    code = 48


class InvalidProducerIdMapping(KafkaError):
    """The producer id is not the one the coordinator gave this transactional id."""

    code = 49


class InvalidTransactionTimeout(KafkaError):
    """transaction.timeout.ms is not positive or exceeds transaction.max.timeout.ms."""

    code = 50


class ConcurrentTransactions(KafkaError):
    """The transaction's previous commit or abort is still being completed: retry."""

    code = 51
    retriable = True


class ProducerFenced(KafkaError):
    """A newer producer with the same transactional.id has taken over (a newer epoch)."""

    code = 90


class TransactionalIdNotFound(KafkaError):
    """DescribeTransactions named a transactional id the coordinator does not know."""

    code = 105


class NonEmptyGroup(KafkaError):
    code = 68


class GroupIdNotFound(KafkaError):
    code = 69


class MemberIdRequired(KafkaError):
    code = 79


class FencedInstanceId(KafkaError):
    """Another consumer with the same group.instance.id (KIP-345) took this member's place."""

    code = 82


class FencedLeaderEpoch(KafkaError):
    """The client's current leader epoch is older than the leader's."""

    code = 74
    retriable = True


class UnknownLeaderEpoch(KafkaError):
    """The client's current leader epoch is newer than the leader's."""

    code = 75
    retriable = True


class GroupSubscribedToTopic(KafkaError):
    """OffsetDelete: an active member of the group still subscribes to the topic."""

    code = 86


class InvalidRecord(KafkaError):
    code = 87


class UnknownTopicId(KafkaError):
    """A request names a topic by an id no existing topic has (deleted, or re-created
    with a new id)."""

    code = 100
    retriable = True


class NoOffsetForPartition(KafkaError):
    """Client side: no committed offset and ``auto.offset.reset`` is ``none``."""


class IllegalState(KafkaError):
    """Client side: the call does not fit the object's state (closed, not assigned, ...)."""


class DataDirLocked(KafkaError):
    """Another process holds the data directory; the message names it."""


class UnsupportedSaslMechanism(KafkaError):
    """The client asked for a SASL mechanism the listener does not enable."""

    code = 33


class IllegalSaslState(KafkaError):
    """A SASL request out of order (SaslAuthenticate before SaslHandshake, a second login)."""

    code = 34


class SaslAuthenticationFailed(KafkaError):
    """Wrong password or unknown user: the login is refused, which of the two is not said."""

    code = 58


class ResourceNotFound(KafkaError):
    """The named resource (a SCRAM credential to delete, ...) does not exist."""

    code = 91


class DuplicateResource(KafkaError):
    """One request names the same resource twice (a user's mechanism altered twice)."""

    code = 92


class UnacceptableCredential(KafkaError):
    """A credential the server will not store (an empty user, iterations out of range)."""

    code = 93


ERRORS_BY_CODE: dict[int, type[KafkaError]] = {
    cls.code: cls
    for cls in (
        OffsetOutOfRange, CorruptRecord, UnknownTopicOrPartition, InvalidFetchSize,
        KafkaTimeoutError, RecordTooLarge, OffsetMetadataTooLarge, CoordinatorNotAvailable,
        NotCoordinator,
        InvalidTopic, InvalidRequiredAcks, IllegalGeneration, InconsistentGroupProtocol,
        InvalidGroupId, UnknownMemberId, InvalidSessionTimeout, RebalanceInProgress,
        InvalidCommitOffsetSize, InvalidTimestamp, UnsupportedVersion, TopicAlreadyExists,
        InvalidPartitions, InvalidReplicationFactor, InvalidReplicaAssignment, InvalidConfig,
        InvalidRequest, FencedLeaderEpoch, UnknownLeaderEpoch,
        PolicyViolation, OutOfOrderSequenceNumber, DuplicateSequenceNumber, InvalidProducerEpoch,
        KafkaStorageError, TransactionalIdAuthorizationFailed, UnknownProducerId,
        TopicAuthorizationFailed, GroupAuthorizationFailed, ClusterAuthorizationFailed,
        SecurityDisabled,
        InvalidTxnState, InvalidProducerIdMapping, InvalidTransactionTimeout,
        ConcurrentTransactions, ProducerFenced, TransactionalIdNotFound,
        NonEmptyGroup, GroupIdNotFound,
        MemberIdRequired, InvalidRecord, GroupSubscribedToTopic, UnknownTopicId,
        UnsupportedSaslMechanism, IllegalSaslState, SaslAuthenticationFailed,
        ResourceNotFound, DuplicateResource, UnacceptableCredential,
    )
}


def error_for_code(code: int, message: str = "") -> KafkaError:
    """The typed error for a Kafka error code (a plain KafkaError when the code is unknown)."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        err = KafkaError(f"error code {code}" + (f": {message}" if message else ""))
        err.code = code
        return err
    return cls(message)
