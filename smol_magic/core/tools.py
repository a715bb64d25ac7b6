"""Tools the agent's code can call: ``Tool``, ``@tool`` and ``final_answer``.

A tool is a plain callable in the agent's namespace. Its schema is shown to
the model as a Python signature with a docstring, which is what a code-writing
model reads best. ``@tool`` builds the schema with pydantic (``TypeAdapter``'s
JSON schema of each type hint) and ``docstring_parser``; calls are validated
against it, and wrong arguments raise a ``TypeError`` whose message repeats the
signature, so the model can correct itself from the observation.
"""

from __future__ import annotations

import inspect
import typing
from typing import TYPE_CHECKING, Any, Callable

from . import telemetry

if TYPE_CHECKING:
    from pydantic import TypeAdapter

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
        with telemetry.tool_call(self.name, kwargs or args) as span:  # a span inside a traced run's step
            bound = self._bind(args, kwargs)
            return span.returned(self.forward(*bound.args, **bound.kwargs))

    def _bind(self, args: tuple, kwargs: dict) -> inspect.BoundArguments:
        try:
            bound = self._call_signature().bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{exc}. Call it as {self.signature()}") from None
        for key, value in bound.arguments.items():
            problem = self._check_argument(key, value)
            if problem:
                raise TypeError(f"{self.name}() argument {key!r} {problem}. Call it as {self.signature()}")
        return bound

    def _check_argument(self, key: str, value: Any) -> str | None:
        """Why ``value`` does not fit input ``key`` (None when it fits)."""
        spec = self.inputs.get(key)
        if spec is None or (value is None and spec.get("nullable")):
            return None
        accepted = [t for name in _types(spec["type"]) if (t := _PY_TYPES.get(name)) is not None]
        if len(accepted) == len(_types(spec["type"])) and not any(_isinstance(value, t) for t in accepted):
            return f"must be {_py_hint(spec['type'])}, got {type(value).__name__}"
        return None

    def _call_signature(self) -> inspect.Signature:
        return inspect.signature(self.forward)

    def signature(self) -> str:
        """The tool as a Python signature, which code-writing models read best."""
        params = []
        for key, spec in self.inputs.items():
            hint = spec.get("annotation") or _py_hint(spec["type"])
            if "default" in spec:
                default = f" = {spec['default']!r}"
            else:
                default = " = None" if spec.get("nullable") else ""
            params.append(f"{key}: {hint}{default}")
        returns = getattr(self, "output_annotation", None) or _py_hint(self.output_type)
        return f"{self.name}({', '.join(params)}) -> {returns}"

    def to_prompt(self) -> str:
        """The tool as the model sees it: a signature and a docstring."""
        args = "\n".join(f"        {k}: {v['description']}" for k, v in self.inputs.items())
        doc = self.description.strip()
        if args:
            doc += f"\n\n    Args:\n{args}"
        return f'def {self.signature()}:\n    """{doc}\n    """'

    def to_tool_schema(self) -> dict[str, Any]:
        """The tool as an OpenAI-style function schema, for models with native tool calling.

        A ``@tool``'s parameters keep pydantic's JSON schema of their type hints (its ``$defs``
        gathered at the top, where its ``$ref``s point); a ``Tool`` subclass's come from ``inputs``.
        """
        properties: dict[str, Any] = {}
        required: list[str] = []
        defs: dict[str, Any] = {}
        for key, spec in self.inputs.items():
            schema = dict(spec.get("schema") or _type_schema(spec["type"]))
            defs.update(schema.pop("$defs", {}))
            schema.pop("title", None)
            schema["description"] = spec["description"]
            properties[key] = schema
            if "default" not in spec and not spec.get("nullable"):
                required.append(key)
        parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if defs:
            parameters["$defs"] = defs
        return {"type": "function",
                "function": {"name": self.name, "description": self.description.strip(), "parameters": parameters}}

    def approval_reason(self) -> str | None:
        """Why calling this tool needs a person's approval (None: it does not); the guard asks with it."""
        return None

    def __repr__(self) -> str:
        return f"<Tool {self.signature()}>"


def _type_schema(spec_type: str | list[str]) -> dict[str, Any]:
    """A smolagents-style type name (or list of them) as JSON schema; ``any`` accepts anything."""
    names = _types(spec_type)
    if "any" in names:
        return {}
    return {"type": names[0] if len(names) == 1 else names}


def _py_hint(spec_type: str | list[str]) -> str:
    return " | ".join(_PY_NAMES.get(t, t) for t in _types(spec_type))


def _types(spec_type: str | list[str]) -> list[str]:
    return list(spec_type) if isinstance(spec_type, (list, tuple)) else [spec_type]


def _isinstance(value: Any, types: tuple[type, ...]) -> bool:
    if bool in types:
        return isinstance(value, bool)
    # True is an int in Python, but not an acceptable "integer"/"number" argument.
    return isinstance(value, types) and not isinstance(value, bool)


_FROM_JSON = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
              "array": "array", "object": "object", "null": "null"}


def _adapter(hint: Any) -> "TypeAdapter":
    """pydantic's view of a type hint; classes pydantic does not know are checked with ``isinstance``.

    pydantic is imported on the first ``@tool``, not with the package: ``%load_ext`` stays fast.
    """
    from pydantic import ConfigDict, TypeAdapter
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        return TypeAdapter(hint)
    except (PydanticSchemaGenerationError, PydanticUserError):
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint (``{}``, anything, when it has none: a DataFrame, a model)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    try:
        return _adapter(hint).json_schema()
    except Exception:  # noqa: BLE001 - no JSON form (an arbitrary class): shown by its annotation only
        return {}


def _schema_type(schema: dict[str, Any]) -> str | list[str]:
    """The smolagents-style type name(s) of a JSON schema."""
    if "type" in schema:
        return _FROM_JSON.get(schema["type"], "any")
    if "enum" in schema:  # Literal of mixed types
        names = list(dict.fromkeys(_FROM_PY.get(type(v), "any") for v in schema["enum"]))
        return names[0] if len(names) == 1 else names
    if "anyOf" in schema:
        flat = [n for option in schema["anyOf"] for n in _types(_schema_type(option))]
        flat = list(dict.fromkeys(flat))
        return "any" if "any" in flat else flat[0] if len(flat) == 1 else flat
    return "any"


def _annotation(hint: Any) -> str:
    """A type hint as the model reads it in the signature: ``list[int]``, ``Literal['EUR', 'USD']``."""
    if hint is inspect.Parameter.empty:
        return "Any"
    return inspect.formatannotation(hint).replace("typing.", "")


class _FunctionTool(Tool):
    def __init__(self, fn: Callable[..., Any]):
        self._fn = fn
        self.name = fn.__name__
        import docstring_parser

        # Google style (smolagents' convention), numpy style (the scientific stack's) or reST ``:param x:``
        doc = docstring_parser.parse(fn.__doc__ or "", style=docstring_parser.DocstringStyle.AUTO)
        description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p).strip()
        arg_docs = {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}
        if not description:
            raise ToolDefinitionError(f"@tool {self.name}: add a docstring that says what the tool does")
        hints = typing.get_type_hints(fn, include_extras=True)
        inputs: dict[str, dict[str, Any]] = {}
        self._adapters: dict[str, "TypeAdapter"] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(f"@tool {self.name}: *args/**kwargs are not supported; name each parameter")
            if pname not in hints:
                raise ToolDefinitionError(f"@tool {self.name}: parameter {pname!r} needs a type hint")
            if not arg_docs.get(pname):
                raise ToolDefinitionError(
                    f"@tool {self.name}: parameter {pname!r} is not documented; add it under 'Args:' in the docstring "
                    f"(or a numpy-style 'Parameters' section, or ':param {pname}:')"
                )
            schema = json_schema(hints[pname])
            spec: dict[str, Any] = {"type": _schema_type(schema), "description": arg_docs[pname],
                                    "annotation": _annotation(hints[pname]), "schema": schema}
            if param.default is not inspect.Parameter.empty:
                spec["default"] = param.default
            if "null" in _types(spec["type"]):
                spec["nullable"] = True
            inputs[pname] = spec
            if hints[pname] is not Any:
                self._adapters[pname] = _adapter(hints[pname])
        self.description = description
        self.inputs = inputs
        returns = hints.get("return", Any)
        self.output_type = _schema_type(json_schema(returns)) if "return" in hints else "any"
        self.output_annotation = _annotation(returns) if "return" in hints else "Any"
        self.__doc__ = fn.__doc__
        super().__init__()

    def _check_argument(self, key: str, value: Any) -> str | None:
        """Validated against the type hint's schema, strictly: ``"3"`` is not an ``int``, ``True`` neither."""
        from pydantic import ValidationError

        adapter = self._adapters.get(key)
        if adapter is None:
            return None
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            spec = self.inputs[key]
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            said = first["msg"] if where or not first["msg"].startswith("Input should be a valid") else ""
            detail = f" ({'item ' + where + ': ' if where else ''}{said})" if said else ""
            return f"must be {spec['annotation']}, got {type(value).__name__}{detail}"
        return None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def _call_signature(self) -> inspect.Signature:
        return inspect.signature(self._fn)


def tool(fn: Callable[..., Any]) -> Tool:
    """Make a ``Tool`` from a typed function with a docstring: Google style (``Args:``), numpy style
    (``Parameters``) or reST (``:param x:``).

    Refuses (``ToolDefinitionError``) a parameter without a type hint or without
    a description in the docstring: the model can only use what it is told about.
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
