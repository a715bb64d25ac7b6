"""litellm's model cost map, read without importing litellm (seconds, and a network fetch unless told not to).

Its own module so that the model clients (``core/direct.py``) can ask whether litellm knows a model
without importing ``core/costs.py``, which imports them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Mapping

BUNDLED_MAP = "model_prices_and_context_window_backup.json"  # in litellm's package folder


@functools.lru_cache(maxsize=1)
def bundled_map() -> Mapping[str, Any]:
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        try:
            return json.loads((Path(folder) / BUNDLED_MAP).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return {}


def model_cost_map() -> Mapping[str, Any]:
    """litellm's model cost map: the imported ``litellm.model_cost`` if litellm is loaded, else its bundled file."""
    litellm = sys.modules.get("litellm")
    loaded = getattr(litellm, "model_cost", None)
    return loaded if isinstance(loaded, Mapping) and loaded else bundled_map()
