"""Sharing tools: save / to_dict round trips, and loading from a Hub-compatible server (never the real Hub).

Tools are defined in IPython cells where it matters, because that is where a
notebook user makes them (a class there has no source file of its own).
"""

from __future__ import annotations

import ast
import builtins
import textwrap

import pytest
from hub_server import HubServer

from smol_magic import CodeAgent, ScriptedModel, Tool, ToolDefinitionError, ToolLoadError, load_tool, tool


@tool
def hypotenuse(a: float, b: float) -> float:
    """The hypotenuse of a right triangle.

    Args:
        a: one side
        b: the other side
    """
    return math.sqrt(a * a + b * b)


import math  # noqa: E402 - used by hypotenuse through the module's globals, as a notebook would


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield server


def test_a_function_tool_round_trips_through_to_dict(tmp_path):
    data = hypotenuse.to_dict()

    assert data["name"] == "hypotenuse"
    assert data["requirements"] == ["smol-magic"]
    assert "import math\n" in data["code"] and "@tool\ndef hypotenuse(a: float, b: float) -> float:" in data["code"]
    again = Tool.from_dict(data)
    assert again(3.0, 4.0) == hypotenuse(3.0, 4.0) == 5.0
    assert again.signature() == hypotenuse.signature() and again.to_prompt() == hypotenuse.to_prompt()


NOTEBOOK_TOOLS = '''
import numpy as np
from statistics import median
from smol_magic import Tool, tool

@tool
def spread(values: list[float]) -> float:
    """The range of some numbers, with numpy.

    Args:
        values: the numbers
    """
    return float(np.ptp(np.array(values))) + 0 * median(values)

class Scaler(Tool):
    name = "scale"
    description = "Multiplies numbers by the scaler's factor."
    inputs = {"values": {"type": "array", "description": "the numbers"}}
    output_type = "array"

    def __init__(self, factor: float = 2.0):
        self.factor = factor
        super().__init__()

    def forward(self, values):
        return list(np.array(values) * self.factor)
'''


def test_tools_made_in_a_notebook_save_to_a_folder_and_load_back(ip, tmp_path):
    assert ip.run_cell(NOTEBOOK_TOOLS).success
    spread, scaler = ip.user_ns["spread"], ip.user_ns["Scaler"](factor=3.0)

    spread.save(tmp_path / "spread")
    scaler.save(tmp_path / "scale")

    code = (tmp_path / "spread" / "tool.py").read_text()
    assert "import numpy as np" in code and "from statistics import median" in code
    assert (tmp_path / "spread" / "requirements.txt").read_text().split() == ["numpy", "smol-magic"]
    app = (tmp_path / "spread" / "app.py").read_text()
    ast.parse(app)  # a Space runs it
    assert "from tool import spread as shared_tool" in app
    assert "class Scaler(Tool):" in (tmp_path / "scale" / "tool.py").read_text()

    loaded_spread = load_tool(tmp_path / "spread")
    loaded_scaler = load_tool(tmp_path / "scale", factor=3.0)
    assert loaded_spread([1.0, 5.0, 2.0]) == spread([1.0, 5.0, 2.0]) == 4.0
    assert loaded_scaler([1, 2]) == scaler([1, 2]) == [3.0, 6.0]
    assert loaded_scaler.to_prompt() == scaler.to_prompt()


def test_a_tool_that_uses_a_notebook_variable_is_refused_with_its_name(ip, tmp_path):
    assert ip.run_cell(textwrap.dedent('''
        from smol_magic import tool
        RATE = 1.1

        @tool
        def with_vat(price: float) -> float:
            """Price with VAT.

            Args:
                price: the net price
            """
            return price * RATE
    ''')).success

    with pytest.raises(ToolDefinitionError, match="uses 'RATE' from the notebook"):
        ip.user_ns["with_vat"].save(tmp_path / "vat")
    assert not (tmp_path / "vat").exists(), "nothing half-written"


def test_from_hub_refuses_without_trust_and_shows_the_code(hub: HubServer, tmp_path):
    hypotenuse.save(tmp_path / "hyp")
    code = (tmp_path / "hyp" / "tool.py").read_text() + "\nimport builtins\nbuiltins.shared_tool_ran = True\n"
    hub.publish("someone/hypotenuse", {"tool.py": code, "requirements.txt": "smol-magic\n"})

    with pytest.raises(ToolLoadError) as info:
        Tool.from_hub("someone/hypotenuse", cache_dir=tmp_path / "cache")

    message = str(info.value)
    assert message.startswith("Tool.from_hub('someone/hypotenuse') would run this code from the Hub")
    assert "    def hypotenuse(a: float, b: float) -> float:" in message
    assert "trust_remote_code=True" in message
    assert not hasattr(builtins, "shared_tool_ran"), "nothing ran"

    loaded = Tool.from_hub("someone/hypotenuse", trust_remote_code=True, cache_dir=tmp_path / "cache")
    try:
        assert builtins.shared_tool_ran is True
    finally:
        del builtins.shared_tool_ran
    assert loaded(5.0, 12.0) == 13.0
    assert ("GET", "/spaces/someone/hypotenuse/resolve/main/tool.py") in hub.requests


def test_load_tool_names_missing_requirements(hub: HubServer, tmp_path):
    hypotenuse.save(tmp_path / "hyp")
    hub.publish("someone/needs", {"tool.py": (tmp_path / "hyp" / "tool.py").read_text(),
                                  "requirements.txt": "smol-magic\nno-such-package-here>=1\n"})

    with pytest.raises(ToolLoadError, match="needs no-such-package-here, not installed here: pip install "
                                            "no-such-package-here"):
        load_tool("someone/needs", trust_remote_code=True, cache_dir=tmp_path / "cache")


def test_a_tool_published_by_smolagents_loads_and_runs_in_our_agent(hub: HubServer, tmp_path):
    import smolagents

    class WordCount(smolagents.Tool):
        name = "word_count"
        description = "Counts the words in a text."
        inputs = {"text": {"type": "string", "description": "the text"}}
        output_type = "integer"

        def forward(self, text: str) -> int:
            return len(text.split())

    WordCount().save(tmp_path / "wc")  # smolagents' own layout: tool.py, app.py, requirements.txt
    hub.publish_folder("someone/word-count", tmp_path / "wc")

    counter = load_tool("someone/word-count", trust_remote_code=True, cache_dir=tmp_path / "cache")
    agent = CodeAgent(tools=[counter], model=ScriptedModel(["```python\nfinal_answer(word_count(text='a b c'))\n```"]))

    assert counter.name == "word_count" and "def word_count(text: str) -> int:" in counter.to_prompt()
    assert agent.run("count") == 3


def test_an_unknown_repo_or_a_repo_without_a_tool_is_a_clear_error(hub: HubServer, tmp_path):
    hub.publish("someone/just-an-app", {"app.py": "print('hi')\n"})

    with pytest.raises(ToolLoadError, match=r"^nobody/nothing: no such space on the Hub \(or it is private"):
        Tool.from_hub("nobody/nothing", trust_remote_code=True, cache_dir=tmp_path / "cache")
    with pytest.raises(ToolLoadError, match="^someone/just-an-app: the space has no tool.py"):
        Tool.from_hub("someone/just-an-app", cache_dir=tmp_path / "cache")


def test_push_to_hub_publishes_a_space_that_load_tool_reads_back(hub: HubServer, tmp_path):
    url = hypotenuse.push_to_hub("me/hypotenuse", token="hf_test_token")

    assert url.startswith(hub.url)
    assert hub.created == [{"name": "hypotenuse", "organization": "me", "type": "space", "sdk": "gradio"}]
    assert sorted(hub.files[("space", "me/hypotenuse")]) == ["app.py", "requirements.txt", "tool.py"]
    loaded = load_tool("me/hypotenuse", trust_remote_code=True, cache_dir=tmp_path / "cache")
    assert loaded(8.0, 15.0) == hypotenuse(8.0, 15.0) == 17.0
