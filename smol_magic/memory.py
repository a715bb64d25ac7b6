"""Moved to ``smol_magic.core.memory``; this name stays until ``guard`` imports it from there."""

from .core.memory import *  # noqa: F401,F403
from .core.memory import Verdict  # noqa: F401  (what guard.py imports)
