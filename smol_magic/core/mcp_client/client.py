"""The public API: ``MCPClient``, ``ToolCollection.from_mcp`` and a notebook's ``MCPServers``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..tools import Tool
from .connection import MCPError, ServerConnection, ServerStatus, close_all, connect_all
from .params import ServerSpec, server_spec, server_specs
from .tools import MCPTool, make_tools


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
