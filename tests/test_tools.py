"""@tool and Tool: schemas the model can read, refusals a developer can act on."""

from __future__ import annotations

from typing import Literal

import pytest

from smol_magic import Tool, ToolDefinitionError, final_answer, tool
from smol_magic.core.tools import FinalAnswerSignal


def test_tool_schema_from_signature_and_google_docstring():
    @tool
    def convert(amount: float, currency: str = "EUR", rates: dict | None = None) -> float:
        """Convert an amount of money.

        Uses today's rate.

        Args:
            amount: how much money
            currency (str): the target
                currency code.
            rates: optional rates table

        Returns:
            The converted amount.
        """
        return amount

    assert convert.name == "convert"
    assert convert.description == "Convert an amount of money.\n\nUses today's rate."
    assert {k: (v["type"], v["description"], v.get("default", "-"), v.get("nullable", False))
            for k, v in convert.inputs.items()} == {
        "amount": ("number", "how much money", "-", False),
        "currency": ("string", "the target currency code.", "EUR", False),
        "rates": (["object", "null"], "optional rates table", None, True),
    }
    assert convert.output_type == "number"
    assert convert.signature() == (
        "convert(amount: float, currency: str = 'EUR', rates: dict | None = None) -> float"
    )
    assert convert(2) == 2 and convert(2.5, currency="USD") == 2.5 and convert(1, rates=None) == 1
    # A default is not an invitation to pass None: the model is told 'EUR', and None is refused.
    with pytest.raises(TypeError, match=r"argument 'currency' must be str, got NoneType. Call it as convert\("):
        convert(2, currency=None)


def test_literal_parameter_is_shown_and_enforced():
    @tool
    def fx(amount: float, currency: Literal["EUR", "USD"] = "EUR") -> float:
        """Convert money.

        Args:
            amount: how much
            currency: the target currency
        """
        return amount

    assert fx.inputs["currency"]["schema"] == {"enum": ["EUR", "USD"], "type": "string"}
    assert fx.inputs["currency"]["type"] == "string"
    assert "currency: Literal['EUR', 'USD'] = 'EUR'" in fx.to_prompt()
    assert fx(1, "USD") == 1
    with pytest.raises(TypeError, match=r"argument 'currency' must be Literal\['EUR', 'USD'\], got str "
                                        r"\(Input should be 'EUR' or 'USD'\)\. Call it as fx\("):
        fx(1, "GBP")


def test_list_of_int_parameter_keeps_its_item_type():
    @tool
    def total(values: list[int], scale: int = 1) -> int:
        """Add integers.

        Args:
            values: the numbers to add
            scale: multiply the sum by this
        """
        return sum(values) * scale

    assert total.inputs["values"]["schema"] == {"items": {"type": "integer"}, "type": "array"}
    assert total.signature() == "total(values: list[int], scale: int = 1) -> int"
    assert total([1, 2, 3], scale=2) == 12
    with pytest.raises(TypeError, match=r"argument 'values' must be list\[int\], got list \(item 1: "):
        total([1, "2"])


def test_prompt_shows_real_defaults():
    @tool
    def search(query: str, limit: int = 10, exact: bool = False, lang: str | None = None) -> list[str]:
        """Search the catalogue.

        Args:
            query: what to look for
            limit: most results
            exact: match the whole phrase
            lang: a language code, or None for all
        """
        return [query][:limit]

    assert search.signature() == (
        "search(query: str, limit: int = 10, exact: bool = False, lang: str | None = None) -> list[str]"
    )
    assert search.inputs["lang"]["nullable"] and not search.inputs["limit"].get("nullable")
    with pytest.raises(TypeError, match="argument 'limit' must be int, got NoneType"):
        search("x", limit=None)


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f(a):\n    '''Do.\n\n    Args:\n        a: the a\n    '''", "parameter 'a' needs a type hint"),
        ("def f(a: int):\n    '''Do.'''", "parameter 'a' is not documented"),
        ("def f(a: int, b: int):\n    '''Do.\n\n    Args:\n        a: the a\n    '''", "parameter 'b' is not documented"),
        ("def f(a: int):\n    pass", "add a docstring"),
        ("def f(*a: int):\n    '''Do.\n\n    Args:\n        a: the a\n    '''", "*args/**kwargs are not supported"),
    ],
)
def test_tool_refuses_what_the_model_could_not_use(source, message):
    ns: dict = {}
    exec(source, ns)
    with pytest.raises(ToolDefinitionError, match=message.replace("*", r"\*")):
        tool(ns["f"])


def test_wrong_arguments_give_the_signature():
    @tool
    def head(n: int) -> list:
        """First items.

        Args:
            n: how many
        """
        return list(range(n))

    with pytest.raises(TypeError, match=r"missing a required argument: 'n'. Call it as head\(n: int\) -> list"):
        head()
    with pytest.raises(TypeError, match="argument 'n' must be int, got str"):
        head("3")
    with pytest.raises(TypeError, match="must be int, got bool"):
        head(True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'm'"):
        head(1, m=1)


def test_tool_subclass():
    class Echo(Tool):
        name = "echo"
        description = "Say it back."
        inputs = {"text": {"type": "string", "description": "what to say"}}
        output_type = "string"

        def forward(self, text):
            return text

    echo = Echo()
    assert echo("hi") == "hi"
    assert echo.to_prompt().startswith("def echo(text: str) -> str:\n    \"\"\"Say it back.")
    with pytest.raises(TypeError, match="must be str"):
        echo(1)


def test_tool_subclass_with_bad_schema_is_refused():
    class Bad(Tool):
        name = "bad name"
        description = "x"

    with pytest.raises(ToolDefinitionError, match="must be a Python identifier"):
        Bad()

    class NoDescription(Tool):
        name = "nodesc"
        description = "x"
        inputs = {"a": {"type": "string"}}

    with pytest.raises(ToolDefinitionError, match="needs a 'type' and a 'description'"):
        NoDescription()


def test_final_answer_signal_is_not_an_exception():
    with pytest.raises(FinalAnswerSignal) as info:
        try:
            final_answer({"a": 1})
        except Exception:  # agent code doing this must not swallow the answer
            pytest.fail("final_answer was swallowed by except Exception")
    assert info.value.value == {"a": 1}


@pytest.mark.parametrize("doc", [
    "Repeat a text.\n\n    Args:\n        times: how many times\n        text: the text\n    ",
    "Repeat a text.\n\n    Parameters\n    ----------\n    times : int\n        how many times\n"
    "    text : str\n        the text\n    ",
    "Repeat a text.\n\n    :param times: how many times\n    :param text: the text\n    ",
], ids=["google", "numpy", "rest"])
def test_a_tool_docstring_in_any_common_style_describes_its_parameters(doc):
    """Google style is smolagents' convention; numpy style the scientific stack's; reST the Sphinx one."""
    def repeat(times: int, text: str) -> str:
        return text * times

    repeat.__doc__ = doc
    made = tool(repeat)
    assert made.description == "Repeat a text."
    assert {name: spec["description"] for name, spec in made.inputs.items()} == {
        "times": "how many times", "text": "the text"}
    assert made(times=2, text="ab") == "abab"
