"""LiteLLMModel's direct route for Anthropic chat models (core/direct_anthropic.py), against the local test server.

For every Anthropic chat model in litellm's cost map, litellm (transport="litellm") and the direct route
(transport="direct") must send the same Messages body and headers and read the same reply text and usage,
streamed or not; requests litellm would change must still go through litellm; error statuses read and retry
as on the OpenAI direct route; and a fresh kernel-like process running ``%%agent`` with an ``anthropic/``
model never imports litellm.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from openai_server import OpenAIServer, first_cell, weather

from smol_magic.core import direct, direct_anthropic
from smol_magic.core.cost_map import bundled_map
from smol_magic.core.models import LiteLLMModel, ModelError, TokenUsage, marks_cache

# A conversation with what litellm's anthropic route rewrites: two leading system messages (one system list),
# consecutive user messages (merged), a final assistant message ending in whitespace (right-stripped).
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Sunny.  "},
            {"role": "user", "content": "And tomorrow?"}, {"role": "user", "content": "Be brief."},
            {"role": "assistant", "content": "Tomorrow: \n"}]
STOP = ["<end>", "Observation:", " "]  # a whitespace stop sequence: litellm keeps it (no drop_params)
# Every Anthropic chat model the direct route takes, from litellm's own cost map (read without litellm).
ANTHROPIC_MODELS = sorted(name for name in bundled_map() if direct_anthropic.served_name(name))
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
HEADERS = ("x-api-key", "anthropic-version", "anthropic-beta", "content-type", "accept", "authorization")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch):
    for name in ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", *direct_anthropic.OTHER_CREDENTIALS,
                 *direct_anthropic.SETTINGS, *direct.LITELLM_SETTINGS):
        monkeypatch.delenv(name, raising=False)


def base(srv: OpenAIServer) -> str:
    return srv.base_url.removesuffix("/v1")


def ask(model: LiteLLMModel, streaming: bool, messages=MESSAGES, **options):
    """(reply text, usage) as the agent reads them: the joined deltas and their usages when streaming."""
    async def go():
        if streaming:
            deltas = [d async for d in model.generate_stream(messages, STOP, **options)]
            return "".join(d.content for d in deltas), [d.token_usage for d in deltas if d.token_usage]
        reply = await model.generate(messages, STOP, **options)
        return reply.content, reply.token_usage

    return asyncio.run(go())


def sent_directly(request) -> bool:
    """litellm's requests carry its user agent; the direct route's are httpx's."""
    return not request.headers.get("user-agent", "").startswith("litellm")


@pytest.mark.parametrize("name", ANTHROPIC_MODELS)
def test_anthropic_models_on_the_direct_route_get_the_body_and_headers_litellm_sends(srv: OpenAIServer, name: str):
    sampling = {"temperature": 0.3, "top_p": 0.9} if direct_anthropic._sampling(name) else {"temperature": 1}
    for model_id in ("anthropic/" + name, name):
        assert direct_anthropic.marks_cache(name) == marks_cache(model_id), "the same cache marks as litellm's route"
        for options in ({**sampling, "max_tokens": 300}, {}):  # {}: litellm's default max_tokens for the model
            assert direct.route(model_id, base(srv), "k", options, "direct", MESSAGES, None).api is direct.Api.ANTHROPIC
            for streaming in (False, True):
                replies = []
                for transport in ("litellm", "direct"):
                    srv.push_reply("Sunny, 21 degrees.", prompt_tokens=40, completion_tokens=9, cache=(1200, 300))
                    model = LiteLLMModel(model_id, api_base=base(srv), api_key="k", transport=transport, **options)
                    replies.append(ask(model, streaming))
                (litellm_request, direct_request), case = srv.requests[-2:], (model_id, options, streaming)
                assert sent_directly(direct_request) and not sent_directly(litellm_request), case
                assert direct_request.path == litellm_request.path == "/v1/messages", case
                assert direct_request.body == litellm_request.body, case
                assert [direct_request.headers.get(h) for h in HEADERS] == \
                    [litellm_request.headers.get(h) for h in HEADERS], case
                assert replies[0] == replies[1], case
        body = srv.bodies[-1]
        assert body["model"] == name and body["stop_sequences"] == STOP and body["stream"] is True
        assert body["max_tokens"] == bundled_map()[name]["max_output_tokens"]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
        assert body["messages"][-1]["content"][-1]["text"] == "Tomorrow:", "the final assistant text right-stripped"
        assert [b["text"] for b in body["system"]] == ["You are terse.", "Answer in English."]
        assert srv.requests[-1].headers["x-api-key"] == "k"
    usage = TokenUsage(40 + 1200 + 300, 9)  # litellm counts the cache's reads and writes as input tokens
    assert replies == [("Sunny, 21 degrees.", [usage])] * 2


def test_an_agent_run_on_the_direct_route_sends_litellm_s_cache_marks(srv: OpenAIServer):
    """Three steps of a CodeAgent (cache_control on the system prompt and on the ends of earlier steps):
    the direct route's requests are litellm's, step by step."""
    from smol_magic import CodeAgent

    runs = []
    for transport in ("litellm", "direct"):
        for code in ("print('one')", "print('two')", "final_answer(3)"):
            srv.push_reply(f"Thought: next.\n```python\n{code}\n```", prompt_tokens=1200, completion_tokens=20)
        model = LiteLLMModel("anthropic/claude-sonnet-4-5", api_base=base(srv), api_key="k", transport=transport)
        assert CodeAgent(model=model, max_steps=3).run("count to three") == 3
        runs.append(srv.requests[-3:])
    for litellm_request, direct_request in zip(*runs):
        assert sent_directly(direct_request) and not sent_directly(litellm_request)
        assert direct_request.body == litellm_request.body
    assert '"cache_control"' in json.dumps(runs[1][-1].body["system"])


def test_anthropic_requests_litellm_would_change_go_through_litellm(srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch):
    model_id = "anthropic/claude-sonnet-4-5"

    def routed(kwargs=None, messages=MESSAGES, tools=None, key="k", given=base(srv), response_format=None,
               model=model_id):
        return direct.route(model, given, key, kwargs or {}, "direct", messages, tools, response_format)

    assert routed() == direct.Route(base(srv) + "/v1/messages", "k", "ANTHROPIC_API_KEY", direct.Api.ANTHROPIC)
    schema = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert routed(tools=schema) is None, "tools: litellm maps them to Anthropic's tool blocks"
    assert routed(response_format={"type": "json_object"}) is None, "litellm turns it into a tool or output_format"
    for kwargs in ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, {"reasoning_effort": "low"},
                   {"extra_headers": {"anthropic-beta": "x"}}, {"top_k": 5}, {"max_completion_tokens": 10}):
        assert routed(kwargs) is None, kwargs
    assert routed({"temperature": 0.3}, model="anthropic/claude-opus-4-7") is None, "litellm refuses it for this model"
    assert routed({"temperature": 1}, model="anthropic/claude-opus-4-7") is not None, "the one temperature it takes"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}]
    later_system = MESSAGES[2:4] + [{"role": "system", "content": "Now in French."}, MESSAGES[4]]
    blank = [{"role": "user", "content": " "}]
    tool_reply = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "a", "content": "x"}]
    named = [{"role": "user", "content": "hi", "name": "ann"}]
    only_system = [{"role": "system", "content": "sys"}]
    for messages, why in ((image, "images"), (later_system, "a system message mid-conversation"),
                          (blank, "blank text: litellm substitutes a placeholder"), (tool_reply, "tool results"),
                          (named, "fields litellm drops"), (only_system, "no conversation: litellm refuses it")):
        assert routed(messages=messages) is None, why
    assert routed(key="sk-ant-oat01-x") is None, "an OAuth token: litellm sends it as a Bearer, with beta headers"
    assert routed(given=base(srv) + "/v1?beta=true") is None
    assert routed(model="anthropic/claude-some-future-model") is None, "not in litellm's cost map"
    assert direct.route(model_id, base(srv), "k", {}, "litellm", MESSAGES, None) is None
    with monkeypatch.context() as env:
        env.setenv("ANTHROPIC_AUTH_TOKEN", "tok")
        assert routed(key=None) is None, "litellm then authenticates with a Bearer token"
        assert routed() is not None, "a key given wins, in litellm too"
    for setting in ("LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX", "LITELLM_MODIFY_PARAMS"):
        with monkeypatch.context() as env:
            env.setenv(setting, "true")
            assert routed() is None, setting
    # The requests themselves: a ToolCallingAgent's tools and an image go out through litellm.
    for messages, tools in ((MESSAGES, [weather]), (image, None)):
        srv.push_reply("ok")
        model = LiteLLMModel(model_id, api_base=base(srv), api_key="k", transport="direct")
        asyncio.run(model.generate(messages, tools_to_call_from=tools))
        assert not sent_directly(srv.requests[-1])
    assert "tools" in srv.bodies[-2] and srv.bodies[-1]["messages"][0]["content"][0]["type"] == "image"


def test_once_litellm_is_imported_auto_goes_through_it():
    import litellm  # noqa: F401

    assert direct.route("anthropic/claude-sonnet-4-5", None, "k", {}, "auto", MESSAGES, None) is None
    assert direct.route("anthropic/claude-sonnet-4-5", None, "k", {}, "direct", MESSAGES, None) is not None


def test_anthropic_requests_go_where_litellm_sends_them_with_its_key(monkeypatch: pytest.MonkeyPatch):
    """litellm's anthropic route: api_base, else ANTHROPIC_API_BASE, else ANTHROPIC_BASE_URL, else
    api.anthropic.com, with ``v1/messages`` added unless the path ends with it (``ensure_api_route``)."""
    from litellm.litellm_core_utils.url_utils import ensure_api_route

    def litellm_url(given):
        found = (given or os.environ.get("ANTHROPIC_API_BASE") or os.environ.get("ANTHROPIC_BASE_URL")
                 or "https://api.anthropic.com/v1/messages")
        return ensure_api_route(found, "v1/messages")

    monkeypatch.setenv("ANTHROPIC_API_KEY", " sk-ant-env ")
    for given in (None, "http://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/v1",
                  "http://127.0.0.1:9/v1/messages", "http://127.0.0.1:9/proxy/anthropic/"):
        found = direct.route("claude-haiku-4-5", given, None, {}, "direct", MESSAGES, None)
        assert found == direct.Route(litellm_url(given), "sk-ant-env", "ANTHROPIC_API_KEY", direct.Api.ANTHROPIC), given
    for variable in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"):  # set in this order: API_BASE wins over BASE_URL
        monkeypatch.setenv(variable, f"http://127.0.0.1:9/{variable.lower()}")
        assert direct.route("claude-haiku-4-5", None, None, {}, "direct", MESSAGES, None).url == litellm_url(None)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    model = LiteLLMModel("anthropic/claude-haiku-4-5", transport="direct")
    with pytest.raises(ModelError, match="set ANTHROPIC_API_KEY"):
        asyncio.run(model.generate(MESSAGES))


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_anthropic_errors_read_and_retry_as_on_the_openai_direct_route(srv: OpenAIServer, streaming: bool):
    def model(**options):
        return LiteLLMModel("anthropic/claude-sonnet-4-5", api_base=base(srv), api_key="k", transport="direct",
                            retry_base_delay=0.001, **options)

    srv.push_status(401, "invalid x-api-key")
    with pytest.raises(ModelError, match="anthropic/claude-sonnet-4-5: HTTP 401: invalid x-api-key"):
        ask(model(), streaming)
    assert len(srv.requests) == 1, "an authentication error is not retried"

    srv.push_status(429, "Number of request tokens has exceeded your per-minute rate limit")
    srv.push_status(529, "Overloaded")
    srv.push_reply("third time lucky", prompt_tokens=12, completion_tokens=3)
    text, usage = ask(model(max_retries=3), streaming)
    assert text == "third time lucky" and usage == ([TokenUsage(12, 3)] if streaming else TokenUsage(12, 3))
    assert len(srv.requests) == 4 and all(sent_directly(r) for r in srv.requests)

    for _ in range(3):
        srv.push_status(500, "Internal server error")
    with pytest.raises(ModelError) as info:
        ask(model(max_retries=2), streaming)
    assert str(info.value).startswith("anthropic/claude-sonnet-4-5: HTTP 500: Internal server error")
    assert "3 attempts" in str(info.value)

    srv.push_malformed("<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(ModelError, match="malformed response"):
        ask(model(), streaming)


def test_a_fresh_kernel_asks_an_anthropic_model_without_importing_litellm(srv: OpenAIServer):
    """SMOL_MAGIC_MODEL=anthropic/claude-sonnet-4-5, ANTHROPIC_API_BASE at the test server: %load_ext does not
    start importing litellm (the model does not need it) and the %%agent cell's requests leave without it."""
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))
           and k not in direct.LITELLM_SETTINGS}
    env.update(ANTHROPIC_API_BASE=base(srv), ANTHROPIC_API_KEY="sk-ant-test", SMOL_MAGIC_STORE="",
               SMOL_MAGIC_MODEL="anthropic/claude-sonnet-4-5")
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False" in out, out
    request = srv.requests[0]
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "sk-ant-test" not in json.dumps(request.body)
    assert request.body["model"] == "claude-sonnet-4-5" and request.body["stream"] is True
    assert request.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
