"""A run as an artefact: an .ipynb (or .py) a colleague can read and re-run without the agent.

Code cells are the actions that ran, with the outputs they produced; what did
not run (skipped, refused, failed) is a short markdown note. A first code cell
says which of the notebook's variables the run started from, so the export
fails early and clearly when they are missing, or, with setup, brings the cells
that made them.
"""

from __future__ import annotations

import ast
import builtins
import json
import types
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .agents import RunResult
from .memory import ActionStep, FinalAnswerStep, PlanningStep
from .ui.html import value_bundle

FORMAT_VERSION = 1
_BUILTINS = set(dir(builtins))
NOTES = {
    "skip": "skipped by the user", "refused": "refused: it needed a person's approval", "denied":
    "refused by the guard", "stop": "not run: the user stopped the run",
}


def read_names(codes: Sequence[str]) -> list[str]:
    """Names the code reads before binding them itself: what it needs from the notebook, in order."""
    bound: set[str] = set()
    needed: list[str] = []
    for code in codes:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for statement in tree.body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    if node.id not in bound and node.id not in needed and node.id not in _BUILTINS:
                        needed.append(node.id)
            bound |= _bound_names(statement)
    return needed


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def setup_sources(history: Sequence[tuple[str, str]], needed: Sequence[str], skip: set[str]) -> list[str]:
    """The history cells that defined ``needed`` (and what those cells need in turn), oldest first.

    ``history`` is (raw, parsed) per cell; ``skip`` holds cells that are not the
    user's own (the agent's actions). Later definitions win, as in the notebook.
    """
    wanted = set(needed)
    chosen: list[str] = []
    for raw, parsed in reversed(history):
        if not wanted or raw in skip or parsed in skip or not raw.strip():
            continue
        try:
            tree = ast.parse(parsed)
        except SyntaxError:
            continue
        defines = _bound_names(tree) & wanted
        if defines:
            chosen.append(raw)
            wanted -= defines
            wanted |= set(read_names([parsed])) - _bound_names(tree)
    return list(reversed(chosen))


def variables_read(run: RunResult) -> list[str]:
    """The user's variables the run's code read: what its export needs before it re-runs."""
    return [n for n in read_names([s.code for s in run.action_steps if s.succeeded]) if n in run.variables_before]


def _requirements(names: list[str], namespace: Mapping[str, Any]) -> str:
    """The export's first code cell: imports for modules the run used, a check for everything else."""
    imports = []
    required = []
    for name in names:
        value = namespace.get(name)
        if isinstance(value, types.ModuleType):
            module = value.__name__
            imports.append(f"import {module}" if module == name else f"import {module} as {name}")
        else:
            required.append(name)
    lines = ["# The agent's run started from these notebook variables."] + imports
    if required:
        lines += [
            f"_missing = [name for name in {required!r} if name not in globals()]",
            "if _missing:",
            "    raise NameError(f\"define {', '.join(_missing)} first: the agent's run read them from its notebook\")",
        ]
    lines += ["", "", "def final_answer(answer):", "    \"\"\"How the agent gave its answer; here it just returns it.\"\"\"",
              "    return answer"]
    return "\n".join(lines)


def run_notebook(
    run: RunResult,
    namespace: Mapping[str, Any] | None = None,
    setup: Sequence[str] = (),
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the notebook of one run, as nbformat v4.5 JSON data.

    Plain dicts, not nbformat's objects: importing nbformat (jsonschema) costs
    about 2 s, which a user's first export should not pay. The tests validate
    what this writes against nbformat's schema.
    """
    namespace = namespace or {}
    actions = run.action_steps
    needed = variables_read(run)
    nb: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    nb["metadata"]["smol_magic"] = {
        "format": FORMAT_VERSION, "task": run.task, "model": model or {"model_id": run.model_id},
        "started_at": run.started_at, "state": run.state, "duration": round(run.duration, 3),
        "token_usage": vars(run.token_usage), "steps": len(actions), "variables_read": needed,
    }
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    summary = f"`{run.model_id}` · {run.started_at} · {len(actions)} steps · {run.state}"
    cells = nb["cells"]
    cells.append(new_markdown_cell(
        f"# Agent run\n\n**Task:** {run.task}\n\n{summary}\n\n"
        "*Exported by smol-magic: the code cells are the agent's actions, with the outputs they produced. "
        "Run them top to bottom to reproduce the analysis without the agent.*"
    ))
    if setup:
        cells.append(new_markdown_cell("## Setup\n\nThe cells of the original notebook that made the variables "
                                          "the run started from:"))
        cells.extend(new_code_cell(source) for source in setup)
    cells.append(new_code_cell(_requirements(needed, namespace), metadata={"smol_magic": {"role": "requirements"}}))
    for step in run.steps:
        if isinstance(step, PlanningStep):
            cells.append(new_markdown_cell(f"**Plan**\n\n{step.plan}"))
        elif isinstance(step, ActionStep):
            cells.extend(_action_cells(step))
        elif isinstance(step, FinalAnswerStep):
            cells.append(new_markdown_cell(f"**Final answer:** {_answer_text(step.output)}"))
    return nb


def new_markdown_cell(source: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": uuid.uuid4().hex[:12], "metadata": metadata or {}, "source": source}


def new_code_cell(source: str, metadata: dict[str, Any] | None = None,
                  outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "id": uuid.uuid4().hex[:12], "metadata": metadata or {}, "source": source,
            "execution_count": None, "outputs": json_outputs(outputs or [])}


def _action_cells(step: ActionStep) -> list[dict[str, Any]]:
    meta = {
        "step": step.step_number, "approval": step.approval, "edited": step.proposed_code is not None,
        "verdict": {"decision": step.verdict.decision, "reasons": step.verdict.reasons},
        "token_usage": vars(step.token_usage), "duration": round(step.duration, 3),
    }
    if step.proposed_code is not None:
        meta["proposed_code"] = step.proposed_code
    title = f"**Step {step.step_number}**" + (f" · {step.reasoning}" if step.reasoning else "")
    if not step.ran or step.code is None:
        why = NOTES.get(step.approval, "no code in the model's reply")
        note = f"> Step {step.step_number} did not run: {why}."
        if step.code:
            note += "\n\n```python\n" + step.code + "\n```"
        if step.verdict.reasons and step.approval in ("denied", "refused"):
            note += "\n\n" + "\n".join(f"- {r}" for r in step.verdict.reasons)
        return [new_markdown_cell(title + "\n\n" + note, metadata={"smol_magic": meta})]
    if step.error:
        note = f"> Step {step.step_number} failed, so it is not a code cell:\n\n```python\n{step.code}\n```\n\n"
        note += "```\n" + step.error.strip() + "\n```"
        return [new_markdown_cell(title + "\n\n" + note, metadata={"smol_magic": meta})]
    cell = new_code_cell(step.code, metadata={"smol_magic": meta, "tags": ["smol-magic"]}, outputs=cell_outputs(step))
    return [new_markdown_cell(title), cell]


def _answer_text(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value:
        return value
    text = value if isinstance(value, str) else repr(value)
    return f"\n\n```\n{text}\n```"


def write_notebook(nb: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return path


def run_script(run: RunResult, namespace: Mapping[str, Any] | None = None, setup: Sequence[str] = ()) -> str:
    """The run as a Python script: the task as a header comment, then the code that ran."""
    nb = run_notebook(run, namespace, setup)
    header = "\n".join(f"# {line}" for line in f"Agent run: {run.task}".splitlines())
    header += f"\n# {run.model_id} · {run.started_at} · exported by smol-magic\n"
    blocks = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            blocks.append("\n".join(_script_line(line) for line in cell["source"].splitlines()))
    return header + "\n\n" + "\n\n".join(blocks) + "\n"


def _script_line(line: str) -> str:
    """IPython syntax from setup cells (magics, shell escapes) cannot run in python: keep it as a comment."""
    return f"# {line}" if line.lstrip().startswith(("%", "!")) else line


def cell_outputs(step: ActionStep) -> list[dict[str, Any]]:
    """What the action's cell shows: its outputs, its final answer, and its error in red as a cell would."""
    outputs = list(step.outputs)
    if step.is_final_answer:  # re-run, final_answer(x) returns x and the cell shows it: show it here too
        outputs.append(value_bundle(step.action_output))
    if step.error:
        lines = step.error.rstrip().splitlines()
        ename, _, evalue = lines[-1].partition(": ") if lines else ("Error", "", "")
        outputs.append({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines})
    return outputs


class CellWriter:
    """Puts each action that ran into the notebook as a real code cell, through the labextension.

    The kernel opens a ``smol_magic`` comm; the extension answers ``hello``.
    Silence (VS Code, Colab, classic Notebook, headless) means no extension:
    the writer says so once and does nothing after that.
    """

    def __init__(self, shell: Any):
        self.shell = shell
        self.comm: Any = None
        self.available: bool | None = None  # unknown until the first run asks
        self.replies: list[dict[str, Any]] = []
        self.agent_cell_id: str | None = None
        self.run_id = ""
        self.pending: list[dict[str, Any]] = []
        self.unanswered: set[int] = set()  # steps sent this run whose insert the extension has not answered
        self.on_inserted: Callable[[int, str], None] | None = None  # told (step, cell id) per inserted cell

    async def connect(self, timeout: float = 2.0) -> bool:
        """Open a fresh comm for this run and wait for the extension's hello.

        Fresh each run: after a page reload the frontend no longer knows an
        older comm, and what is sent on it would be silently dropped.
        """
        if self.available is False:
            return False
        if self.comm is not None:
            self.comm.close()
            self.comm = None
        import asyncio

        from comm import create_comm

        hello: list[dict[str, Any]] = []
        closed: list[bool] = []
        self.comm = create_comm(target_name="smol_magic", data={"version": 1})
        self.comm.on_msg(lambda msg: self._on_msg(msg, hello))
        self.comm.on_close(lambda msg: closed.append(True))
        waited = 0.0
        while not hello and not closed and waited < timeout:
            await asyncio.sleep(0.05)
            waited += 0.05
        self.available = bool(hello)
        if not self.available:
            self.comm = None
        return self.available

    def _on_msg(self, msg: dict[str, Any], hello: list[dict[str, Any]]) -> None:
        data = msg.get("content", {}).get("data", {})
        if data.get("type") == "hello":
            hello.append(data)
            return
        self.replies.append(data)
        step = data.get("step")
        if data.get("type") in ("inserted", "error") and step in self.unanswered:
            self.unanswered.discard(step)
            if data["type"] == "inserted" and self.on_inserted is not None:
                self.on_inserted(step, data.get("cell_id", ""))

    def begin_run(self, agent_cell_id: str | None, run_id: str) -> None:
        self.agent_cell_id, self.run_id, self.pending = agent_cell_id, run_id, []
        self.unanswered, self.on_inserted = set(), None
        if self.comm is not None and agent_cell_id:
            self.comm.send({"type": "begin_run", "agent_cell_id": agent_cell_id, "run_id": run_id})

    def add(self, step: ActionStep, model_id: str, live: bool = True) -> None:
        """Queue a cell for an action that ran; send it now when ``live``."""
        if not step.ran or step.code is None:
            return  # skipped or refused actions do not become cells
        message = {
            "type": "insert", "agent_cell_id": self.agent_cell_id, "run_id": self.run_id,
            "step": step.step_number, "source": step.code, "outputs": json_outputs(cell_outputs(step)),
            "metadata": {"run_id": self.run_id, "step": step.step_number, "model": model_id,
                         "approval": step.approval, "approved_by_person": step.approval in ("run", "edit"),
                         "edited": step.proposed_code is not None},
        }
        self.pending.append(message)
        if live:
            self.flush()

    def flush(self) -> None:
        if self.comm is None or not self.agent_cell_id:
            return
        for message in self.pending:
            self.comm.send(message)
            self.unanswered.add(message["step"])
        self.pending = []

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait (briefly) until the extension has answered every cell sent: the trace then knows which
        steps' outputs are in cells before it is frozen into the static trace."""
        import asyncio

        waited = 0.0
        while self.unanswered and self.comm is not None and waited < timeout:
            await asyncio.sleep(0.01)
            waited += 0.01


def json_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(outputs, default=str))
