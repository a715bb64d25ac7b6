"""Server parameters: the ``mcpServers`` shape (stdio command or URL), checked with clear errors."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

TRANSPORTS = ("stdio", "streamable-http", "sse")


@dataclass
class ServerSpec:
    """One server, checked: how to reach it (stdio command or URL) and under which name."""

    name: str
    transport: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None

    def describe(self) -> str:
        if self.transport == "stdio":
            return " ".join([self.command or "", *self.args])
        return f"{self.url} ({self.transport})"


def server_spec(name: str, params: Any) -> ServerSpec:
    """A ``mcpServers`` entry (or ``StdioServerParameters``) as a ``ServerSpec``; a clear error when malformed."""
    if isinstance(params, ServerSpec):
        return params
    if not isinstance(params, Mapping) and hasattr(params, "command") and hasattr(params, "args"):
        return ServerSpec(name, "stdio", str(params.command), [str(a) for a in params.args or []],
                          dict(params.env) if getattr(params, "env", None) else None,
                          str(params.cwd) if getattr(params, "cwd", None) else None)
    where = f"MCP server {name!r}"
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected a dict like {{'command': 'npx', 'args': [...]}} or "
                         f"{{'url': 'http://...', 'transport': 'streamable-http'}}, got {type(params).__name__}")
    known = {"command", "args", "env", "cwd", "url", "transport", "type", "headers"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; use command/args/env/cwd (stdio) or "
                         "url/transport/headers (HTTP)")
    if ("command" in params) == ("url" in params):
        raise ValueError(f"{where}: give either 'command' (a program to start, stdio) or 'url' (an HTTP server)")
    if "command" in params:
        command, args, env = params["command"], params.get("args", []), params.get("env")
        if not isinstance(command, str) or not command:
            raise ValueError(f"{where}: 'command' must be a program name or path, e.g. 'npx'")
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{where}: 'args' must be a list of strings")
        if env is not None and (not isinstance(env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ValueError(f"{where}: 'env' must be a dict of strings")
        return ServerSpec(name, "stdio", command, list(args), dict(env) if env else None, params.get("cwd"))
    url = params["url"]
    if not isinstance(url, str) or not re.match(r"https?://", url):
        raise ValueError(f"{where}: 'url' must be an http:// or https:// URL, got {url!r}")
    transport = params.get("transport") or params.get("type") or "streamable-http"
    transport = {"http": "streamable-http", "streamable_http": "streamable-http",
                 "streamableHttp": "streamable-http"}.get(transport, transport)
    if transport not in ("streamable-http", "sse"):
        raise ValueError(f"{where}: 'transport' must be 'streamable-http' or 'sse', got {transport!r}")
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(f"{where}: 'headers' must be a dict of strings")
    return ServerSpec(name, transport, url=url, headers=dict(headers) if headers else None)


def server_specs(server_parameters: Any) -> list[ServerSpec]:
    """One server, a list of them, a ``{name: params}`` dict, or ``{"mcpServers": {...}}`` as pasted."""
    params = server_parameters
    if isinstance(params, Mapping) and set(params) == {"mcpServers"}:
        params = params["mcpServers"]
    if isinstance(params, Mapping) and not ({"command", "url"} & set(params)):
        return [server_spec(str(name), p) for name, p in params.items()]
    items = list(params) if isinstance(params, (list, tuple)) else [params]
    specs = []
    for index, p in enumerate(items):
        specs.append(server_spec(_default_name(p, index), p))
    return specs


def _default_name(params: Any, index: int) -> str:
    if isinstance(params, ServerSpec):
        return params.name
    command = params.get("command") if isinstance(params, Mapping) else getattr(params, "command", None)
    url = params.get("url") if isinstance(params, Mapping) else None
    base = ""
    if command:
        args = params.get("args", []) if isinstance(params, Mapping) else getattr(params, "args", [])
        base = (list(args)[-1] if args else str(command)).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    elif url:
        base = re.sub(r"^https?://", "", str(url)).split("/")[0]
    return identifier(base or f"server{index}")


def identifier(name: str) -> str:
    """``name`` made a valid Python identifier: ``read-file`` -> ``read_file``, ``2d`` -> ``_2d``."""
    text = re.sub(r"\W", "_", name) or "_"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) else text
