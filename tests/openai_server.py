"""A tiny OpenAI-compatible chat server on 127.0.0.1, scripted per request.

Model-client tests talk real HTTP to it instead of mocking litellm or
huggingface_hub, so they catch what mocks cannot: the URL a client posts to,
the JSON it sends, how it parses SSE, what it does on 429 / 500 / bad JSON.
Stdlib only; every request pops the next scripted behaviour from a queue.

It also answers Anthropic's ``/v1/messages`` (text replies, JSON or SSE; error statuses in Anthropic's
shape), so a test can see what litellm, or the direct route, sends an ``anthropic/...`` model, Gemini's
``generateContent``, and Ollama's ``/api/generate`` and ``/api/chat`` (JSON, or NDJSON lines when streamed).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from smol_magic.core.tools import tool


@dataclass
class Behaviour:
    kind: str  # "reply" | "stream" | "status" | "malformed" | "hang" | "tool_calls"
    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI tool_calls, for kind "tool_calls"
    pieces: list[str] = field(default_factory=list)
    usage: tuple[int, int] | None = None
    cache: tuple[int, int] | None = None  # Anthropic's cache_creation / cache_read input tokens, for /v1/messages
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text if it was not JSON
    at: float = field(default_factory=time.monotonic)  # when it arrived


class OpenAIServer:
    """``with OpenAIServer() as srv: srv.push_reply("hi"); Model(api_base=srv.base_url)``."""

    def __init__(self) -> None:
        self._behaviours: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._released = threading.Event()  # hung requests end when the server stops

    # -- scripting ---------------------------------------------------------

    def push_reply(self, text: str, prompt_tokens: int = 11, completion_tokens: int = 7,
                   cache: tuple[int, int] | None = None) -> "OpenAIServer":
        """Answer like a real server: JSON, or SSE if the request asked for ``stream``.

        When streaming, usage is sent only if the client asked for it with
        ``stream_options.include_usage``, as OpenAI does. ``cache`` (Anthropic's route only): the
        ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` of the usage.
        """
        self._push(Behaviour("reply", text=text, usage=(prompt_tokens, completion_tokens), cache=cache))
        return self

    def push_stream(self, pieces: list[str], usage: tuple[int, int] | None = (11, 7)) -> "OpenAIServer":
        """Always answer with these SSE content chunks, then a usage chunk (if ``usage``), then ``[DONE]``."""
        self._push(Behaviour("stream", pieces=list(pieces), usage=usage))
        return self

    def push_tool_calls(
        self, *calls: tuple[str, Any], text: str = "", usage: tuple[int, int] = (11, 7)
    ) -> "OpenAIServer":
        """Answer with native ``tool_calls``: each call a (name, arguments) pair, arguments a dict (sent
        as JSON text) or a string sent as it is (e.g. broken JSON). Streamed if the request asks: each
        call's id and name first, then its arguments in pieces, as OpenAI does."""
        tool_calls = [
            {"id": f"call_{self.pending}_{n}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for n, (name, args) in enumerate(calls)
        ]
        self._push(Behaviour("tool_calls", text=text, calls=tool_calls, usage=usage))
        return self

    def push_status(
        self, status: int, message: str = "scripted failure", headers: dict[str, str] | None = None
    ) -> "OpenAIServer":
        """Answer with an HTTP error status and an OpenAI-style JSON error body."""
        self._push(Behaviour("status", text=message, status=status, headers=dict(headers or {})))
        return self

    def push_gemini(self, *responses: dict[str, Any]) -> "OpenAIServer":
        """Gemini's route only: answer with these GenerateContentResponse objects, as they are (thought parts,
        a blocked prompt, usage in every chunk...): the first as JSON, or all as SSE when streamed."""
        self._push(Behaviour("gemini", pieces=[json.dumps(r) for r in responses]))
        return self

    def push_ollama(self, *lines: dict[str, Any]) -> "OpenAIServer":
        """Ollama's routes only: answer with these objects as they are (``thinking`` fields, no counts...): the
        first as JSON, or all as NDJSON lines when the request streams."""
        self._push(Behaviour("ollama", pieces=[json.dumps(line) for line in lines]))
        return self

    def push_hang(self) -> "OpenAIServer":
        """Accept the request and never answer (until the server stops): a hung model server."""
        self._push(Behaviour("hang"))
        return self

    def push_malformed(self, body: str = "<html>upstream proxy error: this is not JSON") -> "OpenAIServer":
        """Answer 200 with ``application/json`` content type but a body that is not JSON."""
        self._push(Behaviour("malformed", text=body))
        return self

    def _push(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviours.append(behaviour)

    def _pop(self) -> Behaviour | None:
        with self._lock:
            return self._behaviours.popleft() if self._behaviours else None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._behaviours)

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of every request received, in order."""
        with self._lock:
            return [r.body for r in self.requests]

    # -- lifecycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "OpenAIServer":
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one response per connection, so SSE needs no chunked encoding
    # and no keep-alive socket outlives a test.
    protocol_version = "HTTP/1.0"
    server_state: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        state = self.server_state
        with state._lock:
            state.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))

        if "/models/" in self.path and self.path.split("?")[0].endswith((":generateContent", ":streamGenerateContent")):
            return self._gemini(body if isinstance(body, dict) else {})
        if self.path.rstrip("/").endswith(("/api/generate", "/api/chat")):
            return self._ollama(body if isinstance(body, dict) else {})
        anthropic = self.path.rstrip("/").endswith("/messages")
        if not self.path.rstrip("/").endswith("/chat/completions") and not anthropic:
            return self._error(404, f"no route for {self.path}")
        behaviour = state._pop()
        if behaviour is None:
            return self._error(500, "OpenAIServer: no scripted behaviour left for this request")
        try:
            serve = self._serve_anthropic if anthropic else self._serve
            serve(behaviour, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # client went away mid-response; nothing to do

    def _serve_anthropic(self, b: Behaviour, body: dict) -> None:
        """Anthropic's Messages API, for a text reply (``push_reply``): JSON, or its SSE events if asked to stream;
        ``push_status`` as Anthropic's error body, ``push_malformed`` and ``push_hang`` as on the OpenAI route."""
        if b.kind == "status":
            kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
            error = {"type": "error", "error": {"type": kinds.get(b.status, "api_error"), "message": b.text}}
            return self._send(b.status, json.dumps(error).encode(), "application/json", b.headers)
        if b.kind in ("malformed", "hang"):
            return self._serve(b, body)
        if b.kind != "reply":
            return self._error(500, f"the /v1/messages route answers only push_reply, not {b.kind!r}")
        model = body.get("model") or "unknown"
        prompt, completion = b.usage or (0, 0)
        cached = dict(zip(("cache_creation_input_tokens", "cache_read_input_tokens"), b.cache)) if b.cache else {}
        message = {"id": "msg_local", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": b.text}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": prompt, "output_tokens": completion, **cached}}
        if not body.get("stream"):
            return self._send(200, json.dumps(message).encode(), "application/json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(kind: str, data: dict) -> None:
            self.wfile.write(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())
            self.wfile.flush()

        event("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                            "usage": {"input_tokens": prompt, "output_tokens": 1, **cached}}})
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        for i in range(0, len(b.text), 4):
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": b.text[i:i + 4]}})
        event("content_block_stop", {"index": 0})
        event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": completion}})
        event("message_stop", {})

    def _serve(self, b: Behaviour, body: dict) -> None:
        model = body.get("model") or "unknown"
        if b.kind == "status":
            return self._error(b.status, b.text, b.headers)
        if b.kind == "hang":
            self.server_state._released.wait()
            return None
        if b.kind == "malformed":
            return self._send(200, b.text.encode(), "application/json")
        if b.kind == "tool_calls" and body.get("stream"):
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self._stream(model, [b.text] if b.text else [], b.usage if wants_usage else None, b.calls)
        if b.kind == "stream" or (b.kind == "reply" and body.get("stream")):
            if b.kind == "reply":
                pieces = [b.text[i : i + 4] for i in range(0, len(b.text), 4)]
                wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                usage = b.usage if wants_usage else None
            else:
                pieces, usage = b.pieces, b.usage
            return self._stream(model, pieces, usage)
        prompt, completion = b.usage or (0, 0)
        message: dict[str, Any] = {"role": "assistant", "content": b.text or (None if b.calls else "")}
        if b.calls:
            message["tool_calls"] = b.calls
        payload = {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if b.calls else "stop"}
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        self._send(200, json.dumps(payload).encode(), "application/json")

    def _stream(self, model: str, pieces: list[str], usage: tuple[int, int] | None,
                calls: list[dict[str, Any]] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        base = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def event(obj: dict) -> None:
            self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
            self.wfile.flush()

        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        for piece in pieces:
            event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        for index, call in enumerate(calls or []):
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}
            event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}]})
            arguments = call["function"]["arguments"]
            for i in range(0, len(arguments), 5):
                more = {"index": index, "function": {"arguments": arguments[i:i + 5]}}
                event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [more]}, "finish_reason": None}]})
        finish = "tool_calls" if calls else "stop"
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if usage is not None:
            prompt, completion = usage
            totals = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            event({**base, "choices": [], "usage": totals})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    # -- Gemini (Google AI Studio): .../models/<name>:generateContent and :streamGenerateContent?alt=sse --

    # push_gemini's replies: Behaviour("gemini", pieces=[each GenerateContentResponse as JSON text])

    def _gemini(self, body: dict) -> None:
        """Gemini's generateContent: ``push_reply`` / ``push_stream`` in its JSON or SSE shapes (streamed when
        the path says so, as Gemini decides), ``push_status`` as its error body, ``push_hang``, ``push_malformed``."""
        behaviour = self.server_state._pop()
        try:
            if behaviour is None:
                return self._gemini_error(500, "OpenAIServer: no scripted behaviour left for this request")
            if behaviour.kind == "status":
                return self._gemini_error(behaviour.status, behaviour.text, behaviour.headers)
            if behaviour.kind == "hang":
                self.server_state._released.wait()
                return None
            if behaviour.kind == "malformed":
                return self._send(200, behaviour.text.encode(), "application/json")
            if behaviour.kind == "gemini":  # push_gemini: these responses as they are
                if ":streamGenerateContent" not in self.path:
                    return self._send(200, behaviour.pieces[0].encode(), "application/json")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in behaviour.pieces:
                    self.wfile.write(f"data: {piece}\r\n\r\n".encode())
                    self.wfile.flush()
                return None
            if behaviour.kind not in ("reply", "stream"):
                return self._gemini_error(500, f"the Gemini route answers no {behaviour.kind!r}")
            model = self.path.split("/models/")[1].split(":")[0]
            usage = behaviour.usage
            if ":streamGenerateContent" not in self.path:
                chunk = _gemini_chunk(model, behaviour.text or "".join(behaviour.pieces), "STOP", usage or (0, 0))
                return self._send(200, json.dumps(chunk).encode(), "application/json")
            pieces = behaviour.pieces or [behaviour.text[i:i + 4] for i in range(0, len(behaviour.text), 4)]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for number, piece in enumerate(pieces):
                last = number == len(pieces) - 1
                # as Gemini: every chunk carries usageMetadata, the prompt's count; the last one the reply's too
                chunk = _gemini_chunk(model, piece, "STOP" if last else None,
                                      usage and (usage[0], usage[1] if last else None))
                self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- Ollama: /api/generate (ollama/ models) and /api/chat (ollama_chat/), JSON or NDJSON lines --

    def _ollama(self, body: dict) -> None:
        """Ollama's API: ``push_reply`` / ``push_stream`` as its JSON reply or NDJSON stream (``stream`` in the
        body, true by default as Ollama's), ``push_ollama`` as given, ``push_status`` as Ollama's error body
        (``{"error": "..."}``), ``push_hang``, ``push_malformed``."""
        behaviour = self.server_state._pop()
        try:
            if behaviour is None:
                return self._send(500, json.dumps({"error": "OpenAIServer: no scripted behaviour left"}).encode(),
                                  "application/json")
            if behaviour.kind == "status":
                return self._send(behaviour.status, json.dumps({"error": behaviour.text}).encode(),
                                  "application/json", behaviour.headers)
            if behaviour.kind == "hang":
                self.server_state._released.wait()
                return None
            if behaviour.kind == "malformed":
                return self._send(200, behaviour.text.encode(), "application/json")
            streaming = body.get("stream", True) is not False
            if behaviour.kind == "ollama":
                lines = behaviour.pieces
            elif behaviour.kind in ("reply", "stream"):
                model = body.get("model") or "unknown"
                if not streaming:
                    text = behaviour.text or "".join(behaviour.pieces)
                    lines = [json.dumps(_ollama_line(self.path, model, text, True, behaviour.usage))]
                else:
                    pieces = behaviour.pieces or [behaviour.text[i:i + 4] for i in range(0, len(behaviour.text), 4)]
                    lines = [json.dumps(_ollama_line(self.path, model, piece, False, None)) for piece in pieces]
                    lines.append(json.dumps(_ollama_line(self.path, model, "", True, behaviour.usage)))
            else:
                return self._send(500, json.dumps({"error": f"no {behaviour.kind!r} on Ollama's routes"}).encode(),
                                  "application/json")
            if not streaming:
                return self._send(200, lines[0].encode(), "application/json; charset=utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            for line in lines:
                self.wfile.write(line.encode() + b"\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _gemini_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        payload = {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}
        self._send(status, json.dumps(payload).encode(), "application/json", headers)


def _ollama_line(path: str, model: str, text: str, done: bool, usage: tuple[int, int] | None) -> dict:
    """One Ollama reply object: ``/api/generate``'s ``response`` or ``/api/chat``'s ``message``; counts when done."""
    line: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z"}
    if path.rstrip("/").endswith("/api/chat"):
        line["message"] = {"role": "assistant", "content": text}
    else:
        line["response"] = text
    line["done"] = done
    if done:
        line.update(done_reason="stop", total_duration=1000, load_duration=10, eval_duration=500)
        if usage is not None:
            line.update(prompt_eval_count=usage[0], eval_count=usage[1])
    return line


def _gemini_chunk(model: str, text: str, finish: str | None, usage: tuple[int, int | None] | None) -> dict:
    """One GenerateContentResponse: a candidate with the text, and usageMetadata."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "local-gemini"}
    if usage is not None:
        prompt, completion = usage
        metadata = {"promptTokenCount": prompt, "totalTokenCount": prompt + (completion or 0)}
        if completion is not None:
            metadata["candidatesTokenCount"] = completion
        chunk["usageMetadata"] = metadata
    return chunk


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh scripted server per test, shut down afterwards."""
    with OpenAIServer() as srv:
        yield srv


@tool
def weather(city: str) -> str:
    """The weather in a city: the tool the requests of tests/test_direct*.py offer the model.

    Args:
        city: the city's name
    """
    return "sunny"


FIRST_CELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "smol_magic")
ip.run_cell("%%agent -o answer --approve never\\nSay hi.")
print("ANSWER", ip.user_ns.get("answer"), "LITELLM", "litellm" in sys.modules, "OPENAI", "openai" in sys.modules)
"""


def first_cell(env: dict[str, str]) -> str:
    """A fresh kernel-like process's first %%agent cell (the model from ``SMOL_MAGIC_MODEL`` in ``env``):
    its answer and whether litellm and openai were imported, as ``ANSWER ... LITELLM ... OPENAI ...``."""
    out = subprocess.run([sys.executable, "-c", FIRST_CELL], capture_output=True, text=True, env=env, timeout=120)
    return out.stdout + out.stderr


MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Paris?"}]


def ask(model: Any, streaming: bool, **options: Any) -> Any:
    """One request of a model to this server: its reply, or its stream's deltas (stop sequence ``<end>``)."""
    async def go():
        if streaming:
            return [d async for d in model.generate_stream(MESSAGES, ["<end>"], **options)]
        return await model.generate(MESSAGES, ["<end>"], **options)

    return asyncio.run(go())


def tool_calls_read(replies: list[Any], streaming: bool) -> list[tuple[list[tuple[str, str]], Any]]:
    """Each reply (or stream of deltas) of ``ask`` as (its tool calls' names and argument texts, its token usage):
    what two routes must read alike."""
    if streaming:
        return [([(c.name, c.arguments) for d in deltas for c in d.tool_calls if c.name or c.arguments],
                 [d.token_usage for d in deltas if d.token_usage]) for deltas in replies]
    return [([(c.name, c.arguments) for c in r.tool_calls], r.token_usage) for r in replies]


# Message lists every direct route must send as litellm does (a provider's tests add their own).
MESSAGE_SHAPES = [
    pytest.param([{"role": "user", "content": "Hi."}], id="user"),
    pytest.param([{"role": "system", "content": "Be brief."}], id="system-only"),
    pytest.param([{"role": "system", "content": "A."}, {"role": "system", "content": "B."},
                  {"role": "user", "content": ""}], id="two-systems"),
    pytest.param([{"role": "user", "content": "a"}, {"role": "assistant", "content": None},
                  {"role": "user", "content": "b"}], id="empty-assistant"),
    pytest.param([{"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"},
                  {"role": "user", "content": "z"}], id="two-assistants"),
]
