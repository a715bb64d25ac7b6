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

from .client import MCPClient, MCPServers, ToolCollection
from .connection import MCPError, MCPLoop, ServerConnection, ServerStatus, close_all, connect_all
from .params import TRANSPORTS, ServerSpec, identifier, server_spec, server_specs
from .tools import APPROVAL_MODES, MCPImage, MCPTool, convert_result, make_tools

__all__ = [
    "APPROVAL_MODES", "MCPClient", "MCPError", "MCPImage", "MCPLoop", "MCPServers", "MCPTool", "ServerConnection",
    "ServerSpec", "ServerStatus", "TRANSPORTS", "ToolCollection", "close_all", "connect_all", "convert_result",
    "identifier", "make_tools", "server_spec", "server_specs",
]
