"""Managed agents from plain Python: an agent called by another agent's code, like a tool."""

from __future__ import annotations

import pytest

from smol_magic import AgentMemory, CodeAgent, ScriptedModel, tool

from smol_magic.core.approval import Action, Decision
from smol_magic.core.managed import ManagedAgent
from smol_magic.core.memory import Approval, RunState
from smol_magic.ui.text import TextRenderer


def fence(code: str, thought: str = "Thought: next step.") -> str:
    return f"{thought}\n```python\n{code}\n```"


def calc_agent(*replies: str, **kwargs) -> CodeAgent:
    return CodeAgent(model=ScriptedModel(list(replies)), name="calc", description="Does arithmetic on request",
                     **kwargs)


def manager_of(*agents: CodeAgent, replies: list[str], **kwargs) -> CodeAgent:
    return CodeAgent(model=ScriptedModel(replies), managed_agents=list(agents), **kwargs)


def test_the_prompt_lists_each_managed_agent_with_its_description_and_how_to_call_it():
    manager = manager_of(calc_agent(), replies=[])
    prompt = manager.system_prompt()
    assert "def calc(task: str, additional_args: dict = None) -> str:" in prompt
    assert "Does arithmetic on request" in prompt
    assert "team members" in prompt
    assert "calc(" not in CodeAgent(model=ScriptedModel([])).system_prompt()


def test_a_call_returns_the_final_answer_and_a_summary_and_keeps_the_run_under_the_calling_step():
    calc = calc_agent(fence("x = 6 * 7\nprint('computed', x)"), fence("final_answer(x)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="what is 6 times 7?")\nprint(r)'),
                                        fence("final_answer(r)")])
    answer = manager.run("ask calc")

    assert answer.startswith("Here is the final answer from your managed agent 'calc':\n42\n")
    assert "Summary of calc's work (done, 2 steps" in answer
    assert "x = 6 * 7" in answer and "computed 42" in answer
    calling = manager.memory.action_steps[0]
    assert "Here is the final answer from your managed agent 'calc'" in calling.observation
    [managed] = calling.managed_runs
    assert (managed.agent_name, managed.task, managed.state, managed.output) == ("calc", "what is 6 times 7?",
                                                                                 RunState.DONE, 42)
    assert [s.code for s in managed.action_steps] == ["x = 6 * 7\nprint('computed', x)", "final_answer(x)"]
    # The managed agent was told who it is and what its manager asked, in its own memory.
    assert "named 'calc'" in calc.memory.steps[0].task and "what is 6 times 7?" in calc.memory.steps[0].task
    # What the managed agent used is part of the manager's run.
    assert manager.runs[-1].token_usage.input_tokens > calling.token_usage.input_tokens + \
        manager.memory.action_steps[1].token_usage.input_tokens
    assert manager.runs[-1].token_usage.input_tokens >= managed.token_usage.input_tokens


def test_managed_runs_survive_a_json_round_trip():
    calc = calc_agent(fence("final_answer(7)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="seven")'), fence("final_answer(r)")])
    manager.run("go")
    restored = AgentMemory.from_json(manager.memory.to_json())
    [managed] = restored.action_steps[0].managed_runs
    assert (managed.agent_name, managed.task, managed.state, managed.output) == ("calc", "seven", RunState.DONE, 7)
    assert [s.code for s in managed.action_steps] == ["final_answer(7)"]
    assert restored.to_json() == manager.memory.to_json()


def test_each_call_starts_from_a_fresh_memory():
    calc = calc_agent(fence("final_answer(1)"), fence("final_answer(2)"))
    manager = manager_of(calc, replies=[fence('a = calc(task="first question")\nb = calc(task="second question")'),
                                        fence("final_answer(b)")])
    manager.run("twice")
    first, second = manager.memory.action_steps[0].managed_runs
    assert (first.task, first.output, second.task, second.output) == ("first question", 1, "second question", 2)
    # The second call's model request holds its own task only, not the first call's conversation.
    second_request = "\n".join(m["content"] for m in calc.model.requests[1])
    assert "second question" in second_request and "first question" not in second_request
    assert len(calc.memory.steps) == 3  # task, action, final answer: of the second call only


def test_additional_args_reach_the_managed_agents_namespace():
    calc = calc_agent(fence("final_answer(sum(numbers))"))
    manager = manager_of(calc, replies=[fence('r = calc(task="add them", additional_args={"numbers": [1, 2, 3]})'),
                                        fence("final_answer(r)")])
    assert "\n6\n" in manager.run("sum")
    assert "numbers" in calc.memory.steps[0].context


def test_a_failing_managed_run_is_reported_to_the_manager_as_text():
    calc = calc_agent()  # no replies: its model fails at once
    manager = manager_of(calc, replies=[fence('r = calc(task="anything")\nprint(r)'), fence("final_answer('gave up')")])
    assert manager.run("try") == "gave up"
    calling = manager.memory.action_steps[0]
    assert calling.error is None
    assert "Your managed agent 'calc' could not finish (failed): ScriptedModel ran out of replies" in calling.observation
    assert calling.managed_runs[0].state == RunState.FAILED


def test_max_steps_applies_inside_the_managed_run():
    calc = calc_agent(fence("x = 1"), "It is 1, as far as I got.", max_steps=1)
    manager = manager_of(calc, replies=[fence('r = calc(task="count")\nprint(r)'), fence("final_answer(r)")])
    answer = manager.run("count")
    assert "Your managed agent 'calc' used all its steps (1 step) without calling final_answer" in answer
    assert "It is 1, as far as I got." in answer
    assert calc.model.requests[-1][-1]["content"].endswith(calc.render_prompt("final_answer.post_messages"))
    assert manager.memory.action_steps[0].managed_runs[0].state == RunState.MAX_STEPS


def test_the_managers_approver_decides_the_managed_agents_actions():
    seen = []

    class Person:
        async def approve(self, step):
            seen.append(step.code)
            if "danger" in step.code:
                return Decision(Action.SKIP, reason="not that", by_person=True)
            return Decision(Action.RUN, by_person=True)

    calc = calc_agent(fence("danger = 1"), fence("final_answer(2)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="go")'), fence("final_answer(r)")], approver=Person())
    manager.run("go")
    assert seen == ['r = calc(task="go")', "danger = 1", "final_answer(2)", "final_answer(r)"]
    [managed] = manager.memory.action_steps[0].managed_runs
    assert [s.approval for s in managed.action_steps] == [Approval.SKIP, Approval.RUN]
    assert "danger" not in calc.executor.namespace
    assert calc.approver is not manager.approver  # lent for the call only


def test_the_managers_action_clock_stops_while_its_managed_agent_works_and_runs_on_after():
    calc = calc_agent(fence("import time\ntime.sleep(0.4)"), fence("import time\ntime.sleep(0.4)\nfinal_answer(3)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="slow")\nimport time\ntime.sleep(5)'),
                                        fence("final_answer(r)")], timeout=0.6)
    answer = manager.run("slow")
    # The managed run took longer than the manager's time limit, and was not cut ...
    assert "final answer from your managed agent 'calc':\n3" in answer
    assert calc.runs[-1].state == RunState.DONE
    # ... while the manager's own code after the call still was.
    step = manager.memory.action_steps[0]
    assert "ran past its 0.6 s time limit" in (step.error or "")
    assert step.duration < 4


def test_the_text_trace_indents_the_managed_run_and_keeps_it_out_of_the_observation():
    lines: list[str] = []
    calc = calc_agent(fence("print('inner output')\nfinal_answer(5)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="five")'), fence("final_answer(r)")],
                         renderer=TextRenderer(write=lines.append))
    manager.run("five")
    text = "".join(lines)
    assert "  ┆ ▶ agent · scripted · calc: five" in text
    assert "  ┆ inner output" in text
    assert "inner output" not in manager.memory.action_steps[0].observation.split("Summary")[0]


@tool
def calc(x: int) -> int:
    """A tool named like the agent.

    Args:
        x: a number
    """
    return x


@pytest.mark.parametrize("make, message", [
    (lambda: CodeAgent(model=ScriptedModel([]), description="d"), "needs a name and a description (this one has no name)"),
    (lambda: CodeAgent(model=ScriptedModel([]), name="calc"), "has no description"),
    (lambda: CodeAgent(model=ScriptedModel([]), name="web agent", description="d"), "must be a Python identifier"),
    (lambda: CodeAgent(model=ScriptedModel([]), name="class", description="d"), "must be a Python identifier"),
    (lambda: "calc", "takes agents (CodeAgent, ToolCallingAgent), not str"),
])
def test_bad_managed_agents_are_refused_with_what_to_do(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CodeAgent(model=ScriptedModel([]), managed_agents=[make()])


def test_a_managed_agent_may_not_clash_with_a_tool_or_another_agent_or_be_its_own_manager():
    with pytest.raises(ValueError, match="also the name of a tool"):
        CodeAgent(model=ScriptedModel([]), tools=[calc], managed_agents=[calc_agent()])
    with pytest.raises(ValueError, match="two managed agents are named 'calc'"):
        CodeAgent(model=ScriptedModel([]), managed_agents=[calc_agent(), calc_agent()])
    agent = calc_agent()
    with pytest.raises(ValueError, match="cannot manage itself"):
        agent.managed_agents = [agent]


def test_the_wrapper_is_a_tool_with_one_task_argument():
    wrapper = manager_of(calc_agent(), replies=[]).managed_agents["calc"]
    assert isinstance(wrapper, ManagedAgent)
    assert list(wrapper.inputs) == ["task", "additional_args"]
    assert wrapper.inputs["task"]["type"] == "string" and wrapper.output_type == "string"
    with pytest.raises(TypeError, match="argument 'task' must be str"):
        wrapper(task=3)


def test_an_agent_called_directly_answers_as_it_would_answer_a_manager():
    calc = calc_agent(fence("final_answer(9)"))
    assert calc(task="nine").startswith("Here is the final answer from your managed agent 'calc':\n9\n")
    assert calc.runs[-1].task == "nine" and calc.runs[-1].state == RunState.DONE


def test_a_script_export_replays_the_managed_agent_and_runs_with_python(tmp_path):
    import subprocess
    import sys

    calc = calc_agent(fence("final_answer(6 * 7)"))
    manager = manager_of(calc, replies=[fence('r = calc(task="six times seven")\nprint(r.splitlines()[1])'),
                                        fence("final_answer(r)")])
    manager.run("ask")
    path = manager.to_notebook(tmp_path / "run.py")
    done = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"


def test_with_in_an_ipython_shell_adds_the_agent_for_that_cell_only(ip, capsys):
    ip.user_ns["calc"] = calc_agent(fence("final_answer(5)"))
    ip.user_ns["m"] = ScriptedModel([fence('r = calc(task="five")'), fence("final_answer(r)")])
    ip.run_cell_magic("agent", "-m m --with calc -o answer", "ask calc")
    assert ip.user_ns["answer"].startswith("Here is the final answer from your managed agent 'calc':\n5")
    assert "  ┆ ▶ agent · scripted · calc: five" in capsys.readouterr().out
    agent = ip.magics_manager.registry["AgentMagics"].current
    assert agent.managed_agents == {} and agent.runs[-1].action_steps[0].managed_runs[0].output == 5
    assert "▶ agent" not in agent.runs[-1].action_steps[0].observation
    assert isinstance(ip.user_ns["calc"], CodeAgent)  # the notebook's variable is the agent again, not the tool
