"""Shortening text for prompts and messages."""

from __future__ import annotations

from typing import Any


def safe_repr(value: Any) -> str:
    """``repr`` that never raises: a user's broken ``__repr__`` must not lose a run, a record or a trace."""
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises
        return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"


def clip(text: str, limit: int) -> str:
    """The head of ``text``, ``...`` marking a cut: for one-line summaries."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail: the end of a traceback or a printout matters most."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[-tail:]}"


SHOWN_CHARS = 20_000  # the longest text a trace shows (a model's reply, a task, a printout)
RESENT_CHARS = 20_000  # the longest reply or task sent again to the model with each later request


def elide(text: str, limit: int, note: str = "not shown") -> str:
    """Head and tail of ``text`` within ``limit`` characters, saying how many characters were left out."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n… [{len(text) - limit:,} characters {note}] …\n{text[-tail:]}"
