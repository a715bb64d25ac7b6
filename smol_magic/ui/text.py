"""A plain-text trace: for terminals, headless runs and saved notebooks.

Each step is written as it happens (the model's thought, the code, what it
printed, what the model was told). Rich outputs of the agent's code
(DataFrames, figures) are re-displayed as they would be in a cell.
"""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Any, Callable

from ..core.agents import MultiStepAgent
from ..core.costs import usage_text
from ..core.events import Renderer
from ..core.outputs import output_text
from ..core.memory import ActionStep, FinalAnswerStep, MemoryStep, PlanningStep, Ruling, RunResult, RunState, TaskStep
from ..safety import redact
from .html import missing_code, shown_text, task_title, undo_warnings, value_bundle

RULE = "─" * 60


def _default_show(output: dict[str, Any]) -> None:
    """Show an nbformat output in the current cell when IPython is there, else print its text."""
    from IPython import get_ipython

    if output.get("output_type") == "stream":
        stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
        stream.write(output.get("text", ""))
    elif get_ipython() is not None:
        from IPython.display import publish_display_data

        publish_display_data(output.get("data", {}), output.get("metadata") or {})
    else:
        print(output.get("data", {}).get("text/plain", ""))


def _terminal_copy(stream: Any) -> Any:
    """The terminal behind ``stream`` through a file descriptor of its own: while an action runs,
    descriptors 1 and 2 point at capture files (``fdcapture``), and a managed run's trace is not its output."""
    try:
        return os.fdopen(os.dup(stream.fileno()), "w", encoding=getattr(stream, "encoding", None) or "utf-8")
    except (AttributeError, OSError, ValueError):
        return None


class TextRenderer(Renderer):
    def __init__(
        self,
        write: Callable[[str], Any] | None = None,
        show: Callable[[dict[str, Any]], None] | None = None,
        show_observation: bool = True,
        show_error: bool = True,
    ):
        # show_error=False where the caller raises the run's error itself (the magic): say it once.
        self._write = write
        self.show_error = show_error
        self.show = show or _default_show
        self.show_observation = show_observation
        self.model_id = ""
        self.typed_task: str | None = None  # the task as the user typed it, before {var} expansion
        self._stream: Any = None  # sys.stdout when the run began: an action redirects sys.stdout while it runs
        self._terminal: Any = None  # the terminal for managed runs, which write while their manager's action runs

    def write(self, *parts: str) -> None:
        """Write each part as its lines, in one write: a step's few lines cost one flush, not one each.

        Each part is shown as ``shown_text`` shows it: secrets redacted, a 2 MB reply as its head and tail.
        """
        if not parts:
            return
        secrets = redact.current()
        text = "\n".join(shown_text(part, secrets) for part in parts)
        if self._write is not None:
            self._write(text + "\n")
        else:
            stream = self._stream or sys.stdout
            stream.write(text + "\n")
            stream.flush()

    def managed_run(self, name: str, task: str) -> "TextRenderer":
        """A managed agent's run, indented under the step that calls it (not in that step's captured output)."""
        def write(text: str) -> None:
            text = textwrap.indent(text.rstrip("\n"), "  ┆ ", lambda line: True)
            if self._terminal is not None:
                self._terminal.write(text + "\n")
                self._terminal.flush()
            else:
                self.write(text)

        def show(output: dict[str, Any]) -> None:
            write(output_text([output]).rstrip("\n"))

        nested = TextRenderer(write=write, show=show, show_observation=self.show_observation)
        nested.typed_task = f"{name}: {task}"
        return nested

    def run_started(self, agent: MultiStepAgent, task: str) -> None:
        if self._write is None:
            self._stream = sys.stdout
            if getattr(agent, "managed_agents", None) and self._stream is sys.__stdout__ and self._terminal is None:
                self._terminal = _terminal_copy(self._stream)  # now, before an action captures descriptor 1
        self.model_id = getattr(agent.model, "model_id", type(agent.model).__name__)
        self.write(f"▶ agent · {self.model_id} · {task_title(self.typed_task or task, 80)}")

    def action_ready(self, step: ActionStep) -> None:
        parts = [f"{RULE}\nstep {step.step_number}"]
        if step.reasoning:
            parts.append(textwrap.indent(step.reasoning.strip(), "  "))
        if step.code:
            parts.append(textwrap.indent(step.code, "  │ "))
        if step.verdict.decision != Ruling.ALLOW or step.verdict.guard_off:
            parts.append(f"  guard: {step.verdict.decision.upper()}")
            parts += [f"    - {reason}" for reason in step.verdict.reasons]
        elif undo_warnings(step.verdict):  # allowed (--allow mutate_data), and still worth a word before it runs
            parts.append("  ⚠ undo cannot restore what this step changes:")
            parts += [f"    - {warning}" for warning in undo_warnings(step.verdict)]
        self.write(*parts)

    def action_started(self, step: ActionStep) -> None:
        if step.proposed_code is not None and step.code:
            self.write("  edited by you; this runs instead:", textwrap.indent(step.code, "  │ "))

    def step_finished(self, step: MemoryStep) -> None:
        if isinstance(step, PlanningStep):
            self.write(f"{RULE}\nplan\n{textwrap.indent(step.plan, '  ')}")
        elif isinstance(step, ActionStep):
            if step.code is None:  # action_ready was not called: no code, or no reply at all
                why = missing_code(step)
                self.write(f"{RULE}\nstep {step.step_number}\n  ({why})")
            for output in step.outputs:
                self.show(output)
            parts = []
            if step.error and step.code is not None:
                parts.append(textwrap.indent(step.error.rstrip(), "  ! "))
            if self.show_observation and step.observation:
                parts.append(f"  observation ({step.duration:.2f} s):")
                parts.append(textwrap.indent(step.observation.rstrip(), "    "))
            self.write(*parts)
        elif isinstance(step, FinalAnswerStep):
            self.write(f"{RULE}\nfinal answer:")
            self.show(value_bundle(step.output))

    def run_finished(self, result: RunResult) -> None:
        if self._terminal is not None:
            self._terminal.close()
            self._terminal = None
        actions = len(result.action_steps)
        tokens = usage_text(result.token_usage)
        line = f"■ {result.state} · {actions} step{'s' if actions != 1 else ''} · {result.duration:.1f} s · {tokens}"
        if result.error and (self.show_error or result.state == RunState.BUDGET):  # no error follows a budget stop
            line += f" · {result.error}"
        self.write(line)


def replay(agent: MultiStepAgent, detailed: bool = False, write: Callable[[str], Any] | None = None,
           show: Callable[[dict[str, Any]], None] | None = None) -> None:
    """``agent.replay()``: the conversation in memory, step by step, as the text trace showed it live.

    Each task, each step's thought, code, outputs and observation, the final answer, and how each run
    ended. ``detailed`` adds, before each step, the messages the model was sent that it had not seen
    at the step before (the first step's include the system prompt), so the output grows with the run,
    not with its square.
    """
    out = TextRenderer(write=write, show=show)
    ends = {id(run.steps[-1]): run for run in agent.runs if run.steps}
    if not agent.memory.steps:
        out.write("(nothing to replay: this agent has not run yet)")
        return
    sent = 0
    for step in agent.memory.steps:
        messages = getattr(step, "model_input_messages", None)
        if detailed and messages:
            if sent > len(messages):  # a new conversation (reset) starts over
                sent = 0
            compacted = getattr(step, "compaction", None)
            if compacted is not None and compacted.since is not None:  # older steps compacted: sent again
                sent = min(sent, compacted.since)
            earlier = f" ({sent} earlier messages, as above)" if sent else ""
            out.write(f"{RULE}\nmessages sent to the model{earlier}:")
            for message in messages[sent:]:
                out.write(f"  [{message.get('role', '?')}]")
                out.write(textwrap.indent((message.get("content") or "").rstrip(), "    "))
            sent = len(messages)
        if isinstance(step, TaskStep):
            out.write(f"▶ task: {step.task}")
        elif isinstance(step, ActionStep):
            if step.code is not None:
                out.action_ready(step)
                out.action_started(step)
            out.step_finished(step)
        else:
            out.step_finished(step)
        run = ends.get(id(step))
        if run is not None:
            out.run_finished(run)
