"""What does a ``%%agent`` step cost as a user runs it, compared with typing the same code in a cell?

Issue 17 measures the whole path: ``ip.run_cell("%%agent ...")`` in a real
``InteractiveShell`` with the extension loaded (the magic, the guard, the data
watch, the namespace diff, the text trace, the run store), with a
``ScriptedModel`` whose replies are the actions, so no model time is counted.
Side by side, in one run, with:

- IPython's own ``run_cell`` of the same code (``store_history=True``): a cell typed by the user;
- plain ``exec(compile(code))`` on a dict.

Printed, at 1,000 and at 10,000 user variables:

1. a whole ``%%agent`` cell of one trivial action (``x = 1`` then ``final_answer(x)``, one step) vs
   ``run_cell`` of that code (target <= 2x); with two parts of it alone: the floor of any cell magic whose action
   is kept as a cell (a magic that only runs its body through ``run_cell``), and the walk over the user's
   variables for credentials that each run makes before its first request;
2. the cost of one more step: (a cell of 1 + K ``x = 1`` steps - a cell of 1 step) / K, vs ``run_cell("x = 1")``
   (the per-step path alone, the per-cell setup cancelled out);
3. 20 ``f = fib(22)`` actions in one ``%%agent`` cell vs 20 plain ``exec`` (target <= 1.35x) and vs 20 ``run_cell``;
4. how each grows from 1,000 to 10,000 user variables (target <= 1.2x), and how much of the whole cell's
   growth is each of the parts that look at every variable: that walk, the prompt's section on the variables,
   and a step's diff of the namespace (what a step that calls anything pays to know the names it bound); and
   a floor under that growth: the least any run must read that misses no credential and no binding, at C speed.

The trace (and run_cell's ``Out[n]``) is printed to a buffer, not the terminal. The whole cell includes
the magic's per-cell setup and its wait for the run (see jupyter/async_cell.py ``run_agent_cell``). Times are medians of REPEATS
repetitions after one warm-up, interleaved. Run it as ``python bench/step.py``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import operator
import os
import statistics
import sys
import tempfile
import time
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_PROFILE = tempfile.mkdtemp(prefix="smol-magic-bench-step-")
os.environ["IPYTHONDIR"] = _PROFILE  # the bench's cells stay out of the user's own history
os.environ["SMOL_MAGIC_STORE"] = os.path.join(_PROFILE, "runs.sqlite")  # a real store, a throwaway file
os.environ.pop("SMOL_MAGIC_MODEL", None)

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

from smol_magic import ScriptedModel  # noqa: E402
from smol_magic.context import namespace  # noqa: E402
from smol_magic.safety import redact  # noqa: E402

REPEATS = 5
EXTRA_STEPS = 10  # K: the steps added to measure the cost of one more step
FIB_STEPS = 20
SIZES = (1_000, 10_000)
TARGET_CELL = 2.0
TARGET_FIB = 1.35
TARGET_GROWTH = 1.2
TRIVIAL = "x = 1"
FIB_DEF = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"
FIB = "f = fib(22)"


def fence(code: str) -> str:
    return f"Thought: next step.\n```python\n{code}\n```"


def settle(shell: InteractiveShell) -> None:
    """Start from a quiet state: earlier garbage collected, IPython's pending history written (see bench/executor.py)."""
    gc.collect()
    if shell.history_manager is not None:
        shell.history_manager.writeout_cache()


def timed(shell: InteractiveShell, fn: Callable[[], Any], prepare: Callable[[], Any] | None = None) -> float:
    if prepare is not None:
        prepare()
    settle(shell)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Bench:
    def __init__(self, shell: InteractiveShell):
        self.shell = shell
        self.trace = io.StringIO()
        self.plain: dict[str, Any] = {}
        exec(FIB_DEF, self.plain)

    # -- the runners ----------------------------------------------------------

    def agent_cell(self, actions: list[str], expect: Any) -> Callable[[], Any]:
        """A %%agent cell whose model replies with ``actions``, the last one ending in final_answer(expect)."""
        replies = [fence(a) for a in actions]
        shell = self.shell

        def prepare() -> None:
            for name in ("x", "f", "out"):  # an agent rebinding a variable that exists is 'ask': start clean
                shell.user_ns.pop(name, None)
            shell.user_ns["m"] = ScriptedModel(replies)
            self.trace.seek(0)
            self.trace.truncate()

        def run() -> None:
            with contextlib.redirect_stdout(self.trace), contextlib.redirect_stderr(self.trace):
                result = shell.run_cell("%%agent -m m --reset --approve never --max-steps 100 -o out\ndo it", store_history=True)
            if not result.success or shell.user_ns.get("out") != expect:
                raise AssertionError(f"the %%agent cell failed: {result.error_in_exec or result.error_before_exec!r}"
                                     f"\n{self.trace.getvalue()[-2000:]}")

        run.prepare = prepare  # type: ignore[attr-defined]
        return run

    def run_cells(self, code: str, times: int) -> Callable[[], Any]:
        shell = self.shell

        def run() -> None:
            for _ in range(times):
                with contextlib.redirect_stdout(self.trace):  # Out[n] is printed, as the trace is
                    result = shell.run_cell(code, store_history=True)
                if not result.success:
                    raise AssertionError(f"run_cell failed: {result.error_in_exec!r}")

        return run

    def floor_cell(self, code: str) -> Callable[[], Any]:
        """A cell magic that does nothing but run its body as an IPython cell: what any magic pays whose action is
        kept as IPython keeps a cell (In, Out, history, post-run hooks), before any agent work."""
        shell = self.shell

        def run() -> None:
            with contextlib.redirect_stdout(self.trace):
                result = shell.run_cell(f"%%bench_floor\n{code}", store_history=True)
            if not result.success:
                raise AssertionError(f"the floor cell failed: {result.error_in_exec!r}")

        return run

    def secret_scan(self) -> Callable[[], Any]:
        """The walk each run makes over the user's variables before its first request: the credentials among
        them (``safety/redact.py``), so that none reaches the model."""
        shell = self.shell

        def run() -> None:
            redact.find_secrets(namespace.user_variables(shell.user_ns, shell.user_ns_hidden), public=True)

        return run

    def prompt_section(self) -> Callable[[], Any]:
        """The run's 'Variables in the notebook' section of the task (``namespace.summarize``), given the listing."""
        shell, listed = self.shell, {}

        def prepare() -> None:
            listed["variables"] = namespace.user_variables(shell.user_ns, shell.user_ns_hidden)

        def run() -> None:
            namespace.summarize(shell.user_ns, shell.user_ns_hidden, task="do it", variables=listed["variables"])

        run.prepare = prepare  # type: ignore[attr-defined]
        return run

    def step_diff(self) -> Callable[[], Any]:
        """What a step that calls anything pays to know the names it bound: a copy of the namespace before, and
        the comparison after (``namespace.Bindings``); a cell of 1 step has 2 such steps with final_answer."""
        shell = self.shell

        def run() -> None:
            namespace.Bindings(shell.user_ns, shell.user_ns_hidden).changes()

        return run

    def growth_floor(self) -> Callable[[], Any]:
        """The least any run must read that misses no credential and no binding, all at C speed (no Python code
        per variable): the kind of every variable, the kinds of the items of its lists and dicts (a credential
        may have been put in one in place: same list, same name), and every binding once more, as a step that
        calls anything must (a function's ``global`` may have bound any name). Its growth, from 1,000 to 10,000
        variables, is a floor under the whole cell's: the objects are scattered in memory, and reading each
        costs a cache miss however little is done with it."""
        shell = self.shell

        def run() -> None:
            ns = shell.user_ns
            values = list(ns.values())
            kinds = list(map(type, values))
            for kind, items in ((list, iter), (dict, dict.values)):
                containers = compress(values, map(operator.is_, kinds, repeat(kind)))
                set(map(type, chain.from_iterable(map(items, containers))))
            before = ns.copy()
            any(map(operator.is_not, ns.values(), before.values()))

        return run

    def execs(self, code: str, times: int) -> Callable[[], Any]:
        plain = self.plain

        def run() -> None:
            for _ in range(times):
                exec(compile(code, "<bench>", "exec"), plain)

        return run

    # -- measuring --------------------------------------------------------------

    def measure(self, runners: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
        """Seconds per repetition of each runner, interleaved in a rotating order after one warm-up each."""
        names = list(runners)
        for fn in runners.values():
            timed(self.shell, fn, getattr(fn, "prepare", None))
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(REPEATS):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                fn = runners[name]
                times[name].append(timed(self.shell, fn, getattr(fn, "prepare", None)))
        return times

    def at_size(self) -> dict[str, float]:
        one = [f"{TRIVIAL}\nfinal_answer(x)"]
        more = [TRIVIAL] * EXTRA_STEPS + one
        fib = [FIB] * FIB_STEPS + ["final_answer(f)"]
        t = self.measure({
            "cell": self.agent_cell(one, 1),
            "cell+K": self.agent_cell(more, 1),
            "run_cell one": self.run_cells(f"{TRIVIAL}\nx", 1),
            "floor": self.floor_cell(f"{TRIVIAL}\nx"),
            "secret scan": self.secret_scan(),
            "prompt section": self.prompt_section(),
            "step diff": self.step_diff(),
            "growth floor": self.growth_floor(),
            "run_cell x=1": self.run_cells(TRIVIAL, 1),
            "fib agent": self.agent_cell(fib, 17711),
            "fib exec": self.execs(FIB, FIB_STEPS),
            "fib run_cell": self.run_cells(FIB, FIB_STEPS),
        })
        med = {name: statistics.median(ts) for name, ts in t.items()}
        per_step = [(b - a) / EXTRA_STEPS for a, b in zip(t["cell"], t["cell+K"])]
        return {
            **med,
            "step": statistics.median(per_step),
            "cell ratio": statistics.median(a / b for a, b in zip(t["cell"], t["run_cell one"])),
            "floor ratio": statistics.median(a / b for a, b in zip(t["floor"], t["run_cell one"])),
            "floor+walk ratio": statistics.median((a + w) / b for a, w, b in zip(t["floor"], t["secret scan"],
                                                                                  t["run_cell one"])),
            "step ratio": statistics.median(s / b for s, b in zip(per_step, t["run_cell x=1"])),
            # the final_answer step is the 21st action: compared with 20 exec, as the issue does
            "fib ratio": statistics.median(a / b for a, b in zip(t["fib agent"], t["fib exec"])),
            "fib run_cell ratio": statistics.median(a / b for a, b in zip(t["fib run_cell"], t["fib exec"])),
        }


def grow(shell: InteractiveShell, size: int) -> int:
    """Bring the user's variables to ``size``: ints, strings, lists, small dicts, as a notebook holds."""
    kinds = (lambda i: i, lambda i: f"text {i}", lambda i: [i, i + 1], lambda i: {"k": i})
    have = [n for n in shell.user_ns if n.startswith("v_")]
    for i in range(len(have), size):
        shell.user_ns[f"v_{i}"] = kinds[i % len(kinds)](i)
    return sum(1 for n in shell.user_ns if not n.startswith("_"))


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def main() -> int:
    shell = InteractiveShell.instance()
    shell.tempdirs.append(Path(_PROFILE))  # IPython deletes it at exit, after closing its history db
    shell.run_line_magic("load_ext", "smol_magic")
    shell.register_magic_function(lambda line, cell: shell.run_cell(cell, store_history=True), "cell", "bench_floor")
    shell.run_cell(FIB_DEF, store_history=True)
    bench = Bench(shell)
    gc.freeze()

    print(f"smol-magic %%agent step benchmark · Python {sys.version.split()[0]} · IPython "
          f"{sys.modules['IPython'].__version__}")
    print(f"ip.run_cell('%%agent -m m --reset --approve never --max-steps 100 -o out ...') with a ScriptedModel, text trace to a "
          f"buffer, run store on; medians of {REPEATS} interleaved repetitions after 1 warm-up")
    rows = {}
    for size in SIZES:
        names = grow(shell, size)
        rows[size] = bench.at_size()
        r = rows[size]
        print()
        print(f"{size:,} user variables ({names:,} names in user_ns):")
        print(f"  whole %%agent cell, 1 step '{TRIVIAL}; final_answer(x)': {r['cell'] * 1e3:7.2f} ms  vs run_cell "
              f"of that code {r['run_cell one'] * 1e3:6.2f} ms  ratio {r['cell ratio']:5.2f}  "
              f"{verdict(r['cell ratio'], TARGET_CELL)} (target <= {TARGET_CELL:g})")
        print(f"    floor: a cell magic that only runs its body as an IPython cell (as each action is kept: In, Out, "
              f"history, hooks) {r['floor'] * 1e3:6.2f} ms, ratio {r['floor ratio']:5.2f}; the run's walk over the "
              f"variables for credentials {r['secret scan'] * 1e3:6.2f} ms; the two together: ratio "
              f"{r['floor+walk ratio']:5.2f}")
        print(f"  one more '{TRIVIAL}' step (cell of {EXTRA_STEPS + 1} steps - cell of 1, / {EXTRA_STEPS}): "
              f"{r['step'] * 1e3:7.2f} ms  vs run_cell('{TRIVIAL}') {r['run_cell x=1'] * 1e3:6.2f} ms  "
              f"ratio {r['step ratio']:5.2f}  {verdict(r['step ratio'], TARGET_CELL)} (target <= {TARGET_CELL:g})")
        print(f"  {FIB_STEPS} x '{FIB}' in one %%agent cell (+ final_answer): {r['fib agent'] * 1e3:7.1f} ms  vs "
              f"{FIB_STEPS} exec {r['fib exec'] * 1e3:6.1f} ms  ratio {r['fib ratio']:5.2f}  "
              f"{verdict(r['fib ratio'], TARGET_FIB)} (target <= {TARGET_FIB:g});  {FIB_STEPS} run_cell "
              f"{r['fib run_cell'] * 1e3:6.1f} ms  ratio {r['fib run_cell ratio']:5.2f}")
    small, big = rows[SIZES[0]], rows[SIZES[-1]]
    print()
    print(f"growth from {SIZES[0]:,} to {SIZES[-1]:,} user variables (target <= {TARGET_GROWTH:g}):")
    for key, label, ref in (("cell", "whole 1-step cell", "run_cell one"), ("step", "one more step", "run_cell x=1"),
                            ("fib agent", "20 fib(22) steps", "fib run_cell"), ("secret scan", "credentials walk", None),
                            ("prompt section", "prompt section", None), ("step diff", "a step's diff", None)):
        if ref is None:
            print(f"  {label:<18} {small[key] * 1e3:7.2f} ms -> {big[key] * 1e3:7.2f} ms  (part of the whole cell's "
                  f"growth: {(big[key] - small[key]) / (big['cell'] - small['cell']):.0%})")
            continue
        ratio = big[key] / small[key]
        print(f"  {label:<18} {small[key] * 1e3:7.2f} ms -> {big[key] * 1e3:7.2f} ms  x{ratio:4.2f}  "
              f"{verdict(ratio, TARGET_GROWTH)}   (the same code through run_cell: x{big[ref] / small[ref]:4.2f})")
    allowed = (TARGET_GROWTH - 1) * small["cell"]
    floor = big["growth floor"] - small["growth floor"]
    print(f"  floor: the least a run must read (every variable's kind, its lists' and dicts' items' kinds, every "
          f"binding once more), at C speed: {small['growth floor'] * 1e3:.2f} ms -> {big['growth floor'] * 1e3:.2f} ms,"
          f" a growth of {floor * 1e3:.2f} ms; the whole cell's target allows {allowed * 1e3:.2f} ms "
          f"({TARGET_GROWTH - 1:.0%} of the 1,000-variable cell): {floor / allowed:.0%} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
