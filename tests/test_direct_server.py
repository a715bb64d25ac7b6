"""OpenAIServerModel's direct route (core/direct.py ``server_route``): the ``openai`` client's request, without it.

Against the local OpenAI-compatible server (tests/openai_server.py): the client (``transport="openai"``)
and the direct route send the same body and read the same reply; what the client adds itself keeps it;
errors and retries read the same; and a fresh kernel-like process running
``%%agent -m openai-server:...`` imports neither ``openai`` nor litellm.
"""

from __future__ import annotations

import json
import os

import pytest
from openai_server import OpenAIServer, ask, first_cell, tool_calls_read, weather

from smol_magic.core import direct
from smol_magic.core.models import ModelError, OpenAIServerModel



def model(srv: OpenAIServer, transport: str, **kwargs) -> OpenAIServerModel:
    return OpenAIServerModel("local-model", api_base=srv.base_url, api_key="sk-local", transport=transport,
                             retry_base_delay=0.001, **kwargs)


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
def test_the_client_and_the_direct_route_send_the_same_request_and_read_the_same_reply(srv: OpenAIServer,
                                                                                        streaming: bool):
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    replies = []
    for transport in ("openai", "direct"):
        srv.push_tool_calls(("weather", {"city": "Paris"}), usage=(40, 9))
        replies.append(ask(model(srv, transport, temperature=0.3, max_tokens=200), streaming,
                           tools_to_call_from=[weather], response_format=schema))

    client_body, direct_body = srv.bodies
    assert direct_body == client_body
    assert direct_body["model"] == "local-model" and direct_body["temperature"] == 0.3
    client_request, direct_request = srv.requests
    assert direct_request.path == client_request.path
    assert direct_request.headers["authorization"] == client_request.headers["authorization"] == "Bearer sk-local"
    replies = tool_calls_read(replies, streaming)
    assert replies[0] == replies[1]
    assert json.loads("".join(args for _, args in replies[1][0])) == {"city": "Paris"}


def test_text_replies_and_their_token_counts_read_the_same(srv: OpenAIServer):
    srv.push_reply("Thought: sum.\n```python\nfinal_answer(2)\n```", prompt_tokens=31, completion_tokens=12)
    srv.push_reply("Thought: sum.\n```python\nfinal_answer(2)\n```", prompt_tokens=31, completion_tokens=12)
    client, direct_reply = ask(model(srv, "openai"), False), ask(model(srv, "direct"), False)
    assert (direct_reply.content, direct_reply.token_usage) == (client.content, client.token_usage)
    assert direct_reply.token_usage.input_tokens == 31


def test_what_the_client_adds_itself_keeps_the_client(monkeypatch: pytest.MonkeyPatch):
    """Parameters beyond the plain sampling ones (the client merges ``extra_body``, sends ``extra_headers``)
    and the organization header it reads from the environment go through the client."""
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    assert direct.server_route("http://127.0.0.1:1/v1", "k", {"temperature": 0.1}, "auto") is not None
    assert direct.server_route("http://127.0.0.1:1/v1", "k", {"extra_body": {"top_k": 5}}, "auto") is None
    assert direct.server_route("http://127.0.0.1:1/v1", "k", {}, "openai") is None
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    assert direct.server_route("http://127.0.0.1:1/v1", "k", {}, "auto") is None


def test_the_address_and_key_default_as_the_clients_do(monkeypatch: pytest.MonkeyPatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", *direct.OPENAI_HEADER_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    route = direct.server_route(None, None, {}, "auto")
    assert (route.url, route.api_key) == ("https://api.openai.com/v1/chat/completions", "none")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    route = direct.server_route(None, None, {}, "auto")
    assert (route.url, route.api_key) == ("http://127.0.0.1:9/v1/chat/completions", "sk-env")


def test_a_bad_transport_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, openai, direct"):
        OpenAIServerModel("m", transport="litellm")


def test_a_rate_limit_is_retried_and_a_bad_key_says_what_the_server_said(srv: OpenAIServer):
    srv.push_status(429, "slow down").push_reply("Thought: ok.\n```python\nfinal_answer(1)\n```")
    assert "final_answer(1)" in ask(model(srv, "direct"), False).content
    assert len(srv.requests) == 2

    srv.push_status(401, "Incorrect API key provided: sk-lo***al")
    with pytest.raises(ModelError) as refused:
        ask(model(srv, "direct"), False)
    assert "401" in str(refused.value) and "Incorrect API key" in str(refused.value)
    assert len(srv.requests) == 3  # an authentication error is not retried


def test_a_fresh_kernel_asks_an_openai_server_without_importing_openai_or_litellm(srv: OpenAIServer):
    srv.push_reply("Thought: greet.\n```python\nfinal_answer('hi there')\n```")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_API_KEY="sk-test", SMOL_MAGIC_STORE="",
               SMOL_MAGIC_MODEL=f"openai-server:local-model@{srv.base_url}")
    out = first_cell(env)
    assert "ANSWER hi there LITELLM False OPENAI False" in out, out
    assert srv.requests[0].headers["authorization"] == "Bearer sk-test"
    assert srv.bodies[0]["model"] == "local-model"


def test_a_script_using_the_python_api_ends_without_asyncio_warnings(srv: OpenAIServer, tmp_path):
    """``agent.run`` from a plain script (no Jupyter): the streamed replies' readers are closed before the
    private loop is, so nothing prints "Task was destroyed but it is pending!" at the end of each run, and
    no file is left open at exit (``python -X dev`` would say so)."""
    import subprocess
    import sys

    for _ in range(3):
        srv.push_reply("```python\nfinal_answer(6 * 7)\n```")
    script = tmp_path / "use.py"
    script.write_text(
        "from smol_magic import CodeAgent, OpenAIServerModel\n"
        f"model = OpenAIServerModel(model_id='local', api_base={srv.base_url!r}, api_key='k')\n"
        "print(CodeAgent(model=model).run('six times seven'))\n"
        "print(list(type(e).__name__ for e in CodeAgent(model=model).run('again', stream=True)))\n"
        "print(CodeAgent(model=model).run('once more'))\n")
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "always::ResourceWarning", str(script)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "42" and "FinalAnswerStep" in done.stdout
    assert "Task was destroyed" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr  # the captured output's spare files are closed
