"""Managed agents: an agent called by another agent like a tool.

``ManagedAgent`` wraps any agent that has a ``name`` and a ``description`` as a
``Tool`` with one ``task`` string (and optional ``additional_args``): a
CodeAgent's code calls it as a function, a tool-calling agent as a tool. Each
call runs the agent from a fresh memory, with its manager's approver and a
view nested in its manager's trace, and returns a string: its final answer
and a short summary of its run. A run that fails, stops or runs out of steps
is reported as text, never raised: the manager's model reads it and decides.

The call happens inside the manager's action, on the main thread, so the
managed run is driven with ``iterate_blocking`` (its model on a worker thread,
its actions and its trace back here on the main thread, where signals work).
"""

from __future__ import annotations

import keyword
import signal
import threading
from typing import Any, Iterable

from .blocking import call_on_main, iterate_blocking
from .events import Renderer
from .memory import ActionStep, MemoryStep, RunResult, RunState
from .stopping import timer_paused
from .text import truncate
from .tools import Tool

TASK_PROMPT = """\
You're a helpful agent named '{name}'. Your manager, another agent, gave you this task:
---
{task}
---
Your manager sees only what you pass to final_answer: give the answer with the facts it rests on,
and if you could not finish, say what you found and what is missing."""

TEAM_PROMPT = """\

You can also give tasks to these team members (managed agents). Call one like a function, with the
whole task in words as `task`: it does not see this conversation or your variables, so pass any
values it needs in `additional_args` (a dict). It returns a string: its final answer and a summary
of its work.

{agents}"""

REPORT_CHARS = 300  # of each step in the summary a manager reads


def managed_agents_prompt(managed: dict[str, "ManagedAgent"]) -> str:
    """The team section of a manager's system prompt (empty without managed agents)."""
    if not managed:
        return ""
    return TEAM_PROMPT.format(agents="\n\n".join(agent.to_prompt() for agent in managed.values()))


def is_agent(value: Any) -> bool:
    """An agent of this package (``MultiStepAgent``: CodeAgent, ToolCallingAgent), known by its loop."""
    return callable(getattr(value, "stream_steps", None)) and isinstance(getattr(value, "runs", None), list)


def check_managed(agents: Iterable[Any], tools: dict[str, Any], manager: Any = None) -> list[Any]:
    """The agents a manager may call, or a ValueError that says what to fix."""
    checked: list[Any] = []
    names: set[str] = set()
    for agent in agents:
        if not is_agent(agent):
            raise ValueError(f"managed_agents takes agents (CodeAgent, ToolCallingAgent), not {type(agent).__name__}")
        if agent is manager:
            raise ValueError(f"an agent cannot manage itself ({agent.name or 'this agent'} is in its own "
                             "managed_agents)")
        if not agent.name or not agent.description:
            missing = " and ".join(w for w, v in (("name", agent.name), ("description", agent.description)) if not v)
            raise ValueError(f"a managed agent needs a name and a description (this one has no {missing}): the "
                             "manager calls it by its name and chooses it by its description, e.g. "
                             "CodeAgent(..., name='web_agent', description='Finds facts on the web')")
        name = agent.name
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"managed agent name {name!r} must be a Python identifier (letters, digits and _, "
                             "not a keyword), e.g. 'web_agent': the manager's code calls it as a function")
        if name in tools:
            raise ValueError(f"managed agent name {name!r} is also the name of a tool of its manager; rename the "
                             "agent or the tool")
        if name in names:
            raise ValueError(f"two managed agents are named {name!r}; give each its own name")
        names.add(name)
        checked.append(agent)
    return checked


class ManagedAgent(Tool):
    """An agent as a tool of another agent (its manager): ``web_agent(task="...")``."""

    output_type = "string"

    def __init__(self, agent: Any, manager: Any = None):
        self.agent, self.manager = agent, manager  # no manager: called directly, shown and approved as the agent's own
        self.name = agent.name or "agent"  # a manager only takes named agents (check_managed)
        self.description = agent.description or ""
        self.inputs = {
            "task": {"type": "string", "description": "the task, in words, with every detail the agent needs"},
            "additional_args": {
                "type": "object", "nullable": True,
                "description": "values the agent needs (data frames, numbers, text), by the name it will see "
                               "them under",
            },
        }
        super().__init__()

    def forward(self, task: str, additional_args: dict[str, Any] | None = None) -> str:
        run = self.run(task, additional_args)
        return report(self.name, run, summary=getattr(self.agent, "provide_run_summary", True))

    def run(self, task: str, additional_args: dict[str, Any] | None = None) -> RunResult:
        """Run the agent on ``task`` from a fresh memory; the run is kept for the manager's calling step."""
        agent, manager = self.agent, self.manager
        saved = agent.renderer, agent.approver, agent.called_by
        agent.called_by = manager  # the manager's budget bounds this run too
        if manager is not None:
            nested = getattr(manager.renderer, "managed_run", None)  # a renderer not made from ours shows nothing
            agent.renderer = _OnMainThread(nested(self.name, task) if nested else Renderer())
            agent.approver = manager.approver  # the person approves (or "Run all" covers) its actions too
        before = len(agent.runs)
        interrupted = False
        try:
            # The manager's action clock stops while this agent works: its own actions have their own limits.
            with timer_paused():
                for _ in iterate_blocking(agent.stream_steps(TASK_PROMPT.format(name=self.name, task=task),
                                                             reset=True, additional_args=additional_args)):
                    pass
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # noqa: BLE001 - a managed run's failure is the manager's observation
            if len(agent.runs) == before:
                agent.runs.append(RunResult(task=task))
            agent.runs[-1].state, agent.runs[-1].error = RunState.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            agent.renderer, agent.approver, agent.called_by = saved
        run = agent.runs[-1] if len(agent.runs) > before else RunResult(task=task, state=RunState.INTERRUPTED)
        run.task, run.agent_name = task, self.name
        if manager is not None:
            manager.managed_calls.append(run)
        if interrupted:
            run.state = RunState.INTERRUPTED
            _pass_interrupt_on()
        return run


def _pass_interrupt_on() -> None:
    """Interrupt pressed during the managed run: the manager's action is interrupted too.

    Raising the signal again lets the handler around the manager's action (its stop) see it,
    so the manager's run ends as interrupted rather than as a failed action.
    """
    if threading.current_thread() is threading.main_thread():
        signal.raise_signal(signal.SIGINT)
    raise KeyboardInterrupt("interrupted by the user")


def report(name: str, run: RunResult, summary: bool = True) -> str:
    """What the manager is told: the final answer (or why there is none), then a summary of the work
    (unless the agent was made with ``provide_run_summary=False``)."""
    actions = run.action_steps
    steps = f"{len(actions)} step{'s' if len(actions) != 1 else ''}"
    if run.state == RunState.DONE:
        head = f"Here is the final answer from your managed agent '{name}':\n{run.output}"
    elif run.state == RunState.MAX_STEPS:
        head = (f"Your managed agent '{name}' used all its steps ({steps}) without calling final_answer. "
                f"Its best answer from what it found:\n{run.output}")
    elif run.state == RunState.STOPPED:
        head = f"The user stopped your managed agent '{name}' after {steps}; it gave no final answer."
    else:
        head = f"Your managed agent '{name}' could not finish ({run.state}): {run.error or 'no reason given'}."
    if not summary:
        return head
    lines = [f"{head}\n\nSummary of {name}'s work ({run.state}, {steps}, {run.duration:.1f} s):"]
    for step in actions:
        lines.append(f"- step {step.step_number}: {_gist(step)}")
    if not actions:
        lines.append("- (no steps)")
    return "\n".join(lines)


def _gist(step: ActionStep) -> str:
    if step.code is None:
        return "no code (" + (step.error or "no reply") + ")"
    code = step.code.strip().splitlines()
    shown = code[0] + (f" … (+{len(code) - 1} lines)" if len(code) > 1 else "") if code else ""
    observation = " ".join(step.observation.split())
    return truncate(f"{step.approval or 'not run'}: {shown} -> {observation}", REPORT_CHARS)


class _OnMainThread(Renderer):
    """A managed run's view, updated on the main thread (where the trace's widgets live), in order."""

    def __init__(self, inner: Renderer):
        self.inner = inner

    def run_started(self, agent: Any, task: str) -> None:
        call_on_main(lambda: self.inner.run_started(agent, task))

    def model_delta(self, text: str) -> None:
        call_on_main(lambda: self.inner.model_delta(text))

    def step_started(self, step_number: int) -> None:
        call_on_main(lambda: self.inner.step_started(step_number))

    def action_ready(self, step: ActionStep) -> None:
        call_on_main(lambda: self.inner.action_ready(step))

    def action_started(self, step: ActionStep) -> None:
        call_on_main(lambda: self.inner.action_started(step))

    def step_finished(self, step: MemoryStep) -> None:
        call_on_main(lambda: self.inner.step_finished(step))

    def run_finished(self, result: RunResult) -> None:
        call_on_main(lambda: self.inner.run_finished(result))
