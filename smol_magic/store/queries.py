"""Reading the store: the listing, one run with its steps, a conversation's runs, recorded replies; forgetting.

Every reader first marks the runs of dead kernels ``interrupted`` (see ``process``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.memory import ActionStep, FinalAnswerStep, PlanningStep, RunResult, RunState, Timing
from ..core.models import TokenUsage
from .connection import transaction
from .database import RunStore
from .process import is_gone
from .records import steps_from_rows

RUNNING = "running"
LISTED = ("id, parent_id, notebook, task, model_id, started, ended, state, error, steps, input_tokens, "
          "output_tokens, cost, summary")


@dataclass
class RunRow:
    """A line of ``%agent runs``: read from the runs table alone."""

    id: int
    parent_id: int | None
    notebook: str
    task: str
    model_id: str
    started: float
    ended: float | None
    state: str
    error: str | None
    steps: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    summary: str | None


@dataclass
class StoredRun:
    """A stored run, whole: its row, the ``RunResult`` rebuilt from its steps, and what it touched."""

    row: RunRow
    result: RunResult
    model: dict[str, Any] = field(default_factory=dict)
    agent_type: str = ""
    answer: str | None = None
    variables_read: list[str] = field(default_factory=list)
    variables_created: list[str] = field(default_factory=list)
    variables_changed: list[str] = field(default_factory=list)

    @property
    def variables_used(self) -> list[str]:
        """Read, created or changed: what the run needs, or made, in the notebook."""
        return list(dict.fromkeys(self.variables_read + self.variables_created + self.variables_changed))


@dataclass
class Reply:
    """One model call of a stored run: the request as sent, and the reply (for ``--replay N``)."""

    request: list[dict[str, Any]] | None  # None: not kept (the answer asked for after max_steps)
    reply: str
    token_usage: dict[str, Any]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def mark_interrupted(store: RunStore) -> int:
    """Runs still ``running`` whose kernel is gone (killed, no chance to say so) become ``interrupted``."""
    conn = store.connection()
    with store.lock:
        running = conn.execute("SELECT id, pid, pid_started, host FROM runs WHERE state = ?", (RUNNING,)).fetchall()
        gone = [run_id for run_id, pid, started, host in running if is_gone(pid, started, host)]
        if not gone:
            return 0
        with transaction(conn):
            conn.executemany(
                "UPDATE runs SET state = 'interrupted', error = 'the kernel stopped during the run', "
                "ended = COALESCE(ended, (SELECT MAX(ended) FROM steps WHERE run_id = runs.id), started) "
                "WHERE id = ? AND state = 'running'", [(i,) for i in gone])
    return len(gone)


def list_runs(store: RunStore, notebook: str | None, limit: int) -> tuple[list[RunRow], int]:
    """The newest ``limit`` runs (of ``notebook``, or of every notebook when None), and how many there are."""
    mark_interrupted(store)
    conn = store.connection()
    where, params = ("WHERE notebook = ?", (notebook,)) if notebook is not None else ("", ())
    with store.lock:
        rows = conn.execute(f"SELECT {LISTED} FROM runs {where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        total = conn.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()[0]
    return [RunRow(*row) for row in rows], total


def last_run(store: RunStore, notebook: str) -> int | None:
    mark_interrupted(store)
    with store.lock:
        row = store.connection().execute("SELECT MAX(id) FROM runs WHERE notebook = ?", (notebook,)).fetchone()
    return row[0]


def load_run(store: RunStore, run_id: int) -> StoredRun | None:
    """Run ``run_id`` with its steps (and their input messages), or None if there is no such run."""
    mark_interrupted(store)
    conn = store.connection()
    with store.lock:
        head = conn.execute(f"SELECT {LISTED}, model, agent_type, answer, variables_before, variables_read, "
                            "variables_created, variables_changed FROM runs WHERE id = ?", (run_id,)).fetchone()
        if head is None:
            return None
        rows = conn.execute("SELECT data, inputs FROM steps WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        bodies = dict(conn.execute("SELECT m.hash, m.body FROM message_refs r JOIN messages m ON m.hash = r.hash "
                                   "WHERE r.run_id = ?", (run_id,)).fetchall())
    row = RunRow(*head[:14])
    model, agent_type, answer, before, read, created, changed = head[14:]
    steps = steps_from_rows(rows, bodies)
    state = row.state if row.state in set(RunState) else RunState.INTERRUPTED  # still running elsewhere
    final = [s for s in steps if isinstance(s, FinalAnswerStep)]
    usage = TokenUsage(row.input_tokens, row.output_tokens)
    if row.cost is not None and "cost" in getattr(TokenUsage, "__dataclass_fields__", {}):
        usage.cost = row.cost  # type: ignore[attr-defined]
    result = RunResult(
        task=row.task, model_id=row.model_id, started_at=_iso(row.started), variables_before=json.loads(before),
        output=final[-1].output if final else None, state=RunState(state), error=row.error, steps=steps,
        token_usage=usage, timing=Timing(row.started, row.ended),
    )
    return StoredRun(row, result, json.loads(model or "{}"), agent_type, answer, json.loads(read),
                     json.loads(created), json.loads(changed))


def conversation(store: RunStore, run_id: int) -> tuple[list[int], bool]:
    """The runs of run ``run_id``'s conversation, oldest first, ending with it; and whether an earlier
    run of it was forgotten (so the conversation starts part-way)."""
    ids: list[int] = []
    current: int | None = run_id
    conn = store.connection()
    with store.lock:
        while current is not None and current not in ids:
            row = conn.execute("SELECT parent_id FROM runs WHERE id = ?", (current,)).fetchone()
            if row is None:
                return list(reversed(ids)), True
            ids.append(current)
            current = row[0]
    return list(reversed(ids)), False


def replies(run: StoredRun) -> list[Reply]:
    """The run's model calls, in order: each step's request as sent and the reply it got."""
    found = []
    for step in run.result.steps:
        if isinstance(step, ActionStep):
            calls = [call.to_message() for call in step.tool_calls if call.native]
            found.append(Reply(step.model_input_messages, step.model_output, vars(step.token_usage),
                               [{"id": c["id"], "name": c["function"]["name"],
                                 "arguments": c["function"]["arguments"]} for c in calls]))
        elif isinstance(step, PlanningStep):
            found.append(Reply(step.model_input_messages, step.plan, vars(step.token_usage)))
    if run.result.state == RunState.MAX_STEPS and run.result.steps and \
            isinstance(run.result.steps[-1], FinalAnswerStep):  # the answer asked for after the last step
        found.append(Reply(None, str(run.result.steps[-1].output), {}))
    return found


@dataclass
class Forgotten:
    runs: int
    steps: int
    messages: int
    running: list[int] = field(default_factory=list)  # left alone: a live kernel is still writing them


def forget(store: RunStore, ids: list[int] | None, notebook: str | None) -> Forgotten:
    """Delete runs ``ids`` (None: every run of ``notebook``, or of the store when it is None), their steps,
    and the messages no remaining run refers to. Deleted pages are zeroed (``secure_delete``).
    A run still running in a live kernel is left alone (its next step would have nowhere to go)."""
    mark_interrupted(store)
    conn = store.connection()
    where, params = ("WHERE notebook = ?", [notebook]) if notebook is not None else ("", [])
    if ids is not None:
        where, params = f"WHERE id IN ({','.join('?' * len(ids))})", list(ids)
    with store.lock:
        found = conn.execute(f"SELECT id, state FROM runs {where}", params).fetchall()
    running = sorted(i for i, state in found if state == RUNNING)
    ids = [i for i, state in found if state != RUNNING]
    if not ids:
        return Forgotten(0, 0, 0, running)
    marks = ",".join("?" * len(ids))
    with store.lock:
        conn.execute("PRAGMA secure_delete = ON")
        try:
            with transaction(conn):
                steps = conn.execute(f"SELECT COUNT(*) FROM steps WHERE run_id IN ({marks})", ids).fetchone()[0]
                runs = conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount
                messages = conn.execute("DELETE FROM messages WHERE NOT EXISTS "
                                        "(SELECT 1 FROM message_refs r WHERE r.hash = messages.hash)").rowcount
        finally:
            conn.execute("PRAGMA secure_delete = OFF")
    return Forgotten(runs, steps, messages, running)


def _iso(seconds: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(seconds).isoformat(timespec="seconds") if seconds else ""


def existing(store: RunStore, ids: list[int]) -> list[int]:
    """Which of ``ids`` are stored runs."""
    if not ids:
        return []
    with store.lock:
        rows = store.connection().execute(
            f"SELECT id FROM runs WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()
    return sorted(r[0] for r in rows)
