"""``python -m smol_magic mcp --connection-file``: the kernel's MCP server for stdio-only clients, driven by
the ``mcp`` SDK's stdio client against a real kernel."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters

from kernel_helpers import evaluate, ok, run, running_kernel


async def _session(connection_file: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "smol_magic", "mcp", "--connection-file", connection_file])
    results = []
    async with Client(params) as client:
        for tool, arguments in calls:
            results.append(await client.list_tools() if tool == "list_tools" else
                           await client.call_tool(tool, arguments))
    return results


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_the_stdio_bridge_relays_to_the_kernels_server_under_its_guard():
    with running_kernel() as (km, kc):
        ok(kc, "prices = [3, 1, 2]")
        tools, listed, allowed, asked, denied = asyncio.run(_session(km.connection_file, [
            ("list_tools", {}),
            ("list_variables", {}),
            ("run_code", {"code": "cheapest = min(prices)\nprint(cheapest)"}),
            ("run_code", {"code": "prices.sort()"}),  # the user's data, and no one to click (headless)
            ("run_code", {"code": "import subprocess"}),
        ]))
        assert {"list_variables", "run_code"} <= {t.name for t in tools.tools}
        assert "prices: list" in text(listed)
        assert not allowed.is_error and "1" in text(allowed)
        assert evaluate(kc, "cheapest") == 1
        assert asked.is_error and "no one can be asked" in text(asked)
        assert evaluate(kc, "prices") == [3, 1, 2]
        assert denied.is_error and "forbidden" in text(denied)
        status = run(kc, "%agent status").text
        assert "serving: MCP at http://127.0.0.1:" in status


def test_the_bridge_uses_the_server_the_notebook_started():
    with running_kernel() as (km, kc):
        served = run(kc, "%agent serve", cell_id="cell-serve")
        url = served.text.split(" at ", 1)[1].split()[0]
        ok(kc, "n = 5")
        (result,) = asyncio.run(_session(km.connection_file, [("run_code", {"code": "m = n * 2"})]))
        assert not result.is_error, text(result)
        assert evaluate(kc, "m") == 10
        assert f"serving: MCP at {url}" in run(kc, "%agent status").text
        assert "2 steps" not in run(kc, "%agent status").text
        assert "1 steps" in run(kc, "%agent status").text  # the outside action is a step of the notebook's session
    with pytest.raises(httpx2.ConnectError):  # the kernel has shut down: so has its server
        httpx2.post(url, json={})
