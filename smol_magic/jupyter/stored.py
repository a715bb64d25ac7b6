"""The run store seen from the notebook: which store, which notebook, writing a cell's run, resuming one.

The store itself (``smol_magic.store``) is plain Python; this module knows the kernel: the
notebook's path (JupyterLab sets ``JPY_SESSION_NAME``), its working directory, Jupyter's
data dir for a read-only notebook folder, and how a ``%%agent --resume`` cell rebuilds its memory.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from IPython.core.error import UsageError

from ..core.memory import MemoryStep
from ..export.notebook import variables_read
from ..export.replay import ReplayModel
from ..store import RunStore, StoredRun, StoreError, StoreWriter, queries, resolve


def notebook_name(shell: Any) -> str:
    """The notebook's path as the Jupyter server knows it ("" outside a notebook): runs are listed per notebook."""
    value = shell.user_ns.get("__session__") if shell is not None else None
    return value if isinstance(value, str) and value else os.environ.get("JPY_SESSION_NAME", "")


def store_path(setting: str) -> Path | None:
    """The file for ``AgentMagics.store`` (None: off), falling back to Jupyter's data dir for the default."""
    try:
        from jupyter_core.paths import jupyter_data_dir

        fallback: Path | None = Path(jupyter_data_dir()) / "smol_magic"
    except ImportError:
        fallback = None
    return resolve(setting, Path.cwd(), fallback)


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


class Stores:
    """The kernel's open store, reopened when ``AgentMagics.store`` (or the working directory) changes."""

    def __init__(self) -> None:
        self._open: RunStore | None = None

    def get(self, setting: str) -> RunStore | None:
        path = store_path(setting)
        if path is None:
            return None
        if self._open is None or self._open.path != path:
            if self._open is not None:
                self._open.close()
            self._open = RunStore(path, warn=_warn)
        return self._open

    def required(self, setting: str) -> RunStore:
        """The store, for a command that reads it: a clear error when it is off, not made yet, or cannot be
        opened. Reading never makes a store (a mistyped path must not become an empty store)."""
        store = self.get(setting)
        if store is None:
            raise UsageError("the run store is off (AgentMagics.store = \"\"): no runs are kept. "
                             "%config AgentMagics.store = \".smol_magic/runs.sqlite\" turns it on")
        if not store.path.exists():
            raise UsageError(f"no run has been stored in {store.path} yet: a %%agent cell stores its run there")
        try:
            store.connection()
        except StoreError as exc:
            raise UsageError(f"the run store: {exc}; %config AgentMagics.store = \"path/runs.sqlite\" "
                             "chooses another") from None
        return store


def writer(store: RunStore, shell: Any, parent: int | None, agent_type: str) -> StoreWriter:
    return StoreWriter(store, notebook_name(shell), parent, agent_type, reads=variables_read)


def load(store: RunStore, number: int) -> StoredRun:
    """Stored run ``number``, or a UsageError saying what exists."""
    try:
        found = queries.load_run(store, number)
    except StoreError as exc:
        raise UsageError(f"the run store: {exc}") from None
    if found is None:
        raise UsageError(f"there is no stored run {number}; %agent runs --all-notebooks lists them")
    return found


def last_number(store: RunStore, shell: Any) -> int:
    """This notebook's last stored run, or a UsageError."""
    number = queries.last_run(store, notebook_name(shell))
    if number is None:
        where = notebook_name(shell) or "this notebook"
        raise UsageError(f"no stored run of {where} yet; %agent runs --all-notebooks lists the runs of the others")
    return number


@dataclass
class Resumed:
    """A stored conversation, ready to continue: its steps and what the new kernel lacks of it."""

    number: int
    runs: list[StoredRun]
    steps: list[MemoryStep] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # variables its runs read or made that this kernel lacks
    forgotten: bool = False  # an earlier run of the conversation was forgotten

    def notice(self) -> str:
        """What the user is told: which run continues, and which variables are gone."""
        runs = len(self.runs)
        text = (f"smol-magic: resuming stored run {self.number} ({runs} run{'s' if runs != 1 else ''}, "
                f"{sum(len(r.result.action_steps) for r in self.runs)} steps in its conversation)")
        if self.forgotten:
            text += "; its earlier runs were forgotten (%agent forget), so the conversation starts part-way"
        if self.gone:
            text += (f". Not in this kernel any more: {', '.join(self.gone)} (the agent is told; re-run the cells "
                     "that made them if it needs them)")
        return text

    def model_note(self) -> str:
        """What the model is told, after the new task's context."""
        if not self.gone:
            return ""
        return ("Note: this conversation continues after a restart of the notebook's kernel. These variables its "
                f"earlier steps used or created no longer exist: {', '.join(self.gone)}. Do not rely on them: "
                "re-create what you need, or ask the user.")


def resume(store: RunStore, number: int, namespace: dict[str, Any]) -> Resumed:
    """Stored run ``number``'s whole conversation (its earlier runs first), to rebuild an agent's memory."""
    last = load(store, number)  # there is such a run, or a clear error
    ids, forgotten = queries.conversation(store, number)
    runs = [load(store, i) for i in ids[:-1]] + [last]
    steps = [step for run in runs for step in run.result.steps]
    used = list(dict.fromkeys(name for run in runs for name in run.variables_used))
    gone = [name for name in used if name not in namespace]
    return Resumed(number, runs, steps, gone, forgotten)


@contextlib.contextmanager
def told(agent: Any, note: str) -> Iterator[None]:
    """For one run, ``note`` ends the context the new task is given with (the agent's ``task_context``)."""
    if not note:
        yield
        return
    original = agent.task_context

    def with_note(task: str, additional_args: Any) -> str:
        return "\n\n".join(part for part in (original(task, additional_args), note) if part)

    agent.task_context = with_note
    try:
        yield
    finally:
        del agent.task_context  # the class's method again


def replay_model(store: RunStore, number: int) -> ReplayModel:
    """A model that answers with stored run ``number``'s replies, checking each request as ``--replay FILE`` does."""
    run = load(store, number)
    records = [{"request": r.request, "reply": r.reply, "token_usage": r.token_usage, "tool_calls": r.tool_calls}
               for r in queries.replies(run)]
    if not records:
        raise UsageError(f"stored run {number} made no model call to replay")
    hint = (f"stored run {number} continued the conversation of run {run.row.parent_id}: "
            f"add --resume {run.row.parent_id} to replay it as it was") if run.row.parent_id else ""
    return ReplayModel.from_records(records, f"stored run {number}", run.row.model_id, hint=hint)
