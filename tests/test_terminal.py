"""Approval in a terminal IPython: the one-letter prompt, with answers typed by the test."""

from __future__ import annotations

from smol_magic import CodeAgent, ScriptedModel
from smol_magic.core.approval import ModeApprover
from smol_magic.jupyter.terminal import PROMPT, TerminalApprover


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def agent_with_answers(replies, answers, mode="every"):
    typed = iter(answers)
    prompts, lines = [], []

    def type_answer(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    person = TerminalApprover(mode, input_fn=type_answer, write=lines.append)
    agent = CodeAgent(model=ScriptedModel(replies), approver=ModeApprover(mode, person))
    return agent, prompts, lines


def test_run_edit_skip_and_stop_from_the_prompt():
    agent, prompts, lines = agent_with_answers(
        [fence("a = 1"), fence("b = 2"), fence("c = 3"), fence("d = 4")],
        ["x", "r", "e", "b = 20", ".", "s", "not now", "t"],
    )
    agent.run("t")
    ns = agent.executor.namespace
    assert ns["a"] == 1 and ns["b"] == 20 and "c" not in ns and "d" not in ns
    assert prompts.count(PROMPT) == 5  # the unknown answer 'x' is asked again
    assert "  please answer r, e, s, t or a" in lines
    steps = agent.memory.action_steps
    assert [s.approval for s in steps] == ["run", "edit", "skip", "stop"]
    assert steps[1].proposed_code == "b = 2" and steps[1].code == "b = 20"
    assert "not now" in steps[2].observation
    assert agent.runs[-1].state == "stopped"


def test_run_all_stops_asking_for_the_rest_of_the_run():
    agent, prompts, _ = agent_with_answers([fence("a = 1"), fence("b = 2"), fence("final_answer(a + b)")], ["a"])
    assert agent.run("t") == 3
    assert prompts == [PROMPT]


def test_risky_mode_asks_only_when_the_guard_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent, prompts, lines = agent_with_answers(
        [fence("x = [1]"), fence("open('out.txt', 'w').write('hi')"), fence("final_answer(x)")], ["r"], mode="risky")
    assert agent.run("t") == [1]
    assert prompts == [PROMPT] and (tmp_path / "out.txt").read_text() == "hi"
    assert any("write_files" in line for line in lines)  # why it waits
