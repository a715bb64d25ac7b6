"""Rules of litellm's that several direct routes copy (core/direct_*.py): which messages are plain text, and
how it joins an API's path to a base address (``ensure_api_route``)."""

from __future__ import annotations

from typing import Any, Collection
from urllib.parse import urlsplit


def text_messages(messages: list[dict[str, Any]], fields: Collection[str], roles: Collection[str]) -> bool:
    """Every message has only these fields and one of these roles, and its content is text (or None)."""
    return all(not set(message) - set(fields) and message.get("role") in roles
               and isinstance(message.get("content"), (str, type(None))) for message in messages)


def api_route(base: str, path: str) -> str | None:
    """litellm's ``ensure_api_route(base, path)``: ``path`` added unless the base ends with it already; None
    for a base with a query or fragment, or no host (litellm joins those otherwise: not copied)."""
    parts = urlsplit(base)
    if parts.query or parts.fragment or not parts.netloc:
        return None
    base = base.rstrip("/")
    return base if urlsplit(base).path.endswith(path) else base + path
