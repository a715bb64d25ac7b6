"""How long does ``%agent export`` take for a long run?

Target: <= 200 ms to export a 100-step run, as .ipynb and as .py.

The script builds one real run of 100 actions (``CodeAgent`` with a
``ScriptedModel`` of 100 small replies, run by ``LocalPythonExecutor``; each
action binds a variable and prints one line, the last calls ``final_answer``),
then times ``agent.to_notebook(path)``, which is what ``%agent export`` calls:

- ``.ipynb``: build the notebook (plain nbformat v4.5 JSON, checked by the tests) and write it;
- ``.py``: build the same notebook and write its code cells as a script;
- for the ``.ipynb`` export, its two parts: ``build`` (``notebook.run_notebook``)
  and ``write`` (``notebook.write_notebook``).

The first export of a process also imports nbformat (which imports jsonschema and
its format checkers): that cold call is timed on its own, in a fresh interpreter,
and reported apart from the warm ones. Warm times are wall times, median (and
best) of ``--repeat`` exports; the machine may be shared, so the median is the
number to compare with the target. Run it as ``python bench/export.py`` from
anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from smol_magic import CodeAgent, LocalPythonExecutor, ScriptedModel  # noqa: E402
from smol_magic.export import notebook  # noqa: E402

TARGET_MS = 200.0
STEPS = 100


def build_run(steps: int = STEPS) -> CodeAgent:
    """A finished run of ``steps`` actions, the last one giving the final answer."""
    replies = [
        f"Thought: step {i}: one small computation.\n```python\nx_{i} = {i} * 2\nprint('x_{i} =', x_{i})\n```"
        for i in range(1, steps)
    ]
    total = " + ".join(f"x_{i}" for i in range(1, steps))
    replies.append(f"Thought: done.\n```python\ntotal = {total}\nfinal_answer(total)\n```")
    agent = CodeAgent(model=ScriptedModel(replies), executor=LocalPythonExecutor(), max_steps=steps)
    agent.run("Compute 100 small numbers, then their sum.")
    run = agent.runs[-1]
    if run.state != "done" or len(run.action_steps) != steps or any(s.error for s in run.action_steps):
        raise SystemExit(f"bench/export.py: the {steps}-step run did not finish cleanly: {run.state}, "
                         f"{len(run.action_steps)} steps, errors: {[s.error for s in run.action_steps if s.error][:1]}")
    return agent


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def cold() -> None:
    """Child process: the first export of a fresh interpreter, nbformat not yet imported."""
    agent = build_run()
    assert "nbformat" not in sys.modules, "something imported nbformat before the export"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        agent.to_notebook(str(Path(tmp) / "run.ipynb"))
        print(json.dumps({"cold_ms": (time.perf_counter() - start) * 1000}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="warm exports per measure (default 20)")
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:
        cold()
        return 0

    start = time.perf_counter()
    agent = build_run()
    run_ms = (time.perf_counter() - start) * 1000
    run = agent.runs[-1]

    with tempfile.TemporaryDirectory() as tmp:
        ipynb, py = Path(tmp) / "run.ipynb", Path(tmp) / "run.py"
        agent.to_notebook(str(ipynb))  # warm-up: imports nbformat
        measures = {
            ".ipynb": timed(lambda: agent.to_notebook(str(ipynb)), args.repeat),
            ".py": timed(lambda: agent.to_notebook(str(py)), args.repeat),
        }
        ns = agent.executor.namespace
        built = notebook.run_notebook(run, ns)
        parts = {
            "  build": timed(lambda: notebook.run_notebook(run, ns), args.repeat),
            "  write": timed(lambda: notebook.write_notebook(built, ipynb), args.repeat),
        }
        import nbformat

        exported = nbformat.read(ipynb, as_version=4)
        code_cells = sum(c.cell_type == "code" for c in exported.cells)
        sizes = {".ipynb": ipynb.stat().st_size, ".py": py.stat().st_size}

    child = subprocess.run([sys.executable, __file__, "--cold"], capture_output=True, text=True, check=True)
    cold_ms = json.loads(child.stdout.strip().splitlines()[-1])["cold_ms"]

    print(f"smol-magic export benchmark: a {len(run.action_steps)}-step run "
          f"({code_cells} code cells: the actions and the requirements cell), built in {run_ms:.0f} ms")
    print(f"{'export':<20} {'median ms':>10} {'best ms':>9}   (wall time, {args.repeat} runs; target <= {TARGET_MS:.0f} ms)")
    for name, times in {**measures, **parts}.items():
        size = f"   {sizes[name] / 1024:.0f} KiB" if name in sizes else ""
        verdict = ""
        if name in measures:
            verdict = "   ok" if statistics.median(times) <= TARGET_MS else "   OVER TARGET"
        print(f"{name:<20} {statistics.median(times):>10.1f} {min(times):>9.1f}{size}{verdict}")
    print(f"{'.ipynb, cold':<20} {cold_ms:>10.1f} {'':>9}   first export of a fresh process "
          f"(the export imports no nbformat){'' if cold_ms <= TARGET_MS else ' (over the target)'}")
    worst = max(statistics.median(t) for t in measures.values())
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
