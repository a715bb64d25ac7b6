"""LiteLLMModel's direct route (core/direct.py): the same request litellm sends, without importing litellm.

Against the local OpenAI-compatible server (tests/openai_server.py): both routes must send the same
body and read the same reply; requests litellm would change must go through litellm; and a fresh
kernel-like process running ``%%agent --model openai/...`` on a local server never imports litellm.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
from openai_server import OpenAIServer

from smol_magic.core import direct
from smol_magic.core.models import LiteLLMModel
from smol_magic.core.tools import tool

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Paris?"}]


@tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    return "sunny"


@pytest.fixture
def srv():
    with OpenAIServer() as server:
        yield server


def ask(model: LiteLLMModel, streaming: bool, **options):
    async def go():
        if streaming:
            return [d async for d in model.generate_stream(MESSAGES, ["<end>"], **options)]
        return await model.generate(MESSAGES, ["<end>"], **options)

    return asyncio.run(go())


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_both_routes_send_the_same_body_and_read_the_same_tool_calls(srv: OpenAIServer, streaming: bool):
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    replies = []
    for transport in ("litellm", "direct"):
        srv.push_tool_calls(("weather", {"city": "Paris"}), usage=(40, 9))
        model = LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key="k", transport=transport,
                             temperature=0.3, max_tokens=200)
        replies.append(ask(model, streaming, tools_to_call_from=[weather], response_format=schema))

    litellm_body, direct_body = srv.bodies
    assert direct_body == litellm_body
    assert direct_body["model"] == "local-model" and direct_body["tools"][0]["function"]["name"] == "weather"
    if streaming:
        replies = [([(c.name, c.arguments) for d in deltas for c in d.tool_calls if c.name or c.arguments],
                    [d.token_usage for d in deltas if d.token_usage]) for deltas in replies]
    else:
        replies = [([(c.name, c.arguments) for c in r.tool_calls], r.token_usage) for r in replies]
    assert replies[0] == replies[1]
    assert json.loads("".join(args for _, args in replies[1][0])) == {"city": "Paris"}


def test_requests_litellm_would_change_go_through_litellm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    local = "http://127.0.0.1:8000/v1"

    def routed(model_id="openai/local-model", base=local, kwargs=None, messages=MESSAGES, tools=None):
        return direct.route(model_id, base, "k", kwargs or {}, "direct", messages, tools)

    assert routed() == direct.Route(local + "/chat/completions", "k")
    assert routed(base=None) is None, "hosted OpenAI: litellm's model-specific rules apply"
    assert routed(base="https://api.openai.com/v1") is None
    assert routed(model_id="openai/gpt-4o-mini") is None, "a model litellm knows (its cost map)"
    assert routed(model_id="anthropic/claude-sonnet-4-5") is None
    assert routed(kwargs={"extra_headers": {"x": "y"}}) is None, "a parameter litellm maps or drops"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/cat.png"}]}]
    assert routed(messages=image) is None, "content litellm rewrites"
    patterned = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}}}]
    assert routed(tools=patterned) is None, "tool schemas litellm filters"
    assert direct.route("openai/local-model", local, "k", {}, "litellm", MESSAGES, None) is None
    monkeypatch.setenv("OPENAI_API_BASE", local)
    assert routed(base=None) is not None, "the server named by the environment, as litellm reads it"


def test_a_fresh_kernel_asks_a_local_server_without_importing_litellm(srv: OpenAIServer):
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "smol_magic")
        ip.run_cell("%%agent --model openai/local-model -o answer --approve never\\nSay hi.")
        print("ANSWER", ip.user_ns.get("answer"), "LITELLM", "litellm" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "SMOL_MAGIC_MODEL"}
    env.update(OPENAI_API_BASE=srv.base_url, OPENAI_API_KEY="sk-test", SMOL_MAGIC_STORE="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "ANSWER hi there LITELLM False" in out.stdout, out.stdout + out.stderr
    assert srv.requests[0].headers["authorization"] == "Bearer sk-test"
    assert srv.bodies[0]["model"] == "local-model"


def test_litellm_is_imported_at_load_ext_only_for_a_configured_model_that_needs_it(srv: OpenAIServer):
    """A hosted model (SMOL_MAGIC_MODEL=openai/gpt-4o-mini) needs litellm: %load_ext starts importing it in a
    thread, so the first %%agent cell does not wait seconds for it. A local server's model never imports it."""
    srv.push_reply("```python\nfinal_answer('local')\n```")
    code = textwrap.dedent("""
        import sys, time
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "smol_magic")
        if sys.argv[1] == "hosted":
            deadline = time.monotonic() + 90
            while "litellm" not in sys.modules and time.monotonic() < deadline:
                time.sleep(0.01)  # waiting on the import thread: no cell of the user's asks for litellm
        else:
            ip.run_cell("%%agent -o answer --approve never\\nSay hi.")
        print("ANSWER", ip.user_ns.get("answer"), "LITELLM", "litellm" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_BASE", "OPENAI_BASE_URL")}
    env.update(OPENAI_API_KEY="sk-test", SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL="openai/gpt-4o-mini")
    hosted = subprocess.run([sys.executable, "-c", code, "hosted"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert "ANSWER None LITELLM True" in hosted.stdout, hosted.stdout + hosted.stderr
    env.update(OPENAI_API_BASE=srv.base_url, SMOL_MAGIC_MODEL="openai/local-model")
    local = subprocess.run([sys.executable, "-c", code, "local"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert "ANSWER local LITELLM False" in local.stdout, local.stdout + local.stderr


def test_a_stream_without_usage_is_counted_as_litellm_counts_it(srv: OpenAIServer):
    """Some local servers send no usage in a stream: litellm then estimates it, and the direct route must too,
    or the trace, the costs and --max-tokens would see a different run."""
    usages = []
    for transport in ("litellm", "direct"):
        srv.push_stream(["Thought: ", "the answer is 42", "\n"], usage=None)
        model = LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key="k", transport=transport)
        usages.append([d.token_usage for d in ask(model, streaming=True) if d.token_usage])
    assert usages[0] == usages[1]
    assert len(usages[1]) == 1 and usages[1][0].input_tokens > 0 and usages[1][0].output_tokens > 0
