"""``KernelExecutor``: an action runs through IPython itself, in the live ``user_ns``.

``run_cell_async`` puts the agent's code in ``In``/``%history``, and its
variables are the user's real objects. Called on the main thread: timeouts use
SIGALRM and Interrupt relies on SIGINT raising KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections import ChainMap
from typing import Any, Mapping

from IPython.core.async_helpers import _pseudo_sync_runner
from IPython.utils.capture import capture_output

from ..context import namespace
from ..core.execution import ActionTimeout, CappedText, ExecutionResult, ToolBindings, classify, finish, time_limits


class KernelExecutor:
    """Runs actions in IPython's live ``user_ns`` through ``run_cell_async``."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.namespace = shell.user_ns
        self._tools = ToolBindings(self.namespace)

    def send_tools(self, tools: dict[str, Any]) -> None:
        self._tools.send(tools)
        self.shell.user_ns_hidden.update(tools)

    def restore(self) -> None:
        for name in self._tools.tools:
            self.shell.user_ns_hidden.pop(name, None)
        self._tools.restore()

    def hidden(self) -> Mapping[str, Any]:
        # A view, not a copy: IPython adds an _iN name to user_ns_hidden for every cell.
        return ChainMap(self.shell.user_ns_hidden, self._tools.tools)

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        shell = self.shell
        hidden = self.hidden()
        before = namespace.snapshot(self.namespace, hidden)
        caught: list[tuple[type, BaseException, Any]] = []
        result = ExecutionResult()
        saved = (shell.custom_exceptions, shell.CustomTB, shell.display_trap.hook)
        start = time.perf_counter()
        stdout, stderr = CappedText(), CappedText()
        with capture_output(stdout=False, stderr=False) as captured, \
                contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            # Errors of the action become observations, not tracebacks in the agent cell;
            # the last expression's value is captured like any display output.
            shell.custom_exceptions = (BaseException,)
            shell.CustomTB = lambda etype, value, tb, tb_offset=None: caught.append((etype, value, tb))
            shell.display_trap.hook = sys.displayhook
            cell_result = None
            try:
                with time_limits(timeout):
                    cell_result = _pseudo_sync_runner(
                        shell.run_cell_async(code, store_history=True, transformed_cell=code)
                    )
            except (KeyboardInterrupt, ActionTimeout) as exc:  # arrived outside the action's own frame
                caught.append((type(exc), exc, exc.__traceback__))
            finally:
                shell.custom_exceptions, shell.CustomTB, shell.display_trap.hook = saved
            # run_cell_async fires pre_run_cell only; matplotlib's inline backend shows figures on post_execute.
            shell.events.trigger("post_execute")
            if cell_result is not None:
                shell.events.trigger("post_run_cell", cell_result)
        result.duration = time.perf_counter() - start
        if caught:
            classify(result, caught[0][1], caught[0][2], skip_frames=1)
        if cell_result is not None and cell_result.error_before_exec is not None:
            exc = cell_result.error_before_exec
            result.error = "".join(traceback.format_exception_only(type(exc), exc))
        finish(result, stdout, stderr, [(o.data, o.metadata) for o in captured.outputs], before, self.namespace,
                hidden)
        return result
