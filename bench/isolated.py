"""What does running an action in another kernel cost, compared with the live namespace?

Two figures per remote executor, measured in one run, side by side with their reference:

1. per-action overhead: the median time of a trivial action (``x = 1``) through the
   executor minus the same through ``KernelExecutor`` on a real ``InteractiveShell``
   (the live path). Target: <= 5 ms extra.
2. sending a 1M-row DataFrame into the kernel (``send_variables``: packing, the trip, the
   kernel rebuilding it and reporting its summary), divided by writing the same frame to
   Arrow IPC in memory (``pa.Table.from_pandas`` + ``pa.ipc.new_file`` on a
   ``BufferOutputStream``). Target: within 2x.

Also shown: the bare round trip of an empty ``execute_request`` through the same client (the
kernel's own floor, which no executor over the Jupyter protocol goes below) and smol-magic's part
above it (the report of what changed, the outputs, the mirror of the kernel's variables).

The executors measured are a dict of factories, so another remote executor adds a line:
``main({"isolated": ..., "gateway": lambda: RemoteExecutor(GatewayKernel(...))})``.
Medians of ``REPEATS`` rounds after one warm-up, each round running the executor and its reference
in turn (a loaded machine then slows both alike). Run it as ``python bench/isolated.py``, from anywhere.
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


def timed_ms(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def actions(execute: Callable[[str], Any]) -> Callable[[], None]:
    """A batch of ``ACTIONS`` trivial actions."""
    def batch() -> None:
        for _ in range(ACTIONS):
            result = execute(TRIVIAL)
            assert result.error is None, result.error
    return batch


def write_arrow(df: pd.DataFrame) -> Callable[[], None]:
    """The reference: the frame written as Arrow IPC into memory."""
    def write() -> None:
        table = pa.Table.from_pandas(df)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        sink.getvalue()
    return write


def bare_request(executor: RemoteExecutor) -> Callable[[str], Any]:
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
    return one


def interleaved(measures: dict[str, Callable[[], None]], repeats: int = REPEATS) -> dict[str, float]:
    """Medians of ``repeats`` rounds, each running every measure once in turn: a machine whose load
    changes during the run shifts all of them alike, not the ones that happened to run later."""
    for fn in measures.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, fn in measures.items():
            times[name].append(timed_ms(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def measure(make: Callable[[], RemoteExecutor], live: KernelExecutor, df: pd.DataFrame) -> dict[str, float]:
    """One remote executor against its references (ms): a trivial action and live's, the bare round
    trip, sending ``df`` in and writing it to Arrow IPC in memory."""
    executor = make()
    try:
        executor.ensure()
        figures = interleaved({"live": actions(live.execute), "action": actions(executor.execute),
                               "floor": actions(bare_request(executor))})
        figures = {name: ms / ACTIONS for name, ms in figures.items()}
        figures |= interleaved({"reference": write_arrow(df),
                                "transfer": lambda: executor.send_variables({"df": df})})
        check = executor.execute("print(len(df), df.region.iloc[-1])")
        assert check.output == f"{len(df)} {df.region.iloc[-1]}", check.output
        return figures
    finally:
        executor.stop()


def main(executors: dict[str, Callable[[], RemoteExecutor]] | None = None) -> dict[str, dict[str, float]]:
    executors = executors or {"isolated": lambda: RemoteExecutor(IsolatedKernel())}
    live = KernelExecutor(InteractiveShell.instance())
    df = frame()
    results = {name: measure(make, live, df) for name, make in executors.items()}

    print(f"Trivial action ({TRIVIAL!r}): median of {REPEATS} batches of {ACTIONS}, interleaved with the live "
          f"executor's; a {ROWS:,}-row DataFrame sent in: median of {REPEATS}, interleaved with the reference\n")
    print(f"{'executor':<10} {'action':>8} {'live':>8} {'extra':>9} {'target':>8}   {'send 1M rows':>12} "
          f"{'Arrow IPC':>10} {'ratio':>7} {'target':>7}")
    for name, f in results.items():
        extra = f["action"] - f["live"]
        ratio = f["transfer"] / f["reference"]
        ok = extra <= TARGET_EXTRA_MS and ratio <= TARGET_TRANSFER_RATIO
        print(f"{name:<10} {f['action']:>6.2f}ms {f['live']:>6.2f}ms {extra:>+7.2f}ms {'<= 5 ms':>8}   "
              f"{f['transfer']:>10.1f}ms {f['reference']:>8.1f}ms {ratio:>6.2f}x {'<= 2x':>7}   "
              f"{'OK' if ok else 'MISSED'}")
    for name, f in results.items():
        print(f"\n{name}: a bare execute_request round trip (the kernel's own floor) takes {f['floor']:.2f} ms; "
              f"smol-magic's own part of an action is {f['action'] - f['floor']:.2f} ms")
    return results


if __name__ == "__main__":
    main()
