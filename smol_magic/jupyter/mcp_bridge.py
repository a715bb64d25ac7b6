"""``python -m smol_magic mcp --connection-file KERNEL.json``: a running kernel's MCP server, over stdio.

For MCP clients that only start stdio servers (Claude Desktop, many IDEs): the bridge asks the kernel
(through jupyter_client, as a frontend does) for its ``%agent serve`` endpoint, starting one if the
notebook has none, then relays each JSON-RPC message from stdin to it over HTTP with the token, and
each answer back to stdout. The kernel's server does everything else: the guard, the approval cards
in the notebook, undo.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import sys
import threading
from typing import Any, TextIO

EXPRESSION = "__import__('smol_magic.jupyter.mcp_server', fromlist=['_']).endpoint()"
VERSION_META = "io.modelcontextprotocol/protocolVersion"


def kernel_endpoint(connection_file: str, timeout: float = 30.0) -> dict[str, str]:
    """Ask the kernel for its MCP endpoint (a silent execution: nothing in the notebook's history)."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        msg_id = client.execute("", silent=True, store_history=False, user_expressions={"e": EXPRESSION})
        while True:
            reply = client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()
    value = reply["content"].get("user_expressions", {}).get("e", {})
    if value.get("status") != "ok":
        raise RuntimeError(f"the kernel could not start its MCP server: {value.get('ename')}: {value.get('evalue')} "
                           "(is smol-magic installed in the kernel's environment?)")
    return ast.literal_eval(value["data"]["text/plain"])


class Relay:
    """Stdin lines to HTTP POSTs and their JSON answers to stdout; several requests may wait at once."""

    def __init__(self, url: str, token: str, out: TextIO):
        import httpx2

        self.url, self.out = url, out
        self.http = httpx2.Client(timeout=httpx2.Timeout(30.0, read=None),
                                  headers={"Authorization": f"Bearer {token}",
                                           "Accept": "application/json, text/event-stream"})
        self.version: str | None = None
        self.lock = threading.Lock()

    def handle(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return self.write({"jsonrpc": "2.0", "id": None,
                               "error": {"code": -32700, "message": "parse error: not JSON"}})
        meta = ((message.get("params") or {}).get("_meta") or {}) if isinstance(message, dict) else {}
        version = meta.get(VERSION_META) or self.version
        headers = {"MCP-Protocol-Version": version} if version else {}
        try:
            response = self.http.post(self.url, content=line.encode(), headers={
                "Content-Type": "application/json", **headers})
        except Exception as exc:  # noqa: BLE001 - the kernel died, or stopped serving: the client is told
            return self.fail(message, f"the notebook's MCP server cannot be reached ({type(exc).__name__}); "
                                      "is the kernel running and still serving?")
        if response.status_code == 202 or not response.content:
            return None
        if response.status_code >= 400 and "json" not in response.headers.get("content-type", ""):
            return self.fail(message, f"the notebook's MCP server answered {response.status_code}: "
                                      f"{response.text[:200]}")
        for answer in _answers(response.text, response.headers.get("content-type", "")):
            result = answer.get("result") if isinstance(answer, dict) else None
            if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                self.version = result["protocolVersion"]
            self.write(answer)

    def fail(self, message: Any, why: str) -> None:
        if isinstance(message, dict) and "id" in message:
            self.write({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32000, "message": why}})

    def write(self, answer: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(answer) + "\n")
            self.out.flush()


def _answers(body: str, content_type: str) -> list[Any]:
    """The JSON-RPC messages of an answer: a JSON body, or the data lines of an event stream."""
    if "text/event-stream" in content_type:
        return [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]
    return [json.loads(body)]


def serve_stdio(connection_file: str) -> int:
    try:
        found = kernel_endpoint(connection_file)
    except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
        print(f"smol-magic mcp: {exc}", file=sys.stderr)
        return 1
    print(f"smol-magic mcp: relaying stdio to {found['url']}", file=sys.stderr)
    relay = Relay(found["url"], found["token"], sys.stdout)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for line in sys.stdin:
            if line.strip():
                pool.submit(relay.handle, line.strip())
    return 0
