"""``--executor``: which executor a ``%%agent`` run uses, the data it sends in and brings back.

``make_link`` is the factory of kernel links, one branch per remote executor
(the gateway adds its own). ``Executors`` keeps one ``RemoteExecutor`` per
kind for the notebook's session. ``begin`` prepares a run (the executor
swapped in, the variables sent, the relaxed guard), and the ``RemoteRun`` it
returns puts everything back after the run and brings ``--out-vars`` home.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from ... import guard
from ...context import namespace
from ...safety import undo
from . import gateway
from .executor import KernelUnavailable, RemoteExecutor
from .isolated import IsolatedKernel, Settings, Workdir
from .transfer import TransferError, parse_size, size_text

EXECUTORS = ("live", "isolated", "gateway")
MIN_MEMORY = 2**30  # RLIMIT_AS counts address space: a fresh kernel reserves ~0.7 GB, ~1 GB with pandas
WORKDIRS = tuple(str(w) for w in Workdir)
# AgentMagics.isolated_policy by default: what the guard allows besides the usual in an isolated kernel,
# where the damage stays in a child process and its scratch folder.
DEFAULT_ISOLATED_POLICY: dict[str, list[str]] = {
    "allow": ["write_files", "delete_files", "mutate_data"],
    "imports": ["os", "subprocess", "shutil", "tempfile", "glob", "pathlib"],
}
_BRACED = re.compile(r"\{\{|\{([^\W\d]\w*)\}")


@dataclass
class Options:
    """The executor flags of one ``%%agent`` cell, checked."""

    kind: str = "live"
    memory: int | None = None
    workdir: Workdir = Workdir.SCRATCH
    vars: list[str] = field(default_factory=list)
    out_vars: list[str] = field(default_factory=list)
    max_transfer: int | None = None  # gateway: the most bytes sent in for one run


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def options(magics: Any, args: Any) -> Options:
    """The cell's ``--executor``, ``--memory``, ``--workdir``, ``--vars``, ``--out-vars``: one-line errors."""
    kind = (args.executor or magics.executor).strip()
    if kind not in EXECUTORS:
        raise UsageError(f"--executor {kind!r}: use one of {', '.join(EXECUTORS)}")
    memory_text = args.memory if args.memory is not None else magics.isolated_memory
    memory = None
    if memory_text and str(memory_text).strip() not in ("0", "none", "None"):
        try:
            memory = parse_size(memory_text, "--memory")
        except ValueError as exc:
            raise UsageError(f"{exc} (e.g. --memory 2GB)") from None
        if memory < MIN_MEMORY:
            raise UsageError(f"--memory {memory_text}: a kernel needs more than {size_text(memory)} of address space "
                             "to start; give at least 1GB, e.g. --memory 2GB")
    workdir_text = args.workdir or "scratch"
    if workdir_text not in WORKDIRS:
        raise UsageError(f"--workdir {workdir_text!r}: use scratch (a temp folder), ro (the notebook's folder, "
                         "read-only) or rw (read-write)")
    opts = Options(kind, memory, Workdir(workdir_text), _names(args.vars), _names(args.out_vars))
    for flag, names in (("--vars", opts.vars), ("--out-vars", opts.out_vars)):
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise UsageError(f"{flag}: {', '.join(map(repr, bad))} is not a variable name; write {flag} a,b")
    if kind == "gateway":
        opts.max_transfer = gateway.max_transfer(magics, args)
    elif getattr(args, "max_transfer", None):
        raise UsageError("--max-transfer only means something with --executor gateway (data sent over the network)")
    if kind == "live":
        used = [flag for flag, value in (("--vars", args.vars), ("--out-vars", args.out_vars),
                                         ("--memory", args.memory), ("--workdir", args.workdir)) if value]
        if used:
            raise UsageError(f"{', '.join(used)} only mean something with --executor isolated or gateway (the live "
                             "executor works on the notebook's variables directly)")
    user_ns = magics.shell.user_ns
    missing = [n for n in opts.vars if n not in user_ns]
    if missing:
        variables = list(namespace.user_variables(user_ns, magics.shell.user_ns_hidden))
        hints = [f"{n!r}" + (f" (did you mean {', '.join(map(repr, c))}?)"
                             if (c := difflib.get_close_matches(n, variables, n=3)) else "") for n in missing]
        raise UsageError(f"--vars: no variable named {', '.join(hints)}; send existing variables, e.g. --vars df")
    return opts


def make_link(kind: str, magics: Any, opts: Options) -> Any:
    """The ``KernelLink`` of a remote executor kind: the factory each remote executor adds its branch to."""
    if kind == "isolated":
        return IsolatedKernel(isolated_settings(magics, opts))
    if kind == "gateway":
        return gateway.GatewayKernel(gateway.settings_for(magics))
    raise UsageError(f"--executor {kind!r}: use one of {', '.join(EXECUTORS)}")


def isolated_settings(magics: Any, opts: Options) -> Settings:
    shared = opts.workdir != Workdir.SCRATCH  # the notebook's folder matters only when it is shared
    return Settings(memory=opts.memory, workdir=opts.workdir, notebook_dir=os.getcwd() if shared else "",
                    passed_env=tuple(magics.isolated_env))


class Executors:
    """The notebook's remote executors, one per kind, each kept (with its kernel) for the session."""

    def __init__(self) -> None:
        self.by_kind: dict[str, RemoteExecutor] = {}

    def get(self, kind: str, magics: Any, opts: Options) -> tuple[RemoteExecutor, str]:
        """The executor of ``kind`` with these settings, and a note if its kernel had to be restarted for them."""
        executor = self.by_kind.get(kind)
        note = ""
        if executor is not None and kind == "isolated":
            wanted = isolated_settings(magics, opts)
            if executor.link.settings != wanted:
                if executor.started:
                    changed = _changed(executor.link.settings, wanted)
                    note = (f"smol-magic: the isolated kernel restarts with the new settings ({changed}); the "
                            "variables made in it are gone")
                    executor.stop()
                executor.link.settings = wanted
        if executor is not None and kind == "gateway":
            wanted_gateway = gateway.settings_for(magics)
            if executor.link.settings != wanted_gateway:
                if executor.started:
                    note = ("smol-magic: the gateway settings changed, so the run uses a new kernel there; the "
                            "variables made in the old one are gone")
                    executor.stop()
                executor.link.settings = wanted_gateway
        if executor is None:
            executor = self.by_kind[kind] = RemoteExecutor(make_link(kind, magics, opts))
        return executor, note

    def stop_all(self) -> list[str]:
        stopped = []
        for kind, executor in self.by_kind.items():
            if executor.started:
                stopped.append(kind)
            executor.stop()
        return stopped


def _changed(old: Settings, new: Settings) -> str:
    parts = []
    if old.memory != new.memory:
        parts.append(f"memory {size_text(new.memory) if new.memory else 'no limit'}")
    if old.workdir != new.workdir or old.notebook_dir != new.notebook_dir:
        parts.append(f"workdir {new.workdir}")
    if old.passed_env != new.passed_env:
        parts.append("environment")
    return ", ".join(parts)


def isolated_policy(magics: Any, policy: guard.Policy, opts: Options, folder: str) -> guard.Policy:
    """The run's policy, relaxed by ``AgentMagics.isolated_policy`` (the guard still runs: defence in depth).

    Paths are judged from the child's working ``folder``. With ``--workdir ro`` no file write or
    delete is granted: the guard asks a person for each (headless: refused). That is the guard's
    policy; the child process itself is not prevented from writing there.
    """
    spec = magics.isolated_policy
    allow = set(spec.get("allow", []))
    if opts.workdir == Workdir.READ_ONLY:
        allow -= {"write_files", "delete_files"}
    imports = [m for m in spec.get("imports", []) if m not in policy.authorized_imports]
    released = {m for m in spec.get("imports", []) if guard.module_forbidden(m)}
    relaxed = policy.with_grants(*sorted(allow), imports=imports)
    relaxed.released = frozenset(released)
    relaxed.workdir = folder
    return relaxed


def check_policy(value: dict[str, Any]) -> dict[str, list[str]]:
    """``AgentMagics.isolated_policy``, checked: ``{"allow": [capabilities], "imports": [modules]}``."""
    unknown = set(value) - {"allow", "imports"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}: give {{'allow': [capabilities], 'imports': [modules]}}")
    allow = list(value.get("allow", []))
    bad = [c for c in allow if c not in guard.CAPABILITIES]
    if bad:
        raise ValueError(f"unknown capabilities {bad}; known: {', '.join(guard.CAPABILITIES)}")
    return {"allow": allow, "imports": [str(m) for m in value.get("imports", [])]}


def task_names(task: str, ns: dict[str, Any]) -> list[str]:
    """The variables a task names as ``{var}``: sent into a remote kernel as --vars are."""
    return [m.group(1) for m in _BRACED.finditer(task) if m.group(1) and m.group(1) in ns]


class RemoteRun:
    """One run on a remote executor: what to put back after it, and what to bring home."""

    def __init__(self, magics: Any, agent: Any, executor: RemoteExecutor, opts: Options):
        self.magics, self.agent, self.executor, self.opts = magics, agent, executor, opts
        self.live = agent.executor
        self.agent_made = dict(agent.agent_made)
        self.runs_before = len(agent.runs)
        agent.executor = executor

    def end(self) -> None:
        """After the run: the live executor back, the kernel's names kept out of the notebook's undo."""
        agent = self.agent
        agent.executor = self.live
        agent.agent_made = self.agent_made
        if len(agent.runs) > self.runs_before:
            run = agent.runs[-1]
            run.undo, run.undo_in_place, run.not_undoable = {}, {}, {}  # names of the kernel, not the notebook's
            self.magics.remote_runs[id(run)] = self.executor.link.name  # for %agent cells: the header its cells need

    def bring_back(self) -> None:
        """``--out-vars``: new objects in the notebook; a name of the user's is replaced only with undo kept."""
        if not self.opts.out_vars:
            return
        user_ns = self.magics.shell.user_ns
        run = self.agent.runs[-1]
        protected = set(self.magics.protect) | set(self.agent.protected)
        lines = []
        for name in self.opts.out_vars:
            if name not in self.executor.namespace:
                close = difflib.get_close_matches(name, list(self.executor.namespace), n=3)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                lines.append(f"{name}: not brought back: the {self.executor.link.name} kernel has no variable "
                             f"{name!r}{hint}")
                continue
            if name in protected and name in user_ns:
                lines.append(f"{name}: not brought back: your {name} is protected (--protect); yours is unchanged")
                continue
            try:
                value = self.executor.fetch(name)
            except TransferError as exc:
                lines.append(f"{name}: not brought back: {exc}")
                continue
            existed = name in user_ns
            run.undo.setdefault(name, user_ns.get(name, undo.UNBOUND))
            user_ns[name] = value
            self.agent.agent_made[name] = id(value)
            how = "replaced your earlier one (%agent undo puts it back)" if existed else "new"
            lines.append(f"{name}: {namespace.named_headline(name, value)} · {how}")
        print(f"smol-magic: from the {self.executor.link.name} kernel: " + "; ".join(lines))


class LiveRun:
    """A run on the live executor: nothing to swap, nothing to bring back."""

    def end(self) -> None:
        pass

    def bring_back(self) -> None:
        pass


def begin(magics: Any, agent: Any, args: Any, task: str) -> RemoteRun | LiveRun:
    """Prepare a run's executor (checked flags, the kernel, the variables sent in); raises ``UsageError``."""
    opts = options(magics, args)
    if opts.kind == "live":
        return LiveRun()
    user_ns = magics.shell.user_ns
    executor, note = magics.executors.get(opts.kind, magics, opts)
    if note:
        print(note)
    if opts.kind == "gateway":
        executor.link.max_transfer = opts.max_transfer  # checked again for what --out-vars brings back
    names = list(dict.fromkeys(opts.vars + task_names(task, user_ns)))
    try:
        if names:
            packets = executor.send_variables({n: user_ns[n] for n in names}, max_bytes=opts.max_transfer)
            print(f"smol-magic: sent to the {executor.link.name} kernel: " + ", ".join(p.describe() for p in packets))
        else:
            executor.ensure()
    except TransferError as exc:
        raise UsageError(str(exc)) from None
    except KernelUnavailable as exc:
        raise UsageError(str(exc)) from None
    if executor.lost and executor.started:  # the kernel was replaced before this run's first action: say so here
        print(f"smol-magic: {executor.lost} This run uses a fresh {executor.link.name} kernel: the variables made in "
              "the old one are gone.")
        executor.lost = None
    if opts.kind == "isolated" and agent.policy.enabled:
        agent.policy = isolated_policy(magics, agent.policy, opts, executor.link.working_folder())
    return RemoteRun(magics, agent, executor, opts)
