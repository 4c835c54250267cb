"""A consumer's background half: heartbeats on a timer, and asynchronous commits.

The polling thread tells a :class:`ConsumerActor` when the member joined a generation
(``HeartbeatsOn``) and when it is rejoining or leaving (``HeartbeatsOff``), and hands it
``commit_async`` commits (``CommitAsync``). Heartbeats go every ``heartbeat_interval_ms``.

Threads: the actor's thread owns the heartbeat schedule (the member it beats for, the
round, the timer). It never changes group membership: when a heartbeat says the group
rebalances, or an asynchronous commit is refused, it reports that to the
:class:`~actors.consumer.membership.Membership`, which queues it for the polling thread
and wakes it to join again.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass

import pykka

from actors.consumer.membership import Membership, OffsetCommit
from actors.coordinator import GroupCoordinator
from actors.runtime import Actor, Scheduler, Timer, tell_if_alive

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeartbeatsOn:
    """The member joined generation ``generation_id``: keep its session alive."""

    generation_id: int
    member_id: str


@dataclass(frozen=True, slots=True)
class HeartbeatsOff:
    """The member is (re)joining or leaving: stop heartbeats."""


@dataclass(frozen=True, slots=True)
class Beat:
    """Timer: send the heartbeat of round ``round``."""

    round: int


@dataclass(frozen=True, slots=True)
class CommitAsync:
    """Send ``commit``; complete ``done`` with its outcome."""

    commit: OffsetCommit
    done: Future[None]


class ConsumerActor(Actor):
    """Heartbeats and asynchronous commits of one consumer of group ``group_id``."""

    def __init__(self, coordinator: pykka.ActorProxy[GroupCoordinator], membership: Membership,
                 group_id: str | None, heartbeat_interval_ms: int, scheduler: Scheduler) -> None:
        super().__init__()
        self._coordinator = coordinator
        self._membership = membership
        self._group_id = group_id
        self._interval_s = heartbeat_interval_ms / 1000
        self._scheduler = scheduler
        self._member: HeartbeatsOn | None = None
        self._round = 0
        self._timer: Timer | None = None

    def on_stop(self) -> None:
        self._stop_beating()

    def on_receive(self, message: object) -> None:
        if isinstance(message, HeartbeatsOn):
            self._stop_beating()
            self._member = message
            self._schedule()
        elif isinstance(message, HeartbeatsOff):
            self._stop_beating()
        elif isinstance(message, Beat):
            if message.round == self._round and self._member is not None:
                self._beat(self._member)
        elif isinstance(message, CommitAsync):
            self._commit(message)
        else:
            super().on_receive(message)

    def _beat(self, member: HeartbeatsOn) -> None:
        try:
            code = self._coordinator.heartbeat(
                self._group_id, member.generation_id, member.member_id).get()
        except pykka.ActorDeadError:
            return
        if code:
            log.info("heartbeat: group rebalances", extra={"fields": {
                "group": self._group_id, "member": member.member_id, "code": code}})
            self._stop_beating()
            self._membership.report(code, member.generation_id, member.member_id)
        else:
            self._schedule()

    def _commit(self, message: CommitAsync) -> None:
        try:
            self._membership.send_commit(message.commit)
        except Exception as exc:
            message.done.set_exception(exc)
        else:
            message.done.set_result(None)

    def _schedule(self) -> None:
        self._round += 1
        ref, beat = self.actor_ref, Beat(self._round)
        self._timer = self._scheduler.call_later(self._interval_s,
                                                 lambda: tell_if_alive(ref, beat))

    def _stop_beating(self) -> None:
        self._member = None
        self._round += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
