"""IPython's history writes held while an agent runs, and written when it ends.

IPython writes each cell to its history database in a thread at once (``db_cache_size`` 0). During a
``%%agent`` cell that thread's commit of the cell itself, then of each action, takes the GIL and the
history lock in the middle of the run: 1-4 ms a step and about 3 ms a cell (bench/step.py). Raising
``db_cache_size`` (IPython's own setting for batching these writes) for the run keeps every entry in
``In`` and ``%history`` at once and puts them in the database when the run ends.
"""

from __future__ import annotations

from typing import Any

BATCH = 10_000  # cells whose database writes may wait for the run's end


def hold(shell: Any) -> int | None:
    """Defer the database writes; returns what ``release`` needs (None: nothing was changed)."""
    history = getattr(shell, "history_manager", None)
    if history is None or not isinstance(getattr(history, "db_cache_size", None), int):
        return None
    saved = history.db_cache_size
    history.db_cache_size = max(saved, BATCH)
    return saved


def release(shell: Any, saved: int | None) -> None:
    """Undo ``hold`` (holds nest: the last one released writes what waited)."""
    history = getattr(shell, "history_manager", None)
    if history is None or saved is None:
        return
    history.db_cache_size = saved
    if len(history.db_input_cache) >= saved and getattr(history, "save_flag", None) is not None:
        history.save_flag.set()  # what store_inputs does when its cache is full


def is_agent_cell(text: str) -> bool:
    """A ``%%agent`` cell (not ``%%agent?``, its help)."""
    return text.lstrip().split(None, 1)[:1] == ["%%agent"]


class CellHold:
    """Holds the writes from the start of a ``%%agent`` cell, before IPython stores the cell itself.

    ``pre_run_cell`` comes before IPython's ``store_inputs``; the cell's own ``post_run_cell`` ends the
    hold. The actions' ``post_run_cell`` events (kernel_executor.py fires them) carry their own results.
    """

    def __init__(self, shell: Any):
        self.shell = shell
        self._cell: Any = None  # the held cell's ExecutionInfo
        self._saved: int | None = None

    def install(self) -> None:
        self.shell.events.register("pre_run_cell", self.cell_started)
        self.shell.events.register("post_run_cell", self.cell_ended)

    def uninstall(self) -> None:
        for event, callback in (("pre_run_cell", self.cell_started), ("post_run_cell", self.cell_ended)):
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass
        self._end()

    def cell_started(self, info: Any) -> None:
        if getattr(info, "store_history", False) and is_agent_cell(info.raw_cell or ""):
            self._end()  # a hold still there is one whose cell never ended (a frontend that skipped post_run_cell)
            self._cell, self._saved = info, hold(self.shell)

    def cell_ended(self, result: Any) -> None:
        # ipykernel passes None when the cell's coroutine raised: the held cell is the one ending then too
        if self._cell is not None and (result is None or getattr(result, "info", None) is self._cell):
            self._end()

    def _end(self) -> None:
        saved, self._cell, self._saved = self._saved, None, None
        release(self.shell, saved)
