"""``%agent status``: the settings and the runs so far."""

from __future__ import annotations

from typing import Any

from .base import Parser

HELP = "show the model, settings and the runs so far"


def parser():
    return Parser("status")


def run(magics: Any, args: Any) -> None:
    current = magics.current
    steps = len(current.memory.steps) if current else 0
    last = current.runs[-1].model_id if current and current.runs else ""
    model = magics.model or "(none configured)"
    if last and last != magics.model:
        model += f", last run: {last}"
    print(
        f"model: {model} · approve: {magics.approve} · max_steps: {magics.max_steps} "
        f"· timeout: {magics.timeout:g} s · memory: {steps} steps"
    )
    print(f"rules: {_rules(magics)}")
    serving = getattr(magics, "serving", None)
    if serving is not None:
        print(f"serving: MCP at {serving.url} (%agent serve stop ends it)")
    print(f"store: {_store(magics)}")
    for number, result in enumerate(current.runs if current else [], 1):
        kept = magics.stored_ids.get(id(result))
        print(f"run {number}{f' (stored {kept})' if kept is not None else ''}: {result.state} · "
              f"{len(result.action_steps)} steps · {result.model_id} · {result.task[:60]!r}")


def _store(magics: Any) -> str:
    """Where runs are kept (%agent runs lists them), or that they are not."""
    from ..stored import store_path

    path = store_path(magics.store)
    return f"{path} (%agent runs lists its runs)" if path is not None else "off (AgentMagics.store = \"\")"


def _rules(magics: Any) -> str:
    """Which project rules file the next run adds to the system prompt, or why none."""
    path, named = magics.rules_file()
    if path is None:
        return "none (no AGENTS.md in this folder; %config AgentMagics.rules = \"file\" names one)"
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "is MISSING"
        return f"{path} (AgentMagics.rules) {what}: the next %%agent run will stop with an error"
    return f"{path} ({'AgentMagics.rules' if named else 'found in this folder'}), in the system prompt"
