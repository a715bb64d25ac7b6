"""LiteLLMModel's direct route (core/direct.py): the same request litellm sends, without importing litellm.

Against the local OpenAI-compatible server (tests/openai_server.py): both routes must send the same
body and read the same reply, for a model litellm does not know and for every hosted OpenAI model
that litellm's cost map puts on the direct route (litellm applying openai.com's rules, through an
``openai`` client aimed at the test server, and a proxy's); requests litellm would change must go
through litellm; and a fresh kernel-like process running ``%%agent --model openai/...`` never
imports litellm.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import openai
import pytest
from openai_server import MESSAGES, OpenAIServer, ask, first_cell, tool_calls_read, weather

from smol_magic.core import direct
from smol_magic.core.cost_map import bundled_map
from smol_magic.core.models import LiteLLMModel

# Every hosted OpenAI model the direct route takes, from litellm's own cost map (read without litellm).
DIRECT_OPENAI_MODELS = sorted(name for name in bundled_map() if direct.plain_openai_chat_model(name))
DEEPSEEK_MODELS = sorted({name.removeprefix("deepseek/") for name in bundled_map()
                          if direct.deepseek_chat_model(name.removeprefix("deepseek/"))})


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
    replies = tool_calls_read(replies, streaming)
    assert replies[0] == replies[1]
    assert json.loads("".join(args for _, args in replies[1][0])) == {"city": "Paris"}


@pytest.mark.parametrize("name", DIRECT_OPENAI_MODELS)
def test_hosted_openai_models_on_the_direct_route_get_the_body_litellm_sends(
        srv: OpenAIServer, name: str, monkeypatch: pytest.MonkeyPatch):
    """litellm is asked twice: with no api_base (openai.com's rules: its client is aimed at the test server)
    and at a proxy's api_base; the direct route must send what both send and read the same tool calls."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert direct.route("openai/" + name, None, "k", {}, "direct", MESSAGES, None) == direct.Route(
        "https://api.openai.com/v1/chat/completions", "k")
    schema = None if name in direct.NO_RESPONSE_FORMAT else {"type": "json_object"}
    models = [LiteLLMModel("openai/" + name, api_key="k", transport="litellm", temperature=0.3, max_tokens=200,
                           client=openai.AsyncOpenAI(base_url=srv.base_url, api_key="k")),
              LiteLLMModel("openai/" + name, api_base=srv.base_url, api_key="k", transport="litellm",
                           temperature=0.3, max_tokens=200),
              LiteLLMModel("openai/" + name, api_base=srv.base_url, api_key="k", transport="direct",
                           temperature=0.3, max_tokens=200)]
    for streaming in (False, True):
        replies = []
        for model in models:
            srv.push_tool_calls(("weather", {"city": "Paris"}), usage=(40, 9))
            deltas = ask(model, streaming, tools_to_call_from=[weather], response_format=schema)
            calls = [(c.name, c.arguments) for d in deltas for c in d.tool_calls] if streaming else \
                [(c.name, c.arguments) for c in deltas.tool_calls]
            replies.append(json.loads("".join(args for _, args in calls)))
        hosted_body, proxy_body, direct_body = srv.bodies[-3:]
        assert direct_body == hosted_body == proxy_body, name
        assert direct_body["model"] == name and direct_body["stop"] == ["<end>"] and direct_body["temperature"] == 0.3
        assert replies == [{"city": "Paris"}] * 3


@pytest.mark.parametrize("name", ["o3-mini", "gpt-5-mini", "gpt-4"])
def test_openai_models_left_to_litellm_are_ones_it_changes(srv: OpenAIServer, name: str,
                                                            monkeypatch: pytest.MonkeyPatch):
    """The reasoning models (and gpt-4 with a response_format): litellm refuses or rewrites the agent's
    request (stop, temperature, response_format), so the direct route must not send it as it is."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    schema = {"type": "json_object"}
    assert direct.route("openai/" + name, None, "k", {}, "direct", MESSAGES, None, schema) is None
    model = LiteLLMModel("openai/" + name, api_key="k", transport="litellm", temperature=0.3,
                         client=openai.AsyncOpenAI(base_url=srv.base_url, api_key="k"))
    srv.push_reply("ok")
    try:
        ask(model, streaming=False, response_format=schema)
    except Exception as exc:  # litellm: UnsupportedParamsError
        assert "not support" in str(exc) or "only temperature=1" in str(exc).lower(), exc
        return
    sent = srv.bodies[-1]
    expected = direct.body({"model": "openai/" + name, "messages": MESSAGES, "stop": ["<end>"], "temperature": 0.3,
                            "response_format": schema})
    assert sent != expected


@pytest.mark.parametrize("name", DEEPSEEK_MODELS)
def test_deepseek_models_on_the_direct_route_get_the_body_litellm_sends(srv: OpenAIServer, name: str):
    models = [LiteLLMModel("deepseek/" + name, api_base=srv.base_url, api_key="k", transport=transport,
                           temperature=0.3, max_tokens=200) for transport in ("litellm", "direct")]
    for streaming in (False, True):
        replies = []
        for model in models:
            srv.push_tool_calls(("weather", {"city": "Paris"}), usage=(40, 9))
            deltas = ask(model, streaming, tools_to_call_from=[weather])
            calls = [(c.name, c.arguments) for d in deltas for c in d.tool_calls] if streaming else \
                [(c.name, c.arguments) for c in deltas.tool_calls]
            replies.append(json.loads("".join(args for _, args in calls)))
        litellm_body, direct_body = srv.bodies[-2:]
        assert direct_body == litellm_body, name
        assert direct_body["model"] == name and replies == [{"city": "Paris"}] * 2
    assert srv.requests[-1].headers["authorization"] == "Bearer k"


def test_deepseek_requests_go_where_litellm_sends_them_with_its_key(monkeypatch: pytest.MonkeyPatch):
    from litellm.llms.deepseek.chat.transformation import DeepSeekChatConfig

    def litellm_url(base):
        return DeepSeekChatConfig().get_complete_url(
            base or os.environ.get("DEEPSEEK_API_BASE"), "k", "deepseek-chat", {}, {})

    monkeypatch.delenv("DEEPSEEK_API_BASE", raising=False)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deep")
    for base in (None, "http://127.0.0.1:9/v1/", "http://127.0.0.1:9/v1/chat/completions"):
        found = direct.route("deepseek/deepseek-chat", base, None, {}, "direct", MESSAGES, None)
        assert found == direct.Route(litellm_url(base), "sk-deep", "DEEPSEEK_API_KEY")
    monkeypatch.setenv("DEEPSEEK_API_BASE", "http://127.0.0.1:9/beta")
    assert direct.route("deepseek/deepseek-chat", None, None, {}, "direct", MESSAGES, None).url == litellm_url(None)
    assert direct.route("deepseek/deepseek-chat", None, None, {"thinking": {"type": "enabled"}}, "direct",
                        MESSAGES, None) is None, "thinking: litellm maps it and fills reasoning_content"
    assert direct.route("deepseek/some-new-model", None, None, {}, "direct", MESSAGES, None) is None
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    model = LiteLLMModel("deepseek/deepseek-chat", transport="direct")
    with pytest.raises(Exception, match="set DEEPSEEK_API_KEY"):
        asyncio.run(model.generate(MESSAGES))


def test_requests_litellm_would_change_go_through_litellm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    local = "http://127.0.0.1:8000/v1"

    def routed(model_id="openai/local-model", base=local, kwargs=None, messages=MESSAGES, tools=None):
        return direct.route(model_id, base, "k", kwargs or {}, "direct", messages, tools)

    assert routed() == direct.Route(local + "/chat/completions", "k")
    assert routed(base=None) is None, "a model litellm does not know, at openai.com: its rules for unknown ids"
    assert routed(base="https://api.openai.com/v1") is None
    hosted = direct.Route("https://api.openai.com/v1/chat/completions", "k")
    assert routed(model_id="openai/gpt-4o-mini", base=None) == hosted, "a plain chat model in litellm's cost map"
    assert routed(model_id="gpt-4o-mini", base=None) == hosted, "a bare OpenAI id, as litellm resolves it"
    assert routed(model_id="openai/gpt-4o-mini") == direct.Route(local + "/chat/completions", "k")
    for reasoning in ("openai/o3-mini", "openai/o1", "openai/gpt-5-mini", "openai/gpt-5.1", "o4-mini"):
        assert routed(model_id=reasoning, base=None) is None, f"{reasoning}: litellm's reasoning-model rules"
    assert routed(model_id="openai/my-gpt-5-finetune") is None, "litellm's gpt-5 rules go by the name alone"
    assert direct.route("openai/gpt-4", None, "k", {}, "direct", MESSAGES, None, {"type": "json_object"}) is None
    assert routed(model_id="anthropic/claude-sonnet-4-5").api is direct.Api.ANTHROPIC, "tests/test_direct_anthropic.py"
    assert routed(model_id="anthropic/claude-sonnet-4-5", tools=[{"type": "function"}]) is None
    assert routed(model_id="anthropic/claude-some-future-model") is None, "not in litellm's cost map"
    combined = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "anyOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {}}}]}}}]
    assert routed(model_id="gpt-4o-mini", tools=combined) is None, "tool schemas litellm flattens for openai.com"
    assert routed(kwargs={"extra_headers": {"x": "y"}}) is None, "a parameter litellm maps or drops"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/cat.png"}]}]
    assert routed(messages=image) is None, "content litellm rewrites"
    patterned = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}}}]
    assert routed(tools=patterned) is None, "tool schemas litellm filters"
    assert direct.route("openai/local-model", local, "k", {}, "litellm", MESSAGES, None) is None
    monkeypatch.setenv("OPENAI_API_BASE", local)
    assert routed(base=None) is not None, "the server named by the environment, as litellm reads it"
    for header_variable in ("OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        with monkeypatch.context() as env:
            env.setenv(header_variable, "org-1")
            assert routed(model_id="gpt-4o-mini") is None, f"{header_variable}: a header litellm's client adds"
    for setting in ("LITELLM_ROUTE_ALL_CHAT_OPENAI_TO_RESPONSES", "LITELLM_MODIFY_PARAMS"):
        with monkeypatch.context() as env:
            env.setenv(setting, "true")
            assert routed(model_id="gpt-4o-mini") is None, f"{setting}: litellm sends another request"
            assert direct.route("deepseek/deepseek-chat", None, "k", {}, "direct", MESSAGES, None) is None


def test_once_litellm_is_imported_auto_goes_through_it(monkeypatch: pytest.MonkeyPatch):
    """Its callbacks and globals (litellm.api_base, success_callback...) apply to every request from then on."""
    import litellm  # noqa: F401

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert direct.route("openai/gpt-4o-mini", None, "k", {}, "auto", MESSAGES, None) is None
    assert direct.route("openai/local-model", "http://127.0.0.1:8000/v1", "k", {}, "auto", MESSAGES, None) is None
    assert direct.route("openai/gpt-4o-mini", None, "k", {}, "direct", MESSAGES, None) is not None


@pytest.mark.parametrize("model_id", ["openai/local-model", "openai/gpt-4o-mini", "gpt-4.1-mini"])
def test_a_fresh_kernel_asks_without_importing_litellm(srv: OpenAIServer, model_id: str):
    """A local server's model, and a hosted OpenAI chat model (OPENAI_API_BASE stands in for openai.com here):
    the first %%agent cell's requests leave without litellm, the key in the Authorization header only."""
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k not in direct.LITELLM_SETTINGS}
    env.update(OPENAI_API_BASE=srv.base_url, OPENAI_API_KEY="sk-test", SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL=model_id)
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False" in out, out
    assert srv.requests[0].headers["authorization"] == "Bearer sk-test"
    assert "sk-test" not in json.dumps(srv.bodies[0])
    assert srv.bodies[0]["model"] == model_id.removeprefix("openai/")


def test_litellm_is_imported_at_load_ext_only_for_a_configured_model_that_needs_it(srv: OpenAIServer):
    """A model litellm changes the request of (SMOL_MAGIC_MODEL=openai/o4-mini, a reasoning model) needs litellm:
    %load_ext starts importing it in a thread, so the first %%agent cell does not wait seconds for it.
    A local server's model never imports it."""
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
    env.update(OPENAI_API_KEY="sk-test", SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL="openai/o4-mini")
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
