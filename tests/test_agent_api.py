"""The seed's agent API, from plain Python: final_answer_checks, prompt_templates, structured outputs,
RunResult, replay(), interrupt() and project rules. The model is a ScriptedModel; everything else is real."""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import threading

import pytest
import yaml

from smol_magic import (
    CodeAgent, PromptTemplateError, Rules, RunResult, ScriptedModel, Timing, TokenUsage,
)
from smol_magic.core.agents import CODEAGENT_RESPONSE_FORMAT
from smol_magic.core.models import BaseModel, ModelResponse
from smol_magic.safety import redact
from smol_magic.ui.text import TextRenderer


def fence(code: str, thought: str = "Thought: next step.") -> str:
    return f"{thought}\n```python\n{code}\n```"


def observation(step) -> str:
    return step.observation


# -- final_answer_checks ------------------------------------------------------------


def positive(answer, memory):
    """The answer must be a positive number."""
    return answer > 0


def test_a_failing_check_sends_the_model_back_to_work():
    model = ScriptedModel([fence("final_answer(-3)"), fence("final_answer(3)")])
    lines: list[str] = []
    agent = CodeAgent(model=model, final_answer_checks=[positive], renderer=TextRenderer(write=lines.append))
    assert agent.run("a positive number") == 3
    first, second = agent.memory.action_steps
    assert not first.is_final_answer and second.is_final_answer
    said = "final answer check 'positive' (The answer must be a positive number.) failed: it returned False"
    assert said in first.observation and said in first.error
    assert "keep working" in model.requests[1][-1]["content"] and said in model.requests[1][-1]["content"]
    assert said in "".join(lines)  # the trace shows why the answer was refused
    assert agent.runs[-1].state == "done" and len(agent.runs[-1].action_steps) == 2


def test_a_check_that_raises_is_a_failed_check_with_its_message():
    def long_enough(answer, memory):
        if len(answer) < 5:
            raise ValueError(f"{answer!r} is too short, give at least 5 characters")
        return True

    model = ScriptedModel([fence("final_answer('abc')"), fence("final_answer('abcdef')")])
    agent = CodeAgent(model=model, final_answer_checks=[long_enough])
    assert agent.run("t") == "abcdef"
    step = agent.memory.action_steps[0]
    assert "check 'long_enough' failed: ValueError: 'abc' is too short, give at least 5 characters" in step.observation


def test_checks_get_the_memory_and_may_take_the_agent():
    seen = {}

    def after_two_steps(answer, memory, agent=None):
        seen["agent"] = agent
        return len(memory.action_steps) >= 1  # the step that answers is not in memory yet

    model = ScriptedModel([fence("final_answer(1)"), fence("x = 2"), fence("final_answer(2)")])
    agent = CodeAgent(model=model, final_answer_checks=[after_two_steps])
    assert agent.run("t") == 2
    assert seen["agent"] is agent
    assert [s.is_final_answer for s in agent.memory.action_steps] == [False, False, True]


def test_an_answer_that_never_passes_ends_at_max_steps():
    model = ScriptedModel([fence("final_answer(-1)")] * 2 + ["my best guess is -1"])
    agent = CodeAgent(model=model, final_answer_checks=[positive], max_steps=2)
    assert agent.run("t") == "my best guess is -1"
    assert agent.runs[-1].state == "max_steps"


def test_a_check_that_is_not_a_function_is_refused_at_once():
    with pytest.raises(TypeError, match="final_answer_checks: 3 is not a function"):
        CodeAgent(model=ScriptedModel([]), final_answer_checks=[3])


# -- prompt_templates ---------------------------------------------------------------


def test_the_defaults_are_package_data_with_smolagents_like_keys():
    shipped = yaml.safe_load(importlib.resources.files("smol_magic").joinpath("prompts", "code_agent.yaml")
                             .read_text())
    agent = CodeAgent(model=ScriptedModel([]))
    assert agent.prompt_templates == shipped
    assert set(shipped) == {"system_prompt", "planning", "final_answer", "no_code_error"}
    assert set(shipped["planning"]) == {"initial_plan", "update_plan"}
    assert "{tools}" in shipped["system_prompt"] and "{instructions}" in shipped["system_prompt"]


def test_a_partial_dict_override_changes_only_that_prompt():
    model = ScriptedModel(["the plan", fence("final_answer(1)")])
    agent = CodeAgent(model=model, planning_interval=5,
                      prompt_templates={"planning": {"initial_plan": "Plan {task!r} in {{three}} steps."}})
    agent.run("count the rows")
    assert model.requests[0][-1]["content"].endswith("\n\nPlan 'count the rows' in {three} steps.")
    default = CodeAgent(model=ScriptedModel([]))
    assert agent.prompt_templates["planning"]["update_plan"] == default.prompt_templates["planning"]["update_plan"]
    assert model.requests[0][0]["content"] == default.system_prompt()


def test_a_yaml_file_overrides_the_system_prompt(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("system_prompt: |-\n  You are terse. Functions:\n  {tools}\n  {instructions}\n"
                    "no_code_error: Code, please.\n")
    model = ScriptedModel(["no code here", fence("final_answer(1)")])
    CodeAgent(model=model, prompt_templates=str(path), instructions="Answer in French.").run("t")
    system = model.requests[0][0]["content"]
    assert system.startswith("You are terse. Functions:\ndef final_answer(")
    assert "Answer in French." in system
    assert model.requests[1][-1]["content"].endswith("Code, please.")


@pytest.mark.parametrize("override, message", [
    ({"planning": {"intial_plan": "x"}},
     "unknown prompt 'planning.intial_plan'; did you mean 'planning.initial_plan'?"),
    ({"sytem_prompt": "x"}, "did you mean 'system_prompt'?"),
    ({"planning": "x"}, "'planning' holds several prompts (initial_plan, update_plan): give a mapping"),
    ({"no_code_error": 3}, "'no_code_error' must be a string template, not int"),
    ({"system_prompt": "Use these: {tools}"}, "must contain {instructions}: without it the model is not told the "
                                              "instructions and the project rules"),
    ({"system_prompt": "{tools} {instructions} {tool_list}"}, "uses {tool_list}, which the agent does not fill "
                                                              "(it fills: {tools}, {imports}, {instructions})"),
    ({"no_code_error": "Reply with {\"code\": ...}"}, "write {{ and }} for a literal brace"),
    ({"system_prompt": "{%- for tool in tools.values() %}{{ tool.to_code_prompt() }}{% endfor %}"},
     "looks like a Jinja template (smolagents')"),
])
def test_a_bad_override_is_refused_with_a_clear_error(override, message):
    with pytest.raises(PromptTemplateError) as caught:
        CodeAgent(model=ScriptedModel([]), prompt_templates=override)
    assert message in str(caught.value)


def test_a_bad_template_file_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(PromptTemplateError, match="no file .*missing.yaml.*give the path of a YAML file"):
        CodeAgent(model=ScriptedModel([]), prompt_templates=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("system_prompt: |-\n  fine\nplanning: [unclosed\n")
    with pytest.raises(PromptTemplateError, match="is not valid YAML at line"):
        CodeAgent(model=ScriptedModel([]), prompt_templates=broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(PromptTemplateError, match="must hold a mapping of prompt names to templates, not a list"):
        CodeAgent(model=ScriptedModel([]), prompt_templates=listed)
    in_file = tmp_path / "wrong.yaml"
    in_file.write_text("final_answer:\n  post_messages: Answer {question}\n")
    with pytest.raises(PromptTemplateError, match=r"'final_answer.post_messages' \(in .*wrong.yaml\) uses {question}"):
        CodeAgent(model=ScriptedModel([]), prompt_templates=in_file)


def test_update_plan_is_told_the_steps_left():
    model = ScriptedModel(["plan 1", fence("x = 1"), fence("y = 2"), "plan 2", fence("final_answer(3)")])
    agent = CodeAgent(model=model, planning_interval=2, max_steps=6,
                      prompt_templates={"planning": {"update_plan": "Update the plan: {remaining_steps} steps left."}})
    assert agent.run("t") == 3
    assert model.requests[3][-1]["content"].endswith("\n\nUpdate the plan: 4 steps left.")


# -- structured outputs -------------------------------------------------------------


def test_structured_outputs_ask_for_the_json_schema_and_run_its_code():
    reply = json.dumps({"thought": "I add them.", "code": "total = 2 + 3\nfinal_answer(total)"})
    model = ScriptedModel([reply])
    agent = CodeAgent(model=model, use_structured_outputs_internally=True)
    assert agent.run("add 2 and 3") == 5
    assert model.response_formats == [CODEAGENT_RESPONSE_FORMAT]
    step = agent.memory.action_steps[0]
    assert step.reasoning == "I add them." and step.code == "total = 2 + 3\nfinal_answer(total)"
    asked = '{"thought": "what you will do and why", "code": "the Python code to run"}'
    assert asked in model.requests[0][0]["content"]


def test_structured_outputs_fall_back_to_text_parsing_and_unwrap_fences():
    model = ScriptedModel([
        fence("x = 41", thought="Thought: the model ignored the format."),  # not JSON: parsed as text
        '```json\n{"thought": "fenced", "code": "```python\\nfinal_answer(x + 1)\\n```"}\n```',
    ])
    agent = CodeAgent(model=model, use_structured_outputs_internally=True)
    assert agent.run("t") == 42
    first, second = agent.memory.action_steps
    assert first.code == "x = 41" and first.reasoning == "Thought: the model ignored the format."
    assert second.code == "final_answer(x + 1)" and second.reasoning == "fenced"


def test_structured_outputs_with_empty_code_ask_for_code_in_json():
    model = ScriptedModel([json.dumps({"thought": "hmm", "code": ""}),
                           json.dumps({"thought": "ok", "code": "final_answer(1)"})])
    agent = CodeAgent(model=model, use_structured_outputs_internally=True)
    assert agent.run("t") == 1
    assert agent.memory.action_steps[0].error == "no code in the reply"
    assert 'Reply with one JSON object:\n{"thought"' in model.requests[1][-1]["content"]


def test_a_model_without_response_format_still_works_with_structured_outputs():
    class Plain(BaseModel):  # a user's own model, written before response_format existed
        model_id = "plain"

        def __init__(self):
            super().__init__()
            self.calls = 0

        async def generate(self, messages, stop_sequences=None):
            self.calls += 1
            return ModelResponse(json.dumps({"thought": "t", "code": "final_answer('ok')"}))

    model = Plain()
    assert CodeAgent(model=model, use_structured_outputs_internally=True).run("t") == "ok"
    assert model.calls == 1


def test_without_structured_outputs_no_response_format_is_sent():
    model = ScriptedModel([fence("final_answer(1)")])
    CodeAgent(model=model).run("t")
    assert model.response_formats == [None]


# -- RunResult ----------------------------------------------------------------------


def test_return_full_result_gives_the_run_result():
    model = ScriptedModel([fence("x = 1"), fence("final_answer(x + 1)")])
    agent = CodeAgent(model=model)
    result = agent.run("t", return_full_result=True)
    assert isinstance(result, RunResult) and result is agent.runs[-1]
    assert result.output == 2 and result.state == "done"
    assert [s.kind for s in result.steps] == ["task", "action", "action", "final_answer"]
    usage = [s.token_usage for s in result.action_steps]
    assert result.token_usage == TokenUsage(sum(u.input_tokens for u in usage), sum(u.output_tokens for u in usage))
    assert isinstance(result.timing, Timing) and result.timing.end_time >= result.timing.start_time > 0
    assert result.timing.duration == pytest.approx(result.duration)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["output"] == 2 and data["state"] == "done" and data["timing"]["duration"] >= 0
    assert len(data["steps"]) == 4


def test_return_full_result_as_the_agents_default():
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")]),
                      return_full_result=True)
    assert agent.run("t").output == 1
    assert agent.run("t", return_full_result=False) == 2


def test_return_full_result_from_arun():
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)")]))
    result = asyncio.run(agent.arun("t", return_full_result=True))
    assert result.output == 1 and result.timing.duration is not None


def test_max_steps_state_in_the_full_result():
    agent = CodeAgent(model=ScriptedModel([fence("x = 1"), "gave up: 1"]), max_steps=1)
    result = agent.run("t", return_full_result=True)
    assert result.state == "max_steps" and result.output == "gave up: 1"


# -- replay -------------------------------------------------------------------------


def test_replay_prints_the_run_step_by_step(capsys):
    model = ScriptedModel([fence("rows = 3\nprint('rows:', rows)", "Thought: count first."),
                           fence("final_answer(rows * 2)", "Thought: double it.")])
    agent = CodeAgent(model=model)
    agent.run("double the rows")
    capsys.readouterr()
    agent.replay()
    out = capsys.readouterr().out
    order = ["▶ task: double the rows", "step 1", "Thought: count first.", "│ rows = 3", "rows: 3",
             "step 2", "Thought: double it.", "│ final_answer(rows * 2)", "Final answer: int = 6",
             "final answer:\n6\n", "■ done · 2 steps"]
    positions = [out.find(part) for part in order]
    assert -1 not in positions, [p for p, at in zip(order, positions) if at == -1]
    assert positions == sorted(positions)
    assert "You are an expert data assistant" not in out  # the messages only with detailed=True


def test_replay_detailed_shows_what_the_model_was_sent_once(capsys):
    model = ScriptedModel([fence("x = 1"), fence("final_answer(x)")])
    agent = CodeAgent(model=model)
    agent.run("t")
    capsys.readouterr()
    agent.replay(detailed=True)
    out = capsys.readouterr().out
    assert out.count("You are an expert data assistant") == 1  # the system prompt, at the first step only
    assert "messages sent to the model (2 earlier messages, as above):" in out
    assert out.index("[system]") < out.index("step 1") < out.index("[user]\n    Observation:") < out.index("step 2")


def test_replay_before_any_run(capsys):
    CodeAgent(model=ScriptedModel([])).replay()
    assert "nothing to replay" in capsys.readouterr().out


def test_replay_covers_a_continued_conversation(capsys):
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")]))
    agent.run("first")
    agent.run("second", reset=False)
    capsys.readouterr()
    agent.replay()
    out = capsys.readouterr().out
    assert out.index("▶ task: first") < out.index("■ done") < out.index("▶ task: second")
    assert out.count("■ done") == 2


# -- interrupt ------------------------------------------------------------------------


class GatedModel(BaseModel):
    """Replies in order, but only once the test lets each reply go: the test knows when the model is thinking."""

    model_id = "gated"

    def __init__(self, replies: list[str]):
        super().__init__()
        self.replies = replies
        self.asked = [threading.Event() for _ in replies]
        self.release = [threading.Event() for _ in replies]

    async def generate(self, messages, stop_sequences=None):
        index = sum(event.is_set() for event in self.asked)
        self.asked[index].set()
        await asyncio.to_thread(self.release[index].wait, 10)
        return ModelResponse(self.replies[index])


def test_interrupt_from_another_thread_while_the_model_thinks_stops_before_its_code_runs():
    model = GatedModel([fence("made = 1"), fence("not_run = 1"), fence("final_answer(0)")])
    agent = CodeAgent(model=model)
    model.release[0].set()

    def person() -> None:  # another thread: a button, a timer, a signal handler
        model.asked[1].wait(10)  # step 2's model is thinking
        agent.interrupt()
        model.release[1].set()

    thread = threading.Thread(target=person)
    thread.start()
    assert agent.run("t") is None
    thread.join()
    run = agent.runs[-1]
    assert run.state == "stopped"
    assert agent.executor.namespace["made"] == 1 and "not_run" not in agent.executor.namespace
    assert not model.asked[2].is_set()  # no step after the interrupted one
    assert run.action_steps[-1].approval == "stop"
    assert "stopped the run before this code ran" in run.action_steps[-1].observation


def test_interrupt_between_steps_ends_after_the_current_one_and_the_agent_runs_again():
    def stop_from_a_thread(step, agent):
        if getattr(step, "step_number", 0) == 1:
            thread = threading.Thread(target=agent.interrupt)
            thread.start()
            thread.join()

    model = ScriptedModel([fence("a = 1"), fence("b = 2"), fence("final_answer('again')")])
    agent = CodeAgent(model=model, step_callbacks=[stop_from_a_thread])
    agent.run("t")
    assert agent.runs[-1].state == "stopped" and len(agent.runs[-1].action_steps) == 1
    assert "b" not in agent.executor.namespace and len(model.requests) == 1
    agent.step_callbacks.clear()
    assert agent.run("go on", reset=False) == "again"  # the next run is not stopped by the last one's interrupt
    assert agent.runs[-1].state == "done" and agent.executor.namespace["b"] == 2


# -- project rules --------------------------------------------------------------------


def test_rules_are_added_to_the_system_prompt_under_where_they_came_from():
    rules = Rules("Always use metric units.\nName results with a res_ prefix.", "/project/AGENTS.md")
    model = ScriptedModel([fence("final_answer(1)")])
    CodeAgent(model=model, rules=rules, instructions="Be brief.").run("t")
    system = model.requests[0][0]["content"]
    assert ("Additional instructions:\nBe brief.\n\nProject rules (from /project/AGENTS.md); follow them:\n"
            "Always use metric units.\nName results with a res_ prefix.") in system


def test_rules_as_text_and_blank_rules():
    model = ScriptedModel([fence("final_answer(1)")])
    CodeAgent(model=model, rules="Use SI units.").run("t")
    system = model.requests[0][0]["content"]
    assert "Project rules (from the agent's rules= argument); follow them:\nUse SI units." in system
    assert CodeAgent(model=ScriptedModel([]), rules="  \n").rules is None
    with pytest.raises(TypeError, match="rules must be a string"):
        CodeAgent(model=ScriptedModel([]), rules=3)


def test_a_secret_written_in_the_rules_never_reaches_the_model():
    key = "sk-proj-RulesFileKey0123456789abcdef"
    token = "Xq7bK2mPz9LwR4tY8vN1cJ5h"
    rules = Rules(f"Use the API with OPENAI_API_KEY={key}.\nThe service token: \"{token}\"\n"
                  "Prefer Qwen/Qwen2.5-Coder-32B-Instruct; data in ~/DataSets2024/SalesByRegionQ3.csv\n", "AGENTS.md")
    model = ScriptedModel([fence("final_answer(1)")])
    CodeAgent(model=model, rules=rules).run("t")
    system = model.requests[0][0]["content"]
    assert "Use the API with OPENAI_API_KEY=" in system and redact.MARK in system
    assert "Prefer Qwen/Qwen2.5-Coder-32B-Instruct; data in ~/DataSets2024/SalesByRegionQ3.csv" in system
    for secret in (key, token):
        assert not any(secret[i:i + redact.WINDOW] in system for i in range(len(secret) - redact.WINDOW + 1))
