"""smolagents' own tools and models given to our agent, as a user who already has them would.

Real smolagents objects (its ``@tool``, a ``Tool`` subclass, a ``ToolCollection``,
its ``OpenAIServerModel`` / ``LiteLLMModel`` / ``InferenceClientModel``) over real
HTTP to the local OpenAI-compatible server; nothing stands in for smolagents.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # smolagents' LiteLLMModel imports litellm itself

import pytest
import smolagents
from openai_server import OpenAIServer
from smolagents import tool  # smolagents checks that its decorator is spelled `@tool`

from smol_magic import CodeAgent, ModelError, ScriptedModel, TokenUsage
from smol_magic.core.interop import SyncModel

API_KEY = "sk-local-test"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


class Greeter(smolagents.Tool):
    name = "greet"
    description = "Greets a person by name."
    inputs = {
        "who": {"type": "string", "description": "the person's name"},
        "loud": {"type": "boolean", "description": "shout the greeting", "nullable": True},
    }
    output_type = "string"

    def __init__(self):
        super().__init__()
        self.setups = 0

    def setup(self):
        self.setups += 1  # smolagents runs an expensive setup once, on first use
        self.greeting = "Hello"
        self.is_initialized = True

    def forward(self, who: str, loud: bool | None = None) -> str:
        text = f"{self.greeting}, {who}"
        return text.upper() if loud else text


def reply(code: str) -> str:
    return f"Thought: go.\n```python\n{code}\n```"


def test_importing_smol_magic_imports_none_of_the_optional_frameworks():
    code = textwrap.dedent("""
        import sys
        import smol_magic
        from smol_magic import CodeAgent, ScriptedModel, Tool, tool

        @tool
        def double(x: int) -> int:
            '''Double a number.

            Args:
                x: the number
            '''
            return 2 * x

        agent = CodeAgent(tools=[double], model=ScriptedModel(["```python\\nfinal_answer(double(21))\\n```"]))
        print(agent.run("double 21"))
        print(sorted({m.split('.')[0] for m in sys.modules} & {"smolagents", "langchain_core", "transformers", "torch", "openai"}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["42", "[]"]


def test_smolagents_tools_and_collection_run_in_our_agent_with_their_schema(srv: OpenAIServer):
    greeter = Greeter()
    srv.push_reply(reply("final_answer([add(2, 3), greet('Ada', loud=True), greet(who='Bo')])"),
                   prompt_tokens=50, completion_tokens=9)
    model = smolagents.OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY)
    agent = CodeAgent(tools=[smolagents.ToolCollection([add]), greeter], model=model)

    assert agent.run("add and greet") == [5, "HELLO, ADA", "Hello, Bo"]
    assert greeter.setups == 1, "setup() runs once, through smolagents' own __call__"

    system = srv.bodies[0]["messages"][0]["content"]
    system = system if isinstance(system, str) else "".join(part["text"] for part in system)
    assert "def add(a: int, b: int) -> int:" in system and "the first number" in system
    assert "def greet(who: str, loud: bool = None) -> str:" in system and "Greets a person by name." in system
    assert agent.runs[-1].token_usage == TokenUsage(50, 9)


def test_a_wrong_call_to_a_smolagents_tool_is_an_observation_the_model_can_fix(srv: OpenAIServer):
    srv.push_reply(reply("add(2, '3')"))
    srv.push_reply(reply("final_answer(add(2, 3))"))
    model = smolagents.OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY)
    agent = CodeAgent(tools=[add], model=model)

    assert agent.run("add") == 5
    observation = agent.runs[-1].action_steps[0].observation
    assert "must be int, got str" in observation and "add(a: int, b: int) -> int" in observation


@pytest.mark.parametrize("kind", ["litellm", "inference_client", "openai_server"])
def test_smolagents_models_stream_into_our_agent_with_stop_sequences_and_usage(srv: OpenAIServer, kind: str):
    if kind == "litellm":
        model = smolagents.LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key=API_KEY)
    elif kind == "inference_client":
        # smolagents passes both model and base_url to huggingface_hub 2.x, which refuses that: a URL as model_id
        model = smolagents.InferenceClientModel(f"{srv.base_url}/chat/completions", api_key=API_KEY)
    else:
        model = smolagents.OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY)
    srv.push_reply(reply("x = 20 + 1\nfinal_answer(x * 2)"), prompt_tokens=40, completion_tokens=12)
    deltas: list[str] = []
    agent = CodeAgent(model=model, step_callbacks=[])
    agent.renderer.model_delta = deltas.append

    assert agent.run("compute") == 42
    body = srv.bodies[0]
    if kind != "inference_client":  # there the model id is the URL
        assert body["model"] == "local-model"
    assert "Observation:" in body["stop"]
    assert len(deltas) > 1, "the reply arrives in pieces, as the model streams it"
    assert agent.runs[-1].token_usage == TokenUsage(40, 12)


def test_a_failing_smolagents_model_is_a_short_model_error(srv: OpenAIServer):
    srv.push_status(401, "Incorrect API key provided")
    model = SyncModel(smolagents.OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY,
                                                   client_kwargs={"max_retries": 0}))

    with pytest.raises(ModelError) as info:
        asyncio.run(model.generate([{"role": "user", "content": "hi"}]))

    message = str(info.value)
    assert message.startswith("local-model: HTTP 401: Incorrect API key provided"), message
    assert "\n" not in message


def test_a_hung_smolagents_model_ends_at_the_timeout_and_the_loop_stays_free(srv: OpenAIServer):
    srv.push_hang()
    model = SyncModel(smolagents.OpenAIServerModel("local-model", api_base=srv.base_url, api_key=API_KEY),
                      timeout=1.0)
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(tick())
        try:
            await model.generate([{"role": "user", "content": "hi"}])
        finally:
            ticker.cancel()

    with pytest.raises(ModelError, match="no reply within 1 s"):
        asyncio.run(main())
    assert ticks >= 10, "the event loop kept running while the model's blocking call waited"


def test_agent_magic_runs_on_a_smolagents_model_held_in_a_variable(ip, srv: OpenAIServer):
    srv.push_reply(reply("total = add(20, 22)\nfinal_answer(total)"))
    ip.user_ns["smol_model"] = smolagents.LiteLLMModel("openai/local-model", api_base=srv.base_url, api_key=API_KEY)
    ip.user_ns["add"] = add

    result = ip.run_cell("%%agent -m smol_model\nAdd 20 and 22 with the add tool.")

    assert result.success, result.error_in_exec
    assert ip.user_ns["total"] == 42
    assert srv.requests[0].path == "/v1/chat/completions"


def test_optional_inputs_first_in_a_smolagents_schema_still_reach_the_right_parameters():
    class Power(smolagents.Tool):
        name = "power"
        description = "base ** exponent (exponent 2 when not given)."
        inputs = {
            "exponent": {"type": "integer", "description": "the exponent", "nullable": True},
            "base": {"type": "integer", "description": "the base"},
        }
        output_type = "integer"
        skip_forward_signature_validation = True  # smolagents would insist on a default for base too

        def forward(self, exponent=None, base=None):
            return base ** (2 if exponent is None else exponent)

    agent = CodeAgent(tools=[Power()], model=ScriptedModel(["```python\nfinal_answer([power(3), power(2, 5), power(base=2, exponent=3)])\n```"]))

    assert "def power(base: int, exponent: int = None) -> int:" in agent.system_prompt()
    assert agent.run("powers") == [9, 32, 8]
