"""``IsolatedKernel``: a child kernel on this machine, the ``KernelLink`` of ``--executor isolated``.

A jupyter_client ``KernelManager`` starts ``python -m ipykernel_launcher`` with
this Python (the notebook's environment), started on first use and kept for
the notebook's session. What it gets:

- an environment without secrets: variables named like ``*KEY*``, ``*TOKEN*``,
  ``*SECRET*``, ``*PASSWORD*`` (and any value smol-magic's redaction takes for a
  credential) are dropped, unless ``AgentMagics.isolated_env`` passes them;
- a memory limit (``--memory``): ``RLIMIT_AS`` set first thing in the child, on
  Linux and macOS. It bounds the address space, not the resident memory, so a
  kernel needs some room above what it uses (a fresh one reserves ~0.3-1 GB).
  It is not enforced on Windows (no ``resource`` module): ``describe()`` says so;
- a working folder: a scratch temp folder (default), or the notebook's folder
  (``--workdir rw``; ``--workdir ro`` shares it for reading: the guard asks
  before any file write, but the process itself could still write there: this
  is a policy, not an enforced read-only mount).

Damage in the child stays there: a crash, an out-of-memory kill or
``os._exit`` ends only the child, and the executor says why.
"""

from __future__ import annotations

import atexit
import hmac
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...safety import redact
from .executor import KernelUnavailable
from .transfer import size_text

STARTUP_TIMEOUT = 60.0
SHM_MIN_FREE = 2 * 2**30  # bytes free in /dev/shm for it to hold the transfers
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.I)


class Workdir(str, Enum):
    """Where the child kernel works: a scratch folder, or the notebook's folder read-only or read-write."""

    SCRATCH = "scratch"
    READ_ONLY = "ro"
    READ_WRITE = "rw"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Settings:
    """What a child kernel is started with; a change of these restarts it."""

    memory: int | None = None  # bytes (RLIMIT_AS), None: no limit
    workdir: Workdir = Workdir.SCRATCH
    notebook_dir: str = ""  # the notebook's folder (the user's kernel's working directory)
    passed_env: tuple[str, ...] = ()  # secret-looking variables passed anyway (AgentMagics.isolated_env)


def child_environment(environ: dict[str, str], passed: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment without what looks like a credential, by name or by value, except ``passed`` names."""
    values = set(redact.env_secrets(environ))
    return {k: v for k, v in environ.items()
            if k in passed or not (_SECRET_NAME.search(k) or v.strip() in values)}


class DirectClient:
    """A ``BlockingKernelClient`` whose reads go straight to its channels' sockets.

    The client's own ``get_iopub_msg`` runs a coroutine to completion, which inside a running
    event loop (a notebook cell) means a hop to another thread for every message.
    """

    def __init__(self, client: Any):
        self.inner = client
        self.get_iopub_msg = _reader(client.iopub_channel.socket, client.session)
        self.get_shell_msg = _reader(client.shell_channel.socket, client.session)
        self.get_stdin_msg = client.stdin_channel.get_msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _reader(socket: Any, session: Any) -> Any:
    """``get_msg(timeout)`` for one channel: the message checked against the session's key, its parts
    parsed as JSON. jupyter_client's own also parses every date in the headers (~0.2 ms a message)."""
    def get_msg(timeout: float | None = None) -> dict[str, Any]:
        if not socket.poll(None if timeout is None else int(timeout * 1000)):
            raise queue.Empty
        _, frames = session.feed_identities(socket.recv_multipart())
        if session.auth is not None and not hmac.compare_digest(frames[0], session.sign(frames[1:5])):
            raise ValueError("a message from the isolated kernel had an invalid signature")
        header = session.unpack(frames[1])
        return {"header": header, "msg_id": header["msg_id"], "msg_type": header["msg_type"],
                "parent_header": session.unpack(frames[2]), "metadata": session.unpack(frames[3]),
                "content": session.unpack(frames[4]), "buffers": [memoryview(b) for b in frames[5:]]}
    return get_msg


class IsolatedKernel:
    """A child ipykernel on this machine, reached with jupyter_client (see the module docstring)."""

    name = "isolated"
    local_files = True

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.km: Any = None
        self.client: Any = None
        self._scratch: str | None = None  # the working folder of a scratch kernel
        self._transfers: str | None = None  # where packets go (in memory: /dev/shm when there is one)
        self._exit_cause: str | None = None
        atexit.register(self.shutdown)

    @property
    def memory_limit(self) -> int | None:
        return self.settings.memory

    # -- the KernelLink protocol ------------------------------------------------------------------

    def start(self) -> None:
        from jupyter_client import KernelManager

        if self.km is not None and self.km.is_alive():
            return
        self._cleanup_kernel()
        cwd = self.working_folder()
        env = child_environment(dict(os.environ), self.settings.passed_env)
        env["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # jemalloc/mimalloc reserve address space RLIMIT_AS counts
        env.pop("JPY_PARENT_PID", None)
        # Over local sockets (ipc) where there are some: faster than TCP, and not reachable from the network.
        ipc = os.name == "posix"
        self.km = KernelManager(kernel_name="python3", transport="ipc" if ipc else "tcp")
        if ipc:  # the socket files' path, absolute: the child works in another folder
            self.km.ip = os.path.join(self.scratch(), "kernel")
        self.km.kernel_spec  # noqa: B018 - loads the spec, then it runs this Python, not one found on PATH
        # No history database: the child's actions must not land in the notebook's IPython history.
        self.km._kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                                     "--HistoryManager.enabled=False"]
        try:
            self.km.start_kernel(env=env, cwd=cwd)
            blocking = self.km.blocking_client()
            blocking.start_channels()
            blocking.wait_for_ready(timeout=STARTUP_TIMEOUT)
            self.client = DirectClient(blocking)
        except Exception as exc:  # noqa: BLE001 - said to the user: the notebook's kernel goes on
            self._cleanup_kernel()
            raise KernelUnavailable(f"the isolated kernel did not start ({type(exc).__name__}: {exc}); "
                                    "check that ipykernel is installed in this environment") from None

    def alive(self) -> bool:
        return self.km is not None and self._returncode() is None and self.pid() is not None

    def death(self) -> str:
        """Why the child is gone, in the words of its exit: a signal, an exit code, out of memory."""
        code = self._returncode()
        limit = f" (limit {size_text(self.settings.memory)})" if self.settings.memory else ""
        if code is None:
            return "it is not running"
        if code < 0:
            sig = -code
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            if sig == signal.SIGKILL:
                return f"killed by SIGKILL: out of memory{limit}, most likely (the system's out-of-memory killer " \
                       "sends it), or killed by hand"
            if sig in (signal.SIGABRT, signal.SIGBUS) and self.settings.memory:
                return f"out of memory{limit}: it aborted ({name}) when an allocation failed"
            if sig == signal.SIGSEGV:
                return "it crashed with a segmentation fault (SIGSEGV)"
            return f"killed by {name}"
        return f"exited with code {code}"

    def interrupt(self) -> None:
        if self.alive():
            self.km.interrupt_kernel()

    def restart(self) -> None:
        self._cleanup_kernel()
        self.start()

    def shutdown(self) -> None:
        self._cleanup_kernel()
        for folder in (self._scratch, self._transfers):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        self._scratch = self._transfers = None

    def pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def describe(self) -> str:
        memory = f"memory limit {size_text(self.settings.memory)}" if self.settings.memory else "no memory limit"
        if self.settings.memory and not _can_limit_memory():
            memory += " (NOT enforced on this system: no RLIMIT_AS)"
        where = {Workdir.SCRATCH: f"scratch folder {self._scratch}",
                 Workdir.READ_ONLY: f"notebook folder {self.settings.notebook_dir} (read-only by policy)",
                 Workdir.READ_WRITE: f"notebook folder {self.settings.notebook_dir} (read-write)"}
        return f"{memory} · works in {where[self.settings.workdir]}"

    def scratch(self) -> str | None:
        """Where packets and the kernel's sockets go: /dev/shm (memory) when it has room, else the temp folder."""
        if self._transfers is None:
            self._transfers = tempfile.mkdtemp(prefix="smol-magic-transfer-", dir=_memory_folder())
        return self._transfers

    def setup_code(self) -> str:
        """Run first in each fresh child: the memory limit (RLIMIT_AS)."""
        if not self.settings.memory or not _can_limit_memory():
            return ""
        n = int(self.settings.memory)
        return f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({n}, {n}))"

    # -- helpers ---------------------------------------------------------------------------------

    def working_folder(self) -> str:
        if self.settings.workdir != Workdir.SCRATCH and self.settings.notebook_dir:
            return self.settings.notebook_dir
        if self._scratch is None or not os.path.isdir(self._scratch):
            self._scratch = tempfile.mkdtemp(prefix="smol-magic-isolated-")
        return self._scratch

    def _returncode(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None
        return process.poll()

    def _cleanup_kernel(self) -> None:
        if self.client is not None:
            try:
                self.client.inner.stop_channels()
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.client = None
        if self.km is not None:
            try:
                if self.km.is_alive():
                    self.km.shutdown_kernel(now=True)
                else:
                    self.km.cleanup_resources()
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.km = None


def _memory_folder(shm: str = "/dev/shm") -> str | None:
    """/dev/shm if it is there, writable and roomy (a container's is often 64 MB), else None (the temp folder)."""
    try:
        roomy = shutil.disk_usage(shm).free >= SHM_MIN_FREE
    except OSError:
        return None
    return shm if roomy and os.access(shm, os.W_OK) else None


def _can_limit_memory() -> bool:
    try:
        import resource

        return hasattr(resource, "RLIMIT_AS")
    except ImportError:
        return False
