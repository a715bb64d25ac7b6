"""Compaction: a long run's requests stay inside the model's context window; the memory keeps everything.

ScriptedModel reports input tokens as the characters of what it received / 4, the same estimate the
agent uses when a provider reports nothing; each request's size below is measured from what the model
received (``model.requests``), not taken from the agent's own estimate.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from smol_magic import (
    ChatMessageToolCall, CodeAgent, LiteLLMModel, ModelResponse, ScriptedModel, ToolCallingAgent, final_answer, tool,
)
from smol_magic.core import compaction
from smol_magic.core.models import TokenUsage
from smol_magic.safety import redact
from smol_magic.ui import html as h

LINES = 150  # each step prints this many lines (~8,700 characters, ~2,200 tokens)
WINDOW = 20_000


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def printing(n: int, lines: int = LINES) -> str:
    return fence(f'print("\\n".join("step {n} row %d: %s" % (i, "x" * 40) for i in range({lines})))')


def long_run(steps: int, lines: int = LINES, model_class: type = ScriptedModel, **kwargs: Any) -> CodeAgent:
    replies = [printing(n, lines) for n in range(1, steps)] + [fence(f"final_answer({steps})")]
    agent = CodeAgent(model=model_class(replies), max_steps=steps, **kwargs)
    assert agent.run("print many rows") == steps
    return agent


def request_tokens(messages: list[dict[str, Any]]) -> int:
    """What the model received, in tokens as a ScriptedModel counts them (characters / 4)."""
    return sum(len(m.get("content") or "") for m in messages) // 4


def test_a_100_step_run_stays_under_the_context_window_and_overflows_it_without_compaction():
    agent = long_run(100, context_window=WINDOW)
    sizes = [request_tokens(r) for r in agent.model.requests]
    assert len(sizes) == 100 and max(sizes) < WINDOW
    assert [s.token_usage.input_tokens for s in agent.memory.action_steps] == sizes

    plain = long_run(100, compact_at=None, context_window=WINDOW)
    plain_sizes = [request_tokens(r) for r in plain.model.requests]
    assert max(plain_sizes) > 10 * WINDOW  # the same run, sent whole, would not fit ten times over

    last = agent.model.requests[-1]
    text = "\n".join(m["content"] for m in last)
    # Older steps: their code kept, their observations summarised; the latest step whole.
    assert 'print("\\n".join("step 1 row %d: %s"' in text
    assert "step 1 row 0: " in text and "step 1 row 1: " in text and "step 1 row 149: " in text
    assert "step 1 row 75: " not in text
    assert "lines left out: an older observation, summarised to fit the context window" in text
    assert all(f"step 99 row {i}: " in text for i in range(LINES))
    # The memory keeps every observation whole.
    first = agent.memory.action_steps[0]
    assert all(f"step 1 row {i}: " in first.observation for i in range(LINES))
    assert first.outputs and "step 1 row 75: " in first.outputs[0]["text"]


def test_compaction_moves_in_jumps_and_says_what_it_summarised():
    agent = long_run(40, context_window=WINDOW)
    steps = agent.memory.action_steps
    counts = [s.compaction.steps if s.compaction else 0 for s in steps]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] >= 30
    moves = sum(1 for a, b in zip(counts, counts[1:]) if b != a)
    assert moves < len(steps) / 2  # the boundary stays put between compactions (cache and memory stay shared)
    last = steps[-1].compaction
    assert last.window == WINDOW and last.numbers == [[1, last.steps]]
    assert last.label() == f"steps 1–{last.steps}"
    assert last.estimate < 0.75 * WINDOW


def test_nothing_is_compacted_without_a_known_window():
    agent = long_run(12)
    assert all(s.compaction is None for s in agent.memory.action_steps)
    assert request_tokens(agent.model.requests[-1]) > 11 * LINES * 50 // 4


def test_compaction_is_visible_in_what_the_model_saw():
    agent = long_run(30, context_window=WINDOW)
    steps = agent.memory.action_steps
    first = next(s for s in steps if s.compaction)
    before = steps[steps.index(first) - 1]
    view = h.model_view_html(first, shown=len(before.model_input_messages))
    label = f"steps 1–{first.compaction.steps}: observations summarised to fit the context window (20,000 tokens)"
    assert "smol-magic-compacted" in view and label in view
    # The messages this request compacted are shown again, as the model saw them: summarised.
    assert "lines left out: an older observation" in view
    assert "step 1 row 75: " not in view
    # The whole trace: the steps keep their full observations, the view of each request says what it summarised.
    run = agent.runs[-1]
    trace = h.run_html(run.task, run.model_id, run.steps, run.state, run.duration, 0, 0)
    assert trace.count("smol-magic-compacted") == sum(1 for s in steps if s.compaction)
    assert "step 1 row 75: " in trace
    assert "smol-magic-compacted" not in h.model_view_html(steps[0])


class Inflated(ScriptedModel):
    """A provider whose tokenizer counts ten times what characters / 4 says."""

    async def generate(self, messages, stop_sequences=None, tools_to_call_from=None, response_format=None):
        response = await super().generate(messages, stop_sequences, tools_to_call_from, response_format)
        usage = response.token_usage
        return ModelResponse(response.content, TokenUsage(usage.input_tokens * 10, usage.output_tokens),
                             response.tool_calls)


def test_the_providers_reported_tokens_drive_the_estimate():
    plain = long_run(12, lines=20, context_window=WINDOW)
    assert all(s.compaction is None for s in plain.memory.action_steps)  # chars / 4 alone: far from the window
    inflated = long_run(12, lines=20, model_class=Inflated, context_window=WINDOW)
    compacted = [s for s in inflated.memory.action_steps if s.compaction]
    assert compacted
    # The first compaction came once the reported count (not chars / 4) passed 75% of the window.
    first = inflated.memory.action_steps.index(compacted[0])
    assert inflated.memory.action_steps[first - 1].token_usage.input_tokens > 0.5 * WINDOW


@tool
def table(rows: int) -> str:
    """A long text table.

    Args:
        rows: how many rows
    """
    return "\n".join(f"row {i}: " + "y" * 60 for i in range(rows))


def assert_valid_conversation(messages: list[dict[str, Any]]) -> None:
    """Every tool call answered, in order, by its id, right after the call."""
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            answers = messages[i + 1:i + 1 + len(ids)]
            assert [(m["role"], m["tool_call_id"]) for m in answers] == [("tool", id_) for id_ in ids]
        if message["role"] == "tool":
            assert messages[i - 1]["role"] in ("assistant", "tool")


def test_compacted_tool_calls_keep_each_answer_after_its_call():
    replies = [ModelResponse("", tool_calls=[ChatMessageToolCall(f"c{n}a", "table", '{"rows": 80}'),
                                             ChatMessageToolCall(f"c{n}b", "table", '{"rows": 3}')])
               for n in range(1, 30)]
    replies.append(ModelResponse("", tool_calls=[ChatMessageToolCall("end", "final_answer", '{"answer": "ok"}')]))
    model = ScriptedModel(replies)
    agent = ToolCallingAgent(tools=[table, final_answer], model=model, max_steps=30, context_window=8_000)
    assert agent.run("tables") == "ok"
    assert any(s.compaction for s in agent.memory.action_steps)
    for request in model.requests:
        assert_valid_conversation(request)
        assert sum(len(m.get("content") or "") for m in request) // 4 < 8_000
    last = model.requests[-1]
    calls = [c["id"] for m in last if m.get("tool_calls") for c in m["tool_calls"]]
    assert calls[:4] == ["c1a", "c1b", "c2a", "c2b"]  # the calls (the "code") are all still there
    answer = next(m for m in last if m.get("tool_call_id") == "c1a")["content"]
    assert "lines left out" in answer and "row 79: " in answer and "row 40: " not in answer
    assert "row 40: " in agent.memory.action_steps[0].tool_calls[0].observation


def test_compacted_requests_still_pass_the_redaction_gate():
    canary = "sk-proj-" + "Zq7" * 12
    replies = [fence("print(api_key)\n" + printing(1)[len("Thought: next.\n```python\n"):-len("\n```")])]
    replies += [printing(n) for n in range(2, 20)] + [fence("final_answer('done')")]
    model = ScriptedModel(replies)
    agent = CodeAgent(model=model, max_steps=20, context_window=WINDOW)
    try:
        assert agent.run("log in", additional_args={"api_key": canary}) == "done"
    finally:
        redact._REGISTERED.discard(canary)
        redact._CACHE.clear()
    assert any(s.compaction for s in agent.memory.action_steps)
    sent = json.dumps(model.requests)
    assert not any(canary[i:i + 8] in sent for i in range(len(canary) - 7))


def test_the_context_window_comes_from_the_agent_the_model_or_litellm():
    model = ScriptedModel([])
    assert compaction.context_window(model) is None
    model.context_window = 9_000
    assert compaction.context_window(model) == 9_000
    agent = CodeAgent(model=model, context_window=5_000)
    assert agent.context_window == 5_000
    # From litellm's cost map, read offline: the same before and after litellm is imported.
    before = compaction.context_window(LiteLLMModel("openai/gpt-4o-mini"))
    from smol_magic.core.models import _litellm

    litellm = _litellm()  # loaded by a LiteLLMModel's first request
    assert before == compaction.context_window(LiteLLMModel("openai/gpt-4o-mini")) \
        == litellm.get_model_info("openai/gpt-4o-mini")["max_input_tokens"] == 128_000
    assert compaction.context_window(LiteLLMModel("openai/a-model-behind-a-local-server")) is None
    assert compaction.context_window(ScriptedModel([], model_id="replay:openai/gpt-4o-mini")) == 128_000


def test_summaries_keep_first_and_last_lines_and_short_text_as_it_is():
    assert compaction.summarise("a\nb\nc") == "a\nb\nc"
    text = "\n".join(f"line {i}" for i in range(100))
    assert compaction.summarise(text).splitlines() == [
        "line 0", "line 1", "line 2",
        "… [95 lines left out: an older observation, summarised to fit the context window] …",
        "line 98", "line 99"]
    long_line = "z" * 5000
    assert compaction.summarise(long_line) == "z" * 200 + "… [4,800 characters left out]"
    assert compaction.summarise(text) == compaction.summarise(text)  # deterministic: replays send the same


def test_magic_settings_reach_the_agent(ip, capsys, caplog):
    ip.run_cell("%config AgentMagics.context_window = 20000")
    ip.run_cell("%config AgentMagics.compact_at = 0.5")
    replies = [printing(n) for n in range(1, 12)] + [fence("final_answer(12)")]
    ip.user_ns["m"] = ScriptedModel(replies)
    assert ip.run_cell("%%agent -m m --max-steps 12\nprint rows").success
    agent = ip.magics_manager.registry["AgentMagics"].current
    assert (agent.context_window, agent.compact_at) == (20_000, 0.5)
    assert any(s.compaction for s in agent.memory.action_steps)
    assert max(request_tokens(r) for r in ip.user_ns["m"].requests) < 0.5 * WINDOW + 2_500
    magics = ip.magics_manager.registry["AgentMagics"]
    ip.run_cell("%config AgentMagics.compact_at = 1.5")
    captured = capsys.readouterr()
    assert "AgentMagics.compact_at is a share of the context window, from 0 (never compact) to 1, not 1.5" in (
        captured.err + captured.out + caplog.text)
    assert magics.compact_at == 0.5
    ip.run_cell("%config AgentMagics.compact_at = 0")
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")])
    ip.run_cell("%%agent -m m\nagain")
    assert magics.current.compact_at is None


def test_a_replay_compacts_as_the_recorded_model_did(tmp_path):
    """Recorded from openai/gpt-4o-mini (litellm: 128,000 tokens) over HTTP, replayed offline: the same requests."""
    from openai_server import OpenAIServer

    from smol_magic.export.replay import RecordingModel, ReplayModel

    steps = 8
    replies = [printing(n) for n in range(1, steps)] + [fence(f"final_answer({steps})")]
    path = tmp_path / "run.jsonl"
    with OpenAIServer() as srv:
        for n, reply in enumerate(replies):  # the prompt grows by a step's ~2,200 tokens each time
            srv.push_reply(reply, prompt_tokens=1_000 + 2_200 * n, completion_tokens=40)
        model = LiteLLMModel("openai/gpt-4o-mini", api_base=srv.base_url, api_key="k", retry_base_delay=0.001)
        recorded = CodeAgent(model=RecordingModel(model, path), max_steps=steps, compact_at=0.05)
        assert recorded.run("print many rows") == steps
    assert any(s.compaction and s.compaction.window == 128_000 for s in recorded.memory.action_steps)
    replayed = CodeAgent(model=ReplayModel(path), max_steps=steps, compact_at=0.05)
    assert replayed.run("print many rows") == steps  # a request that differed would stop it: "replay diverged"
    assert [s.model_input_messages for s in replayed.memory.action_steps] == [
        s.model_input_messages for s in recorded.memory.action_steps]


def test_a_detailed_replay_shows_the_summarised_messages_when_they_change():
    from smol_magic.ui.text import replay

    agent = long_run(12, context_window=WINDOW)
    out: list[str] = []
    replay(agent, detailed=True, write=out.append)
    text = "\n".join(out)
    assert any(s.compaction for s in agent.memory.action_steps)
    assert "lines left out: an older observation, summarised to fit the context window" in text


def test_turning_compaction_off_sends_the_conversation_whole_again():
    agent = long_run(12, context_window=WINDOW)
    assert agent.memory.action_steps[-1].compaction is not None
    agent.compact_at = None
    agent.model.responses.append(fence("final_answer('again')"))
    assert agent.run("one more", reset=False) == "again"
    last = agent.memory.action_steps[-1]
    assert last.compaction is None and "step 1 row 75: " in last.model_input_messages[3]["content"]
