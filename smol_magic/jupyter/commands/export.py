"""``%agent export PATH``: a run as a notebook or script that re-executes."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ...core.memory import RunResult
from ...export.notebook import setup_sources, variables_read
from .base import Parser, add_run, pick_run

HELP = "export PATH.ipynb|PATH.py [--run N] [--with-setup]: a run as a notebook or script that re-executes"


def parser():
    p = Parser("export")
    p.add_argument("path", nargs="?", default="", help="where to write: PATH.ipynb or PATH.py")
    add_run(p)
    p.add_argument("--with-setup", action="store_true",
                   help="copy the notebook cells that made the variables the run read")
    return p


def run(magics: Any, args: Any) -> None:
    if not args.path.endswith((".ipynb", ".py")):
        raise UsageError("usage: %agent export PATH.ipynb|PATH.py [--run N] [--with-setup]")
    number = pick_run(magics, args.run)
    result = magics.current.runs[number - 1]
    setup = setup_cells(magics, result) if args.with_setup else []
    path = magics.current.to_notebook(args.path, run=number - 1, with_setup=setup)
    extra = f", with {len(setup)} setup cells" if args.with_setup else ""
    print(f"smol-magic: exported run {number} ({len(result.action_steps)} steps{extra}) to {path}")


def setup_cells(magics: Any, result: RunResult) -> list[str]:
    """The user's own cells (from this kernel's history) that made what the run read."""
    agent_code = {s.code for r in magics.current.runs for s in r.action_steps if s.code}
    agent_code |= {c.code for r in magics.current.runs for s in r.action_steps for c in s.tool_calls if c.code}
    history = magics.shell.history_manager
    cells = [(raw, parsed) for raw, parsed in zip(history.input_hist_raw, history.input_hist_parsed)
             if not raw.lstrip().startswith(("%%agent", "%agent"))]
    return setup_sources(cells, variables_read(result), skip=agent_code)
