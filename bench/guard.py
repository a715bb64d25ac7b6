"""How long does the guard take to judge an action?

The guard runs before every action, so it must cost little next to running the action: the action is
parsed once and the guard's tree is what runs, so parse + guard of a 200-line action is the target's
measure, <= 1.5 x one ``ast.parse`` (issue 17), growing with the action's length as the parse does.

For actions of 10, 100, 200 and 1,000 lines of ordinary analysis code (pandas,
numpy, plots, functions, classes, loops, comprehensions, f-strings), this script
measures in one process:

- ``parse``: ``ast.parse`` alone (the executor pays it again: IPython and ``exec``
  compile the same code);
- ``guard``: the guard's own pass over an already parsed tree
  (``check(code, policy, tree=tree)``), without and with a live namespace
  (``+ctx``: DataFrames, arrays, lists; the user's-data rules on);
- ``check``: what the agent pays, ``check(code, policy, context)``: parse + guard;
- ``visitor``: a no-op ``ast.NodeVisitor`` over the same tree (what a guard written as a visitor pays
  before it checks anything);
- ``walk``: the tightest pure-Python pass that reaches every node (a stack, each type's child fields
  looked up once): the floor for any guard that looks at the whole tree in Python.

Times are CPU times of this process (``time.process_time``), best of many runs:
the machine may be shared, and the best run is the cost without interference.
The median wall time of ``check`` is printed too. Run it as
``python bench/guard.py`` from anywhere.
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


def timings(fn, repeat: int) -> tuple[float, float]:
    """(best CPU time, median wall time), in ms."""
    fn()  # warm-up (caches of module lookups)
    cpu, wall = [], []
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return min(cpu) * 1000, statistics.median(wall) * 1000


class _Noop(ast.NodeVisitor):
    pass


_FIELDS: dict[type, tuple[str, ...]] = {}


def tight_walk(tree: ast.AST) -> int:
    """Reach every node, doing nothing else: the floor of a pure-Python pass over the tree."""
    stack, count = [tree], 0
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        count += 1
        cls = type(node)
        fields = _FIELDS.get(cls)
        if fields is None:
            fields = _FIELDS[cls] = tuple(f for f in cls._fields if f not in ("ctx", "op", "ops", "id", "attr", "arg"))
        for name in fields:
            value = getattr(node, name, None)
            if type(value) is list:
                extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                push(value)
    return count


def loop_ms() -> float:
    start = time.process_time()
    for _ in range(1_000_000):
        pass
    return (time.process_time() - start) * 1000


def main() -> None:
    gc.collect()
    policy = guard.Policy()
    namespace = {
        "sales": pd.DataFrame({"region": ["a", "b"] * 50, "revenue": np.arange(100.0), "month": np.arange(100) % 12}),
        "regions": pd.DataFrame({"region": ["a", "b"], "name": ["A", "B"]}),
        "data": list(range(1000)), "pd": pd, "np": np,
    }
    context = guard.GuardContext(namespace=namespace)
    print(f"guard benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; an empty 1M-iteration loop takes {loop_ms():.0f} ms here")
    print("CPU ms, best of many runs (wall: median wall time of check)")
    print(f"{'lines':>6} {'nodes':>6} {'parse':>7} {'guard':>7} {'guard+ctx':>9} {'check':>7} {'wall':>7} "
          f"{'visitor':>7} {'walk':>7} {'us/line':>8}  verdict")
    rows = {}
    for lines in (10, 100, 200, 1000):
        code = action(lines)
        tree = ast.parse(code)
        nodes = sum(1 for _ in ast.walk(tree))
        repeat = 300 if lines <= 200 else 60
        parse, _ = timings(lambda: ast.parse(code), repeat)
        own, _ = timings(lambda: guard.check(code, policy, tree=tree), repeat)
        own_ctx, _ = timings(lambda: guard.check(code, policy, context, tree=tree), repeat)
        full, wall = timings(lambda: guard.check(code, policy, context), repeat)
        visitor, _ = timings(lambda: _Noop().visit(tree), repeat)
        walk, _ = timings(lambda: tight_walk(tree), repeat)
        verdict = guard.check(code, policy, context)
        rows[lines] = (full, own_ctx, parse, visitor, walk)
        print(f"{lines:>6} {nodes:>6} {parse:>7.3f} {own:>7.3f} {own_ctx:>9.3f} {full:>7.3f} {wall:>7.3f} "
              f"{visitor:>7.3f} {walk:>7.3f} {full / lines * 1000:>8.1f}  {verdict.decision}")
    full_200, own_200, parse_200, visitor_200, walk_200 = rows[200]
    growth = (rows[1000][0] / 1000) / (rows[100][0] / 100)
    parse_growth = (rows[1000][2] / 1000) / (rows[100][2] / 100)
    print(f"\n200 lines: check {full_200:.2f} ms (parse included), guard alone {own_200:.2f} ms")
    # The agent parses an action once (core/agents.py): the guard judges that tree and the executor runs it,
    # so what the guard adds to running the code is one parse + its walk, against the parse IPython would do.
    ratio = (parse_200 + own_200) / parse_200
    print(f"200 lines, parsed once (the guard's tree is what runs): parse {parse_200:.2f} ms + guard {own_200:.2f} ms "
          f"= {ratio:.2f} x one ast.parse (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}); "
          f"a no-op ast.NodeVisitor is {visitor_200 / parse_200:.2f} x parse, the tightest walk of every node "
          f"{walk_200 / parse_200:.2f} x")
    print(f"growth: time per line at 1,000 lines / at 100 lines = {growth:.2f} (1.00 = linear); "
          f"ast.parse's own: {parse_growth:.2f}")


if __name__ == "__main__":
    main()
