"""Output written below Python, to file descriptors 1 and 2, captured for the step that wrote it.

``print`` goes through ``sys.stdout``, which the executors redirect; a C library's ``printf``, a
Fortran solver's progress lines or ``os.write(1, ...)`` go straight to the file descriptor, past
that redirection and its size cap, into whatever cell runs next. During an action, descriptors
1 and 2 point at temporary files; afterwards they are put back (whatever happened) and the files
are read back, head and tail, bounded like the Python-level streams.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import sys
import tempfile
import threading
from typing import IO, Any, Iterator


@functools.cache
def _libc(keep_gil: bool = False) -> ctypes.CDLL | None:
    """The C library, loaded once: ``ctypes.CDLL`` costs ~25 us, twice per action otherwise.

    ``keep_gil``: its functions are called without releasing the GIL (``ctypes.PyDLL``). Releasing it
    hands the interpreter to any thread that waits for it (IPython's history writer wakes up with
    every cell) and getting it back can take a thread switch interval (5 ms).
    """
    try:
        return ctypes.PyDLL(None, use_errno=True) if keep_gil else ctypes.CDLL(None)
    except OSError:
        return None


_F_DUPFD_CLOEXEC = 1030  # <fcntl.h> on Linux


def _linux_libc() -> ctypes.CDLL | None:
    """The C library called with the GIL kept, on Linux only: the constants above and glibc's
    ``__fpending`` are Linux's; elsewhere (None) the ``os`` functions and a plain flush are used."""
    return _libc(True) if sys.platform.startswith("linux") else None


class _Fd:
    """``dup``, ``dup2``, ``close`` and the size of a file, without releasing the GIL.

    ``os.dup2`` and friends release it, and once a cell has run, IPython's history writer waits for
    it: each release hands it the interpreter for a sqlite commit, ~60 us a call, 8 calls an action.
    On these descriptors (a terminal, a pipe, our files) none of these calls can block. Linux only:
    elsewhere (and without a C library) the ``os`` functions.
    """

    def __init__(self) -> None:
        libc = _linux_libc()
        self.libc = libc
        if libc is not None:
            libc.lseek.restype, libc.lseek.argtypes = ctypes.c_int64, (ctypes.c_int, ctypes.c_int64, ctypes.c_int)
            for name in ("dup2", "fcntl", "close"):
                getattr(libc, name).restype = ctypes.c_int

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")
        return result

    def dup(self, fd: int) -> int:
        """A copy of ``fd``, not inherited by child processes (as ``os.dup``)."""
        if self.libc is None:
            return os.dup(fd)
        return self._check(self.libc.fcntl(fd, _F_DUPFD_CLOEXEC, 0), "dup")

    def dup2(self, fd: int, to: int) -> None:
        if self.libc is None:
            os.dup2(fd, to)
        else:
            self._check(self.libc.dup2(fd, to), "dup2")

    def close(self, fd: int) -> None:
        if self.libc is None:
            os.close(fd)
        else:
            self._check(self.libc.close(fd), "close")

    def size(self, f: IO[bytes]) -> int:
        """The file's size; its position moves to its end (where it is anyway, unless written to)."""
        if self.libc is None:
            return f.seek(0, os.SEEK_END)
        return self._check(self.libc.lseek(f.fileno(), 0, os.SEEK_END), "lseek")


_FD = _Fd()


@functools.cache
def _pending_bytes() -> tuple[Any, list[Any]] | None:
    """glibc's ``__fpending`` and its ``stdout``, ``stderr``: how many bytes C holds unwritten; None elsewhere."""
    libc = _linux_libc()
    try:
        fpending = libc.__fpending  # type: ignore[union-attr]
        streams = [ctypes.c_void_p.in_dll(libc, name) for name in ("stdout", "stderr")]
    except (AttributeError, ValueError):
        return None
    fpending.restype, fpending.argtypes = ctypes.c_size_t, (ctypes.c_void_p,)
    return fpending, streams


def _flush_c_streams(to_files: bool = False) -> None:
    """C's stdio buffers what it prints; flush it so the bytes land while our files are in place.

    ``to_files``: fds 1 and 2 point at our files, where a write never waits, so the GIL is kept;
    before that they may be a pipe that is full until another Python thread reads it, so the GIL
    is released, and that hands it to any thread that waits for it: C's stdout and stderr are
    first asked (keeping the GIL) whether they hold anything at all, which they seldom do.
    """
    if not to_files:
        pending = _pending_bytes()
        if pending is not None and not any(pending[0](stream.value) for stream in pending[1] if stream.value):
            return
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


@atexit.register
def _close_spares() -> None:
    """Closed at exit, as a file should be (no ResourceWarning under ``python -X dev``)."""
    while _SPARE:
        _SPARE.pop().close()


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
                saved[fd] = _FD.dup(fd)
            except OSError:  # closed (pythonw, some daemons): nothing to capture
                continue
            files[fd] = _take()
            _FD.dup2(files[fd].fileno(), fd)
        yield texts
    finally:
        _flush_c_streams(to_files=bool(files))
        for fd, old in saved.items():
            _FD.dup2(old, fd)
            _FD.close(old)
        for fd, f in files.items():
            written = 0
            try:
                written = _FD.size(f)  # most actions write nothing below Python: no read, no truncate
                texts[fd] = read_bounded(f, limit) if written else ""
            finally:
                _give_back(f, written)
