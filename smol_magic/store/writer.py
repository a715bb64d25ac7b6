"""``StoreWriter``: a ``Renderer`` that commits each step to the store as it completes.

One transaction per step (the run's start goes with its task step, the final answer with the
run's end: nothing happens in between), so a kernel killed in the middle of step 3 leaves steps
1 and 2 whole. A write that fails (disk full, the store locked by another kernel beyond the busy
timeout, read-only) is kept and tried again with the next event; the store warns once and the run
never stops for it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any, Callable

from ..context import namespace
from ..core.events import Renderer
from ..core.memory import ActionStep, FinalAnswerStep, MemoryStep, RunResult
from ..core.models import describe_model
from ..core.text import elide, safe_repr
from ..safety.redact import redact_data, redact_secrets
from .connection import transaction
from .database import RunStore
from .records import Inputs, step_row

_NAME = re.compile(r"[A-Za-z_]\w*")
ANSWER_CHARS = 2_000
SUMMARY_CHARS = 200


class StoreWriter(Renderer):
    """Writes one run. ``parent``: the stored run whose conversation this run continues, if the agent's
    memory still holds it when the run starts; ``reads`` names the user's variables a run read."""

    def __init__(self, store: RunStore, notebook: str = "", parent: int | None = None, agent_type: str = "",
                 reads: Callable[[RunResult], list[str]] | None = None):
        self.store = store
        self.notebook = notebook
        self.parent = parent
        self.agent_type = agent_type
        self.reads = reads
        self.run_id: int | None = None
        self._pending: list[tuple[str, Any]] = []
        self._position = 0
        self._inputs = Inputs()
        self._run: RunResult | None = None
        self._actions = 0  # action steps written (the listing's "steps")
        self._before: set[str] = set()  # the user's variables when the run began
        self._named: dict[str, None] = {}  # those of them the run's code names: what is stored of them
        self._failed = False

    # -- the run's events ------------------------------------------------------

    def run_started(self, agent: Any, task: str) -> None:
        self._run = run = agent.runs[-1]
        self._before = set(run.variables_before)
        parent = self.parent if agent.memory.steps else None  # a --reset or %agent reset starts afresh
        # Written with the task step that follows at once: one transaction fewer per run.
        self._pending.append(("start", (run, parent, describe_model(agent.model))))

    def step_finished(self, step: MemoryStep) -> None:
        if self._run is None:
            return
        self._pending.append(("step", step))
        if not isinstance(step, FinalAnswerStep):  # the run's end follows at once: written with it
            self._flush()

    def run_finished(self, result: RunResult) -> None:
        if self._run is None:
            return
        self._pending.append(("finish", result))
        self._flush(last=True)

    # -- writing -----------------------------------------------------------------

    def _flush(self, last: bool = False) -> None:
        """Commit what is pending in one transaction; on failure keep it for the next event."""
        if not self._pending:
            return
        try:
            conn = self.store.connection()
            with self.store.lock:
                # After a failure the run must not wait on every step: don't wait, except for the last try.
                conn.execute(f"PRAGMA busy_timeout = {self.store.busy_ms if last or not self._failed else 0}")
                with transaction(conn):
                    state = self._apply(conn)
        except Exception as exc:  # noqa: BLE001 - the store must never stop a run
            self._failed = True
            self.store.failed(exc, lost=last)
            if last:
                self._pending.clear()
            return
        self.run_id, self._position, self._inputs, self._actions, self._named = state
        self._pending.clear()

    def _apply(self, conn: sqlite3.Connection) -> tuple[int | None, int, Inputs, int, dict[str, None]]:
        """Write what is pending; the writer's state after it, taken only once the transaction commits."""
        run_id, position, inputs = self.run_id, self._position, self._inputs
        actions, named = self._actions, dict(self._named)
        for kind, item in self._pending:
            if kind == "start":
                run_id = self._insert_run(conn, *item)
            elif kind == "step":
                row, inputs = step_row(item, inputs)
                self._insert_step(conn, run_id, position, row)
                position += 1
                actions += isinstance(item, ActionStep)
                new = self._names_in(item, named)
                named.update(dict.fromkeys(new))
                self._update_totals(conn, run_id, actions, list(named) if new else None)
            else:
                self._finish(conn, run_id, item)
        return run_id, position, inputs, actions, named

    def _insert_run(self, conn: sqlite3.Connection, run: RunResult, parent: int | None, model: dict[str, Any]) -> int:
        writer = self.store.writer
        cursor = conn.execute(
            "INSERT INTO runs (parent_id, notebook, task, model_id, model, agent_type, started, state, "
            "pid, pid_started, host) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (parent, self.notebook, redact_secrets(run.task), run.model_id, json.dumps(redact_data(model)),
             self.agent_type, run.timing.start_time or time.time(), writer.pid, writer.started, writer.host))
        return int(cursor.lastrowid)

    def _insert_step(self, conn: sqlite3.Connection, run_id: int | None, position: int, row: Any) -> None:
        conn.executemany("INSERT OR IGNORE INTO messages (hash, body) VALUES (?, ?)", row.new_messages)
        conn.executemany("INSERT OR IGNORE INTO message_refs (hash, run_id) VALUES (?, ?)",
                         [(h, run_id) for h, _ in row.new_messages])
        conn.execute(
            "INSERT INTO steps (run_id, position, kind, step_number, data, inputs, started, ended, input_tokens, "
            "output_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, position, row.kind, row.step_number, row.data, row.inputs, row.started, row.ended,
             row.input_tokens, row.output_tokens, row.cost))

    def _names_in(self, step: MemoryStep, named: dict[str, None]) -> list[str]:
        """The user's variables (as the run began) that this step's code names, beyond those in ``named``.

        Only these are stored as the run's ``variables_before`` (the row starts with none), not the whole
        notebook's names: the export needs those its code reads, and a notebook of 10,000 variables would
        make each run's row 100 KB, written again with every step's totals."""
        if not isinstance(step, ActionStep):
            return []
        code = "\n".join([step.code or ""] + [getattr(c, "code", None) or "" for c in step.tool_calls or []])
        return [n for n in dict.fromkeys(_NAME.findall(code)) if n in self._before and n not in named]

    def _update_totals(self, conn: sqlite3.Connection, run_id: int | None, actions: int,
                       named: list[str] | None) -> None:
        """The listing's columns, kept current while the run goes on (an interrupted run shows what it did)."""
        usage = self._run.token_usage
        conn.execute("UPDATE runs SET steps = ?, input_tokens = ?, output_tokens = ?, cost = ? WHERE id = ?",
                     (actions, usage.input_tokens, usage.output_tokens, getattr(usage, "cost", None),
                      run_id))
        if named is not None:  # the names its code reads grew
            conn.execute("UPDATE runs SET variables_before = ? WHERE id = ?", (json.dumps(named), run_id))

    def _finish(self, conn: sqlite3.Connection, run_id: int | None, result: RunResult) -> None:
        usage = result.token_usage
        created, changed = bound_names(result)
        answer = summary = None
        if any(step.kind == "final_answer" for step in result.steps):
            answer = redact_secrets(elide(safe_repr(result.output), ANSWER_CHARS, "of the answer not stored"))
            summary = redact_secrets(elide(namespace.headline(result.output), SUMMARY_CHARS, "more"))
        reads = self.reads(result) if self.reads is not None else []
        conn.execute(
            "UPDATE runs SET state = ?, error = ?, ended = ?, steps = ?, input_tokens = ?, output_tokens = ?, "
            "cost = ?, answer = ?, summary = ?, variables_read = ?, variables_created = ?, variables_changed = ? "
            "WHERE id = ?",
            (str(result.state), redact_secrets(result.error) if result.error else None,
             result.timing.end_time or time.time(), len(result.action_steps), usage.input_tokens,
             usage.output_tokens, getattr(usage, "cost", None), answer, summary, json.dumps(reads),
             json.dumps(created), json.dumps(changed), run_id))


def bound_names(result: RunResult) -> tuple[list[str], list[str]]:
    """The variables the run created, and those it rebound or changed in place, still there at its end."""
    created: dict[str, None] = {}
    changed: dict[str, None] = {}
    for step in result.steps:
        if not isinstance(step, ActionStep):
            continue
        changes = {kind: [_variable(path) for path in paths] for kind, paths in (step.changes or {}).items()}
        for name in changes.get("created", []):
            created[name] = None
        for name in changes.get("rebound", []) + changes.get("changed", []):
            if name not in created:
                changed[name] = None
        for name in changes.get("deleted", []):
            created.pop(name, None)
            changed.pop(name, None)
    return list(created), list(changed)


def _variable(path: str) -> str:
    """The variable of a changed path (``sales['x']`` -> ``sales``)."""
    match = _NAME.match(path)
    return match.group(0) if match else path

