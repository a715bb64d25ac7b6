"""Who decides whether an action runs: the ``Approver`` protocol and the approval modes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from . import telemetry
from .memory import ActionStep, Ruling


class Action(StrEnum):
    """What to do with an action."""

    RUN = "run"
    SKIP = "skip"
    STOP = "stop"  # end the run


class ApproveMode(StrEnum):
    """Which actions wait for a person."""

    EVERY = "every"
    RISKY = "risky"  # only those the guard asks about
    NEVER = "never"


APPROVE_MODES = tuple(ApproveMode)


@dataclass
class Decision:
    """What a person (or the approval policy) decided about an action."""

    action: Action
    code: str | None = None  # the code to run, when a person edited it
    reason: str = ""
    refused: bool = False  # skipped by policy because no person could be asked
    by_person: bool = False  # a person clicked, rather than a policy deciding
    run_all: bool = False  # approve this and every later action of the run

    def __post_init__(self) -> None:
        self.action = Action(self.action)


class Approver(Protocol):
    async def approve(self, step: ActionStep) -> Decision: ...


class AutoApprover:
    """No person in the loop: run what the guard allows, refuse what it would ask about."""

    async def approve(self, step: ActionStep) -> Decision:
        if step.verdict.decision == Ruling.ASK:
            return Decision(Action.SKIP, reason="it needs a person's approval and no one can be asked here",
                            refused=True)
        return Decision(Action.RUN)


class ModeApprover:
    """Decides which actions go to a person: ``every``, only ``risky`` ones (guard says ask), or ``never``.

    Make one per run: "Run all" approves the rest of the run, not the next one.
    """

    def __init__(self, mode: str, person: Approver | None = None):
        try:
            mode = ApproveMode(mode)
        except ValueError:
            raise ValueError(f"approval mode must be one of {', '.join(APPROVE_MODES)}, not {mode!r}") from None
        self.mode = mode if person is not None else ApproveMode.NEVER
        self.person = person
        self.approve_all = False

    def wants_person(self, step: ActionStep) -> bool:
        if self.mode == ApproveMode.NEVER or self.approve_all:
            return False
        return self.mode == ApproveMode.EVERY or step.verdict.decision == Ruling.ASK

    async def approve(self, step: ActionStep) -> Decision:
        if self.approve_all and step.verdict.decision != Ruling.DENY:
            return Decision(Action.RUN, by_person=True)  # "Run all": a person approved the rest of the run
        if not self.wants_person(step) or self.person is None:
            return await AutoApprover().approve(step)
        with telemetry.approval_wait(step) as wait:  # a span while the person decides, when traced
            decision = await self.person.approve(step)
            wait.decided(decision)
        self.approve_all = self.approve_all or decision.run_all
        return decision


def approval_reason(step: ActionStep, mode: str) -> str:
    """Why an action waits for a person, in words the approval card shows."""
    if step.verdict.decision == Ruling.ASK:
        return "The guard wants your approval: " + "; ".join(step.verdict.reasons)
    return "You asked to approve every action (--approve every)."
