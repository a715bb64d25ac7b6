"""``%%agent --agent tools`` in a real kernel: a tool call waits for a click on its approval card,
runs on the notebook's namespace after it, and the run exports as a notebook that re-executes.

Driven through jupyter_client as JupyterLab drives it (cell ids with every request, the click as
the widget manager's comm message), as in tests/test_approval_kernel.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from kernel_helpers import LiveCell, evaluate, ok, scripted

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc

TOOL = '''
import os as _os, time as _time
from smol_magic import tool

@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    with open(_os.path.join({folder!r}, "added"), "w") as f:
        f.write(repr(_time.time()))
    return a + b
'''


def ran_at(folder: Path) -> float | None:
    path = folder / "added"
    return float(path.read_text()) if path.exists() and path.read_text() else None


def test_a_tool_call_waits_for_run_and_the_run_exports_as_cells_that_re_execute(kc, tmp_path):
    ok(kc, "%reset -f")
    ok(kc, TOOL.format(folder=str(tmp_path)))
    ok(kc, scripted("m", 'Thought: add them.\nAction:\n{"name": "add", "arguments": {"a": 40, "b": 2}}',
                    'Action: {"name": "final_answer", "arguments": {"answer": 42}}'))

    live = LiveCell(kc, "%%agent --agent tools -m m -o res --reset --approve every\nAdd 40 and 2.")
    card = live.wait_for_card()
    shown = live.watch.widget_text()
    assert "result = add(a=40, b=2)" in shown and "Waiting for you" in shown, shown  # the call and its arguments
    live.drain(0.3)
    assert ran_at(tmp_path) is None, "the tool ran before anyone clicked Run"

    sent = live.click(card)
    deadline = time.monotonic() + 10
    while ran_at(tmp_path) is None and time.monotonic() < deadline:
        live.drain(0.05)
    started = ran_at(tmp_path)
    assert started is not None and started >= sent, "the tool did not run after the click"

    final = live.wait_for_card()  # final_answer is a call too: it waits for its own click
    assert final != card and "final_answer(answer=42)" in live.watch.widget_text()
    live.click(final)
    result = live.finish()
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    assert "Traceback" not in result.text, result.text

    assert evaluate(kc, "(res, result)") == (42, 42)  # the answer object, and the call's result in the notebook
    assert evaluate(kc, "type(get_ipython().magics_manager.registry['AgentMagics'].current).__name__") == \
        "ToolCallingAgent"
    told = evaluate(kc, "m.requests[1][-1]['content']")
    assert told == "Observation:\n42", told

    export = tmp_path / "run.ipynb"
    ok(kc, f"%agent export {str(export)!r} --with-setup")
    nb = nbformat.read(export, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[-2:] == ["result = add(a=40, b=2)", "final_answer(answer=42)"], code
    assert any("def add" in source for source in code)  # the cell that defined the tool came along
    (tmp_path / "added").unlink()
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert ran_at(tmp_path) is not None  # re-executed: the tool itself ran again
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.outputs[0]["data"]["text/plain"] == "42"
