"""``%agent executor status|restart|stop``: the notebook's isolated (and remote) kernels."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..remote.executor import KernelUnavailable
from .base import Parser

HELP = ("status | restart | stop [--executor isolated]: the kernel that runs --executor isolated (or gateway) "
        "actions: what it holds, a fresh one, or end it")


def parser() -> Parser:
    p = Parser("executor")
    p.add_argument("action", nargs="?", default="", help="status, restart or stop")
    p.add_argument("--executor", dest="kind", default=None, help="which remote executor (default: all, or isolated)")
    return p


def run(magics: Any, args: Any) -> None:
    if args.action not in ("status", "restart", "stop"):
        what = f"unknown action {args.action!r}" if args.action else "say what to do"
        raise UsageError(f"%agent executor: {what}: use %agent executor status, restart or stop")
    executors = magics.executors.by_kind
    if args.kind is not None and args.kind not in ("isolated", "gateway"):
        raise UsageError(f"%agent executor --executor {args.kind!r}: use isolated or gateway")
    kinds = [args.kind] if args.kind else list(executors)
    if args.action == "status":
        print(f"executor for %%agent cells: {magics.executor} (AgentMagics.executor; --executor for one cell)")
        for kind in kinds:
            print(executors[kind].status() if kind in executors else f"{kind}: not started")
        if not kinds:
            print("no isolated or gateway kernel has been started in this session")
        return
    if args.action == "stop":
        stopped = [kind for kind in kinds if kind in executors and executors[kind].started]
        for kind in kinds:
            if kind in executors:
                executors[kind].stop()
        print(f"smol-magic: stopped the {' and '.join(stopped)} kernel{'s' if len(stopped) > 1 else ''}; the next "
              "action starts a fresh one" if stopped else "smol-magic: no isolated or gateway kernel was running")
        return
    if not kinds:
        raise UsageError("%agent executor restart: no isolated or gateway kernel yet; a %%agent --executor isolated "
                         "cell starts one")
    for kind in kinds:
        if kind not in executors:
            raise UsageError(f"%agent executor restart: the {kind} kernel was never started in this session")
        try:
            executors[kind].restart()
        except KernelUnavailable as exc:
            raise UsageError(str(exc)) from None
        sent = ", ".join(executors[kind].sent)
        print(f"smol-magic: restarted the {kind} kernel (pid {executors[kind].kernel_pid}); the variables made in it "
              f"are gone{f'; sent in again: {sent}' if sent else ''}")
