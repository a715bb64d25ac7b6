"""Where the run store lives: ``.smol_magic/runs.sqlite`` in the notebook's folder, or the user's data dir."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT = ".smol_magic/runs.sqlite"  # relative: the kernel's working directory, which Jupyter sets to the notebook's
ENV = "SMOL_MAGIC_STORE"  # overrides the default (e.g. for CI, or "" to turn the store off)
FILE = "runs.sqlite"


def resolve(setting: str, cwd: str | Path, fallback_dir: str | Path | None = None) -> Path | None:
    """The store's file for the setting ``AgentMagics.store``; None when it is off ("").

    A relative path is taken from ``cwd``. The default falls back to ``fallback_dir`` when the
    notebook's folder cannot be written (a read-only share); a path the user named does not move.
    """
    if not setting.strip():
        return None
    path = Path(setting.strip()).expanduser()
    if not path.is_absolute():
        path = Path(cwd) / path
    if setting.strip() != DEFAULT or fallback_dir is None or writable_folder(path.parent):
        return path
    return Path(fallback_dir) / FILE


def writable_folder(folder: Path) -> bool:
    """The folder can be written, or made in a folder that can (nothing is made here: only a run makes the store)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
