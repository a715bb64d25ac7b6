"""``%agent cells``: insert a run's actions as notebook cells (needs the JupyterLab extension)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..remote import cell as remote_cell
from .base import Parser, add_run, pick_run

HELP = "insert the last run's actions as notebook cells (needs the JupyterLab extension)"


def parser():
    p = Parser("cells")
    add_run(p)
    return p


def run(magics: Any, args: Any) -> None:
    number = pick_run(magics, args.run)
    result = magics.current.runs[number - 1]
    cell_id = magics.run_cells[number - 1] if number - 1 < len(magics.run_cells) else None
    if not magics.writer.available or cell_id is None:
        raise UsageError("no notebook extension answered in this session (VS Code, Colab, classic Notebook "
                         "or headless?): use %agent export instead")
    magics.writer.begin_run(cell_id, f"run-{number}")
    kind = magics.remote_runs.get(id(result))
    header = remote_cell.header(kind) if kind else ""  # run again, the cells run where the actions ran
    for step in result.action_steps:
        magics.writer.add(step, result.model_id, header=header)
    print(f"smol-magic: inserted the cells of run {number}")
