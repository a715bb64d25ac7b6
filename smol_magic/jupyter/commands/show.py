"""``%agent show N``: a stored run's trace, static (after a restart too)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from IPython.display import display

from ...core.outputs import output_text
from ...ui.html import run_html
from ...ui.text import replay
from .. import stored
from .base import Parser

HELP = "show [N]: a stored run's trace (default: this notebook's last stored run)"


def parser():
    p = Parser("show")
    p.add_argument("number", nargs="?", type=int, metavar="N", help="the run's id in %%agent runs")
    return p


def run(magics: Any, args: Any) -> None:
    store = magics.stores.required(magics.store)
    number = args.number if args.number is not None else stored.last_number(store, magics.shell)
    found = stored.load(store, number)
    result = found.result
    usage = result.token_usage
    html = run_html(result.task, result.model_id, result.steps, str(found.row.state), result.duration,
                    usage.input_tokens, usage.output_tokens, result.error, cost=found.row.cost)
    display({"text/html": html, "text/plain": text(result)}, raw=True)


def text(result: Any) -> str:
    """The run as the text trace shows it."""
    lines: list[str] = []
    write = lines.append
    replay(SimpleNamespace(memory=SimpleNamespace(steps=result.steps), runs=[result]), write=write,
           show=lambda output: write(output_text([output])))
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")
