"""A run as an artefact: an .ipynb (or .py) a colleague can read and re-run without the agent.

Code cells are the actions that ran, with the outputs they produced; what did
not run (skipped, refused, failed) is a short markdown note. A first code cell
says which of the notebook's variables the run started from, so the export
fails early and clearly when they are missing, or, with setup, brings the cells
that made them.
"""

from __future__ import annotations

import ast
import json
import types
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.managed import report
from ..core.memory import ActionStep, Approval, FinalAnswerStep, PlanningStep, RunResult
from ..core.names import bound_names, read_names
from ..core.outputs import json_safe
from ..core.text import safe_repr
from ..safety.redact import redact_data
from ..ui.html import value_bundle

FORMAT_VERSION = 1
NOTES = {
    Approval.SKIP: "skipped by the user", Approval.REFUSED: "refused: it needed a person's approval",
    Approval.DENIED: "refused by the guard", Approval.STOP: "not run: the user stopped the run",
}
PERSON = (Approval.RUN, Approval.EDIT)  # a person approved the code that ran


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
        defines = bound_names(tree) & wanted
        if defines:
            chosen.append(raw)
            wanted -= defines
            wanted |= set(read_names([parsed])) - bound_names(tree)
    return list(reversed(chosen))


def variables_read(run: RunResult) -> list[str]:
    """The user's variables the run's code read: what its export needs before it re-runs.

    The tools a ToolCallingAgent called count too: their cells call them by name. Not the managed
    agents it called: the export defines those (as replays of their answers).
    """
    managed = {m.agent_name for step in run.action_steps for m in step.managed_runs}
    tools = [c.name for s in run.action_steps for c in _exported_calls(s) if c.name != "final_answer"]
    return [n for n in read_names([code for s in run.action_steps for code in _exported_code(s)])
            if (n in run.variables_before or n in tools) and n not in managed]


def _exported_calls(step: ActionStep) -> list[Any]:
    """A tool step's calls that become code cells: each call that ran without error (unless a person edited)."""
    if not step.tool_calls or not step.ran or step.proposed_code is not None:
        return []
    return [c for c in step.tool_calls if c.ran and c.code and not c.error]


def _exported_code(step: ActionStep) -> list[str]:
    if step.tool_calls and step.ran and step.proposed_code is None:
        return [c.code for c in _exported_calls(step)]
    return [step.code] if step.succeeded and step.code else []


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
    managed = [m for step in actions for m in step.managed_runs]
    needed = variables_read(run)
    nb: dict[str, Any] = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    nb["metadata"]["smol_magic"] = {
        "format": FORMAT_VERSION, "task": run.task, "model": model or {"model_id": run.model_id},
        "started_at": run.started_at, "state": str(run.state), "duration": round(run.duration, 3),
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
    if managed:
        cells.extend(_replay_cells(managed))
    for step in run.steps:
        if isinstance(step, PlanningStep):
            cells.append(new_markdown_cell(f"**Plan**\n\n{step.plan}"))
        elif isinstance(step, ActionStep):
            action = _action_cells(step)
            cells.extend(action[:1] + [_managed_cell(m, step) for m in step.managed_runs] + action[1:])
        elif isinstance(step, FinalAnswerStep):
            cells.append(new_markdown_cell(f"**Final answer:** {_answer_text(step.output)}"))
    return redact_data(nb)  # a final answer may be the user's token: no 8 characters of a secret in an export


def new_markdown_cell(source: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": uuid.uuid4().hex[:12], "metadata": metadata or {}, "source": source}


def new_code_cell(source: str, metadata: dict[str, Any] | None = None,
                  outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "id": uuid.uuid4().hex[:12], "metadata": metadata or {}, "source": source,
            "execution_count": None, "outputs": json_safe(outputs or [])}


def _action_cells(step: ActionStep) -> list[dict[str, Any]]:
    meta = cell_metadata(step)
    title = f"**Step {step.step_number}**" + (f" · {step.reasoning}" if step.reasoning else "")
    if step.tool_calls and step.ran and step.proposed_code is None:
        return _tool_call_cells(step, title, meta)
    if not step.ran or step.code is None:
        why = NOTES.get(step.approval, "no code in the model's reply")
        note = f"> Step {step.step_number} did not run: {why}."
        if step.code:
            note += "\n\n```python\n" + step.code + "\n```"
        if step.verdict.reasons and step.approval in (Approval.DENIED, Approval.REFUSED):
            note += "\n\n" + "\n".join(f"- {r}" for r in step.verdict.reasons)
        return [new_markdown_cell(title + "\n\n" + note, metadata={"smol_magic": meta})]
    if step.error:
        note = f"> Step {step.step_number} failed, so it is not a code cell:\n\n```python\n{step.code}\n```\n\n"
        note += "```\n" + step.error.strip() + "\n```"
        return [new_markdown_cell(title + "\n\n" + note, metadata={"smol_magic": meta})]
    cell = new_code_cell(step.code, metadata={"smol_magic": meta, "tags": ["smol-magic"]}, outputs=cell_outputs(step))
    return [new_markdown_cell(title), cell]


def _tool_call_cells(step: ActionStep, title: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """A ToolCallingAgent step: each call that ran is a code cell (``result = add(a=1, b=2)``), the rest notes."""
    cells = [new_markdown_cell(title, metadata={"smol_magic": meta})]
    for call in step.tool_calls:
        call_meta = {"smol_magic": {**meta, "tool_call": {"id": call.id, "name": call.name}}}
        if call.ran and call.code and not call.error:
            cells.append(new_code_cell(call.code, metadata={**call_meta, "tags": ["smol-magic"]},
                                       outputs=_call_outputs(step, call)))
            continue
        shown = f"```python\n{call.code}\n```" if call.code else f"`{call.name}` with arguments `{call.arguments}`"
        why = "failed" if call.ran else "did not run"
        note = f"> Tool call {why}, so it is not a code cell:\n\n{shown}\n\n```\n{call.observation.strip()}\n```"
        cells.append(new_markdown_cell(note, metadata=call_meta))
    return cells


def _call_outputs(step: ActionStep, call: Any) -> list[dict[str, Any]]:
    outputs = list(call.outputs)
    if call.name == "final_answer" and step.is_final_answer:  # re-run, final_answer(answer=x) shows x
        outputs.append(value_bundle(step.action_output))
    return outputs


REPLAY_NOTE = """\
## Managed agents, replayed

In the run, the agent called {names}: each an agent with its own model and its own Python namespace. This notebook has no model, so the next cell defines each of them as a function that
returns, for the same task, exactly the text it returned in the run (its final answer and a summary of its
work). Their own steps are shown, for reading, under the step that called them; they are not re-run here."""


def _replay_cells(managed: list[RunResult]) -> list[dict[str, Any]]:
    """A note, and a cell defining each managed agent as a replay of what it answered in the run."""
    replies: dict[str, dict[str, str]] = {}
    for run in managed:
        replies.setdefault(run.agent_name, {})[run.task] = report(run.agent_name, run)
    names = ("the managed agent " if len(replies) == 1 else "the managed agents ") + ", ".join(
        f"`{name}`" for name in replies)
    lines = ["# What each managed agent answered in the run, by agent and task.",
             f"_managed_replies = {replies!r}", "", "",
             "def _replay(name, task):",
             "    if task not in _managed_replies[name]:",
             "        raise LookupError(f\"{name} was not asked {task!r} in the recorded run, and this notebook has "
             "no model to ask it now\")",
             "    return _managed_replies[name][task]"]
    for name in replies:
        lines += ["", "", f"def {name}(task, additional_args=None):",
                  f"    \"\"\"The managed agent {name}, replayed: what it answered in the run.\"\"\"",
                  f"    return _replay({name!r}, task)"]
    return [new_markdown_cell(REPLAY_NOTE.format(names=names)),
            new_code_cell("\n".join(lines), metadata={"smol_magic": {"role": "managed_agents"}})]


def _managed_cell(run: RunResult, caller: ActionStep) -> dict[str, Any]:
    """A managed agent's run under the step that called it: its steps, code and observations, as text."""
    actions = run.action_steps
    parts = [f"**Step {caller.step_number} called the managed agent `{run.agent_name}`** · {run.state} · "
             f"{len(actions)} step{'s' if len(actions) != 1 else ''}\n\n" + "\n".join(
                 "> " + line for line in run.task.splitlines())]
    for step in actions:
        head = f"*{run.agent_name}, step {step.step_number}*" + (f" · {step.reasoning}" if step.reasoning else "")
        body = f"```python\n{step.code}\n```" if step.code else f"(no code: {step.error or 'no reply'})"
        if step.observation:
            body += "\n\n```\n" + step.observation.strip() + "\n```"
        parts.append(head + "\n\n" + body)
    if run.error:
        parts.append(f"*{run.agent_name} could not finish:* {run.error}")
    meta = {"managed_run": {"agent": run.agent_name, "task": run.task, "state": str(run.state),
                            "steps": len(actions), "called_by_step": caller.step_number}}
    return new_markdown_cell("\n\n".join(parts), metadata={"smol_magic": meta})


def _answer_text(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value:
        return value
    text = value if isinstance(value, str) else safe_repr(value)
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


def cell_metadata(step: ActionStep, **extra: Any) -> dict[str, Any]:
    """``metadata.smol_magic`` of an action's cell: one schema for exported and inserted cells."""
    meta = {
        "step": step.step_number, "approval": str(step.approval), "approved_by_person": step.approval in PERSON,
        "edited": step.proposed_code is not None,
        "verdict": {"decision": str(step.verdict.decision), "reasons": step.verdict.reasons},
        "token_usage": vars(step.token_usage), "duration": round(step.duration, 3), **extra,
    }
    if step.proposed_code is not None:
        meta["proposed_code"] = step.proposed_code
    return meta


def export_run(run: RunResult, path: str, namespace: Mapping[str, Any], with_setup: Sequence[str],
               model: dict[str, Any]) -> str:
    """Write one run to ``path``: a notebook, or a script when the path ends in ``.py``."""
    if str(path).endswith(".py"):
        Path(path).write_text(run_script(run, namespace, with_setup))
    else:
        write_notebook(run_notebook(run, namespace, with_setup, model), path)
    return str(path)
