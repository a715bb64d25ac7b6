"""Anthropic's Messages API for ``LiteLLMModel``'s direct route (core/direct.py): litellm's body, its reply read.

An ``anthropic/claude-...`` model (or a bare ``claude-...`` id that litellm's cost map gives provider
"anthropic") is sent, by litellm's anthropic route (``litellm/llms/anthropic/chat/transformation.py``,
``prompt_templates/factory.py`` ``anthropic_messages_pt``, ``common_utils.py``), as a POST to
``{api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version: 2023-06-01``. For the requests this
module takes (``takes``), that body is:

- ``model``: the name without ``anthropic/``; ``messages``: consecutive user (or assistant) messages merged into
  one message of text blocks, each block's ``cache_control`` kept, the final assistant message's text
  right-stripped; ``system``: the leading system messages as text blocks;
- ``temperature`` / ``top_p`` as given, ``stop_sequences`` the stop list (whitespace ones kept, as without
  ``drop_params``), ``max_tokens`` as given or the model's ``max_output_tokens`` from the cost map, ``stream``.

Everything else stays on litellm: tools, images and other content blocks, empty or whitespace-only text
(litellm substitutes a placeholder), a system message after the conversation started (models differ), other
parameters (thinking, reasoning_effort, extra_headers...), temperature or top_p for a model without sampling
parameters (litellm refuses them), OAuth keys and the other credentials litellm reads (``ANTHROPIC_AUTH_TOKEN``,
workload identity), an ``api_base`` with a query, and ``LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX``.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any, AsyncIterator, Iterator

from .cost_map import model_cost_map
from .litellm_rules import api_route

PREFIX = "anthropic/"
API = "https://api.anthropic.com"  # litellm's, when neither api_base nor ANTHROPIC_API_BASE / _BASE_URL is given
VERSION = "2023-06-01"
KEY_VARIABLE = "ANTHROPIC_API_KEY"
PASSED_AS_IS = frozenset({"temperature", "top_p", "max_tokens"})
# Credentials litellm tries when there is no key (Bearer token, workload identity), and its URL setting.
OTHER_CREDENTIALS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_FEDERATION_RULE_ID", "ANTHROPIC_ORGANIZATION_ID",
                     "ANTHROPIC_IDENTITY_TOKEN", "ANTHROPIC_IDENTITY_TOKEN_FILE", "ANTHROPIC_IDENTITY_SOURCE")
SETTINGS = ("LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX",)
OAUTH_PREFIX = "sk-ant-oat"  # an OAuth token: litellm sends it as a Bearer with beta headers
# litellm's _supports_sampling_params name fallback, for cost-map entries without the flag.
NO_SAMPLING_NAMES = ("fable", "opus-4-7", "opus_4_7", "opus-4.7", "opus_4.7", "opus-4-8", "opus_4_8", "opus-4.8",
                     "opus_4.8")


def served_name(model_id: str) -> str | None:
    """The model's name as Anthropic gets it, for a chat model litellm's cost map gives provider "anthropic"
    and a ``max_output_tokens`` (litellm's default ``max_tokens``); else None."""
    name = model_id[len(PREFIX):] if model_id.startswith(PREFIX) else model_id
    entry = model_cost_map().get(name)
    if (isinstance(entry, dict) and entry.get("litellm_provider") == "anthropic" and entry.get("mode") == "chat"
            and isinstance(entry.get("max_output_tokens"), int)):
        return name
    return None


def takes(name: str, kwargs: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
    """Whether litellm would send this request as ``body`` does (see the module's doc)."""
    if set(kwargs) - PASSED_AS_IS or any(os.environ.get(setting) for setting in SETTINGS):
        return False
    if ("temperature" in kwargs and kwargs["temperature"] != 1 or "top_p" in kwargs) and not _sampling(name):
        return False
    started = False
    for message in messages:
        role = message.get("role")
        if set(message) - {"role", "content"} or role not in ("system", "user", "assistant"):
            return False
        if role == "system" and started:
            return False
        started = started or role != "system"
        if not _plain_text(message.get("content")):
            return False
    return started or not messages


def _sampling(name: str) -> bool:
    """litellm's ``_supports_sampling_params``: the cost map's flag, else its list of names."""
    flag = (model_cost_map().get(name) or {}).get("supports_sampling_params")
    return flag if isinstance(flag, bool) else not any(marker in name.lower() for marker in NO_SAMPLING_NAMES)


def _plain_text(content: Any) -> bool:
    """Text that is not blank, or a list of such text blocks, each with at most a ``cache_control`` (as
    ``models.cache_breakpoints`` marks them)."""
    if isinstance(content, str):
        return bool(content.strip())
    return isinstance(content, list) and bool(content) and all(
        isinstance(block, dict) and block.get("type") == "text" and set(block) <= {"type", "text", "cache_control"}
        and isinstance(block.get("text"), str) and block["text"].strip() for block in content)


def marks_cache(name: str) -> bool:
    """``models.marks_cache`` for a model this route takes: provider anthropic, so the cost map's flag decides."""
    return bool((model_cost_map().get(name) or {}).get("supports_prompt_caching"))


def url(given_base: str | None) -> str | None:
    """Where litellm posts (``ensure_api_route(base, "v1/messages")``), or None for a base it treats specially."""
    base = given_base or os.environ.get("ANTHROPIC_API_BASE") or os.environ.get("ANTHROPIC_BASE_URL") or API
    return api_route(base, "/v1/messages")


def api_key(given: str | None) -> tuple[bool, str | None]:
    """(taken, key): the key litellm would send as ``x-api-key`` (stripped; blank is none); not taken when
    litellm would authenticate otherwise (an OAuth token, or another credential in the environment)."""
    key = (given or "").strip() or (os.environ.get(KEY_VARIABLE) or "").strip() or None
    if key is not None:
        return not key.startswith(OAUTH_PREFIX), key
    return not any(os.environ.get(name) for name in OTHER_CREDENTIALS), None


def headers(key: str | None) -> dict[str, str]:
    """litellm's ``get_anthropic_headers`` for a plain key and no beta feature."""
    sent = {"anthropic-version": VERSION, "accept": "application/json", "content-type": "application/json"}
    return {**sent, "x-api-key": key} if key else sent


def body(params: dict[str, Any]) -> dict[str, Any]:
    """The Messages API body litellm sends for these ``_chat_request`` params (taken by ``takes``)."""
    name = served_name(params["model"])
    system, rest = [], list(params["messages"])
    while rest and rest[0]["role"] == "system":
        system.extend(_blocks(rest.pop(0)["content"]))
    messages: list[dict[str, Any]] = []
    for message in rest:
        role = message["role"]
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(_blocks(message["content"]))
        else:
            messages.append({"role": role, "content": _blocks(message["content"])})
    if messages and messages[-1]["role"] == "assistant":
        for block in messages[-1]["content"]:
            block["text"] = block["text"].rstrip()  # Anthropic refuses a final assistant text ending in whitespace
    sent: dict[str, Any] = {"model": name, "messages": messages}
    sent.update({key: params[key] for key in ("temperature", "top_p") if params.get(key) is not None})
    if params.get("stop"):
        sent["stop_sequences"] = list(params["stop"])
    if system:
        sent["system"] = system
    given = params.get("max_tokens")
    sent["max_tokens"] = (model_cost_map()[name]["max_output_tokens"] if given is None
                          else given if isinstance(given, int) else max(1, int(round(given))))
    if params.get("stream"):
        sent["stream"] = True
    return sent


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [{"type": "text", "text": b["text"], **({"cache_control": b["cache_control"]} if "cache_control" in b
                                                  else {})} for b in content]


def usage(fields: dict[str, Any]) -> SimpleNamespace:
    """litellm's ``calculate_usage``: prompt tokens include the cache's reads and writes (or sum ``iterations``)."""
    steps = fields.get("iterations") or [fields]
    prompt = sum(int(step.get(key) or 0) for step in steps
                 for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = sum(int(step.get("output_tokens") or 0) for step in steps)
    return SimpleNamespace(prompt_tokens=prompt, completion_tokens=completion)


def reply(message: dict[str, Any], sent: dict[str, Any] | None = None) -> SimpleNamespace:
    """A Messages reply as the OpenAI-shaped completion ``models._reply`` reads: its text blocks joined, its usage."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return SimpleNamespace()  # no choices: models._reply says "malformed response"
    text = "".join(block.get("text") or "" for block in content
                   if isinstance(block, dict) and block.get("type") == "text")
    return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text or None, tool_calls=None))],
                           usage=usage(message.get("usage") or {}))


class Chunks:
    """Messages stream events -> OpenAI-shaped chunks: each text delta, then the usage once the message stops
    (message_start's usage updated by message_delta's, as litellm accumulates it)."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.done = False

    def __call__(self, event: dict[str, Any]) -> Iterator[SimpleNamespace]:
        kind = event.get("type")
        if kind == "error":
            error = event.get("error") or {}
            raise RuntimeError(f"the server sent an error mid-stream: {error.get('message') or error}")
        if kind == "message_start":
            self.fields.update((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.fields.update(event.get("usage") or {})
        elif kind == "content_block_delta" and (event.get("delta") or {}).get("type") == "text_delta":
            text = event["delta"].get("text") or ""
            yield SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=text, tool_calls=None))],
                                  usage=None)
        elif kind == "message_stop":
            self.done = True
            yield SimpleNamespace(choices=[], usage=usage(self.fields))


async def chunks(lines: AsyncIterator[str]) -> AsyncIterator[SimpleNamespace]:
    """A Messages stream's SSE lines -> OpenAI-shaped chunks (``Chunks``), up to the message's end."""
    events = Chunks()
    async for line in lines:
        if not line.startswith("data:"):
            continue  # event names, blank separators
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        for chunk in events(json.loads(data)):
            yield chunk
        if events.done:
            return
