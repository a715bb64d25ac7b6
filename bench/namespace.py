"""How much does telling the model about the notebook cost?

The variables section is built for every run's prompt and each step's diff is
summarised after every action, on whatever the notebook holds, so it must stay
cheap however big the data is. This script measures, in one process:

1. ``summarize`` of a namespace holding one DataFrame of 10 rows and of
   10,000,000 rows (int, float, string, datetime, category columns), and the
   per-step diff line for it (target <= 20 ms, and about the same for both
   sizes: nothing in a summary may be O(rows));
2. ``summarize`` of a namespace of 1,000 variables of mixed kinds, and the
   snapshot + diff of a step over it (target <= 100 ms);
3. the tokens used by the summary of a 50-column frame, and by the whole
   section at the default budget (tokens estimated as characters / 4, the
   rule the budget itself uses).

Times are medians of 15 repetitions after one warm-up; the 10-row and
10M-row cases are timed alternately, so a busy machine slows both alike.
Run it as ``python bench/namespace.py``, from anywhere.
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

from smol_magic.context import namespace  # noqa: E402

REPEATS = 15
BIG_ROWS = 10_000_000
TARGET_FRAME_MS = 20.0
TARGET_SET_MS = 20.0  # headline of a 1M-item set (its repr takes ~170 ms)
TARGET_MANY_MS = 100.0
MANY = 1_000


def median_ms(fn: Callable[[], Any]) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def paired_ms(fns: list[Callable[[], Any]], best: bool = False) -> list[float]:
    """Medians (or minima) of several functions timed in turn, so that load on the machine hits them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(REPEATS):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [(min(t) if best else statistics.median(t)) * 1000 for t in times]


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "order_id": np.arange(rows),
        "amount": rng.random(rows),
        "region": pd.Categorical(rng.choice(["West", "East", "North", "South"], rows)),
        "customer": pd.array(np.array([f"c{i}" for i in range(1000)], dtype=object)[np.arange(rows) % 1000],
                             dtype="str"),
        "when": pd.date_range("2024-01-01", periods=rows, freq="s"),
    })


def tokens(text: str) -> int:
    return len(text) // namespace.CHARS_PER_TOKEN


def many_variables() -> dict[str, Any]:
    def helper(df: pd.DataFrame, n: int = 5) -> pd.DataFrame:
        """Top rows."""
        return df.head(n)

    small = pd.DataFrame({"a": range(20), "b": np.linspace(0, 1, 20)})
    ns: dict[str, Any] = {"np": np, "pd": pd}
    makers = [
        lambda i: i, lambda i: i * 0.5, lambda i: f"label {i}", lambda i: "text " * 100,
        lambda i: list(range(i % 50)), lambda i: {"k": i, "v": [i]}, lambda i: helper,
        lambda i: small, lambda i: np.arange(100), lambda i: small["b"],
    ]
    for i in range(MANY):
        ns[f"var_{i}"] = makers[i % len(makers)](i)
    return ns


def main() -> int:
    ok = True
    print(f"smol-magic namespace benchmark: pandas {pd.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}; medians of {REPEATS}\n")

    print(f"1. one DataFrame in the namespace (target <= {TARGET_FRAME_MS:g} ms, independent of rows)")
    sizes = (10, BIG_ROWS)
    spaces = [{"sales": frame(rows), "pd": pd} for rows in sizes]
    summaries = [lambda ns=ns: namespace.summarize(ns, task="which region grew fastest in sales?") for ns in spaces]
    prompts = paired_ms(summaries)
    diffs = paired_ms([lambda ns=ns: namespace.format_diff({"created": ["sales"]}, ns) for ns in spaces])
    for rows, ns, prompt_ms, diff_ms in zip(sizes, spaces, prompts, diffs):
        print(f"   {rows:>12,} rows: summarize {prompt_ms:6.2f} ms   diff line {diff_ms:5.2f} ms   "
              f"({ns['sales'].memory_usage(deep=False).sum() / 2**20:,.0f} MB frame)")
        ok &= prompt_ms <= TARGET_FRAME_MS and diff_ms <= TARGET_FRAME_MS
    fastest = paired_ms(summaries, best=True)  # the intrinsic cost, without the machine's noise
    ratio = fastest[1] / fastest[0]
    print(f"   10M rows / 10 rows: {ratio:.2f}x (fastest of {REPEATS}: {fastest[0]:.2f} vs {fastest[1]:.2f} ms; "
          "10 rows also counts nulls, 10M rows does not)")
    ok &= ratio <= 2.0
    print("   the 10M-row summary as the model sees it:")
    print("     " + namespace.summarize({"sales": spaces[1]["sales"]}).replace("\n", "\n     "))

    print(f"\n2. {MANY:,} variables of mixed kinds (target <= {TARGET_MANY_MS:g} ms)")
    ns = many_variables()
    summary_ms = median_ms(lambda: namespace.summarize(ns))
    hidden: dict[str, Any] = {}

    def step_diff() -> str:
        before = namespace.snapshot(ns, hidden)
        ns["var_0"] = -1
        changes = namespace.diff(before, namespace.snapshot(ns, hidden))
        return namespace.format_diff(changes, ns)

    diff_ms = median_ms(step_diff)
    text = namespace.summarize(ns)
    listed = sum(1 for line in text.splitlines() if line.startswith("- var_"))
    print(f"   summarize: {summary_ms:6.2f} ms  ({listed} variables listed, the rest named; "
          f"{len(text):,} chars ~ {tokens(text)} tokens of {namespace.DEFAULT_BUDGET_TOKENS})")
    print(f"   snapshot + diff + format of one step: {diff_ms:6.2f} ms")
    ok &= summary_ms <= TARGET_MANY_MS and diff_ms <= TARGET_MANY_MS

    print("\n3. tokens (characters / 4)")
    wide = pd.DataFrame(np.random.default_rng(0).random((100_000, 50)), columns=[f"feature_{i:02d}" for i in range(50)])
    full = namespace.describe(wide)
    head = namespace.headline(wide)
    section = namespace.summarize({"wide": wide})
    print(f"   50-column frame, full summary: {len(full):,} chars ~ {tokens(full)} tokens "
          f"(headline alone {tokens(head)} tokens; as a prompt section {tokens(section)} tokens)")
    print(f"   {MANY:,} variables at the default budget: ~{tokens(text)} tokens "
          f"(budget {namespace.DEFAULT_BUDGET_TOKENS})")
    ok &= tokens(text) <= namespace.DEFAULT_BUDGET_TOKENS

    big_set = set(range(1_000_000))
    set_ms = median_ms(lambda: namespace.headline(big_set))
    print(f"\n4. a set of 1,000,000 ints: headline {set_ms:6.2f} ms (sampled, not repr'd or sorted; "
          f"target <= {TARGET_SET_MS:g} ms)")
    ok &= set_ms <= TARGET_SET_MS

    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
