"""``KernelExecutor``: an action runs through IPython itself, in the live ``user_ns``.

``run_cell_async`` puts the agent's code in ``In``/``%history``, and its
variables are the user's real objects. Called on the main thread: timeouts use
SIGALRM and Interrupt relies on SIGINT raising KeyboardInterrupt.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import threading
import time
import weakref
import traceback
import warnings
from collections import ChainMap
from typing import Any, Iterator, Mapping

from IPython.core.async_helpers import _pseudo_sync_runner
from IPython.core.displayhook import CapturingDisplayHook
from IPython.core.displaypub import CapturingDisplayPublisher

from ..context import namespace
from ..core.execution import CappedText, ExecutionResult, ToolBindings, classify, exit_error, finish, static_bindings
from ..core.execution import MAX_STREAM_CHARS
from ..core.fdcapture import fd_capture
from ..core.stopping import Stop, stoppable
from ..core.tools import FinalAnswerSignal
from . import history


class StrayOutput:
    """sys.stdout / sys.stderr after an action left threads running: what those threads print is dropped.

    Without it, a thread an action started (``--no-guard``) prints into whatever cell the user runs
    later. Everything else is passed to the real stream untouched.
    """

    def __init__(self, inner: Any):
        self._inner = inner
        self.threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self.dropped = 0

    def write(self, text: str) -> int:
        if threading.current_thread() in self.threads:
            self.dropped += len(text)
            return len(text)
        return self._inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _route_strays(threads: list[threading.Thread]) -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, StrayOutput):
            stream = StrayOutput(stream)
            setattr(sys, name, stream)
        stream.threads.update(threads)


def _caught(shell: Any, caught: list[tuple[type, BaseException, Any]], etype: type, value: BaseException,
            tb: Any) -> None:
    """What the action raised, kept for its observation.

    ``final_answer`` ends an action by raising ``FinalAnswerSignal``: that is the action's normal end,
    not an error, so IPython is not told it failed (it would format a traceback for its history of
    errors, ~40 ms of pygments per run, and ``post_run_cell`` would see a failed cell).
    """
    caught.append((etype, value, tb))
    if issubclass(etype, FinalAnswerSignal):
        running = getattr(shell.displayhook, "exec_result", None)  # run_cell_async's result, while the code runs
        if running is not None and running.error_in_exec is value:
            running.error_in_exec = None


# Code that runs around a cell and binds none of the user's names: IPython's own, ipykernel's, the
# inline backend's, ours. Anything else (autoreload, a user's hook) may, so the whole namespace is compared.
_KNOWN_HOOKS = ("IPython.core.", "ipykernel.", "matplotlib_inline.", "smol_magic.")


def _hooks_bind_nothing(shell: Any) -> bool:
    """Whether only known code runs around an action besides the action itself (AST transformers, events)."""
    if getattr(shell, "ast_transformers", None):
        return False
    callbacks = getattr(getattr(shell, "events", None), "callbacks", None)
    if not isinstance(callbacks, dict):
        return False
    for event in ("pre_execute", "pre_run_cell", "post_execute", "post_run_cell"):
        for callback in callbacks.get(event, ()):
            module = getattr(callback, "__module__", None) or ""
            if not module.startswith(_KNOWN_HOOKS):
                return False
    return True


@contextlib.contextmanager
def _parsed(shell: Any, code: str, tree: ast.Module | None) -> Iterator[None]:
    """IPython's cell path (In/Out, history, hooks, display) with ``tree`` as the parse of ``code``.

    ``run_cell_async`` parses the cell with ``shell.compile.ast_parse``; for this cell (the very
    string given) it returns the guard's tree instead. ``transformed_cell`` already skips the
    input transformers: the guard admits plain Python only.
    """
    compiler = getattr(shell, "compile", None)
    if tree is None or compiler is None or "ast_parse" in vars(compiler):
        yield
        return
    parse = compiler.ast_parse

    def ast_parse(source: str, *args: Any, **kwargs: Any) -> ast.Module:
        return tree if source is code else parse(source, *args, **kwargs)

    compiler.ast_parse = ast_parse
    try:
        yield
    finally:
        del compiler.ast_parse


class KernelExecutor:
    """Runs actions in IPython's live ``user_ns`` through ``run_cell_async``."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.namespace = shell.user_ns
        self._tools = ToolBindings(self.namespace)
        self._publisher: Any = None  # the display publisher reused by every action (see _displays)
        self._history: int | None = None  # what history.release needs at the run's end (see jupyter/history.py)

    def send_tools(self, tools: dict[str, Any]) -> None:
        """At a run's start: the tools bound, and IPython's history writes held until the run ends."""
        self._tools.send(tools)
        self.shell.user_ns_hidden.update(tools)
        if self._history is None:
            self._history = history.hold(self.shell)

    def restore(self) -> None:
        """At a run's end: the user's own bindings back, the run's actions written to IPython's history."""
        for name in self._tools.tools:
            self.shell.user_ns_hidden.pop(name, None)
        self._tools.restore()
        saved, self._history = self._history, None
        history.release(self.shell, saved)

    @contextlib.contextmanager
    def _displays(self) -> Iterator[list[dict[str, Any]]]:
        """What the action displays (``display()``, its last expression), as ``capture_output`` collects it.

        One publisher per executor, emptied for each action: making a traitlets object costs ~0.1 ms a
        step. An action run inside another's (a managed agent's) gets a publisher of its own.
        """
        shell = self.shell
        pub = self._publisher
        if pub is None or pub is shell.display_pub:
            pub = CapturingDisplayPublisher()
            if self._publisher is None:
                self._publisher = pub
        outputs: list[dict[str, Any]] = pub.outputs
        outputs.clear()
        saved_pub, saved_hook = shell.display_pub, sys.displayhook
        shell.display_pub = pub
        sys.displayhook = CapturingDisplayHook(shell=shell, outputs=outputs)
        try:
            yield outputs
        finally:
            shell.display_pub, sys.displayhook = saved_pub, saved_hook

    def hidden(self) -> Mapping[str, Any]:
        # A view, not a copy: IPython adds an _iN name to user_ns_hidden for every cell.
        return ChainMap(self.shell.user_ns_hidden, self._tools.tools)

    def execute(self, code: str, timeout: float | None = None, tree: ast.Module | None = None) -> ExecutionResult:
        """Run ``code`` as a cell; ``tree``: ``ast.parse(code)`` as the guard judged it, run without a second parse."""
        shell = self.shell
        hidden = self.hidden()
        before = namespace.Bindings(self.namespace, hidden, static_bindings(tree) if _hooks_bind_nothing(shell) else None)
        threads_before = set(threading.enumerate())
        caught: list[tuple[type, BaseException, Any]] = []
        result = ExecutionResult()
        saved = (shell.custom_exceptions, shell.CustomTB, shell.display_trap.hook)
        own_showtraceback = shell.__dict__.get("showtraceback")  # set when this action runs inside another's
        start = time.perf_counter()
        stdout, stderr = CappedText(), CappedText()
        stop: Stop | None = None
        below: dict[int, str] = {}
        # The frame that runs the action's code: below it is the action, which a stop may cut anywhere.
        boundary = getattr(shell.run_code, "__func__", shell.run_code).__code__
        with self._displays() as displays, \
                contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            # Errors of the action become observations, not tracebacks in the agent cell;
            # the last expression's value is captured like any display output.
            shell.custom_exceptions = (BaseException,)
            shell.CustomTB = lambda etype, value, tb, tb_offset=None: _caught(shell, caught, etype, value, tb)
            shell.display_trap.hook = sys.displayhook
            # IPython shows SystemExit itself (an error box in the agent cell) and tells the model only
            # "To exit: use 'exit'": the observation says what happened instead.
            shell.showtraceback = lambda *args, **kwargs: None
            cell_result = None
            try:
                with fd_capture(MAX_STREAM_CHARS) as below, stoppable(timeout, boundary) as stop, \
                        warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="To exit: use 'exit'")
                    with _parsed(shell, code, tree):
                        cell_result = _pseudo_sync_runner(
                            shell.run_cell_async(code, store_history=True, transformed_cell=code)
                        )
            except BaseException as exc:  # a stop that arrived outside the action's own frame
                caught.append((type(exc), exc, exc.__traceback__))
            finally:
                shell.custom_exceptions, shell.CustomTB, shell.display_trap.hook = saved
                if own_showtraceback is None:
                    del shell.showtraceback
                else:
                    shell.showtraceback = own_showtraceback
            # run_cell_async fires pre_run_cell only; matplotlib's inline backend shows figures on post_execute.
            shell.events.trigger("post_execute")
            if cell_result is not None:
                shell.events.trigger("post_run_cell", cell_result)
        result.duration = time.perf_counter() - start
        stdout.write(below.get(1, ""))  # what C code wrote to the file descriptors, after what Python printed
        stderr.write(below.get(2, ""))
        exc, tb = (caught[0][1], caught[0][2]) if caught else (None, None)
        classify(result, exc, tb, skip_frames=1, stop=stop)
        if cell_result is not None and cell_result.error_before_exec is not None:
            exc = cell_result.error_before_exec
            result.error = "".join(traceback.format_exception_only(type(exc), exc))
        elif not caught and cell_result is not None and isinstance(cell_result.error_in_exec, SystemExit) \
                and result.error is None:
            result.error = exit_error(cell_result.error_in_exec)
        strays = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if strays:
            _route_strays(strays)
            stderr.write(f"[smol-magic: {len(strays)} thread(s) started by this action still run; what they print "
                         "from now on is dropped, so it does not land in your later cells]\n")
        finish(result, stdout, stderr, [(o["data"], o["metadata"]) for o in displays], before)
        return result
