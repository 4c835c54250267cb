"""What every eventstore actor runs on: its own thread that stops cleanly, and one timer thread.

pykka gives each ThreadingActor a thread but no timers and no way to wait for that thread
to end. Here an :class:`Actor` keeps its thread so :func:`stop_actor` can join it (closing
the store leaves no thread behind), and a :class:`Scheduler` runs every actor's timers
(``linger.ms``, ``segment.ms``, retention checks, heartbeats) on one thread. A timer
callback only sends a message to its actor; the actor does the work on its own thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

log = logging.getLogger(__name__)

# Actor threads, by actor URN, until stop_actor joins them.
_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


class Actor(pykka.ThreadingActor):
    """A pykka ThreadingActor whose thread :func:`stop_actor` can join.

    Its thread is a daemon, so a program that forgets to close the store still exits;
    closing it stops every actor and joins every thread.
    """

    use_daemon_thread = True

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
