"""What does the run store cost a run, and how fast is ``%agent runs`` on a big store?

Targets: <= 1 ms of store overhead per step (a step with a 10 KB observation);
``%agent runs`` <= 100 ms with 10,000 stored runs.

1. Per step. A real run of ``--steps`` actions (``CodeAgent``, ``ScriptedModel``,
   ``LocalPythonExecutor``), each printing 10 KB, so each observation is 10 KB and each
   step's input repeats the whole conversation so far. Its steps are then fed, as the loop
   feeds them, to a ``StoreWriter`` on a fresh store file: ``step_finished`` is timed
   (one committed transaction per step: the step's row, its new messages, the run's
   totals). Compared with two references per step: ``json.dumps(step.to_dict())`` (the
   step's own serialisation, which carries the whole conversation) and a plain ``exec``
   of the action's code. Early and late steps are reported apart: the cost must not grow
   with the conversation.
2. Listing. A store of 10,000 runs (one real run's rows copied, with their steps), then
   ``%agent runs`` (and ``--all-notebooks``) timed in an IPython shell as a user runs it:
   the first call (opening the store) and the median of warm calls.

Wall times on a shared machine: medians are the numbers to compare with the targets.
Run it as ``python bench/store.py`` from anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from smol_magic import CodeAgent, LocalPythonExecutor, ScriptedModel  # noqa: E402
from smol_magic.store import RunStore, StoreWriter  # noqa: E402
from smol_magic.store.connection import transaction  # noqa: E402

STEP_TARGET_MS = 1.0
LIST_TARGET_MS = 100.0
OBSERVATION = 10_000


def build_run(steps: int) -> CodeAgent:
    replies = [f"Thought: step {i}.\n```python\nv_{i} = 'x' * {OBSERVATION - 1}\nprint(v_{i})\n```"
               for i in range(1, steps)]
    replies.append("Thought: done.\n```python\nfinal_answer('done')\n```")
    agent = CodeAgent(model=ScriptedModel(replies), executor=LocalPythonExecutor(), max_steps=steps,
                      max_observation_chars=OBSERVATION + 1_000)
    agent.run("Print ten kilobytes, many times.")
    run = agent.runs[-1]
    if run.state != "done" or len(run.action_steps) != steps:
        raise SystemExit(f"bench/store.py: the run did not finish: {run.state}, {len(run.action_steps)} steps")
    return agent


def ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def per_step(steps: int, folder: Path) -> dict[str, object]:
    agent = build_run(steps)
    run = agent.runs[-1]
    store = RunStore(folder / "steps.sqlite")
    writer = StoreWriter(store, "bench.ipynb", None, "code")
    agent.runs = [run]  # the writer reads the run it starts from the agent, as in a live run
    writer.run_started(agent, run.task)
    write, dumps, execs = [], [], []
    namespace: dict[str, object] = {"final_answer": lambda answer: answer}
    for step in run.steps:
        start = time.perf_counter()
        writer.step_finished(step)
        took = ms(start)
        if step.kind != "action":
            continue
        write.append(took)
        start = time.perf_counter()
        json.dumps(step.to_dict())
        dumps.append(ms(start))
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(step.code, namespace)  # noqa: S102 - the bench's own code
        execs.append(ms(start))
    writer.run_finished(run)
    assert writer.run_id == 1, "the store did not take the run"
    observation = len(run.action_steps[0].observation)
    size = sum(p.stat().st_size for p in folder.glob("steps.sqlite*"))
    tenth = max(1, steps // 10)
    return {"steps": steps, "observation": observation, "write": write, "dumps": dumps, "exec": execs,
            "early": write[:tenth], "late": write[-tenth:], "size": size}


def fill(store: RunStore, runs: int) -> None:
    """``runs`` stored runs: copies of run 1 with its steps, over two notebooks."""
    conn = store.connection()
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)") if r[1] != "id"]
    step_columns = [r[1] for r in conn.execute("PRAGMA table_info(steps)") if r[1] != "run_id"]
    with transaction(conn):
        for i in range(runs - 1):
            cursor = conn.execute(
                f"INSERT INTO runs ({', '.join(columns)}) SELECT {', '.join(columns)} FROM runs WHERE id = 1")
            new = cursor.lastrowid
            conn.execute("UPDATE runs SET notebook = ?, task = ? WHERE id = ?",
                         ("other.ipynb" if i % 2 else "bench.ipynb", f"task number {new} of the bench", new))
            conn.execute(f"INSERT INTO steps (run_id, {', '.join(step_columns)}) "
                         f"SELECT ?, {', '.join(step_columns)} FROM steps WHERE run_id = 1", (new,))
            conn.execute("INSERT INTO message_refs (hash, run_id) SELECT hash, ? FROM message_refs WHERE run_id = 1",
                         (new,))


def listing(folder: Path, runs: int, repeat: int) -> dict[str, object]:
    from IPython.core.interactiveshell import InteractiveShell

    store_file = folder / "list.sqlite"
    agent = build_run(3)
    store = RunStore(store_file)
    writer = StoreWriter(store, "bench.ipynb", None, "code")
    writer.run_started(agent, agent.runs[-1].task)
    for step in agent.runs[-1].steps:
        writer.step_finished(step)
    writer.run_finished(agent.runs[-1])
    start = time.perf_counter()
    fill(store, runs)
    filled = ms(start) / 1000
    store.close()
    os.environ["SMOL_MAGIC_STORE"] = str(store_file)
    os.environ["JPY_SESSION_NAME"] = "bench.ipynb"
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "smol_magic")
    results: dict[str, object] = {"count": runs, "fill_s": filled}
    for line in ("runs", "runs --all-notebooks"):
        times = []
        for _ in range(repeat + 1):
            out = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(out):
                shell.run_line_magic("agent", line)
            times.append(ms(start))
        results[line] = times
        results[line + " out"] = out.getvalue()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="steps of the run written step by step")
    parser.add_argument("--runs", type=int, default=10_000, help="stored runs for the listing")
    parser.add_argument("--repeat", type=int, default=20, help="warm %%agent runs calls timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        step = per_step(args.steps, folder)
        listed = listing(folder, args.runs, args.repeat)
    med = statistics.median
    write, dumps, execs = step["write"], step["dumps"], step["exec"]
    print(f"store overhead per step ({step['steps']} steps, {step['observation']:,}-character observations, "
          "one committed transaction each):")
    print(f"  store write (StoreWriter.step_finished): median {med(write):.3f} ms, best {min(write):.3f} ms, "
          f"max {max(write):.3f} ms   target <= {STEP_TARGET_MS:g} ms: "
          f"{'OK' if med(write) <= STEP_TARGET_MS else 'OVER'}")
    tenth = len(step["early"])
    p95 = sorted(write)[int(0.95 * (len(write) - 1))]
    print(f"  p95 {p95:.3f} ms (the spikes: SQLite WAL checkpoints, about one per 1,000 pages written, and the shared machine)")
    print(f"  first {tenth} steps: median {med(step['early']):.3f} ms; last {tenth} steps: median "
          f"{med(step['late']):.3f} ms: late / early {med(step['late']) / med(step['early']):.2f}x, against "
          f"{med(dumps[-tenth:]) / med(dumps[:tenth]):.1f}x for json.dumps(step.to_dict()) (what grows is the "
          "check that the conversation's earlier messages are unchanged, a memcmp)")
    print(f"  reference: json.dumps(step.to_dict()) median {med(dumps):.3f} ms "
          f"(store / dumps {med(write) / med(dumps):.2f}x; last steps {med(dumps[-len(step['late']):]):.3f} ms, "
          "as it carries the whole conversation)")
    print(f"  reference: exec of the action's code median {med(execs):.3f} ms (store / exec {med(write) / med(execs):.1f}x)")
    print(f"  store files (database and WAL) after the run: {step['size'] / 1e6:.2f} MB for {step['steps']} x "
          f"{step['observation'] / 1e3:.0f} KB observations (each input message once)")
    print(f"%agent runs with {listed['count']:,} stored runs (filled in {listed['fill_s']:.1f} s), "
          f"{args.repeat} warm calls:")
    for line in ("runs", "runs --all-notebooks"):
        times = listed[line]
        print(f"  %agent {line}: first call {times[0]:.1f} ms, warm median {med(times[1:]):.1f} ms, "
              f"max {max(times[1:]):.1f} ms   target <= {LIST_TARGET_MS:g} ms: "
              f"{'OK' if max(times[0], med(times[1:])) <= LIST_TARGET_MS else 'OVER'}")
        print("    " + listed[line + " out"].strip().splitlines()[-1])


if __name__ == "__main__":
    main()
