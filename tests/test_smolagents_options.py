"""Code written for smolagents runs as it is: its constructor options and its memory and agent methods.

``verbosity_level``, ``stream_outputs``, ``provide_run_summary``, ``add_base_tools``, ``executor_type``,
``max_print_outputs_length``; ``write_memory_to_messages``, ``memory.get_full_steps`` / ``get_succinct_steps``,
``visualize``. What smol-magic cannot do (base tools that reach the network, remote sandboxes) is refused
at once, naming what it has instead. Models: a ScriptedModel, and the local OpenAI-compatible server.
"""

from __future__ import annotations

import pytest
from openai_server import OpenAIServer

from smol_magic import CodeAgent, OpenAIServerModel, ScriptedModel, ToolCallingAgent, tool


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


@tool
def double(x: int) -> int:
    """Twice a number.

    Args:
        x: the number
    """
    return 2 * x


def test_verbosity_level_prints_the_steps_and_zero_prints_nothing(capsys):
    from smolagents import LogLevel

    assert CodeAgent(model=ScriptedModel([fence("final_answer(1)")]), verbosity_level=LogLevel.INFO).run("t") == 1
    shown = capsys.readouterr().out
    assert "step 1" in shown and "final_answer(1)" in shown and "■ done · 1 step" in shown
    assert CodeAgent(model=ScriptedModel([fence("final_answer(2)")]), verbosity_level=0).run("t") == 2
    assert CodeAgent(model=ScriptedModel([fence("final_answer(3)")])).run("t") == 3
    assert capsys.readouterr().out == ""
    calls = ToolCallingAgent(tools=[double], verbosity_level=2, model=ScriptedModel(
        ['Action: {"name": "double", "arguments": {"x": 4}}', 'Action: {"name": "final_answer", "arguments": {"answer": 8}}']))
    assert calls.run("double 4") == 8
    assert "result = double(x=4)" in capsys.readouterr().out


def test_stream_outputs_false_asks_for_each_reply_whole(srv: OpenAIServer):
    for reply in (fence("x = 20"), fence("final_answer(x + 1)")):
        srv.push_reply(reply)
    model = OpenAIServerModel(model_id="local", api_base=srv.base_url, api_key="k")
    assert CodeAgent(model=model, stream_outputs=False).run("t") == 21
    assert [request.body.get("stream", False) for request in srv.requests] == [False, False]
    srv.push_reply(fence("final_answer(5)"))
    assert CodeAgent(model=model).run("t") == 5
    assert srv.requests[-1].body["stream"] is True  # streamed by default, as smolagents does


def test_provide_run_summary_false_tells_the_manager_only_the_answer():
    def helper(summary: bool) -> CodeAgent:
        return CodeAgent(model=ScriptedModel([fence("x = 1"), fence("final_answer('found it')")]), name="helper",
                         description="finds things", provide_run_summary=summary)

    for summary in (True, False):
        boss = CodeAgent(model=ScriptedModel([fence("print(helper(task='find it'))"), fence("final_answer(0)")]),
                         managed_agents=[helper(summary)])
        boss.run("go")
        told = boss.memory.action_steps[0].observation
        assert "Here is the final answer from your managed agent 'helper':\nfound it" in told
        assert ("Summary of helper's work" in told) is summary


def test_what_smol_magic_has_not_is_refused_saying_what_it_has():
    model = ScriptedModel([fence("final_answer(1)")])
    with pytest.raises(ValueError, match=r"add_base_tools: smol-magic has no base tools .* give the tools you want"):
        CodeAgent(model=model, add_base_tools=True)
    with pytest.raises(ValueError, match=r"executor_type='docker': .*%%agent --executor isolated"):
        CodeAgent(model=model, executor_type="docker")
    assert CodeAgent(model=model, executor_type="local").run("t") == 1


def test_max_print_outputs_length_bounds_each_observation():
    agent = CodeAgent(model=ScriptedModel([fence("print('y' * 5000)"), fence("final_answer(1)")]),
                      max_print_outputs_length=500)
    agent.run("print a lot")
    assert agent.max_observation_chars == 500
    assert 400 < len(agent.memory.action_steps[0].observation) < 700


def test_the_memory_as_smolagents_reads_it():
    agent = CodeAgent(tools=[double], model=ScriptedModel([fence("y = double(21)"), fence("final_answer(y)")]),
                      name="doubler")
    assert agent.run("double 21") == 42
    messages = agent.write_memory_to_messages()
    assert messages[0]["role"] == "system" and "double 21" in messages[1]["content"]
    assert messages[-1]["role"] == "user" and "Final answer: int = 42" in messages[-1]["content"]
    full, succinct = agent.memory.get_full_steps(), agent.memory.get_succinct_steps()
    assert [step["kind"] for step in full] == ["task", "action", "action", "final_answer"]
    assert full[1]["code"] == "y = double(21)" and full[1]["model_input_messages"][0]["role"] == "system"
    assert "model_input_messages" not in succinct[1] and succinct[1]["code"] == "y = double(21)"


def test_visualize_prints_the_agent_its_tools_and_its_managed_agents(capsys):
    helper = CodeAgent(tools=[double], model=ScriptedModel([]), name="helper", description="doubles")
    CodeAgent(model=ScriptedModel([]), managed_agents=[helper]).visualize()
    assert capsys.readouterr().out.splitlines() == [
        "CodeAgent(model='scripted', tools=['final_answer'], runs=0)",
        "  tool final_answer(answer: Any) -> Any",
        "  CodeAgent('helper', model='scripted', tools=['double', 'final_answer'], runs=0)",
        "    tool double(x: int) -> int",
        "    tool final_answer(answer: Any) -> Any",
    ]
