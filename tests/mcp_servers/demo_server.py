"""An MCP server for the tests (the SDK's MCPServer, formerly FastMCP): run as ``python demo_server.py [stdio|http PORT|sse PORT] [NAME]``.

Tools: a plain one, a structured result, a slow one, one that kills the server, a
destructive one, an image, an error; ``shared-name`` exists on every server (a name clash),
and is the only tool when ``DEMO_TOOLS=shared``.
"""

import base64
import os
import sys

from typing import Literal, TypedDict

import anyio

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, ToolAnnotations

TRANSPORT = sys.argv[1] if len(sys.argv) > 1 else "stdio"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 and TRANSPORT != "stdio" else 0
LABEL = os.environ.get("DEMO_LABEL", "demo")

mcp = MCPServer(LABEL)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# one transparent PNG pixel
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
DELETED: list[str] = []


class Stats(TypedDict):
    words: int
    letters: int
    server: str


@mcp.tool(name="shared-name", annotations=READ_ONLY)
def shared_name() -> str:
    """Say which server answered."""
    return f"answered by {LABEL}"


if os.environ.get("DEMO_TOOLS") == "shared":  # a second server: only the tool whose name clashes
    mcp.run("stdio")
    sys.exit(0)


@mcp.tool(annotations=READ_ONLY)
def add_numbers(a: int, b: int) -> str:
    """Add two integers and say the sum."""
    return f"the sum is {a + b}"


@mcp.tool(annotations=READ_ONLY)
def word_stats(text: str) -> Stats:
    """Count the words and letters of a text."""
    return {"words": len(text.split()), "letters": sum(c.isalpha() for c in text), "server": LABEL}



@mcp.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep, then answer (without blocking the server's other requests)."""
    await anyio.sleep(seconds)
    return "done sleeping"


@mcp.tool(annotations=READ_ONLY)
def pick(colours: list[str], mode: Literal["first", "last"] = "first", limit: int | None = None) -> str:
    """Pick one colour of a list.

    Args:
        colours: the colours to pick from
        mode: which end to take
        limit: ignored
    """
    return colours[0] if mode == "first" else colours[-1]


@mcp.tool(annotations=READ_ONLY)
def server_pid() -> int:
    """This server's process id."""
    return os.getpid()


@mcp.tool(annotations=READ_ONLY)
def crash() -> str:
    """Kill this server's process."""
    os._exit(3)


@mcp.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
def delete_record(record_id: str) -> str:
    """Delete a record for good."""
    DELETED.append(record_id)
    return f"deleted {record_id} (deleted so far: {', '.join(DELETED)})"


@mcp.tool(annotations=READ_ONLY)
def pixel() -> ImageContent:
    """A one-pixel image."""
    return ImageContent(type="image", data=base64.b64encode(PIXEL).decode(), mime_type="image/png")


@mcp.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ToolError(message)


if __name__ == "__main__":
    if TRANSPORT == "stdio":
        mcp.run("stdio")
    elif TRANSPORT == "http":
        mcp.run("streamable-http", host="127.0.0.1", port=PORT)
    else:
        mcp.run("sse", host="127.0.0.1", port=PORT)
