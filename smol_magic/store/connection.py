"""Opening the run store: one SQLite file, WAL mode, a busy timeout, and a schema with a version number.

WAL lets a kernel list runs while another writes; the busy timeout makes two kernels that
write at the same moment take turns instead of failing. Every table is created here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1
BUSY_MS = 1000  # how long a write waits for another kernel's write before it gives up (and is retried later)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per run, with the columns %agent runs shows, so listing never reads the steps.
-- AUTOINCREMENT: an id is never reused after %agent forget, so "run 7" always means one run.
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER,             -- the run whose conversation this one continued (NULL: a new conversation)
    notebook TEXT NOT NULL DEFAULT '',
    task TEXT NOT NULL DEFAULT '',
    model_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '{}',        -- JSON: class, model_id, api_base, parameters (no credentials)
    agent_type TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    ended REAL,
    state TEXT NOT NULL,                     -- running, done, max_steps, stopped, interrupted, failed
    error TEXT,
    steps INTEGER NOT NULL DEFAULT 0,        -- action steps
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,                               -- dollars; NULL when unknown
    answer TEXT,                             -- the final answer's repr (elided)
    summary TEXT,                            -- the final answer in a line
    variables_before TEXT NOT NULL DEFAULT '[]',  -- JSON lists of names
    variables_read TEXT NOT NULL DEFAULT '[]',
    variables_created TEXT NOT NULL DEFAULT '[]',
    variables_changed TEXT NOT NULL DEFAULT '[]',
    pid INTEGER,                             -- the kernel that wrote it, to tell a dead kernel's run
    pid_started TEXT,
    host TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_notebook ON runs (notebook, id);
CREATE INDEX IF NOT EXISTS runs_running ON runs (state) WHERE state = 'running';
-- One row per step, in order. data: the step's to_dict() without its input messages, which are
-- in `messages` once each: `inputs` is {"keep": k, "new": [sha256, ...]}, the first k messages of
-- the run's previous model call, then these. So the store grows with the conversation, not its square.
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step_number INTEGER,
    data TEXT NOT NULL,
    inputs TEXT,
    started REAL,
    ended REAL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (hash TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
-- Which runs refer to which message: a message no run refers to any more is deleted with its last run.
CREATE TABLE IF NOT EXISTS message_refs (
    hash TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    PRIMARY KEY (hash, run_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_refs_by_run ON message_refs (run_id);
"""


class StoreError(Exception):
    """The store cannot be used: say where, why, and what to do."""


def connect(path: str | Path, busy_ms: int = BUSY_MS) -> sqlite3.Connection:
    """Open (creating if need be) the store at ``path``; ``StoreError`` if it cannot be, or is newer than us."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open {path} ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a committed step survives a killed kernel
        conn.execute("PRAGMA foreign_keys = ON")
        version = _version(conn)
        if version is None:
            with transaction(conn):
                for statement in _statements(SCHEMA):
                    conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            version = _version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"{path} was written by a newer smol-magic (store version {version}, this one reads "
                             f"{SCHEMA_VERSION}): upgrade smol-magic, or use another store")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot use {path} ({exc})") from None
    except StoreError:
        conn.close()
        raise
    return conn


def _version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return int(row[0]) if row else None


def _statements(script: str) -> list[str]:
    """The schema's statements one by one (``executescript`` would commit outside our transaction)."""
    lines = [line.split("--")[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class transaction:
    """``with transaction(conn):`` one ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    IMMEDIATE takes the write lock at the start, so two writers wait for each other (busy
    timeout) instead of one failing half-way with "database is locked".
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
