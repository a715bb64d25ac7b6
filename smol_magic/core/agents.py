"""The agent loop: model -> action -> guard -> approval -> execute -> observe.

Nothing here imports Jupyter. The loop talks to three small interfaces, an
``Executor`` (runs code), an ``Approver`` (asks a person) and a ``Renderer``
(shows progress), so it runs the same in a kernel, a terminal and in tests.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import operator
import re
import time
from collections import ChainMap
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator, Callable, ClassVar, Mapping, Protocol, Sequence

from .. import guard
from ..context import namespace
from ..safety import redact, undo, watch
from .approval import Action, Approver, AutoApprover
from . import compaction
from .blocking import iterate_blocking, on_main_thread
from . import costs
from .costs import BudgetReached
from .events import Renderer
from .execution import ExecutionResult, Executor, LocalPythonExecutor
from .interop import as_model, as_tools
from .managed import ManagedAgent, check_managed, managed_agents_prompt
from .names import used_names
from .memory import (
    ActionStep, AgentMemory, Approval, Compaction, FinalAnswerStep, MemoryStep, PlanningStep, Ruling, RunResult,
    RunState, TaskStep, Timing, Verdict, alternate_roles,
)
from .models import (
    BaseModel, ChatMessageToolCall, Messages, ModelError, TokenUsage, accepts_options, accumulate_tool_calls,
    describe_model, whole_reply,
)
from .prompts import Placeholders, PromptSource, PromptTemplates, Rules
from .replies import parse_code, parse_reply, parse_structured_reply, skipped_note
from . import prompts, telemetry
from .text import SHOWN_CHARS, truncate
from .tools import Tool, final_answer, render_tools

# The default prompts are package data: smol_magic/prompts/code_agent.yaml (see core/prompts.py).
# What each template may use; {tools} and {instructions} must stay in a system prompt that is overridden,
# or the model would not be told its functions, the instructions or the project rules.
PLACEHOLDERS: dict[str, Placeholders] = {
    "system_prompt": Placeholders(("tools", "imports", "instructions"), ("tools", "instructions")),
    "planning.initial_plan": Placeholders(("task", "tools")),
    "planning.update_plan": Placeholders(("task", "tools", "remaining_steps")),
    "final_answer.post_messages": Placeholders(("task",)),
    "no_code_error": Placeholders(()),
}

# The JSON schema of a CodeAgent reply with use_structured_outputs_internally=True (as smolagents').
CODEAGENT_RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "ThoughtAndCodeAnswer",
        "strict": True,
        "schema": {
            "type": "object",
            "title": "ThoughtAndCodeAnswer",
            "additionalProperties": False,
            "properties": {
                "thought": {"type": "string", "title": "Thought",
                            "description": "A free form text description of the thought process."},
                "code": {"type": "string", "title": "Code",
                         "description": "Valid Python code snippet implementing the thought."},
            },
            "required": ["thought", "code"],
        },
    },
}


class Replayer(Protocol):
    """Prints a run step by step (``smol_magic.ui.text.replay``)."""

    def __call__(self, agent: "MultiStepAgent", detailed: bool = False) -> None: ...


class RunExporter(Protocol):
    """Writes a run as a notebook or script (``smol_magic.export.notebook.export_run``)."""

    def __call__(self, run: RunResult, path: str, namespace: Mapping[str, Any], with_setup: Sequence[str],
                 model: dict[str, Any]) -> str: ...


class AgentStopped(Exception):
    """The run was stopped by a person (Stop button); memory is kept."""


class MultiStepAgent:
    # Plugged in by smol_magic/__init__.py, so that the loop does not import the exports nor the ui.
    exporter: ClassVar[RunExporter | None] = None
    replayer: ClassVar[Replayer | None] = None
    text_trace: ClassVar[Callable[[], Renderer] | None] = None  # verbosity_level >= 1: smol_magic plugs in ui.text
    # The default prompts: files in smol_magic/prompts, later ones merged over earlier ones. Each agent
    # class names its own (ToolCallingAgent: toolcalling_agent.yaml); the planning and final-answer
    # prompts of code_agent.yaml suit any agent, so a class without a file of its own starts from them.
    prompt_files: ClassVar[tuple[str, ...]] = ("code_agent.yaml",)
    placeholders: ClassVar[dict[str, Placeholders]] = PLACEHOLDERS
    _telemetry: Renderer = telemetry.NO_TRACE  # the run's OpenTelemetry spans (core/telemetry.py), while it runs

    def __init__(
        self,
        tools: list[Tool] | None = None,
        model: BaseModel | None = None,
        max_steps: int = 20,
        planning_interval: int | None = None,
        step_callbacks: list[Callable[..., Any]] | None = None,
        instructions: str | None = None,
        name: str | None = None,
        description: str | None = None,
        approver: Approver | None = None,
        renderer: Renderer | None = None,
        prompt_templates: PromptSource = None,
        final_answer_checks: list[Callable[..., Any]] | None = None,
        return_full_result: bool = False,
        rules: Rules | str | None = None,
        managed_agents: list[MultiStepAgent] | None = None,
        context_window: int | None = None,
        compact_at: float | None = compaction.DEFAULT_COMPACT_AT,
        budget: float | None = None,
        max_tokens: int | None = None,
        verbosity_level: int | None = None,
        stream_outputs: bool = True,
        provide_run_summary: bool = True,
        add_base_tools: bool = False,
    ):
        """``verbosity_level``, ``stream_outputs``, ``provide_run_summary`` and ``add_base_tools`` are smolagents'
        own: a level of 1 or more prints the steps as they happen (``LogLevel.INFO``; lower, or none, prints
        nothing); ``stream_outputs=False`` asks the model for each reply whole, for a server that does not
        stream; ``provide_run_summary=False`` tells a manager only this agent's final answer."""
        if add_base_tools:
            raise ValueError("add_base_tools: smol-magic has no base tools (smolagents' are a web search, a web page "
                             "visitor and speech-to-text, which reach the network); give the tools you want in tools=[...]")
        if model is None:
            raise ValueError("an agent needs a model: CodeAgent(model=LiteLLMModel('openai/gpt-4o-mini'))")
        self.prompt_templates: PromptTemplates = prompts.load(self._prompt_files(), prompt_templates,
                                                              self.placeholders)
        self.final_answer_checks = list(final_answer_checks or [])
        for check in self.final_answer_checks:
            if not callable(check):
                raise TypeError(f"final_answer_checks: {check!r} is not a function; give functions "
                                "check(answer, memory) -> bool")
        self.return_full_result = return_full_result
        self.rules = Rules.of(rules)
        self.model = as_model(model)  # a smolagents model runs in a thread, behind our async protocol
        self.tools: dict[str, Tool] = {t.name: t for t in as_tools(tools)}  # smolagents / LangChain tools too
        self.tools.setdefault("final_answer", final_answer)
        self.max_steps = max_steps
        self.planning_interval = planning_interval
        self.step_callbacks = list(step_callbacks or [])
        self.instructions = instructions
        self.name = name
        self.description = description
        self.approver: Approver = approver or AutoApprover()
        self.verbosity_level = verbosity_level
        talks = verbosity_level is not None and int(verbosity_level) >= 1 and type(self).text_trace is not None
        self.renderer: Renderer = renderer or (type(self).text_trace() if talks else Renderer())  # type: ignore[misc]
        self.stream_outputs = stream_outputs
        self.provide_run_summary = provide_run_summary
        self.memory = AgentMemory()
        self.runs: list[RunResult] = []
        self.managed_agents = managed_agents or []
        self.managed_calls: list[RunResult] = []  # managed runs of the action in progress, for its step
        self._stop_requested = False
        self._skipped_blocks = 0  # code blocks after the first in the last reply (they do not run)
        # Older steps are compacted in what is sent past compact_at of the context window (None: never);
        # the window is the model's (litellm's model info) unless given. See core/compaction.py.
        self.context_window = context_window
        self.compact_at = compact_at
        # Bounds of each run, managed agents' calls included: US dollars (litellm's cost map) and tokens.
        self.budget, self.max_tokens = costs.check_budget(budget), costs.check_max_tokens(max_tokens)
        self.called_by: MultiStepAgent | None = None  # the manager whose action runs this agent now (its budget counts)
        self._calls: list[costs.Call] = []  # this run's model calls, for the budget's estimate of the next

    def _prompt_files(self) -> tuple[str, ...]:
        return type(self).prompt_files

    @property
    def managed_agents(self) -> dict[str, ManagedAgent]:
        """The agents this one can call, by name, each wrapped as a tool."""
        return self._managed

    @managed_agents.setter
    def managed_agents(self, agents: list[MultiStepAgent] | dict[str, Any]) -> None:
        agents = list(agents.values()) if isinstance(agents, dict) else list(agents)
        agents = [a.agent if isinstance(a, ManagedAgent) else a for a in agents]
        self._managed = {a.name: ManagedAgent(a, self) for a in check_managed(agents, self.tools, self)}

    # -- public API ---------------------------------------------------------

    def write_memory_to_messages(self) -> list[dict[str, Any]]:
        """The conversation as the model is sent it next (smolagents' name): system prompt, tasks, steps."""
        messages, _ = self._request()
        return messages

    def visualize(self) -> None:
        """Print the agent as a tree: its model, tools and managed agents (theirs too)."""
        print("\n".join(self._tree()))

    def _tree(self, indent: str = "") -> list[str]:
        lines = [f"{indent}{self!r}"]
        for name, tool in self.tools.items():
            lines.append(f"{indent}  tool {tool.signature() if hasattr(tool, 'signature') else name}")
        for managed in self.managed_agents.values():
            tree = getattr(managed.agent, "_tree", None)  # a smolagents agent has its own visualize
            lines += tree(indent + "  ") if tree is not None else [f"{indent}  {managed.agent!r}"]
        return lines

    def replay(self, detailed: bool = False) -> None:
        """Print the conversation step by step: the task, each step's thought, code and observation, the answer.

        ``detailed=True`` also prints what the model was sent before each step (new messages only).
        """
        replayer = type(self).replayer
        if replayer is None:
            raise RuntimeError("no replayer: import smol_magic (it plugs in smol_magic.ui.text.replay)")
        replayer(self, detailed=detailed)

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return (f"{type(self).__name__}({name}model={getattr(self.model, 'model_id', type(self.model).__name__)!r}, "
                f"tools={list(self.tools)}, runs={len(self.runs)})")

    def to_notebook(self, path: str, run: int = -1, with_setup: Sequence[str] = ()) -> str:
        """Export a run (default: the last) as a notebook that re-executes; ``.py`` gives a script."""
        if not self.runs:
            raise ValueError("nothing to export: this agent has not run yet")
        exporter = type(self).exporter
        if exporter is None:
            raise RuntimeError("no exporter: import smol_magic (it plugs in smol_magic.export)")
        ns = getattr(getattr(self, "executor", None), "namespace", {})
        return exporter(self.runs[run], str(path), ns, with_setup, describe_model(self.model))

    def __call__(self, task: str, additional_args: dict[str, Any] | None = None) -> str:
        """Run ``task`` as a managed agent runs (fresh memory) and return what a manager reads: the final
        answer and a summary of the run, as text. So ``web_agent(task=...)`` re-runs in a notebook cell too."""
        return ManagedAgent(self).forward(task, additional_args)

    def interrupt(self) -> None:
        """Ask the run to stop after the current step (the Stop button); safe to call from another thread.

        A step whose model is still thinking ends without running its code.
        """
        self._stop_requested = True

    def run(
        self,
        task: str,
        reset: bool = True,
        max_steps: int | None = None,
        additional_args: dict[str, Any] | None = None,
        stream: bool = False,
        return_full_result: bool | None = None,
    ) -> Any:
        """Run a task to its final answer; with ``stream=True``, yield each step as it completes.

        ``return_full_result=True`` (or the agent's ``return_full_result``) returns the ``RunResult``
        (output, state, steps, token_usage, timing) instead of the answer alone.
        """
        steps = iterate_blocking(self.stream_steps(task, reset, max_steps, additional_args))
        if stream:
            return steps
        for _ in steps:
            pass
        return self._outcome(return_full_result)

    async def arun(
        self,
        task: str,
        reset: bool = True,
        max_steps: int | None = None,
        additional_args: dict[str, Any] | None = None,
        return_full_result: bool | None = None,
    ) -> Any:
        async for _ in self.stream_steps(task, reset, max_steps, additional_args):
            pass
        return self._outcome(return_full_result)

    def _outcome(self, full: bool | None = None) -> Any:
        run = self.runs[-1]
        if run.state == RunState.FAILED:
            raise ModelError(run.error or "the run failed")
        return run if (self.return_full_result if full is None else full) else run.output

    async def stream_steps(
        self,
        task: str,
        reset: bool = True,
        max_steps: int | None = None,
        additional_args: dict[str, Any] | None = None,
    ) -> AsyncIterator[MemoryStep]:
        if reset:
            self.memory.reset()
        variables = self._user_variables()  # one walk over the notebook's names for the run's start
        self._find_secrets(variables=variables)
        redact.register(redact.find_secrets(additional_args or {}))
        if self.rules:  # a key written in the rules file is as secret as one in the environment
            redact.register(redact.secrets_in_text(self.rules.text))
        self.memory.system_prompt = redact.redact_secrets(self.system_prompt())
        self._stop_requested = False
        self._calls = []
        run = RunResult(
            task=redact.redact_secrets(task), model_id=getattr(self.model, "model_id", type(self.model).__name__),
            started_at=datetime.now().isoformat(timespec="seconds"),
            variables_before=list(variables), timing=Timing(time.time()),
        )
        self.runs.append(run)
        self.renderer.run_started(self, task)
        self.managed_calls = []
        self._telemetry = telemetry.start_run(self, task)  # off: a no-op; on: spans fed the renderer's hooks
        renderer, self.renderer = self.renderer, telemetry.observed(self.renderer, self._telemetry)
        try:  # from the tools' binding on, the run's end (restore) puts the user's own names back
            await self._call_executor(
                lambda: self.executor.send_tools({**self.tools, **self.managed_agents, **(additional_args or {})}))
            self._run_variables = variables  # the task's context lists them (task_context)
            try:
                task_step = TaskStep(task=redact.redact_secrets(task),
                                     context=redact.redact_secrets(self.task_context(task, additional_args)))
            finally:
                self._run_variables = None  # no reference to the user's objects kept past the run's start
            self._keep(run, task_step)
            yield task_step
            async for step in self._steps(run, max_steps or self.max_steps):
                yield step
        except BudgetReached as exc:  # before a model call: the steps so far are kept
            run.state, run.error = RunState.BUDGET, str(exc)
        except (KeyboardInterrupt, asyncio.CancelledError):
            run.state, run.error = RunState.INTERRUPTED, "interrupted by the user"
            raise
        except Exception as exc:  # the trace and the store show it ended, and why
            run.state, run.error = RunState.FAILED, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            run.timing.end_time = time.time()
            await self._call_executor(self.executor.restore)
            try:
                self.renderer.run_finished(run)
            finally:
                self.renderer, self._telemetry = renderer, telemetry.NO_TRACE

    # -- the loop -----------------------------------------------------------

    async def _steps(self, run: RunResult, max_steps: int) -> AsyncIterator[MemoryStep]:
        for number in range(1, max_steps + 1):
            if self.planning_interval and (number - 1) % self.planning_interval == 0:
                try:
                    plan = await self._planning_step(first=number == 1, remaining_steps=max_steps - number + 1)
                except ModelError as exc:
                    run.state, run.error = RunState.FAILED, str(exc)
                    return
                self._keep(run, plan)
                yield plan
            self.renderer.step_started(number)
            step = ActionStep(step_number=number, start_time=time.time())
            try:
                await self._action_step(step)
            except ModelError as exc:
                run.state, run.error = RunState.FAILED, str(exc)
                return
            except AgentStopped:
                run.state = RunState.STOPPED
                self._keep(run, step)
                yield step
                return
            except (KeyboardInterrupt, asyncio.CancelledError):
                step.error = step.error or "interrupted by the user"
                if not step.observation:
                    step.observation = "The user interrupted the run before this step finished."
                self._keep(run, step)
                raise
            if step.is_final_answer and self.final_answer_checks:
                self._check_final_answer(step)
            self._keep(run, step)
            yield step
            if step.is_final_answer:
                run.output = step.action_output
                final = FinalAnswerStep(output=step.action_output)
                self._keep(run, final)
                yield final
                return
            if self._stop_requested:
                run.state = RunState.STOPPED
                return
        run.state = RunState.MAX_STEPS
        calls = len(self._calls)
        try:
            answer = await self._final_answer_after_max_steps()
        except ModelError as exc:
            run.error = str(exc)
            return
        for call in self._calls[calls:]:  # the final answer is no step, but its call is paid for
            run.token_usage = run.token_usage + call.usage
        run.output = answer
        final = FinalAnswerStep(output=answer)
        self._keep(run, final)
        yield final

    def _keep(self, run: RunResult, step: MemoryStep) -> None:
        """Put a finished step in memory and tell everyone who watches."""
        if isinstance(step, ActionStep):
            step.end_time = step.end_time or time.time()
            step.managed_runs, self.managed_calls = step.managed_runs + self.managed_calls, []
            for managed in step.managed_runs:  # what the managed agents used is part of this run's cost
                run.token_usage = run.token_usage + managed.token_usage
        self.memory.steps.append(step)
        run.steps.append(step)
        usage = getattr(step, "token_usage", None)
        if usage is not None:
            run.token_usage = run.token_usage + usage
        self.renderer.step_finished(step)
        for callback in self.step_callbacks:
            _call_callback(callback, step, self)

    async def _action_step(self, step: ActionStep) -> None:
        raise NotImplementedError

    def _check_final_answer(self, step: ActionStep) -> None:
        """Run the ``final_answer_checks``; the first that fails (False, or raises) sends the model back to work.

        The step is then not final: its observation and error say which check failed and why.
        """
        for check in self.final_answer_checks:
            name = getattr(check, "__name__", type(check).__name__)
            try:
                passed, why = bool(_call_check(check, step.action_output, self)), "it returned False"
            except Exception as exc:  # noqa: BLE001 - a failing check is feedback for the model
                passed, why = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if passed:
                continue
            doc = (inspect.getdoc(check) or "").strip().splitlines()
            what = f" ({doc[0]})" if doc and not isinstance(check, type) else ""
            reason = f"final answer check {name!r}{what} failed: {why}"
            step.is_final_answer = False
            step.error = "\n".join(filter(None, [step.error, reason]))
            step.observation = redact.redact_secrets(
                f"{step.observation}\nYour final answer was not accepted: {reason}. The task is not done: "
                "keep working, then call final_answer again with an answer that passes this check.")
            return

    async def _planning_step(self, first: bool, remaining_steps: int | None = None) -> PlanningStep:
        key = "planning.initial_plan" if first else "planning.update_plan"
        prompt = self.render_prompt(key, remaining_steps=remaining_steps if remaining_steps is not None else "")
        messages, compacted = self._request([{"role": "user", "content": prompt}])
        start = time.perf_counter()
        content, usage = await self._generate(messages)
        return PlanningStep(
            plan=content.strip(), model_input_messages=messages, token_usage=usage,
            duration=time.perf_counter() - start, compaction=compacted,
        )

    def _request(self, extra: Messages | None = None) -> tuple[Messages, Compaction | None]:
        """The next request: the conversation (then ``extra``), its older steps compacted once it nears the
        model's context window; and what was compacted (see core/compaction.py)."""
        window = self.context_window or compaction.context_window(self.model)
        return compaction.request(self.memory, window, self.compact_at, extra)

    async def _final_answer_after_max_steps(self) -> str:
        prompt = self.render_prompt("final_answer.post_messages")
        messages, _ = self._request([{"role": "user", "content": prompt}])
        content, _ = await self._generate(messages)
        code, reasoning = parse_code(content)
        return reasoning or content.strip()

    async def _generate(self, messages: Messages, stop: list[str] | None = None,
                        **options: Any) -> tuple[str, TokenUsage]:
        """The model's text reply and its token usage (see ``_generate_reply``)."""
        content, usage, _ = await self._generate_reply(messages, stop, **options)
        return content, usage

    async def _generate_reply(self, messages: Messages, stop: list[str] | None = None,
                              tools: list[Tool] | None = None,
                              **options: Any) -> tuple[str, TokenUsage, list[ChatMessageToolCall]]:
        """Stream the reply into the renderer; the event loop stays free while the model thinks.

        Every message is redacted here, the last gate before the model (and a --record file):
        whatever a step kept, no run of 8 characters of a secret leaves, in the text or in the
        arguments of a tool call. The renderer is sent the first ``SHOWN_CHARS`` of the reply:
        a 2 MB reply must not flood the trace. With ``tools``, the model is offered them as
        native tool calls, and the calls it makes (pieced together from the stream) are returned.
        ``options`` (``response_format``) reach the model only if its ``generate_stream`` takes them.
        """
        secrets = redact.current()
        messages[:] = self._redact_messages(messages, secrets)
        parts: list[str] = []
        usage = TokenUsage()
        streamed = 0
        calls: list[ChatMessageToolCall] = []
        if tools:
            options["tools_to_call_from"] = tools
        options = accepts_options(self.model.generate_stream, options)
        self._check_limits(messages)
        stream = (self.model.generate_stream(messages, stop_sequences=stop, **options) if self.stream_outputs
                  else whole_reply(self.model, messages, stop, **options))
        async for delta in self._telemetry.model_stream(stream, messages, tools):  # a span per call, when traced
            if delta.tool_calls:
                accumulate_tool_calls(calls, delta.tool_calls)
            if delta.content:
                parts.append(delta.content)
                if streamed < SHOWN_CHARS:
                    shown = delta.content[:SHOWN_CHARS - streamed]
                    streamed += len(shown)
                    self.renderer.model_delta(shown if streamed < SHOWN_CHARS else shown + "\n… (the reply goes on)")
            if delta.token_usage is not None:
                usage = delta.token_usage
        for call in calls:
            call.arguments = secrets.redact(call.arguments)
        usage = costs.priced(getattr(self.model, "model_id", None), usage)
        self._calls.append(costs.Call(self._sent.chars, usage))
        return secrets.redact("".join(parts)), usage, calls

    def _redact_messages(self, messages: Messages, secrets: redact.Secrets) -> Messages:
        """Every message redacted, roles alternating. The messages this agent sent in its previous request,
        shared as the same objects by ``compaction.request`` (usually all but the last two), are already
        redacted under the same secrets and counted: a long run's request costs what its new messages cost."""
        sent: _Sent | None = getattr(self, "_sent", None)
        previous = sent.messages if sent is not None and sent.secrets is secrets else []
        keep = _same_prefix(previous, messages)
        redacted = messages[:keep] + [_redacted(m, secrets) for m in messages[keep:]]
        # compaction.request alternates the roles already: merge (and copy) only if something would merge
        out = alternate_roles(redacted) if _would_merge(redacted) else redacted
        if out is redacted and keep == len(previous) and sent is not None:
            chars = sent.chars + costs.message_chars(out[keep:])
        else:
            chars = costs.message_chars(out)
        self._sent = _Sent(secrets, out, chars)
        return out

    def spent(self) -> TokenUsage:
        """What the current run has used so far: its model calls (the step in progress's too) and its managed runs."""
        used = TokenUsage()
        for call in self._calls:
            used = used + call.usage
        kept = [managed for step in self.runs[-1].action_steps for managed in step.managed_runs] if self.runs else []
        for managed in kept + self.managed_calls:
            used = used + managed.token_usage
        return used

    def _check_limits(self, messages: Messages) -> None:
        """Stop before a model call that would pass this run's budget or token cap, or those of the managers
        whose actions run this agent (their runs' use so far includes this one's); see ``costs.estimate``."""
        chain, agent = [], self
        while agent is not None:
            chain.append(agent)
            agent = agent.called_by
        if not any(a.budget or a.max_tokens for a in chain):  # no bounds: nothing to add up before each call
            return
        agent, used, who = self, TokenUsage(), ""
        next_call: TokenUsage | None = None
        while agent is not None:
            used = used + agent.spent()
            if agent.budget or agent.max_tokens:
                next_call = next_call or costs.estimate(self.model, messages, self._calls)
                costs.Limits(agent.budget, agent.max_tokens, used, who).check(
                    next_call, getattr(self.model, "model_id", None))
            agent = agent.called_by
            who = f"the manager {agent.name!r}" if agent is not None and agent.name else "the manager"

    def _find_secrets(self, names: Sequence[str] | None = None, variables: Mapping[str, Any] | None = None) -> None:
        """Register the credentials among the user's variables (all, these names, or these ``variables``),
        so they are redacted."""
        executor = getattr(self, "executor", None)
        if executor is None:
            return
        if variables is None:
            ns = executor.namespace
            if names is not None:  # after a step: only the names it bound, not a walk over the whole notebook
                ns = {name: ns[name] for name in names if name in ns}
            variables = namespace.user_variables(ns, executor.hidden())
        redact.register(redact.find_secrets(variables, public=True))

    def _user_variables(self) -> dict[str, Any]:
        executor = getattr(self, "executor", None)
        return namespace.user_variables(executor.namespace, executor.hidden()) if executor else {}

    async def _call_executor(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the main thread, where signals (timeout, Interrupt) work."""
        return await on_main_thread(fn)

    def _variables(self) -> list[str]:
        executor = getattr(self, "executor", None)
        return list(namespace.user_variables(executor.namespace, executor.hidden())) if executor else []

    # -- prompts ------------------------------------------------------------

    def system_prompt(self) -> str:
        raise NotImplementedError

    def render_prompt(self, key: str, **values: Any) -> str:
        """The template at ``key`` (``planning.update_plan``) of ``prompt_templates``, filled."""
        task = self.runs[-1].task if self.runs else ""
        defaults = {"task": task,
                    "tools": render_tools(list(self.tools.values())) + managed_agents_prompt(self.managed_agents)}
        return prompts.render(self.prompt_templates, key, **{**defaults, **values})

    def instructions_text(self) -> str:
        """The ``{instructions}`` of the system prompt: the agent's instructions, then the project rules."""
        parts = []
        if self.instructions:
            parts.append(f"Additional instructions:\n{self.instructions.strip()}")
        if self.rules:
            parts.append(f"{self.rules.heading()}\n{self.rules.text.strip()}")
        return "".join(f"\n{part}\n" for part in parts)

    def task_context(self, task: str, additional_args: dict[str, Any] | None) -> str:
        return ""


class CodeAgent(MultiStepAgent):
    """An agent whose actions are Python code, run natively by an executor."""

    prompt_files: ClassVar[tuple[str, ...]] = ("code_agent.yaml",)

    def __init__(
        self,
        tools: list[Tool] | None = None,
        model: BaseModel | None = None,
        max_steps: int = 20,
        planning_interval: int | None = None,
        additional_authorized_imports: list[str] | None = None,
        step_callbacks: list[Callable[..., Any]] | None = None,
        instructions: str | None = None,
        name: str | None = None,
        description: str | None = None,
        executor: Executor | None = None,
        approver: Approver | None = None,
        renderer: Renderer | None = None,
        timeout: float | None = 60.0,
        max_observation_chars: int = 10_000,
        policy: guard.Policy | None = None,
        namespace_budget: int = namespace.DEFAULT_BUDGET_TOKENS,
        prompt_templates: PromptSource = None,
        final_answer_checks: list[Callable[..., Any]] | None = None,
        return_full_result: bool = False,
        rules: Rules | str | None = None,
        use_structured_outputs_internally: bool = False,
        managed_agents: list[MultiStepAgent] | None = None,
        context_window: int | None = None,
        compact_at: float | None = compaction.DEFAULT_COMPACT_AT,
        budget: float | None = None,
        max_tokens: int | None = None,
        executor_type: str | None = None,
        max_print_outputs_length: int | None = None,
        **smolagents_options: Any,
    ):
        """``executor_type`` and ``max_print_outputs_length`` are smolagents' names: ``"local"`` is this
        process (smolagents' remote sandboxes are refused, naming ours), and the length bounds each
        observation (``max_observation_chars``). ``smolagents_options``: ``MultiStepAgent``'s own
        (``verbosity_level``, ``stream_outputs`` ...)."""
        if executor_type not in (None, "local"):
            raise ValueError(
                f"executor_type={executor_type!r}: smolagents' remote sandboxes are not part of smol-magic. Its code "
                "runs in this process (executor_type='local'), or, from a notebook, in a separate kernel: "
                "%%agent --executor isolated, or --executor gateway for a Jupyter Kernel Gateway")
        if max_print_outputs_length is not None:
            max_observation_chars = max_print_outputs_length
        # Structured outputs: the model replies {"thought", "code"} as JSON (its own prompts, merged over the defaults).
        self.use_structured_outputs_internally = use_structured_outputs_internally
        self.response_format_refused: str | None = None  # why the endpoint refused the JSON schema, once it has
        super().__init__(
            tools=tools, model=model, max_steps=max_steps, planning_interval=planning_interval,
            step_callbacks=step_callbacks, instructions=instructions, name=name, description=description,
            approver=approver, renderer=renderer, prompt_templates=prompt_templates,
            final_answer_checks=final_answer_checks, return_full_result=return_full_result, rules=rules,
            managed_agents=managed_agents, budget=budget, max_tokens=max_tokens, context_window=context_window,
            compact_at=compact_at, **smolagents_options,
        )
        self.executor: Executor = executor if executor is not None else LocalPythonExecutor()
        self.policy = policy or guard.Policy()
        for module in additional_authorized_imports or []:
            if module not in self.policy.authorized_imports:
                self.policy.authorized_imports.append(module)
        self.timeout = timeout
        self.max_observation_chars = max_observation_chars
        self.protected: set[str] = set()  # names a person must approve changing (--protect)
        self.agent_made: dict[str, int] = {}  # names agent runs bound -> id of what they bound
        self.namespace_budget = namespace_budget  # tokens (chars / 4) for the variables section of the prompt
        self.can_undo: undo.CanUndo = undo.can_undo  # what undo may keep a copy of (the cap is injectable here)
        self.watch_limits = watch.Limits()  # bounds of the data check around each action

    def _prompt_files(self) -> tuple[str, ...]:
        extra = ("structured_code_agent.yaml",) if self.use_structured_outputs_internally else ()
        return type(self).prompt_files + extra

    def system_prompt(self) -> str:
        return self.render_prompt("system_prompt", imports=", ".join(self.policy.authorized_imports),
                                  instructions=self.instructions_text())

    def task_context(self, task: str, additional_args: dict[str, Any] | None) -> str:
        ns, hidden = self.executor.namespace, ChainMap(additional_args or {}, self.executor.hidden())
        known = getattr(self, "_run_variables", None)  # the run's start walked the namespace already
        sent = [*self.tools, *self.managed_agents, *(additional_args or {})]  # bound since the walk (send_tools)
        variables = namespace.still_bound(known, ns, hidden, sent) if known is not None else None
        parts = [namespace.summarize(ns, hidden, self.namespace_budget, task=task, variables=variables)]
        parts.append(getattr(self.executor, "prompt_note", ""))  # where the code runs, if not in the notebook
        if additional_args:
            parts.append(
                "You have been given these additional variables:\n"
                + "\n".join(f"- {k}: {namespace.named_headline(k, v)}" for k, v in additional_args.items())
            )
        return "\n\n".join(p for p in parts if p)

    async def _action_step(self, step: ActionStep) -> None:
        messages, step.compaction = self._request()
        step.model_input_messages = messages
        content, step.token_usage = await self._generate_action(messages)
        step.model_output = content
        parsed = (self.use_structured_outputs_internally and parse_structured_reply(content)) or parse_reply(content)
        code, step.reasoning = parsed.code, parsed.reasoning
        self._skipped_blocks = parsed.skipped
        if self._stop_requested:  # Stop was clicked while the model was thinking
            step.code, step.approval = code, Approval.STOP
            step.observation = "The user stopped the run before this code ran."
            raise AgentStopped()
        if code is None:
            step.error = "no code in the reply"
            step.observation = self.render_prompt("no_code_error")
            return
        await self.run_action(step, code)

    async def run_action(self, step: ActionStep, code: str) -> None:
        """Judge, approve, run and observe ``code`` as this step's action: the path of a model's code, and of
        code sent from elsewhere (an outside agent through the notebook's MCP server).

        Raises ``AgentStopped`` when a person clicks Stop, and ``KeyboardInterrupt`` when the code is interrupted.
        """
        step.code = code
        tree = _parse(code)  # parsed once: the guard judges this tree, the watch reads its names, the executor runs it
        step.verdict = self.check(code, tree)
        self.renderer.action_ready(step)
        if step.verdict.decision == Ruling.DENY:
            step.approval = Approval.DENIED
            step.observation = _refusal("The guard refused this code and it did not run", step.verdict)
            return
        decision = await self.approver.approve(step)
        if decision.action == Action.STOP:
            step.approval = Approval.STOP
            step.observation = "The user stopped the run before this code ran."
            raise AgentStopped()
        if decision.action == Action.SKIP:
            step.approval = Approval.REFUSED if decision.refused else Approval.SKIP
            why = f": {decision.reason}" if decision.reason else ""
            step.observation = (
                _refusal(f"This code was not run{why}", step.verdict)
                if decision.refused else f"The user skipped this code; it did not run{why}."
            )
            return
        if decision.code is not None and decision.code != code:
            step.proposed_code, step.code = code, decision.code
            tree = _parse(step.code)
            step.verdict = self.check(step.code, tree)
            if step.verdict.decision == Ruling.DENY:
                step.approval = Approval.DENIED
                step.observation = _refusal("The user's edit was refused by the guard", step.verdict)
                return
            step.approval = Approval.EDIT
        else:
            step.approval = Approval.RUN if decision.by_person else Approval.AUTO
        self.renderer.action_started(step)
        copies = self._copies_for_undo(step)
        watched = self._watch(step, tree)
        result = await self._call_executor(lambda: self._execute(step.code, tree))
        refused = self._check_data(step, result, watched, copies)
        self._remember(step, result, copies)
        self._find_secrets([n for kind in ("created", "rebound") for n in result.changes.get(kind, [])])
        self._observe(step, result)
        if refused:
            self._tell_refused(step, refused)
        if result.interrupted:
            raise KeyboardInterrupt

    async def _generate_action(self, messages: Messages) -> tuple[str, TokenUsage]:
        """The model's reply for an action; with structured outputs, asked for as JSON {thought, code}.

        An endpoint that refuses the JSON-schema response format (HTTP 400 naming it) is asked
        again without it, and not asked with it again by this agent: the reply is parsed as text.
        """
        stop = ["Observation:", "Calling tools:"]
        if self.use_structured_outputs_internally and self.response_format_refused is None:
            try:
                return await self._generate(messages, stop, response_format=CODEAGENT_RESPONSE_FORMAT)
            except ModelError as exc:
                if not _RESPONSE_FORMAT_REFUSED.search(str(exc)):
                    raise
                self.response_format_refused = str(exc)
        return await self._generate(messages, stop)

    def _observe(self, step: ActionStep, result: ExecutionResult) -> None:
        secrets = redact.current()
        step.outputs, step.changes = secrets.redact_data(result.outputs), result.changes
        parts = []
        if self._skipped_blocks:
            parts.append(skipped_note(self._skipped_blocks))
        if step.approval == Approval.EDIT:
            parts.append("The user edited your code before running it; this is the code that ran:\n" + step.code)
        if result.output:
            parts.append(result.output)
        if result.error:
            step.error = secrets.redact(result.error)
            parts.append(step.error)
        if result.timed_out:
            parts.append(f"The action was stopped after {self.timeout:g} s. Make it faster or smaller.")
        if result.is_final_answer:
            step.is_final_answer, step.action_output = True, result.final_answer
            parts.append(f"Final answer: {namespace.headline(result.final_answer)}")
        if not parts:
            parts.append("(the code ran and printed nothing)")
        observation = truncate("\n".join(parts), self.max_observation_chars)
        # The namespace diff always ends the observation, outside the truncation: it is short and bounded.
        step.changes_text = secrets.redact(namespace.format_diff(result.changes, self.executor.namespace))
        if step.changes_text:
            observation += "\nVariables changed:\n" + step.changes_text
        step.observation = secrets.redact(observation)

    # -- the user's data ------------------------------------------------------

    def guard_context(self) -> guard.GuardContext:
        """The live state the guard judges against; undo's predicate tells it what undo can restore."""
        ns = self.executor.namespace
        # A contained executor (a separate kernel) holds copies: nothing there is the user's own data.
        made = _Everything() if getattr(self.executor, "contained", False) else _AgentMade(ns, self.agent_made)
        return guard.GuardContext(namespace=ns, agent_names=made,
                                  protected=self.protected, hidden=self.executor.hidden(), can_undo=self.can_undo)

    def check(self, code: str, tree: ast.Module | None = None) -> guard.GuardVerdict:
        """The guard's verdict, judged against the live namespace; ``tree``: ``ast.parse(code)``, if parsed already."""
        verdict = guard.check(code, self.policy, self.guard_context(), tree=tree)
        verdict.guard_off = not self.policy.enabled
        return verdict

    def _execute(self, code: str, tree: ast.Module | None) -> ExecutionResult:
        """The executor runs the action; the guard's tree too when it takes one (no second parse)."""
        if tree is not None and _takes_tree(self.executor):
            return self.executor.execute(code, self.timeout, tree=tree)
        return self.executor.execute(code, self.timeout)

    def _copies_for_undo(self, step: ActionStep) -> dict[str, Any]:
        """Copies of the user's objects an approved action changes in place, so undo can restore them."""
        findings = getattr(step.verdict, "findings", [])
        if not any(f.capability == "mutate_data" for f in findings):
            return {}
        return undo.snapshots(step.code or "", self.executor.namespace, self.agent_made, self.guard_context())

    def _watch(self, step: ActionStep, tree: ast.Module | None = None) -> watch.Watch:
        """Snapshot the user's data this action can reach, by identity (aliases, containers, closures)."""
        ns = self.executor.namespace

        def variables() -> dict[str, Any]:  # only asked for when the action reaches something data-like
            context = self.guard_context()
            found = {name: value for name, value in namespace.user_variables(ns, context.hidden).items()
                     if guard.users_data(name, context)[0]}
            return found | {name: ns[name] for name in self.protected if name in ns}

        names = {n.id for n in ast.walk(tree) if type(n) is ast.Name} if tree is not None else used_names(step.code or "")
        return watch.watch(names, ns, variables, self.watch_limits)

    def _check_data(self, step: ActionStep, result: ExecutionResult, watched: watch.Watch,
                    copies: dict[str, Any]) -> list[tuple[watch.Watched, bool]]:
        """After an action: put back what it changed of the user's data without approval; keep approved changes for undo.

        Approved: a person's click (Run, Edit, Run all), the guard off, or ``mutate_data`` granted
        (not for names protected with --protect). Returns what was refused, each with whether it was put back.
        """
        by_person = step.approval in (Approval.RUN, Approval.EDIT) or not self.policy.enabled
        granted = self.policy.granted("mutate_data")
        run, refused = self.runs[-1], []
        changed = result.changes.get("changed", [])
        for item in watched.changed():
            if by_person or (granted and item.owner not in self.protected):
                if item.path == item.owner and item.owner in copies:
                    continue  # undo keeps the guard's copy of it, and says it changed (undo.record)
                if item.path not in changed and item.path not in result.changes.get("rebound", []):
                    changed.append(item.path)
                ok, why = self.can_undo(item.value) if item.restorable else (
                    False, "it was too big to copy before the action")
                if ok:
                    run.undo_in_place.setdefault(id(item.value), item)
                else:
                    run.not_undoable.setdefault(item.path, why)
                continue
            put_back = watched.put_back(item)
            refused.append((item, put_back))
            if not put_back:
                run.not_undoable.setdefault(item.path, "changed without approval, and it could not be put back")
                if item.path not in changed:
                    changed.append(item.path)
        if changed:
            result.changes["changed"] = changed
        return refused

    def _tell_refused(self, step: ActionStep, refused: list[tuple[watch.Watched, bool]]) -> None:
        """Tell the model (observation) and the user (the step's error in the trace) what was refused."""
        def name(item: watch.Watched) -> str:
            via = f", reached through {item.via!r}" if item.via != item.path else ""
            return f"{item.path} ({type(item.value).__name__}{via})"

        back = [name(item) for item, ok in refused if ok]
        lost = [name(item) for item, ok in refused if not ok]
        lines, error = [], []
        if back:
            lines.append("Refused: this action changed the user's data without their approval, so that change was "
                         f"put back: {', '.join(back)} is as it was before this step. The rest of the action stands.")
            error.append("changed the user's data without approval; put back: "
                         + ", ".join(item.path for item, ok in refused if ok))
        if lost:
            lines.append(f"This action changed the user's data without their approval and it could NOT be put back: "
                         f"{', '.join(lost)}. Tell the user in your answer.")
            error.append(f"changed the user's data without approval; NOT put back: {', '.join(lost)}")
        lines.append("Do not change the user's variables through other names. Work on a copy under a new name "
                     "(e.g. df_2 = df.copy()), or change the variable by its own name so the user can approve it.")
        step.observation = redact.redact_secrets(step.observation + "\n" + "\n".join(lines))
        step.error = "\n".join(filter(None, [step.error, *error]))

    def _remember(self, step: ActionStep, result: ExecutionResult, copies: dict[str, Any]) -> None:
        """Keep what undo needs (the bindings before the run) and which names the agent made."""
        ns, run = self.executor.namespace, self.runs[-1]
        undo.record(run.undo, ns, result.changes, result.previous, copies)  # in place: the model is told too
        for name in result.changes.get("created", []) + result.changes.get("rebound", []):
            if name in ns:
                self.agent_made[name] = id(ns[name])
        for name in result.changes.get("deleted", []):
            self.agent_made.pop(name, None)

    def undo(self, run: int = -1) -> dict[str, list[str]]:
        """Put back every binding a run created, rebound, deleted or changed in place (what a copy allows).

        Returns the names ``removed`` and ``restored``, and under ``not restored`` what the run
        changed that undo cannot put back, with why (e.g. a frame over the undo cap).
        """
        if not self.runs:
            raise ValueError("nothing to undo: this agent has not run yet")
        result = self.runs[run]
        done = undo.restore(result.undo, self.executor.namespace, result.undo_in_place.values())
        for name in result.undo:
            self.agent_made.pop(name, None)
        result.undo, result.undo_in_place = {}, {}
        done["not restored"] += [f"{path} ({why})" for path, why in result.not_undoable.items()]
        return done


class _Everything:
    """Every name: in a contained executor, all variables are the agent's to change."""

    def __contains__(self, name: object) -> bool:
        return True


class _AgentMade:
    """Names an agent run bound, while they still hold what the agent put there.

    Once the user rebinds such a name in a cell of their own, it is theirs again.
    """

    def __init__(self, ns: Any, made: dict[str, int]):
        self.ns, self.made = ns, made

    def __contains__(self, name: object) -> bool:
        return name in self.made and name in self.ns and id(self.ns[name]) == self.made[name]


def _redacted(message: dict[str, Any], secrets: redact.Secrets) -> dict[str, Any]:
    """A message with its text and its tool calls' arguments redacted: the message itself if it holds no secret."""
    content = message.get("content")
    text = secrets.redact(content or "")
    if text is content and not message.get("tool_calls"):
        return message
    message = {**message, "content": text}
    if message.get("tool_calls"):
        message["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": secrets.redact(call["function"]["arguments"])}}
            for call in message["tool_calls"]]
    return message


@dataclass
class _Sent:
    """An agent's previous request as sent: its messages (held, so they stay the same objects), the
    secrets they were redacted under, and their characters (``costs.message_chars``)."""

    secrets: redact.Secrets
    messages: Messages
    chars: int


def _same_prefix(a: list[Any], b: list[Any]) -> int:
    """How many leading items of ``a`` and ``b`` are the same objects (compared in C while they are)."""
    n = min(len(a), len(b))
    if all(map(operator.is_, a[:n], b[:n])):
        return n
    return next(i for i in range(n) if a[i] is not b[i])


def _would_merge(messages: Messages) -> bool:
    """Whether ``alternate_roles`` would merge two of these messages (its condition, without the copies)."""
    roles = [m["role"] for m in messages]
    if not any(map(operator.eq, roles, roles[1:])):  # the usual answer, found in C
        return False
    return any(a["role"] == b["role"] and b["role"] != "tool" and "tool_calls" not in a and "tool_calls" not in b
               for a, b in zip(messages, messages[1:]))


def _parse(code: str) -> ast.Module | None:
    """The action's tree, or None when it does not parse (the guard then says why)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


_TAKES_TREE: dict[type, bool] = {}


def _takes_tree(executor: Any) -> bool:
    """Whether ``executor.execute`` accepts ``tree=`` (an optional addition to the Executor protocol)."""
    kind = type(executor)
    known = _TAKES_TREE.get(kind)
    if known is None:
        try:
            params = inspect.signature(executor.execute).parameters
        except (TypeError, ValueError):
            params = {}
        known = _TAKES_TREE[kind] = "tree" in params
    return known


def _refusal(prefix: str, verdict: Verdict) -> str:
    reasons = "\n".join(f"- {r}" for r in verdict.reasons)
    return f"{prefix}:\n{reasons}\nWrite different code that avoids this."


_RESPONSE_FORMAT_REFUSED = re.compile(r"response_format|response format|json_schema|structured output", re.I)


def _call_check(check: Callable[..., Any], answer: Any, agent: MultiStepAgent) -> Any:
    """``check(answer, memory)``, with ``agent=`` too if it takes it (as smolagents calls its checks)."""
    try:
        params = inspect.signature(check).parameters.values()
    except (TypeError, ValueError):
        params = []
    if any(p.name == "agent" or p.kind == p.VAR_KEYWORD for p in params):
        return check(answer, agent.memory, agent=agent)
    return check(answer, agent.memory)


def _call_callback(callback: Callable[..., Any], step: MemoryStep, agent: MultiStepAgent) -> None:
    try:
        params = inspect.signature(callback).parameters
    except (TypeError, ValueError):
        params = {}
    if "agent" in params or len(params) >= 2:
        callback(step, agent=agent)
    else:
        callback(step)


