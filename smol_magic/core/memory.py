"""What happened in a run, as data: steps that serialise to JSON and back.

The memory is the single record of a conversation: it rebuilds the messages
sent to the model, feeds the trace and the exports, and survives a JSON
round-trip so a run can be saved and inspected later.

Each request a step sent holds the whole conversation so far, so writing every
step's messages out in full would grow with the square of the steps. The saved
form (``AgentMemory.to_json``, ``RunResult.to_dict``) writes each message once:
see ``RequestWriter``. ``step.to_dict()`` alone still holds its messages whole.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Callable, ClassVar

from ..safety.redact import redact_data
from .models import TokenUsage
from .text import RESENT_CHARS, clip, elide, safe_repr


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
    BUDGET = "budget"  # stopped before a model call that would pass its budget or token cap
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
class ToolCallRecord:
    """One tool call of a ``ToolCallingAgent`` step: what the model asked for, and what came of it."""

    id: str = ""
    name: str = ""
    arguments: str = ""  # the JSON text the model sent
    code: str | None = None  # the call as Python (``result = add(a=1, b=2)``); None if the call was invalid
    observation: str = ""  # what the model is told about this call
    error: str | None = None
    native: bool = True  # a native tool call (sent back as ``tool_calls``), or one written in the reply's text
    ran: bool = False  # it was executed (an invalid, refused, skipped call, or one after the final answer, was not)
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat outputs of this call

    def to_message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Compaction:
    """What one request summarised to fit the model's context window; the step itself keeps everything.

    See ``core/compaction.py``. ``numbers`` are the summarised steps' numbers as ``[first, last]``
    ranges, for the trace; ``since`` is how many leading messages this request shares with the previous
    action's (what the trace showed before): a compaction new at this request changes messages from there.
    """

    steps: int = 0  # the oldest action steps of the conversation whose observations were summarised
    numbers: list[list[int]] = field(default_factory=list)
    window: int = 0  # the model's context window, tokens
    estimate: int = 0  # the request's estimated input tokens, as sent
    since: int | None = None

    def label(self) -> str:
        """"steps 1–40" (several runs in one conversation: "steps 1–12, 1–30")."""
        ranges = [f"{a}–{b}" if a != b else f"{a}" for a, b in self.numbers]
        return ("steps " if len(self.numbers) > 1 or self.steps > 1 else "step ") + ", ".join(ranges)


@dataclass
class MemoryStep:
    kind: ClassVar[str] = "step"

    def to_dict(self, write_messages: Callable[[list[dict[str, Any]]], Any] | None = None) -> dict[str, Any]:
        """The step's fields as JSON values; ``compaction`` only when set. ``write_messages`` writes the
        request it sent (the containers write each message once, see ``RequestWriter``); default: whole."""
        names = _DATA_FIELDS.get(type(self)) or _field_names(type(self))
        data = {name: (write_messages(getattr(self, name)) if write_messages and name == "model_input_messages"
                       else _jsonable(getattr(self, name))) for name in names}
        if "compaction" in data and data["compaction"] is None:
            del data["compaction"]
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
    compaction: Compaction | None = None  # what the request summarised to fit the context window

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
    tool_calls: list[ToolCallRecord] = field(default_factory=list)  # a ToolCallingAgent's calls, in order
    managed_runs: list["RunResult"] = field(default_factory=list)  # runs of managed agents this action called
    compaction: Compaction | None = None  # what the request summarised to fit the context window

    @property
    def duration(self) -> float:
        return max(0.0, self.end_time - self.start_time)

    @property
    def ran(self) -> bool:
        return self.approval in RAN

    def __repr__(self) -> str:
        """One line: the messages it was sent hold the system prompt and the whole conversation."""
        code = "" if self.code is None else f", code={clip(self.code, 80)!r}"
        error = f", error={clip(self.error, 80)!r}" if self.error else ""
        return (f"ActionStep({self.step_number}, {str(self.approval)}{code}, "
                f"observation={clip(self.observation, 80)!r}{error})")

    def to_dict(self, write_messages: Callable[[list[dict[str, Any]]], Any] | None = None) -> dict[str, Any]:
        """The step's fields; ``tool_calls`` and ``managed_runs`` only when it has some, so saved steps stay as they were."""
        data = super().to_dict(write_messages)
        for name in ("tool_calls", "managed_runs"):
            if not data[name]:
                del data[name]
        return data

    @property
    def succeeded(self) -> bool:
        """Ran to the end without error: part of the run as a script that re-runs."""
        return self.ran and bool(self.code) and not self.error

    def to_messages(self) -> list[dict[str, Any]]:
        # An empty assistant turn (interrupted before the reply) is rejected by some providers.
        reply = elide(self.model_output, RESENT_CHARS, "of your reply left out: too long to send again")
        if self.tool_calls and all(call.native for call in self.tool_calls):
            # Native calls: the assistant turn carries them, and each gets its own ``tool`` answer.
            messages: list[dict[str, Any]] = [
                {"role": "assistant", "content": reply, "tool_calls": [c.to_message() for c in self.tool_calls]}]
            messages += [{"role": "tool", "tool_call_id": call.id,
                          "content": call.observation or "(no result)"} for call in self.tool_calls]
            return messages
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
class Timing:
    """When something started and ended (``time.time()`` seconds), as smolagents' ``Timing``."""

    start_time: float = 0.0
    end_time: float | None = None  # None while it runs

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else max(0.0, self.end_time - self.start_time)

    def to_dict(self) -> dict[str, Any]:
        return {"start_time": self.start_time, "end_time": self.end_time, "duration": self.duration}


@dataclass
class RunResult:
    """One run of a task: its output and how it ended, its steps, tokens and timing, and what undo needs.

    ``agent.run(task, return_full_result=True)`` returns it; ``agent.runs`` keeps every run's.
    """

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
    timing: Timing = field(default_factory=Timing)
    agent_name: str = ""  # the managed agent that ran it, when another agent called it

    @property
    def duration(self) -> float:
        """Seconds the run took (so far, while it runs)."""
        end = self.timing.end_time if self.timing.end_time is not None else time.time()
        return max(0.0, end - self.timing.start_time) if self.timing.start_time else 0.0

    @property
    def action_steps(self) -> list[ActionStep]:
        return [s for s in self.steps if isinstance(s, ActionStep)]

    def __repr__(self) -> str:
        """One line, as a cell shows a returned run: the fields' own reprs hold the whole conversation."""
        steps = len(self.action_steps)
        how = f"error={clip(self.error, 120)!r}" if self.error else f"output={clip(safe_repr(self.output), 120)}"
        return (f"RunResult({str(self.state)}, {steps} step{'s' * (steps != 1)}, {self.duration:.1f} s, "
                f"{self.token_usage.input_tokens} tokens in, {self.token_usage.output_tokens} out, "
                f"task={clip(self.task, 60)!r}, {how})")

    # What a saved memory keeps of a run (a managed agent's, under the step that called it): not the
    # undo copies, which hold live objects.
    SAVED: ClassVar[tuple[str, ...]] = ("agent_name", "task", "model_id", "started_at", "output", "state", "error",
                                        "token_usage")

    def to_dict(self) -> dict[str, Any]:
        """Output, state, steps, tokens and timing as JSON values, secrets redacted (as ``AgentMemory.to_json``)."""
        data = {name: _jsonable(getattr(self, name)) for name in self.SAVED}
        data["steps"] = steps_to_dicts(self.steps)
        data["timing"] = self.timing.to_dict()
        return redact_data(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        kwargs = {name: data[name] for name in cls.SAVED if name in data}
        kwargs["state"] = RunState(kwargs.get("state", RunState.DONE))
        if isinstance(kwargs.get("token_usage"), dict):
            kwargs["token_usage"] = TokenUsage(**kwargs["token_usage"])
        timing = data.get("timing") or {}
        kwargs["timing"] = Timing(timing.get("start_time", 0.0), timing.get("end_time"))
        return cls(steps=steps_from_dicts(data.get("steps", [])), **kwargs)


@dataclass
class AgentMemory:
    system_prompt: str = ""
    steps: list[MemoryStep] = field(default_factory=list)

    def reset(self) -> None:
        self.steps.clear()

    def __repr__(self) -> str:
        return (f"AgentMemory({len(self.steps)} steps, {len(self.action_steps)} actions, system prompt of "
                f"{len(self.system_prompt):,} characters)")

    def get_full_steps(self) -> list[dict[str, Any]]:
        """Every step as a dict (smolagents' name), the messages each was sent included, secrets redacted."""
        return redact_data([step.to_dict() for step in self.steps])

    def get_succinct_steps(self) -> list[dict[str, Any]]:
        """``get_full_steps`` without the messages each step was sent."""
        return [{k: v for k, v in step.items() if k != "model_input_messages"} for step in self.get_full_steps()]

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
        data = {"system_prompt": self.system_prompt, "steps": steps_to_dicts(self.steps)}
        return json.dumps(redact_data(data), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "AgentMemory":
        data = json.loads(text)
        return cls(data.get("system_prompt", ""), steps_from_dicts(data.get("steps", [])))


def step_from_dict(data: dict[str, Any]) -> MemoryStep:
    data = dict(data)
    step_type = _STEP_TYPES[data.pop("kind")]
    names = {f.name for f in fields(step_type)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if "approval" in kwargs:
        kwargs["approval"] = Approval(kwargs["approval"])
    if "token_usage" in kwargs and isinstance(kwargs["token_usage"], dict):
        kwargs["token_usage"] = TokenUsage(**kwargs["token_usage"])
    if "tool_calls" in kwargs:
        kwargs["tool_calls"] = [ToolCallRecord(**{k: v for k, v in c.items() if k in _CALL_FIELDS})
                                for c in kwargs["tool_calls"]]
    if "managed_runs" in kwargs:
        kwargs["managed_runs"] = [RunResult.from_dict(r) for r in kwargs["managed_runs"]]
    if isinstance(kwargs.get("compaction"), dict):
        kwargs["compaction"] = Compaction(**{k: v for k, v in kwargs["compaction"].items() if k in _COMPACTION_FIELDS})
    if "verdict" in kwargs and isinstance(kwargs["verdict"], dict):
        kwargs["verdict"] = Verdict(**{k: v for k, v in kwargs["verdict"].items() if k in _VERDICT_FIELDS})
    return step_type(**kwargs)


class RequestWriter:
    """Writes each step's request so that every message is written once: linear, not quadratic.

    A request is written as ``{"keep": K, "add": [...]}``: the first K messages of the request written
    before it (the previous step that sent one), then the items of ``add``, each either a message
    (written out, and numbered in the order messages are written, from 0) or the number of a message
    written earlier. A step's request shares all but its last messages with the one before, so ``add``
    holds only the new ones; after a compaction (older observations summarised, see core/compaction.py)
    the unchanged messages come back as numbers. An empty request is written ``[]``.
    ``RequestReader`` turns it back into the same messages; a list of messages (files written before
    this format) is read as it is.
    """

    def __init__(self) -> None:
        self.previous: list[dict[str, Any]] = []
        self.numbers: dict[str, int] = {}  # a written message, as canonical JSON -> its number

    def write(self, messages: list[dict[str, Any]]) -> dict[str, Any] | list[Any]:
        if not messages:
            return []
        keep = shared_prefix(messages, self.previous)
        add: list[Any] = []
        for message in messages[keep:]:
            key = json.dumps(message, sort_keys=True, default=repr)
            if key in self.numbers:
                add.append(self.numbers[key])
            else:
                self.numbers[key] = len(self.numbers)
                add.append(_jsonable(message))
        self.previous = messages
        return {"keep": keep, "add": add}


class RequestReader:
    """Reads what ``RequestWriter`` wrote, step after step; consecutive requests share their message objects."""

    def __init__(self) -> None:
        self.previous: list[dict[str, Any]] = []
        self.table: list[dict[str, Any]] = []

    def read(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list):  # written whole (or empty)
            if value:
                self.previous = value
            return value
        if not isinstance(value, dict) or not isinstance(value.get("keep"), int) or not isinstance(
                value.get("add"), list) or not 0 <= value["keep"] <= len(self.previous):
            raise ValueError(f"a step's model_input_messages is damaged ({str(value)[:80]!r}): expected a list of "
                             "messages or {'keep': N, 'add': [...]} within the request before it")
        messages = self.previous[:value["keep"]]
        for item in value["add"]:
            if isinstance(item, dict):
                self.table.append(item)
                messages.append(item)
            elif isinstance(item, int) and 0 <= item < len(self.table):
                messages.append(self.table[item])
            else:
                raise ValueError(f"a step's model_input_messages refers to message {item!r}, but only "
                                 f"{len(self.table)} were written before it: the saved run is damaged")
        self.previous = messages
        return messages


def shared_prefix(a: list[Any], b: list[Any]) -> int:
    """How many leading items ``a`` and ``b`` have in common (the same object, or equal).

    Usually all of the shorter one: a request repeats the one before it, checked in one list comparison (in C).
    """
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    keep = 0
    while keep < n and (a[keep] is b[keep] or a[keep] == b[keep]):
        keep += 1
    return keep


def steps_to_dicts(steps: list[MemoryStep]) -> list[dict[str, Any]]:
    """The steps as JSON values, each request written with ``RequestWriter`` (each message once)."""
    writer = RequestWriter()
    return [step.to_dict(writer.write) for step in steps]


def steps_from_dicts(items: list[dict[str, Any]]) -> list[MemoryStep]:
    """What ``steps_to_dicts`` wrote (or steps with their requests written whole), as steps."""
    reader, steps = RequestReader(), []
    for data in items:
        if "model_input_messages" in data:
            data = {**data, "model_input_messages": reader.read(data["model_input_messages"])}
        steps.append(step_from_dict(data))
    return steps


_VERDICT_FIELDS = {f.name for f in fields(Verdict)}
_COMPACTION_FIELDS = {f.name for f in fields(Compaction)}
_CALL_FIELDS = {f.name for f in fields(ToolCallRecord)}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """Keep JSON values as they are; dataclasses as dicts; anything else as its repr."""
    kind = type(value)
    if kind in _PLAIN:  # most values, and a stored step is written each step: no isinstance chain for them
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (Verdict, RunResult)):
        return value.to_dict()
    names = _DATA_FIELDS.get(kind)
    if names is None and hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        names = _field_names(kind)
    if names is not None:  # a dataclass, field by field (dataclasses.asdict would deep-copy every value first)
        return {name: _jsonable(getattr(value, name)) for name in names}
    return safe_repr(value)


_DATA_FIELDS: dict[type, tuple[str, ...]] = {}  # a dataclass -> its fields' names (dataclasses.fields is slow)


def _field_names(kind: type) -> tuple[str, ...]:
    names = _DATA_FIELDS[kind] = tuple(f.name for f in fields(kind))
    return names


def alternate_roles(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive messages of one role: many chat templates require user/assistant turns to alternate.

    Tool calls and ``tool`` answers are never merged: each answer belongs to its call's id. A merge
    makes a new message; the others are the very objects given (copying each one, each step, made a
    request's cost grow with the run), and none of them is changed.
    """
    merged: list[dict[str, Any]] = []
    for message in messages:
        if (merged and merged[-1]["role"] == message["role"] and message["role"] != "tool"
                and "tool_calls" not in message and "tool_calls" not in merged[-1]):
            merged[-1] = {"role": message["role"],
                          "content": (merged[-1]["content"] or "") + "\n\n" + (message["content"] or "")}
        else:
            merged.append(message)
    return merged
