"""What every eventstore actor runs on: its own thread that stops cleanly, and one timer thread.

pykka gives each ThreadingActor a thread but no timers and no way to wait for that thread
to end. Here an :class:`Actor` keeps its thread so :func:`stop_actor` can join it (closing
the store leaves no thread behind), and a :class:`Scheduler` runs every actor's timers
(``linger.ms``, ``segment.ms``, retention checks, heartbeats) on one thread. A timer
callback only sends a message to its actor; the actor does the work on its own thread.

Messages that someone waits for: pykka answers an ``ask`` left in the inbox of an actor
that stopped, but drops every ``tell``, and a ``tell`` that lands after the stopping actor
emptied its inbox is dropped too. A message carrying a reply future (an append, an
asynchronous commit) is therefore sent with :func:`tell_with_reply`, which fails the
future with the caller's typed error when the actor is dead, stops before handling the
message, or fails while handling it. An :class:`Actor`'s inbox is a :class:`Mailbox`
that closes when the actor stops, under a lock, so no message slips in after it was
emptied: it is refused instead, on the sender's thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import pykka
from pykka import messages
from pykka._envelope import Envelope

from actors.replies import LoopReply, ReplyFuture

log = logging.getLogger(__name__)

# Actor threads, by actor URN, until stop_actor joins them.
_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


class Refusable(Envelope):
    """An envelope whose message someone waits for: ``refuse`` answers them when the actor
    will never handle it (called once, by whichever thread finds that out)."""

    __slots__ = ("refuse",)

    def __init__(self, message: object, refuse: Callable[[], None]) -> None:
        super().__init__(message)
        self.refuse = refuse


def _refuse(envelope: Envelope, actor: str) -> None:
    """Answer an envelope its actor will never handle: a refusable tell through its
    ``refuse``, an ``ask`` with ActorDeadError (a stop request with None, as pykka
    does); a plain ``tell`` has no one to answer."""
    if isinstance(envelope, Refusable):
        envelope.refuse()
    elif envelope.reply_to is not None:
        if isinstance(envelope.message, messages._ActorStop):  # noqa: SLF001
            envelope.reply_to.set(None)
        else:
            error = pykka.ActorDeadError(f"{actor} stopped before handling the message")
            envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))


class Mailbox:
    """An actor's inbox that closes when the actor stops: what was left in it, and what
    is put in later, is refused (see :func:`_refuse`) instead of dropped.

    It is the queue pykka's actor loop reads, on a :class:`queue.SimpleQueue`: a put
    wakes the actor without the Python-level condition of :class:`queue.Queue`, a good
    part of what a small request cost. ``current`` is the envelope the actor took last,
    so that a failure while handling its message can refuse it too.
    """

    def __init__(self, actor: str) -> None:
        self._queue: queue.SimpleQueue[Envelope] = queue.SimpleQueue()
        self._actor = actor
        self._gate = threading.Lock()  # put against close: nothing lands after the drain
        self._closed = False
        self.current: Envelope | None = None

    def put(self, item: Envelope, block: bool = True, timeout: float | None = None) -> None:
        with self._gate:
            if not self._closed:
                self._queue.put(item)  # unbounded: never blocks under the gate
                return
        _refuse(item, self._actor)

    def get(self, block: bool = True, timeout: float | None = None) -> Envelope:
        self.current = envelope = self._queue.get(block, timeout)
        return envelope

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def close(self) -> None:
        """Refuse every envelope left, and every one put from now on."""
        with self._gate:
            self._closed = True
            left = []
            with contextlib.suppress(queue.Empty):
                while True:
                    left.append(self._queue.get_nowait())
        for envelope in left:
            _refuse(envelope, self._actor)


class Actor(pykka.ThreadingActor):
    """A pykka ThreadingActor whose thread :func:`stop_actor` can join, and whose inbox
    refuses what it will never handle (a :class:`Mailbox`).

    Its thread is a daemon, so a program that forgets to close the store still exits;
    closing it stops every actor and joins every thread.
    """

    use_daemon_thread = True

    @staticmethod
    def _create_future() -> ReplyFuture[Any]:
        # pykka's hook for an ask's future: one an event loop can await without a thread
        return ReplyFuture()

    def _create_actor_inbox(self) -> Mailbox:  # type: ignore[override]
        # pykka's hook, called once the actor has its URN (its name, in refusals)
        return Mailbox(str(self))

    def _handle_receive(self, message: Any) -> Any:
        # pykka's dispatch of one message: one that fails a refusable message (after which
        # the actor stops) refuses it, so its sender is answered
        try:
            return super()._handle_receive(message)
        except Exception:
            current = self.actor_inbox.current
            if isinstance(current, Refusable) and current.message is message:
                current.refuse()
            raise

    def _actor_loop_teardown(self) -> None:
        # pykka's last step after the actor stopped: instead of answering only the asks
        # left in the inbox, close it, answering every message someone waits for
        self.actor_inbox.close()

    def _start_actor_loop(self) -> None:
        # pykka's hook for actor implementations: the same loop, on a thread we keep.
        thread = threading.Thread(
            target=self._actor_loop, name=f"{type(self).__name__}-{self.actor_urn[-8:]}",
            daemon=True,
        )
        with _threads_lock:
            _threads[self.actor_urn] = thread
        thread.start()


def stop_actor(ref: pykka.ActorRef[Any], timeout: float = 30.0) -> None:
    """Stop an actor after the messages already in its inbox, and wait for its thread."""
    ref.stop(block=True, timeout=timeout)
    with _threads_lock:
        thread = _threads.pop(ref.actor_urn, None)
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def tell_if_alive(ref: pykka.ActorRef[Any], message: object) -> None:
    """Send ``message`` unless the actor has stopped (a timer may outlive its actor)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


def tell_or_refuse(ref: pykka.ActorRef[Actor], message: object,
                   refuse: Callable[[], None]) -> None:
    """Send ``message``; if the actor is dead, stops before handling it or fails while
    handling it, call ``refuse()`` instead (on whichever thread finds that out), once.

    ``ref`` must be an :class:`Actor`'s: its :class:`Mailbox` closes the race between a
    send and the actor stopping.
    """
    envelope = Refusable(message, refuse)
    if ref.is_alive():
        ref.actor_inbox.put(envelope)
    else:
        refuse()


def tell_with_reply(ref: pykka.ActorRef[Actor], message: object,
                    reply: Future[Any] | LoopReply[Any],
                    error: Callable[[], BaseException]) -> None:
    """Send ``message``, which carries ``reply``; fail ``reply`` with ``error()`` if the
    actor is dead, stops before handling the message or fails while handling it.

    ``error`` makes the caller's typed error (a retriable KafkaStorageError for an append
    to a partition that is restarting...); it is called only when needed.
    """
    tell_or_refuse(ref, message, lambda: fail_future(reply, error()))


def fail_future(future: Future[Any] | LoopReply[Any], error: BaseException) -> None:
    """Complete ``future`` with ``error`` unless it is done already (or cancelled)."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)


class Timer:
    """A callback due at a monotonic deadline; :meth:`cancel` keeps it from running."""

    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """One thread running short callbacks at their deadlines, for every actor of a system.

    Callbacks must not block: they send a message and return.
    """

    def __init__(self, name: str = "eventstore-timers") -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the timer thread in ``delay_s`` seconds (at once if <= 0)."""
        timer = Timer(time.monotonic() + delay_s, callback)
        with self._cond:
            if self._closed:
                timer.cancel()
                return timer
            heapq.heappush(self._heap, (timer.deadline, next(self._order), timer))
            if self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def close(self) -> None:
        """Drop every pending timer and stop the thread."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:
                    log.exception("timer callback failed")
