"""ToolCallingAgent: native tool calls over real HTTP (litellm and huggingface_hub), and the text fallback.

The model clients talk to the local OpenAI-compatible server (tests/openai_server.py), which
answers with ``tool_calls`` (as JSON, or streamed in pieces as OpenAI does). Nothing of litellm
or huggingface_hub is mocked: the requests the server records are the ones a real provider gets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import nbclient
import nbformat
import pytest
from openai_server import OpenAIServer
from pydantic import BaseModel as PydanticModel

from smol_magic import (
    OpenAIServerModel,
    ActionStep, AgentMemory, ChatMessageToolCall, InferenceClientModel, LiteLLMModel, ModelResponse, ScriptedModel,
    ToolCallingAgent, final_answer, tool,
)
from smol_magic.core.approval import Decision
from smol_magic.core.models import BaseModel
from smol_magic.core.tool_calling import parse_text_tool_calls
from smol_magic.ui.text import TextRenderer

calls_made: list[tuple[str, Any]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    calls_made.append(("add", (a, b)))
    return a + b


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: the dividend
        b: the divisor
    """
    return a / b


@tool
def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: what to shout
    """
    calls_made.append(("shout", text))
    return text.upper()


TOOLS = [add, divide, shout, final_answer]


def litellm_model(srv: OpenAIServer) -> BaseModel:
    return LiteLLMModel(model_id="openai/x", api_base=srv.base_url, api_key="k", retry_base_delay=0.001)


def hf_model(srv: OpenAIServer) -> BaseModel:
    return InferenceClientModel("x", base_url=srv.base_url, token="k", retry_base_delay=0.001)


def openai_model(srv: OpenAIServer) -> BaseModel:
    return OpenAIServerModel("x", api_base=srv.base_url, api_key="k", retry_base_delay=0.001)


MakeModel = Callable[[OpenAIServer], BaseModel]


@pytest.fixture(params=[litellm_model, hf_model, openai_model], ids=["litellm", "hf", "openai"])
def make(request: pytest.FixtureRequest) -> MakeModel:
    return request.param


@pytest.fixture
def srv():
    calls_made.clear()
    with OpenAIServer() as server:
        yield server


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def assert_valid_conversation(messages: list[dict[str, Any]]) -> None:
    """What an OpenAI-compatible server insists on: every tool call answered, in order, by its id."""
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            answers = messages[i + 1:i + 1 + len(ids)]
            assert [m["role"] for m in answers] == ["tool"] * len(ids), messages
            assert [m["tool_call_id"] for m in answers] == ids, messages
            for call in message["tool_calls"]:
                json.loads(call["function"]["arguments"])
                assert call["type"] == "function"


# -- native tool calls over HTTP --------------------------------------------------------


def test_one_call_then_final_answer_returns_the_answer_object(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("add", {"a": 1, "b": 2}), text="I will add them.")
    srv.push_tool_calls(("final_answer", {"answer": {"sum": 3}}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    assert agent.run("What is 1 + 2?") == {"sum": 3}  # the object, not its text

    first, second = srv.bodies
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"add", "divide", "shout", "final_answer"}
    assert offered["add"]["parameters"]["properties"]["a"] == {"type": "integer", "description": "the first number"}
    assert offered["add"]["parameters"]["required"] == ["a", "b"]
    assert first["stream"] is True  # the agent streams: the call arrived in pieces and was put together
    assert calls_made == [("add", (1, 2))]
    assert_valid_conversation(second["messages"])
    assert tool_messages(second) == [{"role": "tool", "tool_call_id": srv_id(second, 0), "content": "3"}]
    step = agent.memory.action_steps[0]
    assert step.code == "result = add(a=1, b=2)"
    assert [(c.name, json.loads(c.arguments), c.observation) for c in step.tool_calls] == [("add", {"a": 1, "b": 2}, "3")]
    assert agent.executor.namespace["result"] == 3  # the call ran on the agent's namespace


def srv_id(body: dict[str, Any], n: int) -> str:
    """The id of the n-th tool call the model made, as the conversation holds it."""
    calls = [c for m in body["messages"] if m.get("tool_calls") for c in m["tool_calls"]]
    return calls[n]["id"]


def test_several_calls_in_one_reply_run_in_order_each_answered(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("shout", {"text": "first"}), ("add", {"a": 2, "b": 3}), ("shout", {"text": "third"}))
    srv.push_tool_calls(("final_answer", {"answer": "done"}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    assert agent.run("Do three things") == "done"

    assert calls_made == [("shout", "first"), ("add", (2, 3)), ("shout", "third")]
    body = srv.bodies[1]
    assert_valid_conversation(body["messages"])
    assert [m["content"] for m in tool_messages(body)] == ["FIRST", "5", "THIRD"]
    step = agent.memory.action_steps[0]
    assert step.code.splitlines() == ["result = shout(text='first')", "result = add(a=2, b=3)",
                                      "result = shout(text='third')"]


def test_an_unknown_tool_is_an_observation_and_the_run_goes_on(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("search_web", {"q": "x"}))
    srv.push_tool_calls(("final_answer", {"answer": 1}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    assert agent.run("Look it up") == 1

    (told,) = tool_messages(srv.bodies[1])
    assert "no tool named 'search_web'" in told["content"] and "add" in told["content"], told
    assert_valid_conversation(srv.bodies[1]["messages"])
    assert agent.memory.action_steps[0].error


def test_invalid_json_arguments_are_an_observation(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("add", '{"a": 1, "b": '))
    srv.push_tool_calls(("add", {"a": 1, "b": 2}))
    srv.push_tool_calls(("final_answer", {"answer": 3}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    assert agent.run("Add") == 3

    (told,) = tool_messages(srv.bodies[1])
    assert "not valid JSON" in told["content"] and '"a"' in told["content"], told
    assert calls_made == [("add", (1, 2))]  # the broken call never ran
    # The broken arguments are sent back as the model wrote them; the conversation stays valid for the server.
    assert srv.bodies[2]["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": '


def test_wrong_arguments_are_an_observation_naming_the_signature(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("add", {"a": "one", "b": 2}), ("add", {"a": 1}))
    srv.push_tool_calls(("final_answer", {"answer": 0}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    agent.run("Add")

    wrong_type, missing = (m["content"] for m in tool_messages(srv.bodies[1]))
    assert "'a' must be int, got str" in wrong_type and "add(a: int, b: int)" in wrong_type
    assert "missing a required argument: 'b'" in missing
    assert calls_made == []


def test_a_tool_that_raises_is_an_observation(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("divide", {"a": 1, "b": 0}), ("add", {"a": 1, "b": 1}))
    srv.push_tool_calls(("final_answer", {"answer": "cannot"}))
    agent = ToolCallingAgent(tools=TOOLS, model=make(srv))

    assert agent.run("Divide 1 by 0") == "cannot"

    raised, added = (m["content"] for m in tool_messages(srv.bodies[1]))
    assert "ZeroDivisionError" in raised, raised
    assert added == "2"  # the next call of the reply still ran
    step = agent.memory.action_steps[0]
    assert "ZeroDivisionError" in step.error and [c.error is None for c in step.tool_calls] == [False, True]


def test_non_streamed_generate_returns_tool_calls(make: MakeModel, srv: OpenAIServer):
    srv.push_tool_calls(("add", {"a": 1, "b": 2}), ("shout", {"text": "hi"}), text="two calls")
    response = asyncio.run(make(srv).generate([{"role": "user", "content": "go"}], tools_to_call_from=[add, shout]))
    assert response.content == "two calls"
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("add", {"a": 1, "b": 2}), ("shout", {"text": "hi"})]
    assert all(c.id for c in response.tool_calls)
    assert srv.bodies[0].get("stream") in (None, False)
    assert [t["function"]["name"] for t in srv.bodies[0]["tools"]] == ["add", "shout"]


def test_a_model_without_tools_sends_no_tools_parameter(make: MakeModel, srv: OpenAIServer):
    srv.push_reply("plain")
    assert asyncio.run(make(srv).generate([{"role": "user", "content": "hi"}])).content == "plain"
    assert "tools" not in srv.bodies[0] or srv.bodies[0]["tools"] is None


# -- the fallback: tool calls written in text --------------------------------------------


def test_a_server_that_refuses_tools_gets_calls_in_text(make: MakeModel, srv: OpenAIServer):
    srv.push_status(400, "tools are not supported for this model")
    srv.push_reply('Thought: add.\nAction:\n{"name": "add", "arguments": {"a": 20, "b": 22}}')
    srv.push_reply('Action: {"name": "final_answer", "arguments": {"answer": 42}}')
    model = make(srv)
    agent = ToolCallingAgent(tools=TOOLS, model=model)

    assert agent.run("Add 20 and 22") == 42

    refused, *after = srv.bodies
    assert refused["tools"]
    assert all("tools" not in body for body in after)  # asked once; from then on, in text
    system = after[0]["messages"][0]["content"]
    assert 'Action:' in system and '"name": "add"' in system  # the protocol and the tools' schemas, in text
    assert after[1]["messages"][-1] == {"role": "user", "content": "Observation:\n42"}
    assert not any(m["role"] == "tool" or m.get("tool_calls") for m in after[1]["messages"])
    assert calls_made == [("add", (20, 22))]
    # The same model in a new agent is not offered tools again.
    srv.push_reply('Action: {"name": "final_answer", "arguments": {"answer": 1}}')
    assert ToolCallingAgent(tools=TOOLS, model=model).run("again") == 1
    assert "tools" not in srv.bodies[-1]


def test_another_bad_request_is_not_taken_for_a_refusal_of_tools(srv: OpenAIServer):
    srv.push_status(400, "the model name is wrong")
    agent = ToolCallingAgent(tools=TOOLS, model=litellm_model(srv))
    with pytest.raises(Exception, match="model name is wrong"):
        agent.run("x")
    assert len(srv.bodies) == 1


def test_scripted_model_replies_in_text_drive_the_agent():
    model = ScriptedModel([
        'Thought: shout first.\nAction:\n```json\n{"name": "shout", "arguments": {"text": "hey"}}\n```',
        'Action: {"name": "add", "arguments": {"a": 1, "b": 2}}\nAction: {"name": "add", "arguments": {"a": 3, "b": 4}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 7}}',
    ])
    calls_made.clear()
    agent = ToolCallingAgent(tools=TOOLS, model=model)
    assert agent.run("go") == 7
    assert calls_made == [("shout", "hey"), ("add", (1, 2)), ("add", (3, 4))]
    assert agent.memory.action_steps[0].reasoning == "Thought: shout first."
    assert model.requests[1][-1] == {"role": "user", "content": "Observation:\nHEY"}
    assert model.requests[2][-1]["content"] == "Observation:\nCall 1 (add):\n3\n\nCall 2 (add):\n7"


def test_a_call_that_cannot_run_is_shown_as_the_call_not_as_missing_code():
    """The trace names the call the model asked for (wrong arguments, an unknown tool), not "no code in the reply"."""
    lines: list[str] = []
    model = ScriptedModel(['Action: {"name": "add", "arguments": {"a": "one", "b": 2}}',
                           'Action: {"name": "nosuch", "arguments": {}}',
                           'Action: {"name": "final_answer", "arguments": {"answer": 0}}'])
    agent = ToolCallingAgent(tools=TOOLS, model=model, renderer=TextRenderer(write=lines.append))
    assert agent.run("go") == 0
    trace = "\n".join(lines)
    assert '(not run: add({"a": "one", "b": 2}))' in trace and "(not run: nosuch({}))" in trace
    assert "no code in the reply" not in trace


def test_a_scripted_reply_that_is_no_text_is_refused_at_once_saying_what_a_reply_is():
    with pytest.raises(TypeError, match=r"reply 2 is a dict: each reply is the text the model writes"):
        ScriptedModel(["Action: {}", {"role": "assistant", "tool_calls": []}])


def test_scripted_native_tool_calls():
    model = ScriptedModel([
        ModelResponse("", tool_calls=[ChatMessageToolCall("c1", "add", '{"a": 1, "b": 2}')]),
        ModelResponse("", tool_calls=[ChatMessageToolCall("c2", "final_answer", '{"answer": 3}')]),
    ])
    agent = ToolCallingAgent(tools=TOOLS, model=model)
    assert agent.run("go") == 3
    assert model.requests[1][-2:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]


@pytest.mark.parametrize("text, problem", [
    ('Action: {"name": "add", "arguments": {"a": 1,}}', "not valid"),
    ("I think the answer is 4.", None),
])
def test_text_without_a_usable_call_tells_the_model_how_to_call(text: str, problem: str | None):
    calls, _, why = parse_text_tool_calls(text)
    assert calls == [] and (problem is None and why is None or problem in why)
    model = ScriptedModel([text, 'Action: {"name": "final_answer", "arguments": {"answer": 4}}'])
    agent = ToolCallingAgent(tools=TOOLS, model=model)
    assert agent.run("2+2") == 4
    told = model.requests[1][-1]["content"]
    assert ("not valid" in told) if problem else ("called no tool" in told), told


# -- the loop's features ---------------------------------------------------------------------


def test_loop_features_planning_callbacks_stream_max_steps_and_memory_round_trip():
    seen: list[str] = []
    model = ScriptedModel([
        "Plan: add, then answer.",
        'Action: {"name": "add", "arguments": {"a": 1, "b": 1}}',
        'Action: {"name": "add", "arguments": {"a": 2, "b": 2}}',
        "Update: answer now.",
        'Action: {"name": "final_answer", "arguments": {"answer": 4}}',
    ])
    agent = ToolCallingAgent(tools=TOOLS, model=model, planning_interval=2,
                             step_callbacks=[lambda step: seen.append(type(step).__name__)])
    steps = list(agent.run("add twice", stream=True))
    assert [type(s).__name__ for s in steps] == ["TaskStep", "PlanningStep", "ActionStep", "ActionStep",
                                                 "PlanningStep", "ActionStep", "FinalAnswerStep"]
    assert seen == [type(s).__name__ for s in steps]
    assert agent.runs[-1].output == 4

    restored = AgentMemory.from_json(agent.memory.to_json())
    assert restored.to_messages() == agent.memory.to_messages()
    first = restored.action_steps[0]
    assert isinstance(first, ActionStep) and first.tool_calls[0].observation == "2"

    # max_steps: the run ends with the model's best answer, not an exception
    capped = ToolCallingAgent(tools=TOOLS, model=ScriptedModel(
        ['Action: {"name": "add", "arguments": {"a": 1, "b": 1}}', "It is 2."]), max_steps=1)
    assert capped.run("add") == "It is 2."
    as_call = ToolCallingAgent(tools=TOOLS, model=ScriptedModel([
        'Action: {"name": "add", "arguments": {"a": 1, "b": 1}}',
        'Action: {"name": "final_answer", "arguments": {"answer": [2]}}']), max_steps=1)
    assert as_call.run("add") == [2]  # the last answer may come as a final_answer call too
    # reset=False continues the conversation
    more = ScriptedModel(['Action: {"name": "final_answer", "arguments": {"answer": "again"}}'])
    capped.model = more
    assert capped.run("once more", reset=False) == "again"
    assert any("add" in json.dumps(m) for m in more.requests[0])


def test_a_user_variable_named_result_is_not_overwritten():
    agent = ToolCallingAgent(tools=TOOLS, model=ScriptedModel([
        'Action: {"name": "add", "arguments": {"a": 1, "b": 2}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 3}}']))
    agent.executor.namespace["result"] = "the user's"
    agent.run("add")
    assert agent.executor.namespace["result"] == "the user's"
    assert agent.memory.action_steps[0].code == "result_2 = add(a=1, b=2)"
    assert agent.executor.namespace["result_2"] == 3


class Recorder:
    """An approver that remembers what it was shown, and skips the calls of one tool."""

    def __init__(self, skip: str):
        self.shown: list[str] = []
        self.skip = skip

    async def approve(self, step: ActionStep) -> Decision:
        self.shown.append(step.code or "")
        if any(c.name == self.skip for c in step.tool_calls):
            return Decision("skip", reason="not that one", by_person=True)
        return Decision("run", by_person=True)


def test_the_approver_sees_each_call_as_code_and_a_skip_reaches_the_model():
    approver = Recorder(skip="shout")
    model = ScriptedModel([
        'Action: {"name": "shout", "arguments": {"text": "no"}}',
        'Action: {"name": "add", "arguments": {"a": 5, "b": 5}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 10}}',
    ])
    calls_made.clear()
    agent = ToolCallingAgent(tools=TOOLS, model=model, approver=approver)
    assert agent.run("go") == 10
    assert approver.shown == ["result = shout(text='no')", "result = add(a=5, b=5)", "final_answer(answer=10)"]
    assert calls_made == [("add", (5, 5))]
    assert "skipped this call" in model.requests[1][-1]["content"] and "not that one" in model.requests[1][-1]["content"]


def test_secrets_in_tool_results_and_arguments_do_not_leave(srv: OpenAIServer):
    secret = "sk-live-4f9a8b7c6d5e4f3a2b1c"

    @tool
    def fetch_key() -> str:
        """Return the service key."""
        return secret

    srv.push_tool_calls(("fetch_key", {}))
    srv.push_tool_calls(("shout", {"text": secret}))  # the model somehow writes it in an argument
    srv.push_tool_calls(("final_answer", {"answer": "ok"}))
    agent = ToolCallingAgent(tools=[fetch_key, shout, final_answer], model=litellm_model(srv))
    agent.executor.namespace["api_key"] = secret  # the user's credential: registered, so redacted
    agent.run("get the key")
    for body in srv.bodies[1:]:
        assert secret[:12] not in json.dumps(body), body
        assert_valid_conversation(body["messages"])


class Point(PydanticModel):
    x: int
    y: int


def test_tool_schema_of_a_pydantic_model_argument_keeps_its_definitions():
    @tool
    def longest(points: list[Point], scale: float = 1.0) -> float:
        """Length of the longest point.

        Args:
            points: the points
            scale: a factor
        """
        return max((p.x ** 2 + p.y ** 2) ** 0.5 for p in points) * scale

    params = longest.to_tool_schema()["function"]["parameters"]
    assert params["required"] == ["points"]
    assert params["properties"]["points"]["items"] == {"$ref": "#/$defs/Point"}  # resolved from the top
    assert params["$defs"]["Point"]["required"] == ["x", "y"]


# -- export ------------------------------------------------------------------------------------


def test_an_exported_tool_run_re_executes(tmp_path):
    setup = ("from smol_magic import tool\n\n@tool\ndef add(a: int, b: int) -> int:\n"
             '    """Add two integers.\n\n    Args:\n        a: the first number\n        b: the second number\n    """\n'
             "    return a + b")
    agent = ToolCallingAgent(tools=[], model=ScriptedModel([
        'Action: {"name": "add", "arguments": {"a": 40, "b": 2}}\nAction: {"name": "add", "arguments": {"a": 1}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 42}}',
    ]))
    exec(setup, agent.executor.namespace)
    agent.tools["add"] = agent.executor.namespace["add"]
    assert agent.run("add") == 42

    path = agent.to_notebook(str(tmp_path / "run.ipynb"), with_setup=[setup])
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[-2:] == ["result = add(a=40, b=2)", "final_answer(answer=42)"]
    assert any("Tool call did not run" in c.source and "missing a required argument" in c.source
               for c in nb.cells if c.cell_type == "markdown")
    nbformat.validate(nb)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {c.source: c.outputs for c in nb.cells if c.cell_type == "code"}
    assert outputs["final_answer(answer=42)"][0]["data"]["text/plain"] == "42"

    # Without the setup, the export says what to define first.
    bare = nbformat.read(agent.to_notebook(str(tmp_path / "bare.ipynb")), as_version=4)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="define add first"):
        nbclient.NotebookClient(bare, timeout=60, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()


# -- the magic -------------------------------------------------------------------------------------


MAGIC_TOOL = '''
from smol_magic import tool

@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b
'''


def test_magic_agent_tools_calls_the_notebooks_tools_and_agent_type_sets_the_default(ip):
    from traitlets import TraitError

    ip.run_cell(MAGIC_TOOL)
    ip.user_ns["m"] = ScriptedModel([
        'Action: {"name": "add", "arguments": {"a": 2, "b": 3}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 5}}',
        "```python\nfinal_answer(result * 2)\n```",
        'Action: {"name": "final_answer", "arguments": {"answer": "tools again"}}',
    ])
    magics = ip.magics_manager.registry["AgentMagics"]
    ip.run_cell_magic("agent", "--agent tools -m m -o res --reset", "Add 2 and 3.")
    assert ip.user_ns["res"] == 5 and ip.user_ns["result"] == 5
    assert isinstance(magics.current, ToolCallingAgent)
    assert set(magics.current.tools) == {"add", "final_answer"}  # the Tool objects among the variables

    # --agent code: the same conversation, now as code; the variable the tool call made is there.
    ip.run_cell_magic("agent", "--agent code -m m -o res", "Double it.")
    assert ip.user_ns["res"] == 10 and type(magics.current).__name__ == "CodeAgent"
    assert len(magics.current.runs) == 2  # runs (and undo) carry over

    with pytest.raises(TraitError):
        magics.agent_type = "robot"
    ip.run_line_magic("config", 'AgentMagics.agent_type = "tools"')
    ip.run_cell_magic("agent", "-m m -o res", "Once more.")
    assert ip.user_ns["res"] == "tools again" and isinstance(magics.current, ToolCallingAgent)
    assert "result" in magics.current.undo(0)["removed"]  # undo removes what the tool call bound
    assert "result" not in ip.user_ns


def test_a_recorded_tool_run_replays_offline(srv: OpenAIServer, tmp_path):
    from smol_magic.export.replay import RecordingModel, ReplayModel

    srv.push_tool_calls(("add", {"a": 1, "b": 2}), ("shout", {"text": "x"}))
    srv.push_tool_calls(("final_answer", {"answer": 3}))
    recording = tmp_path / "run.jsonl"
    agent = ToolCallingAgent(tools=TOOLS, model=RecordingModel(litellm_model(srv), recording))
    assert agent.run("add") == 3
    requests = len(srv.bodies)
    assert srv.bodies[0]["tools"]  # recording keeps native tool calls

    calls_made.clear()
    replayed = ToolCallingAgent(tools=TOOLS, model=ReplayModel(recording))
    assert replayed.run("add") == 3
    assert len(srv.bodies) == requests  # offline
    assert calls_made == [("add", (1, 2)), ("shout", "x")]  # the recorded calls ran again


class Editor:
    """A person who edits the calls before running them."""

    async def approve(self, step: ActionStep) -> Decision:
        if step.code and "add(" in step.code:
            return Decision("run", code="result = add(a=100, b=1)", by_person=True)
        return Decision("run", by_person=True)


def test_an_edited_call_runs_as_edited_and_every_call_is_told(tmp_path):
    calls_made.clear()
    model = ScriptedModel([
        ModelResponse("", tool_calls=[ChatMessageToolCall("c1", "add", '{"a": 1, "b": 2}'),
                                      ChatMessageToolCall("c2", "shout", '{"text": "x"}')]),
        'Action: {"name": "final_answer", "arguments": {"answer": 101}}',
    ])
    agent = ToolCallingAgent(tools=TOOLS, model=model, approver=Editor())
    assert agent.run("add") == 101
    assert calls_made == [("add", (100, 1))]  # what the person wrote ran, not the model's calls
    step = agent.memory.action_steps[0]
    assert step.proposed_code == "result = add(a=1, b=2)\nresult = shout(text='x')"
    answers = [m for m in model.requests[1] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in answers] == ["c1", "c2"]
    assert all("edited your calls" in m["content"] and "add(a=100, b=1)" in m["content"] for m in answers)
    nb = nbformat.read(agent.to_notebook(str(tmp_path / "run.ipynb")), as_version=4)
    assert "result = add(a=100, b=1)" in [c.source for c in nb.cells if c.cell_type == "code"]


def test_a_tool_that_changes_the_users_data_in_place_is_put_back_and_the_model_told():
    # The guard sees the call, not the tool's body; the data watch sees what it did to the user's frame.
    model = ScriptedModel([
        'Action: {"name": "drop_column", "arguments": {"column": "b"}}',
        'Action: {"name": "final_answer", "arguments": {"answer": "ok"}}'])
    agent = ToolCallingAgent(tools=[], model=model)
    ns = agent.executor.namespace
    exec('import pandas as pd\nfrom smol_magic import tool\nsales = pd.DataFrame({"a": [1, 2], "b": [3, 4]})\n\n'
         '@tool\ndef drop_column(column: str) -> str:\n    """Drop a column of the sales table.\n\n    Args:\n'
         '        column: the column\n    """\n    sales.drop(columns=[column], inplace=True)\n    return "dropped"\n', ns)
    agent.tools["drop_column"] = ns["drop_column"]
    agent.run("drop b")
    assert list(ns["sales"].columns) == ["a", "b"]  # put back
    told = [m for m in model.requests[1] if m["role"] == "user"][-1]["content"]
    assert "put back: sales" in told and "dropped" in told, told


def test_the_agent_api_applies_prompt_templates_rules_and_final_answer_checks():
    """The tool agent has its own prompt file, overridable like the CodeAgent's; rules and checks apply."""

    def positive(answer, memory) -> bool:
        """The answer must be positive."""
        return answer > 0

    model = ScriptedModel([
        "Plan: answer.",
        'Action: {"name": "final_answer", "arguments": {"answer": -1}}',
        'Action: {"name": "final_answer", "arguments": {"answer": 5}}',
    ])
    agent = ToolCallingAgent(
        tools=TOOLS, model=model, planning_interval=5, rules="Answer in French.",
        prompt_templates={"planning": {"initial_plan": "Plan {task} without tools."}},
        final_answer_checks=[positive],
    )
    assert agent.run("pick a number") == 5
    system = model.requests[0][0]["content"]
    assert "calling tools" in system and "Answer in French." in system
    text_prompt = ToolCallingAgent(tools=TOOLS, model=model, native_tools=False).system_prompt()
    assert "Action:" in text_prompt and '"name": "add"' in text_prompt  # the text protocol, with each schema
    assert model.requests[0][-1]["content"].endswith("Plan pick a number without tools.")
    told = model.requests[2][-1]["content"]
    assert "positive" in told and "must be positive" in told, told
    with pytest.raises(ValueError, match="text_protocol"):
        ToolCallingAgent(tools=TOOLS, model=model, prompt_templates={"text_protocol": "no schemas here"})
