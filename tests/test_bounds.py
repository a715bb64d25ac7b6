"""Replies and tasks with bounds: a huge reply or task is shown and re-sent in part; one code block runs.

The model's whole reply stays in the agent's memory; the trace shows its head and tail and says how
much it left out; later requests carry the same head and tail with a note. A provider's
context-length error becomes one line that suggests ``--reset``.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from smol_magic import CodeAgent, ScriptedModel
from smol_magic.core.models import InferenceClientModel, LiteLLMModel
from smol_magic.ui import html as h
from smol_magic.ui.text import TextRenderer

TWO_MB = 2_000_000


def fence(code: str) -> str:
    return f"```python\n{code}\n```"


def request_chars(request: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in request)


def static_trace(agent: CodeAgent) -> str:
    run = agent.runs[-1]
    return h.run_html(run.task, run.model_id, run.steps, run.state, run.duration, 0, 0, run.error)


def test_a_2mb_reply_is_kept_whole_but_shown_and_resent_in_part():
    thought = "Thought: " + "".join(f"line {i} of a very long thought\n" for i in range(70_000))
    assert len(thought) > TWO_MB
    model = ScriptedModel([thought + fence("x = 1"), fence("final_answer(x)")])
    text = io.StringIO()
    agent = CodeAgent(model=model, renderer=TextRenderer(write=text.write, show=lambda o: None))
    assert agent.run("think hard") == 1
    step = agent.memory.action_steps[0]
    assert step.model_output.startswith(thought)  # the whole reply is kept: %agent memory shows it
    later = model.requests[1]
    assert request_chars(later) < 60_000, "the reply is not sent again whole"
    resent = next(m["content"] for m in later if m["role"] == "assistant")
    assert resent.startswith("Thought: line 0 of") and "x = 1" in resent  # head and tail, the code kept
    assert "characters of your reply left out: too long to send again" in resent
    trace = static_trace(agent)
    assert len(trace) < 250_000, f"the saved trace holds {len(trace):,} characters"
    assert "characters not shown here; the whole text: %agent memory" in trace
    assert len(text.getvalue()) < 100_000


def test_a_1mb_task_is_shown_and_sent_in_part():
    task = "Summarise these notes:\n" + "".join(f"note {i}: revenue went up\n" for i in range(45_000))
    assert len(task) > 1_000_000
    model = ScriptedModel([fence("final_answer('short')")])
    agent = CodeAgent(model=model)
    agent.run(task)
    first = model.requests[0][-1]["content"]
    assert len(first) < 40_000
    assert first.startswith("New task:\nSummarise these notes:\nnote 0:") and "note 44999" in first
    assert "characters of the task left out: too long to send" in first
    assert agent.runs[-1].task == task  # kept whole
    assert len(static_trace(agent)) < 250_000


def test_only_the_first_code_block_runs(ip):
    ip.user_ns["df"] = df = pd.DataFrame({"a": [1, 2]})
    reply = ("Thought: load it.\n" + fence("loaded = df.a.sum()") +
             "\nDon't do this, it would delete your data:\n" + fence("wiped = True\ndel df"))
    ip.user_ns["m"] = model = ScriptedModel([reply, fence("final_answer(loaded)")])
    ip.run_cell("%%agent -m m -o out\nsum a")
    assert ip.user_ns["out"] == 3
    assert ip.user_ns["df"] is df and "wiped" not in ip.user_ns
    agent = ip.magics_manager.registry["AgentMagics"].current
    step = agent.memory.action_steps[0]
    assert step.code == "loaded = df.a.sum()"
    assert "only the first block ran, the others did not" in step.observation
    assert "only the first block ran" in model.requests[1][-1]["content"]
    assert "del df" in step.reasoning  # the block that did not run stays visible, as text


CONTEXT_MESSAGE = ("This model's maximum context length is 8192 tokens. However, your messages resulted in "
                   "12000 tokens. Please reduce the length of the messages.")


@pytest.mark.parametrize("client", ["litellm", "hf"])
def test_a_context_length_error_says_so_and_suggests_reset(ip, srv, client):
    srv.push_status(400, CONTEXT_MESSAGE)
    srv.push_reply("must not be reached")
    ip.user_ns["llm"] = (
        LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key="sk-local-test", retry_base_delay=0.001)
        if client == "litellm" else
        InferenceClientModel("local-model", base_url=srv.base_url, token="sk-local-test", retry_base_delay=0.001)
    )
    result = ip.run_cell("%%agent -m llm\nsum a")
    message = str(result.error_in_exec)
    assert "no longer fits the model's context window" in message and "%%agent --reset" in message, message
    assert "maximum context length is 8192" in message
    assert "\n" not in message and len(message) < 400
    assert len(srv.requests) == 1  # not retried
