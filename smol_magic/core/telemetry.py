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
import os
import reprlib
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, AsyncIterator, Callable

from ..safety import redact
from .events import Renderer
from .memory import ActionStep, MemoryStep, RunResult, RunState
from .text import truncate

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL = 'pip install "smol-magic[otel]"'
DEFAULT_ENDPOINT = "http://localhost:4318"  # an OTLP/HTTP collector on this machine (Jaeger, Phoenix: 6006)
VALUE_CHARS = 4_000  # of a text on a span (input.value, output.value, a message)
MESSAGES_ON_SPAN = 20  # the last messages of a model call, as llm.input_messages.*
EXPORT_SECONDS = 5.0  # one export attempt, unless OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT says otherwise
FLUSH_SECONDS = 3.0  # the longest a run's end waits for its spans to leave
SLOW_FLUSH_SECONDS = 0.2  # ... once the collector has been found down or slow
HEALTHY_FLUSH_SECONDS = 1.0  # a flush that takes longer found the collector down or slow


class Kind(StrEnum):
    """OpenInference span kinds (``openinference.span.kind``)."""

    AGENT = "AGENT"
    CHAIN = "CHAIN"
    LLM = "LLM"
    TOOL = "TOOL"


@dataclass
class _Settings:
    on: bool | None = None  # None: on when an endpoint variable is set
    endpoint: str | None = None
    tracer_provider: Any = None


_settings = _Settings()
_lock = threading.Lock()
_setup: tuple[Any, Any, Any, bool] | None = None  # (settings key, tracer, provider, made by us) once set up
_warned: set[str] = set()
_flushing: threading.Thread | None = None  # the last flush, which may still wait on a dead collector
_slow = False  # the last flush took longer than HEALTHY_FLUSH_SECONDS
# Open spans of the runs in progress, innermost last: where a tool's call and a managed run nest.
_open: list["_Span"] = []


def instrument(endpoint: str | None = None, tracer_provider: Any = None) -> bool:
    """Trace every run from now on; False (and a warning) when the SDK is not installed.

    ``endpoint``: an OTLP/HTTP collector, e.g. ``http://localhost:6006`` (Phoenix) or
    ``http://localhost:4318`` (Jaeger, the OpenTelemetry Collector); default: the
    ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables, else localhost:4318. ``tracer_provider``:
    one of your own (its exporters are used); by default a provider you set globally with
    ``trace.set_tracer_provider`` is used as it is, and otherwise smol-magic makes its own.
    """
    with _lock:
        if (_settings.on, _settings.endpoint, _settings.tracer_provider) != (True, endpoint, tracer_provider):
            _settings.on, _settings.endpoint, _settings.tracer_provider = True, endpoint, tracer_provider
            _drop_setup()
    return _tracer() is not None


def uninstrument() -> None:
    """Stop tracing runs (also when an endpoint variable is set)."""
    with _lock:
        _drop_setup()
        _settings.on, _settings.endpoint, _settings.tracer_provider = False, None, None


def reset() -> None:
    """Back to the default: traced when an endpoint variable is set."""
    uninstrument()
    _settings.on = None


def enabled() -> bool:
    """Whether runs are traced: ``instrument()``, or an endpoint variable (unless ``OTEL_SDK_DISABLED``)."""
    if _settings.on is not None:
        return _settings.on
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def start_run(agent: Any, task: str) -> "RunTrace | Renderer":
    """The trace of a run that starts now (a ``Renderer`` fed the run's hooks), or a no-op one."""
    if not enabled():
        return NO_TRACE
    tracer = _tracer()
    if tracer is None:
        return NO_TRACE
    try:
        return RunTrace(tracer, agent, task)
    except Exception as exc:  # noqa: BLE001 - a trace must never break a run
        _warn_once("failed", f"OpenTelemetry tracing failed ({type(exc).__name__}: {exc}); the run goes on")
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


def _drop_setup() -> None:
    """Forget the tracer; a provider we made is flushed and shut down (in the background: it may wait
    on a dead collector), one the user gave is left to them."""
    global _setup, _flushing, _slow
    _flushing, _slow = None, False
    if _setup is not None and _setup[3]:
        provider = _setup[2]
        threading.Thread(target=provider.shutdown, name="smol-magic-otel-shutdown", daemon=True).start()
    _setup = None


def _tracer() -> Any:
    """The tracer, set up on first use; None (after one warning) when the SDK is missing."""
    global _setup
    key = (_settings.endpoint, id(_settings.tracer_provider), _endpoint_from_env())
    with _lock:
        if _setup is not None and _setup[0] == key:
            return _setup[1]
        _drop_setup()
        try:
            from opentelemetry import trace
        except ImportError:
            _warn_once("missing", "OpenTelemetry traces are on (AgentMagics.otel or OTEL_EXPORTER_OTLP_ENDPOINT) "
                       f"but the SDK is not installed: {INSTALL}. The run goes on without traces.")
            return None
        provider, ours = _provider(trace)
        if provider is None:
            return None
        tracer = provider.get_tracer("smol_magic", _version())
        _setup = (key, tracer, provider, ours)
        return tracer


def _provider(trace: Any) -> tuple[Any, bool]:
    """The user's tracer provider if they gave or set one, else ours exporting by OTLP/HTTP."""
    if _settings.tracer_provider is not None:
        return _settings.tracer_provider, False
    current = trace.get_tracer_provider()
    if not isinstance(current, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return current, False  # set up by the user: their exporters, their resource
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _warn_once("missing", "OpenTelemetry traces are on but the SDK or the OTLP exporter is not installed: "
                   f"{INSTALL}. The run goes on without traces.")
        return None, False
    timeout = None
    if not any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")):
        timeout = EXPORT_SECONDS
    endpoint = _traces_url(_settings.endpoint) if _settings.endpoint else None
    if endpoint is None and not any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        endpoint = _traces_url(DEFAULT_ENDPOINT)
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "smol-magic"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout)))
    return provider, True


def _endpoint_from_env() -> str:
    return "|".join(os.environ.get(name, "") for name in ENDPOINT_VARIABLES)


def _traces_url(endpoint: str) -> str:
    """A collector's base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``) made the traces URL; a full one stays."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("smol-magic")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _flush(provider: Any) -> None:
    """Send the spans now, so they are in the collector when the cell ends; bounded, never raising.

    The SDK's ``force_flush`` waits for the export, whatever its timeout says: it runs on a thread
    of its own, waited for at most ``FLUSH_SECONDS``. Once a flush has not finished in a second (the
    collector is down or slow; a failed export is retried for seconds), later runs wait only
    ``SLOW_FLUSH_SECONDS``, until one gets through quickly again.
    """
    global _flushing, _slow
    if getattr(provider, "force_flush", None) is None:
        return
    if _flushing is not None and _flushing.is_alive():
        _flushing.join(SLOW_FLUSH_SECONDS)  # still sending earlier spans: the batch processor sends these too
        return
    _flushing = threading.Thread(target=_force_flush, args=(provider,), name="smol-magic-otel-flush", daemon=True)
    started = time.monotonic()
    _flushing.start()
    _flushing.join(SLOW_FLUSH_SECONDS if _slow else FLUSH_SECONDS)
    # Not done, or done only after the exporter's retries: the collector is down or far away.
    _slow = _flushing.is_alive() or time.monotonic() - started > HEALTHY_FLUSH_SECONDS


def _force_flush(provider: Any) -> None:
    try:
        provider.force_flush(int(FLUSH_SECONDS * 1000))
    except Exception:  # noqa: BLE001 - a trace must never break a run
        pass


def _guarded(hook: Callable[..., None]) -> Callable[..., None]:
    """A trace's hook that never breaks the run: a failure is said once, and the run goes on."""
    @functools.wraps(hook)
    def safe(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a trace must never break a run
            _warn_once("failed", f"an OpenTelemetry span could not be recorded ({type(exc).__name__}: {exc}); "
                       "the run goes on")

    return safe


def _warn_once(key: str, message: str) -> None:
    """One line on stderr, once per process (as the magic's own warnings): the run goes on."""
    if key not in _warned:
        _warned.add(key)
        print(f"smol-magic: {message}", file=sys.stderr)


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
            if self.root and _setup is not None:
                _flush(_setup[2])

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
