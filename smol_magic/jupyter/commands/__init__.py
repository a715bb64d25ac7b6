"""``%agent <subcommand>``: one module per subcommand, each with its own flags.

Each module has ``HELP`` (one line), ``parser()`` and ``run(magics, args)``;
flags of one subcommand are refused by the others and by ``%%agent``.
"""

from __future__ import annotations

import argparse
import shlex
from types import ModuleType
from IPython.core.error import UsageError

from . import cells, code, executor, export, forget, mcp, memory, reset, runs, serve, show, status, undo

COMMANDS: dict[str, ModuleType] = {
    "reset": reset, "code": code, "memory": memory, "status": status, "export": export, "cells": cells, "undo": undo,
    "mcp": mcp, "serve": serve, "runs": runs, "show": show, "forget": forget, "executor": executor,
}


def parse(line: str) -> tuple[ModuleType, argparse.Namespace]:
    """The subcommand of a ``%agent`` line, and its arguments."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%agent: {exc}") from None
    name = words[0] if words else ""
    if name not in COMMANDS:
        what = f"unknown subcommand {name!r}" if name else "a subcommand is needed"
        raise UsageError(f"%agent: {what}; use one of {', '.join(COMMANDS)} (to run a task, use a %%agent cell)")
    command = COMMANDS[name]
    return command, command.parser().parse_args(words[1:])


def listing() -> str:
    """Every subcommand with its help line, for ``%%agent?``."""
    return "\n".join(f"%agent {name}: {module.HELP}" for name, module in COMMANDS.items())
