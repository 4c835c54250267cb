"""Actor replies an event loop can await without a thread blocked on each one.

pykka's ThreadingFuture can only be waited for by blocking a thread on ``get``. The Kafka
listener awaited every actor reply that way, on a pool thread: a heartbeat cost two thread
wake-ups (the pool's and the actor's) besides the event loop's own, most of a small
request's CPU. A :class:`ReplyFuture` also calls back whoever registered with
:meth:`~ReplyFuture.add_done_callback` when its value is set, on the setting (actor)
thread, so an event loop is woken once, by ``call_soon_threadsafe``; answers that come
while the loop has not taken the last ones share its wake-up (:class:`LoopAnswers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import pykka

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReplyFuture(pykka.ThreadingFuture[T]):
    """A ThreadingFuture that tells callbacks when its value or error is set."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[ReplyFuture[T]], None]] = []

    def add_done_callback(self, callback: Callable[[ReplyFuture[T]], None]) -> bool:
        """Call ``callback(self)`` once the result is set (at once if it is). False when
        the future cannot call back: its value comes from a get hook (``map``,
        ``join``), which runs only inside ``get``."""
        with self._condition:
            if self._get_hook is not None:
                return False
            if self._result is None:
                self._callbacks.append(callback)
                return True
        _call(callback, self)
        return True

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._done()

    def set_exception(self, exc_info: Any = None) -> None:
        super().set_exception(exc_info)  # None: pykka reads sys.exc_info(), same thread
        self._done()

    def _done(self) -> None:
        with self._condition:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _call(callback, self)


def _call(callback: Callable[[ReplyFuture[Any]], None], future: ReplyFuture[Any]) -> None:
    try:
        callback(future)
    except Exception:  # a waiter's bug must not fail the actor that answered
        log.exception("a reply callback failed")


async def awaited(future: pykka.Future[T], fallback: Callable[[], asyncio.Future[T]]) -> T:
    """The value of an actor's reply, awaited on the running event loop: woken by the
    reply itself when ``future`` is a :class:`ReplyFuture`, else through ``fallback()``
    (a wait on a thread)."""
    if not isinstance(future, ReplyFuture):
        return await fallback()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    answers = LoopAnswers.of(loop)

    def wake(done: ReplyFuture[T]) -> None:
        answers.add(_settle, done, waiter)

    if not future.add_done_callback(wake):
        return await fallback()
    return await waiter


def _settle(done: ReplyFuture[T], waiter: asyncio.Future[T]) -> None:
    if waiter.done():  # the awaiting request was cancelled
        return
    try:
        waiter.set_result(done.get(timeout=0))
    except Exception as error:  # whatever the actor raised, handed on
        waiter.set_exception(error)


class LoopReply(Generic[T]):
    """A reply for a caller on an asyncio event loop, completed from another thread.

    It has the part of concurrent.futures.Future an actor completes (the partition
    actor's appends): :meth:`set_running_or_notify_cancel`, :meth:`set_result` and
    :meth:`set_exception`, callable from any thread. Each completes :attr:`future`, an
    asyncio future of the loop that made it, through the loop's :class:`LoopAnswers`: no
    concurrent Future, whose condition and callbacks ``asyncio.wrap_future`` adds to on
    both sides, on the path of every small produce request.
    """

    __slots__ = ("_answers", "future")

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._answers = LoopAnswers.of(loop)
        self.future: asyncio.Future[T] = loop.create_future()

    def set_running_or_notify_cancel(self) -> bool:
        """True unless the waiter was cancelled (then the work need not be done)."""
        return not self.future.cancelled()

    def set_result(self, value: T) -> None:
        self._answers.add(_set_result, self.future, value)

    def set_exception(self, error: BaseException) -> None:
        self._answers.add(_set_exception, self.future, error)


def _set_result(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # the waiter was cancelled, or a refusal came first
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class LoopAnswers:
    """The answers other threads have for one event loop, handed to it in groups.

    An answer added while the loop has not yet taken the ones before rides along with
    them: however many actors answer meanwhile, the loop is woken (its self-pipe written,
    read and a callback run) once per group, not once per answer, which is what a busy
    server's many small requests would otherwise cost it.
    """

    _of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopAnswers] = (
        weakref.WeakKeyDictionary())
    _of_lock = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., None], Any, Any]] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopAnswers:
        """The one LoopAnswers of ``loop``."""
        answers = cls._of.get(loop)
        if answers is None:
            with cls._of_lock:
                answers = cls._of.setdefault(loop, cls(loop))
        return answers

    def add(self, settle: Callable[[Any, Any], None], first: Any, second: Any) -> None:
        """Have the loop call ``settle(first, second)``; callable from any thread."""
        with self._lock:
            self._pending.append((settle, first, second))
            if len(self._pending) > 1:
                return  # a wake-up is on its way and takes this one too
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._settle_all)

    def _settle_all(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for settle, first, second in pending:
            try:
                settle(first, second)
            except Exception:  # one waiter's bug must not leave the others unanswered
                log.exception("settling an actor's answer failed")
