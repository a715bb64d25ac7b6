"""Blocking model calls (smolagents' models, a local transformers model) run off the event loop.

Each call gets a daemon thread of its own rather than ``asyncio.to_thread``: the
loop's default executor is joined when the loop shuts down (``asyncio.run``), so
a call hung on a dead server would hang the caller's exit too. A daemon thread
is left behind instead, and the agent goes on with a clear timeout error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, AsyncIterator, Callable, Iterator


def in_thread(fn: Callable[[], Any], name: str = "smol-magic-model") -> asyncio.Future:
    """``fn()`` on a daemon thread, as a future of the running loop."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            result = (True, fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop as is
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for the reply
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future


async def iterate_in_thread(make: Callable[[threading.Event], Iterator[Any]], deadline: float,
                            on_timeout: Callable[[], BaseException],
                            name: str = "smol-magic-model") -> AsyncIterator[Any]:
    """Items of a blocking iterator, read on a daemon thread, until ``deadline`` (loop time).

    ``make(stop)`` builds the iterator on the thread; ``stop`` is set when the
    consumer goes away (Interrupt, an error), so a generator can end early.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for item in make(stop):
                put(("item", item))
                if stop.is_set():
                    break
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop as is
            put(("error", exc))

    threading.Thread(target=pump, name=name, daemon=True).start()
    try:
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0.001))
            except (asyncio.TimeoutError, TimeoutError):
                raise on_timeout() from None
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
