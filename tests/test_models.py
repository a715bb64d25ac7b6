"""Model clients against a real local HTTP server (tests/openai_server.py).

No mocks of litellm or huggingface_hub: every client test makes real HTTP
requests to 127.0.0.1, so a wrong URL, a dropped ``stop`` or a retry storm
shows up here and not in a user's notebook.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest
from openai_server import OpenAIServer

from smol_magic.core.models import (
    BaseModel,
    InferenceClientModel,
    LiteLLMModel,
    ModelError,
    OpenAIServerModel,
    ModelResponse,
    ScriptedModel,
    StreamDelta,
    TokenUsage,
)

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
API_KEY = "sk-local-test"


def litellm_client(srv: OpenAIServer, **kwargs) -> LiteLLMModel:
    return LiteLLMModel(
        "openai/local-model", api_base=srv.base_url, api_key=API_KEY, retry_base_delay=0.001, transport="litellm",
        **kwargs
    )


def direct_client(srv: OpenAIServer, **kwargs) -> LiteLLMModel:
    """The same model on its direct route (core/direct.py): what a fresh kernel uses, litellm not imported."""
    return LiteLLMModel(
        "openai/local-model", api_base=srv.base_url, api_key=API_KEY, retry_base_delay=0.001, transport="direct",
        **kwargs
    )


def hf_client(srv: OpenAIServer, **kwargs) -> InferenceClientModel:
    return InferenceClientModel(
        "local-model", base_url=srv.base_url, token=API_KEY, retry_base_delay=0.001, **kwargs
    )


def openai_client(srv: OpenAIServer, **kwargs) -> OpenAIServerModel:
    return OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY, retry_base_delay=0.001, **kwargs)


MakeModel = Callable[..., BaseModel]


@pytest.fixture(params=[litellm_client, direct_client, hf_client, openai_client],
                ids=["litellm", "litellm-direct", "hf", "openai-server"])
def make(request: pytest.FixtureRequest) -> MakeModel:
    return request.param


def generate(model: BaseModel, stop: list[str] | None = None) -> ModelResponse:
    return asyncio.run(model.generate(MESSAGES, stop))


def stream(model: BaseModel, stop: list[str] | None = None) -> list[StreamDelta]:
    async def collect() -> list[StreamDelta]:
        return [delta async for delta in model.generate_stream(MESSAGES, stop)]

    return asyncio.run(collect())


def call(model: BaseModel, streaming: bool) -> str:
    if streaming:
        return "".join(d.content for d in stream(model))
    return generate(model).content


# -- happy paths ---------------------------------------------------------------


def test_plain_reply_gives_content_and_token_usage(make: MakeModel, srv: OpenAIServer):
    srv.push_reply("Hello there!", prompt_tokens=21, completion_tokens=4)

    response = generate(make(srv))

    assert response.content == "Hello there!"
    assert response.token_usage == TokenUsage(21, 4)
    assert srv.bodies[0]["messages"] == MESSAGES
    assert not srv.bodies[0].get("stream")


def test_streaming_reply_joins_to_the_text_and_ends_with_usage(make: MakeModel, srv: OpenAIServer):
    text = "def add(a, b):\n    return a + b\n"
    srv.push_reply(text, prompt_tokens=30, completion_tokens=12)

    deltas = stream(make(srv))

    assert "".join(d.content for d in deltas) == text
    assert len([d for d in deltas if d.content]) > 1, "reply should arrive in several pieces"
    assert [d.token_usage for d in deltas if d.token_usage] == [TokenUsage(30, 12)]
    # Usage only comes back because the client asked for it.
    assert srv.bodies[0]["stream"] is True
    assert srv.bodies[0]["stream_options"] == {"include_usage": True}


def test_streaming_without_usage_from_server_still_gives_the_text(make: MakeModel, srv: OpenAIServer):
    srv.push_stream(["Thought: ", "easy.", "\n"], usage=None)

    deltas = stream(make(srv))

    assert "".join(d.content for d in deltas) == "Thought: easy.\n"
    # litellm estimates usage itself when the server sends none; either way it is counted at most once.
    assert len([d for d in deltas if d.token_usage]) <= 1


def test_stop_sequences_and_model_name_reach_the_server(make: MakeModel, srv: OpenAIServer):
    srv.push_reply("ok")
    srv.push_reply("ok")
    model = make(srv)

    generate(model, stop=["<end_code>", "Observation:"])
    stream(model, stop=["<end_code>"])

    assert [b["stop"] for b in srv.bodies] == [["<end_code>", "Observation:"], ["<end_code>"]]
    assert [b["model"] for b in srv.bodies] == ["local-model", "local-model"]
    assert all(b["messages"] == MESSAGES for b in srv.bodies)


def test_api_key_is_sent_as_bearer_authorization(make: MakeModel, srv: OpenAIServer):
    srv.push_reply("ok")

    generate(make(srv))

    assert srv.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert srv.requests[0].path == "/v1/chat/completions"


def test_hf_base_url_without_v1_posts_to_v1_chat_completions(srv: OpenAIServer):
    """A TGI/vLLM URL is often given bare (``http://host:port``); huggingface_hub appends ``/v1/chat/completions``."""
    srv.push_reply("bare url works")
    model = InferenceClientModel("local-model", base_url=srv.base_url.removesuffix("/v1"), token=API_KEY)

    assert generate(model).content == "bare url works"
    assert srv.requests[0].path == "/v1/chat/completions"


# -- failures ------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_rate_limit_is_retried_then_succeeds(make: MakeModel, srv: OpenAIServer, streaming: bool):
    srv.push_status(429, "Rate limit reached, slow down")
    srv.push_reply("second time lucky")

    assert call(make(srv, max_retries=3), streaming) == "second time lucky"
    assert len(srv.requests) == 2


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_server_error_past_max_retries_is_a_short_model_error(make: MakeModel, srv: OpenAIServer, streaming: bool):
    for _ in range(4):
        srv.push_status(500, "upstream overloaded")
    model = make(srv, max_retries=2)

    with pytest.raises(ModelError) as info:
        call(model, streaming)

    message = str(info.value)
    assert message.startswith(f"{model.model_id}: HTTP 500: upstream overloaded")
    assert "3 attempts" in message
    assert "\n" not in message and len(message) < 200
    assert len(srv.requests) == 3, "1 call + max_retries retries, no hidden retries inside the client library"
    assert srv.pending == 1


def test_auth_error_is_not_retried(make: MakeModel, srv: OpenAIServer):
    srv.push_status(401, "Incorrect API key provided")
    srv.push_reply("must not be reached")
    model = make(srv, max_retries=3)

    with pytest.raises(ModelError, match="HTTP 401: Incorrect API key provided") as info:
        generate(model)

    assert str(info.value).startswith(model.model_id)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_malformed_json_is_a_model_error_and_not_retried(make: MakeModel, srv: OpenAIServer, streaming: bool):
    srv.push_malformed("<html><body>502 Bad Gateway</body></html>")
    srv.push_reply("must not be reached")
    model = make(srv, max_retries=3)

    with pytest.raises(ModelError) as info:
        call(model, streaming)

    assert str(info.value).startswith(f"{model.model_id}: malformed response")
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 200
    assert len(srv.requests) == 1


def test_unreachable_server_is_a_model_error_after_retries(make: MakeModel):
    with OpenAIServer() as srv:
        model = make(srv, max_retries=1)
    # The server is closed now: the port refuses connections.

    with pytest.raises(ModelError, match="cannot connect") as info:
        generate(model)

    assert str(info.value).startswith(model.model_id)
    assert "2 attempts" in str(info.value)


# -- ScriptedModel -------------------------------------------------------------


def test_scripted_model_replies_in_order_and_records_requests():
    model = ScriptedModel(["first", "second"])
    conversation = [{"role": "user", "content": "go"}]

    async def run() -> list[str]:
        a = await model.generate(conversation)
        conversation.append({"role": "assistant", "content": a.content})
        b = await model.generate(conversation)
        return [a.content, b.content]

    assert asyncio.run(run()) == ["first", "second"]
    assert model.requests == [
        [{"role": "user", "content": "go"}],
        [{"role": "user", "content": "go"}, {"role": "assistant", "content": "first"}],
    ]
    assert model.remaining == 0


def test_scripted_model_running_out_raises_a_clear_error():
    model = ScriptedModel(["only one"])
    asyncio.run(model.generate(MESSAGES))

    with pytest.raises(ModelError, match="ran out of replies after 1"):
        asyncio.run(model.generate(MESSAGES))


def test_scripted_model_streams_its_reply_as_one_delta():
    deltas = stream(ScriptedModel(["Thought: done"]))

    assert [d.content for d in deltas] == ["Thought: done"]
    assert deltas[0].token_usage is not None


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_missing_api_key_fails_at_once_and_names_the_variable(
    srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch, streaming: bool
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    srv.push_reply("must not be reached")
    model = LiteLLMModel("openai/gpt-4o-mini", api_base=srv.base_url, max_retries=3)

    with pytest.raises(ModelError) as info:
        call(model, streaming)

    assert str(info.value) == (
        "openai/gpt-4o-mini: no API key: set OPENAI_API_KEY in the environment (or pass api_key=... to LiteLLMModel)"
    )
    assert srv.requests == [], "a configuration error is not a request, let alone four"


def test_error_mentioning_credentials_is_not_retried(srv: OpenAIServer):
    # Some providers (and litellm's wrapping of the openai client) report a missing key as a 500.
    srv.push_status(500, "Missing credentials. Please pass an `api_key`")
    srv.push_reply("must not be reached")
    model = litellm_client(srv, max_retries=3)

    with pytest.raises(ModelError, match="Missing credentials"):
        generate(model)

    assert len(srv.requests) == 1


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_hung_server_ends_at_the_model_timeout_with_a_clear_error(make: MakeModel, srv: OpenAIServer, streaming):
    srv.push_hang().push_hang().push_hang().push_hang()
    model = make(srv, max_retries=3, timeout=1.0)

    with pytest.raises(ModelError) as info:
        call(model, streaming)

    assert str(info.value).startswith(f"{model.model_id}: no reply within 1 s")
    assert "--model-timeout" in str(info.value)
    assert len(srv.requests) == 1, "the time was spent on one hung request: no retry fits in the bound"


def test_retry_after_is_honoured(make: MakeModel, srv: OpenAIServer):
    srv.push_status(429, "slow down", headers={"Retry-After": "1"})
    srv.push_reply("hello")
    model = make(srv, max_retries=3, timeout=30.0)

    assert generate(model).content == "hello"

    first, second = srv.requests
    assert second.at - first.at >= 0.95, "retried before the second the server asked for"


def test_retry_after_past_the_timeout_gives_up_at_once(make: MakeModel, srv: OpenAIServer):
    srv.push_status(503, "maintenance", headers={"Retry-After": "20"})
    srv.push_reply("must not be reached")
    model = make(srv, max_retries=3, timeout=5.0)

    with pytest.raises(ModelError) as info:
        generate(model)

    message = str(info.value)
    assert "HTTP 503: maintenance" in message and "asked to retry in 20 s" in message, message
    assert len(srv.requests) == 1
