"""Which kernel wrote a run, and whether it still lives: a run whose kernel died (SIGKILL, no atexit)
stays ``running`` in the store until a reader sees its process is gone and marks it ``interrupted``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Writer:
    pid: int
    started: str  # the process's start time (Linux: /proc), so a reused pid is not taken for the old kernel
    host: str


def this_process() -> Writer:
    return Writer(os.getpid(), start_time(os.getpid()), socket.gethostname())


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" where /proc is not there)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""  # field 22 of /proc/PID/stat


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the process name (which, in parentheses, may hold spaces): state first."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def is_gone(pid: int | None, started: str | None, host: str | None) -> bool:
    """The writer is known to be dead: on this host, and no such process (or another one with its pid)."""
    if pid is None or host != socket.gethostname():
        return False  # another machine's kernel: it cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return False
    fields = _stat(pid)
    if fields[:1] in (["Z"], ["X"]):  # killed, not yet reaped by its parent
        return True
    return bool(started) and len(fields) > 19 and fields[19] != started
