"""The MCP client without a kernel: real MCP servers (tests/mcp_servers/demo_server.py) over stdio,
streamable HTTP and SSE, their tools in plain-Python agents."""

from __future__ import annotations

import pytest
from mcp_helpers import http_server, stdio

from smol_magic import CodeAgent, MCPClient, ScriptedModel, ToolCallingAgent, ToolCollection
from smol_magic.core.mcp_client import MCPError, MCPImage, MCPServers, server_specs


def py(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def two_servers():
    """Server 'a' with every tool, server 'b' with only the tool whose name 'a' has too."""
    with MCPClient({"a": stdio("alpha"), "b": stdio("beta", only_shared=True)}, timeout=3) as tools:
        yield {t.name: t for t in tools}


def test_tools_are_python_functions_with_the_servers_schemas(two_servers):
    add = two_servers["add_numbers"]
    assert add.signature() == "add_numbers(a: int, b: int) -> str"
    assert "Add two integers" in add.to_prompt() and "MCP tool 'add_numbers' of server 'a'" in add.to_prompt()
    assert add(a=2, b=3) == "the sum is 5"
    assert add(4, 5) == "the sum is 9"  # positionally too, in the schema's order
    with pytest.raises(TypeError, match="must be int"):
        add(a="2", b=3)  # checked before anything is sent


def test_structured_content_comes_back_as_a_dict(two_servers):
    stats = two_servers["word_stats"]
    assert stats.signature() == "word_stats(text: str) -> dict"
    assert stats(text="hello big world") == {"words": 3, "letters": 13, "server": "alpha"}


def test_a_name_two_servers_share_is_prefixed_on_both(two_servers):
    assert "shared_name" not in two_servers
    assert two_servers["a_shared_name"]() == "answered by alpha"
    assert two_servers["b_shared_name"]() == "answered by beta"
    assert "server 'b' also has a tool 'shared-name'" in two_servers["a_shared_name"].to_prompt()


def test_images_are_displayable(two_servers):
    image = two_servers["pixel"]()
    assert isinstance(image, MCPImage) and image.data.startswith(b"\x89PNG")
    assert "image/png" in image._repr_mimebundle_()


def test_an_error_result_and_a_timeout_are_one_line_errors_and_the_server_stays(two_servers):
    with pytest.raises(MCPError, match=r"^MCP tool 'fail' of server 'a' returned an error: .*boom$"):
        two_servers["fail"](message="boom")
    with pytest.raises(MCPError, match=r"^MCP tool 'slow' of server 'a' did not answer within 3 s$"):
        two_servers["slow"](seconds=10)
    assert two_servers["add_numbers"](a=1, b=1) == "the sum is 2"


def test_a_server_that_dies_mid_run_fails_its_calls_with_one_line():
    with MCPClient({"dying": stdio()}, timeout=10) as tools:
        by_name = {t.name: t for t in tools}
        with pytest.raises(MCPError, match="MCP server 'dying' stopped during the call to 'crash'"):
            by_name["crash"]()
        with pytest.raises(MCPError, match="MCP server 'dying' is not running"):
            by_name["add_numbers"](a=1, b=2)


def test_a_server_that_cannot_start_says_so_in_one_line():
    client = MCPClient({"ghost": {"command": "/nonexistent/mcp-server-binary"}}, connect_timeout=10)
    with pytest.raises(MCPError) as info:
        client.connect()
    assert str(info.value).startswith("MCP server 'ghost' (/nonexistent/mcp-server-binary) could not start: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_http_transports(transport):
    with http_server(transport, label=transport) as entry:
        with ToolCollection.from_mcp({"web": entry}) as collection:
            tools = {t.name: t for t in collection.tools}
            assert tools["word_stats"](text="one two") == {"words": 2, "letters": 6, "server": transport}
            assert tools["add_numbers"](a=20, b=22) == "the sum is 42"


def test_server_parameters_are_checked_with_clear_errors():
    with pytest.raises(ValueError, match="give either 'command'"):
        server_specs({"x": {"args": ["a"]}})
    with pytest.raises(ValueError, match="'transport' must be 'streamable-http' or 'sse'"):
        server_specs({"x": {"url": "http://h/mcp", "transport": "websocket"}})
    with pytest.raises(ValueError, match="unknown keys"):
        server_specs({"x": {"command": "npx", "argz": []}})
    pasted = server_specs({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-fs"]},
                                          "web": {"url": "https://example.org/mcp"}}})
    assert [(s.name, s.transport) for s in pasted] == [("fs", "stdio"), ("web", "streamable-http")]


def test_sdk_stdio_parameters_are_accepted():
    from mcp import StdioServerParameters

    entry = stdio()
    with MCPClient(StdioServerParameters(command=entry["command"], args=entry["args"])) as tools:
        assert {t.name for t in tools} >= {"add_numbers", "word_stats"}


def test_code_agent_calls_mcp_tools_and_risky_ones_are_refused_without_a_person(two_servers):
    model = ScriptedModel([
        py("s = word_stats(text='a b c')\nprint(add_numbers(a=s['words'], b=1))"),
        py("delete_record(record_id='r1')"),
        py("final_answer(s['words'])"),
    ])
    agent = CodeAgent(tools=list(two_servers.values()), model=model)
    assert agent.run("count") == 3
    assert "the sum is 4" in model.requests[1][-1]["content"]
    refused = model.requests[2][-1]["content"]  # headless: ask means refused, with the reason
    assert "calls 'delete_record' of the MCP server 'a'" in refused and "destructive" in refused, refused
    assert "a_shared_name() -> str" in agent.system_prompt()


def test_approval_never_runs_the_destructive_tool():
    with MCPClient({"a": stdio()}, approval="never") as tools:
        model = ScriptedModel([py("final_answer(delete_record(record_id='r7'))")])
        assert CodeAgent(tools=tools, model=model).run("delete") == "deleted r7 (deleted so far: r7)"


def test_tool_calling_agent_calls_mcp_tools(two_servers):
    model = ScriptedModel([
        'Action: {"name": "add_numbers", "arguments": {"a": 40, "b": 2}}',
        'Action: {"name": "final_answer", "arguments": {"answer": "done"}}',
    ])
    agent = ToolCallingAgent(tools=list(two_servers.values()), model=model)
    assert agent.run("add") == "done"
    assert "the sum is 42" in model.requests[1][-1]["content"]


def test_servers_registry_connects_lazily_and_closes():
    servers = MCPServers()
    servers.configure({"a": stdio()})
    assert servers.status()[0][2] == "not started"
    tools = servers.tools(["a"])
    assert servers.status()[0][2] == "connected" and "add_numbers" in servers.status()[0][3]
    assert servers.tools(["a"])[0].connection is tools[0].connection  # kept, not restarted
    with pytest.raises(MCPError, match="no MCP server named 'zz'"):
        servers.tools(["zz"])
    assert servers.close() == ["a"]
    with pytest.raises(MCPError, match="not running"):
        tools[0]()


def test_every_mode_asks_for_each_call_even_through_another_name():
    with MCPClient({"a": stdio()}, approval="every") as tools:
        model = ScriptedModel([py("f = add_numbers\nprint(f(a=1, b=2))"), py("final_answer('ok')")])
        agent = CodeAgent(tools=tools, model=model)
        assert agent.run("add") == "ok"
        refused = model.requests[1][-1]["content"]
        assert "not run" in refused and "calls 'add_numbers' of the MCP server 'a' (every MCP tool call" in refused
        assert "the sum is 3" not in refused


def test_a_tool_error_reaches_the_model_as_its_own_line_without_framework_frames(two_servers):
    model = ScriptedModel([py("fail(message='disk full')"), py("final_answer('ok')")])
    CodeAgent(tools=list(two_servers.values()), model=model).run("fail")
    told = model.requests[1][-1]["content"]
    assert "MCPError: MCP tool 'fail' of server 'a' returned an error: Error executing tool fail: disk full" in told
    assert "mcp_client.py" not in told and "tools.py" not in told, told


def test_schemas_become_python_hints_with_defaults(two_servers):
    pick = two_servers["pick"]
    assert pick.signature() == ("pick(colours: list[str], mode: Literal['first', 'last'] = 'first', "
                                "limit: int | None = None) -> str")
    assert pick(colours=["red", "blue"], mode="last") == "blue"
    assert pick(["red", "blue"]) == "red"
    assert pick.to_tool_schema()["function"]["parameters"]["required"] == ["colours"]
