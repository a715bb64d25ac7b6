"""The direct route's Gemini half: Google AI Studio's ``generateContent`` request and reply, litellm not imported.

A ``gemini/<name>`` id goes through litellm's Google AI Studio route (``litellm/llms/gemini/`` on top of
``llms/vertex_ai/gemini/``), and ``import litellm`` takes seconds. For the requests where litellm's
translation is a fixed function of the messages and three parameters, this module builds the same
body, names the address and the key's place litellm uses, and reads the reply the same way; ``direct.py``
posts it (its ``route``, ``body``, ``post`` and ``open_stream`` hand ``gemini/`` ids and routes over here):

- models: the cost map's ``gemini/`` chat models (``litellm_provider`` "gemini", ``mode`` "chat") named
  ``gemini-...``, answering text only, that litellm does not count as Gemini 3 or newer (those get the
  ``v1alpha`` address, thought signatures, function-call ids and sampling-param rules) and whose
  sampling params it does not refuse (``supports_sampling_params``). litellm adds no thinking config
  or safety settings to these unless asked (``reasoning_effort``, ``thinking``, ``litellm.*`` globals);
- messages: system/user/assistant with text (or no) content; consecutive user turns (and system ones,
  for a model without ``supports_system_messages``) merged into one ``user`` content, assistant turns
  into ``model``, system messages into ``system_instruction`` when the model takes them
  (``gemini_convert_messages_with_history``, ``transform_system_message``);
- parameters: ``temperature``, ``top_p``, ``max_tokens`` and the stop sequences, in ``generationConfig``
  under litellm's snake_case names;
- address: ``api_base`` or ``GEMINI_API_BASE`` + ``/models/<name>:generateContent`` (litellm adds no
  version to a given base), else ``https://generativelanguage.googleapis.com/v1beta/...``; streaming is
  ``:streamGenerateContent?alt=sse``; the key (``api_key``, ``GOOGLE_API_KEY``, ``GEMINI_API_KEY``,
  ``PALM_API_KEY``, in litellm's order) in the ``x-goog-api-key`` header, never in the URL;
- reply: the first candidate's non-thought text parts joined; a blocked prompt or a flagged finish
  reason reads as no text; usage as litellm's ``_calculate_usage`` counts it (thought tokens added to
  the reply's when ``candidatesTokenCount`` leaves them out); a stream's usage as litellm's stream
  builder keeps it (the last non-zero counts), reported once at its end.

Everything else stays on litellm (``direct.route`` returns None): tools, a response format, images or
other content lists, any other parameter, messages with other fields (``tool_calls``,
``reasoning_content``, ``provider_specific_fields``), ``LITELLM_GEMINI_DEFAULT_MAX_OUTPUT_TOKENS``
(litellm then adds an output budget), a base with a query string, and unknown or excluded models
(``gemini/gemini-2.0-flash`` is no longer in the cost map; ``gemini-flash-latest`` counts as Gemini 3).
``tests/test_direct_gemini.py`` checks, against the local test server, for every model taken, that both
routes send the same body to the same path with the key in the same header and read the same replies.

Not reproduced: litellm's follow-up request when a reply ends with a ``continuationToken`` (its
"long decode", which only that field starts): the direct route reads the one reply.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, AsyncIterator

from .cost_map import model_cost_map
from .litellm_rules import text_messages

PREFIX = "gemini/"
GEMINI_API = "https://generativelanguage.googleapis.com/v1beta"  # litellm's get_gemini_url, before Gemini 3
KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "PALM_API_KEY")  # litellm's order (_complete_vertex_ai_beta)
PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_output_tokens"}
MESSAGE_FIELDS = frozenset({"role", "content", "name"})  # litellm's conversion reads no "name"
ROLES = frozenset({"system", "user", "assistant"})
# Set, litellm adds generationConfig.max_output_tokens to requests without one (long_decode.py).
SETTINGS = ("LITELLM_GEMINI_DEFAULT_MAX_OUTPUT_TOKENS",)
# litellm's get_flagged_finish_reasons: the reply reads as no text.
FLAGGED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                     "IMAGE_PROHIBITED_CONTENT"})
# litellm's VertexGeminiConfig._is_gemini_3_or_newer: the names it counts as older than Gemini 3.
_BEFORE_GEMINI_3 = re.compile(r"^gemini-(?:[12](?:\.\d+)?|exp|(?:pro|flash)(?!-(?:lite-)?latest$))(?:-|$)")


@dataclass(frozen=True)
class GeminiRoute:
    """Where a Gemini request goes (``stream_url`` when streamed), and with which key (None: none given)."""

    url: str
    stream_url: str
    api_key: str | None
    key_variable: str = "GEMINI_API_KEY"


def chat_model(name: str) -> bool:
    """A Gemini chat model whose requests litellm builds as this module does (see the module's doc)."""
    table = model_cost_map()
    entry = table.get(PREFIX + name)
    if not (isinstance(entry, dict) and entry.get("litellm_provider") == "gemini" and entry.get("mode") == "chat"
            and name.startswith("gemini-") and _BEFORE_GEMINI_3.match(name.lower())):
        return False
    if entry.get("supported_output_modalities") not in (None, ["text"]):
        return False  # speech, image or video models: litellm adds response modalities and reads other parts
    for key in (name, "vertex_ai/" + name, PREFIX + name):  # litellm's supports_sampling_params lookup
        flag = (table.get(key) or {}).get("supports_sampling_params")
        if isinstance(flag, bool):
            return flag
    return True


def route(model_id: str, given_base: str | None, api_key: str | None, kwargs: dict[str, Any],
          messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
          response_format: dict[str, Any] | None) -> GeminiRoute | None:
    """The direct route for a ``gemini/`` request, or None when litellm must send it."""
    name = model_id[len(PREFIX):]
    if tools or response_format or set(kwargs) - set(PARAMETERS) or any(os.environ.get(v) for v in SETTINGS):
        return None
    if not chat_model(name):
        return None
    if not text_messages(messages, MESSAGE_FIELDS, ROLES):
        return None
    base = given_base or os.environ.get("GEMINI_API_BASE") or None
    if base is not None and ("?" in base or "#" in base):
        return None  # litellm's join keeps a query before the path it adds: not worth copying
    root = base.rstrip("/") if base else GEMINI_API
    url = f"{root}/models/{name}:generateContent"
    key = api_key or next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
    return GeminiRoute(url, f"{root}/models/{name}:streamGenerateContent?alt=sse", key)


def body(params: dict[str, Any]) -> dict[str, Any]:
    """litellm's generateContent body for these ``_chat_request`` params (text messages, plain parameters).
    System messages become ``system_instruction`` if the cost map says the model takes them, as litellm's
    ``get_supports_system_message`` decides; else they are user turns."""
    messages = [dict(m) for m in params["messages"]]
    system = []
    entry = model_cost_map().get(params["model"]) or {}
    if entry.get("supports_system_messages") is True:
        system = [{"text": m["content"]} for m in messages if m["role"] == "system" and isinstance(m["content"], str)]
        messages = [m for m in messages if not (m["role"] == "system" and isinstance(m["content"], str))]
        if system and not messages:
            messages = [{"role": "user", "content": "."}]  # litellm's default user turn
    contents = _contents(messages)
    sent: dict[str, Any] = {"contents": contents or [{"role": "user", "parts": [{"text": " "}]}]}
    if system:
        sent["system_instruction"] = {"parts": system}
    config = {PARAMETERS[k]: v for k, v in params.items() if k in PARAMETERS and v is not None}  # None: unset
    stop = params.get("stop")
    if stop:
        config["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if config:
        sent["generationConfig"] = config
    return sent


def _contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """litellm's ``gemini_convert_messages_with_history`` for text: each run of user (and system) messages one
    ``user`` content, each run of assistant messages one ``model`` content, a run without text none."""
    contents: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        for roles, role in (({"user", "system"}, "user"), ({"assistant"}, "model")):
            parts = []
            while i < len(messages) and messages[i]["role"] in roles:
                if isinstance(messages[i].get("content"), str):
                    parts.append({"text": messages[i]["content"]})
                i += 1
            if parts:
                contents.append({"role": role, "parts": parts})
    return contents


def usage(metadata: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens as litellm's ``_calculate_usage`` counts them."""
    prompt = metadata.get("promptTokenCount", 0) or 0
    tool_use = metadata.get("toolUsePromptTokenCount") or 0
    candidates = metadata.get("candidatesTokenCount", 0) or 0
    completion = metadata.get("responseTokenCount") or candidates
    thoughts = metadata.get("thoughtsTokenCount")
    if prompt + candidates + tool_use != metadata.get("totalTokenCount", 0) and thoughts:
        completion += thoughts
    return prompt + tool_use, completion


def _text(candidates: list[dict[str, Any]] | None) -> tuple[bool, str | None]:
    """(a choice, its text): the first candidate with content or a finish reason, its non-thought text parts
    joined (litellm's ``get_assistant_content_message``); None when there is none."""
    for candidate in candidates or []:
        if "content" not in candidate and "finishReason" not in candidate:
            continue
        text = None
        for part in (candidate.get("content") or {}).get("parts") or []:
            piece = ""
            if "text" in part:
                if part["text"].startswith("data:audio") and ";base64," in part["text"]:
                    continue
                piece = part["text"]
            elif "inlineData" in part:
                inline = part.get("inlineData") or {}
                mime = inline.get("mimeType", "")
                if mime.startswith(("audio/", "image/")):
                    continue
                piece = f"data:{mime};base64,{inline.get('data', '')}"
            if piece and part.get("thought") is not True:
                text = (text or "") + piece
        return True, text
    return False, None


def reply(data: dict[str, Any], sent: dict[str, Any] | None = None) -> SimpleNamespace:
    """A generateContent reply as the OpenAI-style object ``models._reply`` reads (litellm's transform_response)."""
    metadata = data.get("usageMetadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"malformed response: no usageMetadata in {json.dumps(data)[:200]}")
    candidates = data.get("candidates")
    flagged = bool(candidates) and candidates[0].get("finishReason") in FLAGGED
    if "blockReason" in (data.get("promptFeedback") or {}) or flagged:
        counts = (metadata.get("promptTokenCount", 0), metadata.get("candidatesTokenCount", 0))
        choices = [_choice(None)]
    else:
        counts = usage(metadata)
        found, text = _text(candidates)
        choices = [_choice(text)] if found else []
    return SimpleNamespace(choices=choices, usage=SimpleNamespace(prompt_tokens=counts[0],
                                                                  completion_tokens=counts[1]))


def _choice(text: str | None) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(content=text, tool_calls=None))


def headers(key: str | None) -> dict[str, str]:
    """The key where litellm puts it: the ``x-goog-api-key`` header (never the URL, which error messages show)."""
    return {"x-goog-api-key": key} if key else {}


async def chunks(lines: AsyncIterator[str]) -> AsyncIterator[SimpleNamespace]:
    """A streamGenerateContent reply's SSE lines -> OpenAI-style chunks, as litellm's stream yields them: the
    text as it comes, the usage once at the end (its stream builder keeps each count's last non-zero value)."""
    prompt: int | None = None
    completion: int | None = None
    async for line in lines:
        if not line.startswith("data:"):
            continue
        chunk = json.loads(line[len("data:"):].strip())
        error = chunk.get("error")
        if error is not None:  # litellm's _check_streaming_error
            message = (f"{error.get('status', 'UNKNOWN')} - {error.get('message', 'Unknown error')}"
                       if isinstance(error, dict) else error)
            raise RuntimeError(f"the server sent an error mid-stream: {message}")
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, dict):
            counted = usage(metadata)
            prompt = counted[0] if counted[0] > 0 or prompt is None else prompt
            completion = counted[1] if counted[1] > 0 or completion is None else completion
        _, text = _text(chunk.get("candidates"))
        if text:
            delta = SimpleNamespace(content=text, tool_calls=None)
            yield SimpleNamespace(choices=[SimpleNamespace(delta=delta)], usage=None)
    if prompt is not None or completion is not None:
        yield SimpleNamespace(choices=[], usage=SimpleNamespace(prompt_tokens=prompt or 0,
                                                                completion_tokens=completion or 0))
