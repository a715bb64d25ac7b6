"""``%agent serve``: this kernel as an MCP server, for outside agents, under the notebook's guard and approval."""

from __future__ import annotations

import asyncio
from typing import Any

from IPython.core.error import UsageError

from ...core.approval import APPROVE_MODES
from .base import Parser

HELP = ("serve [--port P] [--token T] [--approve MODE] [--protect NAMES] | serve stop: let outside agents (MCP "
        "clients) work in this notebook, behind its guard and approval")


def parser():
    p = Parser("serve")
    p.add_argument("action", nargs="?", choices=["stop"], help="stop: end the server")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--token", help="the bearer token clients must send (default: a random one)")
    p.add_argument("--approve", choices=list(APPROVE_MODES),
                   help="which outside actions wait for a click (default: AgentMagics.approve)")
    p.add_argument("--protect", metavar="NAMES",
                   help="comma-separated variables outside agents may not change without a click")
    p.add_argument("--approval-timeout", type=float, metavar="S",
                   help="seconds an action waits for a click before it is refused (default: 300)")
    return p


def run(magics: Any, args: Any) -> None:
    from ..mcp_server import APPROVAL_SECONDS, Serving, free_socket, new_token

    serving = getattr(magics, "serving", None)
    if args.action == "stop":
        if serving is None:
            print("smol-magic: not serving (start with %agent serve)")
            return
        serving.stop()
        print(f"smol-magic: stopped serving {serving.url}")
        return
    if serving is not None:
        raise UsageError(f"already serving at {serving.url}; %agent serve stop ends it")
    if getattr(magics.shell, "kernel", None) is None:
        raise UsageError("%agent serve runs inside a Jupyter kernel (a notebook), not in a terminal")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise UsageError("%agent serve needs the kernel's event loop, which is not running here") from None
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535 (or leave it out for a free port)")
    if args.token is not None and len(args.token) < 16:
        raise UsageError("--token must have at least 16 characters (or leave it out for a random one)")
    if args.approval_timeout is not None and args.approval_timeout <= 0:
        raise UsageError("--approval-timeout must be a positive number of seconds")
    protect = [name.strip() for name in (args.protect or "").split(",") if name.strip()]
    magics._check_protected(protect)
    try:
        sock = free_socket(args.port)
    except OSError as exc:
        raise UsageError(f"--port {args.port}: cannot listen there ({exc.strerror or exc}); choose another port "
                         "or leave --port out for a free one") from None
    serving = Serving(magics, loop, sock.getsockname()[1], args.token or new_token(), set(protect),
                      args.approval_timeout or APPROVAL_SECONDS)
    try:
        serving.start(sock, args.approve or magics.approve, magics._cell_id())
    except RuntimeError as exc:
        sock.close()
        raise UsageError(f"%agent serve: {exc}") from None
    magics.serving = serving
    print(f"smol-magic: serving this notebook over MCP (streamable HTTP) at {serving.url}\n"
          f"  token: {serving.token}\n"
          f"  clients send the header 'Authorization: Bearer <token>'; %agent serve stop ends it")
