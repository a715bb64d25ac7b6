"""MCP tools as our ``Tool`` objects: schemas as Python signatures, results as Python values."""

from __future__ import annotations

import base64
from typing import Any

from ..interop import _required_first, _signature
from ..tools import Tool, _schema_type
from .connection import MCPError, ServerConnection
from .params import identifier

APPROVAL_MODES = ("every", "risky", "never")


# -- results -----------------------------------------------------------------------


class MCPImage:
    """An image an MCP tool returned: shown by IPython (the trace, a cell), its bytes in ``data``."""

    def __init__(self, data: bytes, mime_type: str):
        self.data, self.mime_type = data, mime_type

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {self.mime_type: base64.b64encode(self.data).decode("ascii"),
                "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<MCPImage {self.mime_type}, {len(self.data):,} bytes>"


_JSON_HINTS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
               "object": "dict", "null": "None"}


def _annotation(prop: dict[str, Any]) -> str:
    """A JSON schema as the Python hint the model reads: ``list[str]``, ``Literal['a', 'b']``, ``int | None``."""
    if "enum" in prop and isinstance(prop["enum"], list):
        return f"Literal[{', '.join(repr(v) for v in prop['enum'])}]"
    options = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(options, list) and options:
        return " | ".join(dict.fromkeys(_annotation(o) for o in options if isinstance(o, dict)))
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1] or "Any"
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_JSON_HINTS.get(k, "Any") for k in kind)
    if kind == "array" and isinstance(prop.get("items"), dict) and prop["items"]:
        return f"list[{_annotation(prop['items'])}]"
    return _JSON_HINTS.get(kind, "Any")


def _wrapped(schema: dict[str, Any] | None) -> bool:
    """Is this the schema the SDK makes for a function's non-dict return value, ``{"result": ...}``?"""
    props = (schema or {}).get("properties") or {}
    return list(props) == ["result"] and str((schema or {}).get("title", "")).endswith("Output")


def _output_type(schema: dict[str, Any] | None) -> str | list[str]:
    if not schema:
        return "any"
    if _wrapped(schema):
        return _schema_type(schema["properties"]["result"])
    return "object"


def convert_result(result: Any, server: str, tool: str, output_schema: dict[str, Any] | None) -> Any:
    """A ``CallToolResult`` as Python: structured content as dict/list, text as str, images as ``MCPImage``."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(item.text)
        elif kind == "image":
            parts.append(MCPImage(base64.b64decode(item.data), item.mime_type))
        elif kind == "resource":
            resource = item.resource
            parts.append(getattr(resource, "text", None) or f"<resource {resource.uri}>")
        else:
            parts.append(f"<{kind} content>")
    if result.is_error:
        text = " ".join(" ".join(p.split()) for p in parts if isinstance(p, str)) or "no details given"
        raise MCPError(f"MCP tool {tool!r} of server {server!r} returned an error: {text[:500]}")
    structured = result.structured_content
    if structured is not None:
        if isinstance(structured, dict) and list(structured) == ["result"] and _wrapped(output_schema):
            return structured["result"]  # FastMCP wraps a function's non-dict return value as {"result": ...}
        return structured
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, str) for p in parts):
        return "\n".join(parts)
    return parts


# -- tools -------------------------------------------------------------------------


class MCPTool(Tool):
    """An MCP server's tool as ours: its JSON schema as a signature, each call a blocking call to the server."""

    def __init__(self, connection: ServerConnection, mcp_tool: Any, name: str | None = None,
                 timeout: float = 60.0, approval: str = "risky", renamed_because: str | None = None):
        self.connection = connection
        self.server = connection.name
        self.tool_name = mcp_tool.name
        self.name = name or identifier(mcp_tool.name)
        self.timeout = timeout
        self.approval = approval
        annotations = mcp_tool.annotations
        self.annotations = annotations.model_dump(exclude_none=True) if annotations is not None else {}
        self.output_schema = mcp_tool.output_schema
        origin = f"(MCP tool {self.tool_name!r} of server {self.server!r}"
        origin += f"; named {self.name} because {renamed_because})" if renamed_because else ")"
        self.description = f"{(mcp_tool.description or '').strip()}\n\n{origin}".strip()
        schema = mcp_tool.input_schema or {}
        defs = schema.get("$defs") or {}
        required = set(schema.get("required") or [])
        inputs: dict[str, dict[str, Any]] = {}
        self.arg_names: dict[str, str] = {}  # our parameter name -> the schema's property name
        for key, prop in (schema.get("properties") or {}).items():
            pname = identifier(key)
            self.arg_names[pname] = key
            prop = prop if isinstance(prop, dict) else {}
            spec: dict[str, Any] = {"type": _schema_type(prop), "annotation": _annotation(prop),
                                    "schema": {**prop, "$defs": defs} if defs and "$ref" in str(prop) else prop,
                                    "description": " ".join(str(prop.get("description") or "").split())}
            if key not in required:
                if "default" in prop:
                    spec["default"] = prop["default"]
                if prop.get("default") is None:
                    spec["nullable"] = True
            inputs[pname] = spec
        self.inputs = _required_first(inputs)
        self.output_type = _output_type(self.output_schema)
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        arguments = dict(zip(self._call_signature().parameters, args), **kwargs)
        sent = {self.arg_names.get(k, k): v for k, v in arguments.items()
                if not (v is None and self.inputs.get(k, {}).get("nullable") and "default" not in self.inputs[k])}
        result = self.connection.call(self.tool_name, sent, self.timeout)
        return convert_result(result, self.server, self.tool_name, self.output_schema)

    def _call_signature(self) -> Any:
        return _signature(self.inputs)

    def risky(self) -> list[str]:
        """What the tool's annotations say makes it risky (an unannotated tool is, as the MCP spec assumes)."""
        hints = self.annotations
        said = [word for key, word in (("destructive_hint", "destructive"), ("open_world_hint", "open-world"))
                if hints.get(key) is True]
        if said:
            return said
        if hints.get("read_only_hint") is True:
            return []
        if hints.get("destructive_hint") is False and hints.get("open_world_hint") is False:
            return []
        return ["not annotated as read-only"]

    def approval_reason(self) -> str | None:
        """Why a call to this tool needs a person's approval (``approval``: every, risky, never)."""
        if self.approval == "never":
            return None
        where = f"calls {self.tool_name!r} of the MCP server {self.server!r}"
        if self.approval == "every":
            return f"{where} (every MCP tool call needs approval)"
        why = self.risky()
        return f"{where}, which its annotations say is {' and '.join(why)}" if why else None


def make_tools(connections: list[ServerConnection], timeout: float = 60.0, approval: str = "risky") -> list[MCPTool]:
    """Tools of connected servers; a name two servers share becomes ``<server>_<tool>`` for both."""
    if approval not in APPROVAL_MODES:
        raise ValueError(f"MCP approval must be one of {', '.join(APPROVAL_MODES)}, got {approval!r}")
    owners: dict[str, list[str]] = {}
    for conn in connections:
        for t in conn.tools:
            owners.setdefault(identifier(t.name), []).append(conn.name)
    tools = []
    for conn in connections:
        for t in conn.tools:
            base = identifier(t.name)
            shared = owners[base]
            if len(shared) > 1:
                others = ", ".join(repr(s) for s in shared if s != conn.name) or "another server"
                tools.append(MCPTool(conn, t, identifier(f"{conn.name}_{t.name}"), timeout, approval,
                                     f"the server{'s' if len(shared) > 2 else ''} {others} also "
                                     f"{'have' if len(shared) > 2 else 'has'} a tool {t.name!r}"))
            else:
                tools.append(MCPTool(conn, t, base, timeout, approval))
    return tools
