"""``%agent runs``: the stored runs of this notebook (or of all), newest first, as a table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ...store import RunRow, queries
from ...ui.html import BOX, MUTED, STATE_COLOURS, colour, esc, scheme_style, strong, task_title
from .. import stored
from .base import Parser

HELP = "runs [--all-notebooks] [--limit N]: the stored runs (id, when, task, model, state, steps, tokens, cost)"
COLUMNS = ("id", "when", "task", "model", "state", "steps", "tokens", "cost")
TASK_CHARS = 48


def parser():
    p = Parser("runs")
    p.add_argument("--all-notebooks", action="store_true", help="the runs of every notebook of this store")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="show the newest N runs (default 20)")
    return p


def run(magics: Any, args: Any) -> None:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    path = stored.store_path(magics.store)
    rows: list[RunRow] = []
    total = 0
    if path is None or path.exists():  # an empty listing for a store not made yet (reading makes none)
        store = magics.stores.required(magics.store)
        notebook = None if args.all_notebooks else stored.notebook_name(magics.shell)
        rows, total = queries.list_runs(store, notebook, args.limit)
        path = store.path
    display({"text/html": table_html(rows, total, path, args.all_notebooks),
             "text/plain": table_text(rows, total, path, args.all_notebooks)}, raw=True)


def cells(row: RunRow) -> tuple[str, ...]:
    tokens = row.input_tokens + row.output_tokens
    return (str(row.id), datetime.fromtimestamp(row.started).strftime("%Y-%m-%d %H:%M"),
            task_title(row.task, TASK_CHARS), row.model_id, row.state, str(row.steps), f"{tokens:,}",
            cost_text(row.cost))


def cost_text(cost: float | None) -> str:
    if cost is None:
        return "—"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def footer(rows: list[RunRow], total: int, path: Any, everywhere: bool) -> str:
    whose = "all notebooks" if everywhere else "this notebook"
    if not total:
        return (f"no stored runs of {whose} in {path}" + ("" if everywhere else "; %agent runs --all-notebooks "
                                                               "lists the others"))
    shown = f"the newest {len(rows)} of {total:,}" if len(rows) < total else f"{total:,}"
    more = " (--limit N for more)" if len(rows) < total else ""
    return (f"{shown} stored run{'s' if total != 1 else ''} of {whose}{more} · {path} · "
            "%agent show N · %%agent --resume N · %agent forget N")


def table_text(rows: list[RunRow], total: int, path: Any, everywhere: bool) -> str:
    lines = [COLUMNS] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    right = {0, 5, 6, 7}
    text = ["  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines] if rows else []
    return "\n".join(text + [footer(rows, total, path, everywhere)])


def table_html(rows: list[RunRow], total: int, path: Any, everywhere: bool) -> str:
    cell = f"padding:2px 8px;text-align:left;border-bottom:1px solid {colour('border')}"
    head = "".join(f'<th style="{cell}">{name}</th>' for name in COLUMNS)
    body = []
    for row in rows:
        values = cells(row)
        parts = []
        for name, value in zip(COLUMNS, values):
            style = cell
            if name == "state":
                style += f";color:{strong(STATE_COLOURS.get(value, 'info'))}"
            title = f' title="{esc(row.task[:500])}"' if name == "task" else ""
            if name == "state" and row.error:
                title = f' title="{esc(row.error[:500])}"'
            parts.append(f'<td style="{style}"{title}>{esc(value)}</td>')
        body.append("<tr>" + "".join(parts) + "</tr>")
    table = (f'<table class="smol-magic-runs" style="border-collapse:collapse;font-size:12px">'
             f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>") if rows else ""
    return (f'<div style="{BOX}">{scheme_style()}{table}'
            f'<div style="{MUTED}">{esc(footer(rows, total, path, everywhere))}</div></div>')
