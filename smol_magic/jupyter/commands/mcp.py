"""``%agent mcp``: the notebook's MCP servers: add one, list them (status and tools), close them.

Servers come from ``AgentMagics.mcp_servers`` (the ``mcpServers`` shape of Claude Desktop,
Cursor and VS Code) and from ``%agent mcp add``; a ``%%agent --mcp NAME`` cell uses them.
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError

HELP = ("MCP servers for --mcp: add NAME -- command args... | add NAME URL [--transport sse] | list | "
        "close [NAME]")
USAGE = ("%agent mcp add NAME -- command args... | %agent mcp add NAME URL [--transport sse] | %agent mcp list | "
         "%agent mcp close [NAME]")


class _Parser:
    """Words after ``mcp``: a command line after ``--`` must reach the server untouched, so no argparse."""

    def parse_args(self, words: list[str]) -> argparse.Namespace:
        if not words or words[0] not in ("add", "list", "close"):
            raise UsageError(f"%agent mcp: say what to do: {USAGE}")
        action, rest = words[0], words[1:]
        args = argparse.Namespace(action=action, name=None, params=None)
        if action == "list":
            if rest:
                raise UsageError(f"%agent mcp list takes no arguments, got {' '.join(rest)!r}")
            return args
        if action == "close":
            if len(rest) > 1:
                raise UsageError("%agent mcp close [NAME]: one server, or none for all")
            args.name = rest[0] if rest else None
            return args
        if not rest or rest[0].startswith("-"):
            raise UsageError(f"%agent mcp add needs a NAME first: {USAGE}")
        args.name, rest = rest[0], rest[1:]
        if rest[:1] == ["--"]:
            if len(rest) < 2:
                raise UsageError("%agent mcp add NAME -- command args...: the command is missing after --")
            args.params = {"command": rest[1], "args": rest[2:]}
        elif rest and rest[0].startswith(("http://", "https://")):
            args.params = {"url": rest[0]}
            extra = rest[1:]
            if extra[:1] == ["--transport"] and len(extra) == 2:
                args.params["transport"] = extra[1]
            elif extra:
                raise UsageError(f"%agent mcp add NAME URL [--transport sse|streamable-http]: unexpected "
                                 f"{' '.join(extra)!r}")
        else:
            raise UsageError(f"%agent mcp add {args.name}: give a URL, or -- and the command that starts the "
                             f"server (e.g. %agent mcp add fs -- npx -y @modelcontextprotocol/server-filesystem .)")
        return args


def parser() -> _Parser:
    return _Parser()


def run(magics: Any, args: argparse.Namespace) -> None:
    if args.action == "add":
        try:
            spec = magics.add_mcp_server(args.name, args.params)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"MCP server {args.name!r} added ({spec.describe()}); it starts on first use: "
              f"%%agent --mcp {args.name}")
    elif args.action == "close":
        registry = magics.mcp_registry()
        if args.name is not None and args.name not in registry.specs:
            raise UsageError(f"no MCP server named {args.name!r}; see %agent mcp list")
        closed = registry.close(args.name)
        print(f"closed: {', '.join(closed)}" if closed else "no MCP server was running")
    else:
        rows = magics.mcp_registry().status()
        if not rows:
            print("no MCP servers: %agent mcp add NAME -- command args..., or "
                  "%config AgentMagics.mcp_servers = {'NAME': {'command': ..., 'args': [...]}}")
            return
        for name, spec, state, tools in rows:
            listed = f" · tools: {', '.join(tools)}" if tools else ""
            print(f"{name}: {state} · {spec.describe()}{listed}")
