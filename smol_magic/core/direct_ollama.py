"""The direct route's Ollama half: litellm's ``ollama/`` (``/api/generate``) and ``ollama_chat/`` (``/api/chat``)
requests and its reading of their replies, litellm not imported.

``%%agent -m ollama/llama3.1`` (a local model) went through litellm, and ``import litellm`` takes seconds
before the first request. litellm's ``ollama/`` route (``litellm/llms/ollama/completion/transformation.py``)
is a fixed function of text messages and a few parameters, so this module builds the same body, at the same
address, and reads the reply as litellm does; ``direct.py`` posts it (its ``route``, ``body``, ``post`` and
``open_stream`` hand ``ollama/`` ids and routes over here, ``ollama_chat/`` ones to ``CHAT``):

- address: ``api_base``, else ``OLLAMA_API_BASE``, else ``http://localhost:11434``, + ``/api/generate``
  unless the path already ends so (litellm's ``ensure_api_route``); no Authorization header;
- body: ``{"model", "prompt", "options", "stream", "images": []}``: the prompt is litellm's ``ollama_pt``
  (``### User:`` / ``### System:`` / ``### Assistant:`` blocks; a run of user turns joined with newlines,
  of system or assistant turns concatenated, empty ones left out), the options litellm's
  ``map_openai_params``: ``temperature``, ``top_p``, ``max_tokens`` as ``num_predict``, ``stop``;
- reply: the ``response`` text, less a leading ``<think>...</think>`` block (or all of it if the reply has
  a ``thinking`` field: then ``response`` is the text); usage from ``prompt_eval_count`` / ``eval_count``
  (litellm counts the prompt with its tokenizer when the first is missing: so does this module, importing
  litellm for that reply only);
- stream (NDJSON lines): litellm's ``OllamaTextCompletionResponseIterator``: ``<think>`` spans and
  ``thinking`` chunks are not text, a reply that starts as a JSON object is held to the end and becomes a
  tool call if it is ``{"name", "arguments"}``, usage from the ``done`` line when it has both counts;
- ``ollama_chat/`` (``chat/transformation.py``): ``/api/chat`` at the same base, each message as
  ``{role, content, images: []}`` (``content`` "" for none; ``thinking`` too when it starts with a
  ``<think>`` block), the same options; the reply's ``message.content`` less a leading ``<think>`` block
  unless it has a ``thinking`` field; streamed, ``thinking`` and ``<think>`` spans are not text; usage
  from the counts (litellm's ``token_counter`` when missing: imported for that reply only).

Everything else stays on litellm (``direct.route`` returns None): tools, a response format (``format``), images or other content lists,
messages with other fields or roles (``tool``, ``tool_calls``, ``name``), any other parameter (``seed``,
``frequency_penalty``, ``reasoning_effort`` -> ``think``, ``keep_alive``...), an ``api_key`` or
``OLLAMA_API_KEY`` (litellm then sends an Authorization header), and a base with a query string.
``tests/test_direct_ollama.py`` checks against the local test server that both routes send the same body to
the same path and read the same replies.

Not reproduced: the ``Content-Type`` header (litellm posts the JSON as ``application/octet-stream``, httpx
as ``application/json``; Ollama reads the body either way), the ``User-Agent``, and the reply's
``reasoning_content`` (``models`` reads only the text and tool calls).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from types import SimpleNamespace
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from . import litellm_import
from .litellm_rules import api_route, text_messages

PREFIX = "ollama/"
DEFAULT_BASE = "http://localhost:11434"  # litellm's, when neither api_base nor OLLAMA_API_BASE is given
PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "num_predict"}
ROLES = frozenset({"system", "user", "assistant"})
MESSAGE_FIELDS = frozenset({"role", "content"})
KEY_VARIABLE = "OLLAMA_API_KEY"
# litellm's reasoning split (parse_content_for_reasoning) and its JSON hold in streams (_JSON_OBJECT_START...).
_REASONING = re.compile(r"<(?:think|thinking|budget:thinking)>(.*?)</(?:think|thinking|budget:thinking)>(.*)",
                        re.DOTALL)
_JSON_CODE_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*(?:```)?$", re.DOTALL)
_JSON_OBJECT_START = re.compile(r"(?:```(?:json)?\s*)?\{")
_JSON_OBJECT_PARTIAL_START = re.compile(r"`{0,3}|```(?:j|js|jso|json)?\s*")


def route(model_id: str, given_base: str | None, api_key: str | None, kwargs: dict[str, Any],
          messages: list[dict[str, Any]], tools: Any, response_format: Any) -> str | None:
    """The URL for an ``ollama/`` (``/api/generate``) or ``ollama_chat/`` (``/api/chat``) request litellm sends
    as ``body`` / ``chat_body`` build it, or None."""
    prefix = next((p for p in (PREFIX, CHAT_PREFIX) if model_id.startswith(p)), None)
    if prefix is None or len(model_id) == len(prefix) or tools or response_format:
        return None
    if api_key or os.environ.get(KEY_VARIABLE) or set(kwargs) - set(PARAMETERS):
        return None
    if not text_messages(messages, MESSAGE_FIELDS, ROLES):
        return None
    base = given_base or os.environ.get("OLLAMA_API_BASE") or DEFAULT_BASE
    if not urlsplit(base).scheme:
        return None  # litellm leaves a bare scheme alone: not worth copying
    return api_route(base, "/api/generate" if prefix == PREFIX else "/api/chat")


def prompt(messages: list[dict[str, Any]]) -> str:
    """litellm's ``ollama_pt`` for text messages (system, user and assistant turns)."""
    text, i = "", 0
    while i < len(messages):
        users = []
        while i < len(messages) and messages[i]["role"] == "user":
            if messages[i].get("content"):
                users.append(messages[i]["content"])
            i += 1
        if users:
            text += "### User:\n" + "\n".join(users) + "\n\n"
        for role, title in (("system", "System"), ("assistant", "Assistant")):
            run = ""
            while i < len(messages) and messages[i]["role"] == role:
                run += messages[i].get("content") or ""
                i += 1
            if run:
                text += f"### {title}:\n{run}\n\n"
    return text


def body(params: dict[str, Any]) -> dict[str, Any]:
    """litellm's ``/api/generate`` body for these ``_chat_request`` params (``OllamaConfig.transform_request``)."""
    options = {PARAMETERS[k]: v for k, v in params.items() if k in PARAMETERS and v is not None}
    if params.get("stop"):
        options["stop"] = params["stop"]
    return {"model": params["model"][len(PREFIX):], "prompt": prompt(params["messages"]), "options": options,
            "stream": bool(params.get("stream")), "images": []}


def headers(key: str | None) -> dict[str, str]:
    """None: litellm sends no key to Ollama unless one is configured (those requests stay on litellm)."""
    return {}


def split(data: dict[str, Any]) -> str | None:
    """The reply's text as litellm's ``_OllamaGenerateReasoning.split`` leaves it (reasoning taken out)."""
    response = data.get("response", "")
    if data.get("thinking"):
        return response
    if not response:
        return response
    found = _REASONING.match(response)
    return found.group(2) if found else response


def reply(data: dict[str, Any], sent: dict[str, Any] | None = None) -> SimpleNamespace:
    """An ``/api/generate`` reply (``sent``: the request's body) as the OpenAI-style object ``models._reply``
    reads (litellm's transform_response)."""
    if "prompt_eval_count" in data:
        prompt_tokens = data["prompt_eval_count"]
    else:  # rare (old servers, a cached prompt): litellm counts the prompt with its own tokenizer
        prompt_tokens = _count((sent or {}).get("prompt", ""))
    completion = data.get("eval_count", len((data.get("message") or {}).get("content", "")))
    message = SimpleNamespace(content=split(data), tool_calls=None)
    return SimpleNamespace(choices=[SimpleNamespace(message=message)],
                           usage=SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion))


def _count(text: str) -> int:
    encoding = litellm_import.litellm().encoding  # only for a reply without prompt_eval_count
    return len(encoding.encode(text, disallowed_special=()))


def _delta(content: str | None = None, calls: Any = None) -> SimpleNamespace:
    return SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=content, tool_calls=calls))],
                           usage=None)


class _Reader:
    """litellm's ``OllamaTextCompletionResponseIterator``: one NDJSON line (parsed) -> a chunk, or None."""

    def __init__(self) -> None:
        self.started = self.finished = self.streamed = self.holding = False
        self.held = ""

    def _hold(self, content: str) -> str | None:
        """A reply that starts as a JSON object is held to the end (it may be a tool call), as litellm holds it."""
        if self.streamed:
            return content
        self.held += content
        if self.holding:
            return None
        candidate = self.held.lstrip()
        if _JSON_OBJECT_START.match(candidate):
            self.holding = True
            return None
        if _JSON_OBJECT_PARTIAL_START.fullmatch(candidate):
            return None
        self.streamed = True
        released, self.held = self.held, ""
        return released

    def _flush(self, usage: Any) -> SimpleNamespace:
        held, self.held = self.held, ""
        try:
            parsed = json.loads(_strip_fence(held))
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "name" in parsed and "arguments" in parsed:
            call = SimpleNamespace(index=0, id=f"call_{uuid.uuid4()}", type="function",
                                   function=SimpleNamespace(name=parsed["name"],
                                                            arguments=json.dumps(parsed["arguments"])))
            chunk = _delta(None, [call])
        else:
            chunk = _delta(held)
        chunk.usage = usage
        return chunk

    def read(self, chunk: dict[str, Any]) -> SimpleNamespace | None:
        if "error" in chunk:
            raise RuntimeError(f"the server sent an error mid-stream: {chunk['error']}")
        if chunk["done"] is True:
            prompt_tokens, completion = chunk.get("prompt_eval_count"), chunk.get("eval_count")
            usage = None
            if prompt_tokens is not None and completion is not None:
                usage = SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion)
            if self.held:
                return self._flush(usage)
            return SimpleNamespace(choices=[], usage=usage) if usage is not None else None
        text = chunk["response"]
        if text:
            if "<think>" in text:
                text = text.replace("<think>", "")
                self.started = True
            elif "</think>" in text:
                text = text.replace("</think>", "")
                self.finished = True
            if self.started and not self.finished:
                return None  # reasoning, not text
            content = self._hold(text)
            return _delta(content) if content else None
        return None  # a thinking chunk or an empty one: no text


def _strip_fence(text: str) -> str:
    fenced = _JSON_CODE_FENCE.match(text.strip())
    return fenced.group(1) if fenced else text


async def chunks(lines: AsyncIterator[str]) -> AsyncIterator[SimpleNamespace]:
    """An ``/api/generate`` stream's NDJSON lines -> OpenAI-style chunks, as litellm's stream yields them."""
    reader = _Reader()
    async for line in lines:
        if not line.strip():
            continue
        chunk = reader.read(json.loads(line))
        if chunk is not None:
            yield chunk


# -- ollama_chat/: /api/chat (litellm's OllamaChatConfig) --

CHAT_PREFIX = "ollama_chat/"


def chat_body(params: dict[str, Any]) -> dict[str, Any]:
    """litellm's ``/api/chat`` body: each message as ``{role, content, images: []}`` (and ``thinking`` when its
    content starts with a ``<think>`` block: litellm's ``extract_reasoning_content``), the same options."""
    messages = []
    for message in params["messages"]:
        sent: dict[str, Any] = {"role": message["role"]}
        content = message.get("content")
        found = _REASONING.match(content) if content else None
        if found:
            sent["thinking"] = found.group(1)
        sent["content"] = content or ""
        sent["images"] = []
        messages.append(sent)
    options = {PARAMETERS[k]: v for k, v in params.items() if k in PARAMETERS and v is not None}
    if params.get("stop"):
        options["stop"] = params["stop"]
    return {"model": params["model"][len(CHAT_PREFIX):], "messages": messages, "options": options,
            "stream": bool(params.get("stream"))}


def _calls(calls: Any) -> Any:
    """Ollama's tool calls (arguments as an object) as ``models`` reads them (dicts; arguments made JSON text)."""
    return [dict(call, function=dict(call.get("function") or {})) for call in calls] if calls else None


def chat_reply(data: dict[str, Any], sent: dict[str, Any] | None = None) -> SimpleNamespace:
    """An ``/api/chat`` reply read as litellm's ``OllamaChatConfig.transform_response`` reads it: the text without
    a leading ``<think>`` block (unless the message has a ``thinking`` field), usage from the counts."""
    message = dict(data["message"])
    if "thinking" not in message and message.get("content") is not None:
        found = _REASONING.match(message["content"]) if message["content"] else None
        message["content"] = found.group(2) if found else message["content"]
    if "prompt_eval_count" in data:
        prompt_tokens = data["prompt_eval_count"]
    else:  # litellm counts the messages with its token_counter: only then is it imported
        prompt_tokens = _counter(messages=[{"role": m["role"], "content": m["content"]}
                                           for m in (sent or {}).get("messages", [])])
    completion = data["eval_count"] if "eval_count" in data else _counter(text=data["message"]["content"])
    choice = SimpleNamespace(message=SimpleNamespace(content=message.get("content"),
                                                     tool_calls=_calls(message.get("tool_calls"))))
    return SimpleNamespace(choices=[choice],
                           usage=SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion))


def _counter(**what: Any) -> int:
    return litellm_import.litellm().token_counter(**what)  # only for a reply without its counts


async def chat_chunks(lines: AsyncIterator[str]) -> AsyncIterator[SimpleNamespace]:
    """An ``/api/chat`` stream's NDJSON lines -> OpenAI-style chunks, as litellm's
    ``OllamaChatCompletionResponseIterator`` reads them (``thinking`` and ``<think>`` spans are not text)."""
    started = finished = False
    async for line in lines:
        if not line.strip():
            continue
        chunk = json.loads(line)
        if "error" in chunk:
            raise RuntimeError(f"the server sent an error mid-stream: {chunk['error']}")
        message = chunk["message"]
        content = None
        if message.get("thinking"):
            started = True
        if message.get("content"):
            if started and not finished:
                finished = True
            text = message["content"]
            if "<think>" in text:
                text = text.replace("<think>", "")
                started = True
            if "</think>" in text and started:
                text = text.replace("</think>", "")
                finished = True
            if not (started and not finished):
                content = text
        prompt_tokens, completion = chunk.get("prompt_eval_count"), chunk.get("eval_count")
        usage = None
        if chunk["done"] is True and isinstance(prompt_tokens, int) and isinstance(completion, int):
            usage = SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion)
        delta = SimpleNamespace(content=content, tool_calls=_calls(message.get("tool_calls")))
        yield SimpleNamespace(choices=[SimpleNamespace(delta=delta)], usage=usage)


# direct.py's dialect table takes modules or objects with body, headers, reply and chunks: /api/chat's
CHAT = SimpleNamespace(body=chat_body, headers=headers, reply=chat_reply, chunks=chat_chunks)
