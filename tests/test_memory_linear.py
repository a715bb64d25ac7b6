"""The saved memory writes each message once: its size grows with the steps, not their square; it reads back exactly."""

from __future__ import annotations

import json

import pytest

from smol_magic import (
    AgentMemory, ChatMessageToolCall, CodeAgent, ModelResponse, ScriptedModel, ToolCallingAgent, final_answer, tool,
)
from smol_magic.core.memory import PlanningStep, RunResult

LINES = 40  # each step prints this many lines (~2,300 characters)


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def printing(n: int, lines: int = LINES) -> str:
    return fence(f'print("\\n".join("step {n} row %d: %s" % (i, "x" * 40) for i in range({lines})))')


def long_run(steps: int, **kwargs) -> CodeAgent:
    replies = [printing(n) for n in range(1, steps)] + [fence(f"final_answer({steps})")]
    agent = CodeAgent(model=ScriptedModel(replies), max_steps=steps, **kwargs)
    assert agent.run("print many rows") == steps
    return agent


def requests(memory: AgentMemory) -> list[list[dict]]:
    return [s.model_input_messages for s in memory.steps if hasattr(s, "model_input_messages")]


@pytest.mark.parametrize("window", [None, 12_000], ids=["whole", "compacted"])
def test_the_memory_json_grows_linearly_with_the_steps(window):
    half, full = long_run(50, context_window=window), long_run(100, context_window=window)
    if window:
        assert any(s.compaction for s in full.memory.action_steps)
    ratio = len(full.memory.to_json()) / len(half.memory.to_json())
    assert ratio < 2.3
    run_ratio = len(json.dumps(full.runs[-1].to_dict())) / len(json.dumps(half.runs[-1].to_dict()))
    assert run_ratio < 2.3
    # Each step's dict on its own still holds its request whole (what a store of single steps reads).
    last = full.memory.action_steps[-1]
    assert last.to_dict()["model_input_messages"] == last.model_input_messages


def manager_run() -> CodeAgent:
    """Plans every 4 steps, a managed agent called twice, big observations so compaction starts midway."""
    helper = CodeAgent(model=ScriptedModel([printing(101), fence("final_answer('half')"),
                                            fence("final_answer('again')")]),
                       name="helper", description="Prints rows and answers", context_window=3_000)
    replies = []
    for n in range(1, 17):
        if (n - 1) % 4 == 0:
            replies.append(f"Plan {n}: print rows, ask helper.")
        if n in (3, 12):
            replies.append(fence(f'r = helper(task="rows {n}")\nprint(r)'))
        elif n == 16:
            replies.append(fence("final_answer(r)"))
        else:
            replies.append(printing(n))
    agent = CodeAgent(model=ScriptedModel(replies), managed_agents=[helper], planning_interval=4, max_steps=16,
                      context_window=6_000)
    assert agent.run("a long task").startswith("Here is the final answer from your managed agent 'helper':\nagain")
    return agent


def test_a_long_run_with_plans_managed_runs_and_compaction_reads_back_exactly():
    agent = manager_run()
    memory = agent.memory
    compacted = [s for s in memory.steps if getattr(s, "compaction", None)]
    assert compacted and any(isinstance(s, PlanningStep) for s in compacted)
    assert memory.action_steps[0].compaction is None  # compaction started midway
    assert sum(len(s.managed_runs) for s in memory.action_steps) == 2

    text = memory.to_json()
    again = AgentMemory.from_json(text)
    assert requests(again) == requests(memory)
    assert [s.compaction for s in again.steps if hasattr(s, "compaction")] == [
        s.compaction for s in memory.steps if hasattr(s, "compaction")]
    assert again.to_messages() == memory.to_messages()
    assert again.to_json() == text
    managed = [r for s in memory.action_steps for r in s.managed_runs]
    managed_again = [r for s in again.action_steps for r in s.managed_runs]
    assert [requests(AgentMemory(steps=r.steps)) for r in managed_again] == [
        requests(AgentMemory(steps=r.steps)) for r in managed]

    run = agent.runs[-1]
    restored = RunResult.from_dict(json.loads(json.dumps(run.to_dict())))
    assert requests(AgentMemory(steps=restored.steps)) == requests(AgentMemory(steps=run.steps))
    assert restored.to_dict() == run.to_dict()


@tool
def table(rows: int) -> str:
    """A long text table.

    Args:
        rows: how many rows
    """
    return "\n".join(f"row {i}: " + "y" * 60 for i in range(rows))


def test_a_tool_calling_run_with_compaction_reads_back_exactly():
    replies = [ModelResponse("", tool_calls=[ChatMessageToolCall(f"c{n}", "table", '{"rows": 60}')])
               for n in range(1, 20)]
    replies.append(ModelResponse("", tool_calls=[ChatMessageToolCall("end", "final_answer", '{"answer": 1}')]))
    agent = ToolCallingAgent(tools=[table, final_answer], model=ScriptedModel(replies), max_steps=20,
                             context_window=6_000)
    agent.run("tables")
    assert any(s.compaction for s in agent.memory.action_steps)
    again = AgentMemory.from_json(agent.memory.to_json())
    assert requests(again) == requests(agent.memory)
    assert again.to_json() == agent.memory.to_json()


def test_a_memory_saved_with_whole_requests_still_loads():
    agent = manager_run()
    memory = agent.memory
    old = json.dumps({"system_prompt": memory.system_prompt, "steps": [s.to_dict() for s in memory.steps]})
    assert len(old) > 2 * len(memory.to_json())
    loaded = AgentMemory.from_json(old)
    assert requests(loaded) == requests(memory)
    assert AgentMemory.from_json(loaded.to_json()).to_json() == memory.to_json()


def test_steps_share_their_messages_in_memory_live_and_read_back():
    agent = long_run(10)
    first, second = agent.memory.action_steps[4:6]
    # The text of the conversation is held once, not once per step.
    assert all(a["content"] is b["content"] for a, b in zip(first.model_input_messages, second.model_input_messages))
    again = AgentMemory.from_json(agent.memory.to_json())
    first, second = again.action_steps[4:6]
    assert all(a is b for a, b in zip(first.model_input_messages, second.model_input_messages))


@pytest.mark.parametrize("damage, message", [
    ({"keep": 99, "add": []}, "a step's model_input_messages is damaged"),
    ({"keep": 0, "add": [57]}, "refers to message 57, but only"),
    ("nonsense", "a step's model_input_messages is damaged"),
])
def test_a_damaged_saved_memory_is_a_clear_error(damage, message):
    data = json.loads(long_run(3).memory.to_json())
    data["steps"][2]["model_input_messages"] = damage
    with pytest.raises(ValueError, match=message):
        AgentMemory.from_json(json.dumps(data))


def test_a_compacted_run_goes_through_the_run_store_rows_and_back():
    from smol_magic.store.records import Inputs, step_row, steps_from_rows

    agent = long_run(30, context_window=12_000)
    steps = agent.runs[-1].steps
    assert any(getattr(s, "compaction", None) for s in steps)
    rows, bodies, inputs = [], {}, Inputs()
    for step in steps:
        row, inputs = step_row(step, inputs)
        rows.append((row.data, row.inputs))
        bodies.update(row.new_messages)
    again = steps_from_rows(rows, bodies)
    assert requests(AgentMemory(steps=again)) == requests(AgentMemory(steps=steps))
    assert [getattr(s, "compaction", None) for s in again] == [getattr(s, "compaction", None) for s in steps]
