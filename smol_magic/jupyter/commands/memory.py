"""``%agent memory``: the conversation's memory as JSON."""

from __future__ import annotations

from typing import Any

from .base import Parser

HELP = "print the conversation's memory as JSON"


def parser():
    return Parser("memory")


def run(magics: Any, args: Any) -> None:
    print(magics.current.memory.to_json(indent=1) if magics.current else "{}")
