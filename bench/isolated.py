"""What does running an action in another kernel cost, compared with the live namespace?

Two figures per remote executor, measured in one run, side by side with their reference:

1. per-action overhead: the median time of a trivial action (``x = 1``) through the
   executor minus the same through ``KernelExecutor`` on a real ``InteractiveShell``
   (the live path). Target: <= 5 ms extra.
2. sending a 1M-row DataFrame into the kernel (``send_variables``: packing, the trip, the
   kernel rebuilding it and reporting its summary), divided by writing the same frame to
   Arrow IPC in memory (``pa.Table.from_pandas`` + ``pa.ipc.new_file`` on a
   ``BufferOutputStream``). Target: within 2x.

The executors measured are a dict of factories, so another remote executor adds a line:
``main({"isolated": ..., "gateway": lambda: RemoteExecutor(GatewayKernel(...))})``.
Medians of ``REPEATS`` after one warm-up. Run it as ``python bench/isolated.py``, from anywhere.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

from smol_magic.jupyter.kernel_executor import KernelExecutor  # noqa: E402
from smol_magic.jupyter.remote.executor import RemoteExecutor  # noqa: E402
from smol_magic.jupyter.remote.isolated import IsolatedKernel  # noqa: E402

ACTIONS = 200  # trivial actions per measurement
REPEATS = 5
ROWS = 1_000_000
TARGET_EXTRA_MS = 5.0
TARGET_TRANSFER_RATIO = 2.0
TRIVIAL = "x = 1"


def frame(rows: int = ROWS) -> pd.DataFrame:
    """A typical table: an id, two numbers, a category as text."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(rows), "price": rng.random(rows) * 100,
                         "units": rng.integers(0, 50, rows), "region": rng.choice(["north", "south", "east"], rows)})


def median_ms(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def per_action_ms(execute: Callable[[str], Any]) -> float:
    """The median time of one trivial action, from batches of ``ACTIONS``."""
    def batch() -> None:
        for _ in range(ACTIONS):
            result = execute(TRIVIAL)
            assert result.error is None, result.error
    return median_ms(batch) / ACTIONS


def arrow_in_memory_ms(df: pd.DataFrame) -> float:
    """The reference: the frame written as Arrow IPC into memory."""
    def write() -> None:
        table = pa.Table.from_pandas(df)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        sink.getvalue()
    return median_ms(write)


def bare_request_ms(executor: RemoteExecutor) -> float:
    """The floor under any action: an empty execute_request's round trip through the same kernel client."""
    client = executor.link.client

    def one(_code: str) -> Any:
        msg_id = client.execute("", silent=False, store_history=False)
        while True:
            msg = client.get_iopub_msg(timeout=10)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and \
                    msg["content"]["execution_state"] == "idle":
                break
        while client.get_shell_msg(timeout=10)["parent_header"].get("msg_id") != msg_id:
            pass
        return type("Done", (), {"error": None})()
    return per_action_ms(one)


def measure(make: Callable[[], RemoteExecutor], df: pd.DataFrame) -> dict[str, float]:
    """One remote executor's figures: a trivial action, the bare round trip, and sending ``df`` in (ms)."""
    executor = make()
    try:
        executor.ensure()
        action = per_action_ms(executor.execute)
        floor = bare_request_ms(executor)
        transfer = median_ms(lambda: executor.send_variables({"df": df}))
        check = executor.execute("print(len(df), df.region.iloc[-1])")
        assert check.output == f"{len(df)} {df.region.iloc[-1]}", check.output
        return {"action_ms": action, "floor_ms": floor, "transfer_ms": transfer}
    finally:
        executor.stop()


def main(executors: dict[str, Callable[[], RemoteExecutor]] | None = None) -> dict[str, dict[str, float]]:
    executors = executors or {"isolated": lambda: RemoteExecutor(IsolatedKernel())}
    live = KernelExecutor(InteractiveShell.instance())
    live_ms = per_action_ms(live.execute)
    df = frame()
    reference_ms = arrow_in_memory_ms(df)
    results = {name: measure(make, df) for name, make in executors.items()}

    print(f"Trivial action ({TRIVIAL!r}), median of {REPEATS} batches of {ACTIONS}; "
          f"{ROWS:,}-row DataFrame sent in, median of {REPEATS}\n")
    print(f"{'executor':<10} {'action':>9} {'extra vs live':>14} {'target':>8}   {'send 1M rows':>13} "
          f"{'vs Arrow IPC':>13} {'target':>8}")
    print(f"{'live':<10} {live_ms:>7.2f}ms {'(reference)':>14} {'':>8}   {'':>13} {'':>13}")
    for name, figures in results.items():
        extra = figures["action_ms"] - live_ms
        ratio = figures["transfer_ms"] / reference_ms
        print(f"{name:<10} {figures['action_ms']:>7.2f}ms {extra:>+12.2f}ms {'<= 5 ms':>8}   "
              f"{figures['transfer_ms']:>11.1f}ms {ratio:>12.2f}x {'<= 2x':>8}   "
              f"{'OK' if extra <= TARGET_EXTRA_MS and ratio <= TARGET_TRANSFER_RATIO else 'MISSED'}")
    print(f"{'Arrow IPC':<10} {'':>9} {'':>14} {'':>8}   {reference_ms:>11.1f}ms {'(reference)':>13}")
    for name, figures in results.items():
        print(f"\n{name}: a bare execute_request round trip (the kernel's own floor) takes {figures['floor_ms']:.2f} ms; "
              f"smol-magic's own part of an action is {figures['action_ms'] - figures['floor_ms']:.2f} ms")
    return results


if __name__ == "__main__":
    main()
