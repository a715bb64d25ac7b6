"""Structured outputs over real HTTP: litellm and huggingface_hub against the local OpenAI-compatible server.

The request must carry the JSON-schema ``response_format``; the server's JSON reply must become the
step's thought and the code that runs. An endpoint that refuses the format is asked again without it.
"""

from __future__ import annotations

import json

import pytest
from openai_server import OpenAIServer

from smol_magic import CodeAgent, InferenceClientModel, LiteLLMModel
from smol_magic.core.agents import CODEAGENT_RESPONSE_FORMAT

API_KEY = "sk-local-test"


def litellm_client(srv: OpenAIServer) -> LiteLLMModel:
    return LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key=API_KEY, retry_base_delay=0.001)


def hf_client(srv: OpenAIServer) -> InferenceClientModel:
    return InferenceClientModel("local-model", base_url=srv.base_url, token=API_KEY, retry_base_delay=0.001)


@pytest.fixture(params=[litellm_client, hf_client], ids=["litellm", "hf"])
def make(request):
    return request.param


def sent_schema(body: dict) -> dict:
    """The JSON schema a request asked for: OpenAI's spelling (litellm), or TGI's (huggingface_hub's
    hf-inference provider turns the OpenAI form into ``{"type": "json_object", "value": schema}``)."""
    response_format = body["response_format"]
    if response_format["type"] == "json_schema":
        assert response_format["json_schema"]["name"] == "ThoughtAndCodeAnswer"
        return response_format["json_schema"]["schema"]
    assert response_format["type"] == "json_object"
    return response_format["value"]


def test_the_request_carries_the_json_schema_and_the_agent_runs_the_code(srv, make):
    srv.push_reply(json.dumps({"thought": "Sum the list first.", "code": "total = sum([1, 2, 3])\nprint(total)"}))
    srv.push_reply(json.dumps({"thought": "Double it.", "code": "final_answer(total * 2)"}))
    agent = CodeAgent(model=make(srv), use_structured_outputs_internally=True)
    assert agent.run("double the sum of 1, 2, 3") == 12
    assert agent.executor.namespace["total"] == 6
    bodies = srv.bodies
    assert len(bodies) == 2
    for body in bodies:
        assert sent_schema(body)["required"] == ["thought", "code"]
    first = agent.memory.action_steps[0]
    assert first.reasoning == "Sum the list first." and first.code == "total = sum([1, 2, 3])\nprint(total)"
    assert "6" in first.observation
    # what the model is sent back is its own JSON reply, then the observation
    assert json.loads(bodies[1]["messages"][-2]["content"])["thought"] == "Sum the list first."


def test_a_reply_that_is_not_json_is_parsed_as_text(srv, make):
    srv.push_reply("Thought: the server ignored the schema.\n```python\nfinal_answer('text')\n```")
    agent = CodeAgent(model=make(srv), use_structured_outputs_internally=True)
    assert agent.run("t") == "text"
    assert "response_format" in srv.bodies[0]


def test_an_endpoint_that_refuses_the_format_is_asked_again_without_it(srv, make):
    srv.push_status(400, "response_format json_schema is not supported by this model")
    srv.push_reply("```python\nx = 1\n```")
    srv.push_reply("```python\nfinal_answer(x + 1)\n```")
    agent = CodeAgent(model=make(srv), use_structured_outputs_internally=True)
    assert agent.run("t") == 2
    assert ["response_format" in body for body in srv.bodies] == [True, False, False]
    assert "not supported" in agent.response_format_refused


def test_other_errors_still_end_the_run(srv, make):
    srv.push_status(401, "invalid api key")
    agent = CodeAgent(model=make(srv), use_structured_outputs_internally=True)
    with pytest.raises(Exception, match="invalid api key"):
        agent.run("t")
    assert len(srv.bodies) == 1 and agent.response_format_refused is None


def test_without_the_option_no_response_format_is_sent(srv, make):
    srv.push_reply("```python\nfinal_answer(1)\n```")
    assert CodeAgent(model=make(srv)).run("t") == 1
    assert "response_format" not in srv.bodies[0]


def test_the_schema_is_smolagents_one():
    assert CODEAGENT_RESPONSE_FORMAT["json_schema"]["schema"]["properties"].keys() == {"thought", "code"}
    assert CODEAGENT_RESPONSE_FORMAT["json_schema"]["strict"] is True
