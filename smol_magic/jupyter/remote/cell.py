"""``%%executor isolated|gateway``: a notebook cell run where an agent's remote actions ran.

An ``--executor isolated`` (or ``gateway``) run inserts its actions as cells that
start with this magic, so running one again runs it in that kernel, on the
variables made there, and not in the notebook's own kernel: there it would meet
other variables, and it was judged by the guard relaxed for the child, not by
the notebook's.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.display import publish_display_data

from .session import EXECUTORS, Options

REMOTE = tuple(kind for kind in EXECUTORS if kind != "live")


def header(kind: str) -> str:
    """The first line of an inserted cell whose action ran in a ``kind`` kernel."""
    return f"%%executor {kind}\n"


def run_cell(magics: Any, line: str, cell: str) -> None:
    """Run ``cell`` in the session's ``line`` kernel (started with the notebook's settings if there is none yet)."""
    kind = line.strip()
    if kind not in REMOTE:
        raise UsageError(f"%%executor {kind!r}: use %%executor {' or '.join(REMOTE)}; a cell without the magic runs "
                         "in this kernel")
    executor = magics.executors.by_kind.get(kind)
    if executor is None:
        executor, note = magics.executors.get(kind, magics, Options(kind=kind))
        if note:
            print(note)
    result = executor.execute(cell, timeout=magics.timeout)
    show(result.outputs)
    if result.error:
        print(result.error.rstrip(), file=sys.stderr)


def show(outputs: list[dict[str, Any]]) -> None:
    """nbformat outputs from the other kernel, shown in this cell as that kernel showed them."""
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
            stream.write(output.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            publish_display_data(output.get("data", {}), output.get("metadata", {}))
