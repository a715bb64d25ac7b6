"""Approval in a terminal IPython: a one-letter prompt before each action that needs it."""

from __future__ import annotations

from typing import Callable

from ..core.approval import Decision, approval_reason
from ..core.memory import ActionStep

PROMPT = "[r]un / [e]dit / [s]kip / s[t]op / run [a]ll? "


class TerminalApprover:
    def __init__(self, mode: str = "risky", input_fn: Callable[[str], str] = input,
                 write: Callable[[str], object] = print):
        self.mode = mode
        self.input = input_fn
        self.write = write

    async def approve(self, step: ActionStep) -> Decision:
        self.write(f"  waiting for you: {approval_reason(step, self.mode)}")
        while True:
            answer = self.input(PROMPT).strip().lower()
            if answer in ("r", "run"):
                return Decision("run", by_person=True)
            if answer in ("a", "all", "run all"):
                return Decision("run", by_person=True, run_all=True)
            if answer in ("t", "stop"):
                return Decision("stop", by_person=True)
            if answer in ("s", "skip"):
                return Decision("skip", reason=self.input("reason (optional): ").strip(), by_person=True)
            if answer in ("e", "edit"):
                return Decision("run", code=self._read_code(), by_person=True)
            self.write("  please answer r, e, s, t or a")

    def _read_code(self) -> str:
        self.write("  type the code to run; end with a line holding only a dot (.)")
        lines = []
        while (line := self.input("... ")) != ".":
            lines.append(line)
        return "\n".join(lines)
