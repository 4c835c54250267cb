"""Actor replies awaited on an event loop (actors/replies.py) and the listener's idle watch
(eventstore/kafka/idle_watch.py): the two replace a pool thread blocked on every reply and
a timeout armed around every read."""

from __future__ import annotations

import asyncio
import threading

import pytest

from actors.replies import LoopReply, ReplyFuture, awaited
from actors.runtime import Actor, stop_actor
from eventstore.kafka.idle_watch import IdleWatch


class Echo(Actor):
    def echo(self, value: object) -> object:
        return value

    def fail(self) -> None:
        raise ValueError("refused")


def test_callbacks_run_once_when_the_value_is_set_or_at_once_if_it_was() -> None:
    future: ReplyFuture[int] = ReplyFuture()
    seen: list[int] = []
    assert future.add_done_callback(lambda done: seen.append(done.get()))
    assert seen == []
    future.set(7)
    assert seen == [7]
    assert future.add_done_callback(lambda done: seen.append(done.get() + 1))
    assert seen == [7, 8]


def test_a_failing_callback_does_not_fail_the_setter() -> None:
    future: ReplyFuture[int] = ReplyFuture()
    future.add_done_callback(lambda _done: 1 / 0)
    future.set(1)
    assert future.get(timeout=0) == 1


def test_a_mapped_future_cannot_call_back() -> None:
    future: ReplyFuture[int] = ReplyFuture()
    assert not future.map(lambda value: value + 1).add_done_callback(lambda _done: None)


def test_a_loop_reply_set_from_another_thread_wakes_its_loop_once_and_late_sets_are_dropped(
        ) -> None:
    reported: list[dict] = []

    async def main() -> tuple[object, LoopReply[str]]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(
            context))
        reply: LoopReply[str] = LoopReply()
        setter = threading.Thread(target=lambda: (reply.set_result("first"),
                                                  reply.set_exception(ValueError("late"))))
        setter.start()
        value = await reply.future
        setter.join()
        return value, reply  # the late set_exception's callback runs as asyncio.run ends

    value, reply = asyncio.run(main())
    assert value == "first" and reply.future.result() == "first"
    assert reported == []  # the late one was ignored, not an InvalidStateError
    reply.set_result("after the loop closed")  # no loop to wake: dropped, not raised


def test_answers_given_before_the_loop_took_the_last_ones_share_one_wake_up() -> None:
    """Five appends answered while the loop is busy wake it once (LoopAnswers), in order;
    the next answer, after the loop took those, wakes it again."""
    loop = asyncio.new_event_loop()
    wakes: list[tuple] = []
    original = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda *args: (wakes.append(args), original(*args))[1]

    async def main() -> tuple[list[int], str]:
        replies: list[LoopReply[int]] = [LoopReply() for _ in range(5)]
        answering = threading.Thread(
            target=lambda: [reply.set_result(i) for i, reply in enumerate(replies)])
        answering.start()
        answering.join()  # the loop is busy (blocked here) while all five are answered
        values = [await reply.future for reply in replies]
        later: LoopReply[str] = LoopReply()
        threading.Thread(target=later.set_result, args=("next",)).start()
        return values, await later.future

    try:
        assert loop.run_until_complete(main()) == ([0, 1, 2, 3, 4], "next")
    finally:
        loop.close()
    assert len(wakes) == 2


def test_an_actors_reply_and_its_error_are_awaited_on_the_loop() -> None:
    ref = Echo.start()
    proxy = ref.proxy()

    def no_thread() -> asyncio.Future:
        raise AssertionError("a ReplyFuture needs no waiting thread")

    async def main() -> tuple[object, object]:
        value = await awaited(proxy.echo("hello"), no_thread)
        with pytest.raises(ValueError, match="refused"):
            await awaited(proxy.fail(), no_thread)
        mapped = proxy.echo(2).map(lambda v: v * 21)
        loop = asyncio.get_running_loop()
        fallback = await awaited(mapped, lambda: loop.run_in_executor(None, mapped.get))
        return value, fallback

    try:
        assert asyncio.run(main()) == ("hello", 42)
    finally:
        stop_actor(ref)


def test_the_idle_watch_cancels_only_a_connection_waiting_past_its_limit() -> None:
    async def main() -> tuple[bool, bool]:
        async def waits_on_client(watch_box: list[IdleWatch]) -> None:
            watch_box[0].waiting("idle")
            await asyncio.Event().wait()  # a client that never sends

        async def busy(watch_box: list[IdleWatch], done: asyncio.Event) -> None:
            watch_box[0].served()  # handling, not waiting on the client
            await done.wait()

        idle_box: list[IdleWatch] = []
        idle = asyncio.ensure_future(waits_on_client(idle_box))
        idle_box.append(IdleWatch(idle, 0.05, "idle peer"))
        done = asyncio.Event()
        busy_box: list[IdleWatch] = []
        working = asyncio.ensure_future(busy(busy_box, done))
        busy_box.append(IdleWatch(working, 0.05, "busy peer"))
        with pytest.raises(asyncio.CancelledError):
            await idle
        assert not working.done()  # three limits later it still runs
        await asyncio.sleep(0.15)
        still_running = not working.done()
        done.set()
        await working
        busy_box[0].close()
        return idle.cancelled(), still_running

    assert asyncio.run(main()) == (True, True)
