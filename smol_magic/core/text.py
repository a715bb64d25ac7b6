"""Shortening text for prompts and messages."""

from __future__ import annotations


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
