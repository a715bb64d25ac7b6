"""The live trace: one ipywidgets view per run, and the approval card.

Clicks reach the kernel while the ``%%agent`` cell awaits (ipykernel >= 7.4
dispatches comm messages concurrently with an async cell), so an approval is
an ``asyncio.Future`` resolved by a button. When the run ends, the widget is
replaced by a static HTML + text rendering of the same trace, which is what a
saved notebook, GitHub and nbconvert show.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
import time
from typing import Any, Callable

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle
from IPython.display import display

from ..core.agents import MultiStepAgent
from ..core.approval import Decision, approval_reason
from ..core.blocking import WHILE_WAITING, call_on_main, on_main_thread
from ..core.events import Renderer
from ..core.memory import ActionStep, FinalAnswerStep, MemoryStep, PlanningStep, RunResult
from ..core.outputs import output_text
from ..ui import html as h
from ..ui.text import TextRenderer
from .clicks import ClickPump

STREAM_INTERVAL = 0.05  # seconds between streamed-reply updates: one comm message each
# The edit box is a monospace textarea (ipywidgets has no font setting for it); the labextension, where
# present, upgrades a textarea with this class to a CodeMirror editor.
EDIT_STYLE = ("<style>.smol-magic-edit textarea{font-family:var(--jp-code-font-family,monospace);"
              "font-size:var(--jp-code-font-size,13px);line-height:var(--jp-code-line-height,1.3)}</style>")


def clicks_reach_kernel(shell: Any) -> bool:
    """True when comm messages (clicks) are handled while an async cell awaits: ipykernel >= 7.4."""
    import inspect

    kernel = getattr(shell, "kernel", None)
    dispatch = getattr(kernel, "dispatch_shell", None)
    if dispatch is None:
        return False
    try:
        return "concurrent" in inspect.signature(dispatch).parameters
    except (TypeError, ValueError):
        return False


class _Card:
    """One step: a collapsible box whose content is one HTML widget, filled in as the step happens.

    Few widgets per card on purpose: each is a comm and a message, and the
    trace must not slow the agent down (see bench/ui.py). The widgets are made
    when the card is first shown (the trace's next update), with what the card
    holds by then: a step that is quick sends its card once, not once and then
    its changes.
    """

    def __init__(self, title: str, layout: w.Layout, style: HTMLStyle):
        self.layout, self.style = layout, style
        self.html: w.HTML | None = None  # made by show()
        self.box: w.Accordion | None = None
        self.body: w.VBox | None = None  # made only when the card needs more than its HTML
        self.outputs: w.Output | None = None  # the step's rich outputs, until its inserted cell holds them
        self.had_outputs = False
        self.parts: dict[str, str] = {}
        self.title = title
        self.text = ""
        self.has_code = False

    def set(self, **parts: str) -> None:
        """Replace named parts (stream, reasoning, code, details); sent at the next ``push``."""
        self.parts.update(parts)

    def set_title(self, title: str) -> None:
        self.title = title

    def value(self) -> str:
        return "".join(self.parts.get(k, "") for k in ("stream", "reasoning", "code", "printed", "details"))

    def show(self) -> w.Accordion:
        """The card's widgets, made now (open, with its content and title) if they were not yet."""
        if self.box is None:
            self.html = w.HTML(value=self.value(), layout=self.layout, style=self.style)
            self.box = w.Accordion(children=[self.html], titles=(self.title,), selected_index=0, layout=self.layout)
        return self.box

    def push(self) -> None:
        """Send what changed: one message for the HTML, one for the title, at most (nothing before it is shown)."""
        if self.box is None:
            return
        value = self.value()
        if value != self.html.value:
            self.html.value = value
        if (self.title,) != tuple(self.box.titles):
            self.box.titles = (self.title,)

    def add_widget(self, widget: w.Widget) -> None:
        self.show()
        if self.body is None:
            self.body = w.VBox([self.html], layout=self.layout)
            self.box.children = [self.body]
        self.body.children = self.body.children + (widget,)


class WidgetTrace(Renderer):
    """A ``Renderer`` that is also the person's ``Approver``: the approval card lives in the step's card."""

    def __init__(self, approve_mode: str = "risky"):
        self.approve_mode = approve_mode
        self._layout, self._style = w.Layout(), HTMLStyle()  # shared by every card: fewer comms
        self.cards_box = w.VBox(layout=self._layout)
        self.final = w.Output(layout=self._layout)
        self._build()
        self.card: _Card | None = None
        self.agent: MultiStepAgent | None = None
        self.task = ""
        self.typed_task: str | None = None  # the task as the user typed it, before {var} expansion
        self.in_cells: dict[int, str] = {}  # step number -> id of the inserted cell that holds its outputs
        self._step_cards: dict[int, _Card] = {}
        self.model_id = ""
        self.status = "starting"
        self.started = time.perf_counter()
        self.tokens = [0, 0]
        self.cost: float | None = None  # dollars so far; None while the model's price is unknown
        self.pending: asyncio.Future | None = None
        self.controls: dict[str, Any] = {}
        self.approval_box: w.VBox | None = None
        self.nested: ManagedTrace | None = None  # the managed run in progress, where its approval cards go
        self.messages_shown = 0  # "what the model saw" shows only what is new since the last step
        self._last_stream = 0.0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._cards: list[_Card] = []  # every card of the run, in order; shown by _show_cards
        self._shown = 0  # how many of them are in cards_box
        self._handle: Any = None
        self._text = io.StringIO()
        self._plain = TextRenderer(write=self._text.write, show=self._show_text)

    def _build(self) -> None:
        """The header with its Stop button, the cards, the final answer."""
        self.header = w.HTML(layout=self._layout, style=self._style)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="End the run after this step; your variables and the memory are kept",
                                    layout=w.Layout(width="90px"))
        self.stop_button.on_click(lambda _: self.stop())
        self.root = w.VBox([w.HBox([self.header, self.stop_button]), self.cards_box, self.final])
        self.root.add_class("smol-magic-trace")

    # -- Renderer -----------------------------------------------------------

    def run_started(self, agent: MultiStepAgent, task: str) -> None:
        self.agent, self.task = agent, self.typed_task or task
        self.model_id = getattr(agent.model, "model_id", type(agent.model).__name__)
        self.started = time.perf_counter()
        self._plain.typed_task = self.typed_task
        self._plain.run_started(agent, task)
        self._set_status("thinking")
        self._handle = display(self.root, display_id=True)

    def step_started(self, step_number: int) -> None:
        self._new_card(f"Step {step_number} · thinking…").set(stream=h.text_html("…"))
        self._set_status("thinking")

    def model_delta(self, text: str) -> None:
        card = self.card or self._new_card("Plan · thinking…")
        card.text += text
        now = time.perf_counter()
        if now - self._last_stream >= STREAM_INTERVAL:
            self._last_stream = now
            card.set(stream=h.text_html(card.text))
            self._flush()

    def action_ready(self, step: ActionStep) -> None:
        self._plain.action_ready(step)
        card = self.card or self._new_card("")
        card.has_code = True
        card.set(stream="", reasoning=h.text_html(step.reasoning) if step.reasoning else "",
                 code=_code_and_verdict(step))
        card.set_title(f"Step {step.step_number} · {step.verdict.decision}")
        self._schedule()

    def action_started(self, step: ActionStep) -> None:
        self._plain.action_started(step)
        if self.card is not None:
            if step.proposed_code is not None:  # a person edited it: show what runs
                self.card.set(code=_code_and_verdict(step))
            self.card.set_title(f"Step {step.step_number} · running…")
        self._set_status(f"running step {step.step_number}")
        self._flush()  # the code blocks the event loop while it runs: show it first

    def step_finished(self, step: MemoryStep) -> None:
        self._plain.step_finished(step)
        usage = getattr(step, "token_usage", None)
        for used in ([usage] if usage is not None else []) + [r.token_usage for r in getattr(step, "managed_runs", [])]:
            self.tokens[0] += used.input_tokens  # a managed agent's use is part of this run's, as in the run's total
            self.tokens[1] += used.output_tokens
            if used.cost is not None:
                self.cost = (self.cost or 0.0) + used.cost
        if isinstance(step, PlanningStep):
            card = self.card if self.card is not None and not self.card.has_code else self._new_card("Plan")
            card.set(stream="", reasoning=h.text_html(step.plan))
            card.set_title("Plan")
            self.card = None  # the next step opens its own card
        elif isinstance(step, ActionStep):
            card = self.card or self._new_card("")
            # Printed text goes in the card's HTML; only rich outputs need an Output widget.
            printed = [o for o in step.outputs if o.get("output_type") == "stream"]
            rich = [o for o in step.outputs if o.get("output_type") != "stream"]
            self._step_cards[step.step_number] = card
            card.had_outputs = bool(step.outputs)
            if step.step_number in self.in_cells:  # its cell is in the notebook already (cells at the end: later)
                card.set(printed=h.in_cell_html(step.step_number) if step.outputs else "")
            else:
                card.set(printed="".join(h.output_html(o) for o in printed))
                if rich:
                    card.show()
                    card.outputs = w.Output(layout=self._layout)
                    card.outputs.outputs = tuple(rich)
                    card.add_widget(card.outputs)
            details = [h.text_html(step.error, colour=h.strong("error"))] if step.error else []
            if step.observation:
                details.append(h.details_html("observation sent to the model", h.text_html(step.observation)))
            details.append(h.model_view_html(step, self.messages_shown))
            self.messages_shown = len(step.model_input_messages)
            card.set(stream="", details="".join(details))
            if step.code is None and not card.has_code:
                card.set(reasoning=h.text_html(step.reasoning or step.model_output or step.error or ""))
            card.set_title(h.step_summary(step))
            self.card = None
        elif isinstance(step, FinalAnswerStep):
            self.final.outputs = (h.value_bundle(step.output),)
        self._schedule()

    def run_finished(self, result: RunResult) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._plain.run_finished(result)
        self._set_status(result.state)
        self._close_approval("the run ended")
        self.stop_button.disabled = True
        static = {
            "text/html": h.run_html(self.task, self.model_id, result.steps, result.state, result.duration,
                                    result.token_usage.input_tokens, result.token_usage.output_tokens, result.error,
                                    in_cells=self.in_cells, cost=result.token_usage.cost),
            "text/plain": self._text.getvalue(),
        }
        if self._handle is not None:
            self._handle.update(static, raw=True)
            _close_tree(self.root)  # the static trace replaced it: free the comms

    def managed_run(self, name: str, task: str) -> "ManagedTrace":
        """A managed agent's run, live in the card of the step that calls it."""
        card = self.card or self._new_card("Step")
        card.show()  # the card's widgets before the ones it holds, as a frontend reads them in order
        nested = self.nested = ManagedTrace(self, name, task)
        card.add_widget(nested.root)
        self._show_cards()  # now: the manager's action holds the event loop until the managed run ends
        return nested

    def cell_inserted(self, step_number: int, cell_id: str) -> None:
        """The cells renderer put this step's action in the notebook: its outputs are shown there, not twice."""
        self.in_cells[step_number] = cell_id
        card = self._step_cards.get(step_number)
        if card is None:
            return  # the step has not finished yet: step_finished shows the reference
        card.set(printed=h.in_cell_html(step_number) if card.had_outputs else "")
        if card.outputs is not None and card.body is not None:
            card.body.children = tuple(c for c in card.body.children if c is not card.outputs)
            card.outputs.close()
            card.outputs = None
        card.push()

    # -- Approver -------------------------------------------------------------

    async def approve(self, step: ActionStep) -> Decision:
        """Show Run / Edit / Skip / Stop / Run all and wait for a click. Nothing runs before it."""
        if threading.current_thread() is not threading.main_thread():
            return await self._approve_held(step)  # a managed agent's action, asked from its worker thread
        # Each card resolves only its own future: a late click on an older card approves nothing.
        future = self.pending = asyncio.get_running_loop().create_future()

        def decide(decision: Decision) -> None:
            if not future.done():
                future.set_result(decision)

        self._approval_card(step, decide)
        ticker = asyncio.ensure_future(self._tick())  # elapsed time keeps moving while we wait
        try:
            decision = await future
        finally:
            self.pending = None
            ticker.cancel()
        self._close_approval(_chosen(decision))
        return decision

    async def _approve_held(self, step: ActionStep) -> Decision:
        """A managed agent's action: the card goes in its nested view; while it waits, the main thread
        (held by the manager's action) handles the clicks itself (``ClickPump``)."""
        nested = self.nested
        if nested is None or not nested.clicks.available:
            return Decision("skip", reason=NESTED_REFUSAL, refused=True)
        decided: concurrent.futures.Future = concurrent.futures.Future()

        def decide(decision: Decision) -> None:
            if not decided.done():
                decided.set_result(decision)

        def show() -> None:
            nested._approval_card(step, decide)
            WHILE_WAITING.append(nested.clicks.pump)

        decision: Decision | None = None
        await on_main_thread(show)
        try:
            decision = await asyncio.wrap_future(decided)
        finally:
            chosen = _chosen(decision) if decision is not None else "the run ended"

            def end() -> None:
                if nested.clicks.pump in WHILE_WAITING:
                    WHILE_WAITING.remove(nested.clicks.pump)
                nested._close_approval(chosen)

            call_on_main(end)
        return decision

    def _approval_card(self, step: ActionStep, decide: Callable[[Decision], None]) -> None:
        """The approval card in the step's card: each button calls ``decide`` with what was chosen."""
        card = self.card or self._new_card(f"Step {step.step_number}")
        card.show()  # the card's widgets before its buttons, as a frontend reads them in order
        editor = w.Textarea(value=step.code or "", layout=w.Layout(width="100%", height="140px", display="none"))
        editor.add_class("smol-magic-edit")  # monospace here; the labextension makes it a CodeMirror editor
        reason = w.Text(placeholder="reason to skip (optional)", layout=w.Layout(width="260px"))
        buttons = {
            "run": w.Button(description="Run", button_style="success", icon="play"),
            "edit": w.Button(description="Edit", icon="edit"),
            "skip": w.Button(description="Skip", button_style="warning", icon="forward"),
            "stop": w.Button(description="Stop", button_style="danger", icon="stop"),
            "run_all": w.Button(description="Run all", button_style="info", icon="fast-forward",
                                tooltip="Approve this and every later action of this run"),
        }
        for button in buttons.values():
            button.layout.width = "100px"

        def code_to_run() -> str | None:
            return editor.value if editor.layout.display != "none" else None

        def on_edit(_: Any) -> None:
            editor.layout.display = None
            buttons["edit"].disabled = True
            buttons["run"].description = "Run edited code"
            buttons["run"].layout.width = "150px"

        buttons["run"].on_click(lambda _: decide(Decision("run", code=code_to_run(), by_person=True)))
        buttons["run_all"].on_click(
            lambda _: decide(Decision("run", code=code_to_run(), by_person=True, run_all=True)))
        buttons["edit"].on_click(on_edit)
        buttons["skip"].on_click(lambda _: decide(Decision("skip", reason=reason.value.strip(), by_person=True)))
        buttons["stop"].on_click(lambda _: decide(Decision("stop", by_person=True)))
        why = w.HTML(f'{EDIT_STYLE}<b style="color:{h.strong("warn")}">Waiting for you.</b> '
                     f'{h.esc(approval_reason(step, self.approve_mode))}')
        self.approval_box = w.VBox([why, w.HBox(list(buttons.values()) + [reason]), editor])
        card.add_widget(self.approval_box)
        self.controls = {**buttons, "editor": editor, "reason": reason}
        self._set_status("waiting for you")
        card.set_title(f"Step {step.step_number} · waiting for you")
        self._flush()

    def stop(self) -> None:
        """The header's Stop: end the run gracefully after (or instead of) the current step."""
        if self.agent is not None:
            self.agent.interrupt()
        if self.nested is not None and self.nested.agent is not None:  # clicked while a managed agent's card waits
            self.nested.agent.interrupt()
        if self.pending is not None and not self.pending.done():
            self.pending.set_result(Decision("stop", by_person=True))
        self.stop_button.disabled = True
        self._set_status("stopping")
        self._flush()

    # -- helpers --------------------------------------------------------------

    def _new_card(self, title: str) -> _Card:
        """A card for the current step, shown at the next update (at most STREAM_INTERVAL away)."""
        card = _Card(title, self._layout, self._style)
        self._cards.append(card)
        self.card = card
        self._schedule()
        return card

    def _show_cards(self) -> None:
        """Put the cards made since the last update in the trace: the newest open, the one before collapsed."""
        if self._shown == len(self._cards):
            return
        if self._shown:
            self._cards[self._shown - 1].show().selected_index = None
        new = self._cards[self._shown:]
        for card in new[:-1]:  # made and passed within one update (a plan, then its step): shown collapsed
            card.show().selected_index = None
        self.cards_box.children = self.cards_box.children + tuple(card.show() for card in new)
        self._shown = len(self._cards)

    def _close_approval(self, note: str) -> None:
        for control in self.controls.values():
            control.disabled = True
        if self.controls and self.approval_box is not None:
            self.approval_box.children = [w.HTML(f'<span style="{h.MUTED}">{h.esc(note)}</span>')]
        self.controls, self.approval_box = {}, None

    def _set_status(self, status: str) -> None:
        self.status = status
        self._schedule()

    def _schedule(self) -> None:
        """Coalesce updates: a fast run sends one update per step, not one per change."""
        if self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_later(STREAM_INTERVAL, self._flush)
            except RuntimeError:  # no loop: send at once
                self._flush()

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        header = h.header_html(self.task, self.model_id, self.status, time.perf_counter() - self.started, *self.tokens,
                               cost=self.cost)
        if header != self.header.value:
            self.header.value = header
        for card in self._cards[-2:]:  # only the newest cards change
            card.push()
        self._show_cards()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._flush()

    def _show_text(self, output: dict[str, Any]) -> None:
        self._text.write(output_text([output]) + "\n")


NESTED_REFUSAL = ("it is a managed agent's action, and no click can reach this kernel while its manager's code runs; "
                  "to let such actions run, approve the manager's step with 'Run all'")


class ManagedTrace(WidgetTrace):
    """A managed agent's run inside its manager's trace: a collapsible box in the calling step's card.

    Its hooks run on the main thread while the manager's action holds it (the event loop waits),
    so every change is sent at once rather than scheduled.
    """

    def __init__(self, parent: WidgetTrace, name: str, task: str):
        self.name, self.title = name, f"{name} · {h.task_title(task, 80)}"
        super().__init__(approve_mode=parent.approve_mode)
        self._plain = parent._plain.managed_run(name, task)  # the static text of the manager's trace holds it
        self.parent = parent
        from IPython import get_ipython

        self.clicks = ClickPump(get_ipython())

    def _build(self) -> None:
        self.root = w.Accordion(children=[w.VBox([self.cards_box, self.final], layout=self._layout)],
                                titles=(f"managed agent {self.title} · starting",), selected_index=0)
        self.root.add_class("smol-magic-managed")

    def run_started(self, agent: MultiStepAgent, task: str) -> None:
        self.agent = agent
        self.model_id = getattr(agent.model, "model_id", type(agent.model).__name__)
        self.started = time.perf_counter()
        self._plain.run_started(agent, task)
        self._set_status("thinking")

    def run_finished(self, result: RunResult) -> None:
        if self.parent.nested is self:
            self.parent.nested = None
        self._plain.run_finished(result)
        self._close_approval("the run ended")
        self.status = str(result.state)
        actions = len(result.action_steps)
        self.root.titles = (f"managed agent {self.title} · {result.state} · {actions} step"
                            f"{'s' if actions != 1 else ''} · {result.duration:.1f} s"
                            f"{h.cost_text(result.token_usage.cost)}",)
        if result.error:
            self.final.outputs = ({"output_type": "stream", "name": "stderr", "text": result.error + "\n"},)
        self._flush()

    def _schedule(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self.status not in ("done", "max_steps", "stopped", "interrupted", "failed", "budget"):
            title = f"managed agent {self.title} · {self.status} · {time.perf_counter() - self.started:.1f} s"
            if (title,) != tuple(self.root.titles):
                self.root.titles = (title,)
        for card in self._cards[-2:]:
            card.push()
        self._show_cards()


def _code_and_verdict(step: ActionStep) -> str:
    return h.code_html(step.code or "") + h.verdict_html(step.verdict)


def _chosen(decision: Decision) -> str:
    if decision.action == "run":
        return "You approved this action" + (" (edited)" if decision.code else "") + (
            " and the rest of the run" if decision.run_all else "") + "."
    if decision.action == "skip":
        return "You skipped this action" + (f": {decision.reason}" if decision.reason else ".")
    return "You stopped the run."


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


