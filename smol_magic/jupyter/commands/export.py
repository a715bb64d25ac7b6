"""``%agent export PATH``: a run as a notebook or script that re-executes; a stored run too, after a restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ...core.memory import RunResult
from ...export.notebook import export_run, setup_sources, variables_read
from .. import stored
from .base import Parser, add_run, pick_run

HELP = ("export PATH.ipynb|PATH.py [--run N | --stored ID] [--with-setup]: a run as a notebook or script that "
        "re-executes. --run N is this kernel's run N (1 = first); in a kernel with no run yet (after a restart) it "
        "is stored run N of %agent runs, as --stored N always is")


def parser():
    p = Parser("export")
    p.add_argument("path", nargs="?", default="", help="where to write: PATH.ipynb or PATH.py")
    add_run(p)
    p.add_argument("--stored", type=int, metavar="ID", help="the stored run ID (%%agent runs), from any kernel")
    p.add_argument("--with-setup", action="store_true",
                   help="copy the notebook cells that made the variables the run read")
    return p


def run(magics: Any, args: Any) -> None:
    if not args.path.endswith((".ipynb", ".py")):
        raise UsageError("usage: %agent export PATH.ipynb|PATH.py [--run N | --stored ID] [--with-setup]")
    if args.run is not None and args.stored is not None:
        raise UsageError("--run N is this kernel's run N, --stored ID a stored run: give one of them")
    args.path = os.path.expanduser(args.path)
    folder = Path(args.path).parent
    if not folder.is_dir():
        raise UsageError(f"cannot export to {args.path}: there is no folder {folder}; create it, or give a path in a "
                         "folder that exists")
    try:
        _export(magics, args)
    except OSError as exc:  # a folder you may not write to, a full disk: nothing was lost, say it shortly
        raise UsageError(f"cannot export to {args.path}: {exc.strerror or exc}") from None


def _export(magics: Any, args: Any) -> None:
    in_kernel = bool(magics.current and magics.current.runs)
    if args.stored is not None or not in_kernel:
        return _export_stored(magics, args)
    number = pick_run(magics, args.run)
    result = magics.current.runs[number - 1]
    setup = setup_cells(magics, result) if args.with_setup else []
    path = magics.current.to_notebook(args.path, run=number - 1, with_setup=setup)
    extra = f", with {len(setup)} setup cells" if args.with_setup else ""
    print(f"smol-magic: exported run {number} ({len(result.action_steps)} steps{extra}) to {path}")


def _export_stored(magics: Any, args: Any) -> None:
    """A run from the store: this kernel has none (a restart), or ``--stored ID`` asked for one."""
    if args.stored is None and not magics.store.strip():
        pick_run(magics, args.run)  # the store is off: "no agent run yet in this notebook"
    store = magics.stores.required(magics.store)
    number = args.stored if args.stored is not None else args.run
    if number is None:
        number = stored.last_number(store, magics.shell)
    found = stored.load(store, number)
    setup = setup_cells(magics, found.result) if args.with_setup else []
    model = found.model or {"model_id": found.row.model_id}
    path = export_run(found.result, args.path, magics.shell.user_ns, setup, model)
    extra = f", with {len(setup)} setup cells" if args.with_setup else ""
    print(f"smol-magic: exported stored run {number} ({len(found.result.action_steps)} steps{extra}) to {path}")


def setup_cells(magics: Any, result: RunResult) -> list[str]:
    """The user's own cells (from this kernel's history) that made what the run read."""
    runs = (magics.current.runs if magics.current else []) + [result]
    agent_code = {s.code for r in runs for s in r.action_steps if s.code}
    agent_code |= {c.code for r in runs for s in r.action_steps for c in s.tool_calls if c.code}
    history = magics.shell.history_manager
    cells = [(raw, parsed) for raw, parsed in zip(history.input_hist_raw, history.input_hist_parsed)
             if not raw.lstrip().startswith(("%%agent", "%agent"))]
    return setup_sources(cells, variables_read(result), skip=agent_code)
