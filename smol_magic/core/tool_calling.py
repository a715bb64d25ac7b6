"""``ToolCallingAgent``: the model calls tools (JSON arguments) instead of writing code.

A tool call is an action like any other. Each call is rendered as the Python it
amounts to (``result = add(a=1, b=2)``) and goes the CodeAgent's way: the guard
judges it against the live namespace, the approver shows it, the executor runs it
on the user's namespace (so undo, the data watch and export work unchanged), and
what it returns becomes the observation of that call.

Native tool calling (``tools=`` to the model, ``tool_calls`` back) is used
whenever the model takes ``tools_to_call_from``. A model without it, or a
server that refuses ``tools`` (HTTP 400 naming them), is driven by a
JSON-in-text protocol instead: ``Action: {"name": ..., "arguments": {...}}``.
That is also what a ``ScriptedModel`` reply written as text is read as.

Several calls in one reply run one after another, in the order the model gave
them: each may read what the previous one left in the namespace, so running
them concurrently would not be safe in general.
"""

from __future__ import annotations

import json
import keyword
import re
import weakref
from typing import Any, Callable

from .. import guard
from ..context import namespace
from ..safety import redact
from .agents import AgentStopped, CodeAgent, _refusal
from . import telemetry
from .approval import Action, Approver
from .compaction import DEFAULT_COMPACT_AT
from .events import Renderer
from .execution import ExecutionResult, Executor
from .memory import ActionStep, Approval, Ruling, ToolCallRecord
from .models import BaseModel, ChatMessageToolCall, ModelError, accepts_options
from .prompts import Placeholders, PromptSource, Rules
from .text import safe_repr, truncate
from .tools import Tool

# The default prompts are package data: smol_magic/prompts/toolcalling_agent.yaml (see core/prompts.py).
# What each template may use; {tools} (the text protocol, for a model without native tools) and
# {instructions} (instructions and project rules) must stay in an overridden system prompt.
PLACEHOLDERS: dict[str, Placeholders] = {
    "system_prompt": Placeholders(("tools", "instructions"), ("tools", "instructions")),
    "text_protocol": Placeholders(("schemas",), ("schemas",)),
    "planning.initial_plan": Placeholders(("task", "tools")),
    "planning.update_plan": Placeholders(("task", "tools", "remaining_steps")),
    "final_answer.post_messages": Placeholders(("task",)),
    "no_tool_call": Placeholders(()),
    "no_tool_call_text": Placeholders(()),
}

_NOTHING = object()
CallResult = tuple["ToolCallRecord | None", ExecutionResult, Any]  # a call (None: a person's edit), its result, its value
RESULT = "result"  # the variable a call's result is bound to, as ``result = tool(...)``

# Models whose server refused ``tools`` (HTTP 400): they are driven by text from then on.
_REFUSES_TOOLS: "weakref.WeakSet[Any]" = weakref.WeakSet()
_TOOLS_REFUSED = re.compile(r"\b(tools?|tool_choice|tool_calls|function[ _]?call\w*|functions)\b", re.I)
_BAD_REQUEST = re.compile(r"HTTP 4(00|22)|not support|unsupported|UnsupportedParams", re.I)


class ToolCallingAgent(CodeAgent):
    """An agent whose actions are tool calls with JSON arguments (smolagents' ``ToolCallingAgent``).

    It shares the CodeAgent's machinery for running an action (executor, guard, approval,
    undo, data watch, export): each call runs as ``result = tool(arg=...)``.
    """

    prompt_files = ("toolcalling_agent.yaml",)
    placeholders = PLACEHOLDERS

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
        executor: Executor | None = None,
        approver: Approver | None = None,
        renderer: Renderer | None = None,
        timeout: float | None = 60.0,
        max_observation_chars: int = 10_000,
        policy: guard.Policy | None = None,
        prompt_templates: PromptSource = None,
        final_answer_checks: list[Callable[..., Any]] | None = None,
        return_full_result: bool = False,
        rules: Rules | str | None = None,
        managed_agents: list[Any] | None = None,
        native_tools: bool | None = None,
        context_window: int | None = None,
        compact_at: float | None = DEFAULT_COMPACT_AT,
        budget: float | None = None,
        max_tokens: int | None = None,
        **smolagents_options: Any,
    ):
        """``smolagents_options``: smolagents' own (``verbosity_level``, ``stream_outputs`` ...), as ``CodeAgent``
        takes them."""
        super().__init__(
            tools=tools, model=model, max_steps=max_steps, planning_interval=planning_interval,
            step_callbacks=step_callbacks, instructions=instructions, name=name, description=description,
            executor=executor, approver=approver, renderer=renderer, timeout=timeout,
            max_observation_chars=max_observation_chars, policy=policy, prompt_templates=prompt_templates,
            final_answer_checks=final_answer_checks, return_full_result=return_full_result, rules=rules,
            managed_agents=managed_agents, budget=budget, max_tokens=max_tokens, context_window=context_window,
            compact_at=compact_at, **smolagents_options,
        )
        self.native_tools = native_tools  # None: native when the model takes tools, else the text protocol

    # -- prompts ------------------------------------------------------------

    def uses_native_tools(self) -> bool:
        """Whether the model is offered the tools natively (else it writes calls as JSON in text)."""
        if self.native_tools is not None:
            return self.native_tools
        return takes_tools(self.model) and not _refused(self.model)

    def callable_tools(self) -> dict[str, Tool]:
        """What the model may call: the tools, then the managed agents (each a tool with a ``task``)."""
        return {**self.tools, **self.managed_agents}

    def system_prompt(self) -> str:
        tools = ""
        if not self.uses_native_tools():
            schemas = "\n".join(json.dumps(t.to_tool_schema()["function"], default=repr) for t in self.callable_tools().values())
            tools = self.render_prompt("text_protocol", schemas=schemas)
        return self.render_prompt("system_prompt", tools=tools, instructions=self.instructions_text())

    def task_context(self, task: str, additional_args: dict[str, Any] | None) -> str:
        """Tool arguments are JSON: the notebook's variables cannot be passed, so they are not listed."""
        if not additional_args:
            return ""
        return "You have been given these additional values:\n" + "\n".join(
            f"- {k}: {namespace.named_headline(k, v)}" for k, v in additional_args.items())

    # -- one step -----------------------------------------------------------

    async def _action_step(self, step: ActionStep) -> None:
        messages, step.compaction = self._request()
        step.model_input_messages = messages
        native = self.uses_native_tools()
        try:
            content, step.token_usage, calls = await self._ask(messages, native)
        except ModelError as exc:
            if not (native and self.native_tools is None and refuses_tools(exc)):
                raise
            _REFUSES_TOOLS.add(self.model)  # this server takes no tools: say it in text from now on
            native = False
            self.memory.system_prompt = redact.redact_secrets(self.system_prompt())
            messages, step.compaction = self._request()
            step.model_input_messages = messages
            content, step.token_usage, calls = await self._ask(messages, native)
        step.model_output = content
        problem = self._read_calls(step, content, calls)
        if self._stop_requested:  # Stop was clicked while the model was thinking
            step.approval = Approval.STOP
            self._tell_all(step, "The user stopped the run before this call ran.")
            raise AgentStopped()
        if not step.tool_calls:
            step.error = "no tool call in the reply"
            step.observation = problem or self.render_prompt("no_tool_call" if native else "no_tool_call_text")
            return
        result_name = self._result_name()
        for call in step.tool_calls:
            call.code, call.error = self.render_call(call, result_name)
            if call.error:
                call.observation = call.error
        valid = [call for call in step.tool_calls if call.code]
        if not valid:
            step.error = "\n".join(c.error or "" for c in step.tool_calls)
            self._join_observations(step)
            return
        step.code = "\n".join(call.code or "" for call in valid)
        step.verdict = self.check(step.code)
        self.renderer.action_ready(step)
        if step.verdict.decision == Ruling.DENY:
            step.approval = Approval.DENIED
            self._tell_all(step, _refusal("The guard refused this call and it did not run", step.verdict), valid)
            return
        decision = await self.approver.approve(step)
        if decision.action == Action.STOP:
            step.approval = Approval.STOP
            self._tell_all(step, "The user stopped the run before this call ran.", valid)
            raise AgentStopped()
        if decision.action == Action.SKIP:
            step.approval = Approval.REFUSED if decision.refused else Approval.SKIP
            why = f": {decision.reason}" if decision.reason else ""
            self._tell_all(step, _refusal(f"This call was not run{why}", step.verdict) if decision.refused
                           else f"The user skipped this call; it did not run{why}.", valid)
            return
        edited = decision.code is not None and decision.code != step.code
        if edited:
            step.proposed_code, step.code = step.code, decision.code
            step.verdict = self.check(step.code)
            if step.verdict.decision == Ruling.DENY:
                step.approval = Approval.DENIED
                self._tell_all(step, _refusal("The user's edit was refused by the guard", step.verdict), valid)
                return
            step.approval = Approval.EDIT
        else:
            step.approval = Approval.RUN if decision.by_person else Approval.AUTO
        self.renderer.action_started(step)
        copies = self._copies_for_undo(step)
        watched = self._watch(step)
        results: list[CallResult] = []
        for call in ([None] if edited else valid):
            code = step.code if call is None else call.code
            with telemetry.tool_call(call.name, call.arguments, call.id) if call else telemetry.NO_SPAN:
                result = await self._call_executor(lambda code=code: self.executor.execute(code, self.timeout))
            value = self.executor.namespace.get(result_name, _NOTHING) if call is not None else _NOTHING
            value_of = getattr(self.executor, "value_of", None)  # a kernel elsewhere: the value's text, from there
            if value_of is not None and value is not _NOTHING and not result.error:
                value = await self._call_executor(lambda: value_of(result_name, self.max_observation_chars))
            results.append((call, result, value))  # the value now: the next call may rebind the name
            if result.is_final_answer or result.interrupted:
                break
        merged = merge_results([r for _, r, _ in results])
        refused = self._check_data(step, merged, watched, copies)
        self._remember(step, merged, copies)
        self._find_secrets([n for kind in ("created", "rebound") for n in merged.changes.get(kind, [])])
        self._observe_calls(step, results, merged, valid)
        if refused:
            before = step.observation
            self._tell_refused(step, refused)
            valid[-1].observation += step.observation[len(before):]  # the model reads the calls' answers
        if merged.interrupted:
            raise KeyboardInterrupt

    @staticmethod
    def _read_calls(step: ActionStep, content: str, calls: list[ChatMessageToolCall]) -> str | None:
        """Put the reply's calls (native, else written in its text) in the step; say what was wrong if none."""
        native = bool(calls)
        problem = None
        if not native:
            calls, step.reasoning, problem = parse_text_tool_calls(content)
        else:
            step.reasoning = content.strip()
        step.tool_calls = [ToolCallRecord(id=c.id or f"call_{step.step_number}_{n}", name=c.name,
                                          arguments=c.arguments, native=native) for n, c in enumerate(calls, 1)]
        return problem

    async def _final_answer_after_max_steps(self) -> Any:
        """The model's best answer once the steps are used up, as text or as a final_answer call.

        The tools are offered again: some providers reject a conversation holding tool calls without them.
        """
        messages, _ = self._request([{"role": "user", "content": self.render_prompt("final_answer.post_messages")}])
        content, _, calls = await self._ask(messages, self.uses_native_tools())
        for call in calls or parse_text_tool_calls(content)[0]:
            if call.name == "final_answer":
                try:
                    arguments = json.loads(call.arguments or "{}")
                except ValueError:
                    continue
                if isinstance(arguments, dict) and "answer" in arguments:
                    return arguments["answer"]
        return content.strip()

    async def _ask(self, messages: list[dict[str, Any]], native: bool) -> tuple[str, Any, list[ChatMessageToolCall]]:
        if native:
            return await self._generate_reply(messages, tools=list(self.callable_tools().values()))
        return await self._generate_reply(messages, stop=["Observation:"])

    # -- calls ----------------------------------------------------------------

    def render_call(self, call: ToolCallRecord, result_name: str = RESULT) -> tuple[str | None, str | None]:
        """(the call as Python, None), or (None, why it cannot run): unknown tool, bad JSON, wrong arguments."""
        tools = self.callable_tools()
        available = ", ".join(tools)
        tool = tools.get(call.name)
        if tool is None:
            return None, f"Error: there is no tool named {call.name!r}. Call one of: {available}."
        try:
            arguments = json.loads(call.arguments or "{}", parse_constant=_no_constant)
        except ValueError as exc:
            return None, (f"Error: the arguments of {call.name} are not valid JSON ({exc}): "
                          f"{truncate(call.arguments, 300)}. Send them as one JSON object, e.g. "
                          f"{json.dumps({k: '...' for k in tool.inputs})}.")
        if not isinstance(arguments, dict):
            return None, (f"Error: the arguments of {call.name} must be a JSON object of named arguments, "
                          f"not {type(arguments).__name__}. Call it as {tool.signature()}.")
        bad = [k for k in arguments if not k.isidentifier() or keyword.iskeyword(k)]
        if bad:
            return None, f"Error: {call.name} has no argument {bad[0]!r}. Call it as {tool.signature()}."
        try:
            tool._bind((), arguments)  # the tool's own check: names, required, types (pydantic for @tool)
        except TypeError as exc:
            return None, f"Error: wrong arguments for {call.name}: {exc}"
        return call_code(call.name, arguments, result_name), None

    def _result_name(self) -> str:
        """``result``, unless the user has a variable of that name the agent did not make."""
        ns = self.executor.namespace
        for n in range(1, 100):
            name = RESULT if n == 1 else f"{RESULT}_{n}"
            if name not in ns or self.agent_made.get(name) == id(ns[name]):
                return name
        return "tool_result"

    def _observe_calls(self, step: ActionStep, results: list[CallResult], merged: ExecutionResult,
                       valid: list[ToolCallRecord]) -> None:
        secrets = redact.current()
        ns = self.executor.namespace
        step.changes = merged.changes
        step.changes_text = secrets.redact(namespace.format_diff(merged.changes, ns))
        outputs: list[dict[str, Any]] = []
        for call, result, value in results:
            parts = []
            shown = list(result.outputs)
            if call is None:
                parts.append("The user edited your calls before running them; this is the code that ran:\n" + step.code)
            if result.output:
                parts.append(result.output)
            if result.error:
                parts.append(f"Error: {secrets.redact(result.error)}")
            if result.timed_out:
                parts.append(f"The call was stopped after {self.timeout:g} s.")
            if result.is_final_answer:
                step.is_final_answer, step.action_output = True, result.final_answer
                parts.append(f"Final answer: {namespace.headline(result.final_answer)}")
            elif not result.error and call is not None and call.name != "final_answer" and value is not _NOTHING:
                value_repr = safe_repr(value)  # once: a DataFrame's repr is not free
                parts.append(value if isinstance(value, str) else value_repr)
                shown.append({"output_type": "display_data", "metadata": {},
                              "data": {"text/plain": truncate(value_repr, self.max_observation_chars)}})
            shown = secrets.redact_data(shown)
            outputs += shown
            text = secrets.redact(truncate("\n".join(parts) or "(the call returned nothing)",
                                           self.max_observation_chars))
            for target in (valid if call is None else [call]):
                target.observation, target.ran = text, True
                target.error = secrets.redact(result.error) if result.error else None
            if call is not None:
                call.outputs = shown
        for call in valid:
            if not call.ran:
                call.observation = "Not run: an earlier call in this reply ended the step."
        step.outputs = outputs
        problems = [c.error for c in step.tool_calls if c.error]
        step.error = "\n".join(problems) if problems else None
        self._join_observations(step)

    def _tell_all(self, step: ActionStep, text: str, calls: list[ToolCallRecord] | None = None) -> None:
        """The same observation for every call that did not run (invalid ones keep their own)."""
        for call in calls if calls is not None else step.tool_calls:
            call.observation = text
        self._join_observations(step)

    def _join_observations(self, step: ActionStep) -> None:
        """The step's observation: each call's, labelled when there are several (the text protocol sends it).

        Each call's observation is redacted already (and ``_generate_reply`` redacts all that leaves)."""
        calls = step.tool_calls
        if len(calls) == 1:
            step.observation = calls[0].observation
        else:
            step.observation = "\n\n".join(f"Call {n} ({c.name}):\n{c.observation}" for n, c in enumerate(calls, 1))


def call_code(name: str, arguments: dict[str, Any], result_name: str = RESULT) -> str:
    """A tool call as Python: ``result = add(a=1, b=2)``; ``final_answer(answer=...)`` binds nothing.

    Arguments are JSON values, whose ``repr`` is a Python literal of the same value.
    """
    call = f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
    return call if name == "final_answer" else f"{result_name} = {call}"


def merge_results(results: list[ExecutionResult]) -> ExecutionResult:
    """Several calls' results as one action's: outputs in order, a name's first change kept."""
    merged = ExecutionResult()
    for result in results:
        merged.outputs += result.outputs
        merged.output = "\n".join(filter(None, [merged.output, result.output]))
        merged.error = "\n".join(filter(None, [merged.error, result.error])) or None
        merged.timed_out |= result.timed_out
        merged.interrupted |= result.interrupted
        merged.duration += result.duration
        if result.is_final_answer:
            merged.is_final_answer, merged.final_answer = True, result.final_answer
        seen = {n for names in merged.changes.values() for n in names}
        for kind, names in result.changes.items():
            bucket = merged.changes.setdefault(kind, [])
            bucket += [n for n in names if n not in seen and n not in bucket]
        for name, value in result.previous.items():
            merged.previous.setdefault(name, value)
    for kind in ("created", "rebound", "deleted"):
        merged.changes.setdefault(kind, [])
    return merged


_ACTION = re.compile(r"Action\s*:?\s*\n?\s*(?:```(?:json)?\s*)?", re.I)


def parse_text_tool_calls(text: str) -> tuple[list[ChatMessageToolCall], str, str | None]:
    """Tool calls written in a reply's text: (calls, the text before them, what was wrong if none parse).

    Reads ``Action: {"name": ..., "arguments": {...}}`` (several allowed, or a JSON list), or
    failing that the first JSON object with a ``name`` anywhere in the reply.
    """
    decoder = json.JSONDecoder()
    markers = [m for m in re.finditer(r"Action\s*:", text, re.I)]
    calls: list[ChatMessageToolCall] = []
    problem = None
    reasoning = text[:markers[0].start()].strip() if markers else text.strip()
    starts = []
    for marker in markers:
        found = _ACTION.match(text, marker.start())
        starts.append(found.end() if found else marker.end())
    if not markers:
        starts = [m.start() for m in re.finditer(r"[{\[]", text)]
    for start in starts:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError as exc:
            if markers:
                problem = (f"Error: the JSON after 'Action:' is not valid ({exc.msg} at character {exc.pos - start}). "
                           'Write it as: Action: {"name": "tool_name", "arguments": {...}}')
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("name") or item.get("tool"), str):
                arguments = item.get("arguments", item.get("args", {}))
                calls.append(ChatMessageToolCall(
                    id=str(item.get("id") or ""), name=item.get("name") or item.get("tool"),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments)))
        if calls and not markers:
            reasoning = text[:start].strip()
            break
    if calls:
        problem = None
    return calls, reasoning, problem


def refuses_tools(exc: BaseException) -> bool:
    """A server's "no tools here" (HTTP 400 naming tools), as opposed to any other failure."""
    text = str(exc)
    return bool(_TOOLS_REFUSED.search(text) and _BAD_REQUEST.search(text))


def takes_tools(model: Any) -> bool:
    """The model's methods take ``tools_to_call_from`` (ours do; a hand-written Model may not)."""
    probe = {"tools_to_call_from": True}
    return all(accepts_options(getattr(model, method, None), probe) == probe
               for method in ("generate", "generate_stream"))


def _refused(model: Any) -> bool:
    try:
        return model in _REFUSES_TOOLS
    except TypeError:
        return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
