"""How much does running code through the agent cost, compared with plain Python?

smol-magic runs the model's code natively (``exec`` through IPython), not in an
AST interpreter, so an action should run about as fast as the same code typed
in a cell. This script measures, in one process:

1. for four workloads (a Python loop, a list comprehension, a pandas groupby,
   recursive fib), the time of ``KernelExecutor(shell).execute(code)`` on a
   real ``InteractiveShell`` (the %%agent path: run_cell_async, output capture,
   history) and of ``LocalPythonExecutor().execute(code)``, each divided by
   ``exec(compile(code, "<bench>", "exec"), ns)`` on a plain dict (target <= 1.10);
   and, if smolagents is installed, its AST-interpreting ``LocalPythonExecutor``;
2. the agent loop's own cost per step: a ``CodeAgent`` driven by a
   ``ScriptedModel`` through many trivial steps (target <= 3 ms per step).

Times are medians of 5 repetitions (1 for smolagents, which is far slower).
Run it as ``python bench/executor.py``, from anywhere.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# A throwaway IPython profile: same code path (a real sqlite history), but the
# bench's cells do not land in the user's own ~/.ipython history.
PROFILE_DIR = tempfile.mkdtemp(prefix="smol-magic-bench-")
os.environ["IPYTHONDIR"] = PROFILE_DIR

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

from smol_magic.agents import CodeAgent  # noqa: E402
from smol_magic.executor import KernelExecutor, LocalPythonExecutor  # noqa: E402
from smol_magic.models import ScriptedModel  # noqa: E402

REPEATS = 5
SMOL_REPEATS = 1
TARGET_RATIO = 1.10
TARGET_STEP_MS = 3.0
AGENT_STEPS = 50
ROWS = 1_000_000

# Each workload leaves one variable behind, checked to be the same everywhere.
WORKLOADS: dict[str, tuple[str, str]] = {
    "loop sum 1..2M": ("s = 0\nfor i in range(1, 2_000_001): s += i", "s"),
    "listcomp 500k": ("xs = [i * 2 for i in range(500_000)]", "xs"),
    "pandas groupby 1M": ('g = df.groupby("key")["value"].sum()', "g"),
    "fib(22)": ("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nf = fib(22)", "f"),
}


def timed(fn: Callable[[], Any]) -> float:
    """Seconds for one call, after a collection so earlier garbage is not charged to it."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.Series):
        return isinstance(b, pd.Series) and a.equals(b)
    return a == b


def make_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"key": rng.integers(0, 1_000, ROWS), "value": rng.random(ROWS)})


class Runner:
    """One way of running code; ``run`` raises if the code failed."""

    def __init__(self, name: str, namespace: dict[str, Any], run: Callable[[str], Any]):
        self.name, self.namespace, self.run = name, namespace, run


def checked(execute: Callable[..., Any], **kwargs: Any) -> Callable[[str], Any]:
    def run(code: str) -> Any:
        result = execute(code, **kwargs)
        if result.error:
            raise RuntimeError(result.error)
        return result

    return run


def smolagents_runner(df: pd.DataFrame) -> Runner | str:
    """smolagents' AST interpreter, or the reason it cannot be measured."""
    try:
        import smolagents
        import smolagents.local_python_executor as sle
    except ImportError:
        return "smolagents is not installed (pip install smolagents): its column is skipped"
    sle.MAX_OPERATIONS = 10**9  # the default (10M) stops the 2M-iteration loop
    executor = sle.LocalPythonExecutor(additional_authorized_imports=["pandas", "numpy"], timeout_seconds=None)
    executor.send_tools({})
    executor.send_variables({"df": df})
    return Runner(f"smolagents {smolagents.__version__}", executor.state, lambda code: executor(code))


def measure_workloads(shell: InteractiveShell, df: pd.DataFrame) -> tuple[list[dict[str, Any]], str | None]:
    plain: dict[str, Any] = {"df": df}
    shell.user_ns["df"] = df
    kernel = KernelExecutor(shell)
    local = LocalPythonExecutor({"df": df})
    runners = [
        Runner("exec", plain, lambda code: exec(compile(code, "<bench>", "exec"), plain)),
        Runner("kernel", shell.user_ns, checked(kernel.execute, timeout=None)),
        Runner("kernel t=60", shell.user_ns, checked(kernel.execute, timeout=60)),
        Runner("local", local.namespace, checked(local.execute, timeout=None)),
    ]
    smol = smolagents_runner(df)
    rows = []
    for label, (code, var) in WORKLOADS.items():
        times: dict[str, list[float]] = {r.name: [] for r in runners}
        for _ in range(REPEATS):
            for runner in runners:  # interleaved, so drift hits every column alike
                times[runner.name].append(timed(lambda: runner.run(code)))
        for runner in runners[1:]:
            if not same(runner.namespace[var], plain[var]):
                raise AssertionError(f"{runner.name} computed a different {var} for {label}")
        row = {name: statistics.median(ts) for name, ts in times.items()}
        if isinstance(smol, Runner):
            row["smol"] = statistics.median(timed(lambda: smol.run(code)) for _ in range(SMOL_REPEATS))
            if not same(smol.namespace[var], plain[var]):
                raise AssertionError(f"smolagents computed a different {var} for {label}")
        rows.append({"label": label, **row})
    return rows, None if isinstance(smol, Runner) else smol


class TimedExecutor:
    """Delegates to an executor and adds up the time spent in ``execute``."""

    def __init__(self, inner: Any):
        self.inner, self.namespace, self.spent = inner, inner.namespace, 0.0

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.inner.send_tools(tools)

    def restore(self) -> None:
        self.inner.restore()

    def hidden(self) -> set[str]:
        return self.inner.hidden()

    def execute(self, code: str, timeout: float | None = None) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.execute(code, timeout)
        finally:
            self.spent += time.perf_counter() - start


def measure_agent(make_executor: Callable[[], Any]) -> tuple[float, float]:
    """Median (seconds per step overall, seconds per step inside execute) over REPEATS runs."""
    replies = ["Thought: a trivial step.\n```python\nx = 1\n```"] * AGENT_STEPS
    replies.append("Thought: done.\n```python\nfinal_answer(x)\n```")
    steps = len(replies)
    per_step, in_execute = [], []
    for _ in range(REPEATS):
        executor = TimedExecutor(make_executor())
        # timeout=60 is what %%agent passes by default (it arms SIGALRM around every action).
        agent = CodeAgent(model=ScriptedModel(replies), executor=executor, max_steps=steps, timeout=60)
        elapsed = timed(lambda: asyncio.run(agent.arun("set x to 1, many times")))
        run = agent.runs[-1]
        if run.state != "done" or run.output != 1 or len(run.action_steps) != steps:
            raise AssertionError(f"the scripted run did not finish as expected: {run.state} {run.error}")
        per_step.append(elapsed / steps)
        in_execute.append(executor.spent / steps)
    return statistics.median(per_step), statistics.median(in_execute)


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def main() -> int:
    shell = InteractiveShell.instance()
    shell.tempdirs.append(Path(PROFILE_DIR))  # IPython removes it at exit, after closing its history db
    df = make_frame()

    print(f"smol-magic executor benchmark · Python {sys.version.split()[0]} · pandas {pd.__version__}")
    print(f"medians of {REPEATS} runs each; ratio = time / plain exec(compile(code)) on a dict; "
          f"target <= {TARGET_RATIO:.2f}")
    rows, smol_note = measure_workloads(shell, df)

    head = (f"{'workload':<19} {'exec ms':>8} {'kernel ms':>10} {'ratio':>6} {'':4} "
            f"{'t=60 ratio':>10} {'local ms':>9} {'ratio':>6} {'':4}")
    if smol_note is None:
        head += f" {'smolagents ms':>14} {'ratio':>7}"
    print()
    print(head)
    print("-" * len(head))
    for row in rows:
        base = row["exec"]
        kr, tr, lr = row["kernel"] / base, row["kernel t=60"] / base, row["local"] / base
        line = (f"{row['label']:<19} {base * 1e3:>8.1f} {row['kernel'] * 1e3:>10.1f} {kr:>6.3f} "
                f"{verdict(kr, TARGET_RATIO):<4} {tr:>10.3f} {row['local'] * 1e3:>9.1f} {lr:>6.3f} "
                f"{verdict(lr, TARGET_RATIO):<4}")
        if smol_note is None:
            line += f" {row['smol'] * 1e3:>14.1f} {row['smol'] / base:>6.0f}x"
        print(line)
    print()
    print("kernel = KernelExecutor(InteractiveShell).execute(code, timeout=None); t=60 = the same with "
          "timeout=60 (SIGALRM armed); local = smol_magic LocalPythonExecutor.")
    if smol_note is None:
        print(f"smolagents = its LocalPythonExecutor (AST interpreter), {SMOL_REPEATS} run per workload "
              "(it is ~100-500x slower), timeout_seconds=None, MAX_OPERATIONS raised to 1e9.")
    else:
        print(f"note: {smol_note}")

    print()
    steps = AGENT_STEPS + 1
    for name, make in (("KernelExecutor", lambda: KernelExecutor(shell)), ("LocalPythonExecutor", LocalPythonExecutor)):
        total, in_exec = measure_agent(make)
        print(f"agent overhead per step ({name}, {steps} steps = {AGENT_STEPS} x 'x = 1' + final_answer, "
              f"default renderer, timeout=60): {total * 1e3:.3f} ms total/step "
              f"[{verdict(total * 1e3, TARGET_STEP_MS)}, target <= {TARGET_STEP_MS:g} ms]"
              f" = {in_exec * 1e3:.3f} ms in execute() + {(total - in_exec) * 1e3:.3f} ms agent loop")
    print("(the action code is trivial, so total/step is all framework overhead: "
          "model call, parsing, guard, execution machinery, observation, memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
