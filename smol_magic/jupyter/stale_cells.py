"""The agent's generated cells when the notebook is run again (Run All, Restart & Run All).

Run All sends every cell's execute_request at once. When a ``%%agent`` cell runs
again, the extension removes the cells its earlier run generated (``begin_run``),
but their execute_requests are already queued behind it: without this module they
would run as ordinary code after the agent, re-doing its actions, and the first
error among them (``final_answer`` is no notebook name) would abort the rest of
the queue in a cell nobody can see. So:

- After ``begin_run`` the kernel waits for the extension's ``begun`` reply, which
  lists the removed cell ids and the frontend's time of removal (``at``).
- An input transformer turns the execution of a removed cell into a no-op, when its
  request was sent before the removal (the request header's date and ``at`` come
  from the same browser clock). A cell executed later on purpose runs as usual.
- ``final_answer`` exists in the notebook: a generated ``final_answer(x)`` cell run
  by hand shows ``x``, as it does in an exported notebook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from typing import Any

SKIPPED = "# smol-magic: not run: the agent removed this cell (it re-ran its %%agent cell) after it was queued\n"


def final_answer(answer: Any) -> Any:
    """How the agent gave its answer. Run in a cell by hand, it returns the answer, so the cell shows it."""
    return answer


def _date(value: Any) -> dt.datetime | None:
    """A message date (jupyter_client parses header dates; comm data keeps the ISO string) as aware UTC."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class StaleCells:
    """The cells the extension removed in this kernel, and the input transformer that skips their queued runs."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.removed: dict[str, dt.datetime | None] = {}  # cell id -> when the frontend removed it

    def note_begun(self, reply: dict[str, Any]) -> None:
        """Remember the cells a ``begun`` reply says were removed."""
        at = _date(reply.get("at"))
        for cell_id in reply.get("removed_ids") or ():
            if isinstance(cell_id, str):
                self.removed[cell_id] = at

    def _request(self) -> tuple[str | None, dt.datetime | None]:
        kernel = getattr(self.shell, "kernel", None)
        try:
            parent = kernel.get_parent() if kernel is not None else {}
        except Exception:
            return None, None
        cell_id = (parent.get("metadata") or {}).get("cellId")
        return cell_id, _date((parent.get("header") or {}).get("date"))

    def is_stale(self) -> bool:
        """Is the execute_request being handled one that was queued for a cell removed since?"""
        if not self.removed:
            return False
        cell_id, sent = self._request()
        if cell_id not in self.removed:
            return False
        removed_at = self.removed[cell_id]
        if removed_at is None or sent is None:  # no clock to compare: skip its one queued run
            del self.removed[cell_id]
            return True
        return sent <= removed_at

    def transform(self, lines: list[str]) -> list[str]:
        """Input transformer (first in ``input_transformers_cleanup``): a stale queued cell becomes a comment."""
        return [SKIPPED] if lines and self.is_stale() else lines

    def rehide_final_answer(self, *_: Any) -> None:
        """Keep the notebook's ``final_answer`` out of the variables shown to the model (runs hide and unhide tools)."""
        if self.shell.user_ns.get("final_answer") is final_answer:
            self.shell.user_ns_hidden["final_answer"] = final_answer


_installed: weakref.WeakKeyDictionary[Any, StaleCells] = weakref.WeakKeyDictionary()


def install(shell: Any) -> StaleCells:
    """Hook into a shell (from ``%load_ext smol_magic``); idempotent."""
    stale = _installed.get(shell)
    if stale is None:
        stale = _installed[shell] = StaleCells(shell)
        shell.input_transformers_cleanup.insert(0, stale.transform)
        shell.events.register("post_run_cell", stale.rehide_final_answer)
    if "final_answer" not in shell.user_ns:
        shell.user_ns["final_answer"] = final_answer
        stale.rehide_final_answer()
    return stale


def uninstall(shell: Any) -> None:
    stale = _installed.pop(shell, None)
    if stale is None:
        return
    if stale.transform in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(stale.transform)
    if stale.rehide_final_answer in shell.events.callbacks["post_run_cell"]:
        shell.events.unregister("post_run_cell", stale.rehide_final_answer)
    if shell.user_ns.get("final_answer") is final_answer:
        del shell.user_ns["final_answer"]
        shell.user_ns_hidden.pop("final_answer", None)


async def await_begun(shell: Any, writer: Any, timeout: float = 3.0) -> None:
    """After ``writer.begin_run``: wait for the extension's ``begun`` reply and note what it removed.

    Comm messages reach an async cell while it awaits (ipykernel >= 7.4), so the reply
    arrives during this wait, before the cell ends and the queued requests run.
    """
    stale = _installed.get(shell)
    if stale is None or writer.comm is None or not writer.agent_cell_id:
        return
    start = len(writer.replies)
    waited = 0.0
    while waited < timeout:
        for reply in writer.replies[start:]:
            if reply.get("run_id") == writer.run_id and reply.get("type") in ("begun", "error"):
                if reply["type"] == "begun":
                    stale.note_begun(reply)
                return
        await asyncio.sleep(0.005)  # short: the run's first model request waits for this reply
        waited += 0.005
