"""What happened in a run, as data: steps that serialise to JSON and back.

The memory is the single record of a conversation: it rebuilds the messages
sent to the model, feeds the trace and the exports, and survives a JSON
round-trip so a run can be saved and inspected later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar

from ..safety.redact import redact_data
from .models import TokenUsage
from .text import RESENT_CHARS, elide


class Ruling(StrEnum):
    """What the guard says about an action."""

    ALLOW = "allow"
    ASK = "ask"  # a person must approve it
    DENY = "deny"  # never runs


class Approval(StrEnum):
    """How an action was decided: who let it run, or why it did not."""

    NONE = ""  # not decided: no code, or the run ended first
    AUTO = "auto"  # ran without asking anyone
    RUN = "run"  # a person approved it
    EDIT = "edit"  # a person edited it, then it ran
    SKIP = "skip"  # a person skipped it
    REFUSED = "refused"  # it needed a person and no one could be asked
    DENIED = "denied"  # the guard refused it
    STOP = "stop"  # the run was stopped before it ran


RAN = (Approval.AUTO, Approval.RUN, Approval.EDIT)


class RunState(StrEnum):
    """How a run ended."""

    DONE = "done"
    MAX_STEPS = "max_steps"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass
class Verdict:
    """The guard's judgement of one action."""

    decision: Ruling = Ruling.ALLOW
    reasons: list[str] = field(default_factory=list)
    guard_off: bool = False  # the guard was turned off (--no-guard): nothing was checked

    def __post_init__(self) -> None:
        self.decision = Ruling(self.decision)

    def to_dict(self) -> dict[str, Any]:
        """Decision and reasons; ``guard_off`` only when set, so saved runs stay as they were."""
        data: dict[str, Any] = {"decision": str(self.decision), "reasons": list(self.reasons)}
        if self.guard_off:
            data["guard_off"] = True
        return data


@dataclass
class MemoryStep:
    kind: ClassVar[str] = "step"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        data["kind"] = self.kind
        return data


@dataclass
class TaskStep(MemoryStep):
    kind: ClassVar[str] = "task"
    task: str = ""
    context: str = ""  # what the model is told besides the task (the notebook's variables)

    def to_messages(self) -> list[dict[str, str]]:
        text = f"New task:\n{elide(self.task, RESENT_CHARS, 'of the task left out: too long to send')}"
        if self.context:
            text += f"\n\n{self.context}"
        return [{"role": "user", "content": text}]


@dataclass
class PlanningStep(MemoryStep):
    kind: ClassVar[str] = "planning"
    plan: str = ""
    model_input_messages: list[dict[str, str]] = field(default_factory=list)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    duration: float = 0.0

    def to_messages(self) -> list[dict[str, str]]:
        # The user turn after the plan: a request must not end with the model's own words.
        return [{"role": "assistant", "content": f"Plan:\n{self.plan}"},
                {"role": "user", "content": "Now carry out the plan, one step of code at a time."}]


@dataclass
class ActionStep(MemoryStep):
    kind: ClassVar[str] = "action"
    step_number: int = 0
    model_input_messages: list[dict[str, str]] = field(default_factory=list)
    model_output: str = ""  # the raw reply
    reasoning: str = ""  # the reply without its code
    code: str | None = None  # the code that ran (after any edit by a person)
    proposed_code: str | None = None  # the code the model wrote, when a person edited it
    verdict: Verdict = field(default_factory=Verdict)
    approval: Approval = Approval.NONE
    observation: str = ""  # exactly what the model is told
    error: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat outputs, as the user saw them
    changes: dict[str, list[str]] = field(default_factory=dict)  # created / rebound / deleted names
    changes_text: str = ""  # the same diff with each variable's summary, as the model is told it
    is_final_answer: bool = False
    action_output: Any = None
    start_time: float = 0.0
    end_time: float = 0.0
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    managed_runs: list["RunResult"] = field(default_factory=list)  # runs of managed agents this action called

    def to_dict(self) -> dict[str, Any]:
        """Its fields; ``managed_runs`` only when it called a managed agent, so saved runs stay as they were."""
        data = super().to_dict()
        if not self.managed_runs:
            del data["managed_runs"]
        return data

    @property
    def duration(self) -> float:
        return max(0.0, self.end_time - self.start_time)

    @property
    def ran(self) -> bool:
        return self.approval in RAN

    @property
    def succeeded(self) -> bool:
        """Ran to the end without error: part of the run as a script that re-runs."""
        return self.ran and bool(self.code) and not self.error

    def to_messages(self) -> list[dict[str, str]]:
        # An empty assistant turn (interrupted before the reply) is rejected by some providers.
        reply = elide(self.model_output, RESENT_CHARS, "of your reply left out: too long to send again")
        messages = [{"role": "assistant", "content": reply}] if reply else []
        if self.observation:
            messages.append({"role": "user", "content": f"Observation:\n{self.observation}"})
        return messages


@dataclass
class FinalAnswerStep(MemoryStep):
    kind: ClassVar[str] = "final_answer"
    output: Any = None

    def to_messages(self) -> list[dict[str, str]]:
        return []


_STEP_TYPES: dict[str, type[MemoryStep]] = {
    cls.kind: cls for cls in (TaskStep, PlanningStep, ActionStep, FinalAnswerStep)
}


@dataclass
class RunResult:
    """One run of a task: its steps, how it ended, and what undo needs."""

    task: str = ""
    model_id: str = ""
    started_at: str = ""  # ISO date and time
    variables_before: list[str] = field(default_factory=list)  # the user's variables when the run began
    undo: dict[str, Any] = field(default_factory=dict)  # name -> its value before the run (for %agent undo)
    undo_in_place: dict[int, Any] = field(default_factory=dict)  # id -> snapshot of an approved in-place change
    not_undoable: dict[str, str] = field(default_factory=dict)  # what the run changed that undo cannot restore: why
    output: Any = None
    state: RunState = RunState.DONE
    error: str | None = None
    steps: list[MemoryStep] = field(default_factory=list)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    duration: float = 0.0
    agent_name: str = ""  # the managed agent that ran it, when another agent called it

    @property
    def action_steps(self) -> list[ActionStep]:
        return [s for s in self.steps if isinstance(s, ActionStep)]

    # What a saved memory keeps of a managed run: not the undo copies, which hold live objects.
    SAVED: ClassVar[tuple[str, ...]] = ("agent_name", "task", "model_id", "started_at", "output", "state", "error",
                                        "token_usage", "duration")

    def to_dict(self) -> dict[str, Any]:
        data = {name: _jsonable(getattr(self, name)) for name in self.SAVED}
        data["steps"] = [step.to_dict() for step in self.steps]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        kwargs = {name: data[name] for name in cls.SAVED if name in data}
        kwargs["state"] = RunState(kwargs.get("state", RunState.DONE))
        if isinstance(kwargs.get("token_usage"), dict):
            kwargs["token_usage"] = TokenUsage(**kwargs["token_usage"])
        return cls(steps=[step_from_dict(s) for s in data.get("steps", [])], **kwargs)


@dataclass
class AgentMemory:
    system_prompt: str = ""
    steps: list[MemoryStep] = field(default_factory=list)

    def reset(self) -> None:
        self.steps.clear()

    def to_messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for step in self.steps:
            messages.extend(step.to_messages())  # type: ignore[attr-defined]
        return messages

    @property
    def action_steps(self) -> list[ActionStep]:
        return [s for s in self.steps if isinstance(s, ActionStep)]

    def return_full_code(self) -> str:
        """All code that ran without error, in order: the run as one script that re-runs."""
        return "\n\n".join(s.code for s in self.action_steps if s.succeeded)

    def to_json(self, **kwargs: Any) -> str:
        """The memory as JSON, secret values redacted (a final answer may be the user's token)."""
        data = {"system_prompt": self.system_prompt, "steps": [s.to_dict() for s in self.steps]}
        return json.dumps(redact_data(data), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "AgentMemory":
        data = json.loads(text)
        return cls(data.get("system_prompt", ""), [step_from_dict(s) for s in data.get("steps", [])])


def step_from_dict(data: dict[str, Any]) -> MemoryStep:
    data = dict(data)
    step_type = _STEP_TYPES[data.pop("kind")]
    names = {f.name for f in fields(step_type)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if "approval" in kwargs:
        kwargs["approval"] = Approval(kwargs["approval"])
    if "token_usage" in kwargs and isinstance(kwargs["token_usage"], dict):
        kwargs["token_usage"] = TokenUsage(**kwargs["token_usage"])
    if "managed_runs" in kwargs:
        kwargs["managed_runs"] = [RunResult.from_dict(r) for r in kwargs["managed_runs"]]
    if "verdict" in kwargs and isinstance(kwargs["verdict"], dict):
        kwargs["verdict"] = Verdict(**{k: v for k, v in kwargs["verdict"].items() if k in _VERDICT_FIELDS})
    return step_type(**kwargs)


_VERDICT_FIELDS = {f.name for f in fields(Verdict)}


def _jsonable(value: Any) -> Any:
    """Keep JSON values as they are; dataclasses as dicts; anything else as its repr."""
    if isinstance(value, StrEnum):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (Verdict, RunResult)):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    return repr(value)


def alternate_roles(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge consecutive messages of one role: many chat templates require user/assistant turns to alternate."""
    merged: list[dict[str, str]] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append(dict(message))
    return merged
