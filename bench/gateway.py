"""The two figures of ``bench/isolated.py`` through a local Jupyter Kernel Gateway, side by side with ``isolated``.

Starts a real ``jupyter kernelgateway`` on 127.0.0.1 (as the tests do: tests/gateway_server.py)
and runs ``bench/isolated.py``'s ``main`` with both executors: per-action overhead of a trivial
action against the live namespace, and a 1M-row DataFrame sent into the kernel against writing
it to Arrow IPC in memory. The isolated targets (<= 5 ms extra, <= 2x) are printed as the
reference; through a gateway the trip adds the websocket and the gateway's own relay, so read
its figures as what a remote kernel costs at best (no network in between).
Run it as ``python bench/gateway.py``, from anywhere.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import isolated  # noqa: E402 - bench/isolated.py
from gateway_server import running_gateway  # noqa: E402 - tests/gateway_server.py

from smol_magic.jupyter.remote.executor import RemoteExecutor  # noqa: E402
from smol_magic.jupyter.remote.gateway import GatewayKernel, GatewaySettings  # noqa: E402
from smol_magic.jupyter.remote.isolated import IsolatedKernel  # noqa: E402


def main() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="smol-magic-bench-gateway-") as folder, \
            running_gateway(Path(folder)) as gateway:
        settings = GatewaySettings.of(gateway.url, gateway.token)
        return isolated.main({"isolated": lambda: RemoteExecutor(IsolatedKernel()),
                              "gateway": lambda: RemoteExecutor(GatewayKernel(settings))})


if __name__ == "__main__":
    main()
