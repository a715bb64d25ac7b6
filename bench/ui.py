"""What does the live widget trace cost, and how fast does a click reach the action?

Both measurements run in a real ipykernel (the installed one), driven over ZMQ
by jupyter_client exactly as JupyterLab drives it; this script reads every
iopub message the kernel publishes, as a frontend would.

Why a real kernel: outside one, ipywidgets 8 gets a ``comm.DummyComm`` from
the ``comm`` package, which drops every message. Widgets would then look free,
since nothing would be serialised or sent. In a kernel each widget change is a
real ``comm_msg`` on iopub.

(a) Per-step overhead of the live widget. In one kernel, a ``CodeAgent`` with
    a ``ScriptedModel`` runs ``STEPS`` trivial actions (``x = i``) and then
    ``final_answer``. The agent uses the %%agent path: ``KernelExecutor`` on
    the kernel's shell, awaited from an async cell. Its renderer is either the
    base ``Renderer()`` (shows nothing) or ``WidgetTrace(approve_mode="never")``
    (one card per step, then the static trace that replaces the widget).
    Each run's wall time includes run_finished, so the static rendering is
    counted. The runs alternate (base, widget, base, ...) after one warm-up
    of each, ``REPEATS`` each. Overhead = median widget ms/step minus median
    base ms/step. Target: <= 5 ms per step.

(b) Click to action. ``%%agent --approve every`` with ``CLICK_STEPS`` actions.
    Each action's first statement writes ``time.time()`` to a file. For every
    approval card the script sends the Run button's real comm click
    (``{"method": "custom", "content": {"event": "click"}}``) and records the
    file's time minus the moment the click was sent (same machine, same
    clock). Target: median <= 150 ms.

Run it as ``python bench/ui.py``, from anywhere. Every number is measured in
this run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the jupyter_client helpers the kernel tests use

from kernel_helpers import LiveCell, run, start_kernel, stop_kernel  # noqa: E402

STEPS = 50
REPEATS = 5
CLICK_STEPS = 12
TARGET_OVERHEAD_MS = 5.0
TARGET_LOAD_MS = 300  # %load_ext smol_magic
TARGET_CLICK_MS = 150.0

SETUP = """
import time, statistics
from smol_magic.core.agents import CodeAgent
from smol_magic.core.approval import ModeApprover
from smol_magic.core.events import Renderer
from smol_magic.jupyter.kernel_executor import KernelExecutor
from smol_magic.core.models import ScriptedModel
from smol_magic.jupyter.widgets import WidgetTrace

def _replies(n):
    return ["```python\\nx_%d = %d\\n```" % (i, i) for i in range(n)] + ["```python\\nfinal_answer(1)\\n```"]

async def _one(kind, steps):
    renderer = WidgetTrace(approve_mode="never") if kind == "widget" else Renderer()
    agent = CodeAgent(model=ScriptedModel(_replies(steps)), executor=KernelExecutor(get_ipython()),
                      renderer=renderer, approver=ModeApprover("never"), max_steps=steps + 5)
    start = time.perf_counter()
    await agent.arun("count", reset=True)
    elapsed = time.perf_counter() - start
    run = agent.runs[-1]
    assert run.state == "done" and len(run.action_steps) == steps + 1, (run.state, run.error)
    return elapsed / len(run.action_steps)

def _breakdown(steps):
    # one widget run with each renderer hook timed, and the static trace's size
    import collections
    spent = collections.defaultdict(float)

    class Timed(WidgetTrace):
        pass

    for name in ("run_started", "step_started", "model_delta", "action_ready", "action_started",
                 "step_finished", "run_finished"):
        def timed(self, *args, _orig=getattr(WidgetTrace, name), _name=name):
            start = time.perf_counter()
            try:
                return _orig(self, *args)
            finally:
                spent[_name] += time.perf_counter() - start
        setattr(Timed, name, timed)
    renderer = Timed(approve_mode="never")
    agent = CodeAgent(model=ScriptedModel(_replies(steps)), executor=KernelExecutor(get_ipython()),
                      renderer=renderer, approver=ModeApprover("never"), max_steps=steps + 5)
    captured = {}
    finished = renderer.run_finished
    def keep_static(result):
        from smol_magic.ui import html as h
        captured["html"] = len(h.run_html(renderer.task, renderer.model_id, result.steps, result.state,
                                          result.duration, 0, 0, result.error).encode())
        return finished(result)
    renderer.run_finished = keep_static
    return agent, spent, captured
"""

MEASURE = """
_times = {{"base": [], "widget": []}}
for _kind in ("base", "widget"):  # warm-up: imports, pygments, first comm
    await _one(_kind, 5)
for _ in range({repeats}):
    for _kind in ("base", "widget"):
        _times[_kind].append(await _one(_kind, {steps}))
print("RESULT", __import__("json").dumps(_times))
"""


BREAKDOWN = """
_agent, _spent, _static = _breakdown({steps})
await _agent.arun("count", reset=True)
_n = len(_agent.runs[-1].action_steps)
print("RESULT", __import__("json").dumps({{"hooks": {{k: v / _n for k, v in _spent.items()}}, "steps": _n,
                                          "static_bytes": _static["html"]}}))
"""


def _result(result) -> dict:
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text[-2000:]}"
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def measure_overhead(kc) -> dict[str, list[float]]:
    assert run(kc, SETUP, timeout=60).status == "ok"
    return _result(run(kc, MEASURE.format(repeats=REPEATS, steps=STEPS), timeout=600))


def measure_breakdown(kc) -> dict:
    """Where a widget step's time goes, and how many comm messages it costs (counted on the client side)."""
    result = run(kc, BREAKDOWN.format(steps=STEPS), timeout=600)
    found = _result(result)
    kinds = [m["msg_type"] for m in result.iopub]
    found["comm"] = {kind: kinds.count(kind) / found["steps"] for kind in ("comm_open", "comm_msg", "comm_close")}
    return found


def stamp(path: Path, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return float(text)
        time.sleep(0.001)
    raise TimeoutError(f"the action did not write {path}")


def measure_clicks(kc, folder: Path) -> list[float]:
    replies = [f"```python\nmark('s{i}')\ny_{i} = {i}\n```" for i in range(CLICK_STEPS)] + [
        "```python\nfinal_answer('clicked')\n```"]
    setup = (
        "import os as _os, time as _time\n"
        "def mark(name):\n"
        f"    with open(_os.path.join({str(folder)!r}, name), 'w') as f:\n"
        "        f.write(repr(_time.time()))\n"
        "from smol_magic.core.models import ScriptedModel\n"
        f"clicker = ScriptedModel({replies!r})\n"
    )
    assert run(kc, setup).status == "ok"
    live = LiveCell(kc, "%%agent -m clicker --reset --approve every\nclick through")
    latencies = []
    for i in range(CLICK_STEPS + 1):
        sent = live.click(live.wait_for_card(timeout=30))
        if i < CLICK_STEPS:
            latencies.append(stamp(folder / f"s{i}") - sent)
    result = live.finish(timeout=30)
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text[-2000:]}"
    return latencies


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def main() -> int:
    import ipykernel
    import ipywidgets

    print(f"smol-magic UI benchmark · Python {sys.version.split()[0]} · ipykernel {ipykernel.__version__} "
          f"· ipywidgets {ipywidgets.__version__} · a real kernel over ZMQ (jupyter_client)")
    km, kc = start_kernel()
    try:
        times = measure_overhead(kc)
        base = statistics.median(times["base"]) * 1e3
        widget = statistics.median(times["widget"]) * 1e3
        overhead = widget - base
        print()
        print(f"(a) live widget overhead: CodeAgent + ScriptedModel, {STEPS} x 'x_i = i' + final_answer, "
              f"KernelExecutor in the kernel; median of {REPEATS} alternating runs each (after 1 warm-up)")
        print(f"    base Renderer()                       {base:7.2f} ms/step   "
              f"(runs: {', '.join(f'{t * 1e3:.2f}' for t in times['base'])})")
        print(f"    WidgetTrace(approve_mode='never')     {widget:7.2f} ms/step   "
              f"(runs: {', '.join(f'{t * 1e3:.2f}' for t in times['widget'])})")
        print(f"    widget adds                           {overhead:7.2f} ms/step   target <= "
              f"{TARGET_OVERHEAD_MS:g} ms: {verdict(overhead, TARGET_OVERHEAD_MS)}")
        parts = measure_breakdown(kc)
        hooks = sorted(parts["hooks"].items(), key=lambda kv: -kv[1])
        print(f"    where it goes (one more widget run, ms/step in each WidgetTrace hook): "
              + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in hooks))
        comm = parts["comm"]
        print(f"    iopub comm messages per step: {comm['comm_open']:.1f} comm_open, {comm['comm_msg']:.1f} comm_msg, "
              f"{comm['comm_close']:.1f} comm_close · static trace (text/html) for {parts['steps']} steps: "
              f"{parts['static_bytes'] / 1024:.0f} KiB")

        with tempfile.TemporaryDirectory() as folder:
            latencies = [t * 1e3 for t in measure_clicks(kc, Path(folder))]
        median = statistics.median(latencies)
        print()
        print(f"(b) click to action: %%agent --approve every, {len(latencies)} Run clicks sent as comm_msg on the "
              "shell channel; time.time() at the action's first statement minus time.time() at sending")
        print(f"    median {median:6.1f} ms · min {min(latencies):6.1f} ms · max {max(latencies):6.1f} ms   "
              f"target median <= {TARGET_CLICK_MS:g} ms: {verdict(median, TARGET_CLICK_MS)}")
        print(f"    all: {', '.join(f'{t:.1f}' for t in latencies)}")
    finally:
        stop_kernel(km, kc)
    loads = [measure_load_ext() for _ in range(5)]
    load = statistics.median(loads)
    print()
    print(f"(c) %load_ext smol_magic in a fresh IPython process: median {load:6.1f} ms of {len(loads)} "
          f"(all: {', '.join(f'{t:.1f}' for t in loads)})   target <= {TARGET_LOAD_MS:g} ms: "
          f"{verdict(load, TARGET_LOAD_MS)}")
    return 0 if overhead <= TARGET_OVERHEAD_MS and median <= TARGET_CLICK_MS and load <= TARGET_LOAD_MS else 1


def measure_load_ext() -> float:
    """Milliseconds ``%load_ext smol_magic`` takes in a new process (IPython already imported)."""
    code = ("import time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nt = time.perf_counter()\nip.run_line_magic('load_ext', 'smol_magic')\n"
            "print((time.perf_counter() - t) * 1e3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


if __name__ == "__main__":
    sys.exit(main())
