"""The run store: every run, step by step, in one SQLite file, so runs outlast the kernel.

Plain Python (stdlib ``sqlite3``): nothing here imports Jupyter. ``StoreWriter`` is the
``Renderer`` that writes a run as it happens; ``queries`` reads, lists and forgets runs.
"""

from .connection import SCHEMA_VERSION, StoreError
from .database import RunStore
from .location import DEFAULT, ENV, resolve
from .queries import Forgotten, Reply, RunRow, StoredRun
from .writer import StoreWriter

__all__ = ["DEFAULT", "ENV", "Forgotten", "Reply", "RunRow", "RunStore", "SCHEMA_VERSION", "StoreError",
           "StoreWriter", "StoredRun", "resolve"]
