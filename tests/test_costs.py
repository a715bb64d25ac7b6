"""Cost and budgets: prices from litellm's cost map, shown with the tokens; --budget and --max-tokens stop a
run before the model call that would pass them, with what it has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the test reads litellm's map too, offline

from smol_magic import CodeAgent, ScriptedModel, ToolCallingAgent  # noqa: E402
from smol_magic.core import costs  # noqa: E402
from smol_magic.core.memory import AgentMemory, RunResult, RunState  # noqa: E402
from smol_magic.core.models import ModelResponse, TokenUsage  # noqa: E402

PRICED = "openai/gpt-4o-mini"


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def map_prices(key: str = "gpt-4o-mini") -> tuple[float, float]:
    """The prices as litellm itself holds them (imported here, in the test process only)."""
    import litellm

    entry = litellm.model_cost[key]
    return entry["input_cost_per_token"], entry["output_cost_per_token"]


def reply(code: str, tokens_in: int, tokens_out: int) -> ModelResponse:
    """A reply whose usage is what a provider would report."""
    return ModelResponse(fence(code), TokenUsage(tokens_in, tokens_out))


# -- TokenUsage and saved runs ---------------------------------------------------------------------


def test_costs_add_up_and_an_unknown_cost_counts_as_nothing():
    assert (TokenUsage(1, 2, 0.5) + TokenUsage(3, 4, 0.25)) == TokenUsage(4, 6, 0.75)
    assert (TokenUsage(1, 2) + TokenUsage(3, 4, 0.25)).cost == 0.25
    assert (TokenUsage(1, 2, 0.5) + TokenUsage(3, 4)).cost == 0.5
    assert (TokenUsage(1, 2) + TokenUsage(3, 4)).cost is None


def test_saved_memory_and_runs_keep_the_cost_and_old_files_still_load():
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)")], model_id=PRICED))
    run = agent.run("one", return_full_result=True)
    assert run.token_usage.cost is not None and run.token_usage.cost > 0

    memory = AgentMemory.from_json(agent.memory.to_json())
    assert memory.action_steps[0].token_usage == agent.memory.action_steps[0].token_usage
    again = RunResult.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.token_usage == run.token_usage

    old = json.loads(agent.memory.to_json())  # written before costs were kept: no "cost" anywhere
    for step in old["steps"]:
        if "token_usage" in step:
            del step["token_usage"]["cost"]
    old_run = run.to_dict()
    del old_run["token_usage"]["cost"]
    assert AgentMemory.from_json(json.dumps(old)).action_steps[0].token_usage.cost is None
    assert RunResult.from_dict(old_run).token_usage == TokenUsage(run.token_usage.input_tokens,
                                                                  run.token_usage.output_tokens)


def test_an_old_recording_without_costs_replays(tmp_path):
    from smol_magic.export.replay import ReplayModel

    path = tmp_path / "old.jsonl"
    agent = CodeAgent(model=ScriptedModel([fence("final_answer(2)")]))
    agent.run("two")
    request = agent.memory.action_steps[0].model_input_messages
    path.write_text(json.dumps({"smol_magic_recording": 1, "model_id": PRICED}) + "\n"
                    + json.dumps({"request": request, "reply": fence("final_answer(2)"),
                                  "token_usage": {"input_tokens": 5, "output_tokens": 3}}) + "\n")
    replayed = CodeAgent(model=ReplayModel(path)).run("two", return_full_result=True)
    assert replayed.output == 2 and replayed.token_usage == TokenUsage(5, 3)  # a replay costs nothing: no price


# -- prices ---------------------------------------------------------------------------------------


def test_prices_come_from_litellms_cost_map_by_the_models_id():
    expected = map_prices()
    assert costs.prices("openai/gpt-4o-mini") == expected  # LiteLLMModel ids: provider prefix
    assert costs.prices("gpt-4o-mini") == expected  # OpenAIServerModel ids: the bare name
    assert costs.cost("gpt-4o-mini", 1000, 100) == pytest.approx(1000 * expected[0] + 100 * expected[1])
    for unknown in ("scripted", "meta-llama/Llama-3.1-8B-Instruct", "anthropic/gpt-4o-mini", "", None):
        assert costs.prices(unknown) is None  # a provider prefix must be the entry's own provider
        assert costs.cost(unknown, 1000, 100) is None


def test_pricing_reads_the_bundled_map_without_importing_litellm():
    """Importing litellm takes seconds and, without LITELLM_LOCAL_MODEL_COST_MAP, fetches the map from the
    network: a run on a model that is not litellm's must do neither."""
    code = ("import sys\nfrom smol_magic.core import costs\n"
            "print(costs.prices('gpt-4o-mini') is not None, 'litellm' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_cost_formatting_is_compact():
    assert [costs.format_cost(d) for d in (1.234, 0.0012, 0.00004, 0.0, 1234.5, None)] == [
        "$1.23", "$0.0012", "<$0.0001", "$0", "$1,234.50", ""]


# -- each step's cost ------------------------------------------------------------------------------


def test_each_call_is_priced_planning_and_the_final_answer_after_max_steps_too():
    p_in, p_out = map_prices()
    model = ScriptedModel([ModelResponse("Plan: count.", TokenUsage(300, 20)), reply("x = 1", 400, 30),
                           reply("y = 2", 500, 40), ModelResponse("It is 3.", TokenUsage(600, 50))],
                          model_id=PRICED)
    agent = CodeAgent(model=model, max_steps=2, planning_interval=5)
    run = agent.run("add", return_full_result=True)

    assert run.state == RunState.MAX_STEPS and run.output == "It is 3."
    assert agent.memory.steps[1].token_usage.cost == pytest.approx(300 * p_in + 20 * p_out)  # the plan
    assert [s.token_usage.cost for s in run.action_steps] == pytest.approx(
        [400 * p_in + 30 * p_out, 500 * p_in + 40 * p_out])
    assert run.token_usage == TokenUsage(1800, 140, pytest.approx(1800 * p_in + 140 * p_out))


def test_an_unknown_model_shows_tokens_only(capsys):
    from smol_magic.ui.text import TextRenderer

    for model_id, priced in (("scripted", False), (PRICED, True)):
        agent = CodeAgent(model=ScriptedModel([fence("final_answer(1)")], model_id=model_id),
                          renderer=TextRenderer())
        run = agent.run("one", return_full_result=True)
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("■ done · 1 step · ") and " tokens in, " in line, line
        assert ("$" in line) is priced, line
        if priced:
            assert line.endswith(costs.format_cost(run.token_usage.cost))
        else:
            assert run.token_usage.cost is None


# -- budget and token cap --------------------------------------------------------------------------


def test_the_budget_stops_the_run_before_the_call_that_would_pass_it():
    p_in, p_out = map_prices()
    call = 20_000 * p_in + 1_000 * p_out  # what each call costs at the tokens the provider reports
    model = ScriptedModel([reply(f"x{n} = {n}", 20_000, 1_000) for n in range(5)], model_id=PRICED)
    agent = CodeAgent(model=model, budget=2.5 * call, max_steps=5)

    run = agent.run("count", return_full_result=True)

    assert len(model.requests) == 2  # the third call would have cost about one more `call`: past 2.5
    assert run.state == RunState.BUDGET and len(run.action_steps) == 2
    assert run.token_usage.cost == pytest.approx(2 * call)
    assert run.error.startswith(f"budget {costs.format_cost(2.5 * call)} reached: spent "
                                f"{costs.format_cost(2 * call)}, the next call would cost about $0.00")
    assert "raise --budget" in run.error
    assert agent.executor.namespace["x0"] == 0 and agent.executor.namespace["x1"] == 1  # what it made is kept


def test_the_token_cap_stops_the_run_before_the_call_that_would_pass_it():
    model = ScriptedModel([reply(f"x{n} = {n}", 1_000, 100) for n in range(5)])  # unknown price: tokens still count
    agent = ToolCallingAgent(model=model, max_tokens=2_500, max_steps=5, native_tools=False)

    run = agent.run("count", return_full_result=True)

    assert len(model.requests) == 2
    assert run.state == RunState.BUDGET and run.token_usage == TokenUsage(2_000, 200)
    assert re.match(r"token cap 2,500 reached: used 2,200 tokens, the next call would use about 1,\d\d\d;", run.error)
    assert "raise --max-tokens" in run.error


def test_a_budget_on_a_model_without_a_price_stops_before_the_first_call():
    model = ScriptedModel([fence("final_answer(1)")])
    run = CodeAgent(model=model, budget=1.0).run("one", return_full_result=True)
    assert model.requests == [] and run.state == RunState.BUDGET
    assert "the price of 'scripted' is not in litellm's cost map" in run.error and "max_tokens" in run.error


def test_the_expected_reply_is_the_models_max_tokens_when_it_sets_one():
    model = ScriptedModel([fence("final_answer(1)")], model_id=PRICED)
    model.kwargs = {"max_tokens": 4_000}
    guess = costs.estimate(model, [{"role": "user", "content": "x" * 400}], [])
    assert guess.input_tokens == 100 and guess.output_tokens == 4_000
    model.kwargs = {}
    calls = [costs.Call(400, TokenUsage(150, 70)), costs.Call(800, TokenUsage(300, 20))]
    guess = costs.estimate(model, [{"role": "user", "content": "x" * 1_200}], calls)
    assert guess.input_tokens == 300 + 100 and guess.output_tokens == 70  # the last report + what is new; longest
    shorter = costs.estimate(model, [{"role": "user", "content": "x" * 400}], calls)  # e.g. older steps compacted
    assert shorter.input_tokens == 150
    assert costs.estimate(model, [], []).output_tokens == costs.DEFAULT_REPLY_TOKENS


def test_a_managers_budget_bounds_its_managed_agents_and_counts_their_cost():
    p_in, p_out = map_prices()
    call = 20_000 * p_in + 1_000 * p_out
    helper_model = ScriptedModel([reply(f"h{n} = {n}", 20_000, 1_000) for n in range(5)], model_id=PRICED)
    helper = CodeAgent(model=helper_model, name="helper", description="Counts.", max_steps=5)
    boss_model = ScriptedModel([reply("said = helper(task='count')", 20_000, 1_000),
                                reply("final_answer(said)", 20_000, 1_000)], model_id=PRICED)
    boss = CodeAgent(model=boss_model, managed_agents=[helper], budget=3.5 * call)

    run = boss.run("delegate", return_full_result=True)

    assert len(boss_model.requests) == 1 and len(helper_model.requests) == 2
    helped = run.action_steps[0].managed_runs[0]
    assert helped.state == RunState.BUDGET and "of the manager reached" in helped.error
    assert "could not finish (budget)" in boss.executor.namespace["said"]
    assert run.state == RunState.BUDGET and run.token_usage.cost == pytest.approx(3 * call)
    assert helper.called_by is None  # called directly later, the helper has no manager's budget


def test_bad_budgets_in_the_library_say_what_to_write():
    model = ScriptedModel([])
    with pytest.raises(ValueError, match=r"budget must be a positive amount in US dollars, e\.g\. budget=0\.05"):
        CodeAgent(model=model, budget=-1)
    with pytest.raises(ValueError, match=r"max_tokens must be a positive whole number of tokens"):
        CodeAgent(model=model, max_tokens=-5)


# -- %%agent --budget / --max-tokens ---------------------------------------------------------------


@pytest.mark.parametrize("flags, message", [
    ("--budget -1", "--budget must be a positive amount in US dollars, e.g. --budget 0.05; got '-1'"),
    ("--budget abc", "--budget is an amount in US dollars, e.g. --budget 0.05; got 'abc'"),
    ("--budget 0", "--budget 0 would mean no budget: give a positive amount, e.g. --budget 0.05, or leave the "
                   "flag out for AgentMagics.budget"),
    ("--max-tokens 0", "--max-tokens 0 would mean no cap: give a positive amount, e.g. --max-tokens 20000"),
    ("--max-tokens lots", "--max-tokens is a whole number of tokens, e.g. --max-tokens 20000; got 'lots'"),
    ("--budget 0.05", "--budget $0.0500 cannot be checked: the price of 'scripted' is not in litellm's cost map. "
                      "Bound the run with --max-tokens N instead"),
])
def test_bad_budget_flags_are_one_clear_line_and_nothing_runs(ip, capsys, flags, message):
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    result = ip.run_cell(f"%%agent -m m {flags}\ntask")
    captured = capsys.readouterr()
    assert not result.success
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert m.requests == []


def test_budget_flags_and_settings_stop_a_run_in_the_shell(ip, capsys, caplog):
    ip.user_ns["m"] = m = ScriptedModel([reply(f"x{n} = {n}", 1_000, 100) for n in range(5)], model_id=PRICED)
    result = ip.run_cell("%%agent -m m --max-tokens 2500\ncount")
    out = capsys.readouterr().out
    assert result.success and len(m.requests) == 2 and ip.user_ns["x1"] == 1
    summary = out.strip().splitlines()[-1]
    p_in, p_out = map_prices()
    shown = costs.format_cost(2_000 * p_in + 200 * p_out)
    assert summary.startswith("■ budget · 2 steps · ") and f"2000 tokens in, 200 out · {shown}" in summary, summary
    assert "token cap 2,500 reached: used 2,200 tokens" in summary

    magics = ip.magics_manager.registry["AgentMagics"]
    ip.run_cell("%config AgentMagics.budget = -2")
    assert magics.budget == 0.0
    captured = capsys.readouterr()
    assert "AgentMagics.budget must be a positive amount in US dollars, not -2" in (
        caplog.text + captured.err + captured.out)
    ip.run_cell("%config AgentMagics.budget = 0.00001")
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")], model_id=PRICED)
    result = ip.run_cell("%%agent -m m --reset\none")
    assert result.success and m.requests == []
    assert "budget <$0.0001 reached: spent $0, the next call would cost about $0.000" in capsys.readouterr().out
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")], model_id=PRICED)
    result = ip.run_cell("%%agent -m m --reset --budget 1\none")  # the flag wins over the setting
    assert result.success and len(m.requests) == 1
