"""OpenTelemetry traces of runs: opt-in, and nothing but a few attribute reads when off.

On with ``instrument()`` (the magic's ``AgentMagics.otel``), or when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set.
Then each run is a tree of spans, named and tagged by the OpenTelemetry GenAI
conventions and OpenInference's (so Phoenix, Langfuse, Jaeger and any collector
read them): the run (``invoke_agent``), each step, each model call (``chat``),
each tool call (``execute_tool``, also a tool the agent's code calls, and a
managed agent's run under it) and each wait for a person's approval.

The SDK (the ``otel`` extra) is imported on the first traced run only. Spans are
parented explicitly, never through OpenTelemetry's context: a run's steps may be
driven from several threads and an async generator, where attaching a context
in one place and detaching it in another fails. A run's spans go out through a
``BatchSpanProcessor`` and are flushed, for a bounded time, when the run ends:
a dead collector costs a run at most ``FLUSH_SECONDS`` once, then much less.

Every text on a span is redacted (``safety.redact``) and truncated.
"""

from __future__ import annotations

import contextlib
import functools
import json
import reprlib
import time
from enum import StrEnum
from typing import Any, AsyncIterator, Callable

from ..safety import redact
from . import otel_sdk
from .events import Renderer
from .memory import ActionStep, MemoryStep, RunResult, RunState
from .otel_sdk import (  # noqa: F401 - the public face of tracing is this module
    ENDPOINT_VARIABLES, FLUSH_SECONDS, SLOW_FLUSH_SECONDS, enabled, instrument, reset, tracer, uninstrument, warn_once,
)
from .text import truncate

VALUE_CHARS = 4_000  # of a text on a span (input.value, output.value, a message)
MESSAGES_ON_SPAN = 20  # the last messages of a model call, as llm.input_messages.*


class Kind(StrEnum):
    """OpenInference span kinds (``openinference.span.kind``)."""

    AGENT = "AGENT"
    CHAIN = "CHAIN"
    LLM = "LLM"
    TOOL = "TOOL"


# Open spans of the runs in progress, innermost last: where a tool's call and a managed run nest.
_open: list["_Span"] = []


def start_run(agent: Any, task: str) -> "RunTrace | Renderer":
    """The trace of a run that starts now (a ``Renderer`` fed the run's hooks), or a no-op one."""
    if not enabled():
        return NO_TRACE
    found = tracer()
    if found is None:
        return NO_TRACE
    try:
        return RunTrace(found, agent, task)
    except Exception as exc:  # noqa: BLE001 - a trace must never break a run
        warn_once("failed", f"OpenTelemetry tracing failed ({type(exc).__name__}: {exc}); the run goes on")
        return NO_TRACE


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> "_Span | _NoSpan":
    """A span around a tool's call, inside a traced run's step (else a no-op); ``with`` it.

    A call the tool-calling loop already opened a span for (same tool) is not counted twice.
    """
    parent = _open[-1] if _open else None
    if parent is None or (parent.kind == Kind.TOOL and parent.tool == name and call_id is None):
        return NO_SPAN if parent is None else parent.inner()
    attributes = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "tool.name": name,
        "openinference.span.kind": str(Kind.TOOL), "input.value": _text(arguments), "input.mime_type": "text/plain",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    return _Span(parent.tracer, f"execute_tool {name}", parent, attributes, Kind.TOOL, tool=name)


def approval_wait(step: ActionStep) -> "_Span | _NoSpan":
    """A span around a wait for a person's decision on ``step``'s action; ``with`` it, then ``decided``."""
    parent = _open[-1] if _open else None
    if parent is None:
        return NO_SPAN
    attributes = {"openinference.span.kind": str(Kind.CHAIN), "smol_magic.step_number": step.step_number,
                  "smol_magic.verdict": str(step.verdict.decision), "input.value": _text(step.code or "")}
    return _Span(parent.tracer, "approval", parent, attributes, Kind.CHAIN)


# -- the SDK -----------------------------------------------------------------------

def _guarded(hook: Callable[..., None]) -> Callable[..., None]:
    """A trace's hook that never breaks the run: a failure is said once, and the run goes on."""
    @functools.wraps(hook)
    def safe(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a trace must never break a run
            warn_once("failed", f"an OpenTelemetry span could not be recorded ({type(exc).__name__}: {exc}); "
                       "the run goes on")

    return safe


# -- spans -------------------------------------------------------------------------


_REPR = reprlib.Repr()  # a tool's arguments: a list of a million items is not written out
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 20, 20, 20, 20
_REPR.maxstring = _REPR.maxother = VALUE_CHARS


def _text(value: Any, limit: int = VALUE_CHARS) -> str:
    """A value as span text: redacted, then cut to ``limit`` characters (head and tail)."""
    if not isinstance(value, str):
        try:
            value = _REPR.repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break the run
            value = f"<{type(value).__name__}>"
    # Cut, then redacted: each piece of a secret the cut split is redacted if it is as long as a window.
    return redact.redact_secrets(truncate(value, limit))


def _messages(messages: list[dict[str, Any]]) -> str:
    """A model call's messages as JSON, each message cut (the span's text is cut again as a whole)."""
    return json.dumps([{"role": m.get("role"), "content": truncate(str(m.get("content") or ""), VALUE_CHARS // 4)}
                       for m in messages], ensure_ascii=False)


def _usage_attributes(usage: Any, llm: bool = False) -> dict[str, Any]:
    """Token counts and the cost, when known; OpenInference's counts on model calls only (``llm``),
    so that Phoenix, which adds them up over a trace, counts each token once."""
    if usage is None:
        return {}
    prompt, completion = int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0)
    attributes: dict[str, Any] = {}
    if prompt or completion:
        attributes.update({"gen_ai.usage.input_tokens": prompt, "gen_ai.usage.output_tokens": completion})
    if llm and (prompt or completion):
        attributes.update({"llm.token_count.prompt": prompt, "llm.token_count.completion": completion,
                           "llm.token_count.total": prompt + completion})
    cost = getattr(usage, "cost", None)
    if cost is not None:
        attributes["smol_magic.cost_usd"] = float(cost)
    return attributes


class _NoSpan:
    """What a span call gives when nothing is traced: every method does nothing."""

    def __enter__(self) -> "_NoSpan":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def returned(self, value: Any) -> Any:
        return value

    def decided(self, decision: Any) -> None: ...


NO_SPAN = _NoSpan()


class _Span:
    """One open span, parented explicitly; a context manager that ends it (ERROR on an exception)."""

    def __init__(self, tracer: Any, name: str, parent: "_Span | None", attributes: dict[str, Any], kind: Kind,
                 client: bool = False, tool: str | None = None):
        from opentelemetry import trace

        self.tracer, self.kind, self.tool, self.parent = tracer, kind, tool, parent
        context = trace.set_span_in_context(parent.span) if parent is not None else None
        span_kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
        self.span = tracer.start_span(name, context=context, kind=span_kind, attributes=attributes)
        self.ended = self.pushed = self.errored = False

    def __enter__(self) -> "_Span":
        _open.append(self)
        self.pushed = True
        return self

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.failed(exc)
        self.end()

    def descends_from(self, ancestor: "_Span") -> bool:
        span: _Span | None = self
        while span is not None:
            if span is ancestor:
                return True
            span = span.parent
        return False

    def inner(self) -> "_Span | _NoSpan":
        """The same call seen again (the tool-calling loop's span, then the tool's ``__call__``)."""
        return _Reentered(self)

    def attributes(self, values: dict[str, Any]) -> None:
        if self.ended:
            return
        for key, value in values.items():
            if value is not None:
                self.span.set_attribute(key, value)

    def returned(self, value: Any) -> Any:
        """Record what a tool returned (redacted, cut) and hand it back."""
        self.attributes({"output.value": _text(value)})
        return value

    def decided(self, decision: Any) -> None:
        """Record a person's decision on an action."""
        action = str(getattr(decision, "action", decision))
        edited = getattr(decision, "code", None) is not None
        self.attributes({"smol_magic.approval": "edit" if action == "run" and edited else action,
                         "output.value": _text(getattr(decision, "reason", "") or action)})

    def failed(self, exc: BaseException) -> None:
        """End as an error, with what was raised (final_answer's way out of the code is not one)."""
        from opentelemetry.trace import Status, StatusCode

        if self.ended:
            return
        if type(exc).__name__ == "FinalAnswerSignal":
            self.attributes({"output.value": _text(getattr(exc, "value", None))})
            return
        self.errored = True
        text = _text(str(exc), 500) if str(exc) else type(exc).__name__
        if isinstance(exc, Exception):
            self.span.record_exception(exc, attributes={"exception.message": text}, escaped=True)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {text}"))

    def error(self, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        if self.ended:
            return
        self.errored = True
        self.span.set_status(Status(StatusCode.ERROR, _text(description, 500)))

    def end(self, end_ns: int | None = None) -> None:
        if self.pushed:
            with contextlib.suppress(ValueError):
                _open.remove(self)
            self.pushed = False
        if not self.ended:
            self.ended = True
            self.span.end(end_time=end_ns)


class _Reentered(_NoSpan):
    """The tool-calling loop's span, entered again by the tool's own ``__call__``: results and errors go to it."""

    def __init__(self, span: _Span):
        self.outer = span

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.outer.failed(exc)

    def returned(self, value: Any) -> Any:
        return self.outer.returned(value)


class RunTrace(Renderer):
    """One run's spans, fed by the loop's ``Renderer`` hooks and its model calls."""

    def __init__(self, tracer: Any, agent: Any, task: str):
        self.tracer = tracer
        self.model_id = str(getattr(agent.model, "model_id", None) or type(agent.model).__name__)
        name = agent.name or type(agent).__name__
        parent = _open[-1] if _open else None  # a managed run nests in its manager's call
        self.root = parent is None
        self.run = _Span(tracer, f"invoke_agent {name}", parent, {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name,
            "gen_ai.request.model": self.model_id, "openinference.span.kind": str(Kind.AGENT),
            "input.value": _text(task), "input.mime_type": "text/plain",
            "smol_magic.agent_type": type(agent).__name__,
        }, Kind.AGENT)
        self.run.__enter__()
        self.step: _Span | None = None
        self.models: list[_Span] = []  # open model calls, ended with the run at the latest
        # A model call that has replied: ended at the loop's next event, so that a cost worked out from its
        # usage after the reply still reaches its span (its end time is the reply's).
        self.replied: tuple[_Span, Any, int] | None = None

    # -- Renderer hooks --------------------------------------------------------

    @_guarded
    def step_started(self, step_number: int) -> None:
        self._settle_model()
        self._end_step()
        self.step = _Span(self.tracer, f"step {step_number}", self.run, {
            "openinference.span.kind": str(Kind.CHAIN), "smol_magic.step_number": step_number,
        }, Kind.CHAIN)
        self.step.__enter__()

    @_guarded
    def action_ready(self, step: ActionStep) -> None:
        self._settle_model(step.token_usage)
        if self.step is not None:
            self.step.attributes({"smol_magic.verdict": str(step.verdict.decision),
                                  "input.value": _text(step.code or "")})

    @_guarded
    def step_finished(self, step: MemoryStep) -> None:
        self._settle_model(getattr(step, "token_usage", None))
        if not isinstance(step, ActionStep) or self.step is None:
            return
        span, self.step = self.step, None
        span.attributes({
            "smol_magic.approval": str(step.approval) or "none", "smol_magic.verdict": str(step.verdict.decision),
            "output.value": _text(step.observation), **_usage_attributes(step.token_usage),
        })
        if step.tool_calls:
            span.attributes({"smol_magic.tool_calls": ", ".join(c.name for c in step.tool_calls)})
        if step.error:
            span.error(step.error)
        span.end()

    @_guarded
    def run_finished(self, result: RunResult) -> None:
        failed = result.state in (RunState.FAILED, RunState.INTERRUPTED)
        try:
            self._settle_model()
            for model in list(self.models):
                model.error("the run ended during this model call")
                model.end()
            # A step the run ended in (an error, an interrupt; or the budget, before its model call).
            self._end_step(f"the run ended during this step: {result.error or result.state}" if failed else None)
            for left in reversed([s for s in _open if s is not self.run and s.descends_from(self.run)]):
                left.error("the run ended during this call")  # a tool call an interrupt cut short
                left.end()
            self.run.attributes({
                "smol_magic.run_state": str(result.state), "smol_magic.steps": len(result.action_steps),
                "output.value": _text("" if result.output is None else result.output),
                **_usage_attributes(result.token_usage),
            })
            if failed:
                self.run.error(result.error or str(result.state))
        finally:
            self.run.end()  # whatever happened above: a run left open would take the next runs in
            if self.root:
                otel_sdk.flush()

    def _end_step(self, unfinished: str | None = None) -> None:
        if self.step is not None:
            span, self.step = self.step, None
            if unfinished:
                span.error(unfinished)
            span.end()

    # -- model calls -----------------------------------------------------------

    @_guarded
    def _settle_model(self, usage: Any = None) -> None:
        """End the model call that replied last, with its cost if it is known by now."""
        if self.replied is None:
            return
        span, replied_usage, end_ns = self.replied
        self.replied = None
        cost = getattr(usage, "cost", None)
        if cost is None:
            cost = getattr(replied_usage, "cost", None)
        if cost is not None:
            span.attributes({"smol_magic.cost_usd": float(cost)})
        span.end(end_ns)

    async def model_stream(self, stream: AsyncIterator[Any], messages: list[dict[str, Any]],
                           tools: list[Any] | None = None) -> AsyncIterator[Any]:
        """The model's stream, as it comes, inside a ``chat`` span that records the reply and the tokens."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": self.model_id, "llm.model_name": self.model_id,
            "openinference.span.kind": str(Kind.LLM), "input.mime_type": "application/json",
            "input.value": _text(_messages(messages)),
        }
        shown = messages[-MESSAGES_ON_SPAN:]
        for n, message in enumerate(shown):
            attributes[f"llm.input_messages.{n}.message.role"] = str(message.get("role") or "")
            attributes[f"llm.input_messages.{n}.message.content"] = _text(message.get("content") or "")
        if tools:
            attributes["llm.tools"] = _text(", ".join(getattr(t, "name", str(t)) for t in tools))
        self._settle_model()
        span = _Span(self.tracer, f"chat {self.model_id}", self.step or self.run, attributes, Kind.LLM, client=True)
        self.models.append(span)
        parts: list[str] = []
        calls: list[Any] = []
        usage = response_model = None
        try:
            async for delta in stream:
                response_model = getattr(delta, "model", None) or response_model  # if the model says so
                if getattr(delta, "content", None):
                    parts.append(delta.content)
                if getattr(delta, "tool_calls", None):
                    calls += delta.tool_calls
                if getattr(delta, "token_usage", None) is not None:
                    usage = delta.token_usage
                yield delta
        except BaseException as exc:
            span.failed(exc)
            raise
        finally:
            if not span.ended:  # else the run ended it already (a stream left unfinished)
                span.attributes({"gen_ai.response.model": response_model})
                self._model_ended(span, "".join(parts), calls, usage)

    def _model_ended(self, span: _Span, reply: str, calls: list[Any], usage: Any) -> None:
        names = [c.name for c in calls if getattr(c, "name", None)]
        span.attributes({
            "output.value": _text(reply), "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": _text(reply),
            "smol_magic.tool_calls": ", ".join(names) if names else None,
            **_usage_attributes(usage, llm=True),
        })
        with contextlib.suppress(ValueError):
            self.models.remove(span)
        if span.errored or getattr(usage, "cost", None) is not None:
            span.end()
        else:
            self.replied = (span, usage, time.time_ns())


class _NoTrace(Renderer):
    """The trace of a run that is not traced."""

    def model_stream(self, stream: AsyncIterator[Any], messages: Any, tools: Any = None) -> AsyncIterator[Any]:
        return stream


NO_TRACE = _NoTrace()


def observed(renderer: Renderer, trace: Renderer) -> Renderer:
    """``renderer``, with ``trace`` fed the same hooks when the run is traced."""
    if trace is NO_TRACE:
        return renderer
    from .events import Tee

    return Tee(renderer, trace)
