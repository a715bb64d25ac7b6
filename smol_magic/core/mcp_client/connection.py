"""Sessions with MCP servers, held open on one background event loop (``MCPLoop``)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import threading
from typing import Any

from .params import ServerSpec


class MCPError(Exception):
    """An MCP server or tool failed; the message is one line, fit for the model's observation."""


class ServerStatus(str, enum.Enum):
    NOT_STARTED = "not started"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


# -- the loop thread ---------------------------------------------------------------


class MCPLoop:
    """One event loop on a daemon thread, where every MCP session lives."""

    _instance: "MCPLoop | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smol-magic-mcp", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "MCPLoop":
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the loop and wait for it; an interrupt or a timeout cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        # Waited for on an Event of our own: an Interrupt (KeyboardInterrupt) that lands inside
        # future.result() can leave the future's lock held, and the loop thread then hangs on it.
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        try:
            if not done.wait(timeout):
                raise TimeoutError
        except BaseException:
            future.cancel()
            raise
        if not future.cancelled() and future.exception(0) is not None:
            raise future.exception(0)  # raised here: concurrent.futures' own frames would be the traceback's last
        return future.result(0)


# -- one connection ----------------------------------------------------------------


class ServerConnection:
    """One server's session, held open by a task on the MCP loop until ``close()``."""

    def __init__(self, spec: ServerSpec, connect_timeout: float = 30.0):
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.status = ServerStatus.NOT_STARTED
        self.error: str | None = None
        self.tools: list[Any] = []  # the SDK's mcp.types.Tool
        self.session: Any = None
        self._task: asyncio.Task | None = None
        self._closing: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.status == ServerStatus.CONNECTED and self._task is not None and not self._task.done()

    def connect(self) -> None:
        """Start the server (or reach it) and list its tools; ``MCPError`` with one line if it fails."""
        connect_all([self])

    async def _start(self) -> None:
        self.status, self.error = ServerStatus.CONNECTING, None
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._closing, self._closed = asyncio.Event(), asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._hold(ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self.status, self.error = ServerStatus.FAILED, f"no answer within {self.connect_timeout:g} s"
            self._closing.set()

    async def _hold(self, ready: asyncio.Future) -> None:
        """Open the transport and the session, list the tools, then wait until closed (all in one task)."""
        from mcp import ClientSession

        try:
            async with self._transport() as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                listed = await session.list_tools()
                self.session, self.tools = session, list(listed.tools)
                self.status = ServerStatus.CONNECTED
                ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:  # noqa: BLE001 - a dead server: its calls get the reason
            if self.status != ServerStatus.CLOSED:
                self.status, self.error = ServerStatus.FAILED, _one_line(exc)
            if not ready.done():
                ready.set_result(None)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self.session = None
            self._closed.set()
            if self.status == ServerStatus.CONNECTED:  # the transport ended on its own: the server went away
                self.status, self.error = ServerStatus.FAILED, "the server closed the connection"

    def _transport(self) -> Any:
        spec = self.spec
        if spec.transport == "stdio":
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env, cwd=spec.cwd)
            return stdio_client(params, errlog=_devnull())  # the server's log would land in the kernel's stderr
        if spec.transport == "sse":
            from mcp.client.sse import sse_client

            return sse_client(spec.url, headers=spec.headers)
        return _streamable_http(spec.url, spec.headers)

    def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Call a tool and wait; the SDK's ``CallToolResult``, or ``MCPError`` with one line."""
        if self.status == ServerStatus.CLOSED:
            raise MCPError(f"MCP server {self.name!r} is not running (it was closed); its tools cannot be used now")
        if self.status != ServerStatus.CONNECTED:
            if self.status == ServerStatus.FAILED:
                raise MCPError(f"MCP server {self.name!r} is not running ({self.error}); "
                               "its tools cannot be used now")
            self.connect()
        elif not self.running:
            raise MCPError(f"MCP server {self.name!r} is not running ({self.error or 'closed'}); "
                           "its tools cannot be used now")
        try:
            return MCPLoop.get().run(self._call(tool, arguments, timeout), timeout + 5)
        except TimeoutError:
            raise MCPError(f"MCP tool {tool!r} of server {self.name!r} did not answer within {timeout:g} s") from None

    async def _call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        session = self.session
        if session is None:
            raise MCPError(f"MCP server {self.name!r} is not running ({self.error or 'closed'})")
        # the SDK's own read timeout a little later than ours, so a slow tool gets our one-line message
        call = asyncio.ensure_future(session.call_tool(tool, arguments, read_timeout_seconds=timeout + 1))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({call, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # an Interrupt in the kernel: the request is abandoned too
            call.cancel()
            raise
        finally:
            closed.cancel()
        if call in done:
            try:
                return call.result()
            except Exception as exc:  # noqa: BLE001
                if "connection closed" in str(exc).lower():  # the server went away: the session is over
                    self.status, self.error = ServerStatus.FAILED, "the server closed the connection"
                    self._closing.set()
                if self.status == ServerStatus.FAILED or self._closed.is_set():
                    raise MCPError(f"MCP server {self.name!r} stopped during the call to {tool!r} "
                                   f"({self.error or _one_line(exc)})") from None
                raise MCPError(f"MCP tool {tool!r} of server {self.name!r} failed: {_one_line(exc)}") from None
        call.cancel()
        if closed in done:
            raise MCPError(f"MCP server {self.name!r} stopped during the call to {tool!r} "
                           f"({self.error or 'the connection closed'})")
        raise MCPError(f"MCP tool {tool!r} of server {self.name!r} did not answer within {timeout:g} s")

    def close(self) -> None:
        """End the session (and the server process, for stdio); safe to call twice."""
        close_all([self])

    async def _stop(self) -> None:
        if self.status != ServerStatus.FAILED:
            self.status = ServerStatus.CLOSED
        task, closing = self._task, self._closing
        if task is None or task.done() or closing is None:
            return
        closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (asyncio.TimeoutError, TimeoutError):
            task.cancel()
        except BaseException:  # noqa: BLE001 - it is closing anyway
            pass


def connect_all(connections: list[ServerConnection]) -> None:
    """Start these servers side by side; ``MCPError`` naming the first that failed (the others stay up)."""
    pending = [c for c in connections if not c.running]
    if not pending:
        return

    async def start_all() -> None:
        await asyncio.gather(*(c._start() for c in pending), return_exceptions=True)

    timeout = max(c.connect_timeout for c in pending) + 5
    try:
        MCPLoop.get().run(start_all(), timeout)
    except TimeoutError:
        for c in pending:
            if c.status != ServerStatus.CONNECTED:
                c.status, c.error = ServerStatus.FAILED, f"no answer within {c.connect_timeout:g} s"
    failed = [c for c in pending if c.status != ServerStatus.CONNECTED]
    if failed:
        close_all(failed)
        first = failed[0]
        raise MCPError(f"MCP server {first.name!r} ({first.spec.describe()}) could not start: "
                       f"{first.error or 'it did not answer'}")


def close_all(connections: list[ServerConnection]) -> None:
    """Close these connections side by side (each stdio server gets a few seconds to exit)."""
    if not connections:
        return

    async def stop_all() -> None:
        await asyncio.gather(*(c._stop() for c in connections), return_exceptions=True)

    try:
        MCPLoop.get().run(stop_all(), 15)
    except Exception:  # noqa: BLE001 - best effort, at shutdown too
        pass


@contextlib.asynccontextmanager
async def _streamable_http(url: str, headers: dict[str, str] | None) -> Any:
    """The SDK's streamable HTTP transport over an HTTP client with the entry's headers (closed after)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with create_mcp_http_client(headers=headers) as client, \
            streamable_http_client(url, http_client=client) as streams:
        yield streams


_DEVNULL: Any = None


def _devnull() -> Any:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - kept open for every stdio server
    return _DEVNULL


def _one_line(exc: BaseException) -> str:
    """An exception (or an anyio ExceptionGroup of them) as one short line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ not in text and not isinstance(exc, MCPError):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]
