"""How long does the guard take to judge an action?

The guard runs before every action, so it must cost little next to the model's
reply: target <= 2 ms for a 200-line action, growing linearly with its length.

For actions of 10, 100, 200 and 1,000 lines of ordinary analysis code (pandas,
numpy, plots, functions, classes, loops, comprehensions, f-strings), this
script measures in one process, as the median of repeated runs:

- ``parse``: ``ast.parse`` alone (any executor pays it too: IPython and ``exec``
  parse the same code again);
- ``check``: ``guard.check(code, policy)`` without a namespace;
- ``check+ctx``: ``guard.check(code, policy, context)`` judged against a live
  namespace holding DataFrames, arrays and lists (the user's-data rules on);
- ``check-parse``: the guard's own work, beyond parsing.

Run it as ``python bench/guard.py`` from anywhere.
"""

from __future__ import annotations

import ast
import gc
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from smol_magic import guard  # noqa: E402

# One "paragraph" of ordinary analysis code: 20 lines, the kinds of statements models write.
BLOCK = '''\
summary_{n} = sales.groupby("region")["revenue"].agg(["sum", "mean", "count"]).reset_index()
summary_{n}["share"] = summary_{n}["sum"] / summary_{n}["sum"].sum()
top_{n} = summary_{n}.sort_values("sum", ascending=False).head(3)
merged_{n} = sales.merge(regions, on="region", how="left")
pivot_{n} = merged_{n}.pivot_table(index="month", columns="region", values="revenue", aggfunc="sum")
growth_{n} = {{r: (pivot_{n}[r].iloc[-1] - pivot_{n}[r].iloc[0]) / pivot_{n}[r].iloc[0] for r in pivot_{n}.columns}}
best_{n} = max(growth_{n}, key=growth_{n}.get)
values_{n} = np.log1p(merged_{n}["revenue"].to_numpy())
z_{n} = (values_{n} - values_{n}.mean()) / values_{n}.std()
outliers_{n} = [i for i, v in enumerate(z_{n}) if abs(v) > 3]
def describe_{n}(frame, col="revenue"):
    stats = frame[col].describe()
    return f"{{col}}: mean={{stats['mean']:.2f}} max={{stats['max']:.2f}}"
class Report_{n}:
    def __init__(self, frame):
        self.frame = frame
    def top(self, k=5):
        return self.frame.nlargest(k, "revenue")
fig_{n}, ax_{n} = plt.subplots(figsize=(6, 3))
ax_{n}.bar(top_{n}["region"], top_{n}["sum"]); ax_{n}.set_title("Revenue by region {{}}".format({n}))
'''
HEADER = "import pandas as pd\nimport numpy as np\nimport matplotlib.pyplot as plt\n"


def action(lines: int) -> str:
    """An action of exactly ``lines`` lines: whole paragraphs, then one-line statements."""
    code, n = HEADER, 0
    while code.count("\n") + BLOCK.count("\n") <= lines:
        code += BLOCK.format(n=n)
        n += 1
    k = 0
    while code.count("\n") < lines:
        code += f'total_{k} = float(sales["revenue"].sum()) * {k + 1}\n'
        k += 1
    return code


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up (caches of module lookups)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    gc.collect()
    policy = guard.Policy()
    namespace = {
        "sales": pd.DataFrame({"region": ["a", "b"] * 50, "revenue": np.arange(100.0), "month": np.arange(100) % 12}),
        "regions": pd.DataFrame({"region": ["a", "b"], "name": ["A", "B"]}),
        "data": list(range(1000)), "pd": pd, "np": np,
    }
    context = guard.GuardContext(namespace=namespace)
    print(f"guard benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of repeated runs, ms")
    print(f"{'lines':>6} {'nodes':>7} {'parse':>8} {'check':>8} {'check+ctx':>10} {'check-parse':>12} {'us/line':>8}"
          f"  verdict")
    rows = []
    for lines in (10, 100, 200, 1000):
        code = action(lines)
        nodes = sum(1 for _ in ast.walk(ast.parse(code)))
        repeat = 200 if lines <= 200 else 40
        parse = median_ms(lambda: ast.parse(code), repeat)
        plain = median_ms(lambda: guard.check(code, policy), repeat)
        full = median_ms(lambda: guard.check(code, policy, context), repeat)
        verdict = guard.check(code, policy, context)
        rows.append((lines, full))
        print(f"{lines:>6} {nodes:>7} {parse:>8.3f} {plain:>8.3f} {full:>10.3f} {full - parse:>12.3f} "
              f"{full / lines * 1000:>8.1f}  {verdict.decision}")
    per_line = {lines: ms / lines for lines, ms in rows}
    growth = per_line[1000] / per_line[100]
    at_200 = dict(rows)[200]
    print(f"\n200-line action: {at_200:.2f} ms (target <= 2 ms: {'met' if at_200 <= 2 else 'NOT met'})")
    print(f"time per line, 1,000 lines vs 100 lines: x{growth:.2f} (1.0 = perfectly linear)")


if __name__ == "__main__":
    main()
