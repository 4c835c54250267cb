"""What every request handler needs: the actors, this node's address, and the bridge.

The bridge: a pykka future's ``__await__`` blocks on ``get()``, which would stall the
event loop for every client. :meth:`BrokerContext.resolve` instead waits for actor
replies on a pool of threads of its own (``asks``) and hands the result back to the loop.
Blocking work (reading segment rows, decoding a large produce) runs on another pool
(``pool``, :meth:`BrokerContext.run`): a reply can take as long as the actor's queue
(a CreateTopics writing hundreds of partitions, a coordinator busy), and threads waiting
for replies must never keep fetches and produces from their reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

import pykka

from actors.broker import Broker
from actors.coordinator import GroupCoordinator
from actors.partition import PartitionHandle
from actors.replies import awaited
from actors.transactions import TransactionCoordinator
from eventstore.config import SERVER_KEYS
from eventstore.kafka.batchcache import RecentBatches
from eventstore.kafka.refusals import RefusalLog
from eventstore.kafka.response_budget import ResponseBudget
from eventstore.storage.credentials import CredentialStore

if TYPE_CHECKING:
    from eventstore.kafka.authorization import AclAuthority

NODE_ID = 0

# threads waiting for actor replies: each holds one while its actor is busy, so there are
# more than the 40-odd slow admin and coordinator calls a busy server sees at once
ASK_THREADS = 128

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass
class BrokerContext:
    """Shared by every connection's session."""

    broker: pykka.ActorProxy[Broker]
    coordinator: pykka.ActorProxy[GroupCoordinator]
    host: str  # the address advertised to clients
    port: int
    pool: concurrent.futures.ThreadPoolExecutor  # blocking work: reads, large decodes
    server_config: Mapping[str, Any]  # every server key by its Kafka name: DescribeConfigs
    data_dir: str = ""  # the one log directory DescribeLogDirs reports
    cluster_id: str = ""  # the data directory's, from its catalog: Metadata, DescribeCluster
    recent: RecentBatches = field(default_factory=RecentBatches)  # produced, for fetches
    refusals: RefusalLog = field(default_factory=RefusalLog)  # logged once per client
    transactions: pykka.ActorProxy[TransactionCoordinator] | None = None  # KIP-98
    credentials: CredentialStore | None = None  # SCRAM users (None: no catalog, no users)
    acls: AclAuthority | None = None  # the ACLs decided with (None: no authorizer)
    _handles: dict[tuple[str, int], PartitionHandle] = field(default_factory=dict)
    asks: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            max_workers=ASK_THREADS, thread_name_prefix="kafka-asks"))
    responses: ResponseBudget = field(init=False)

    def __post_init__(self) -> None:
        # responses built and not yet written are bounded like the requests read
        self.responses = ResponseBudget(self.server_config.get(
            "queued.max.request.bytes", SERVER_KEYS["queued.max.request.bytes"].default))

    async def partition(self, topic: str, partition: int) -> PartitionHandle:
        """The partition's PartitionHandle, asked of the broker only the first time and
        once its actor has stopped or its partition gone offline (restarted, deleted):
        a produce request then costs no broker round trip. Raises what the broker does."""
        key = (topic, partition)
        handle = self._handles.get(key)
        if handle is None or handle.state.error is not None or handle.actor is None or not (
                handle.actor.actor_ref.is_alive()):
            self._handles.pop(key, None)
            handle = await self.resolve(self.broker.partition(topic, partition))
            self._handles[key] = handle
        return handle

    async def resolve(self, future: pykka.Future[T]) -> T:
        """The value of an actor's reply, awaited without blocking the event loop or
        taking a thread from the blocking work's pool: woken by the reply itself (see
        actors/replies.py), or by a thread of ``asks`` waiting on it."""
        return await awaited(future, lambda: asyncio.get_running_loop().run_in_executor(
            self.asks, future.get))

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run blocking work (reading segment rows) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
