"""LiteLLMModel's direct route for Ollama's ``ollama/`` and ``ollama_chat/`` models (core/direct_ollama.py).

Against the local test server's Ollama routes (tests/openai_server.py answers ``/api/generate`` and
``/api/chat`` with Ollama's JSON reply or NDJSON stream): litellm (``transport="litellm"``) and the direct
route must post the same body to the same path (``/api/generate``, ``/api/chat``), without an Authorization
header, and read the same text and usage; requests litellm would send otherwise (tools, ``format``...) stay on litellm;
error statuses read as the other direct routes' and 5xx are retried; and a fresh process running
``%%agent`` with ``SMOL_MAGIC_MODEL=ollama/llama3.1`` never imports litellm.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from openai_server import MESSAGE_SHAPES, OpenAIServer, first_cell, weather

from smol_magic.core import direct, direct_ollama
from smol_magic.core.models import LiteLLMModel, ModelError

# Every text shape the agent sends: a system prompt, user and assistant turns, two user turns in a row
# (joined), an empty assistant turn (left out), and a last user turn.
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Where?"}, {"role": "user", "content": "Paris."},
            {"role": "user", "content": "Now."}, {"role": "assistant", "content": None},
            {"role": "user", "content": "Go on."}]
VARIABLES = ("OLLAMA_API_BASE", "OLLAMA_API_KEY")
PATHS = {"ollama/llama3.1": "/api/generate", "ollama_chat/llama3.1": "/api/chat"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch):
    for name in VARIABLES + direct.LITELLM_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def base(srv: OpenAIServer) -> str:
    return srv.base_url.removesuffix("/v1")  # Ollama's address has no /v1


def ask(model: LiteLLMModel, streaming: bool, messages=MESSAGES, stop=("<end>",)):
    async def go():
        if streaming:
            return [d async for d in model.generate_stream(messages, list(stop) or None)]
        return await model.generate(messages, list(stop) or None)

    return asyncio.run(go())


def read(reply, streaming: bool):
    """(text, usages, tool calls) of a reply or of a stream's deltas."""
    if streaming:
        return ("".join(d.content for d in reply), [d.token_usage for d in reply if d.token_usage],
                [(c.name, c.arguments) for d in reply for c in d.tool_calls])
    return reply.content, [reply.token_usage], [(c.name, c.arguments) for c in reply.tool_calls]


def both(srv: OpenAIServer, streaming: bool, push, messages=MESSAGES, stop=("<end>",), model_id="ollama/llama3.1",
         **options):
    """The same request by litellm then by the direct route (each answered by ``push()``): the two replies read."""
    replies = []
    for transport in ("litellm", "direct"):
        push()
        model = LiteLLMModel(model_id, api_base=base(srv), transport=transport, **options)
        replies.append(read(ask(model, streaming, messages, stop), streaming))
    return replies


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("options", [{}, {"temperature": 0.3, "top_p": 0.9, "max_tokens": 200}],
                         ids=["plain", "sampling"])
@pytest.mark.parametrize("stop", [(), ("<end>", "Observation:")], ids=["no-stop", "stop"])
@pytest.mark.parametrize("model_id", PATHS)
def test_both_routes_send_the_same_request_and_read_the_same_reply(srv: OpenAIServer, streaming: bool, options,
                                                                   stop, model_id: str):
    replies = both(srv, streaming, lambda: srv.push_reply("Sunny in Paris, 21 C.", 40, 9), stop=stop,
                   model_id=model_id, **options)
    litellm_request, direct_request = srv.requests[-2:]
    assert direct_request.path == litellm_request.path == PATHS[model_id]
    assert direct_request.body == litellm_request.body
    assert "authorization" not in direct_request.headers and "authorization" not in litellm_request.headers
    assert replies[0] == replies[1]
    assert replies[1][0] == "Sunny in Paris, 21 C." and (replies[1][1][-1].input_tokens,
                                                          replies[1][1][-1].output_tokens) == (40, 9)
    sent = direct_request.body
    assert sent["stream"] is streaming and sent["model"] == "llama3.1"
    expected = {"temperature": 0.3, "top_p": 0.9, "num_predict": 200} if options else {}
    assert sent["options"] == (dict(expected, stop=list(stop)) if stop else expected)


@pytest.mark.parametrize("messages", [
    *MESSAGE_SHAPES,
    pytest.param([{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                  {"role": "assistant", "content": "b"}, {"role": "system", "content": "t"},
                  {"role": "user", "content": "c"}], id="system-between"),
    pytest.param([{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>hmm</think>Yes."},
                  {"role": "user", "content": "r"}], id="think"),
])
@pytest.mark.parametrize("model_id", PATHS)
def test_message_shapes_are_sent_as_litellm_sends_them(srv: OpenAIServer, messages, model_id: str):
    both(srv, False, lambda: srv.push_reply("ok"), messages, model_id=model_id)
    assert srv.bodies[0] == srv.bodies[1]


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("lines", [
    # a thinking model: reasoning in a field of its own, or inline in <think> tags
    [{"response": "", "thinking": "Let me see.", "done": False}, {"response": "Hi ", "done": False},
     {"response": "there.", "done": False}, {"response": "", "done": True, "prompt_eval_count": 8, "eval_count": 3}],
    [{"response": "<think>", "done": False}, {"response": "hmm", "done": False}, {"response": "</think>", "done": False},
     {"response": "Answer.", "done": False}, {"response": "", "done": True, "prompt_eval_count": 8, "eval_count": 5}],
    # a reply that is a JSON object: litellm's stream holds it and makes it a tool call
    [{"response": '{"name": "weather", ', "done": False}, {"response": '"arguments": {"city": "Paris"}}', "done": False},
     {"response": "", "done": True, "prompt_eval_count": 8, "eval_count": 12}],
    [{"response": "  ```json\n{\"a\": ", "done": False}, {"response": "1}\n```", "done": False},
     {"response": "", "done": True, "prompt_eval_count": 8, "eval_count": 12}],
    # no counts at the end: litellm estimates the usage; so does the direct route
    [{"response": "Plain ", "done": False}, {"response": "text.", "done": False}, {"response": "", "done": True}],
], ids=["thinking-field", "think-tags", "json-tool-call", "json-fenced", "no-counts"])
def test_ollama_s_other_replies_read_as_litellm_reads_them(srv: OpenAIServer, streaming: bool, lines):
    if not streaming:  # the JSON reply: one object, the stream's text joined (the thinking field kept apart)
        text = "".join(line["response"] for line in lines)
        last = dict(lines[-1], response=text, **({"thinking": lines[0]["thinking"]} if "thinking" in lines[0] else {}))
        lines = [last]
    replies = both(srv, streaming, lambda: srv.push_ollama(*lines))
    assert replies[0] == replies[1]
    assert replies[1][0] or replies[1][2]


def chat(content: str = "", done: bool = False, **more):
    """One /api/chat reply object (``more``: the message's thinking or tool_calls, the counts when done)."""
    counts = {k: more.pop(k) for k in ("prompt_eval_count", "eval_count") if k in more}
    return {"model": "llama3.1", "message": {"role": "assistant", "content": content, **more}, "done": done,
            **({"done_reason": "stop"} if done else {}), **counts}


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("lines", [
    [chat(thinking="Let me see."), chat("Hi "), chat("there."), chat(done=True, prompt_eval_count=8, eval_count=3)],
    [chat("<think>"), chat("hmm"), chat("</think>"), chat("Answer."), chat(done=True, prompt_eval_count=8, eval_count=5)],
    [chat("<think>hmm</think>Answer."), chat(done=True, prompt_eval_count=8, eval_count=5)],
    [chat("Plain "), chat("text."), chat(done=True)],
], ids=["thinking-field", "think-tags", "think-inline", "no-counts"])
def test_ollama_chat_s_other_replies_read_as_litellm_reads_them(srv: OpenAIServer, streaming: bool, lines):
    if not streaming:
        message = {"content": "".join(line["message"]["content"] for line in lines)}
        message.update({k: v for line in lines for k, v in line["message"].items() if k == "thinking"})
        lines = [chat(done=True, **message, **{k: v for k, v in lines[-1].items() if k.endswith("count")})]
    replies = both(srv, streaming, lambda: srv.push_ollama(*lines), model_id="ollama_chat/llama3.1")
    assert replies[0] == replies[1]
    assert replies[1][0]


@pytest.mark.parametrize("model_id", PATHS)
def test_a_reply_without_counts_counts_as_litellm_does(srv: OpenAIServer, model_id: str):
    answer = chat("Hi.", done=True) if "chat" in model_id else {"response": "Hi.", "done": True}
    replies = both(srv, False, lambda: srv.push_ollama(answer), model_id=model_id)
    assert replies[0] == replies[1] and replies[1][1][0].input_tokens > 0


def test_the_address_is_litellm_s(monkeypatch: pytest.MonkeyPatch):
    def url(given=None, model_id="ollama/llama3.1"):
        found = direct.route(model_id, given, None, {}, "direct", MESSAGES, None)
        return found and found.url

    assert url() == "http://localhost:11434/api/generate"
    monkeypatch.setenv("OLLAMA_API_BASE", "http://gpu-box:11434/")
    assert url() == "http://gpu-box:11434/api/generate"
    assert url("http://other:8080/ollama") == "http://other:8080/ollama/api/generate"
    assert url("http://other:8080/api/generate/") == "http://other:8080/api/generate"
    assert url("http://other:8080/?x=1") is None
    assert url(model_id="ollama_chat/llama3.1") == "http://gpu-box:11434/api/chat"
    assert url("http://other:8080/api/chat", "ollama_chat/llama3.1") == "http://other:8080/api/chat"
    assert url("http://other:8080/api/generate", "ollama_chat/llama3.1") == "http://other:8080/api/generate/api/chat"


def test_requests_litellm_sends_otherwise_stay_on_litellm(srv: OpenAIServer, monkeypatch: pytest.MonkeyPatch):
    def routed(model_id="ollama/llama3.1", messages=MESSAGES, tools=None, response_format=None, api_key=None,
               transport="direct", **kwargs):
        return direct.route(model_id, base(srv), api_key, kwargs, transport, messages, tools, response_format)

    assert routed() is not None and routed().api is direct.Api.OLLAMA and routed().url.endswith("/api/generate")
    assert routed(messages=[]) is not None, "%load_ext does not start importing litellm for an ollama/ model"
    assert routed("ollama_chat/llama3.1").api is direct.Api.OLLAMA_CHAT
    assert routed(tools=[weather]) is None
    assert routed(response_format={"type": "json_object"}) is None
    image = [{"role": "user", "content": [{"type": "text", "text": "what?"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    assert routed(messages=image) is None
    assert routed(messages=[{"role": "tool", "content": "42", "tool_call_id": "c1"}]) is None
    assert routed(messages=[{"role": "user", "content": "hi", "name": "ada"}]) is None
    for option in ({"seed": 1}, {"frequency_penalty": 0.5}, {"reasoning_effort": "low"}, {"keep_alive": "5m"},
                   {"num_ctx": 8192}, {"think": True}, {"format": "json"}):
        assert routed(**option) is None, option
    assert routed(api_key="secret") is None, "litellm sends a key as Authorization: Bearer"
    assert routed("ollama_chat/llama3.1", api_key="secret") is None
    monkeypatch.setenv("OLLAMA_API_KEY", "secret")
    assert routed() is None
    monkeypatch.delenv("OLLAMA_API_KEY")
    monkeypatch.setenv("LITELLM_DROP_PARAMS", "True")
    assert routed() is None
    monkeypatch.delenv("LITELLM_DROP_PARAMS")
    assert routed(transport="litellm") is None
    import litellm  # noqa: F401 - imported, its globals (api_base, custom prompt templates) apply: "auto" uses it

    assert routed(transport="auto") is None


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("model_id", PATHS)
def test_errors_read_clearly_and_5xx_are_retried(srv: OpenAIServer, streaming: bool, model_id: str):
    model = LiteLLMModel(model_id, api_base=base(srv), transport="direct", retry_base_delay=0.01)
    srv.push_status(404, "model 'llama3.1' not found, try pulling it first")
    with pytest.raises(ModelError, match=f"^{model_id}: HTTP 404: model 'llama3.1' not found, try pulling"):
        ask(model, streaming)
    assert len(srv.requests) == 1, "a 404 is not retried"
    srv.push_status(500, "llama runner process has terminated")
    srv.push_status(503, "server busy").push_reply("recovered", 5, 2)
    text, usages, _ = read(ask(model, streaming), streaming)
    assert (text, usages[-1].input_tokens, len(srv.requests)) == ("recovered", 5, 4)
    for _ in range(4):
        srv.push_status(503, "server busy, please try again")
    with pytest.raises(ModelError, match=r"HTTP 503: server busy, please try again.*gave up after 4 attempts"):
        ask(model, streaming)


@pytest.mark.parametrize("model_id", PATHS)
def test_an_error_mid_stream_ends_the_stream_with_its_message(srv: OpenAIServer, model_id: str):
    first = chat("Hi") if "chat" in model_id else {"response": "Hi", "done": False}
    srv.push_ollama(first, {"error": "an error was encountered while running the model"})
    model = LiteLLMModel(model_id, api_base=base(srv), transport="direct")
    with pytest.raises(ModelError, match="an error was encountered while running the model"):
        ask(model, True)


def test_the_route_module_reads_no_jupyter_and_no_direct():
    source = open(direct_ollama.__file__, encoding="utf-8").read()
    assert "import direct" not in source and "from . import direct" not in source and "IPython" not in source


def test_a_fresh_kernel_asks_ollama_without_importing_litellm(srv: OpenAIServer):
    """A two-step %%agent cell's requests go to /api/generate without litellm, and without a key."""
    srv.push_reply("Thought: look first.\n```python\nprint('looked')\n```")
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES + direct.LITELLM_SETTINGS}
    env.update(OLLAMA_API_BASE=base(srv), SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL="ollama/llama3.1")
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False" in out, out
    first, second = srv.requests[:2]
    assert first.path == second.path == "/api/generate" and "authorization" not in first.headers
    assert first.body["prompt"].startswith("### System:\n") and first.body["model"] == "llama3.1"
    assert "looked" in second.body["prompt"] and "### Assistant:\n" in second.body["prompt"]


def test_a_fresh_kernel_asks_ollama_chat_without_importing_litellm(srv: OpenAIServer):
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES + direct.LITELLM_SETTINGS}
    env.update(OLLAMA_API_BASE=base(srv), SMOL_MAGIC_STORE="", SMOL_MAGIC_MODEL="ollama_chat/llama3.1")
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False" in out, out
    request = srv.requests[0]
    assert request.path == "/api/chat" and "authorization" not in request.headers
    assert request.body["messages"][0]["role"] == "system" and request.body["model"] == "llama3.1"
