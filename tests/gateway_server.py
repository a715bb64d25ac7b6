"""A real ``jupyter kernelgateway`` (package jupyter_kernel_gateway) on 127.0.0.1, for the gateway tests and bench.

Started as a subprocess with its own pid, on a free port, with an auth token; ready when its
REST API answers. ``kill()`` ends it as a crash would (SIGKILL); ``kernel_parent(pid)`` says
which process started a kernel, so a test can prove an action ran in the gateway's kernel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_pid(pid: int) -> int | None:
    """The parent of process ``pid`` (Linux: /proc), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Gateway:
    port: int
    token: str
    log: Path
    process: subprocess.Popen | None = None
    kernels: set[int] = field(default_factory=set)  # pids of kernels it started, seen by the tests

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> "Gateway":
        """Start the gateway process and wait until its REST API answers (or it exits, which fails)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_GATEWAY")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "kernelgateway", "--KernelGatewayApp.ip=127.0.0.1",
             f"--KernelGatewayApp.port={self.port}", "--KernelGatewayApp.port_retries=0",
             f"--KernelGatewayApp.auth_token={self.token}", "--JupyterWebsocketPersonality.list_kernels=True"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + STARTUP_SECONDS
        request = urllib.request.Request(f"{self.url}/api", headers={"Authorization": f"token {self.token}"})
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the kernel gateway exited with {self.process.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel gateway did not answer within {STARTUP_SECONDS:g} s:\n"
                                   f"{self.log.read_text()[-3000:]}")
            time.sleep(0.05)  # the next look at the port

    def kernel_ids(self) -> list[str]:
        """The ids of the kernels the gateway runs now (GET /api/kernels)."""
        import json

        request = urllib.request.Request(f"{self.url}/api/kernels", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return [k["id"] for k in json.load(response)]

    def kernel_parent(self, pid: int) -> int | None:
        self.kernels.add(pid)
        return parent_pid(pid)

    def kill(self) -> None:
        """End the gateway at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in self.kernels:  # kernels a killed gateway left behind
            if parent_pid(pid) in (1, None):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_gateway(folder: Path, token: str = "gateway-test-token", port: int | None = None) -> Iterator[Gateway]:
    gateway = Gateway(port or free_port(), token, folder / "gateway.log").start()
    try:
        yield gateway
    finally:
        gateway.stop()


class Proxy:
    """A TCP relay in front of the gateway whose connections the test can cut, as a flaky network would.

    New connections are still relayed after a ``cut()``: the gateway stays reachable.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection open now."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.server.close()
        self.cut()
