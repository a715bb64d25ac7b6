"""Model clients: one async protocol, three implementations.

The agent loop only ever awaits ``generate`` / iterates ``generate_stream``,
so the kernel's event loop stays responsive (widget clicks, Interrupt) while
a model thinks. ``litellm`` and ``huggingface_hub`` are imported lazily:
``%load_ext smol_magic`` must stay fast and must not touch the network.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import inspect
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Protocol, runtime_checkable

from . import direct, direct_anthropic, litellm_import
from .text import clip

Messages = list[dict[str, Any]]  # OpenAI chat messages: role, content, and tool_calls / tool_call_id


class ModelError(RuntimeError):
    """A model could not give a reply (bad credentials, malformed response, retries exhausted)."""


@dataclass
class TokenUsage:
    """Tokens of one or more model calls, and their cost in US dollars (None: unknown, see ``core.costs``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        """Tokens add up; so do costs, an unknown cost counting as nothing (None + None stays None)."""
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return TokenUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                          sum(costs) if costs else None)


@dataclass
class ChatMessageToolCall:
    """One native tool call in a model's reply: the arguments as the JSON text the model wrote."""

    id: str
    name: str
    arguments: str = ""

    def to_message(self) -> dict[str, Any]:
        """The call as an assistant message's ``tool_calls`` entry (OpenAI format)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of a call has its id and name, later ones more arguments."""

    index: int | None = None
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class ModelResponse:
    content: str
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    tool_calls: list[ChatMessageToolCall] = field(default_factory=list)


@dataclass
class StreamDelta:
    """A piece of a streamed reply; the last delta may carry only token usage."""

    content: str = ""
    token_usage: TokenUsage | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)


def accumulate_tool_calls(calls: list[ChatMessageToolCall], deltas: list[ToolCallDelta]) -> None:
    """Add streamed tool-call pieces to ``calls``: by index, a new id opens a new call, arguments concatenate.

    Servers differ: OpenAI sends the id and name once and the arguments in pieces; some send every
    call whole with index 0 (told apart by their ids), some send no index at all.
    """
    for delta in deltas:
        index = delta.index if delta.index is not None else (len(calls) if delta.id else len(calls) - 1)
        if index < 0:
            index = 0
        if index < len(calls) and delta.id and calls[index].id and delta.id != calls[index].id:
            index = next((i for i, c in enumerate(calls) if c.id == delta.id), len(calls))
        while len(calls) <= index:
            calls.append(ChatMessageToolCall(id="", name=""))
        call = calls[index]
        if delta.id and not call.id:
            call.id = delta.id
        if delta.name and not call.name:
            call.name = delta.name
        call.arguments += delta.arguments or ""


@runtime_checkable
class Model(Protocol):
    """What an agent needs of a model. ``tools_to_call_from`` (a list of ``Tool``) asks for native
    tool calls; a model whose methods lack that parameter is driven by a JSON-in-text protocol."""

    model_id: str

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None) -> ModelResponse: ...

    def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None
    ) -> AsyncIterator[StreamDelta]: ...


def accepts_options(method: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` (e.g. ``response_format``) that ``method`` takes, by name or through ``**kwargs``.

    A Model a user wrote with ``generate(messages, stop_sequences)`` keeps working: it is just not asked.
    """
    if not options:
        return {}
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def tool_schemas(tools: list[Any] | None) -> list[dict[str, Any]] | None:
    """The OpenAI ``tools=`` parameter for a list of ``Tool`` (None when there are none)."""
    return [t.to_tool_schema() for t in tools] if tools else None


class BaseModel:
    """Shared behaviour: streaming falls back to one delta; retries with backoff.

    ``response_format`` (an OpenAI-style JSON schema, for structured outputs) is passed to the
    provider by the clients that can; others ignore it and the agent parses their text.
    """

    model_id: str = "model"
    max_retries: int = 3
    retry_base_delay: float = 1.0

    def __init__(self, model_id: str | None = None, max_retries: int = 3, retry_base_delay: float = 1.0,
                 timeout: float = 120.0, **kwargs: Any):
        if model_id is not None:  # a subclass may name itself with a class attribute
            self.model_id = model_id
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.timeout = timeout
        self.kwargs = kwargs  # passed on to the provider (temperature, max_tokens, ...)

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None,
                       response_format: dict[str, Any] | None = None) -> ModelResponse:
        raise NotImplementedError

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None,
        tools_to_call_from: list[Any] | None = None, response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        async for delta in whole_reply(self, messages, stop_sequences, tools_to_call_from=tools_to_call_from,
                                       response_format=response_format):
            yield delta

    async def _with_retries(self, call: Callable[[float], Any], is_transient: Callable[[BaseException], bool]) -> Any:
        """Retry transient failures (429, 5xx, timeouts) with backoff, all within ``self.timeout`` seconds.

        ``call(remaining)`` gets the seconds left, for the client's own timeout. A
        server's ``Retry-After`` is honoured when it fits in the time left. Whatever
        finally fails becomes a one-line ``ModelError`` naming the model: the user
        should read "HTTP 500: ...", not a litellm/httpx traceback.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in range(self.max_retries + 1):
            remaining = deadline - loop.time()
            try:
                return await asyncio.wait_for(call(remaining), max(remaining, 0.001))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) and deadline - loop.time() <= 0.01:
                    raise ModelError(self._timed_out(attempt + 1)) from exc
                transient = is_transient(exc) and not _is_malformed(exc)
                if attempt >= self.max_retries or not transient:
                    tail = f" (gave up after {attempt + 1} attempts)" if transient and attempt else ""
                    raise ModelError(f"{self.model_id}: {_describe(exc)}{tail}") from exc
                delay = self.retry_base_delay * (2**attempt) * (1 + random.random() / 4)
                asked = _retry_after(exc)
                if asked is not None:
                    delay = asked
                if delay >= deadline - loop.time():
                    why = f"the server asked to retry in {asked:g} s" if asked is not None else "no time left to retry"
                    raise ModelError(
                        f"{self.model_id}: {_describe(exc)}; {why}, past the model timeout ({self.timeout:g} s). "
                        "Try again later, or raise the timeout (--model-timeout)"
                    ) from exc
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _timed_out(self, attempts: int) -> str:
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        return (f"{self.model_id}: no reply within {self.timeout:g} s{tries}: the server may be down or overloaded. "
                "Check it, or raise the timeout (--model-timeout)")

    async def _bounded(self, stream: AsyncIterator[Any], deadline: float) -> AsyncIterator[Any]:
        """A stream that stalls past the model timeout ends with a clear error instead of waiting forever."""
        loop = asyncio.get_running_loop()
        iterator = stream.__aiter__()
        while True:
            try:
                item = await asyncio.wait_for(iterator.__anext__(), max(deadline - loop.time(), 0.001))
            except StopAsyncIteration:
                return
            except (asyncio.TimeoutError, TimeoutError):
                raise ModelError(self._timed_out(1) + " (the reply stopped mid-stream)") from None
            yield item

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"


def short_error(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and message."""
    return _clip(f"{type(exc).__name__}: {exc}".strip(), limit)


def _clip(text: str, limit: int = 300) -> str:
    return clip(" ".join(text.split()), limit)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes: litellm and huggingface_hub wrap the interesting error several times."""
    seen: list[BaseException] = []
    while exc is not None and all(exc is not e for e in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def _is_malformed(exc: BaseException) -> bool:
    """A reply that is not JSON is a wrong ``api_base`` or a broken proxy; retrying will not help."""
    return any(isinstance(e, json.JSONDecodeError) for e in _chain(exc))


_CONFIG_ERROR = re.compile(r"api[_ ]?key|credential|unauthori[sz]ed|authenticat|permission denied", re.I)


def _is_config_error(exc: BaseException) -> bool:
    """Authentication and configuration errors: retrying cannot fix them (some clients call them 500s)."""
    status = _status(exc)
    if status in (400, 401, 403, 404):
        return True
    return any(_CONFIG_ERROR.search(str(e)) for e in _chain(exc))


def _transient_in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """429, 5xx, timeouts and refused connections, wherever the client library wrapped them.

    huggingface_hub 2.x (httpx) and litellm wrap the socket error several times:
    the outermost exception alone does not say what happened.
    """
    if _is_config_error(exc):
        return False
    status = _status(exc)
    if status is not None:
        return status == 429 or status >= 500
    return any(isinstance(e, kinds) for e in _chain(exc))


def _status(exc: BaseException) -> int | None:
    for e in _chain(exc):
        status = getattr(e, "status_code", None)
        if not isinstance(status, int):
            status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), if it said."""
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None) or getattr(e, "headers", None)
        value = headers.get("retry-after") if hasattr(headers, "get") else None
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


def _server_message(exc: BaseException) -> str | None:
    """The ``error.message`` the server sent, found wherever the client library kept it."""
    for e in _chain(exc):
        body = getattr(e, "body", None)  # openai SDK: the parsed ``error`` object
        if not isinstance(body, dict):
            try:
                body = getattr(e, "response", None).json()  # huggingface_hub / httpx
            except Exception:
                body = None
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message") if isinstance(error, dict) else error
            if isinstance(message, str) and message.strip():
                return message
    return None


_CONTEXT_FULL = re.compile(r"context.{0,10}(?:length|window)|maximum context|too many tokens|prompt is too long", re.I)


def _is_context_full(exc: BaseException) -> bool:
    """The request is longer than the model's context window (litellm's ContextWindowExceededError, HTTP 400 ...)."""
    return any(type(e).__name__ == "ContextWindowExceededError" or _CONTEXT_FULL.search(str(e)) for e in _chain(exc))


def _describe(exc: BaseException) -> str:
    """One short line for the user: "HTTP 429: rate limited", "malformed response ...", or the error."""
    if _is_context_full(exc):
        status = _status(exc)
        said = _clip(_server_message(exc) or str(exc), 120)
        return (f"the conversation no longer fits the model's context window ({'HTTP %d: ' % status if status else ''}"
                f"{said}); start a new one with %%agent --reset")
    if _is_malformed(exc):
        decode_error = next(e for e in _chain(exc) if isinstance(e, json.JSONDecodeError))
        return f"malformed response from server (not JSON: {_clip(str(decode_error), 120)})"
    status = _status(exc)
    message = _server_message(exc)
    if status is not None and message:
        return _clip(f"HTTP {status}: {message}")
    # Refused, DNS failure, reset: the socket-level root cause says more than the wrappers.
    socket_errors = [
        e
        for e in _chain(exc)
        if isinstance(e, OSError) and not isinstance(e, TimeoutError) and type(e).__module__ in ("builtins", "socket")
    ]
    if socket_errors:
        return f"cannot connect ({short_error(socket_errors[-1])})"
    text = str(exc)
    if text.startswith("litellm.") and "Exception - " in text:
        # "litellm.Timeout: Timeout: OpenAIException - Request timed out." -> "Timeout: Request timed out."
        return _clip(f"{type(exc).__name__}: {text.split('Exception - ', 1)[1]}")
    return short_error(exc)


async def whole_reply(model: Any, messages: Messages, stop_sequences: list[str] | None = None,
                      **options: Any) -> AsyncIterator[StreamDelta]:
    """``model.generate``'s reply as a stream of one delta: for a model that does not stream, or an agent
    made with ``stream_outputs=False``."""
    # Passed on only when asked for, and only if taken: a subclass's ``generate`` may predate them.
    options = accepts_options(model.generate, {k: v for k, v in options.items() if v})
    response = await model.generate(messages, stop_sequences, **options)
    deltas = [ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(response.tool_calls)]
    yield StreamDelta(response.content, response.token_usage, deltas)


class ScriptedModel(BaseModel):
    """Replies with the given raw strings, in order. For tests, examples and the offline demo.

    Every request is kept in ``.requests`` (a list of message lists) so a test
    can assert exactly what the model was shown.
    """

    def __init__(self, responses: list[str | ModelResponse], model_id: str = "scripted"):
        self.responses = list(responses)
        for number, reply in enumerate(self.responses, 1):
            if not isinstance(reply, (str, ModelResponse)):
                raise TypeError(f"ScriptedModel's reply {number} is a {type(reply).__name__}: each reply is the text "
                                "the model writes (a ToolCallingAgent reads a JSON tool call in it, "
                                "'{\"name\": \"add\", \"arguments\": {\"a\": 2}}') or a ModelResponse")
        self.model_id = model_id
        self.requests: list[Messages] = []
        self.response_formats: list[dict[str, Any] | None] = []  # per request: the response_format asked for

    @property
    def remaining(self) -> int:
        return len(self.responses) - len(self.requests)

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None,
                       response_format: dict[str, Any] | None = None) -> ModelResponse:
        """The next reply: a string is text (a ToolCallingAgent reads a JSON tool call in it), a
        ``ModelResponse`` is returned as it is (native ``tool_calls``)."""
        index = len(self.requests)
        self.requests.append([dict(m) for m in messages])
        self.response_formats.append(response_format)
        if index >= len(self.responses):
            raise ModelError(
                f"ScriptedModel ran out of replies after {len(self.responses)}: "
                "add more responses or lower max_steps"
            )
        content = self.responses[index]
        if isinstance(content, ModelResponse):
            return content
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        return ModelResponse(content, TokenUsage(prompt_chars // 4, len(content) // 4))


_litellm = litellm_import.litellm


class LiteLLMModel(BaseModel):
    """Any provider litellm knows (``openai/gpt-4o-mini``, ``ollama/llama3.1``, ...).

    ``transport="auto"``, while litellm is not imported, sends a request that litellm would send
    unchanged directly, without importing litellm (seconds): an ``openai/`` model litellm does not
    know at an ``api_base`` that is not openai.com, or a hosted OpenAI chat model that litellm's cost
    map and parameter rules leave as it is (gpt-4o-mini, gpt-4.1; not o3 or gpt-5), or a DeepSeek chat
    model, or an Anthropic chat model's text request (Messages API, ``core/direct_anthropic.py``), or a
    Gemini chat model's before Gemini 3 (generateContent, ``core/direct_gemini.py``), or an ``ollama/`` or ``ollama_chat/``
    model's (``/api/generate``, ``/api/chat``: ``core/direct_ollama.py``): see ``core/direct.py``. ``"litellm"`` always goes
    through litellm; ``"direct"`` takes the direct route even when litellm is imported.
    """

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 1.0,
        timeout: float = 120.0,
        transport: str = "auto",
        **kwargs: Any,
    ):
        if transport not in direct.TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(direct.TRANSPORTS)}, not {transport!r}")
        super().__init__(model_id, max_retries, retry_base_delay, timeout, **kwargs)
        self.api_base = api_base
        self.api_key = api_key
        # auto: a request core/direct.py can send as litellm would (OpenAI-compatible, Anthropic, Gemini, Ollama)
        # goes without importing litellm, while litellm is not loaded; litellm: always through litellm.
        self.transport = transport
        self._credentials_checked = False

    def _params(self, messages: Messages, stop_sequences: list[str] | None, stream: bool,
                timeout: float, tools: list[Any] | None = None,
                response_format: dict[str, Any] | None = None) -> dict[str, Any]:
        # num_retries=0: retries are ours (_with_retries), so one 429 means one extra request, not nine.
        params = _chat_request(self.model_id, messages, stop_sequences, stream, tools, response_format,
                               timeout=timeout, num_retries=0, **self.kwargs)
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        if marks_cache(self.model_id):
            params["messages"] = cache_breakpoints(params["messages"])
        return params

    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        litellm = _litellm()
        transient = (
            litellm.RateLimitError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.Timeout,
            litellm.APIConnectionError,
        )
        return _transient_in_chain(exc, transient)

    def needs_litellm(self) -> bool:
        """Its first request goes through litellm (a hosted or known model): worth importing litellm early."""
        return direct.route(self.model_id, self.api_base, self.api_key, self.kwargs, self.transport, [], None) is None

    def _route(self, messages: Messages, tools: list[Any] | None,
               response_format: dict[str, Any] | None) -> direct.Route | None:
        """The direct route (OpenAI-compatible, Anthropic, Gemini, Ollama) for this request, or None for litellm."""
        found = direct.route(self.model_id, self.api_base, self.api_key, self.kwargs, self.transport, messages,
                             tool_schemas(tools), response_format)
        if found is not None and found.api_key is None:
            raise ModelError(  # what litellm's validate_environment says of such a model without a key
                f"{self.model_id}: no API key: set {found.key_variable} in the environment "
                f"(or pass api_key=... to {type(self).__name__})")
        return found

    def _direct_body(self, route: direct.Route, messages: Messages, stop_sequences: list[str] | None, stream: bool,
                     tools: list[Any] | None, response_format: dict[str, Any] | None) -> dict[str, Any]:
        """The body the direct route sends: litellm's for this request (with its cache marks, as ``_params``)."""
        params = _chat_request(self.model_id, messages, stop_sequences, stream, tools, response_format, **self.kwargs)
        if route.api is direct.Api.ANTHROPIC and direct_anthropic.marks_cache(direct_anthropic.served_name(self.model_id)):
            params["messages"] = cache_breakpoints(params["messages"])
        return direct.body(params, route.api)

    def _check_credentials(self) -> None:
        """A missing API key is configuration, not a passing fault: say which variable to set, at once.

        Checked once, before the first request, with litellm's own table of the
        variables each provider reads (``*_API_BASE`` entries are left out: those
        providers have a default address, e.g. Ollama on localhost).
        """
        if self._credentials_checked or self.api_key:
            return
        try:
            missing = _litellm().validate_environment(model=self.model_id, api_base=self.api_base)["missing_keys"]
        except Exception:  # an unknown provider: let the request say what is wrong
            missing = []
        missing = [name for name in missing if not name.endswith("_API_BASE")]
        if missing:
            raise ModelError(
                f"{self.model_id}: no API key: set {' or '.join(missing)} in the environment "
                f"(or pass api_key=... to {type(self).__name__})"
            )
        self._credentials_checked = True

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None,
                       response_format: dict[str, Any] | None = None) -> ModelResponse:
        route = self._route(messages, tools_to_call_from, response_format)
        if route is not None:
            async def post(remaining: float):
                payload = self._direct_body(route, messages, stop_sequences, False, tools_to_call_from, response_format)
                return await direct.post(route, payload, remaining)

            return _reply(self.model_id, await self._with_retries(post, _direct_transient))
        litellm = _litellm()
        self._check_credentials()

        async def call(remaining: float):
            return await litellm.acompletion(
                **self._params(messages, stop_sequences, False, remaining, tools_to_call_from, response_format))

        return _reply(self.model_id, await self._with_retries(call, self._is_transient))

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None,
        tools_to_call_from: list[Any] | None = None, response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        route = self._route(messages, tools_to_call_from, response_format)
        if route is not None:
            async def call(remaining: float):
                payload = self._direct_body(route, messages, stop_sequences, True, tools_to_call_from, response_format)
                return await direct.open_stream(route, payload, remaining)

            transient = _direct_transient
        else:
            litellm = _litellm()
            self._check_credentials()

            async def call(remaining: float):
                return await litellm.acompletion(
                    **self._params(messages, stop_sequences, True, remaining, tools_to_call_from, response_format))

            transient = self._is_transient
        deadline = asyncio.get_running_loop().time() + self.timeout
        stream = await self._with_retries(call, transient)
        text, counted = [], False
        try:
            async for delta in _deltas(self.model_id, self._bounded(stream, deadline)):
                text.append(delta.content + "".join(c.arguments for c in delta.tool_calls))
                counted = counted or delta.token_usage is not None
                yield delta
        finally:
            await _close(stream)  # release the HTTP connection on early exit / Interrupt
        if route is not None and not counted:
            # A server that sends no usage: litellm estimates it (its token_counter), so the direct route does too;
            # this imports litellm (in a thread), once, for such servers only.
            yield StreamDelta(token_usage=await asyncio.to_thread(_estimated_usage, self.model_id, messages,
                                                                  "".join(text)))


def _estimated_usage(model_id: str, messages: Messages, reply: str) -> TokenUsage:
    """What litellm's stream reports when the server sent no usage: its own token counts of the request and reply."""
    counter = _litellm().token_counter
    model = model_id.partition("/")[2] or model_id
    try:
        prompt = counter(model=model, messages=messages)
    except Exception:  # as litellm: a count that fails is 0
        prompt = 0
    return TokenUsage(prompt, counter(model=model, text=reply, count_response_tokens=True))


# Providers whose prompt cache is written where a request marks it (``cache_control``), as litellm passes it
# on. OpenAI and DeepSeek cache on their own: nothing is sent. Gemini's explicit caching creates a stored
# cache per prefix (its 2.5 models cache implicitly): not asked for. On Vertex, only Claude models.
CACHE_CONTROL_PROVIDERS = ("anthropic", "bedrock", "bedrock_converse", "vertex_ai")
EPHEMERAL = {"type": "ephemeral"}


@functools.lru_cache(maxsize=64)
def marks_cache(model_id: str) -> bool:
    """Whether requests to ``model_id`` mark their stable prefix for the provider's prompt cache."""
    litellm = _litellm()
    try:
        provider = litellm.get_llm_provider(model_id)[1]
        from litellm.utils import supports_prompt_caching

        supported = supports_prompt_caching(model_id)
    except Exception:  # a model litellm does not know: no marks
        return False
    if provider == "vertex_ai" and "claude" not in model_id:
        return False
    return bool(supported) and provider in CACHE_CONTROL_PROVIDERS


def cache_breakpoints(messages: Messages) -> Messages:
    """The messages with ``cache_control`` on the stable prefix: the system prompt, and the last message of the
    earlier steps (the end of this request's conversation, which the next request repeats) and the same point
    one turn before (what the previous request cached, so it is read back). Three marks: providers allow four.

    A marked message's content becomes a list of one text block carrying ``cache_control``, as litellm expects.
    """
    ends = [i for i, m in enumerate(messages) if m.get("role") in ("user", "tool")
            and (i + 1 == len(messages) or messages[i + 1].get("role") == "assistant")]
    system = [i for i, m in enumerate(messages) if m.get("role") == "system"][:1]
    marked = list(messages)
    for i in set(system + ends[-2:]):
        content = marked[i].get("content")
        if isinstance(content, str) and content:
            marked[i] = {**marked[i], "content": [{"type": "text", "text": content, "cache_control": EPHEMERAL}]}
        elif isinstance(content, list) and content and isinstance(content[-1], dict):
            marked[i] = {**marked[i], "content": content[:-1] + [{**content[-1], "cache_control": EPHEMERAL}]}
    return marked


class InferenceClientModel(BaseModel):
    """Hugging Face Inference (providers or a TGI / OpenAI-compatible ``base_url``)."""

    def __init__(
        self,
        model_id: str,
        provider: str | None = None,
        token: str | None = None,
        base_url: str | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 1.0,
        timeout: float = 120.0,
        **kwargs: Any,
    ):
        super().__init__(model_id, max_retries, retry_base_delay, timeout, **kwargs)
        self.provider = provider
        self.token = token
        self.base_url = base_url

    def _client(self):
        from huggingface_hub import AsyncInferenceClient

        if self.base_url:
            return AsyncInferenceClient(base_url=self.base_url, token=self.token, timeout=self.timeout)
        return AsyncInferenceClient(
            model=self.model_id, provider=self.provider, token=self.token, timeout=self.timeout
        )

    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        import httpx  # a huggingface_hub dependency; its transport errors are timeouts / refused connections
        from huggingface_hub.errors import InferenceTimeoutError

        return _transient_in_chain(
            exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, InferenceTimeoutError, httpx.TransportError)
        )

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None,
                       response_format: dict[str, Any] | None = None) -> ModelResponse:
        client = self._client()
        extra = {"response_format": response_format} if response_format else {}

        async def call(remaining: float):
            return await client.chat_completion(
                messages, model=self.model_id, stop=stop_sequences, tools=tool_schemas(tools_to_call_from),
                **extra, **self.kwargs
            )

        try:
            return _reply(self.model_id, await self._with_retries(call, self._is_transient))
        finally:
            await _close(client)

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None,
        tools_to_call_from: list[Any] | None = None, response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        client = self._client()
        extra = {"response_format": response_format} if response_format else {}

        async def call(remaining: float):
            return await client.chat_completion(
                messages,
                model=self.model_id,
                stop=stop_sequences,
                stream=True,
                stream_options={"include_usage": True},
                tools=tool_schemas(tools_to_call_from),
                **extra,
                **self.kwargs,
            )

        try:
            deadline = asyncio.get_running_loop().time() + self.timeout
            stream = await self._with_retries(call, self._is_transient)
            async for delta in _deltas(self.model_id, self._bounded(stream, deadline)):
                yield delta
        finally:
            await _close(client)


class OpenAIServerModel(BaseModel):
    """Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, Ollama, OpenAI itself), as the ``openai``
    client talks to it.

    ``api_key`` defaults to ``OPENAI_API_KEY``, or a placeholder: local servers
    take any key, but the client refuses to start without one.
    ``transport="auto"``, while the ``openai`` package is not imported, posts the client's request itself
    (core/direct.py ``server_route``): importing ``openai`` takes about a second of the first request.
    ``"openai"`` always uses the client; ``"direct"`` never does when it can be avoided.
    """

    TRANSPORTS = ("auto", "openai", "direct")

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 1.0,
        timeout: float = 120.0,
        transport: str = "auto",
        **kwargs: Any,
    ):
        if transport not in self.TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(self.TRANSPORTS)}, not {transport!r}")
        super().__init__(model_id, max_retries, retry_base_delay, timeout, **kwargs)
        self.api_base = api_base
        self.api_key = api_key
        self.transport = transport

    def _client(self):
        from openai import AsyncOpenAI

        # max_retries=0: retries are ours (_with_retries), so one 429 is one extra request, not three.
        return AsyncOpenAI(base_url=self.api_base, api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or "none",
                           max_retries=0, timeout=self.timeout)

    def _params(self, messages: Messages, stop_sequences: list[str] | None, stream: bool, timeout: float,
                tools: list[Any] | None = None, response_format: dict[str, Any] | None = None) -> dict[str, Any]:
        return _chat_request(self.model_id, messages, stop_sequences, stream, tools, response_format,
                             timeout=timeout, **self.kwargs)

    def _route(self) -> direct.Route | None:
        return direct.server_route(self.api_base, self.api_key, self.kwargs, self.transport)

    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        import openai

        transient = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                     openai.APIConnectionError, asyncio.TimeoutError, TimeoutError, ConnectionError)
        return _transient_in_chain(exc, transient)

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None,
                       tools_to_call_from: list[Any] | None = None,
                       response_format: dict[str, Any] | None = None) -> ModelResponse:
        route = self._route()
        if route is not None:
            async def post(remaining: float):
                params = _chat_request(self.model_id, messages, stop_sequences, False, tools_to_call_from,
                                       response_format, **self.kwargs)
                return await direct.post(route, params, remaining)

            return _reply(self.model_id, await self._with_retries(post, _direct_transient))
        client = self._client()

        async def call(remaining: float):
            return await client.chat.completions.create(
                **self._params(messages, stop_sequences, False, remaining, tools_to_call_from, response_format))

        try:
            return _reply(self.model_id, await self._with_retries(call, self._is_transient))
        finally:
            await _close(client)

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None,
        tools_to_call_from: list[Any] | None = None, response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[StreamDelta]:
        route = self._route()
        client = None
        if route is not None:
            async def call(remaining: float):
                params = _chat_request(self.model_id, messages, stop_sequences, True, tools_to_call_from,
                                       response_format, **self.kwargs)
                return await direct.open_stream(route, params, remaining)

            transient = _direct_transient
        else:
            client = self._client()

            async def call(remaining: float):
                return await client.chat.completions.create(
                    **self._params(messages, stop_sequences, True, remaining, tools_to_call_from, response_format))

            transient = self._is_transient
        try:
            deadline = asyncio.get_running_loop().time() + self.timeout
            stream = await self._with_retries(call, transient)
            try:
                async for delta in _deltas(self.model_id, self._bounded(stream, deadline)):
                    yield delta
            finally:
                await _close(stream)  # release the HTTP connection on early exit / Interrupt
        finally:
            if client is not None:
                await _close(client)


def _chat_request(model_id: str, messages: Messages, stop_sequences: list[str] | None, stream: bool,
                  tools: list[Any] | None, response_format: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """An OpenAI chat-completions request, as litellm and the ``openai`` client both take it.

    ``tools`` are sent whatever litellm.supports_function_calling says: it does not know models behind
    an OpenAI-compatible api_base, which take tools. A server that refuses them answers 400, and the
    agent falls back to tool calls written in text.
    """
    params: dict[str, Any] = dict(model=model_id, messages=[dict(m) for m in messages], **extra)
    if stop_sequences:
        params["stop"] = stop_sequences
    if response_format:
        params["response_format"] = response_format
    if tools:
        params["tools"] = tool_schemas(tools)
    if stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    return params


def _direct_transient(exc: BaseException) -> bool:
    """The direct route's transient failures: 429, 5xx, timeouts, refused or dropped connections (httpx)."""
    import httpx

    return _transient_in_chain(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, httpx.TransportError))


def _reply(model_id: str, response: Any) -> ModelResponse:
    """An OpenAI-style chat completion (litellm, huggingface_hub, openai) -> ModelResponse."""
    try:
        message = response.choices[0].message
        content, calls = message.content or "", _tool_calls(getattr(message, "tool_calls", None))
    except (AttributeError, IndexError, TypeError, KeyError) as exc:
        raise ModelError(f"{model_id}: malformed response ({short_error(exc)})") from exc
    return ModelResponse(content, _usage(getattr(response, "usage", None)), calls)


async def _deltas(model_id: str, stream: AsyncIterator[Any]) -> AsyncIterator[StreamDelta]:
    """OpenAI-style chunks -> StreamDelta; a stream with neither text nor usage is an error, not "".

    A 200 whose body is not SSE (an HTML page, a proxy error) parses as zero
    chunks in both litellm and huggingface_hub; without this check the agent
    would silently see an empty reply.
    """
    received = False
    try:
        async for chunk in stream:
            choices = getattr(chunk, "choices", None) or []
            delta = choices[0].delta if choices else None
            text = (getattr(delta, "content", None) or "") if delta is not None else ""
            calls = _tool_call_deltas(getattr(delta, "tool_calls", None)) if delta is not None else []
            usage = getattr(chunk, "usage", None)
            if text or usage or calls:
                received = True
                yield StreamDelta(text, _usage(usage) if usage else None, calls)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{model_id}: stream failed: {_describe(exc)}") from exc
    if not received:
        raise ModelError(f"{model_id}: malformed response from server (the stream carried no text and no usage)")


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _arguments(value: Any) -> str:
    """Arguments as JSON text: OpenAI sends a string, TGI and some servers an object."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _tool_calls(calls: Any) -> list[ChatMessageToolCall]:
    """The ``tool_calls`` of a reply message (litellm or huggingface_hub objects, or dicts)."""
    found = []
    for number, call in enumerate(calls or []):
        function = _field(call, "function")
        found.append(ChatMessageToolCall(
            id=_field(call, "id") or f"call_{number}", name=_field(function, "name") or "",
            arguments=_arguments(_field(function, "arguments"))))
    return found


def _tool_call_deltas(calls: Any) -> list[ToolCallDelta]:
    deltas = []
    for call in calls or []:
        function = _field(call, "function")
        index = _field(call, "index")
        deltas.append(ToolCallDelta(index if isinstance(index, int) else None, _field(call, "id") or None,
                                    _field(function, "name") or None, _arguments(_field(function, "arguments"))))
    return deltas


async def _close(client: Any) -> None:
    """Close a client or a stream (litellm's streams have ``aclose``, the others ``close``); errors ignored."""
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass


def _usage(usage: Any) -> TokenUsage:
    if usage is None:
        return TokenUsage()
    get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
    return TokenUsage(int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0))


def describe_model(model: Any) -> dict[str, Any]:
    """The model's identity and parameters for provenance, without credentials."""
    info: dict[str, Any] = {"class": type(model).__name__, "model_id": getattr(model, "model_id", None)}
    for name in ("api_base", "base_url", "provider"):
        if getattr(model, name, None):
            info[name] = getattr(model, name)
    params = {k: v for k, v in (getattr(model, "kwargs", None) or {}).items()
              if not any(secret in k.lower() for secret in ("key", "token", "secret", "password"))}
    if params:
        info["parameters"] = json.loads(json.dumps(params, default=repr))
    return info
