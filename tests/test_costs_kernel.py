"""--budget in a real kernel, as JupyterLab drives it: a litellm model on the local OpenAI-compatible server,
priced from litellm's cost map, stopped before the call that would pass the budget."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported, here and in the kernel

from kernel_helpers import LiveCell, evaluate, html_text, ok, py  # noqa: E402
from openai_server import OpenAIServer  # noqa: E402

pytest_plugins = ["kernel_fixtures"]

TOKENS_IN, TOKENS_OUT = 20_000, 1_000  # what the server reports for each call


def shown_cost(dollars: float) -> str:
    """Dollars as the trace writes them at this size: four decimals."""
    assert 0.0001 <= dollars < 1
    return f"${dollars:.4f}"


def test_budget_stops_the_run_before_the_call_that_would_pass_it(kernel):
    import litellm

    km, kc = kernel
    entry = litellm.model_cost["gpt-4o-mini"]
    call = TOKENS_IN * entry["input_cost_per_token"] + TOKENS_OUT * entry["output_cost_per_token"]
    budget = round(2.5 * call, 6)  # two calls fit; the third would pass it
    with OpenAIServer() as srv:
        for n in range(4):
            srv.push_reply(py(f"step_{n} = {n}", f"step {n}"), prompt_tokens=TOKENS_IN, completion_tokens=TOKENS_OUT)
        ok(kc, "from smol_magic import LiteLLMModel\n"
               f"priced = LiteLLMModel('openai/gpt-4o-mini', api_base={srv.base_url!r}, api_key='sk-test')")

        cell = LiveCell(kc, f"%%agent -m priced --budget {budget} --cells off --approve never\ncount to three")
        result = cell.finish(timeout=90)

        assert len(srv.requests) == 2, [r.body for r in srv.requests]
    assert result.status == "ok", (result.ename, result.evalue, result.text)
    spent = 2 * call
    html = html_text(result.trace_html)
    assert f"{2 * TOKENS_IN} tokens in, {2 * TOKENS_OUT} out · {shown_cost(spent)}" in html, html  # the header
    message = (f"budget {shown_cost(budget)} reached: spent {shown_cost(spent)}, the next call would cost about "
               f"{shown_cost(call)}; raise --budget")
    assert f"budget · 2 steps · " in html and message in html, html  # the summary line says the budget stopped it
    assert message in result.trace  # the text trace too
    live = [html_text(w["state"].get("value", "")) for w in cell.watch.ever_opened("HTMLModel")]
    assert any(f"{n * TOKENS_IN} tokens in, {n * TOKENS_OUT} out · {shown_cost(n * call)}" in value
               for value in live for n in (1, 2)), live  # the live header, while it ran
    state, cost, kept = evaluate(kc, "(lambda r: (str(r.state), r.token_usage.cost, (step_0, step_1)))("
                                     "get_ipython().magics_manager.registry['AgentMagics'].current.runs[-1])")
    assert state == "budget" and abs(cost - spent) < 1e-12 and kept == (0, 1)


def test_a_model_without_a_price_shows_tokens_only_and_refuses_a_budget(kernel):
    km, kc = kernel
    with OpenAIServer() as srv:
        srv.push_reply(py("final_answer(3)"), prompt_tokens=900, completion_tokens=40)
        ok(kc, "from smol_magic import LiteLLMModel\n"
               f"local = LiteLLMModel('openai/my-local-model', api_base={srv.base_url!r}, api_key='sk-test')")

        refused = LiveCell(kc, "%%agent -m local --budget 0.05 --cells off\nthree").finish(timeout=60)
        assert refused.status == "error" and refused.ename == "UsageError"
        assert "--budget $0.0500 cannot be checked: the price of 'openai/my-local-model' is not in litellm's cost " \
               "map. Bound the run with --max-tokens N instead" in refused.evalue, refused.evalue
        assert srv.requests == []

        result = LiveCell(kc, "%%agent -m local --max-tokens 5000 --cells off --approve never\nthree").finish(
            timeout=60)
        assert len(srv.requests) == 1
    assert result.status == "ok", (result.ename, result.evalue)
    html = html_text(result.trace_html)
    assert "900 tokens in, 40 out" in html and "$" not in html, html
