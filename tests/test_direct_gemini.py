"""LiteLLMModel's direct route for Google AI Studio's Gemini models (core/direct_gemini.py).

Against the local test server's Gemini route (tests/openai_server.py answers ``.../models/<name>:generateContent``
and ``:streamGenerateContent`` in Gemini's JSON and SSE shapes): for every model the route takes, litellm
(``transport="litellm"``) and the direct route must post to the same path, with the key in the same place,
the same body, and read the same text and usage; requests litellm would change stay on litellm; error
statuses read as the OpenAI direct route's and 429/5xx are retried; and a fresh process running
``%%agent`` with a ``gemini/`` model never imports litellm.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from openai_server import MESSAGE_SHAPES, OpenAIServer, first_cell, weather

from smol_magic.core import direct, direct_gemini
from smol_magic.core.cost_map import bundled_map
from smol_magic.core.models import LiteLLMModel, ModelError

# A conversation with every text shape the agent sends: a system prompt, user and assistant turns, two user
# turns in a row (merged), an empty assistant turn (none), and a last user turn.
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Where?"}, {"role": "user", "content": "Paris."},
            {"role": "user", "content": "Now."}, {"role": "assistant", "content": None},
            {"role": "user", "content": "Go on."}]
# Every Gemini model the direct route takes, from litellm's own cost map (read without litellm).
GEMINI_MODELS = sorted(name.removeprefix("gemini/") for name in bundled_map()
                       if name.startswith("gemini/") and direct_gemini.chat_model(name.removeprefix("gemini/")))
KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "PALM_API_KEY", "GEMINI_API_BASE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch):
    for name in KEY_VARIABLES + direct_gemini.SETTINGS:
        monkeypatch.delenv(name, raising=False)


def ask(model: LiteLLMModel, streaming: bool, messages=MESSAGES, **options):
    async def go():
        if streaming:
            return [d async for d in model.generate_stream(messages, ["<end>"], **options)]
        return await model.generate(messages, ["<end>"], **options)

    return asyncio.run(go())


def read(reply, streaming: bool):
    """(text, usages) of a reply or of a stream's deltas."""
    if streaming:
        return "".join(d.content for d in reply), [d.token_usage for d in reply if d.token_usage]
    return reply.content, [reply.token_usage]


def test_the_route_takes_a_handful_of_models_and_leaves_the_rest():
    assert {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"} <= set(GEMINI_MODELS), GEMINI_MODELS
    for name in ("gemini-3-flash-preview", "gemini-3.1-pro-preview", "gemini-flash-latest", "gemini-3.6-flash",
                 "gemini-2.5-pro-preview-tts", "gemini-2.0-flash", "gemma-3-27b-it", "deep-research-preview-04-2026"):
        assert name not in GEMINI_MODELS and not direct_gemini.chat_model(name), name


@pytest.mark.parametrize("name", GEMINI_MODELS)
def test_both_routes_send_the_same_request_and_read_the_same_reply(srv: OpenAIServer, name: str):
    models = [LiteLLMModel("gemini/" + name, api_base=srv.base_url, api_key="k-gem", transport=transport,
                           temperature=0.3, top_p=0.9, max_tokens=200) for transport in ("litellm", "direct")]
    for streaming in (False, True):
        replies = []
        for model in models:
            srv.push_reply("Sunny in Paris, 21 C.", prompt_tokens=40, completion_tokens=9)
            replies.append(read(ask(model, streaming), streaming))
        (litellm_request, direct_request) = srv.requests[-2:]
        assert direct_request.path == litellm_request.path, name
        assert direct_request.body == litellm_request.body, name
        assert direct_request.headers["x-goog-api-key"] == litellm_request.headers["x-goog-api-key"] == "k-gem"
        assert "k-gem" not in direct_request.path
        assert direct_request.headers["content-type"] == litellm_request.headers["content-type"]
        assert replies[0] == replies[1], name
        assert replies[1][0] == "Sunny in Paris, 21 C." and replies[1][1][-1].input_tokens == 40
    assert srv.requests[-1].path == f"/v1/models/{name}:streamGenerateContent?alt=sse"
    assert srv.requests[-3].path == f"/v1/models/{name}:generateContent"
    config = srv.bodies[-1]["generationConfig"]
    assert config == {"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 200, "stop_sequences": ["<end>"]}


@pytest.mark.parametrize("messages", [
    *MESSAGE_SHAPES, pytest.param([{"role": "user", "content": "Hi.", "name": "ada"}], id="named"),
])
@pytest.mark.parametrize("name", ["gemini-2.5-flash", "gemini-exp-1206"])
def test_message_shapes_are_converted_as_litellm_converts_them(srv: OpenAIServer, name: str, messages):
    for transport in ("litellm", "direct"):
        srv.push_reply("ok")
        ask(LiteLLMModel("gemini/" + name, api_base=srv.base_url, api_key="k", transport=transport), False, messages)
    assert srv.bodies[0] == srv.bodies[1]


def test_the_usage_counts_thoughts_and_the_reply_skips_them_as_litellm_does():
    """Gemini 2.5 models think: their thought tokens come apart from candidatesTokenCount, and a thought part
    (includeThoughts) is not the reply's text. Streamed, litellm keeps the last non-zero counts."""
    usage = {"promptTokenCount": 30, "candidatesTokenCount": 5, "thoughtsTokenCount": 50, "totalTokenCount": 85}
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "thinking...", "thought": True}, {"text": "Final "}, {"text": "answer."}]},
        "finishReason": "STOP", "index": 0}], "usageMetadata": usage}
    from smol_magic.core.direct_gemini import reply

    # the server's shapes are read by both routes in the other tests; here litellm's own reading is the reference
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexGeminiConfig

    expected = VertexGeminiConfig._calculate_usage(answer)
    ours = reply(answer)
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (expected.prompt_tokens,
                                                                        expected.completion_tokens) == (30, 55)
    assert ours.choices[0].message.content == "Final answer."
    content, _ = VertexGeminiConfig().get_assistant_content_message(answer["candidates"][0]["content"]["parts"])
    assert content == ours.choices[0].message.content
    blocked = reply({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}})
    assert blocked.choices[0].message.content is None and blocked.usage.prompt_tokens == 3


def test_a_stream_of_many_chunks_reads_the_same_text_and_usage(srv: OpenAIServer):
    replies = []
    for transport in ("litellm", "direct"):
        srv.push_stream(["Thought: ", "the answer ", "is 42", "\n"], usage=(33, 12))
        model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport=transport)
        deltas = ask(model, streaming=True)
        replies.append(([d.content for d in deltas if d.content], [d.token_usage for d in deltas if d.token_usage]))
    assert replies[0] == replies[1]
    assert "".join(replies[1][0]) == "Thought: the answer is 42\n" and replies[1][1][0].output_tokens == 12


def test_the_address_and_key_are_litellm_s(monkeypatch: pytest.MonkeyPatch):
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    found = direct.route("gemini/gemini-2.5-flash", None, None, {}, "direct", MESSAGES, None)
    root = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
    assert found == direct.Route(root + ":generateContent", None, "GEMINI_API_KEY", direct.Api.GEMINI,
                                 root + ":streamGenerateContent?alt=sse")
    monkeypatch.setenv("PALM_API_KEY", "palm")
    monkeypatch.setenv("GEMINI_API_KEY", "gem")
    assert direct.route("gemini/gemini-2.5-flash", None, None, {}, "direct", MESSAGES, None).api_key == "gem"
    monkeypatch.setenv("GOOGLE_API_KEY", "goo")
    assert direct.route("gemini/gemini-2.5-flash", None, None, {}, "direct", MESSAGES, None).api_key == "goo"
    assert direct.route("gemini/gemini-2.5-flash", None, "given", {}, "direct", MESSAGES, None).api_key == "given"
    monkeypatch.setenv("GEMINI_API_BASE", "http://127.0.0.1:9/gem/")
    assert direct.route("gemini/gemini-2.5-flash", None, None, {}, "direct", MESSAGES, None).url == \
        "http://127.0.0.1:9/gem/models/gemini-2.5-flash:generateContent"


def test_requests_litellm_would_change_go_through_litellm(monkeypatch: pytest.MonkeyPatch):
    local = "http://127.0.0.1:8000/v1beta"

    def routed(model_id="gemini/gemini-2.5-flash", kwargs=None, messages=MESSAGES, tools=None, response_format=None,
               base=local):
        return direct.route(model_id, base, "k", kwargs or {}, "direct", messages, tools, response_format)

    assert routed() is not None
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    assert routed(tools=tools) is None, "tools: litellm writes functionDeclarations"
    assert routed(response_format={"type": "json_object"}) is None, "response_mime_type / response_schema"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/cat.png"}]}]
    assert routed(messages=image) is None, "content lists: litellm fetches and inlines images"
    calls = [{"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                                      "function": {"name": "f", "arguments": "{}"}}]}]
    assert routed(messages=calls) is None and routed(messages=[{"role": "tool", "content": "x"}]) is None
    signed = [{"role": "assistant", "content": "x", "provider_specific_fields": {"thought_signatures": ["s"]}}]
    assert routed(messages=signed) is None, "thought signatures: litellm sends them back"
    for kwargs in ({"reasoning_effort": "low"}, {"thinking": {"type": "enabled"}}, {"top_k": 3}, {"seed": 1},
                   {"safety_settings": []}, {"extra_headers": {"x": "y"}}):
        assert routed(kwargs=kwargs) is None, kwargs
    for name in ("gemini/gemini-3-flash-preview", "gemini/gemini-2.0-flash", "gemini/gemini-pro-latest",
                 "gemini/gemini-3.6-flash", "gemini/gemini-2.5-pro-preview-tts"):
        assert routed(model_id=name) is None, name
    assert routed(base="http://127.0.0.1:8000/v1beta?x=1") is None
    assert direct.route("gemini/gemini-2.5-flash", local, "k", {}, "litellm", MESSAGES, None) is None
    for setting in direct_gemini.SETTINGS + direct.LITELLM_SETTINGS:
        with monkeypatch.context() as env:
            env.setenv(setting, "1000")
            assert routed() is None, setting


@pytest.mark.parametrize("name", ["gemini-3-flash-preview", "gemini-2.0-flash"])
def test_models_left_to_litellm_are_ones_it_sends_otherwise(srv: OpenAIServer, name: str):
    """Gemini 3 (a different address without api_base; temperature and function-call rules) and a model the cost
    map does not list (litellm then merges the system prompt into the first user turn)."""
    assert direct.route("gemini/" + name, srv.base_url, "k", {"temperature": 0.3}, "direct", MESSAGES, None) is None
    srv.push_reply("ok")
    model = LiteLLMModel("gemini/" + name, api_base=srv.base_url, api_key="k", transport="direct", temperature=0.3)
    ask(model, False)
    assert "system_instruction" not in srv.bodies[-1] or name.startswith("gemini-3")


def test_tools_and_images_stay_on_litellm(srv: OpenAIServer):
    model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport="direct")
    assert model._route(MESSAGES, None, None) is not None
    assert model._route(MESSAGES, [weather], None) is None
    image = [{"role": "user", "content": [{"type": "text", "text": "what?"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    assert model._route(image, None, None) is None


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_errors_read_as_the_openai_route_s_and_429_500_are_retried(srv: OpenAIServer, streaming: bool):
    model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="bad", transport="direct",
                         retry_base_delay=0.01)
    srv.push_status(401, "API key not valid. Please pass a valid API key.")
    with pytest.raises(ModelError, match=r"^gemini/gemini-2.5-flash: HTTP 401: API key not valid") as error:
        ask(model, streaming)
    assert len(srv.requests) == 1, "a 401 is not retried"
    srv.push_status(401, "API key not valid. Please pass a valid API key.")
    openai_model = LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key="bad", transport="direct")
    with pytest.raises(ModelError) as openai_error:
        ask(openai_model, streaming)
    assert str(openai_error.value).replace("openai/local-model", "gemini/gemini-2.5-flash") == str(error.value)
    del srv.requests[:]
    srv.push_status(429, "Resource has been exhausted (e.g. check quota).").push_status(500, "Internal error")
    srv.push_reply("recovered", prompt_tokens=5, completion_tokens=2)
    text, usages = read(ask(model, streaming), streaming)
    assert (text, usages[-1].input_tokens, len(srv.requests)) == ("recovered", 5, 3)
    srv.push_status(503, "The model is overloaded.").push_status(503, "The model is overloaded.")
    srv.push_status(503, "The model is overloaded.").push_status(503, "The model is overloaded.")
    with pytest.raises(ModelError, match=r"HTTP 503: The model is overloaded.*"
                                         r"gave up after 4 attempts"):
        ask(model, streaming)


def test_a_missing_key_says_which_variable_to_set(srv: OpenAIServer):
    model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, transport="direct")
    with pytest.raises(ModelError, match="set GEMINI_API_KEY"):
        ask(model, False)
    assert srv.requests == []


def test_a_fresh_kernel_asks_gemini_without_importing_litellm(srv: OpenAIServer):
    """A two-step %%agent cell's requests leave without litellm: the key in x-goog-api-key only."""
    srv.push_reply("Thought: look first.\n```python\nprint('looked')\n```")
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES + direct.LITELLM_SETTINGS
           and not k.startswith("OPENAI_")}
    env.update(GEMINI_API_BASE=srv.base_url, GEMINI_API_KEY="gm-test", SMOL_MAGIC_STORE="",
               SMOL_MAGIC_MODEL="gemini/gemini-2.5-flash")
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False" in out, out
    request = srv.requests[0]
    assert request.path == "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse", request.path
    assert request.headers["x-goog-api-key"] == "gm-test" and "authorization" not in request.headers
    assert "gm-test" not in json.dumps(request.body) and request.body["system_instruction"]["parts"]
    second = srv.bodies[1]["contents"]  # the next step: the code as a model turn, its observation as a user turn
    assert [c["role"] for c in second[-2:]] == ["model", "user"] and "looked" in second[-1]["parts"][0]["text"]


@pytest.mark.parametrize("name", GEMINI_MODELS)
def test_the_address_is_the_one_litellm_computes(name: str, monkeypatch: pytest.MonkeyPatch):
    """Google's own address (no api_base: the test server cannot stand in for it) and a proxy's, from litellm's
    own ``get_token_and_url``; the key in a header of its own, as litellm sends it."""
    from litellm.main import vertex_chat_completion

    for name_ in KEY_VARIABLES:
        monkeypatch.delenv(name_, raising=False)
    for base in (None, "http://127.0.0.1:9/gem", "http://127.0.0.1:9/v1beta/"):
        found = direct.route("gemini/" + name, base, "k", {}, "direct", MESSAGES, None)
        for stream, url in ((False, found.url), (True, found.stream_url)):
            auth, expected = vertex_chat_completion.get_token_and_url(
                model=name, auth_header=None, gemini_api_key="k", vertex_project=None, vertex_location=None,
                vertex_credentials=None, stream=stream, custom_llm_provider="gemini", api_base=base)
            assert (url, direct_gemini.headers(found.api_key)) == (expected, auth), (name, base, stream)


def test_the_settings_left_to_litellm_change_its_request(srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch):
    """LITELLM_GEMINI_DEFAULT_MAX_OUTPUT_TOKENS: litellm adds an output budget to a request without one. And a
    parameter set to None is not sent, by either route."""
    for transport in ("litellm", "direct"):
        srv.push_reply("ok")
        ask(LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport=transport,
                         temperature=None, max_tokens=None), False)
    assert srv.bodies[0] == srv.bodies[1] and srv.bodies[1]["generationConfig"] == {"stop_sequences": ["<end>"]}
    monkeypatch.setenv("LITELLM_GEMINI_DEFAULT_MAX_OUTPUT_TOKENS", "1000")
    assert direct.route("gemini/gemini-2.5-flash", srv.base_url, "k", {}, "direct", MESSAGES, None) is None
    srv.push_reply("ok")
    ask(LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport="litellm"), False)
    assert srv.bodies[-1]["generationConfig"]["max_output_tokens"] == 1000


def _response(*parts, finish=None, usage=None, **extra):
    candidate = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **({"usageMetadata": usage} if usage else {}), **extra}


THOUGHTS = {"promptTokenCount": 30, "candidatesTokenCount": 4, "thoughtsTokenCount": 20, "totalTokenCount": 54}
# Gemini's replies beyond plain text, whole (generateContent) and in chunks (streamGenerateContent).
REPLIES = {
    "thinking": ([_response({"text": "Let me see.", "thought": True}, {"text": "Final "}, {"text": "answer."},
                            finish="STOP", usage=THOUGHTS)],
                 [_response({"text": "Let me see.", "thought": True},
                            usage={"promptTokenCount": 30, "thoughtsTokenCount": 20, "totalTokenCount": 50}),
                  _response({"text": "Final "}, usage={**THOUGHTS, "candidatesTokenCount": 2, "totalTokenCount": 52}),
                  _response({"text": "answer."}, finish="STOP", usage=THOUGHTS)]),
    "cumulative usage": ([_response({"text": "a"}, {"text": "b"}, finish="STOP",
                                    usage={"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11})],
                         [_response({"text": "a"}, usage={"promptTokenCount": 9, "candidatesTokenCount": 1,
                                                          "totalTokenCount": 10}),
                          _response({"text": "b"}, finish="STOP", usage={"promptTokenCount": 9,
                                                                         "candidatesTokenCount": 2,
                                                                         "totalTokenCount": 11}),
                          _response({"text": ""}, usage={"promptTokenCount": 0, "candidatesTokenCount": 0,
                                                         "totalTokenCount": 0})]),
    "blocked prompt": ([{"promptFeedback": {"blockReason": "SAFETY"},
                         "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}],
                       [{"promptFeedback": {"blockReason": "SAFETY"},
                         "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}]),
    "flagged": ([_response({"text": "partial"}, finish="RECITATION",
                           usage={"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6})],
                [_response({"text": "partial"}, usage={"promptTokenCount": 5, "totalTokenCount": 5}),
                 _response(finish="RECITATION",
                           usage={"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6})]),
    "no usage": ([_response({"text": "hi"}, finish="STOP")], [_response({"text": "hi"}, finish="STOP")]),
}


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("kind", list(REPLIES))
def test_gemini_s_other_replies_read_as_litellm_reads_them(srv: OpenAIServer, kind: str, streaming: bool):
    """Thought parts (not the reply's text; their tokens counted in the reply's), usage in every chunk (the last
    non-zero counts), a blocked prompt and a flagged reply (no text), no usageMetadata (litellm: an error;
    streamed, both estimate it)."""
    whole, chunks = REPLIES[kind]
    read_back = []
    for transport in ("litellm", "direct"):
        srv.push_gemini(*(chunks if streaming else whole))
        model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport=transport,
                             max_retries=0)
        try:
            read_back.append(read(ask(model, streaming), streaming))
        except ModelError as exc:
            read_back.append(("error", "malformed" in str(exc) or "usageMetadata" in str(exc)))
    assert read_back[0] == read_back[1], read_back
    if kind == "thinking":
        assert read_back[1][0] == "Final answer." and read_back[1][1][-1].output_tokens == 24


def test_an_error_mid_stream_reads_as_litellm_s(srv: OpenAIServer):
    """Gemini can answer 200 and then send an error chunk: both routes end the stream with its status and message."""
    errors = []
    for transport in ("litellm", "direct"):
        srv.push_gemini(_response({"text": "Hel"}),
                        {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}})
        model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=srv.base_url, api_key="k", transport=transport)
        with pytest.raises(ModelError, match="stream failed") as error:
            ask(model, True)
        errors.append(str(error.value))
    assert all("RESOURCE_EXHAUSTED - Quota exceeded." in e for e in errors), errors
