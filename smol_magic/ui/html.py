"""HTML fragments for a run: shared by the live widget and the static trace.

The static trace is what a saved notebook keeps once the widget is gone, so it
must stand alone: inline styles, ``<details>`` for what is collapsed, images
inlined, no scripts.
"""

from __future__ import annotations

import functools
import html
from typing import Any

from ..core.memory import ActionStep, FinalAnswerStep, MemoryStep, PlanningStep, TaskStep, Verdict
from ..core.outputs import json_safe

VERDICT_COLOURS = {"allow": "#2e7d32", "ask": "#b26a00", "deny": "#c62828"}
APPROVAL_LABELS = {
    "auto": "ran", "run": "ran (approved)", "edit": "ran (edited by you)", "skip": "skipped by you",
    "refused": "refused (needed approval)", "denied": "refused by the guard", "stop": "stopped",
}
STATE_COLOURS = {"waiting for you": "#b26a00", "done": "#2e7d32", "max_steps": "#b26a00", "stopped": "#555", "interrupted": "#c62828",
                 "failed": "#c62828"}

BOX = "border:1px solid #ddd;border-radius:6px;padding:6px 10px;margin:4px 0;font-family:var(--jp-ui-font-family,sans-serif)"
PRE = "white-space:pre-wrap;margin:4px 0;font-size:12px;font-family:var(--jp-code-font-family,monospace)"


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


@functools.lru_cache(maxsize=256)  # the live card and the static trace highlight the same code
def code_html(code: str) -> str:
    """Syntax-highlighted code with inline styles (no stylesheet needed)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    body = highlight(code, PythonLexer(), HtmlFormatter(noclasses=True, nowrap=True, style="default"))
    return f'<pre style="{PRE};background:#f7f7f7;padding:6px;border-radius:4px">{body}</pre>'


def text_html(text: str, colour: str | None = None) -> str:
    style = PRE + (f";color:{colour}" if colour else "")
    return f'<pre style="{style}">{esc(text)}</pre>'


def guard_off(verdict: Verdict) -> bool:
    return verdict.guard_off


def verdict_html(verdict: Verdict) -> str:
    colour = VERDICT_COLOURS["deny"] if guard_off(verdict) else VERDICT_COLOURS.get(verdict.decision, "#555")
    label = "guard OFF: nothing was checked" if guard_off(verdict) else f"guard: {verdict.decision}"
    badge = (f'<span style="background:{colour};color:white;border-radius:3px;padding:0 5px;'
             f'font-size:11px">{esc(label)}</span>')
    reasons = "".join(f"<li>{esc(r)}</li>" for r in verdict.reasons)
    return badge + (f'<ul style="margin:2px 0 2px 18px;font-size:12px">{reasons}</ul>' if reasons else "")


def details_html(summary: str, body: str, open_: bool = False) -> str:
    return (f'<details{" open" if open_ else ""}><summary style="cursor:pointer;font-size:12px;color:#555">'
            f"{esc(summary)}</summary>{body}</details>")


def messages_html(messages: list[dict[str, str]]) -> str:
    parts = [
        f'<div style="font-size:11px;color:#777;margin-top:4px">{esc(m.get("role", "?"))}</div>'
        + text_html(m.get("content") or "")
        for m in messages
    ]
    return "".join(parts)


def model_view_html(step: ActionStep, shown: int = 0) -> str:
    """What the model saw and said, for people learning how agents work.

    ``shown`` leading messages were shown with earlier steps: only the new ones
    are repeated, or a long trace would grow with the square of its steps.
    """
    parsed = step.proposed_code or step.code
    earlier = min(shown, len(step.model_input_messages))
    note = (f'<div style="font-size:11px;color:#777">… {earlier} earlier messages, as in the steps above</div>'
            if earlier else "")
    body = (
        "<b>Messages sent</b>" + note + messages_html(step.model_input_messages[earlier:])
        + "<b>Raw reply</b>" + text_html(step.model_output or "(no reply)")
        + "<b>Parsed code</b>" + (code_html(parsed) if parsed else text_html("(none found)"))
    )
    return details_html("what the model saw", body)


def output_html(output: dict[str, Any]) -> str:
    """One nbformat output, as a cell would show it; scripts and widgets become their text."""
    if output.get("output_type") == "stream":
        return text_html(output.get("text", ""), colour="#c62828" if output.get("name") == "stderr" else None)
    data = output.get("data", {})
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"]}" style="max-width:100%"/>'
    if "image/svg+xml" in data:
        return data["image/svg+xml"] if "<script" not in data["image/svg+xml"] else text_html("[svg]")
    if "text/html" in data and "<script" not in data["text/html"].lower():
        return f'<div style="overflow:auto">{data["text/html"]}</div>'
    if "text/markdown" in data:
        return text_html(data["text/markdown"])
    return text_html(data.get("text/plain", ""))


def step_summary(step: ActionStep) -> str:
    tokens = step.token_usage.input_tokens + step.token_usage.output_tokens
    label = APPROVAL_LABELS.get(step.approval, "no code" if step.code is None else step.approval)
    return f"Step {step.step_number} · {label} · {step.duration:.2f} s · {tokens} tokens"


def action_body_html(step: ActionStep, include_outputs: bool = True, shown: int = 0) -> str:
    parts = []
    if step.reasoning:
        parts.append(text_html(step.reasoning))
    if step.proposed_code and step.proposed_code != step.code:
        parts.append(details_html("the model's code, before your edit", code_html(step.proposed_code)))
    if step.code:
        parts.append(code_html(step.code))
        parts.append(verdict_html(step.verdict))
    if include_outputs:
        parts.extend(output_html(o) for o in step.outputs)
    if step.error:
        parts.append(text_html(step.error, colour="#c62828"))
    if step.changes_text:
        parts.append(f'<div style="font-size:12px;color:#555">Variables changed:</div>{text_html(step.changes_text)}')
    if step.observation:
        parts.append(details_html("observation sent to the model", text_html(step.observation)))
    parts.append(model_view_html(step, shown))
    return "".join(parts)


def step_html(step: MemoryStep, open_: bool = False, shown: int = 0) -> str:
    if isinstance(step, ActionStep):
        body = action_body_html(step, shown=shown)
        return f'<div style="{BOX}">' + details_html(step_summary(step), body, open_) + "</div>"
    if isinstance(step, PlanningStep):
        return f'<div style="{BOX}">' + details_html("Plan", text_html(step.plan), open_) + "</div>"
    if isinstance(step, FinalAnswerStep):
        return final_html(step.output)
    return ""


def final_html(value: Any) -> str:
    return (f'<div style="{BOX};border-color:#2e7d32"><b>Final answer</b>'
            f"{output_html(value_bundle(value))}</div>")


def header_html(task: str, model_id: str, status: str, elapsed: float, tokens_in: int, tokens_out: int) -> str:
    colour = STATE_COLOURS.get(status, "#1565c0")
    return (
        f'<div style="font-family:var(--jp-ui-font-family,sans-serif)"><span style="font-size:11px;color:#777">agent</span> <b>{esc(task_title(task))}</b><br>'
        f'<span style="font-size:12px;color:#555">{esc(model_id)} · '
        f'<span class="smol-status" style="color:{colour}">{esc(status)}</span> · {elapsed:.1f} s · '
        f"{tokens_in} tokens in, {tokens_out} out</span></div>"
    )


def task_title(task: str, limit: int = 100) -> str:
    first = task.strip().splitlines()[0] if task.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def run_html(task: str, model_id: str, steps: list[MemoryStep], state: str, duration: float,
             tokens_in: int, tokens_out: int, error: str | None = None) -> str:
    """The whole finished run, static: what a reopened notebook, GitHub and nbconvert show."""
    body = [header_html(task, model_id, state, duration, tokens_in, tokens_out)]
    shown = 0
    for step in steps:
        if not isinstance(step, TaskStep):
            body.append(step_html(step, open_=True, shown=shown))
        if isinstance(step, ActionStep):
            shown = len(step.model_input_messages)
    actions = sum(isinstance(s, ActionStep) for s in steps)
    summary = f"{state} · {actions} step{'s' if actions != 1 else ''} · {duration:.1f} s · {tokens_in + tokens_out} tokens"
    if error:
        summary += f" · {error}"
    body.append(f'<div style="font-size:12px;color:#555">{esc(summary)}</div>')
    return f'<div class="smol-magic-trace" style="{BOX}">' + "".join(body) + "</div>"


def value_bundle(value: Any) -> dict[str, Any]:
    """The mime bundle IPython would show for a value (DataFrames as tables, figures as images)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            data, metadata = shell.display_formatter.format(value)
            return {"output_type": "display_data", "data": json_safe(data), "metadata": metadata}
    except Exception:
        pass
    return {"output_type": "display_data", "data": {"text/plain": repr(value)}, "metadata": {}}
