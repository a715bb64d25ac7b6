"""What every subcommand shares: a parser whose errors are ``UsageError``s, and ``--run N``."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one-line ``UsageError``s, not a process exit."""

    def __init__(self, command: str, **kwargs: Any):
        super().__init__(prog=f"%agent {command}", add_help=False, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (usage: {self.format_usage().strip().removeprefix('usage: ')})")


def add_run(parser: Parser) -> None:
    parser.add_argument("--run", type=int, metavar="N", help="which run (1 = first; default: the last)")


def pick_run(magics: Any, number: int | None) -> int:
    """A run's number (1-based), checked against the runs of this notebook."""
    runs = magics.current.runs if magics.current else []
    if not runs:
        raise UsageError("no agent run yet in this notebook: run a %%agent cell first")
    number = number if number is not None else len(runs)
    if not 1 <= number <= len(runs):
        raise UsageError(f"--run must be between 1 and {len(runs)} (the runs of this notebook)")
    return number
