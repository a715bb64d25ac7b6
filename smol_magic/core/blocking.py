"""Driving the async loop from synchronous code, even inside Jupyter's running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import concurrent.futures
import queue
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterator

from .execution import interruptible

CLEANUP_SECONDS = 5.0  # how long an interrupted run's cleanup may use the main thread

# Called by the main thread, again and again, while it waits for a worker's run: e.g. to handle
# widget clicks for a managed agent's approval card while its manager's action holds the thread.
WHILE_WAITING: list[Callable[[], None]] = []

# Set inside a worker thread's loop: where to send calls that must run on the main thread.
_MAIN_CALLS: contextvars.ContextVar[queue.SimpleQueue | None] = contextvars.ContextVar("main_calls", default=None)


def run_blocking(coro: Any) -> Any:
    """Await a coroutine from synchronous code, even inside Jupyter's running loop."""

    async def once() -> AsyncIterator[Any]:
        yield await coro

    steps = iterate_blocking(once())
    try:
        return next(steps)
    finally:
        steps.close()


async def on_main_thread(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` on the main thread (where signals work), also from a worker thread's loop."""
    calls = _MAIN_CALLS.get()
    if calls is None or threading.current_thread() is threading.main_thread():
        return fn()
    future: concurrent.futures.Future = concurrent.futures.Future()
    calls.put(("call", (fn, future)))
    return await asyncio.wrap_future(future)


def call_on_main(fn: Callable[[], Any]) -> None:
    """Call ``fn`` on the main thread without waiting for it, in order with the other calls sent there."""
    calls = _MAIN_CALLS.get()
    if calls is None or threading.current_thread() is threading.main_thread():
        fn()
        return
    calls.put(("call", (fn, concurrent.futures.Future())))


def _finish_pending(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does before closing its loop: the closing of async generators a library left
    unfinished (httpx's line readers) runs now, not as "Task was destroyed but it is pending!" at exit."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def iterate_blocking(steps: AsyncIterator[Any]) -> Iterator[Any]:
    """Iterate an async step stream from synchronous code.

    With no event loop running, drive it on a private loop. Inside Jupyter a
    loop already runs in this thread, so the model is awaited on a worker
    thread's loop while the code still runs here, on the main thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(steps.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            try:
                loop.run_until_complete(steps.aclose())
                _finish_pending(loop)
            finally:
                loop.close()
    else:
        yield from _iterate_in_worker(steps)


def _iterate_in_worker(steps: AsyncIterator[Any]) -> Iterator[Any]:
    messages: queue.SimpleQueue = queue.SimpleQueue()
    worker_loop: list[asyncio.AbstractEventLoop] = []
    task: list[asyncio.Task] = []

    async def pump() -> None:
        task.append(asyncio.current_task())
        _MAIN_CALLS.set(messages)
        try:
            async for step in steps:
                messages.put(("step", step))
            messages.put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            messages.put(("error", exc))

    def work() -> None:
        loop = asyncio.new_event_loop()
        worker_loop.append(loop)
        loop.run_until_complete(pump())
        loop.close()

    thread = threading.Thread(target=work, name="smol-magic-agent", daemon=True)
    thread.start()
    try:
        with interruptible():
            while True:
                try:
                    kind, payload = messages.get(timeout=0.05)
                except queue.Empty:
                    for wait in list(WHILE_WAITING):
                        wait()
                    continue
                if kind == "call":
                    _run_call(*payload)
                elif kind == "step":
                    yield payload
                elif kind == "done":
                    thread.join(CLEANUP_SECONDS)  # it is closing its loop: gone before the caller goes on
                    return
                else:
                    thread.join(CLEANUP_SECONDS)
                    raise payload
    except BaseException:
        if worker_loop and task and not worker_loop[0].is_closed():
            with contextlib.suppress(RuntimeError):  # the worker may have finished meanwhile
                worker_loop[0].call_soon_threadsafe(task[0].cancel)
        _serve_until_done(messages, thread)
        raise


def _serve_until_done(messages: queue.SimpleQueue, thread: threading.Thread, timeout: float = CLEANUP_SECONDS) -> None:
    """After a cancel, serve the main-thread calls the run's cleanup makes (restore the tools, end the trace)."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            kind, payload = messages.get(timeout=0.05)
        except queue.Empty:
            continue
        if kind == "call":
            with contextlib.suppress(KeyboardInterrupt):  # pressed again: the cleanup still ends
                _run_call(*payload)
        elif kind in ("done", "error"):
            return


def _run_call(fn: Callable[[], Any], future: concurrent.futures.Future) -> None:
    """Run a call sent to the main thread and hand back its result or error.

    An Interrupt that lands while it runs is the user's, not the call's: it goes on up the
    main thread too (the run is then cancelled), as it would have anywhere else there.
    """
    try:
        result = fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the worker as is
        if not future.done():
            future.set_exception(exc)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return
    if not future.done():
        future.set_result(result)
