"""``%agent serve``: the live kernel as an MCP server, driven by the ``mcp`` SDK's own client.

A real kernel (started as JupyterLab starts one, cells carrying their cellId), the real server
on 127.0.0.1, the SDK's streamable HTTP client with a bearer token; approval cards clicked with
the widget comm message a browser sends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import socket
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from kernel_helpers import (CellWatch, LiveCell, evaluate, ok, py, run, running_kernel, scripted, send_comm,
                            wait_until)

pytest_plugins = ["kernel_fixtures"]


class SessionWatch(CellWatch):
    """The serving trace's widgets: their messages arrive long after the %agent serve cell ended.

    It also plays the labextension: it answers the ``smol_magic`` comm's hello and keeps the cells inserted.
    """

    def __init__(self, kc):
        super().__init__("no cell")
        self.kc = kc
        self.inserted: list[dict[str, Any]] = []

    def belongs(self, msg: dict[str, Any]) -> bool:
        return msg["msg_type"].startswith("comm_") or super().belongs(msg)

    def feed(self, msg: dict[str, Any]) -> None:
        super().feed(msg)
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and content.get("target_name") == "smol_magic":
            send_comm(self.kc, content["comm_id"], {"type": "hello", "version": 1, "frontend": "test"})
        data = content.get("data") or {}
        if msg["msg_type"] == "comm_msg" and data.get("type") == "insert":
            self.inserted.append(data)
            send_comm(self.kc, content["comm_id"], {"type": "inserted", "step": data["step"],
                                                    "cell_id": f"inserted-{data['step']}"})


class Session:
    """The person at the notebook, watching the serving trace and clicking its approval cards."""

    wait_for_card = LiveCell.wait_for_card
    click = LiveCell.click
    _send = LiveCell._send

    def __init__(self, kc, url: str, token: str):
        self.kc, self.url, self.token = kc, url, token
        self.watch = SessionWatch(kc)
        self.cards_seen: set[str] = set()
        self.clicked: list[str] = []

    def wait_until(self, predicate, timeout: float = 20, what: str = "the condition"):
        return wait_until(self.kc, self.watch, predicate, timeout, what)

    def call(self, tool: str, arguments: dict[str, Any] | None = None, token: str | None = None) -> Any:
        """A call, while this thread watches the notebook (and answers the extension's comm)."""
        pending = self.call_later(tool, arguments or {}, token)
        self.wait_until(pending.done, timeout=30, what=f"the answer to {tool}")
        return pending.result()

    def call_later(self, tool: str, arguments: dict[str, Any], token: str | None = None) -> concurrent.futures.Future:
        """The call, from another thread: it waits for a click that this thread sends."""
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(asyncio.run, _call(self.url, self.token if token is None else token, tool, arguments))
        pool.shutdown(wait=False)
        return future


async def _call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            if tool == "list_tools":
                return await client.list_tools()
            return await client.call_tool(tool, arguments)


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def start_serving(kc, line: str = "%agent serve", cell_id: str | None = "cell-serve") -> Session:
    result = run(kc, line, cell_id=cell_id)
    assert result.status == "ok", result.text
    url = re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", result.text).group(1)
    token = re.search(r"token: (\S+)", result.text).group(1)
    return Session(kc, url, token)


@pytest.fixture(scope="module")
def session(kernel):
    """A notebook serving MCP from a cell that JupyterLab ran (a person can click its cards)."""
    kc = kernel[1]
    ok(kc, "import pandas as pd\n"
           "sales = pd.DataFrame({'region': ['north', 'south', 'east'], 'revenue': [120, 340, 560]})\n"
           "api_key = 'sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0'\n"
           "budget = [100, 200]")
    yield start_serving(kc)
    run(kc, "%agent serve stop")


def test_lists_its_tools_and_the_variables_as_the_agent_sees_them(session):
    tools = session.call("list_tools")
    assert {t.name for t in tools.tools} == {"list_variables", "describe_variable", "run_code", "run_agent", "get_run",
                                           "export_run"}
    listed = text(session.call("list_variables"))
    assert "sales: DataFrame 3 x 2" in listed and "budget" in listed
    assert "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0" not in listed  # a secret is never sent out
    described = text(session.call("describe_variable", {"name": "sales"}))
    assert "region" in described and "revenue" in described
    assert "sk-live-9f8e7d6c" not in text(session.call("describe_variable", {"name": "api_key"}))
    assert "no variable 'nope'" in text(session.call("describe_variable", {"name": "nope"}))


def test_run_code_allowed_runs_in_the_live_namespace_and_shows_in_status(session):
    result = session.call("run_code", {"code": "top = sales.loc[sales.revenue.idxmax(), 'region']\nprint(top)"})
    assert not result.is_error, text(result)
    assert "east" in text(result) and "created top" in text(result)
    assert evaluate(session.kc, "top") == "east"
    cell = session.watch.inserted[-1]  # the action is a cell below the serving cell, as an agent's step is
    assert cell["agent_cell_id"] == "cell-serve" and cell["source"].startswith("top = sales.loc")
    assert "east" in str(cell["outputs"])
    status = run(session.kc, "%agent status").text
    assert f"serving: MCP at {session.url}" in status and session.token not in status


def test_a_plot_comes_back_as_image_content(session):
    result = session.call("run_code", {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"})
    assert not result.is_error, text(result)
    images = [c for c in result.content if c.type == "image"]
    assert images and images[0].mime_type == "image/png" and len(images[0].data) > 1000


def test_run_code_asked_waits_for_the_click_and_runs_when_approved(session):
    pending = session.call_later("run_code", {"code": "budget.append(300)"})  # the user's data: asked
    run_button = session.wait_for_card("Run")
    assert not pending.done()  # nothing runs before the click
    assert evaluate(session.kc, "budget") == [100, 200]
    session.click(run_button)
    result = pending.result(timeout=30)
    assert not result.is_error, text(result)
    assert evaluate(session.kc, "budget") == [100, 200, 300]


def test_run_code_asked_and_skipped_does_not_run(session):
    pending = session.call_later("run_code", {"code": "sales = sales.head(1)"})
    session.click(session.wait_for_card("Skip"))
    result = pending.result(timeout=30)
    assert result.is_error and "skipped" in text(result)
    assert evaluate(session.kc, "len(sales)") == 3


def test_denied_code_never_runs(session):
    result = session.call("run_code", {"code": "marker = 1\nimport os\nos.getcwd()"})
    assert result.is_error and "forbidden" in text(result)
    assert evaluate(session.kc, "'marker' in globals()") is False


def test_a_missing_or_wrong_token_gets_401_and_runs_nothing(session):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "run_code", "arguments": {"code": "intruder = 1"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for extra in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": session.token}):
        reply = httpx2.post(session.url, json=body, headers={**headers, **extra})
        assert reply.status_code == 401, reply.text
    with pytest.raises(Exception):
        session.call("run_code", {"code": "intruder = 1"}, token="not-the-token-at-all")
    assert evaluate(session.kc, "'intruder' in globals()") is False


def test_a_headless_notebook_refuses_what_needs_a_person_protects_and_undoes():
    """No frontend sent the serving cell (nbclient, papermill): asked means refused, with the reason."""
    with running_kernel() as (km, kc):
        ok(kc, "budget = [1, 2]")
        served = start_serving(kc, cell_id=None)
        no_model = served.call("run_agent", {"task": "Sum budget."})
        assert no_model.is_error and "no model configured" in text(no_model)
        refused = served.call("run_code", {"code": "budget.append(3)"})
        assert refused.is_error and "no one can be asked" in text(refused)
        assert evaluate(kc, "budget") == [1, 2]
        # A name the outside agent made is its own to change ... unless the notebook protects it.
        assert not served.call("run_code", {"code": "scratch = 1"}).is_error
        assert not served.call("run_code", {"code": "scratch = 2"}).is_error
        ok(kc, "%config AgentMagics.protect = ['scratch']")
        protected = served.call("run_code", {"code": "scratch = 3"})
        assert protected.is_error and "scratch" in text(protected), text(protected)
        assert evaluate(kc, "scratch") == 2
        # ... or the notebook's agent protects it (%%agent --protect), as from that agent itself.
        assert not served.call("run_code", {"code": "kept = 1"}).is_error
        ok(kc, scripted("m", py("final_answer('ok')")))
        ok(kc, "%%agent -m m --protect kept\nSay ok.")
        guarded = served.call("run_code", {"code": "kept = 2"})
        assert guarded.is_error and "kept" in text(guarded), text(guarded)
        assert evaluate(kc, "kept") == 1
        # %agent undo puts back what the outside agent changed.
        undone = run(kc, "%agent undo --run 1")  # run 1: the serving session; run 2: the %%agent cell
        assert "removed: " in undone.text and "scratch" in undone.text, undone.text
        assert evaluate(kc, "'scratch' in globals()") is False
        stopped = run(kc, "%agent serve stop")
        assert "stopped serving" in stopped.text
        assert "serving:" not in run(kc, "%agent status").text
        with pytest.raises(Exception):
            served.call("list_tools")


def test_runs_exports_resources_and_the_prompt(session, tmp_path):
    shown = text(session.call("get_run", {"n": 0}))
    assert "top = sales.loc" in shown and "east" in shown  # the outside agent's action is a step of the run
    refused = session.call("export_run", {"n": 0, "path": "/tmp/elsewhere.ipynb"})
    assert refused.is_error and "inside the notebook's folder" in text(refused)
    assert session.call("get_run", {"n": 99}).is_error
    ok(session.kc, f"import os as _os\n_os.chdir({str(tmp_path)!r})")  # the notebook's folder
    exported = session.call("export_run", {"n": 0, "path": "served.ipynb"})
    assert not exported.is_error, text(exported)
    assert "top = sales.loc" in (tmp_path / "served.ipynb").read_text()
    again = session.call("export_run", {"n": 0, "path": "served.ipynb"})
    assert again.is_error and "exists already" in text(again)

    async def read() -> tuple[str, str, str]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {session.token}"}) as http:
            async with Client(streamable_http_client(session.url, http_client=http)) as client:
                variables = await client.read_resource("notebook://variables")
                runs = await client.read_resource("notebook://runs")
                prompt = await client.get_prompt("analyse_dataframe", {"name": "sales"})
                return variables.contents[0].text, runs.contents[0].text, prompt.messages[0].content.text

    variables, runs, prompt = asyncio.run(read())
    assert "sales: DataFrame 3 x 2" in variables
    assert "mcp client" in runs
    assert "describe_variable(name='sales')" in prompt


def test_run_agent_runs_the_notebooks_agent_from_outside(session):
    ok(session.kc, scripted("helper", py("answer = int(sales.revenue.sum())\nfinal_answer(answer)")) +
       "\n%config AgentMagics.model = 'helper'")
    pending = session.call_later("run_agent", {"task": "What is the total revenue?"})
    session.wait_until(pending.done, timeout=30, what="the run's answer")  # reading what the notebook shows
    result = pending.result()
    assert not result.is_error, text(result)
    assert "done after 1 steps" in text(result) and "1020" in text(result)
    shown = session.watch.widget_text(include_closed=True)
    assert "What is the total revenue?" in shown and "answer = int(sales.revenue.sum())" in shown
    assert evaluate(session.kc, "answer") == 1020


def test_an_unanswered_card_is_refused_after_the_approval_timeout(own_kernel):
    km, kc = own_kernel
    ok(kc, "ledger = {'a': 1}")
    short = run(kc, "%agent serve --token abc", cell_id="cell-0")
    assert short.status == "error" and "at least 16 characters" in short.evalue
    served = start_serving(kc, "%agent serve --token my-own-token-0123456789")
    assert served.token == "my-own-token-0123456789"
    assert "ledger" in text(served.call("list_variables"))
    ok(kc, "%agent serve stop")
    served = start_serving(kc, "%agent serve --approval-timeout 1")
    again = run(kc, "%agent serve", cell_id="cell-2")
    assert again.status == "error" and "already serving" in again.evalue
    ok(kc, "%agent serve stop")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = run(kc, f"%agent serve --port {holder.getsockname()[1]}", cell_id="cell-4")
    assert busy.status == "error" and "cannot listen there" in busy.evalue, busy.text
    served = start_serving(kc, "%agent serve --approval-timeout 1")
    result = served.call("run_code", {"code": "ledger['b'] = 2"})
    assert result.is_error and "no one at the notebook answered its approval card within 1 s" in text(result)
    assert evaluate(kc, "ledger") == {"a": 1}
    # Stopping while a card waits: the caller hears so at once.
    ok(kc, "%agent serve stop")
    served = start_serving(kc, "%agent serve")
    pending = served.call_later("run_code", {"code": "ledger['c'] = 3"})
    served.wait_for_card("Run")
    ok(kc, "%agent serve stop")
    result = pending.result(timeout=15)
    assert result.is_error and "stopped serving" in text(result)
    assert evaluate(kc, "ledger") == {"a": 1}
