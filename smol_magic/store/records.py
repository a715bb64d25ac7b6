"""Steps as rows and back: each step's ``to_dict()``, its input messages stored once each by hash.

A step's input repeats the whole conversation; stored as is, a run of n steps would take n²
space. Here a step keeps the first ``keep`` messages of the run's previous model call and names
only the new ones, by the sha256 of their JSON, in ``messages``: the store grows with the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..core.memory import ActionStep, MemoryStep, PlanningStep, shared_prefix, step_from_dict
from ..safety.redact import current

INPUTS = "model_input_messages"


def body(message: Any) -> str:
    """A message as canonical JSON: the same message always gives the same text, hence the same hash."""
    return json.dumps(message, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Inputs:
    """The run's previous model call's messages, what the next step's input is compared with."""

    messages: list[Any] = field(default_factory=list)


@dataclass
class StepRow:
    kind: str
    step_number: int | None
    data: str  # JSON of to_dict() without the input messages
    inputs: str | None  # JSON {"keep": k, "new": [hash, ...]}, or None for a step with no model call
    new_messages: list[tuple[str, str]]  # (hash, JSON) of the messages first seen in this step
    started: float | None
    ended: float | None
    input_tokens: int
    output_tokens: int
    cost: float | None


def step_row(step: MemoryStep, previous: Inputs) -> tuple[StepRow, Inputs]:
    """The row of a finished step, and the inputs the run's next step is compared with.

    Only the messages after the common prefix with the previous call are hashed and
    serialised: the cost of a step does not grow with the conversation (the prefix is
    compared by ``==``, which for the same strings is a pointer or a memcmp).
    """
    secrets = current()
    scrub = secrets.redact_data if secrets else _as_is  # no secret known: nothing to walk (serialised at once)
    messages = list(getattr(step, INPUTS, None) or [])
    has_inputs = isinstance(step, (ActionStep, PlanningStep))
    data = step.to_dict(lambda _: None)  # the input messages go to their own table, below
    data.pop(INPUTS, None)
    usage = getattr(step, "token_usage", None)
    inputs, new, after = None, [], previous
    if has_inputs:
        keep = shared_prefix(previous.messages, messages)
        fresh = scrub(messages[keep:])
        new = [(digest(text), text) for text in map(body, fresh)]
        inputs = json.dumps({"keep": keep, "new": [h for h, _ in new]})
        after = Inputs(messages)
    started, ended = _times(step)
    row = StepRow(
        kind=step.kind, step_number=getattr(step, "step_number", None),
        data=json.dumps(scrub(data), ensure_ascii=False, default=repr), inputs=inputs, new_messages=new,
        started=started, ended=ended,
        input_tokens=getattr(usage, "input_tokens", 0) or 0, output_tokens=getattr(usage, "output_tokens", 0) or 0,
        cost=getattr(usage, "cost", None),
    )
    return row, after


def _as_is(data: Any) -> Any:
    return data


def _times(step: MemoryStep) -> tuple[float | None, float | None]:
    if isinstance(step, ActionStep):
        return step.start_time or None, step.end_time or None
    return None, None


def steps_from_rows(rows: list[tuple[str, str | None]], bodies: dict[str, str]) -> list[MemoryStep]:
    """The run's steps from its rows (data, inputs) in order, their input messages put back."""
    steps: list[MemoryStep] = []
    previous: list[Any] = []
    for data_text, inputs_text in rows:
        data = json.loads(data_text)
        if inputs_text:
            inputs = json.loads(inputs_text)
            messages = previous[: inputs["keep"]] + [json.loads(bodies[h]) for h in inputs["new"] if h in bodies]
            data[INPUTS] = messages
            previous = messages
        steps.append(step_from_dict(data))
    return steps
