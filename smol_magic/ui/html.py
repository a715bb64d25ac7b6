"""HTML fragments for a run: shared by the live widget and the static trace.

The static trace is what a saved notebook keeps once the widget is gone, so it
must stand alone: inline styles, ``<details>`` for what is collapsed, images
inlined, no scripts.

Colours: every colour is a JupyterLab CSS variable (``--jp-*``), so the trace
follows the Light and Dark themes. Where no ``--jp-*`` variables exist (GitHub,
other viewers), each falls back to a ``--smx-*`` variable set by the static
trace's ``<style>`` for the reader's ``prefers-color-scheme``, and, where even
that style is stripped, to a light-theme colour written inline.
"""

from __future__ import annotations

import functools
import html
from typing import Any, Collection

from ..core.costs import format_cost
from ..core.memory import (
    ActionStep, Compaction, FinalAnswerStep, MemoryStep, PlanningStep, RunResult, TaskStep, Verdict,
)
from ..core.outputs import json_safe
from ..core.text import SHOWN_CHARS, elide, safe_repr
from ..safety.redact import Secrets, current, redact_data, redact_secrets
from ..safety.sanitize import sanitize_html

# Where the whole of a text cut short in the trace can be read.
NOT_SHOWN = "not shown here; the whole text: %agent memory"
TITLE_CHARS = 2_000  # the header's tooltip: re-sent with every status change of the live trace


def shown_text(text: str, secrets: Secrets | None = None) -> str:
    """Text as a trace may show it: secrets redacted, at most ``SHOWN_CHARS`` (head and tail, the cut counted).

    A 2 MB reply would otherwise be sent to the browser with every streamed update and saved
    in the notebook; the agent's memory keeps it whole. ``secrets``: ``redact.current()``, when the
    caller shows several texts at once.
    """
    cut = elide(text, SHOWN_CHARS, NOT_SHOWN)  # cut first: the scan then reads 20 KB, not 2 MB
    return (secrets or current()).redact(cut)

# name -> (JupyterLab variable, light fallback, dark fallback for prefers-color-scheme where no --jp-* exist)
PALETTE = {
    "fg": ("--jp-content-font-color1", "#212121", "#e6e6e6"),
    "muted": ("--jp-content-font-color2", "#5c5c5c", "#b3b3b3"),
    "border": ("--jp-border-color2", "#dddddd", "#4a4a4a"),
    "bg": ("--jp-layout-color0", "transparent", "#1e1e1e"),
    "code-bg": ("--jp-cell-editor-background", "#f5f5f5", "#2b2b2b"),
    "error": ("--jp-error-color1", "#c62828", "#ff6e6e"),
    "warn": ("--jp-warn-color0", "#b26a00", "#ffb74d"),
    "ok": ("--jp-success-color1", "#2e7d32", "#81c784"),
    "info": ("--jp-brand-color1", "#1565c0", "#64b5f6"),
}
# Python token colours: JupyterLab's editor variables (--jp-mirror-editor-*), light and dark fallbacks.
TOKENS = {
    "keyword": ("#008000", "#4caf50"), "atom": ("#8888ff", "#64b5f6"), "number": ("#008800", "#66bb6a"),
    "def": ("#0000ff", "#1e88e5"), "builtin": ("#008000", "#43a047"), "string": ("#ba2121", "#ff7070"),
    "comment": ("#408080", "#408080"), "operator": ("#7800c2", "#d48fff"), "meta": ("#aa22ff", "#aa22ff"),
    "error": ("#ff0000", "#ff0000"),
}


def colour(name: str) -> str:
    """A palette colour as CSS: the theme's variable, else the scheme's, else the light one."""
    variable, light, _ = PALETTE[name]
    return f"var({variable},var(--smx-{name},{light}))"


def strong(name: str) -> str:
    """A status colour pulled 25% towards the text colour: JupyterLab's own warn/error/success colours
    fall below 4.5:1 on some backgrounds (orange on white); mixed, they stay recognisable and readable."""
    return f"color-mix(in srgb,{colour(name)} 75%,{colour('fg')})"


def scheme_style() -> str:
    """Where no --jp-* variables exist, follow the reader's light or dark preference (GitHub, nbconvert)."""
    dark = [f"--smx-{name}:{values[2]}" for name, values in PALETTE.items()]
    dark += [f"--smx-tok-{name}:{values[1]}" for name, values in TOKENS.items()]
    return ("<style>@media (prefers-color-scheme: dark){.smol-magic-trace{" + ";".join(dark) + "}}</style>")


VERDICT_COLOURS = {"allow": "ok", "ask": "warn", "deny": "error"}
APPROVAL_LABELS = {
    "auto": "ran", "run": "ran (approved)", "edit": "ran (edited by you)", "skip": "skipped by you",
    "refused": "refused (needed approval)", "denied": "refused by the guard", "stop": "stopped",
}
STATE_COLOURS = {"waiting for you": "warn", "done": "ok", "max_steps": "warn", "stopped": "muted",
                 "interrupted": "error", "failed": "error", "budget": "warn"}

BOX = (f"border:1px solid {colour('border')};border-radius:6px;padding:6px 10px;margin:4px 0;"
       f"font-family:var(--jp-ui-font-family,sans-serif);color:{colour('fg')}")
PRE = "white-space:pre-wrap;margin:4px 0;font-size:12px;font-family:var(--jp-code-font-family,monospace)"
MUTED = f"font-size:12px;color:{colour('muted')}"


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _token_kind(token: Any) -> str | None:
    """Which of JupyterLab's editor colours a pygments token takes (as CodeMirror colours Python)."""
    from pygments import token as t

    for kind, types in (
        ("comment", (t.Comment,)), ("string", (t.String,)), ("number", (t.Number,)),
        ("atom", (t.Keyword.Constant,)), ("keyword", (t.Keyword, t.Operator.Word)),
        ("builtin", (t.Name.Builtin,)), ("meta", (t.Name.Decorator,)),
        ("def", (t.Name.Function, t.Name.Class)), ("operator", (t.Operator,)), ("error", (t.Error,)),
    ):
        if any(token in kind_type for kind_type in types):
            return kind
    return None


def token_style(kind: str) -> str:
    """A token's colour: JupyterLab's, mixed 60/40 with the code's text colour so that every token
    reads at 4.5:1 or more on the editor background in the Light and Dark themes (alone, JupyterLab's
    dark comment colour is 3.5:1 and its light atom colour, True/None, 2.8:1)."""
    light = TOKENS[kind][0]
    style = (f"color:color-mix(in srgb,var(--jp-mirror-editor-{kind}-color,var(--smx-tok-{kind},{light})) 60%,"
             "currentColor)")
    if kind in ("keyword", "operator"):
        style += ";font-weight:bold"
    elif kind == "comment":
        style += ";font-style:italic"
    return style


@functools.lru_cache(maxsize=256)  # the live card and the static trace highlight the same code
def code_html(code: str) -> str:
    """Syntax-highlighted code with inline styles (no stylesheet needed), in the theme's editor colours."""
    from pygments import lex
    from pygments.lexers.python import PythonLexer  # the module itself: the package's lazy names race threads

    code = shown_text(code)
    parts: list[str] = []
    run_kind, run_text = None, ""
    for token, text in lex(code, PythonLexer(stripnl=False, ensurenl=False)):
        kind = _token_kind(token) if text.strip() else run_kind  # spaces join the run they are in
        if kind != run_kind and run_text:
            parts.append(_span(run_kind, run_text))
            run_text = ""
        run_kind, run_text = kind, run_text + text
    if run_text:
        parts.append(_span(run_kind, run_text))
    return (f'<pre class="smol-magic-code" style="{PRE};color:{colour("fg")};background:{colour("code-bg")};'
            f'padding:6px;border-radius:4px">{"".join(parts)}</pre>')


def _span(kind: str | None, text: str) -> str:
    return esc(text) if kind is None else f'<span style="{token_style(kind)}">{esc(text)}</span>'


def text_html(text: str, colour: str | None = None) -> str:
    """Preformatted text; ``colour`` is any CSS colour (see ``strong``)."""
    style = PRE + (f";color:{colour}" if colour else "")
    return f'<pre style="{style}">{esc(shown_text(text))}</pre>'


def guard_off(verdict: Verdict) -> bool:
    return verdict.guard_off


UNDO_WARNING = "undo cannot restore"


def undo_warnings(verdict: Verdict) -> list[str]:
    """The guard's reasons that say undo cannot restore what the action changes: shown even when it is allowed."""
    return [r for r in verdict.reasons if UNDO_WARNING in r]


def verdict_html(verdict: Verdict) -> str:
    kind = VERDICT_COLOURS["deny"] if guard_off(verdict) else VERDICT_COLOURS.get(verdict.decision, "muted")
    label = "guard OFF: nothing was checked" if guard_off(verdict) else f"guard: {verdict.decision}"
    badge = (f'<span style="border:1px solid {colour(kind)};color:{strong(kind)};border-radius:3px;padding:0 5px;'
             f'font-size:11px">{esc(label)}</span>')
    reasons = "".join(f"<li>{esc(r)}</li>" for r in verdict.reasons)
    warning = "".join(f'<div class="smol-magic-undo-warning" style="font-size:12px;color:{strong("error")}">'
                      f"⚠ {esc(w)}</div>" for w in undo_warnings(verdict))
    return badge + (f'<ul style="margin:2px 0 2px 18px;font-size:12px">{reasons}</ul>' if reasons else "") + warning


def details_html(summary: str, body: str, open_: bool = False) -> str:
    return (f'<details{" open" if open_ else ""}><summary style="cursor:pointer;{MUTED}">'
            f"{esc(summary)}</summary>{body}</details>")


def messages_html(messages: list[dict[str, Any]]) -> str:
    """Each message with its role; an assistant's tool calls and a tool's answers say which call."""
    parts = []
    for m in messages:
        role = m.get("role", "?") + (f" · answer to {m['tool_call_id']}" if m.get("tool_call_id") else "")
        text = m.get("content") or ""
        calls = "\n".join(f"calls {c['function']['name']}({c['function']['arguments']}) · {c.get('id', '')}"
                          for c in m.get("tool_calls") or [])
        parts.append(f'<div style="{MUTED};font-size:11px;margin-top:4px">{esc(role)}</div>'
                     + text_html("\n".join(filter(None, [text, calls]))))
    return "".join(parts)


def compaction_html(compaction: Compaction | None) -> str:
    """Which older steps a request sent with their observations summarised: the model did not see them whole."""
    if compaction is None:
        return ""
    window = f" ({compaction.window:,} tokens)" if compaction.window else ""
    return (f'<div class="smol-magic-compacted" style="color:{strong("warn")};font-size:12px">'
            f"{esc(compaction.label())}: observations summarised to fit the context window{window}; "
            "the steps above keep them whole</div>")


def model_view_html(step: ActionStep, shown: int = 0) -> str:
    """What the model saw and said, for people learning how agents work.

    ``shown`` leading messages were shown with earlier steps: only the new ones
    are repeated, or a long trace would grow with the square of its steps.
    """
    parsed = step.proposed_code or step.code
    earlier = min(shown, len(step.model_input_messages))
    if step.compaction is not None and step.compaction.since is not None:
        earlier = min(earlier, step.compaction.since)  # messages compacted since the last step are shown again
    note = (f'<div style="{MUTED};font-size:11px">… {earlier} earlier messages, as in the steps above</div>'
            if earlier else "")
    body = (
        "<b>Messages sent</b>" + compaction_html(step.compaction) + note
        + messages_html(step.model_input_messages[earlier:])
        + "<b>Raw reply</b>" + text_html("\n".join(filter(None, [step.model_output] + [
            f"calls {c.name}({c.arguments})" for c in step.tool_calls if c.native])) or "(no reply)")
        + "<b>Parsed code</b>" + (code_html(parsed) if parsed else text_html("(none found)"))
    )
    return details_html("what the model saw", body)


def output_html(output: dict[str, Any]) -> str:
    """One nbformat output, as a cell would show it; scripts and widgets become their text."""
    output = redact_data(output)
    if output.get("output_type") == "stream":
        return text_html(output.get("text", ""), colour=strong("error") if output.get("name") == "stderr" else None)
    data = output.get("data", {})
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"]}" style="max-width:100%"/>'
    if "image/svg+xml" in data:
        return sanitize_html(data["image/svg+xml"])
    if "text/html" in data:
        return f'<div style="overflow:auto">{sanitize_html(data["text/html"])}</div>'
    if "text/markdown" in data:
        return text_html(data["text/markdown"])
    return text_html(data.get("text/plain", ""))


def missing_code(step: ActionStep) -> str:
    """Why a step ran no code: no reply, no code in it, or tool calls that could not run (an unknown tool,
    wrong arguments: the observation says which)."""
    if step.tool_calls:
        return "not run: " + ", ".join(f"{c.name}({elide(c.arguments, 200, 'more')})" for c in step.tool_calls)
    return "no code in the reply" if step.model_output else step.error or "no reply"


def step_summary(step: ActionStep) -> str:
    tokens = step.token_usage.input_tokens + step.token_usage.output_tokens
    no_code = "call not run" if step.tool_calls else "no code"
    label = APPROVAL_LABELS.get(step.approval, no_code if step.code is None else step.approval)
    return f"Step {step.step_number} · {label} · {step.duration:.2f} s · {tokens} tokens{cost_text(step.token_usage.cost)}"


def cost_text(cost: float | None) -> str:
    """`` · $0.0012`` after a count of tokens; nothing when the model's price is unknown."""
    return f" · {format_cost(cost)}" if cost is not None else ""


def in_cell_html(step_number: int) -> str:
    """Where an action's outputs are when its cell was inserted: there, not repeated in the trace."""
    return (f'<div class="smol-magic-in-cell" style="{MUTED}">outputs: in the cell below, '
            f"marked “agent · step {step_number}”</div>")


def action_body_html(step: ActionStep, include_outputs: bool = True, shown: int = 0, in_cell: bool = False) -> str:
    """One action's details; ``in_cell`` when its outputs are in an inserted cell (then only a reference)."""
    parts = []
    if step.reasoning:
        parts.append(text_html(step.reasoning))
    if step.proposed_code and step.proposed_code != step.code:
        parts.append(details_html("the model's code, before your edit", code_html(step.proposed_code)))
    if step.code:
        parts.append(code_html(step.code))
        parts.append(verdict_html(step.verdict))
    if in_cell and step.outputs:
        parts.append(in_cell_html(step.step_number))
    elif include_outputs:
        parts.extend(output_html(o) for o in step.outputs)
    parts.extend(managed_run_html(run) for run in step.managed_runs)
    if step.error:
        parts.append(text_html(step.error, colour=strong("error")))
    if step.changes_text:
        parts.append(f'<div style="{MUTED}">Variables changed:</div>{text_html(step.changes_text)}')
    if step.observation:
        parts.append(details_html("observation sent to the model", text_html(step.observation)))
    parts.append(model_view_html(step, shown))
    return "".join(parts)


def managed_title(run: RunResult) -> str:
    """One line for a managed agent's run: who, what it was asked, how it ended."""
    actions = len(run.action_steps)
    return (f"{run.agent_name} · {task_title(run.task, 80)} · {run.state} · {actions} step{'s' if actions != 1 else ''}"
            f" · {run.duration:.1f} s")


MANAGED_STYLE = f"margin:4px 0 4px 12px;border-left:2px solid {colour('info')};padding-left:8px"


def managed_run_html(run: RunResult) -> str:
    """A managed agent's run inside the step that called it: one line, its own steps under it."""
    body, shown = [], 0
    for step in run.steps:
        if not isinstance(step, TaskStep):
            body.append(step_html(step, shown=shown))
        if isinstance(step, ActionStep):
            shown = len(step.model_input_messages)
    if run.error:
        body.append(text_html(run.error, colour=strong("error")))
    return (f'<div class="smol-magic-managed" style="{MANAGED_STYLE}">'
            f'{details_html("managed agent " + managed_title(run), "".join(body))}</div>')


def step_block(summary: str, body: str, open_: bool) -> str:
    """A step: one line (its summary) when closed, in the text colour so it reads on any theme."""
    return (f'<div class="smol-magic-step" style="{BOX}"><details{" open" if open_ else ""}>'
            f'<summary style="cursor:pointer;font-size:13px;color:{colour("fg")}">{esc(summary)}</summary>'
            f"{body}</details></div>")


def step_html(step: MemoryStep, open_: bool = False, shown: int = 0, in_cell: bool = False) -> str:
    if isinstance(step, ActionStep):
        return step_block(step_summary(step), action_body_html(step, shown=shown, in_cell=in_cell), open_)
    if isinstance(step, PlanningStep):
        return step_block("Plan", text_html(step.plan), open_)
    if isinstance(step, FinalAnswerStep):
        return final_html(step.output)
    return ""


def final_html(value: Any) -> str:
    return (f'<div style="{BOX};border-color:{colour("ok")}"><b>Final answer</b>'
            f"{output_html(value_bundle(value))}</div>")


def header_html(task: str, model_id: str, status: str, elapsed: float, tokens_in: int, tokens_out: int,
                expandable: bool = False, cost: float | None = None) -> str:
    """The run's first line: the task as the user typed it (shortened at a word, whole in the tooltip),
    the model, the status, tokens and cost (if the model's price is known).
    ``expandable`` adds the whole task under a "full task" toggle when shortened."""
    full = shown_text(task.strip())
    title = task_title(full)
    more = (details_html("full task", text_html(full)) if expandable and title != full else "")
    status_colour = strong(STATE_COLOURS.get(status, "info"))
    return (
        f'<div style="font-family:var(--jp-ui-font-family,sans-serif);line-height:1.4;color:{colour("fg")}">'
        f'<span style="{MUTED};font-size:11px">agent</span> '
        f'<b class="smol-magic-task" title="{esc(elide(full, TITLE_CHARS, NOT_SHOWN))}">{esc(title)}</b><br>'
        f'<span style="{MUTED}">{esc(model_id)} · '
        f'<span class="smol-status" style="color:{status_colour}">{esc(status)}</span> · {elapsed:.1f} s · '
        f"{tokens_in} tokens in, {tokens_out} out{esc(cost_text(cost))}</span>{more}</div>"
    )


def task_title(task: str, limit: int = 100) -> str:
    """The task's first line, cut at a word boundary to at most ``limit`` characters; "…" if anything is left out."""
    text = task.strip()
    first = text.splitlines()[0].strip() if text else ""
    if len(first) <= limit:
        return first + (" …" if first != text else "")
    cut = first[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:  # a word boundary not too far back; else (one long word) cut inside it
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def run_html(task: str, model_id: str, steps: list[MemoryStep], state: str, duration: float,
             tokens_in: int, tokens_out: int, error: str | None = None, in_cells: Collection[int] = (),
             cost: float | None = None) -> str:
    """The whole finished run, static: what a reopened notebook, GitHub and nbconvert show.

    Each step is one line, the newest open; ``in_cells`` are the steps whose outputs are in inserted cells.
    """
    body = [scheme_style(), header_html(task, model_id, state, duration, tokens_in, tokens_out, expandable=True,
                                        cost=cost)]
    shown = 0
    shown_steps = [s for s in steps if isinstance(s, (ActionStep, PlanningStep))]
    newest = shown_steps[-1] if shown_steps else None
    for step in steps:
        if not isinstance(step, TaskStep):
            in_cell = isinstance(step, ActionStep) and step.step_number in in_cells
            body.append(step_html(step, open_=step is newest, shown=shown, in_cell=in_cell))
        if isinstance(step, ActionStep):
            shown = len(step.model_input_messages)
    actions = sum(isinstance(s, ActionStep) for s in steps)
    summary = (f"{state} · {actions} step{'s' if actions != 1 else ''} · {duration:.1f} s · "
               f"{tokens_in + tokens_out} tokens{cost_text(cost)}")
    if error:
        summary += f" · {error}"
    body.append(f'<div style="{MUTED}">{esc(summary)}</div>')
    return (f'<div class="smol-magic-trace" style="{BOX};background:{colour("bg")}">' + "".join(body) + "</div>")


def value_bundle(value: Any) -> dict[str, Any]:
    """The mime bundle IPython would show for a value (DataFrames as tables, figures as images).

    A value whose ``repr`` raises gets a one-line text instead: IPython's formatters would print the
    traceback into the cell once for each place the value is shown (the trace, the cells, the export).
    """
    try:
        repr(value)
    except Exception:  # noqa: BLE001 - whatever the user's __repr__ raises
        return {"output_type": "display_data", "data": {"text/plain": safe_repr(value)}, "metadata": {}}
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            data, metadata = shell.display_formatter.format(value)
            return {"output_type": "display_data", "data": redact_data(json_safe(data)), "metadata": metadata}
    except Exception:
        pass
    return {"output_type": "display_data", "data": {"text/plain": redact_secrets(safe_repr(value))}, "metadata": {}}
