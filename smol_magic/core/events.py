"""How a run is watched: the ``Renderer`` hooks, and ``Tee`` for several watchers."""

from __future__ import annotations

from typing import Any

from .memory import ActionStep, MemoryStep, RunResult


class Renderer:
    """Shows a run as it happens. Every hook is optional; the base class shows nothing.

    ``run_started`` gets the agent (a ``MultiStepAgent``) so a renderer can read its model and stop it.
    """

    def run_started(self, agent: Any, task: str) -> None: ...
    def model_delta(self, text: str) -> None: ...
    def step_started(self, step_number: int) -> None: ...
    def action_ready(self, step: ActionStep) -> None: ...
    def action_started(self, step: ActionStep) -> None: ...
    def step_finished(self, step: MemoryStep) -> None: ...
    def run_finished(self, result: RunResult) -> None: ...

    def managed_run(self, name: str, task: str) -> "Renderer":
        """The view of a managed agent's run, nested in the step that calls it (here: none)."""
        return Renderer()


class Tee(Renderer):
    """Several renderers watching one run (the trace, the cell writer, ...)."""

    def __init__(self, *renderers: Renderer):
        self.renderers = renderers

    def _each(self, hook: str, *args: Any) -> None:
        for renderer in self.renderers:
            getattr(renderer, hook)(*args)

    def run_started(self, agent: Any, task: str) -> None:
        self._each("run_started", agent, task)

    def model_delta(self, text: str) -> None:
        self._each("model_delta", text)

    def step_started(self, step_number: int) -> None:
        self._each("step_started", step_number)

    def action_ready(self, step: ActionStep) -> None:
        self._each("action_ready", step)

    def action_started(self, step: ActionStep) -> None:
        self._each("action_started", step)

    def step_finished(self, step: MemoryStep) -> None:
        self._each("step_finished", step)

    def run_finished(self, result: RunResult) -> None:
        self._each("run_finished", result)

    def managed_run(self, name: str, task: str) -> Renderer:
        return Tee(*(renderer.managed_run(name, task) for renderer in self.renderers))
