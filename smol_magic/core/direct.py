"""A ``LiteLLMModel``'s direct route to an OpenAI-compatible server, Anthropic, Gemini or Ollama: one httpx POST, litellm not imported.

``import litellm`` takes seconds (4-6 s on these machines), and the first ``%%agent`` of a kernel
waited for it before its first request. Six kinds of request are sent exactly as litellm would
send them (the model's name without its ``openai/`` or ``deepseek/`` prefix, the messages, the
parameters), by this module itself (httpx is already a dependency), and the reply is read the same way:

- a model litellm does not know, at an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, a
  proxy: an ``api_base`` that is not openai.com);
- a hosted OpenAI chat model whose request litellm passes through unchanged, wherever it is
  sent: decided from litellm's own cost map (``litellm_provider`` "openai", ``mode`` "chat", not
  ``supports_reasoning``) and from the rules of litellm's OpenAI route (``litellm/llms/openai/``):
  o-series and gpt-5/gpt-6 names get their own parameter rules (no ``stop``,
  ``max_completion_tokens``, temperature 1 only), ``gpt-4`` and ``gpt-3.5-turbo-16k`` refuse
  ``response_format``, and tool schemas with a top-level combinator are rewritten for openai.com.
  A bare id of such a model (``gpt-4o-mini``) is taken too: litellm sends it to OpenAI unchanged;
- a DeepSeek chat model in the cost map (``deepseek/deepseek-chat``): litellm's DeepSeek route is
  OpenAI's body at ``https://api.deepseek.com/beta`` (or ``DEEPSEEK_API_BASE``) with
  ``DEEPSEEK_API_KEY`` (see ``deepseek_chat_model``). The other OpenAI-compatible providers litellm
  has are left to it: it changes their requests (mistral drops ``stream_options``, xai refuses
  ``stop`` for grok-4, fireworks_ai and together_ai check tools and response formats per model,
  groq and openrouter have routes of their own);
- an Anthropic chat model in the cost map (``anthropic/claude-sonnet-4-5``, or a bare ``claude-...`` id):
  litellm translates the request to Anthropic's Messages API, and so does ``direct_anthropic`` (its own
  module: the body, headers, reply and stream events), for text messages, stop sequences and the plain
  sampling parameters only; tools, images, thinking and the rest stay on litellm (see that module's doc);
- a Gemini chat model of Google AI Studio in the cost map, before Gemini 3 (``gemini/gemini-2.5-flash``):
  litellm builds a generateContent request, and so does ``direct_gemini``, for the same kind of requests;
- an Ollama model (``ollama/llama3.1``, the README's local model, or ``ollama_chat/llama3.1``): litellm
  builds an ``/api/generate`` request (its ``ollama_pt`` prompt) or an ``/api/chat`` one, and so does
  ``direct_ollama``, for text messages and the plain sampling parameters, with no key configured.

``tests/test_direct.py`` (and ``test_direct_anthropic.py``, ``test_direct_gemini.py``, ``test_direct_ollama.py``) check
against the local test server, for
every model the cost map puts on the direct route, that both routes send the same body and read the same
reply (for OpenAI's, litellm given openai.com's rules and a proxy's).

Anything litellm would change or that a user configured in litellm goes through litellm as before:
litellm already imported (its callbacks, ``litellm.api_base`` and other globals apply), reasoning
models, an unknown model at openai.com, parameters beyond the plain sampling ones, content that is
not text, tool schemas with regex ``pattern`` (litellm filters them) or a top-level combinator,
``OPENAI_ORGANIZATION`` / ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` (headers litellm and the openai
client add), ``LITELLM_MODIFY_PARAMS`` and the other settings in ``LITELLM_SETTINGS``.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import os
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, AsyncIterator
from urllib.parse import urlparse

from . import direct_anthropic, direct_gemini, direct_ollama
from .cost_map import model_cost_map

PREFIX = "openai/"
# Parameters litellm's OpenAI route passes through unchanged for a model it does not know.
PASSED_AS_IS = frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n",
                          "presence_penalty", "frequency_penalty", "logit_bias"})
ROLES = frozenset({"system", "user", "assistant", "tool"})
OPENAI_API = "https://api.openai.com/v1"  # litellm's address for openai models when none is given
# Set in the environment, these make litellm send something else: the Responses API, modified or dropped params.
LITELLM_SETTINGS = ("LITELLM_ROUTE_ALL_CHAT_OPENAI_TO_RESPONSES", "LITELLM_MODIFY_PARAMS", "LITELLM_DROP_PARAMS")
# Headers litellm or the openai client it uses add to OpenAI requests.
OPENAI_HEADER_VARIABLES = ("OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_PROJECT")
DEEPSEEK_PREFIX = "deepseek/"
DEEPSEEK_API = "https://api.deepseek.com/beta"  # litellm's, when neither api_base nor DEEPSEEK_API_BASE is given
# litellm's OpenAIGPTConfig.get_supported_openai_params: the two models without response_format.
NO_RESPONSE_FORMAT = frozenset({"gpt-4", "gpt-3.5-turbo-16k"})
# Top-level keys of tool parameters litellm rewrites for openai.com (flatten_top_level_schema_combinators).
COMBINATORS = frozenset({"oneOf", "anyOf", "allOf", "enum", "const", "not"})
TRANSPORTS = ("auto", "litellm", "direct")


class Api(enum.Enum):
    """The provider's own API a direct request speaks (its body, headers, reply and stream)."""

    OPENAI = "openai"  # chat completions: OpenAI, DeepSeek, any OpenAI-compatible server
    ANTHROPIC = "anthropic"  # the Messages API (core/direct_anthropic.py)
    GEMINI = "gemini"  # generateContent (core/direct_gemini.py)
    OLLAMA = "ollama"  # Ollama's /api/generate, NDJSON streams (core/direct_ollama.py)
    OLLAMA_CHAT = "ollama_chat"  # Ollama's /api/chat (core/direct_ollama.py's CHAT)


@dataclass(frozen=True)
class Route:
    """Where a direct request goes, and with which key (None: no key given; ``key_variable`` says which to set)."""

    url: str
    api_key: str | None
    key_variable: str = "OPENAI_API_KEY"
    api: Api = Api.OPENAI
    stream_url: str | None = None  # where a streamed request goes, if not to ``url`` (Gemini's)


def api_base(given: str | None) -> str | None:
    """The server's address as litellm resolves it for ``openai/`` ids (its own globals aside)."""
    return given or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None


def route(model_id: str, given_base: str | None, api_key: str | None, kwargs: dict[str, Any], transport: str,
          messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
          response_format: dict[str, Any] | None = None) -> Route | None:
    """The direct route for this request, or None when it must go through litellm (see the module's doc)."""
    if transport == "litellm" or (transport == "auto" and "litellm" in sys.modules):
        return None
    if any(os.environ.get(name) for name in LITELLM_SETTINGS):
        return None
    name = direct_anthropic.served_name(model_id)
    if name is not None:
        return _anthropic_route(name, given_base, api_key, kwargs, messages, tools or response_format)
    if model_id.startswith(direct_gemini.PREFIX):
        found = direct_gemini.route(model_id, given_base, api_key, kwargs, messages, tools, response_format)
        return None if found is None else Route(found.url, found.api_key, found.key_variable, Api.GEMINI,
                                                found.stream_url)
    if model_id.startswith((direct_ollama.PREFIX, direct_ollama.CHAT_PREFIX)):
        url = direct_ollama.route(model_id, given_base, api_key, kwargs, messages, tools, response_format)
        api = Api.OLLAMA if model_id.startswith(direct_ollama.PREFIX) else Api.OLLAMA_CHAT
        return None if url is None else Route(url, "", direct_ollama.KEY_VARIABLE, api)  # no key needed
    target = _target(model_id, given_base, response_format)
    if target is None or set(kwargs) - PASSED_AS_IS:
        return None
    for message in messages:
        if message.get("role") not in ROLES or not isinstance(message.get("content"), (str, type(None))):
            return None
    if tools and ('"pattern"' in json.dumps(tools) or any(_top_level_combinator(tool) for tool in tools)):
        return None
    url, key_variable = target
    return Route(url, api_key or os.environ.get(key_variable) or None, key_variable)


def _anthropic_route(name: str, given_base: str | None, api_key: str | None, kwargs: dict[str, Any],
                     messages: list[dict[str, Any]], tools_or_format: Any) -> Route | None:
    """An Anthropic chat model's route, for text messages and the plain sampling parameters only."""
    if tools_or_format or not direct_anthropic.takes(name, kwargs, messages):
        return None
    url = direct_anthropic.url(given_base)
    taken, key = direct_anthropic.api_key(api_key)
    return Route(url, key, direct_anthropic.KEY_VARIABLE, Api.ANTHROPIC) if url and taken else None


def _target(model_id: str, given_base: str | None, response_format: dict[str, Any] | None) -> tuple[str, str] | None:
    """The chat-completions URL and the key's variable, as litellm resolves them, for a model it sends unchanged."""
    if model_id.startswith(DEEPSEEK_PREFIX):
        if not deepseek_chat_model(model_id[len(DEEPSEEK_PREFIX):]):
            return None
        # litellm's get_llm_provider and DeepSeekChatConfig.get_complete_url (ensure_api_route)
        base = (given_base or os.environ.get("DEEPSEEK_API_BASE") or DEEPSEEK_API).rstrip("/")
        return (base if urlparse(base).path.endswith("/chat/completions") else base + "/chat/completions",
                "DEEPSEEK_API_KEY")
    if any(os.environ.get(name) for name in OPENAI_HEADER_VARIABLES):
        return None
    name = served_name(model_id)
    base = api_base(given_base)
    if name is not None and plain_openai_chat_model(name):
        if response_format and name in NO_RESPONSE_FORMAT:
            return None
        base = base or OPENAI_API
    elif (not model_id.startswith(PREFIX) or _gpt_reasoning(model_id[len(PREFIX):]) or _known_model(model_id)
          or _is_openai_com(base)):
        return None
    return base.rstrip("/") + "/chat/completions", "OPENAI_API_KEY"


def served_name(model_id: str) -> str | None:
    """The model's name as the server gets it: without ``openai/`` (or ``deepseek/``); a bare id only if
    litellm's cost map lists it as an OpenAI model (litellm then sends it to OpenAI), else None."""
    for prefix in (PREFIX, DEEPSEEK_PREFIX):
        if model_id.startswith(prefix):
            return model_id[len(prefix):]
    entry = model_cost_map().get(model_id)
    return model_id if isinstance(entry, dict) and entry.get("litellm_provider") == "openai" else None


def deepseek_chat_model(name: str) -> bool:
    """A DeepSeek chat model in litellm's cost map (``deepseek-chat`` or ``deepseek/deepseek-chat``).

    litellm's DeepSeekChatConfig changes a request only for content lists (images, joined text), tools
    not of type function, and the ``thinking`` / ``reasoning_effort`` parameters: none pass the checks
    of ``route``; its default address is ``https://api.deepseek.com/beta``, its key ``DEEPSEEK_API_KEY``.
    """
    table = model_cost_map()
    entry = table.get(DEEPSEEK_PREFIX + name) or table.get(name)
    return isinstance(entry, dict) and entry.get("litellm_provider") == "deepseek" and entry.get("mode") == "chat"


def plain_openai_chat_model(name: str) -> bool:
    """An OpenAI chat model whose request litellm's OpenAI route sends unchanged (see the module's doc)."""
    entry = model_cost_map().get(name)
    return (isinstance(entry, dict) and entry.get("litellm_provider") == "openai" and entry.get("mode") == "chat"
            and not entry.get("supports_reasoning") and not name.startswith("ft:") and not _o_series(name)
            and not _gpt_reasoning(name))


def _o_series(name: str) -> bool:
    """litellm's ``is_model_o_series_model`` (for models in its cost map): o1, o3-mini, o4-mini..."""
    short = name.rsplit("/", 1)[-1]
    return len(short) > 1 and short[0] == "o" and short[1].isdigit()


def _gpt_reasoning(name: str) -> bool:
    """litellm's ``is_gpt_reasoning_series_name``, which applies to any name, known or not:
    gpt-5-mini, gpt-6-..., but not gpt-5-chat."""
    return any(marker in name for marker in ("gpt-5", "gpt-6")) and "gpt-5-chat" not in name.rsplit("/", 1)[-1]


def _is_openai_com(base: str | None) -> bool:
    """Where litellm applies openai.com's rules: no ``api_base`` at all, or an openai.com host."""
    host = urlparse(base).hostname if base else None
    return not host or host == "openai.com" or host.endswith(".openai.com")


def _known_model(model_id: str) -> bool:
    """litellm's cost map knows this model (read from its bundled file, litellm not imported)."""
    table = model_cost_map()
    return model_id in table or model_id[len(PREFIX):] in table


def _top_level_combinator(tool: dict[str, Any]) -> bool:
    """A tool whose parameters litellm rewrites for openai.com (``flatten_top_level_schema_combinators``)."""
    parameters = (tool.get("function") or {}).get("parameters") if isinstance(tool, dict) else None
    return isinstance(parameters, dict) and bool(COMBINATORS & set(parameters))


def body(params: dict[str, Any], api: Api = Api.OPENAI) -> dict[str, Any]:
    """The JSON body litellm sends for these ``_chat_request`` params, in the provider's own API."""
    if api is not Api.OPENAI:
        return _DIALECTS[api].body(params)
    sent = dict(params)
    sent["model"] = served_name(sent["model"])
    return sent


class HTTPStatusError(Exception):
    """A reply with an error status; ``response`` (read) carries the status, headers and the server's message.

    Named and worded per status as the openai client names its errors (``RateLimitError: Error code: 429``),
    which is what litellm's errors say when the server gave no message.
    """

    def __init__(self, response: Any):
        self.response = response
        self.status_code = response.status_code
        message = _error_message(response)
        super().__init__(f"Error code: {response.status_code}" + (f" - {message}" if message else ""))


def _error_message(response: Any) -> str:
    """The ``error.message`` of an error reply (what says "maximum context length", for one), or ""."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) else ""


STATUS_ERRORS = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                 404: "NotFoundError", 409: "ConflictError", 422: "UnprocessableEntityError", 429: "RateLimitError"}
_ERROR_TYPES: dict[str, type[HTTPStatusError]] = {}


def status_error(response: Any) -> HTTPStatusError:
    """The error for a reply with an error status, of a type named as the openai client names it."""
    status = response.status_code
    name = STATUS_ERRORS.get(status) or ("InternalServerError" if status >= 500 else "APIStatusError")
    kind = _ERROR_TYPES.setdefault(name, type(name, (HTTPStatusError,), {"__module__": __name__}))
    return kind(response)


def _objects(text: str) -> Any:
    """JSON as attribute objects, as the openai client's replies are read (``reply.choices[0].message``)."""
    return json.loads(text, object_hook=lambda d: SimpleNamespace(**d))


def _client(url: str, timeout: float) -> Any:
    """An httpx client for one request. Plain http never uses TLS, so it loads no certificates (a quarter
    of a second, the first time, on a busy machine); https verifies with one shared default context."""
    import httpx

    return httpx.AsyncClient(timeout=timeout, verify=_tls() if url.startswith("https:") else False)


@functools.lru_cache(maxsize=1)
def _tls() -> Any:
    import httpx

    return httpx.create_ssl_context()


async def post(route: Route, payload: dict[str, Any], timeout: float) -> Any:
    """One chat completion: the reply as attribute objects; an error status raises ``HTTPStatusError``."""
    async with _client(route.url, timeout) as client:
        response = await client.post(route.url, json=payload, headers=_headers(route))
        if response.status_code >= 400:
            raise status_error(response)
        if route.api is Api.OPENAI:
            return _objects(response.text)
        # In a thread, with the request: a reply without its token counts (Ollama's) is counted with litellm's
        # tokenizer, and litellm is imported then (seconds), never in the kernel's event loop.
        return await asyncio.to_thread(_DIALECTS[route.api].reply, response.json(), payload)


async def open_stream(route: Route, payload: dict[str, Any], timeout: float) -> "Stream":
    """A streamed chat completion, open once the server has answered with a success status."""
    url = route.stream_url or route.url
    client = _client(url, timeout)
    try:
        request = client.build_request("POST", url, json=payload, headers=_headers(route))
        response = await client.send(request, stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise status_error(response)
    except BaseException:
        await client.aclose()
        raise
    return Stream(client, response, None if route.api is Api.OPENAI else _DIALECTS[route.api].chunks)


def _headers(route: Route) -> dict[str, str]:
    if route.api is not Api.OPENAI:
        return _DIALECTS[route.api].headers(route.api_key)
    return {"Authorization": f"Bearer {route.api_key}"} if route.api_key else {}


# The providers with an API of their own: each module builds the body and headers, reads the reply (given the
# request's body), and turns the stream's lines into OpenAI-shaped chunks (what models.py reads from every route).
_DIALECTS: dict[Api, Any] = {Api.ANTHROPIC: direct_anthropic, Api.GEMINI: direct_gemini, Api.OLLAMA: direct_ollama,
                              Api.OLLAMA_CHAT: direct_ollama.CHAT}


class Stream:
    """Server-sent events -> chunk objects; ``aclose`` releases the connection (early exit, Interrupt).

    ``translate``: for a provider with a stream of its own, its lines -> OpenAI-shaped chunks (``_DIALECTS``)."""

    def __init__(self, client: Any, response: Any, translate: Any = None):
        self.client, self.response, self.translate = client, response, translate
        self._chunks: AsyncIterator[Any] | None = None

    def __aiter__(self) -> "Stream":
        return self

    async def __anext__(self) -> Any:
        if self._chunks is None:
            lines = self.response.aiter_lines()
            self._chunks = self.translate(lines) if self.translate is not None else self._read(lines)
        return await self._chunks.__anext__()

    async def _read(self, lines: AsyncIterator[str]) -> AsyncIterator[Any]:
        async for line in lines:
            if not line.startswith("data:"):
                continue  # comments, event names, blank separators; a body that is not SSE yields nothing
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                return
            chunk = _objects(data)
            error = getattr(chunk, "error", None)
            if error is not None:
                raise RuntimeError(f"the server sent an error mid-stream: {getattr(error, 'message', error)}")
            yield chunk

    async def aclose(self) -> None:
        try:
            if self._chunks is not None:
                await self._chunks.aclose()
            await self.response.aclose()
        finally:
            await self.client.aclose()


def server_route(api_base: str | None, api_key: str | None, kwargs: dict[str, Any], transport: str) -> Route | None:
    """``OpenAIServerModel``'s direct route: the request the ``openai`` client would send, without importing it
    (about a second), or None to use the client.

    The client posts its parameters as they are given to ``{base_url}/chat/completions`` with
    ``Authorization: Bearer <key>``; it is kept for what it adds itself: parameters beyond the plain
    sampling ones (``extra_body``, ``extra_headers``...) and the organization and project headers it
    reads from the environment. No setting of the ``openai`` module applies to a client made with its own
    address and key, so the route does not depend on whether the package is imported.
    """
    if transport == "openai":
        return None
    if set(kwargs) - PASSED_AS_IS or any(os.environ.get(name) for name in OPENAI_HEADER_VARIABLES):
        return None
    base = api_base or os.environ.get("OPENAI_BASE_URL") or OPENAI_API  # the client's own default
    return Route(base.rstrip("/") + "/chat/completions", api_key or os.environ.get("OPENAI_API_KEY") or "none")
