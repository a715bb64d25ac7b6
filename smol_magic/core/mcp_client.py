"""Tools from MCP servers: ``MCPClient`` and ``ToolCollection.from_mcp``.

The ``mcp`` SDK is async, and a connection must outlive a notebook cell: every
session runs on one background thread with its own event loop (``MCPLoop``),
started on first use. A tool call is a blocking call into that loop, bounded
by a timeout, so agent code calls an MCP tool like any function. Nothing here
imports Jupyter; the SDK itself is imported when a server is first connected.

Server parameters take the shape of Claude Desktop's ``mcpServers`` entries:
``{"command": ..., "args": [...], "env": {...}}`` for stdio and
``{"url": ..., "transport": "streamable-http" | "sse"}`` over HTTP; the SDK's
``StdioServerParameters`` is accepted too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import keyword
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .interop import _required_first, _signature
from .tools import Tool, _schema_type

TRANSPORTS = ("stdio", "streamable-http", "sse")
APPROVAL_MODES = ("every", "risky", "never")


class MCPError(Exception):
    """An MCP server or tool failed; the message is one line, fit for the model's observation."""


class ServerStatus(str, enum.Enum):
    NOT_STARTED = "not started"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


# -- server parameters -------------------------------------------------------------


@dataclass
class ServerSpec:
    """One server, checked: how to reach it (stdio command or URL) and under which name."""

    name: str
    transport: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None

    def describe(self) -> str:
        if self.transport == "stdio":
            return " ".join([self.command or "", *self.args])
        return f"{self.url} ({self.transport})"


def server_spec(name: str, params: Any) -> ServerSpec:
    """A ``mcpServers`` entry (or ``StdioServerParameters``) as a ``ServerSpec``; a clear error when malformed."""
    if isinstance(params, ServerSpec):
        return params
    if not isinstance(params, Mapping) and hasattr(params, "command") and hasattr(params, "args"):
        return ServerSpec(name, "stdio", str(params.command), [str(a) for a in params.args or []],
                          dict(params.env) if getattr(params, "env", None) else None,
                          str(params.cwd) if getattr(params, "cwd", None) else None)
    where = f"MCP server {name!r}"
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected a dict like {{'command': 'npx', 'args': [...]}} or "
                         f"{{'url': 'http://...', 'transport': 'streamable-http'}}, got {type(params).__name__}")
    known = {"command", "args", "env", "cwd", "url", "transport", "type", "headers"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; use command/args/env/cwd (stdio) or "
                         "url/transport/headers (HTTP)")
    if ("command" in params) == ("url" in params):
        raise ValueError(f"{where}: give either 'command' (a program to start, stdio) or 'url' (an HTTP server)")
    if "command" in params:
        command, args, env = params["command"], params.get("args", []), params.get("env")
        if not isinstance(command, str) or not command:
            raise ValueError(f"{where}: 'command' must be a program name or path, e.g. 'npx'")
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{where}: 'args' must be a list of strings")
        if env is not None and (not isinstance(env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ValueError(f"{where}: 'env' must be a dict of strings")
        return ServerSpec(name, "stdio", command, list(args), dict(env) if env else None, params.get("cwd"))
    url = params["url"]
    if not isinstance(url, str) or not re.match(r"https?://", url):
        raise ValueError(f"{where}: 'url' must be an http:// or https:// URL, got {url!r}")
    transport = params.get("transport") or params.get("type") or "streamable-http"
    transport = {"http": "streamable-http", "streamable_http": "streamable-http",
                 "streamableHttp": "streamable-http"}.get(transport, transport)
    if transport not in ("streamable-http", "sse"):
        raise ValueError(f"{where}: 'transport' must be 'streamable-http' or 'sse', got {transport!r}")
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(f"{where}: 'headers' must be a dict of strings")
    return ServerSpec(name, transport, url=url, headers=dict(headers) if headers else None)


def server_specs(server_parameters: Any) -> list[ServerSpec]:
    """One server, a list of them, a ``{name: params}`` dict, or ``{"mcpServers": {...}}`` as pasted."""
    params = server_parameters
    if isinstance(params, Mapping) and set(params) == {"mcpServers"}:
        params = params["mcpServers"]
    if isinstance(params, Mapping) and not ({"command", "url"} & set(params)):
        return [server_spec(str(name), p) for name, p in params.items()]
    items = list(params) if isinstance(params, (list, tuple)) else [params]
    specs = []
    for index, p in enumerate(items):
        specs.append(server_spec(_default_name(p, index), p))
    return specs


def _default_name(params: Any, index: int) -> str:
    if isinstance(params, ServerSpec):
        return params.name
    command = params.get("command") if isinstance(params, Mapping) else getattr(params, "command", None)
    url = params.get("url") if isinstance(params, Mapping) else None
    base = ""
    if command:
        args = params.get("args", []) if isinstance(params, Mapping) else getattr(params, "args", [])
        base = (list(args)[-1] if args else str(command)).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    elif url:
        base = re.sub(r"^https?://", "", str(url)).split("/")[0]
    return identifier(base or f"server{index}")


def identifier(name: str) -> str:
    """``name`` made a valid Python identifier: ``read-file`` -> ``read_file``, ``2d`` -> ``_2d``."""
    text = re.sub(r"\W", "_", name) or "_"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) else text


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


# -- results -----------------------------------------------------------------------


class MCPImage:
    """An image an MCP tool returned: shown by IPython (the trace, a cell), its bytes in ``data``."""

    def __init__(self, data: bytes, mime_type: str):
        self.data, self.mime_type = data, mime_type

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {self.mime_type: base64.b64encode(self.data).decode("ascii"),
                "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<MCPImage {self.mime_type}, {len(self.data):,} bytes>"


_JSON_HINTS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
               "object": "dict", "null": "None"}


def _annotation(prop: dict[str, Any]) -> str:
    """A JSON schema as the Python hint the model reads: ``list[str]``, ``Literal['a', 'b']``, ``int | None``."""
    if "enum" in prop and isinstance(prop["enum"], list):
        return f"Literal[{', '.join(repr(v) for v in prop['enum'])}]"
    options = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(options, list) and options:
        return " | ".join(dict.fromkeys(_annotation(o) for o in options if isinstance(o, dict)))
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1] or "Any"
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_JSON_HINTS.get(k, "Any") for k in kind)
    if kind == "array" and isinstance(prop.get("items"), dict) and prop["items"]:
        return f"list[{_annotation(prop['items'])}]"
    return _JSON_HINTS.get(kind, "Any")


def _wrapped(schema: dict[str, Any] | None) -> bool:
    """Is this the schema the SDK makes for a function's non-dict return value, ``{"result": ...}``?"""
    props = (schema or {}).get("properties") or {}
    return list(props) == ["result"] and str((schema or {}).get("title", "")).endswith("Output")


def _output_type(schema: dict[str, Any] | None) -> str | list[str]:
    if not schema:
        return "any"
    if _wrapped(schema):
        return _schema_type(schema["properties"]["result"])
    return "object"


def convert_result(result: Any, server: str, tool: str, output_schema: dict[str, Any] | None) -> Any:
    """A ``CallToolResult`` as Python: structured content as dict/list, text as str, images as ``MCPImage``."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(item.text)
        elif kind == "image":
            parts.append(MCPImage(base64.b64decode(item.data), item.mime_type))
        elif kind == "resource":
            resource = item.resource
            parts.append(getattr(resource, "text", None) or f"<resource {resource.uri}>")
        else:
            parts.append(f"<{kind} content>")
    if result.is_error:
        text = " ".join(" ".join(p.split()) for p in parts if isinstance(p, str)) or "no details given"
        raise MCPError(f"MCP tool {tool!r} of server {server!r} returned an error: {text[:500]}")
    structured = result.structured_content
    if structured is not None:
        if isinstance(structured, dict) and list(structured) == ["result"] and _wrapped(output_schema):
            return structured["result"]  # FastMCP wraps a function's non-dict return value as {"result": ...}
        return structured
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, str) for p in parts):
        return "\n".join(parts)
    return parts


# -- tools -------------------------------------------------------------------------


class MCPTool(Tool):
    """An MCP server's tool as ours: its JSON schema as a signature, each call a blocking call to the server."""

    def __init__(self, connection: ServerConnection, mcp_tool: Any, name: str | None = None,
                 timeout: float = 60.0, approval: str = "risky", renamed_because: str | None = None):
        self.connection = connection
        self.server = connection.name
        self.tool_name = mcp_tool.name
        self.name = name or identifier(mcp_tool.name)
        self.timeout = timeout
        self.approval = approval
        annotations = mcp_tool.annotations
        self.annotations = annotations.model_dump(exclude_none=True) if annotations is not None else {}
        self.output_schema = mcp_tool.output_schema
        origin = f"(MCP tool {self.tool_name!r} of server {self.server!r}"
        origin += f"; named {self.name} because {renamed_because})" if renamed_because else ")"
        self.description = f"{(mcp_tool.description or '').strip()}\n\n{origin}".strip()
        schema = mcp_tool.input_schema or {}
        defs = schema.get("$defs") or {}
        required = set(schema.get("required") or [])
        inputs: dict[str, dict[str, Any]] = {}
        self.arg_names: dict[str, str] = {}  # our parameter name -> the schema's property name
        for key, prop in (schema.get("properties") or {}).items():
            pname = identifier(key)
            self.arg_names[pname] = key
            prop = prop if isinstance(prop, dict) else {}
            spec: dict[str, Any] = {"type": _schema_type(prop), "annotation": _annotation(prop),
                                    "schema": {**prop, "$defs": defs} if defs and "$ref" in str(prop) else prop,
                                    "description": " ".join(str(prop.get("description") or "").split())}
            if key not in required:
                if "default" in prop:
                    spec["default"] = prop["default"]
                if prop.get("default") is None:
                    spec["nullable"] = True
            inputs[pname] = spec
        self.inputs = _required_first(inputs)
        self.output_type = _output_type(self.output_schema)
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        arguments = dict(zip(self._call_signature().parameters, args), **kwargs)
        sent = {self.arg_names.get(k, k): v for k, v in arguments.items()
                if not (v is None and self.inputs.get(k, {}).get("nullable") and "default" not in self.inputs[k])}
        result = self.connection.call(self.tool_name, sent, self.timeout)
        return convert_result(result, self.server, self.tool_name, self.output_schema)

    def _call_signature(self) -> Any:
        return _signature(self.inputs)

    def risky(self) -> list[str]:
        """What the tool's annotations say makes it risky (an unannotated tool is, as the MCP spec assumes)."""
        hints = self.annotations
        said = [word for key, word in (("destructive_hint", "destructive"), ("open_world_hint", "open-world"))
                if hints.get(key) is True]
        if said:
            return said
        if hints.get("read_only_hint") is True:
            return []
        if hints.get("destructive_hint") is False and hints.get("open_world_hint") is False:
            return []
        return ["not annotated as read-only"]

    def approval_reason(self) -> str | None:
        """Why a call to this tool needs a person's approval (``approval``: every, risky, never)."""
        if self.approval == "never":
            return None
        where = f"calls {self.tool_name!r} of the MCP server {self.server!r}"
        if self.approval == "every":
            return f"{where} (every MCP tool call needs approval)"
        why = self.risky()
        return f"{where}, which its annotations say is {' and '.join(why)}" if why else None


def make_tools(connections: list[ServerConnection], timeout: float = 60.0, approval: str = "risky") -> list[MCPTool]:
    """Tools of connected servers; a name two servers share becomes ``<server>_<tool>`` for both."""
    if approval not in APPROVAL_MODES:
        raise ValueError(f"MCP approval must be one of {', '.join(APPROVAL_MODES)}, got {approval!r}")
    owners: dict[str, list[str]] = {}
    for conn in connections:
        for t in conn.tools:
            owners.setdefault(identifier(t.name), []).append(conn.name)
    tools = []
    for conn in connections:
        for t in conn.tools:
            base = identifier(t.name)
            shared = owners[base]
            if len(shared) > 1:
                others = ", ".join(repr(s) for s in shared if s != conn.name) or "another server"
                tools.append(MCPTool(conn, t, identifier(f"{conn.name}_{t.name}"), timeout, approval,
                                     f"the server{'s' if len(shared) > 2 else ''} {others} also "
                                     f"{'have' if len(shared) > 2 else 'has'} a tool {t.name!r}"))
            else:
                tools.append(MCPTool(conn, t, base, timeout, approval))
    return tools


# -- the public API ----------------------------------------------------------------


class MCPClient:
    """Connections to one or more MCP servers, and their tools as ``Tool`` objects.

    ``with MCPClient(params) as tools: agent = CodeAgent(tools=tools, ...)``, or
    ``client.connect()`` / ``client.get_tools()`` / ``client.disconnect()``.
    """

    def __init__(self, server_parameters: Any, connect_timeout: float = 30.0, timeout: float = 60.0,
                 approval: str = "risky"):
        specs = server_specs(server_parameters)
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two MCP servers are named {dupes[0]!r}; give them different names "
                             "(pass a dict {name: params})")
        self.connections = [ServerConnection(s, connect_timeout) for s in specs]
        self.timeout = timeout
        self.approval = approval
        self._tools: list[MCPTool] | None = None

    def connect(self) -> list[MCPTool]:
        """Start every server (already running ones are kept; all at once) and return their tools."""
        connect_all(self.connections)
        self._tools = make_tools(self.connections, self.timeout, self.approval)
        return self._tools

    def get_tools(self) -> list[MCPTool]:
        return self._tools if self._tools is not None else self.connect()

    def disconnect(self) -> None:
        close_all(self.connections)
        self._tools = None

    def __enter__(self) -> list[MCPTool]:
        try:
            return self.connect()
        except BaseException:
            self.disconnect()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


@dataclass
class ToolCollection:
    """A group of tools (smolagents' shape: ``.tools``); agents take it as it is."""

    tools: list[Tool]

    @classmethod
    def from_mcp(cls, server_parameters: Any, trust_remote_code: bool = True, **options: Any) -> "_Collecting":
        """``with ToolCollection.from_mcp(params) as tc: CodeAgent(tools=[*tc.tools], ...)``."""
        return _Collecting(MCPClient(server_parameters, **options))

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools)


class _Collecting:
    """The context manager ``from_mcp`` returns: connected on enter, closed on exit."""

    def __init__(self, client: MCPClient):
        self.client = client

    def __enter__(self) -> ToolCollection:
        with_tools = self.client.__enter__()
        return ToolCollection(list(with_tools))

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()


class MCPServers:
    """Named servers a notebook (or any long-lived program) uses: configured up front, connected on first use.

    Connections are kept (one process per stdio server, not one per run) until ``close``.
    """

    def __init__(self, connect_timeout: float = 30.0):
        self.connect_timeout = connect_timeout
        self.specs: dict[str, ServerSpec] = {}
        self.connections: dict[str, ServerConnection] = {}

    def configure(self, servers: Mapping[str, Any]) -> None:
        """Set the servers from a ``mcpServers`` dict; a server whose parameters changed is reconnected."""
        specs = {name: server_spec(name, params) for name, params in dict(servers).items()}
        for name in list(self.specs):
            if name not in specs or specs[name] != self.specs[name]:
                self.close(name)
                self.specs.pop(name, None)
                self.connections.pop(name, None)
        self.specs.update(specs)

    def add(self, name: str, params: Any) -> ServerSpec:
        spec = server_spec(name, params)
        if self.specs.get(name) != spec:
            self.close(name)
            self.connections.pop(name, None)
        self.specs[name] = spec
        return spec

    def tools(self, names: list[str], timeout: float = 60.0, approval: str = "risky") -> list[MCPTool]:
        """The tools of these servers, connecting the ones not yet running (``MCPError`` if one fails)."""
        unknown = [n for n in names if n not in self.specs]
        if unknown:
            known = ", ".join(self.specs) or "none yet"
            raise MCPError(f"no MCP server named {', '.join(map(repr, unknown))} (configured: {known}); add it "
                           "with %agent mcp add NAME -- command args... or AgentMagics.mcp_servers")
        connections = []
        for name in names:
            conn = self.connections.get(name)
            if conn is None or conn.status in (ServerStatus.FAILED, ServerStatus.CLOSED):
                conn = self.connections[name] = ServerConnection(self.specs[name], self.connect_timeout)
            connections.append(conn)
        connect_all(connections)
        return make_tools(connections, timeout, approval)

    def close(self, name: str | None = None) -> list[str]:
        """Close one server or all; the names closed."""
        names = [name] if name is not None else list(self.connections)
        closing = {n: self.connections[n] for n in names if n in self.connections
                   and self.connections[n].status not in (ServerStatus.CLOSED, ServerStatus.FAILED)}
        close_all(list(closing.values()))
        return list(closing)

    def status(self) -> list[tuple[str, ServerSpec, str, list[str]]]:
        """Each server: (name, spec, status with its error if any, the names of its tools)."""
        rows = []
        for name, spec in self.specs.items():
            conn = self.connections.get(name)
            if conn is None:
                rows.append((name, spec, ServerStatus.NOT_STARTED.value, []))
                continue
            state = conn.status.value + (f": {conn.error}" if conn.error else "")
            if conn.status == ServerStatus.CLOSED:
                state += " (it starts again on next use)"
            rows.append((name, spec, state, [t.name for t in conn.tools]))
        return rows
