"""The run store in real kernels, driven as JupyterLab drives them: runs that outlast the kernel.

A run, a kernel restart, ``%agent runs`` lists it, its export re-executes, and a ``%%agent --resume``
cell continues its conversation as if the kernel had never restarted; a kernel killed in the middle
of step 3 leaves steps 1-2 whole and the run ``interrupted``; two kernels writing one store lose
nothing; a store that cannot be written warns once and the run completes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid

import nbclient
import nbformat
import pytest

from smol_magic.store import RunStore, queries

from kernel_helpers import (collect, evaluate, ok, py, run, running_kernel, scripted, send, started_marker,
                            wait_for_file, wait_for_output)

NOTEBOOK = "analysis/sales.ipynb"  # what JupyterLab's server sets as JPY_SESSION_NAME


def cell(kc, code: str, timeout: float = 60):
    """A cell run as JupyterLab runs it: with its cell id."""
    result = run(kc, code, timeout=timeout, cell_id=uuid.uuid4().hex)
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    return result


def db(path) -> sqlite3.Connection:
    return sqlite3.connect(path)


@pytest.fixture
def notebook_env(monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", NOTEBOOK)


def test_a_run_outlasts_a_restart_resumes_and_exports(notebook_env, own_store, tmp_path):
    first_task = "Add one to base, then double it."
    with running_kernel() as (km, kc):
        ok(kc, "base = 20")
        ok(kc, scripted("m", py("total = base + 1\nprint(total)", "add one"), py("final_answer(total * 2)")))
        cell(kc, f"%%agent -m m\n{first_task}")
        last_request = evaluate(kc, "m.requests[-1]")
        final_reply = py("final_answer(total * 2)")

        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        ok(kc, "%load_ext smol_magic")
        assert evaluate(kc, "'base' in globals() or 'total' in globals()") is False

        listing = cell(kc, "%agent runs")
        assert "Add one to base, then double it." in listing.text
        row = [line for line in listing.text.splitlines() if "Add one to base" in line][0]
        assert row.split()[0] == "1" and " done " in row and "scripted" in row and row.rstrip().endswith("—")
        assert "1 stored run of this notebook" in listing.text
        table = listing.outputs[-1]["data"]["text/html"]  # JupyterLab shows the table
        assert '<table class="smol-magic-runs"' in table and "<td" in table and "Add one to base" in table

        # The user re-runs the cell that made `base`; the stored run exports and re-executes.
        ok(kc, "base = 20")
        exported = tmp_path / "run1.ipynb"
        done = cell(kc, f"%agent export {exported} --run 1 --with-setup")
        assert "exported stored run 1 (2 steps, with 1 setup cells)" in done.stdout
        nb = nbformat.read(exported, as_version=4)
        nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        assert code_cells[0].source == "base = 20"
        assert "".join(o.get("text", "") for o in code_cells[-2].outputs) == "21\n"
        assert code_cells[-1].outputs[-1]["data"]["text/plain"] == "42"

        # A --resume cell continues the stored conversation with a new model and a new task.
        ok(kc, scripted("m2", py("final_answer('resumed')")))
        resumed = cell(kc, "%%agent -m m2 --resume\nNow say resumed.")
        assert "resuming stored run 1 (1 run, 2 steps in its conversation)" in resumed.stdout
        assert "Not in this kernel any more: total " in resumed.stdout  # base was made again; total was not
        first = evaluate(kc, "m2.requests[0]")
        # Exactly what the model would have been sent had the kernel never restarted: the earlier
        # request, the reply it got, then its observation with the new task (roles alternate).
        assert first[:len(last_request)] == last_request
        assert first[len(last_request)] == {"role": "assistant", "content": final_reply}
        last = first[len(last_request) + 1]["content"]
        assert last.startswith("Observation:\nFinal answer: int = 42")
        assert "New task:\nNow say resumed." in last
        assert "no longer exist: total." in last
        assert first_task in first[1]["content"]
        assert len(first) == len(last_request) + 2

        listing = cell(kc, "%agent runs")
        assert "2 stored runs of this notebook" in listing.text
    with db(own_store) as conn:
        assert conn.execute("SELECT id, parent_id, notebook, state FROM runs ORDER BY id").fetchall() == [
            (1, None, NOTEBOOK, "done"), (2, 1, NOTEBOOK, "done")]


def test_a_kernel_killed_in_step_3_leaves_steps_1_and_2(notebook_env, own_store, tmp_path):
    with running_kernel() as (km, kc):
        marker = started_marker(kc, tmp_path)
        ok(kc, scripted("m", py("a = 1\nprint('one')"), py("b = 2\nprint('two')"),
                        py("started()\nn = 0\nwhile True:\n    n += 1"), py("final_answer(a + b)")))
        pid = evaluate(kc, "__import__('os').getpid()")
        msg_id = send(kc, "%%agent -m m --approve never\nthree steps", cell_id="c1")
        wait_for_output(kc, msg_id, "while True", timeout=30)
        wait_for_file(marker)  # step 3's code is running
        store = RunStore(own_store)
        assert queries.list_runs(store, NOTEBOOK, 5)[0][0].state == "running"  # its kernel lives
        assert queries.forget(store, None, None).running == [1]  # a live kernel's run is not forgotten
        store.close()
        os.kill(pid, signal.SIGKILL)
    with db(own_store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT state, steps FROM runs").fetchall() == [("running", 2)]  # nobody said otherwise
        steps = conn.execute("SELECT kind, step_number FROM steps ORDER BY position").fetchall()
        assert steps == [("task", None), ("action", 1), ("action", 2)]
    with running_kernel() as (km, kc):  # a later reader sees the writer is gone
        listing = cell(kc, "%agent runs")
        assert " interrupted " in listing.text
        shown = cell(kc, "%agent show 1")
        assert "print('two')" in shown.text and "interrupted" in shown.text
    with db(own_store) as conn:
        assert conn.execute("SELECT state, error FROM runs").fetchone() == ("interrupted",
                                                                             "the kernel stopped during the run")
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_two_kernels_writing_one_store_lose_nothing(own_store):
    steps = 40
    replies = [py(f"x{i} = {i}\nprint(x{i})") for i in range(1, steps)] + [py("final_answer('end')")]
    with running_kernel() as (km1, kc1), running_kernel() as (km2, kc2):
        for kc in (kc1, kc2):
            ok(kc, scripted("m", *replies))
        sent = [(kc, send(kc, f"%%agent -m m --max-steps {steps} --cells off\nmany steps", cell_id="c"))
                for kc in (kc1, kc2)]
        for kc, msg_id in sent:
            result = collect(kc, msg_id, timeout=120)
            assert result.status == "ok", result.text
            assert "cannot be saved" not in result.stderr
    with db(own_store) as conn:
        runs = conn.execute("SELECT id, state, steps, pid FROM runs").fetchall()
        assert [(state, n) for _, state, n, _ in runs] == [("done", steps), ("done", steps)]
        assert len({pid for *_, pid in runs}) == 2
        for run_id, *_ in runs:
            numbers = [n for (n,) in conn.execute("SELECT step_number FROM steps WHERE run_id = ? AND kind = "
                                                  "'action' ORDER BY position", (run_id,))]
            assert numbers == list(range(1, steps + 1))


def test_a_locked_store_warns_once_and_the_run_completes(own_store, tmp_path):
    release = tmp_path / "release"
    held = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import os, sqlite3, time
from smol_magic.store.connection import connect
conn = connect({str(own_store)!r})
conn.execute("BEGIN EXCLUSIVE")
open({str(held)!r}, "w").close()
while not os.path.exists({str(release)!r}):
    time.sleep(0.05)
conn.execute("ROLLBACK")
"""])
    try:
        wait_for_file(held, timeout=30)
        with running_kernel() as (km, kc):
            ok(kc, scripted("m", py("x = 1\nprint(x)"), py("y = 2\nprint(y)"), py("final_answer(x + y)")))
            result = cell(kc, "%%agent -m m -o answer\nthree steps")
            assert evaluate(kc, "answer") == 3
            assert result.stderr.count("runs cannot be saved to") == 1
            release.touch()
            assert holder.wait(timeout=30) == 0
            ok(kc, scripted("m2", py("final_answer('kept')")))
            later = cell(kc, "%%agent -m m2\nagain")
            assert "cannot be saved" not in later.stderr
            assert "again" in cell(kc, "%agent runs").text
    finally:
        release.touch()
        holder.wait(timeout=30)
