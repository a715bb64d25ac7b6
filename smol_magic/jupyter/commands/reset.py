"""``%agent reset``: forget the conversation."""

from __future__ import annotations

from typing import Any

from .base import Parser

HELP = "forget the conversation (the next %%agent starts afresh)"


def parser():
    return Parser("reset")


def run(magics: Any, args: Any) -> None:
    if magics.current is not None:
        magics.current.memory.reset()
    print("smol-magic: conversation reset")
