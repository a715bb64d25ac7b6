"""The MCP client in a real kernel: ``%%agent --mcp NAME`` runs whose (scripted) model calls real MCP
servers' tools in its code, ``%agent mcp add / list / close``, and approval of a destructive tool by a click."""

from __future__ import annotations

import json

import pytest
from kernel_helpers import LiveCell, evaluate, ok, py, run, scripted
from mcp_helpers import http_server, stdio

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc, own_kernel


def configure(kc, servers: dict, **settings) -> None:
    ok(kc, f"%config AgentMagics.mcp_servers = {servers!r}")
    for key, value in settings.items():
        ok(kc, f"%config AgentMagics.{key} = {value!r}")


def told(kc, model: str, request: int) -> str:
    """What the model was told last before its reply number ``request`` (0-based)."""
    return evaluate(kc, f"{model}.requests[{request}][-1]['content']")


@pytest.fixture(autouse=True)
def closed_after(kc):
    yield
    run(kc, "%agent mcp close")


def test_plain_and_structured_tools_in_a_run(kc):
    configure(kc, {"demo": stdio("kernel")})
    ok(kc, scripted("m", py("print(add_numbers(a=2, b=3))\nstats = word_stats(text='one two three')"),
                    py("final_answer(stats)")))
    result = run(kc, "%%agent -m m --mcp demo --reset -o res\ncount the words", timeout=60)
    assert result.status == "ok", result.text
    assert "the sum is 5" in told(kc, "m", 1)
    assert evaluate(kc, "res") == {"words": 3, "letters": 11, "server": "kernel"}
    system = evaluate(kc, "m.requests[0][0]['content']")
    assert "def add_numbers(a: int, b: int) -> str:" in system and "MCP tool 'add_numbers' of server 'demo'" in system
    # the connection outlives the cell: the next run uses the same server process
    listed = run(kc, "%agent mcp list").text
    assert "demo: connected" in listed and "add_numbers" in listed, listed
    # and the tools were this cell's only: they are not left in the namespace
    assert evaluate(kc, "'add_numbers' in globals()") is False


def test_a_server_that_dies_mid_run_is_an_observation_and_the_kernel_lives(kc):
    configure(kc, {"fragile": stdio()})
    ok(kc, scripted("m", py("crash()"), py("add_numbers(a=1, b=1)"), py("final_answer('gave up')")))
    result = run(kc, "%%agent -m m --mcp fragile --reset -o res\ntry the server", timeout=60)
    assert result.status == "ok", result.text
    first, second = told(kc, "m", 1), told(kc, "m", 2)
    assert "MCP server 'fragile' stopped during the call to 'crash'" in first, first
    assert first.count('File "') == 1 and 'File "<cell>", line 1' in first, first  # the model's line, no internals
    assert "MCP server 'fragile' is not running" in second, second
    assert evaluate(kc, "res") == "gave up"
    assert "fragile: failed" in run(kc, "%agent mcp list").text
    # a later --mcp cell starts it again
    ok(kc, scripted("m2", py("final_answer(add_numbers(a=20, b=22))")))
    assert run(kc, "%%agent -m m2 --mcp fragile --reset -o res\nadd", timeout=60).status == "ok"
    assert evaluate(kc, "res") == "the sum is 42"


def test_a_slow_tool_hits_the_mcp_timeout(kc):
    configure(kc, {"demo": stdio()}, mcp_timeout=1.0)
    try:
        ok(kc, scripted("m", py("slow(seconds=30)"), py("final_answer(add_numbers(a=1, b=2))")))
        result = run(kc, "%%agent -m m --mcp demo --reset -o res\nbe slow", timeout=60)
        assert result.status == "ok", result.text
        assert "MCP tool 'slow' of server 'demo' did not answer within 1 s" in told(kc, "m", 1)
        assert evaluate(kc, "res") == "the sum is 3"  # the server still answers after the timeout
    finally:
        ok(kc, "%config AgentMagics.mcp_timeout = 60.0")


def test_two_servers_with_the_same_tool_name(kc):
    configure(kc, {"one": stdio("first"), "two": stdio("second", only_shared=True)})
    ok(kc, scripted("m", py("final_answer([one_shared_name(), two_shared_name()])")))
    result = run(kc, "%%agent -m m --mcp one,two --reset -o res\nask both", timeout=60)
    assert result.status == "ok", result.text
    assert evaluate(kc, "res") == ["answered by first", "answered by second"]
    system = evaluate(kc, "m.requests[0][0]['content']")
    assert "named one_shared_name because the server 'two' also has a tool 'shared-name'" in system


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_http_servers_added_by_magic(kc, transport):
    with http_server(transport, label="over-http") as entry:
        ok(kc, "%config AgentMagics.mcp_servers = {}")
        flag = " --transport sse" if transport == "sse" else ""
        added = run(kc, f"%agent mcp add web {entry['url']}{flag}").text
        assert "MCP server 'web' added" in added, added
        assert "web: not started" in run(kc, "%agent mcp list").text
        ok(kc, scripted("m", py("final_answer(word_stats(text='a b'))")))
        result = run(kc, "%%agent -m m --mcp web --reset -o res\nstats", timeout=60)
        assert result.status == "ok", result.text
        assert evaluate(kc, "res") == {"words": 2, "letters": 2, "server": "over-http"}
        assert "closed: web" in run(kc, "%agent mcp close").text
        assert "web: closed" in run(kc, "%agent mcp list").text


def test_bad_settings_and_names_get_clear_errors(kc):
    ok(kc, "%config AgentMagics.mcp_servers = {}")
    bad = run(kc, "%config AgentMagics.mcp_servers = {'x': {'url': 'ftp://nowhere'}}")  # %config logs it
    assert "MCP server 'x': 'url' must be an http:// or https:// URL, got 'ftp://nowhere'" in bad.text, bad.text
    assert evaluate(kc, "get_ipython().magics_manager.registry['AgentMagics'].mcp_servers") == {}
    ok(kc, scripted("m", py("final_answer(1)")))
    missing = run(kc, "%%agent -m m --mcp nosuch --reset\nx")
    assert missing.status == "error" and "no MCP server named 'nosuch'" in missing.evalue, missing.evalue
    broken = run(kc, "%agent mcp add ghost -- /nonexistent/server")
    assert broken.status == "ok"
    failed = run(kc, "%%agent -m m --mcp ghost --reset\nx", timeout=60)
    assert failed.status == "error" and "MCP server 'ghost' (/nonexistent/server) could not start" in failed.evalue
    usage = run(kc, "%agent mcp add onlyname")
    assert usage.status == "error" and "give a URL, or -- and the command" in usage.evalue


def test_a_destructive_tool_waits_for_a_click_that_shows_server_tool_and_arguments(kc):
    configure(kc, {"records": stdio()}, mcp_approval="risky")
    ok(kc, scripted("m", py("print(add_numbers(a=1, b=1))"), py("print(delete_record(record_id='r-17'))"),
                    py("final_answer('done')")))
    live = LiveCell(kc, "%%agent -m m --mcp records --reset --approve risky -o res\ndelete r-17")
    run_button = live.wait_for_card(timeout=60)  # the read-only call ran without a card; this one waits
    shown = live.watch.widget_text()
    assert "delete_record(record_id='r-17')" in shown, shown
    assert "calls 'delete_record' of the MCP server 'records'" in shown and "destructive" in shown, shown
    live.click(run_button)
    result = live.finish(timeout=60)
    assert result.status == "ok", result.text
    assert "the sum is 2" in told(kc, "m", 1)
    assert "deleted r-17" in told(kc, "m", 2)
    assert evaluate(kc, "res") == "done"


def test_a_tool_calling_agent_uses_mcp_tools_and_an_image_shows_in_the_trace(kc):
    configure(kc, {"demo": stdio()})
    ok(kc, scripted("m", 'Action: {"name": "add_numbers", "arguments": {"a": 40, "b": 2}}',
                    'Action: {"name": "final_answer", "arguments": {"answer": "ok"}}'))
    result = run(kc, "%%agent -m m --agent tools --mcp demo --reset -o res\nadd", timeout=60)
    assert result.status == "ok", result.text
    assert "the sum is 42" in told(kc, "m", 1)
    ok(kc, scripted("m2", py("img = pixel()\ndisplay(img)"), py("final_answer('shown')")))
    result = run(kc, "%%agent -m m2 --agent code --mcp demo --reset\nshow the image", timeout=60)
    assert result.status == "ok", result.text
    assert "image/png" in json.dumps(result.outputs), result.outputs  # the trace carries the image itself


def test_the_servers_end_with_the_kernel(own_kernel):
    import os
    import time

    km, kc = own_kernel
    configure(kc, {"demo": stdio()})
    ok(kc, scripted("m", py("final_answer(server_pid())")))
    assert run(kc, "%%agent -m m --mcp demo --reset -o pid\nwhich pid", timeout=60).status == "ok"
    pid = evaluate(kc, "pid")
    os.kill(pid, 0)  # running, as long as the kernel is
    km.shutdown_kernel(now=False)
    deadline = time.monotonic() + 20
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the MCP server outlived the kernel"
        time.sleep(0.05)


def test_interrupt_during_a_tool_call_stops_the_run_and_the_server_stays_usable(own_kernel, tmp_path):
    from kernel_helpers import collect, interrupt, send

    km, kc = own_kernel
    configure(kc, {"demo": stdio()})
    marker = tmp_path / "started"
    ok(kc, f"def started():\n    open({str(marker)!r}, 'w').close()")
    ok(kc, scripted("m", py("started()\nslow(seconds=60)")))
    msg_id = send(kc, "%%agent -m m --mcp demo --reset\nwait")
    deadline = __import__("time").monotonic() + 60
    while not marker.exists():
        assert __import__("time").monotonic() < deadline, "the action never started"
        __import__("time").sleep(0.02)
    interrupt(km, lambda: collect(kc, msg_id, timeout=30), within=5)
    ok(kc, scripted("m2", py("final_answer(add_numbers(a=2, b=2))")))
    assert run(kc, "%%agent -m m2 --mcp demo --reset -o res\nadd", timeout=60).status == "ok"
    assert evaluate(kc, "res") == "the sum is 4"
