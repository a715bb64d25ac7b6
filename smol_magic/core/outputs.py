"""Cell outputs as nbformat v4 data: built from what an action showed, read back as text, kept JSON-safe."""

from __future__ import annotations

import json
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: what is not JSON (numpy numbers, dates, ...) becomes its ``str``."""
    if isinstance(value, str):
        return value
    return json.loads(json.dumps(value, default=str))


def cell_outputs(stdout: str, stderr: str, displays: list[tuple[dict, dict]]) -> list[dict[str, Any]]:
    """What an action showed, as nbformat v4 outputs (streams first: their interleaving is not kept)."""
    outputs: list[dict[str, Any]] = [
        {"output_type": "stream", "name": name, "text": text} for name, text in (("stdout", stdout), ("stderr", stderr))
        if text
    ]
    outputs += [{"output_type": "display_data", "data": json_safe(data), "metadata": metadata or {}}
                for data, metadata in displays]
    return outputs


def output_text(outputs: list[dict[str, Any]]) -> str:
    """The text of cell outputs, as the model reads it."""
    parts = [o["text"] if o["output_type"] == "stream" else o["data"].get("text/plain", "") for o in outputs]
    return "\n".join(p.rstrip("\n") for p in parts if p and p.strip())
