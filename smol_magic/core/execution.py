"""Running one approved action: the ``Executor`` protocol and the plain-Python executor.

``LocalPythonExecutor`` runs code with ``exec`` in a dict, for agents used from
ordinary Python; ``smol_magic.jupyter.kernel_executor.KernelExecutor`` is the
same contract on IPython's live namespace. Both must be called on the main
thread: timeouts use SIGALRM and Interrupt relies on SIGINT raising KeyboardInterrupt.
"""

from __future__ import annotations

import ast
import contextlib
import io
import linecache
import os
import re
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol

from .. import guard
from ..context import namespace
from .fdcapture import fd_capture
from .outputs import cell_outputs, output_text
from .stopping import ActionInterrupted, ActionTimeout, Reason, Stop, stoppable
from .tools import FinalAnswerSignal

__all__ = ["ActionInterrupted", "ActionTimeout"]  # re-exported: where executors import them from


@dataclass
class ExecutionResult:
    output: str = ""  # what the code printed, plus the text of what it displayed
    error: str | None = None  # a trimmed traceback, as text
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat outputs: what a cell would show
    is_final_answer: bool = False
    final_answer: Any = None
    timed_out: bool = False
    interrupted: bool = False
    changes: dict[str, list[str]] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)  # what rebound or deleted names held before
    duration: float = 0.0


class Executor(Protocol):
    namespace: dict[str, Any]

    def send_tools(self, tools: dict[str, Any]) -> None: ...
    def restore(self) -> None: ...
    def hidden(self) -> Mapping[str, Any]: ...
    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult: ...
    # An executor may also take ``tree=``, ``ast.parse(code)`` as the guard judged it, to run it without
    # parsing again (both executors here do; the agent passes it only to those whose ``execute`` has it).


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Make SIGINT raise KeyboardInterrupt at once, on the main thread.

    ipykernel's own SIGINT handler only cancels the cell's coroutine, which
    cannot stop a busy loop or a blocking wait; the default handler can.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def classify(result: ExecutionResult, exc: BaseException | None, tb: Any, skip_frames: int = 0,
             stop: Stop | None = None) -> None:
    """What ended the action, in words that are true: a stop wins over whatever the action raised after it."""
    if stop is not None and stop.reason == Reason.TIMEOUT:
        result.timed_out, result.error = True, f"ActionTimeout: the action ran past its {stop.timeout:g} s time limit"
    elif stop is not None and stop.reason == Reason.INTERRUPT:
        result.interrupted, result.error = True, "KeyboardInterrupt: interrupted by the user"
    elif exc is None:
        return
    elif isinstance(exc, FinalAnswerSignal):
        result.is_final_answer, result.final_answer = True, exc.value
    elif isinstance(exc, ActionTimeout):  # the signal came between the action's end and the stop's bookkeeping
        result.timed_out, result.error = True, f"ActionTimeout: {exc}"
    elif isinstance(exc, KeyboardInterrupt):
        result.error = (format_error(type(exc), exc, tb, skip_frames)
                        + "The action raised KeyboardInterrupt itself; no one pressed Interrupt.")
    elif isinstance(exc, SystemExit):
        result.error = exit_error(exc)
    else:
        result.error = format_error(type(exc), exc, tb, skip_frames)


def exit_error(exc: SystemExit) -> str:
    return (f"SystemExit: the action called sys.exit({exc.code!r}); an action cannot end the kernel, "
            "which keeps running with your variables")


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CELL_FILE = re.compile(r"^(<ipython-input-\d+-[0-9a-f]+>|.*/ipykernel_\d+/\d+\.py|<agent-action-\d+>)$")


def format_error(etype: type, value: BaseException, tb: Any, skip_frames: int = 0, max_frames: int = 6) -> str:
    """A traceback the model can act on: the agent's own frames, the last few only."""
    frames = traceback.extract_tb(tb)[skip_frames:]
    # smol-magic's own frames (a Tool's __call__, an MCP call) tell the model nothing it can act on
    frames = [f for f in frames if not f.filename.startswith(_PACKAGE)] or frames
    for frame in frames:  # IPython's cell file names change with every run: keep the text reproducible
        frame.filename = _CELL_FILE.sub("<cell>", frame.filename)
    lines = traceback.format_list(frames[-max_frames:])
    head = "Traceback (most recent call last):\n"
    if len(frames) > max_frames:
        head += f"  ... {len(frames) - max_frames} earlier frames ...\n"
    return head + "".join(lines) + "".join(traceback.format_exception_only(etype, value))


_MISSING = object()

MAX_STREAM_CHARS = 200_000  # per stream and action: what a person can read, and the browser can hold


class CappedText(io.TextIOBase):
    """A stdout/stderr that keeps the head and the tail of what is written, and counts the rest.

    An action that prints 100 MB must not fill the kernel's memory, the
    observation, the trace or the notebook.
    """

    def __init__(self, limit: int = MAX_STREAM_CHARS):
        self.head_limit, self.tail_limit = limit * 3 // 4, limit // 4
        self.head: list[str] = []
        self.head_size = 0
        self.tail: list[str] = []
        self.tail_size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.head_size < self.head_limit:
            room = self.head_limit - self.head_size
            self.head.append(text[:room])
            self.head_size += min(len(text), room)
            if len(text) <= room:
                return len(text)
            self.tail.append(text[room:])
            self.tail_size += len(text) - room
        else:
            self.tail.append(text)
            self.tail_size += len(text)
        if self.tail_size > 2 * self.tail_limit:  # compact now and then: amortised O(1) a write
            joined = "".join(self.tail)
            keep = joined[-self.tail_limit:]
            self.dropped += len(joined) - len(keep)
            self.tail, self.tail_size = [keep], len(keep)
        return len(text)

    def getvalue(self) -> str:
        tail = "".join(self.tail)
        dropped = self.dropped + max(0, len(tail) - self.tail_limit)
        tail = tail[-self.tail_limit:] if self.tail_limit else ""
        cut = f"\n... [{dropped:,} characters not shown] ...\n" if dropped else ""
        return "".join(self.head) + cut + tail


class ToolBindings:
    """Puts tools into a namespace for a run and restores whatever they shadowed."""

    def __init__(self, ns: dict[str, Any]):
        self.ns = ns
        self.tools: dict[str, Any] = {}
        self._saved: dict[str, Any] = {}

    def send(self, tools: dict[str, Any]) -> None:
        self.restore()
        self.tools = dict(tools)
        for name, value in tools.items():
            self._saved[name] = self.ns.get(name, _MISSING)
            self.ns[name] = value

    def restore(self) -> None:
        for name, old in self._saved.items():
            if old is _MISSING:
                self.ns.pop(name, None)
            else:
                self.ns[name] = old
        self._saved.clear()


def static_bindings(tree: ast.Module | None) -> list[str] | None:
    """The names an action can bind, when it can run no other code; else None (any name may change).

    Such an action is only ``name = <literal or name>`` (tuples, lists, dicts of those), ``del name``
    and ``pass``: no call, no operator, no attribute, no subscript, nothing displayed, so no user code
    (a function's ``global``, ``globals()[...]``, a ``__setattr__``) runs. Then the namespace diff
    looks at these names alone, however many the notebook holds.
    """
    if tree is None:
        return None
    names: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Delete) and all(isinstance(t, ast.Name) for t in statement.targets):
            names += [t.id for t in statement.targets]  # type: ignore[attr-defined]
            continue
        if not isinstance(statement, ast.Assign) or not _inert(statement.value):
            return None
        for target in statement.targets:
            if isinstance(target, ast.Name):
                names.append(target.id)
            elif (isinstance(target, (ast.Tuple, ast.List)) and isinstance(statement.value, (ast.Tuple, ast.List))
                  and len(target.elts) == len(statement.value.elts)
                  and all(isinstance(e, ast.Name) for e in target.elts)):
                names += [e.id for e in target.elts]  # type: ignore[attr-defined]
            else:
                return None  # unpacking a name's value iterates it: user code may run
    return names


def _inert(node: ast.expr) -> bool:
    """An expression whose evaluation runs no user code: constants, names, and displays of them."""
    kind = type(node)
    if kind is ast.Constant or kind is ast.Name:
        return True
    if kind is ast.UnaryOp:  # -1: the parser's form of a negative number
        return isinstance(node.op, (ast.USub, ast.UAdd)) and type(node.operand) is ast.Constant \
            and type(node.operand.value) in (int, float, complex)
    if kind in (ast.Tuple, ast.List):
        return all(type(e) is not ast.Starred and _inert(e) for e in node.elts)
    if kind is ast.Dict:  # keys hashed: constants of built-in types only
        return all(k is not None and type(k) is ast.Constant and type(k.value) in (str, int, float, bool, bytes)
                   for k in node.keys) and all(_inert(v) for v in node.values)
    return False


def finish(result: ExecutionResult, stdout: CappedText, stderr: CappedText, displays: list[tuple[dict, dict]],
           before: namespace.Bindings | namespace.Snapshot, ns: Mapping[str, Any] | None = None,
           hidden: Any = ()) -> None:
    """What the action showed (made inert before it reaches a browser), what changed, what it replaced.

    ``before``: the ``namespace.Bindings`` taken before the action (or a ``namespace.snapshot``, then
    compared with a new snapshot of ``ns``).
    """
    if isinstance(before, namespace.Bindings):
        result.changes = before.changes()
    else:
        result.changes = namespace.diff(before, namespace.snapshot(ns or {}, hidden))
    result.previous = {n: before[n] for n in result.changes["rebound"] + result.changes["deleted"]}
    result.outputs = guard.sanitize_outputs(cell_outputs(stdout.getvalue(), stderr.getvalue(), displays))
    result.output = output_text(result.outputs)


class LocalPythonExecutor:
    """Runs actions with plain ``exec`` in a dict: for agents used outside IPython."""

    def __init__(self, ns: dict[str, Any] | None = None):
        self.namespace: dict[str, Any] = ns if ns is not None else {}
        self.namespace.setdefault("__name__", "__agent__")
        self._tools = ToolBindings(self.namespace)
        self._count = 0

    def send_tools(self, tools: dict[str, Any]) -> None:
        self._tools.send(tools)

    def restore(self) -> None:
        self._tools.restore()

    def hidden(self) -> Mapping[str, Any]:
        return self._tools.tools

    def execute(self, code: str, timeout: float | None = None, tree: ast.Module | None = None) -> ExecutionResult:
        """Run ``code``; ``tree``: ``ast.parse(code)`` as the guard judged it (not changed here), to skip a parse."""
        before = namespace.Bindings(self.namespace, self.hidden(), static_bindings(tree))
        result = ExecutionResult()
        stdout, stderr = CappedText(), CappedText()
        displays: list[tuple[dict, dict]] = []
        start = time.perf_counter()
        stop: Stop | None = None
        below: dict[int, str] = {}
        self._count += 1
        filename = f"<agent-action-{self._count}>"
        # Registered so tracebacks show the agent's source lines, as IPython does for cells.
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
        try:
            body = list((tree if tree is not None else ast.parse(code)).body)
            last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
            module = ast.Module(body=body, type_ignores=[])
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                    fd_capture(MAX_STREAM_CHARS) as below, \
                    stoppable(timeout, LocalPythonExecutor.execute.__code__) as stop:
                exec(compile(module, filename, "exec"), self.namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)
                    if value is not None:
                        displays.append(({"text/plain": repr(value)}, {}))
            classify(result, None, None, stop=stop)  # stopped, though the action swallowed it and returned
        except BaseException as exc:  # everything the action does wrong is an observation
            classify(result, exc, exc.__traceback__, skip_frames=1, stop=stop)
        result.duration = time.perf_counter() - start
        stdout.write(below.get(1, ""))  # what C code wrote to the file descriptors, after what Python printed
        stderr.write(below.get(2, ""))
        finish(result, stdout, stderr, displays, before)
        return result
