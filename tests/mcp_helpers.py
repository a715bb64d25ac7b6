"""MCP servers for the tests: tests/mcp_servers/demo_server.py over stdio, streamable HTTP or SSE."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

DEMO = str(Path(__file__).parent / "mcp_servers" / "demo_server.py")


def stdio(label: str = "demo", only_shared: bool = False) -> dict:
    """The ``mcpServers`` entry that starts the demo server as a subprocess."""
    env = {"DEMO_LABEL": label}
    if only_shared:
        env["DEMO_TOOLS"] = "shared"
    return {"command": sys.executable, "args": [DEMO], "env": env}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(transport: str, label: str = "web") -> Iterator[dict]:
    """The demo server over HTTP ("http": streamable HTTP, "sse") on a free port; yields its entry."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, DEMO, transport, str(port)], env={**os.environ, "DEMO_LABEL": label},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # ready when it accepts connections
            if proc.poll() is not None:
                raise RuntimeError(f"the {transport} server exited: {proc.stderr.read().decode()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {transport} server did not listen on {port}")
            time.sleep(0.05)
        path = "/mcp" if transport == "http" else "/sse"
        yield {"url": f"http://127.0.0.1:{port}{path}",
               "transport": "streamable-http" if transport == "http" else "sse"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
