"""Other frameworks' tools and models, taken as they are: smolagents and LangChain.

Nothing here imports smolagents or langchain: their objects are recognised by
shape (duck typing), so ``import smol_magic`` stays free of both and the extras
stay optional. The agent calls ``as_tools`` and ``as_model`` on what it is given.

- a smolagents ``Tool`` (a subclass or ``@smolagents.tool``) keeps its schema
  (``name``, ``description``, ``inputs``, ``output_type``) and runs through its
  own ``__call__``, so its ``setup()`` and ``forward`` are used as they are;
- a smolagents ``ToolCollection`` (anything with a ``.tools`` list) is unpacked;
- a LangChain tool (``BaseTool``: ``name``, ``args``, ``invoke``) becomes a Tool
  named after it, called with keywords;
- a synchronous model (smolagents' ``LiteLLMModel``, ``OpenAIServerModel``,
  ``TransformersModel``, ...: ``generate(messages, stop_sequences=...)`` returning
  a ``ChatMessage``) runs in a worker thread, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, AsyncIterator, Iterable

from .models import BaseModel, Messages, ModelError, ModelResponse, StreamDelta, TokenUsage, _describe
from .threads import in_thread, iterate_in_thread
from .tools import _PY_TYPES, Tool, ToolDefinitionError, _schema_type


# -- tools -----------------------------------------------------------------------


def as_tools(items: Iterable[Any] | None) -> list[Tool]:
    """Our tools, with smolagents / LangChain tools and tool collections converted on the way in."""
    tools: list[Tool] = []
    for item in items or []:
        if isinstance(item, Tool):
            tools.append(item)
        elif _is_tool_collection(item):
            tools.extend(as_tools(item.tools))
        elif _is_smolagents_tool(item):
            tools.append(SmolagentsTool(item))
        elif _is_langchain_tool(item):
            tools.append(LangChainTool(item))
        else:
            raise TypeError(
                f"{item!r} is not a tool: pass a smol_magic Tool (or a function decorated with @tool), "
                "a smolagents Tool or ToolCollection, or a LangChain tool"
            )
    return tools


def _is_smolagents_tool(obj: Any) -> bool:
    return (callable(getattr(obj, "forward", None)) and isinstance(getattr(obj, "inputs", None), dict)
            and isinstance(getattr(obj, "name", None), str) and hasattr(obj, "output_type"))


def _is_tool_collection(obj: Any) -> bool:
    return not callable(obj) and isinstance(getattr(obj, "tools", None), (list, tuple))


def _is_langchain_tool(obj: Any) -> bool:
    return (callable(getattr(obj, "invoke", None)) and isinstance(getattr(obj, "name", None), str)
            and isinstance(getattr(obj, "args", None), dict))


def _optional(spec: dict[str, Any]) -> bool:
    return "default" in spec or bool(spec.get("nullable"))


def _required_first(inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The inputs with the optional ones last, as a Python signature must list them (calls go by keyword)."""
    return {k: v for k, v in inputs.items() if not _optional(v)} | {k: v for k, v in inputs.items() if _optional(v)}


def _signature(inputs: dict[str, dict[str, Any]]) -> inspect.Signature:
    """Keyword-or-positional parameters in the schema's order; optional ones (nullable, defaulted) last."""
    required, optional = [], []
    for key, spec in inputs.items():
        if _optional(spec):
            default = spec.get("default")
            optional.append(inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
        else:
            required.append(inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return inspect.Signature(required + optional)


def _our_inputs(inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Another framework's input specs as ours: types we do not check ("image", "audio") are shown, not checked."""
    ours = {}
    for key, spec in inputs.items():
        spec = dict(spec)
        spec.setdefault("description", "")
        kind = spec.get("type", "any")
        names = list(kind) if isinstance(kind, (list, tuple)) else [kind]
        unknown = [t for t in names if t not in _PY_TYPES]
        if unknown:
            spec.setdefault("annotation", " | ".join(str(t) for t in names))
            spec["type"] = "any"
        ours[key] = spec
    return _required_first(ours)


class SmolagentsTool(Tool):
    """A smolagents ``Tool`` as ours: its schema shown to the model, its own ``__call__`` run."""

    def __init__(self, smol_tool: Any):
        self.wrapped = smol_tool
        self.name = smol_tool.name
        self.description = smol_tool.description or ""
        self.inputs = _our_inputs(smol_tool.inputs)
        output = smol_tool.output_type
        self.output_type = output if output in _PY_TYPES else "any"
        if output not in _PY_TYPES:
            self.output_annotation = str(output)
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # By keyword: our signature puts optional inputs last, which may not be the order of theirs.
        arguments = dict(zip(self._call_signature().parameters, args), **kwargs)
        return self.wrapped(**arguments)  # runs setup() once, then forward, as smolagents does

    def _call_signature(self) -> inspect.Signature:
        return _signature(self.inputs)


class LangChainTool(Tool):
    """A LangChain tool as ours: named after it, its args schema shown, called with keywords."""

    def __init__(self, lc_tool: Any):
        self.wrapped = lc_tool
        name = str(lc_tool.name)
        self.name = name if name.isidentifier() else "_".join(name.replace("-", " ").split())
        if not self.name.isidentifier():
            raise ToolDefinitionError(f"LangChain tool {name!r}: its name is not a Python identifier; rename it")
        # A plain @tool keeps the whole docstring as its description: its Args go to the arguments.
        import docstring_parser

        doc = docstring_parser.parse(lc_tool.description or "", style=docstring_parser.DocstringStyle.GOOGLE)
        arg_docs = {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}
        self.description = ("\n\n".join(p for p in (doc.short_description, doc.long_description) if p).strip()
                            or (lc_tool.description or "").strip())
        schema = _args_schema(lc_tool)
        required = set(schema.get("required", []))
        inputs: dict[str, dict[str, Any]] = {}
        for key, prop in (schema.get("properties") or {}).items():
            spec: dict[str, Any] = {"type": _schema_type(prop), "schema": prop,
                                    "description": prop.get("description") or arg_docs.get(key, "")}
            if key not in required:
                spec["default"] = prop.get("default")
                if spec["default"] is None:
                    spec["nullable"] = True
            inputs[key] = spec
        self.inputs = _required_first(inputs)
        self.output_type = "any"
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        arguments = dict(zip(self._call_signature().parameters, args), **kwargs)
        return self.wrapped.invoke(arguments)

    def _call_signature(self) -> inspect.Signature:
        return _signature(self.inputs)


def _args_schema(lc_tool: Any) -> dict[str, Any]:
    """The tool's arguments as a JSON schema (``tool_call_schema`` leaves out injected arguments)."""
    for source in ("tool_call_schema", "args_schema"):
        model = getattr(lc_tool, source, None)
        if model is None:
            continue
        if isinstance(model, dict):
            return model
        for method in ("model_json_schema", "schema"):
            fn = getattr(model, method, None)
            if callable(fn):
                try:
                    return fn()
                except Exception:  # noqa: BLE001 - try the next form
                    continue
    return {"type": "object", "properties": dict(lc_tool.args)}


def from_langchain(lc_tool: Any) -> Tool:
    """``Tool.from_langchain``: refuse early, with a clear message, what is not a LangChain tool."""
    if not _is_langchain_tool(lc_tool):
        raise TypeError(f"{lc_tool!r} is not a LangChain tool (it needs .name, .args and .invoke)")
    return LangChainTool(lc_tool)


# -- models ----------------------------------------------------------------------


def as_model(model: Any) -> Any:
    """Our async Model, with a synchronous model (smolagents') wrapped to run off the event loop."""
    if model is None or isinstance(model, BaseModel):
        return model
    generate = getattr(model, "generate", None)
    if callable(generate) and not inspect.iscoroutinefunction(generate):
        return SyncModel(model)
    return model


def _smol_messages(messages: Messages) -> list[dict[str, Any]]:
    """Our plain-text messages in the form smolagents' models take (content as a list of text parts)."""
    known = {"system", "user", "assistant"}
    return [{"role": m["role"] if m["role"] in known else "user",
             "content": [{"type": "text", "text": m.get("content") or ""}]} for m in messages]


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _their_usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    return TokenUsage(int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0))


class SyncModel(BaseModel):
    """A synchronous model (smolagents' ``generate(messages, stop_sequences=...)``) behind our async protocol.

    ``generate`` runs in a worker thread, bounded by ``timeout``; ``generate_stream``
    pumps the model's own ``generate_stream`` from a thread when it has one. The
    model keeps its own retries; what finally fails becomes a one-line ModelError.
    """

    def __init__(self, model: Any, timeout: float = 600.0):
        self.wrapped = model
        super().__init__(str(getattr(model, "model_id", None) or type(model).__name__), max_retries=0,
                         timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        if name in ("api_base", "base_url", "provider"):  # provenance (describe_model) shows where it ran
            return getattr(self.__dict__["wrapped"], name, None)
        raise AttributeError(name)

    async def generate(self, messages: Messages, stop_sequences: list[str] | None = None) -> ModelResponse:
        call = in_thread(lambda: self.wrapped.generate(_smol_messages(messages), stop_sequences=stop_sequences))
        try:
            reply = await asyncio.wait_for(call, self.timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ModelError(self._timed_out(1)) from exc
        except Exception as exc:
            raise ModelError(f"{self.model_id}: {_describe(exc)}") from exc
        content = _text(getattr(reply, "content", reply))
        return ModelResponse(content, _their_usage(getattr(reply, "token_usage", None)) or TokenUsage())

    async def generate_stream(
        self, messages: Messages, stop_sequences: list[str] | None = None
    ) -> AsyncIterator[StreamDelta]:
        if not callable(getattr(self.wrapped, "generate_stream", None)):
            async for delta in super().generate_stream(messages, stop_sequences):
                yield delta
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        chunks = iterate_in_thread(
            lambda stop: self.wrapped.generate_stream(_smol_messages(messages), stop_sequences=stop_sequences),
            deadline, lambda: ModelError(self._timed_out(1)))
        total: TokenUsage | None = None
        try:
            async for chunk in chunks:
                text = _text(getattr(chunk, "content", None))
                usage = _their_usage(getattr(chunk, "token_usage", None))
                if usage is not None:  # smolagents' deltas carry increments; ours the running total
                    total = usage if total is None else total + usage
                if text or usage:
                    yield StreamDelta(text, total if usage is not None else None)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.model_id}: {_describe(exc)}") from exc
        finally:
            await chunks.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.wrapped!r})"
