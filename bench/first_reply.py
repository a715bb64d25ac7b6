"""How long from Shift-Enter on the first ``%%agent`` cell of a fresh kernel to the model's first request?

A real fresh kernel (the installed ipykernel, driven over ZMQ by jupyter_client as JupyterLab
drives it, the cell's id in the execute request's metadata, and answering the ``smol_magic`` comm as
smol-magic's JupyterLab extension does) runs ``%load_ext smol_magic``,
then a ``%%agent --model openai/local-model`` cell. The model is a litellm id, pointed at the
local OpenAI-compatible test server (tests/openai_server.py, in this process) by the
kernel's environment (``OPENAI_API_BASE``, ``OPENAI_API_KEY``), as a user of a local server
(vLLM, llama.cpp, LM Studio) sets it. Measured: from sending the execute request to the
server receiving the first chat request (same machine, ``time.monotonic`` on both sides), with the
cell sent at once after ``%load_ext`` (Run All) and 2 s after it (a person moving to the next cell).
Target: <= 0.5 s.

Printed next to it, as references measured in this run:
- a plain ``import litellm`` in a fresh process (what the first request used to wait for);
- what the warm-up thread ``%load_ext`` starts (ipywidgets, httpx, the prompt templates, litellm's cost
  map: about half a second of work) costs the user's next cell, sent right behind ``%load_ext``;
- what a background ``import litellm`` (a thread started at ``%load_ext``, the other way to hide
  it) would cost the user's own cells meanwhile: a small CPU-bound cell timed alone and while a
  thread imports litellm, in one fresh process. smol-magic does not import litellm in the
  background; this says why.

Run it as ``python bench/first_reply.py`` from anywhere (``--runs N`` fresh kernels, median).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kernel_helpers import collect, kernel_env, run, send, send_comm, stop_kernel  # noqa: E402
from openai_server import OpenAIServer  # noqa: E402
from jupyter_client.manager import start_new_kernel  # noqa: E402

TARGET_S = 0.5
# When the %%agent cell is sent after %load_ext's reply: at once (Run All: the warm-up thread %load_ext
# starts is still at work), or after a person's pause before Shift-Enter on the next cell.
PAUSES = {0.0: "sent at once after %load_ext (Run All)", 2.0: "sent 2 s after %load_ext (a person's Shift-Enter)"}
CELL = "%%agent --model openai/local-model --reset --approve never\nSay hi and finish."
REPLY = "Thought: done.\n```python\nfinal_answer('hi')\n```"

IMPORT_LITELLM = """
import os, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
t = time.perf_counter()
import litellm
print(time.perf_counter() - t)
"""

# A user's small cell (pure Python, ~50 ms alone), timed alone, then while a thread imports litellm.
BACKGROUND = """
import os, statistics, sys, threading, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

def cell():
    t = time.perf_counter()
    sum(i * i for i in range(300_000))
    return time.perf_counter() - t

alone = statistics.median(cell() for _ in range(7))
worker = threading.Thread(target=lambda: __import__("litellm"), daemon=True)
start = time.perf_counter()
worker.start()
during = []
while worker.is_alive():
    during.append(cell())
took = time.perf_counter() - start
print(alone, statistics.median(during), len(during), took)
"""


def first_request(srv: OpenAIServer, pause: float) -> tuple[float, float, str]:
    """(seconds from the execute request to the first model request, %load_ext seconds, the cell's status),
    the %%agent cell sent ``pause`` seconds after %load_ext's reply."""
    env = kernel_env()
    env.update(OPENAI_API_BASE=srv.base_url, OPENAI_API_KEY="sk-bench", SMOL_MAGIC_STORE="")
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120, env=env)
    try:
        started = time.monotonic()
        loaded = run(kc, "%load_ext smol_magic", timeout=60)
        load_s = time.monotonic() - started
        assert loaded.status == "ok", loaded.text
        time.sleep(pause)
        before = len(srv.requests)
        srv.push_reply(REPLY)
        sent = time.monotonic()
        msg_id = send(kc, CELL, cell_id=str(uuid.uuid4()))
        status = play_extension(kc, msg_id)
        if len(srv.requests) <= before:
            raise RuntimeError("the model was never asked")
        return srv.requests[before].at - sent, load_s, status
    finally:
        stop_kernel(km, kc)


def play_extension(kc, msg_id: str, timeout: float = 120) -> str:
    """Read the cell's iopub messages as JupyterLab with smol-magic's extension: answer the ``smol_magic``
    comm's hello, ``begin_run`` and each ``insert`` (as tests/test_cells_kernel.py does); the cell's status."""
    comm_id, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        content, kind = msg["content"], msg["msg_type"]
        if kind == "comm_open" and content.get("target_name") == "smol_magic":
            comm_id = content["comm_id"]
            send_comm(kc, comm_id, {"type": "hello", "version": 1, "frontend": "bench"})
        elif kind == "comm_msg" and content.get("comm_id") == comm_id:
            data = content["data"]
            if data.get("type") == "begin_run":
                send_comm(kc, comm_id, {"type": "begun", "run_id": data["run_id"], "agent_cell_id":
                                        data["agent_cell_id"], "removed": 0, "kept": 0, "removed_ids": []})
            elif data.get("type") == "insert":
                send_comm(kc, comm_id, {"type": "inserted", "step": data["step"], "cell_id": str(uuid.uuid4())})
        elif kind == "error" and msg["parent_header"].get("msg_id") == msg_id:
            return f"error: {content['ename']}: {content['evalue']}"
        elif (kind == "status" and content["execution_state"] == "idle"
              and msg["parent_header"].get("msg_id") == msg_id):
            return "ok"
    raise TimeoutError("the %%agent cell did not finish")


USER_CELL = "import time as _t\n_s = _t.perf_counter()\nsum(i * i for i in range(300_000))\nprint(_t.perf_counter() - _s)"


def warm_up_cost() -> tuple[float, float]:
    """(a small user cell alone, the same cell sent right after %load_ext, while the warm-up thread runs), seconds."""
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120, env=kernel_env())
    try:
        alone = statistics.median(float(run(kc, USER_CELL).stdout) for _ in range(5))
        load = send(kc, "%load_ext smol_magic")
        during = send(kc, USER_CELL)  # queued right behind it, as Run All sends them
        collect(kc, load, timeout=60)
        return alone, float(collect(kc, during, timeout=60).stdout)
    finally:
        stop_kernel(km, kc)


def python(code: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh kernels to measure (median)")
    options = parser.parse_args()
    print(f"smol-magic first reply · Python {sys.version.split()[0]} · {options.runs} fresh kernels")
    firsts: dict[float, list[float]] = {pause: [] for pause in PAUSES}
    loads = []
    with OpenAIServer() as srv:
        for _ in range(options.runs):
            for pause in PAUSES:
                first, load, status = first_request(srv, pause)
                firsts[pause].append(first)
                loads.append(load)
                assert status == "ok", status
    imports = [python(IMPORT_LITELLM)[0] for _ in range(options.runs)]
    print("  Shift-Enter -> first model request (%%agent --model openai/local-model, a fresh kernel each time):")
    verdicts = []
    for pause, label in PAUSES.items():
        first = statistics.median(firsts[pause])
        verdicts.append(first <= TARGET_S)
        print(f"    {label:<50} median {first:5.2f} s (runs: {', '.join(f'{t:.2f}' for t in firsts[pause])})"
              f"   target <= {TARGET_S:g} s: {'ok' if first <= TARGET_S else 'OVER'}")
    print(f"  %load_ext smol_magic before it:        median {statistics.median(loads):5.2f} s")
    print(f"  reference: import litellm, fresh process: median {statistics.median(imports):5.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in imports)})")
    alone, during = warm_up_cost()
    print(f"  the warm-up thread started by %load_ext (ipywidgets, httpx, prompts, cost map) slows the user's next cell "
          f"from {alone * 1e3:.0f} ms to {during * 1e3:.0f} ms ({during / alone:.1f}x; Run All order)")
    alone, during, cells, took = python(BACKGROUND)
    print(f"  a background import of litellm (not done) would slow a small user cell from {alone * 1e3:.0f} ms to "
          f"{during * 1e3:.0f} ms ({during / alone:.1f}x, median of {cells:.0f} cells during the {took:.1f} s import)")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
