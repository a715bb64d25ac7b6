"""Prompt caching: what litellm really sends over HTTP (to the local test server) for an Anthropic model
(``cache_control`` on the stable prefix) and for an OpenAI one (nothing: OpenAI caches on its own)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai_server import OpenAIServer

from smol_magic import CodeAgent, LiteLLMModel
from smol_magic.core.models import cache_breakpoints, marks_cache


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def marked(blocks: Any) -> list[str]:
    """The texts of the blocks that carry an ephemeral cache_control."""
    if not isinstance(blocks, list):
        return []
    return [b.get("text", "") for b in blocks if b.get("cache_control") == {"type": "ephemeral"}]


def run_three_steps(srv: OpenAIServer, model: LiteLLMModel) -> list[dict[str, Any]]:
    for reply in (fence("print('one')"), fence("print('two')"), fence("final_answer(3)")):
        srv.push_reply(reply, prompt_tokens=1200, completion_tokens=20)
    assert CodeAgent(model=model, max_steps=3).run("count to three") == 3
    return srv.bodies


@pytest.mark.parametrize("transport", ["litellm", "direct"])
def test_an_anthropic_request_marks_the_system_prompt_and_the_end_of_earlier_steps(srv: OpenAIServer, transport: str):
    """Through litellm, and on the direct route (core/direct_anthropic.py), which must send the same marks."""
    model = LiteLLMModel("anthropic/claude-sonnet-4-5", api_base=srv.base_url.removesuffix("/v1"), api_key="k",
                         retry_base_delay=0.001, transport=transport)
    bodies = run_three_steps(srv, model)
    assert [r.path for r in srv.requests] == ["/v1/messages"] * 3
    for body in bodies:
        assert len(marked(body["system"])) == 1 and "final_answer" in marked(body["system"])[0]
        assert json.dumps(body).count('"cache_control"') <= 4  # Anthropic takes at most four marks
    first, second, third = bodies
    # Step 1: the system prompt and the task (the end of the conversation so far).
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert marked(first["messages"][0]["content"])[0].startswith("New task:\ncount to three")
    # Step 3: the last observation (read back by the next request) and the one before (cached by the last).
    users = [m for m in third["messages"] if m["role"] == "user"]
    assert [bool(marked(m["content"])) for m in users] == [False, True, True]
    assert marked(users[-1]["content"])[0].startswith("Observation:\ntwo")
    assert marked(users[-2]["content"])[0].startswith("Observation:\none")
    assistants = [m for m in third["messages"] if m["role"] == "assistant"]
    assert assistants and not any(marked(m["content"]) for m in assistants)
    # The stable prefix is the same text from one request to the next: what the provider caches.
    assert second["system"] == third["system"]


def test_an_openai_request_carries_no_cache_marks(srv: OpenAIServer):
    model = LiteLLMModel("openai/gpt-4o-mini", api_base=srv.base_url, api_key="k", retry_base_delay=0.001)
    bodies = run_three_steps(srv, model)
    assert [r.path for r in srv.requests] == ["/v1/chat/completions"] * 3
    for body in bodies:
        assert "cache_control" not in json.dumps(body)
        assert all(isinstance(m["content"], str) for m in body["messages"])


def test_which_models_are_marked():
    assert marks_cache("anthropic/claude-sonnet-4-5") and marks_cache("claude-sonnet-4-20250514")
    assert not marks_cache("openai/gpt-4o-mini")  # cached automatically by OpenAI
    assert not marks_cache("gemini/gemini-2.5-flash")  # Gemini's explicit cache is a stored resource: not asked for
    assert not marks_cache("openai/a-local-model")  # unknown to litellm


def test_marks_never_split_a_tool_call_from_its_answer():
    messages = [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "task"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "type": "function",
                                                             "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "result"},
    ]
    out = cache_breakpoints(messages)
    assert out[3]["tool_call_id"] == "a" and marked(out[3]["content"]) == ["result"]
    assert marked(out[1]["content"]) == ["task"] and marked(out[0]["content"]) == ["sys"]
    assert out[2] is messages[2] and messages[3]["content"] == "result"  # the caller's messages are not changed
