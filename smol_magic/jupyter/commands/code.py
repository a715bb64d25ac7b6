"""``%agent code``: the conversation's code as one script."""

from __future__ import annotations

from typing import Any

from .base import Parser

HELP = "print all the code the agent ran in this conversation, as one script"


def parser():
    return Parser("code")


def run(magics: Any, args: Any) -> None:
    print(magics.current.memory.return_full_code() if magics.current else "")
