"""Tools the agent's code can call: ``Tool``, ``@tool`` and ``final_answer``.

A tool is a plain callable in the agent's namespace. Its schema is shown to
the model as a Python signature with a docstring, which is what a code-writing
model reads best. Wrong arguments raise a ``TypeError`` whose message repeats
the signature, so the model can correct itself from the observation.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Callable

# JSON-schema-like type names (as smolagents uses) and the Python types they accept.
_PY_TYPES: dict[str, tuple[type, ...] | None] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "any": None,
    "null": (type(None),),
}
_PY_NAMES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
             "object": "dict", "any": "Any", "null": "None"}
_FROM_PY = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array",
            tuple: "array", dict: "object", type(None): "null"}


class ToolDefinitionError(ValueError):
    """A tool whose schema cannot be built (missing type hints or argument docs)."""


class FinalAnswerSignal(BaseException):
    """Raised by ``final_answer`` to end the action at once.

    A ``BaseException`` so that ``except Exception`` in agent code cannot swallow it.
    """

    def __init__(self, value: Any):
        super().__init__("final_answer called")
        self.value = value


class Tool:
    """A callable with a schema. Subclass it (set the class attributes and ``forward``) or use ``@tool``."""

    name: str = ""
    description: str = ""
    inputs: dict[str, dict[str, Any]] = {}
    output_type: str = "any"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ToolDefinitionError(f"tool name {self.name!r} must be a Python identifier")
        for key, spec in self.inputs.items():
            if "type" not in spec or "description" not in spec:
                raise ToolDefinitionError(f"tool {self.name}: input {key!r} needs a 'type' and a 'description'")
            for t in _types(spec["type"]):
                if t not in _PY_TYPES:
                    raise ToolDefinitionError(f"tool {self.name}: input {key!r} has unknown type {t!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = self._bind(args, kwargs)
        return self.forward(*bound.args, **bound.kwargs)

    def _bind(self, args: tuple, kwargs: dict) -> inspect.BoundArguments:
        try:
            bound = self._call_signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{exc}. Call it as {self.signature()}") from None
        for key, value in bound.arguments.items():
            spec = self.inputs.get(key)
            if spec is None or (value is None and spec.get("nullable")):
                continue
            accepted = [t for name in _types(spec["type"]) if (t := _PY_TYPES.get(name)) is not None]
            if len(accepted) == len(_types(spec["type"])) and not any(_isinstance(value, t) for t in accepted):
                raise TypeError(
                    f"{self.name}() argument {key!r} must be {_py_hint(spec['type'])}, got {type(value).__name__}. "
                    f"Call it as {self.signature()}"
                )
        return bound

    def _call_signature(self) -> inspect.Signature:
        return inspect.signature(self.forward)

    def signature(self) -> str:
        """The tool as a Python signature, which code-writing models read best."""
        params = []
        for key, spec in self.inputs.items():
            hint = _py_hint(spec["type"])
            default = " = None" if spec.get("nullable") else ""
            params.append(f"{key}: {hint}{default}")
        return f"{self.name}({', '.join(params)}) -> {_py_hint(self.output_type)}"

    def to_prompt(self) -> str:
        """The tool as the model sees it: a signature and a docstring."""
        args = "\n".join(f"        {k}: {v['description']}" for k, v in self.inputs.items())
        doc = self.description.strip()
        if args:
            doc += f"\n\n    Args:\n{args}"
        return f'def {self.signature()}:\n    """{doc}\n    """'

    def __repr__(self) -> str:
        return f"<Tool {self.signature()}>"


def _py_hint(spec_type: str | list[str]) -> str:
    return " | ".join(_PY_NAMES.get(t, t) for t in _types(spec_type))


def _types(spec_type: str | list[str]) -> list[str]:
    return list(spec_type) if isinstance(spec_type, (list, tuple)) else [spec_type]


def _isinstance(value: Any, types: tuple[type, ...]) -> bool:
    if bool in types:
        return isinstance(value, bool)
    # True is an int in Python, but not an acceptable "integer"/"number" argument.
    return isinstance(value, types) and not isinstance(value, bool)


def _schema_type(hint: Any) -> str | list[str]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_schema_type(a) for a in typing.get_args(hint)]
        flat = [n for name in names for n in _types(name)]
        return flat[0] if len(flat) == 1 else flat
    if origin is not None:
        hint = origin
    if hint is Any or hint is inspect.Parameter.empty:
        return "any"
    return _FROM_PY.get(hint, "any")


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$", re.M)
_SECTION = re.compile(r"^\s*(Returns|Return|Raises|Yields|Examples?|Notes?)\s*:\s*$", re.M)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {arg: description})."""
    doc = inspect.cleandoc(doc or "")
    header = _ARGS_HEADER.search(doc)
    if not header:
        return doc.strip(), {}
    description = doc[: header.start()].strip()
    rest = doc[header.end():]
    end = _SECTION.search(rest)
    block = rest[: end.start()] if end else rest
    args: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"^\s*(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
        if m and (not current or len(line) - len(line.lstrip()) <= _indent_of(block)):
            current = m.group(1)
            args[current] = m.group(3).strip()
        elif current and line.strip():
            args[current] = (args[current] + " " + line.strip()).strip()
    return description, args


def _indent_of(block: str) -> int:
    indents = [len(line) - len(line.lstrip()) for line in block.splitlines() if line.strip()]
    return min(indents) if indents else 0


class _FunctionTool(Tool):
    def __init__(self, fn: Callable[..., Any]):
        self._fn = fn
        self.name = fn.__name__
        description, arg_docs = _parse_docstring(fn.__doc__ or "")
        if not description:
            raise ToolDefinitionError(f"@tool {self.name}: add a docstring that says what the tool does")
        hints = typing.get_type_hints(fn)
        inputs: dict[str, dict[str, Any]] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(f"@tool {self.name}: *args/**kwargs are not supported; name each parameter")
            if pname not in hints:
                raise ToolDefinitionError(f"@tool {self.name}: parameter {pname!r} needs a type hint")
            if pname not in arg_docs:
                raise ToolDefinitionError(
                    f"@tool {self.name}: parameter {pname!r} is not documented; add it under 'Args:' in the docstring"
                )
            spec: dict[str, Any] = {"type": _schema_type(hints[pname]), "description": arg_docs[pname]}
            if param.default is not inspect.Parameter.empty:
                spec["nullable"] = True
            inputs[pname] = spec
        self.description = description
        self.inputs = inputs
        self.output_type = _schema_type(hints.get("return", Any)) if "return" in hints else "any"
        self.__doc__ = fn.__doc__
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def _call_signature(self) -> inspect.Signature:
        return inspect.signature(self._fn)


def tool(fn: Callable[..., Any]) -> Tool:
    """Make a ``Tool`` from a typed function with a Google-style docstring.

    Refuses (``ToolDefinitionError``) a parameter without a type hint or without
    a line under ``Args:``: the model can only use what it is told about.
    """
    return _FunctionTool(fn)


class FinalAnswerTool(Tool):
    name = "final_answer"
    description = "Ends the task and returns `answer` to the user, as the Python object itself."
    inputs = {"answer": {"type": "any", "description": "the final answer: any Python object"}}
    output_type = "any"

    def forward(self, answer: Any) -> Any:
        raise FinalAnswerSignal(answer)


final_answer = FinalAnswerTool()


def render_tools(tools: list[Tool]) -> str:
    return "\n\n".join(t.to_prompt() for t in tools)
