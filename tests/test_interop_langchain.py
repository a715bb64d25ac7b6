"""LangChain tools (real langchain_core objects) as our tools: ``Tool.from_langchain`` and the agent's intake."""

from __future__ import annotations

import pytest
from langchain_core.tools import StructuredTool
from langchain_core.tools import tool as lc_tool
from pydantic import BaseModel, Field

from smol_magic import CodeAgent, ScriptedModel, Tool


@lc_tool
def multiply(a: int, b: int = 2) -> int:
    """Multiply two integers.

    Args:
        a: the first factor
        b: the second factor
    """
    return a * b


class ConvertArgs(BaseModel):
    value: float = Field(description="the amount to convert")
    unit: str = Field(description="'km' or 'mi', the unit of value")


def _convert(value: float, unit: str) -> float:
    return round(value * 1.609344, 3) if unit == "mi" else round(value / 1.609344, 3)


convert = StructuredTool.from_function(_convert, name="unit-convert", description="Converts miles and kilometres.",
                                       args_schema=ConvertArgs)


def test_a_langchain_tool_becomes_a_tool_named_after_it_with_its_schema():
    product = Tool.from_langchain(multiply)

    assert product.name == "multiply"
    assert product.to_prompt() == (
        'def multiply(a: int, b: int = 2) -> Any:\n'
        '    """Multiply two integers.\n\n'
        '    Args:\n'
        '        a: the first factor\n'
        '        b: the second factor\n'
        '    """')
    assert product(a=6, b=7) == 42 and product(5) == 10
    with pytest.raises(TypeError, match=r"argument 'a' must be int, got str. Call it as multiply\(a: int"):
        product(a="6")


def test_a_structured_tool_keeps_its_field_descriptions_and_gets_a_python_name():
    converter = Tool.from_langchain(convert)

    assert converter.name == "unit_convert"
    assert "def unit_convert(value: float, unit: str) -> Any:" in converter.to_prompt()
    assert "value: the amount to convert" in converter.to_prompt()
    assert converter(value=10.0, unit="mi") == 16.093


def test_langchain_tools_passed_to_an_agent_are_called_by_its_code():
    model = ScriptedModel(["```python\nkm = unit_convert(value=26.2, unit='mi')\nfinal_answer(multiply(a=int(km)))\n```"])
    agent = CodeAgent(tools=[multiply, convert], model=model)

    assert agent.run("double the marathon in km") == 84
    assert "def unit_convert(value: float, unit: str)" in model.requests[0][0]["content"]


def test_something_else_is_refused_clearly():
    with pytest.raises(TypeError, match="is not a LangChain tool"):
        Tool.from_langchain(lambda x: x)
    with pytest.raises(TypeError, match="is not a tool: pass a smol_magic Tool"):
        CodeAgent(tools=["multiply"], model=ScriptedModel([]))
