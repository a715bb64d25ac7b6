"""Output written below Python, to file descriptors 1 and 2, captured for the step that wrote it.

``print`` goes through ``sys.stdout``, which the executors redirect; a C library's ``printf``, a
Fortran solver's progress lines or ``os.write(1, ...)`` go straight to the file descriptor, past
that redirection and its size cap, into whatever cell runs next. During an action, descriptors
1 and 2 point at temporary files; afterwards they are put back (whatever happened) and the files
are read back, head and tail, bounded like the Python-level streams.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import tempfile
import threading
from typing import IO, Iterator


@functools.cache
def _libc(keep_gil: bool = False) -> ctypes.CDLL | None:
    """The C library, loaded once: ``ctypes.CDLL`` costs ~25 us, twice per action otherwise.

    ``keep_gil``: its functions are called without releasing the GIL (``ctypes.PyDLL``). Releasing it
    hands the interpreter to any thread that waits for it (IPython's history writer wakes up with
    every cell) and getting it back can take a thread switch interval (5 ms).
    """
    try:
        return ctypes.PyDLL(None) if keep_gil else ctypes.CDLL(None)
    except OSError:
        return None


def _flush_c_streams(to_files: bool = False) -> None:
    """C's stdio buffers what it prints; flush it so the bytes land while our files are in place.

    ``to_files``: fds 1 and 2 point at our files, where a write never waits, so the GIL is kept;
    before that they may be a pipe that is full until another Python thread reads it.
    """
    libc = _libc(to_files)
    if libc is not None:
        with contextlib.suppress(Exception):
            libc.fflush(None)


def read_bounded(f: IO[bytes], limit: int) -> str:
    """The file's text, or its head and tail with a count of what is left out, at most ``limit`` characters."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    if size <= limit:
        return f.read().decode("utf-8", "replace")
    head = f.read(limit * 3 // 4)
    f.seek(size - limit // 4)
    tail = f.read()
    left_out = size - len(head) - len(tail)
    return (head.decode("utf-8", "replace") + f"\n... [{left_out:,} bytes written below Python not shown] ...\n"
            + tail.decode("utf-8", "replace"))


_SPARE: list[IO[bytes]] = []  # emptied files of earlier actions: making one costs ~25 us, two per action
_MAX_SPARE = 4


def _take() -> IO[bytes]:
    return _SPARE.pop() if _SPARE else tempfile.TemporaryFile(prefix="smol-magic-fd")


def _give_back(f: IO[bytes], written: int) -> None:
    """Keep the file for the next action, emptied; a nested action (a managed agent's) takes others."""
    try:
        if written:
            f.seek(0)
            f.truncate()
    except OSError:
        f.close()
        return
    if len(_SPARE) < _MAX_SPARE:
        _SPARE.append(f)
    else:
        f.close()


@contextlib.contextmanager
def fd_capture(limit: int) -> Iterator[dict[int, str]]:
    """Point fds 1 and 2 at temporary files for the block; the dict gets {fd: text} when it ends.

    Only on the main thread (an action runs there; another thread must not steal the process's fds).
    """
    texts: dict[int, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield texts
        return
    saved: dict[int, int] = {}
    files: dict[int, IO[bytes]] = {}
    _flush_c_streams()
    try:
        for fd in (1, 2):
            try:
                saved[fd] = os.dup(fd)
            except OSError:  # closed (pythonw, some daemons): nothing to capture
                continue
            files[fd] = _take()
            os.dup2(files[fd].fileno(), fd)
        yield texts
    finally:
        _flush_c_streams(to_files=bool(files))
        for fd, old in saved.items():
            os.dup2(old, fd)
            os.close(old)
        for fd, f in files.items():
            written = 0
            try:
                written = f.seek(0, os.SEEK_END)  # most actions write nothing below Python: no read, no truncate
                texts[fd] = read_bounded(f, limit) if written else ""
            finally:
                _give_back(f, written)
