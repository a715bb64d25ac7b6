"""``%agent undo``: put back what a run changed."""

from __future__ import annotations

from typing import Any

from .base import Parser, add_run, pick_run

HELP = "put back every variable the last run created, rebound, deleted or changed in place"


def parser():
    p = Parser("undo")
    add_run(p)
    return p


def run(magics: Any, args: Any) -> None:
    number = pick_run(magics, args.run)
    done = magics.current.undo(number - 1)
    lost = done.pop("not restored", [])
    if done["removed"] or done["restored"]:
        parts = [f"{k}: {', '.join(v)}" for k, v in done.items() if v]
        print(f"smol-magic: undid run {number} · " + " · ".join(parts))
    elif not lost:
        print(f"smol-magic: run {number} changed no variables (or was already undone)")
    if lost:  # never a word of success for what stays changed
        print(f"smol-magic: undo could not restore what run {number} changed in place, which stays changed: "
              + "; ".join(lost))
