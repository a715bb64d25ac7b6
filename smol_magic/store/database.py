"""``RunStore``: one store file, opened on first use, that warns once when it cannot be written."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Callable

from .connection import BUSY_MS, StoreError, connect
from .process import Writer, this_process


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


class RunStore:
    """The store at ``path``: a connection shared by this process's writers and readers (under ``lock``)."""

    def __init__(self, path: str | Path, warn: Callable[[str], None] = _stderr, busy_ms: int = BUSY_MS):
        self.path = Path(path)
        self.warn = warn
        self.busy_ms = busy_ms
        self.lock = threading.RLock()
        self.writer: Writer = this_process()
        self._conn: sqlite3.Connection | None = None
        self._warned = False

    def connection(self) -> sqlite3.Connection:
        """The open connection (``StoreError`` if the store cannot be opened)."""
        with self.lock:
            if self._conn is None:
                self._conn = connect(self.path, self.busy_ms)
            return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def failed(self, exc: BaseException, lost: bool = False) -> None:
        """A write failed: say so once, shortly, with what to do. The run goes on."""
        if self._warned:
            return
        self._warned = True
        why = str(exc).removeprefix(f"cannot open {self.path} ").strip("() ") if isinstance(exc, StoreError) else exc
        self.warn(f"smol-magic: warning: runs cannot be saved to {self.path} ({why}); the run goes on, "
                  f"{'but this run is not kept' if lost else 'and saving is tried again at each step'}. "
                  "Free disk space or close what holds the file, or choose another store: "
                  "%config AgentMagics.store = \"path/runs.sqlite\" (\"\" turns it off).")
