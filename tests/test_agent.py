"""The agent loop from plain Python: parsing, feedback, limits, planning, memory."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from smol_magic import (
    ActionStep, AgentMemory, CodeAgent, FinalAnswerStep, ModelError, PlanningStep, ScriptedModel,
    TaskStep, tool,
)
from smol_magic.core.replies import parse_code
from smol_magic.core.text import truncate


def fence(code: str, thought: str = "Thought: next step.") -> str:
    return f"{thought}\n```python\n{code}\n```"


def last_user_message(model: ScriptedModel, request: int) -> str:
    return model.requests[request][-1]["content"]


@pytest.mark.parametrize(
    "reply, code",
    [
        ("Thought: x\n```python\nx = 1\n```", "x = 1"),
        ("```py\nx = 1\n```", "x = 1"),
        ("```\nx = 1\n```", "x = 1"),
        ("Thought: tags\n<code>\nx = 1\n</code>", "x = 1"),
        ("x = 1\nprint(x)", "x = 1\nprint(x)"),
        ("```python\na = 1\n```\nthen\n```python\nb = 2\n```", "a = 1"),  # only the first block runs
        ("Thought: cut by a stop sequence\n```python\nx = 1\n", "x = 1"),
    ],
)
def test_parse_code_variants(reply, code):
    assert parse_code(reply)[0] == code


@pytest.mark.parametrize("reply", ["I don't know.", "Done", "42", "", "The answer is clearly West"])
def test_prose_is_not_code(reply):
    assert parse_code(reply)[0] is None


def test_reasoning_is_reply_without_code():
    code, reasoning = parse_code("Thought: I sum.\n```python\ns = 1 + 1\n```")
    assert code == "s = 1 + 1"
    assert reasoning == "Thought: I sum."


def test_final_answer_returns_the_object_itself():
    agent = CodeAgent(model=ScriptedModel([fence("df = pd.DataFrame({'a': [1, 2]})\nfinal_answer(df)")]))
    agent.executor.namespace["pd"] = pd
    answer = agent.run("make a frame")
    assert isinstance(answer, pd.DataFrame)
    assert answer is agent.executor.namespace["df"]


def test_code_after_final_answer_does_not_run():
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)\nafter = True")]))
    assert agent.run("t") == 1
    assert "after" not in agent.executor.namespace


def test_except_exception_cannot_swallow_final_answer():
    agent = CodeAgent(model=ScriptedModel([fence("try:\n    final_answer(3)\nexcept Exception:\n    pass")]))
    assert agent.run("t") == 3


def test_exception_becomes_observation_and_loop_goes_on():
    model = ScriptedModel([fence("def f():\n    return 1 / 0\nf()"), fence("final_answer('recovered')")])
    agent = CodeAgent(model=model)
    assert agent.run("t") == "recovered"
    observation = last_user_message(model, 1)
    assert "ZeroDivisionError: division by zero" in observation
    assert "in f" in observation and "return 1 / 0" in observation  # the agent's own frame and source
    assert agent.memory.action_steps[0].error


def test_reply_without_code_asks_for_code():
    model = ScriptedModel(["I think the answer is West.", fence("final_answer('West')")])
    agent = CodeAgent(model=model)
    assert agent.run("t") == "West"
    assert "Your reply had no Python code to run" in last_user_message(model, 1)
    assert agent.prompt_templates["no_code_error"] in last_user_message(model, 1)


def test_guard_refusal_is_observed_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    model = ScriptedModel([
        fence(f"import os\nos.makedirs({str(marker)!r})"),
        fence("final_answer('ok')"),
    ])
    agent = CodeAgent(model=model)
    assert agent.run("t") == "ok"
    assert not marker.exists()
    observation = last_user_message(model, 1)
    assert "refused" in observation and "'os'" in observation
    assert agent.memory.action_steps[0].approval == "denied"


def test_max_steps_ends_with_a_summary_answer():
    model = ScriptedModel([fence("x = 1")] * 3 + ["The best I can say: x is 1."])
    agent = CodeAgent(model=model, max_steps=3)
    assert agent.run("t") == "The best I can say: x is 1."
    assert agent.runs[-1].state == "max_steps"
    assert len(model.requests) == 4
    assert "maximum number of steps" in last_user_message(model, 3)


def test_run_max_steps_argument_overrides():
    model = ScriptedModel([fence("x = 1"), "summary"])
    agent = CodeAgent(model=model, max_steps=10)
    assert agent.run("t", max_steps=1) == "summary"
    assert len(agent.memory.action_steps) == 1


def test_planning_steps_at_the_interval():
    model = ScriptedModel([
        "Plan: 1. look 2. answer",
        fence("x = 1"), fence("y = 2"),
        "Updated plan: answer now",
        fence("final_answer(x + y)"),
    ])
    agent = CodeAgent(model=model, planning_interval=2)
    assert agent.run("t") == 3
    kinds = [type(s).__name__ for s in agent.memory.steps]
    assert kinds == ["TaskStep", "PlanningStep", "ActionStep", "ActionStep", "PlanningStep", "ActionStep",
                     "FinalAnswerStep"]
    assert "plan" in last_user_message(model, 0).lower()
    assert "Do not write code" in last_user_message(model, 3)
    # the model is shown its own plan before it acts
    assert any("Plan: 1. look" in m["content"] for m in model.requests[1])


def test_step_callbacks_fire_after_each_step():
    seen, with_agent = [], []
    model = ScriptedModel([fence("x = 1"), fence("final_answer(x)")])
    agent = CodeAgent(
        model=model,
        step_callbacks=[lambda step: seen.append(type(step).__name__),
                        lambda step, agent: with_agent.append(agent)],
    )
    agent.run("t")
    assert seen == ["TaskStep", "ActionStep", "ActionStep", "FinalAnswerStep"]
    assert with_agent and all(a is agent for a in with_agent)


def test_stream_yields_steps_as_they_complete():
    model = ScriptedModel([fence("x = 1"), fence("final_answer(x)")])
    steps = CodeAgent(model=model).run("t", stream=True)
    first = next(steps)
    assert isinstance(first, TaskStep)
    assert model.requests == []  # nothing asked of the model before the next step is wanted
    rest = list(steps)
    assert [type(s) for s in rest] == [ActionStep, ActionStep, FinalAnswerStep]
    assert rest[-1].output == 1


def test_conversation_continues_unless_reset():
    model = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)"), fence("final_answer(3)")])
    agent = CodeAgent(model=model)
    agent.run("first task")
    agent.run("second task", reset=False)
    second = " ".join(m["content"] for m in model.requests[1])
    assert "first task" in second and "second task" in second
    agent.run("third task")
    third = " ".join(m["content"] for m in model.requests[2])
    assert "first task" not in third and "third task" in third


def test_variables_persist_between_runs_and_are_described():
    model = ScriptedModel([fence("total = 41"), fence("final_answer(total)"), fence("final_answer(total + 1)")])
    agent = CodeAgent(model=model)
    agent.run("t")
    assert agent.run("again") == 42
    assert "total: int = 41" in model.requests[2][-1]["content"]


def test_additional_args_are_variables_for_the_code():
    model = ScriptedModel([fence("final_answer(len(rows))")])
    agent = CodeAgent(model=model)
    assert agent.run("count the rows", additional_args={"rows": [1, 2, 3]}) == 3
    assert "rows: list of 3" in model.requests[0][-1]["content"]
    assert "rows" not in agent.executor.namespace  # given for the run only


def test_tools_are_shown_as_python_signatures_and_callable():
    @tool
    def population(city: str) -> int:
        """Population of a city.

        Args:
            city: the city's name
        """
        return {"Paris": 2_100_000}[city]

    model = ScriptedModel([fence("final_answer(population('Paris'))")])
    agent = CodeAgent(tools=[population], model=model)
    assert agent.run("t") == 2_100_000
    system = model.requests[0][0]["content"]
    assert "def population(city: str) -> int:" in system
    assert "city: the city's name" in system
    assert "def final_answer(answer: Any)" in system


def test_a_tool_that_raises_or_is_misused_is_an_observation():
    @tool
    def fetch(key: str) -> str:
        """Fetch a value.

        Args:
            key: which value
        """
        raise LookupError(f"no value for {key}")

    model = ScriptedModel([fence("fetch(3)"), fence("fetch('a')"), fence("final_answer('done')")])
    assert CodeAgent(tools=[fetch], model=model).run("t") == "done"
    assert "argument 'key' must be str, got int. Call it as fetch(key: str) -> str" in last_user_message(model, 1)
    assert "LookupError: no value for a" in last_user_message(model, 2)


def test_observation_reports_variable_changes():
    model = ScriptedModel([fence("import pandas as pd\ntop = pd.DataFrame({'region': ['a'], 'revenue': [1]})"),
                           fence("final_answer(1)")])
    CodeAgent(model=model).run("t")
    assert "created top: DataFrame 1 x 2 (region:" in last_user_message(model, 1)


def test_long_output_is_truncated_for_the_model():
    model = ScriptedModel([fence("print('x' * 50_000)\nprint('THE END')"), fence("final_answer(1)")])
    agent = CodeAgent(model=model, max_observation_chars=2_000)
    agent.run("t")
    observation = last_user_message(model, 1)
    assert len(observation) < 2_200
    assert "characters cut" in observation and "THE END" in observation


def test_timeout_stops_a_runaway_action():
    model = ScriptedModel([fence("while True:\n    pass"), fence("final_answer('stopped')")])
    agent = CodeAgent(model=model, timeout=0.5)
    assert agent.run("t") == "stopped"
    assert "time limit" in last_user_message(model, 1)


def test_model_running_out_raises_a_clear_error_and_keeps_memory():
    agent = CodeAgent(model=ScriptedModel([fence("x = 1")]))
    with pytest.raises(ModelError, match="ran out of replies"):
        agent.run("t")
    assert agent.runs[-1].state == "failed"
    assert len(agent.memory.action_steps) == 1
    assert agent.executor.namespace["x"] == 1


def test_memory_round_trips_through_json_and_gives_full_code():
    model = ScriptedModel(["Plan: go", fence("import os"), fence("a = 1"), fence("b = a + 1\nfinal_answer(b)")])
    agent = CodeAgent(model=model, planning_interval=10)
    agent.run("t")
    text = agent.memory.to_json()
    again = AgentMemory.from_json(text)
    assert again.to_json() == text
    assert [type(s) for s in again.steps] == [type(s) for s in agent.memory.steps]
    assert isinstance(again.steps[1], PlanningStep) and again.steps[1].plan == "Plan: go"
    # the refused `import os` did not run, so it is not part of the script
    assert agent.memory.return_full_code() == "a = 1\n\nb = a + 1\nfinal_answer(b)"
    step = json.loads(text)["steps"][2]
    assert step["kind"] == "action" and step["verdict"]["decision"] == "deny"
    assert set(step) >= {"model_input_messages", "model_output", "code", "observation", "error", "start_time",
                         "end_time", "token_usage"}


def test_action_steps_record_timing_and_tokens():
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)")]))
    agent.run("t")
    step = agent.memory.action_steps[0]
    assert step.end_time >= step.start_time > 0
    assert step.token_usage.input_tokens > 0 and step.token_usage.output_tokens > 0
    assert agent.runs[-1].token_usage.input_tokens == step.token_usage.input_tokens


def test_truncate_keeps_head_and_tail():
    text = "A" * 100 + "Z" * 100
    out = truncate(text, 50)
    assert out.startswith("A") and out.endswith("Z") and "150 characters cut" in out


def test_agent_without_model_says_what_to_do():
    with pytest.raises(ValueError, match="needs a model"):
        CodeAgent()


def test_an_executor_that_fails_to_take_the_tools_puts_the_users_names_back_and_ends_the_run():
    """A remote kernel that dies while the run's tools are sent: the names already bound are undone,
    and the run is ended (its trace and store see an end), not left started."""
    from smol_magic.core.execution import LocalPythonExecutor
    from smol_magic.core.events import Renderer

    class DiesMidway(LocalPythonExecutor):
        def send_tools(self, tools):
            first = dict(list(tools.items())[:1])
            super().send_tools(first)  # one name bound, then the kernel is gone
            raise ConnectionError("the executor's kernel died")

    class Ends(Renderer):
        ended = []

        def run_finished(self, run):
            self.ended.append(run)

    executor = DiesMidway({"final_answer": "the user's own"})
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)")]), executor=executor)
    agent.renderer = Ends()
    with pytest.raises(ConnectionError):
        agent.run("anything")
    assert executor.namespace["final_answer"] == "the user's own"
    assert Ends.ended and Ends.ended[0] is agent.runs[-1]
    assert Ends.ended[0].state.value == "failed" and "kernel died" in Ends.ended[0].error
