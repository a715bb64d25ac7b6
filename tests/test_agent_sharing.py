"""Sharing an agent: ``to_dict`` / ``from_dict``, ``save`` / ``from_folder``, ``push_to_hub`` / ``from_hub``.

Real folders, and the real ``huggingface_hub`` client over HTTP to the local Hub stand-in (tests/hub_server.py).
"""

from __future__ import annotations

import builtins
import json
import math

import pytest
from hub_server import HubServer

from smol_magic import CodeAgent, LiteLLMModel, ScriptedModel, ToolCallingAgent, ToolDefinitionError, ToolLoadError, tool
from smol_magic.core.models import BaseModel

KEY = "sk-proj-Zq8Xw2Lm9Vb4Nc7Rt1Yh5Jk3"


@tool
def hypotenuse(a: float, b: float) -> float:
    """The hypotenuse of a right triangle.

    Args:
        a: one side
        b: the other side
    """
    return math.hypot(a, b)


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def team() -> CodeAgent:
    geometer = ToolCallingAgent(tools=[hypotenuse], name="geometer", description="answers geometry questions",
                                model=ScriptedModel(['{"name": "final_answer", "arguments": {"answer": 13}}']))
    return CodeAgent(tools=[hypotenuse], managed_agents=[geometer], max_steps=7, instructions="Answer in one word.",
                     additional_authorized_imports=["fractions"], name="lead", description="leads",
                     model=LiteLLMModel("openai/gpt-4o-mini", api_key=KEY, temperature=0.2))


@pytest.fixture
def hub(monkeypatch):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield server


def test_a_saved_agent_loads_with_its_settings_tools_and_team_and_no_key_on_disk(tmp_path):
    team().save(tmp_path / "lead")
    files = sorted(p.relative_to(tmp_path / "lead").as_posix() for p in (tmp_path / "lead").rglob("*") if p.is_file())
    assert files == ["agent.json", "managed_agents/geometer/agent.json", "managed_agents/geometer/prompts.yaml",
                     "managed_agents/geometer/requirements.txt", "managed_agents/geometer/tools/hypotenuse.py",
                     "prompts.yaml", "requirements.txt", "tools/hypotenuse.py"]
    written = "".join(p.read_text() for p in (tmp_path / "lead").rglob("*") if p.is_file())
    assert KEY[:12] not in written
    assert json.loads((tmp_path / "lead" / "agent.json").read_text())["model"] == {
        "class": "LiteLLMModel", "model_id": "openai/gpt-4o-mini", "parameters": {"temperature": 0.2}}

    loaded = CodeAgent.from_folder(tmp_path / "lead")
    assert (type(loaded), loaded.name, loaded.max_steps, loaded.instructions) == (CodeAgent, "lead", 7, "Answer in one word.")
    assert "fractions" in loaded.policy.authorized_imports
    assert (loaded.model.model_id, loaded.model.kwargs, loaded.model.api_key) == ("openai/gpt-4o-mini", {"temperature": 0.2}, None)
    assert loaded.prompt_templates == team().prompt_templates
    assert type(loaded.managed_agents["geometer"].agent) is ToolCallingAgent

    # with a model given, it runs: its own tool, and its managed agent with the model it was saved with
    loaded = CodeAgent.from_folder(tmp_path / "lead", model=ScriptedModel(
        [fence("print(hypotenuse(a=5, b=12), geometer(task='the hypotenuse of 5 and 12'))"), fence("final_answer('thirteen')")]))
    assert loaded.run("How long is the hypotenuse?") == "thirteen"
    assert "13.0 Here is the final answer from your managed agent 'geometer':\n13" in loaded.memory.action_steps[0].observation


def test_to_dict_round_trips_and_what_cannot_be_made_again_says_what_to_give(tmp_path):
    agent = CodeAgent(tools=[hypotenuse], model=ScriptedModel([fence("final_answer(hypotenuse(a=3, b=4))")]))
    assert CodeAgent.from_dict(agent.to_dict()).run("3, 4?") == 5.0

    class Mine(BaseModel):
        async def generate(self, messages, stop_sequences=None):
            raise AssertionError("not called")

    CodeAgent(model=Mine("mine")).save(tmp_path / "mine")
    with pytest.raises(ToolLoadError, match=r"saved with a Mine that cannot be made again .* from_folder\(folder, model=\.\.\.\)"):
        CodeAgent.from_folder(tmp_path / "mine")
    assert CodeAgent.from_folder(tmp_path / "mine", model=ScriptedModel([fence("final_answer(1)")])).run("t") == 1
    with pytest.raises(ToolLoadError, match="has no agent.json: give the folder an agent was saved to"):
        CodeAgent.from_folder(tmp_path)


def test_push_to_hub_then_from_hub_refuses_untrusted_code_and_shows_it(hub: HubServer, tmp_path):
    url = team().push_to_hub("someone/lead")
    assert url.startswith(hub.url) and "/spaces/someone/lead/commit/" in url
    published = hub.files[("space", "someone/lead")]
    assert {"agent.json", "tools/hypotenuse.py", "managed_agents/geometer/tools/hypotenuse.py"} <= set(published)
    assert not any(KEY[:12].encode() in data for data in published.values())
    published["tools/hypotenuse.py"] += b"\nimport builtins\nbuiltins.shared_agent_ran = True\n"

    with pytest.raises(ToolLoadError) as info:
        CodeAgent.from_hub("someone/lead", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert message.startswith("from_hub('someone/lead') would run this code from the Hub (space someone/lead)")
    assert "tools/hypotenuse.py:\n    from smol_magic import tool" in message
    assert "managed_agents/geometer/tools/hypotenuse.py:" in message and "trust_remote_code=True" in message
    assert not hasattr(builtins, "shared_agent_ran"), "nothing ran"

    loaded = CodeAgent.from_hub("someone/lead", trust_remote_code=True, cache_dir=tmp_path / "cache",
                                model=ScriptedModel([fence("final_answer(hypotenuse(a=8, b=15))")]))
    try:
        assert builtins.shared_agent_ran is True
    finally:
        del builtins.shared_agent_ran
    assert loaded.run("8, 15?") == 17.0
    with pytest.raises(ToolLoadError, match="nobody/nothing: no such space on the Hub"):
        CodeAgent.from_hub("nobody/nothing", trust_remote_code=True, cache_dir=tmp_path / "cache")


def test_nothing_holding_a_credential_is_saved(tmp_path, monkeypatch):
    """Whatever is saved may be published: a key written in a tool, or one of the environment's in the
    instructions, is refused before a file is written, with what to do."""
    @tool
    def weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city
        """
        api_key = "sk-proj-Hq4Lm8Zx2Vb7Nc1Rt5Yw9Jk"
        return f"sunny in {city} ({len(api_key)})"

    with pytest.raises(ToolDefinitionError, match=r"tool weather's code holds a credential \('sk-p\.\.\.'\), .*os\.environ"):
        CodeAgent(tools=[weather], model=ScriptedModel([])).save(tmp_path / "leaky")
    with pytest.raises(ToolDefinitionError, match="tool weather's code holds a credential"):
        weather.save(tmp_path / "leaky-tool")
    @tool
    def monthlyRevenue2024ForRegion(region: str) -> str:
        """The revenue of a region (names and model ids with both cases and digits are no credential).

        Args:
            region: the region
        """
        return f"{region} by Qwen/Qwen2.5-Coder-32B-Instruct in salesByRegionQ3Total2024"

    monthlyRevenue2024ForRegion.save(tmp_path / "fine")
    assert (tmp_path / "fine" / "tool.py").is_file()
    CodeAgent(tools=[monthlyRevenue2024ForRegion], model=LiteLLMModel("huggingface/meta-llama/Llama-3.3-70B-Instruct"),
              instructions="Use HuggingFaceTB/SmolLM2-1.7B-Instruct's answer.").save(tmp_path / "fine-agent")
    monkeypatch.setenv("WEATHER_TOKEN", "wt-9fK2mQ7xL4vB8nR3")
    with pytest.raises(ToolDefinitionError, match=r"agent lead's settings \(its model, instructions, prompts\) holds"):
        CodeAgent(model=ScriptedModel([]), name="lead", instructions="Log in with wt-9fK2mQ7xL4vB8nR3.").save(tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fine", "fine-agent"]
