"""The JupyterLab extension (labextension/): installed with the package, and working in a real JupyterLab.

1. ``jupyter labextension list`` shows ``smol-magic-labextension`` enabled and OK (``pip install -e .``
   builds and installs it through the hatch build hook).
2. In a real JupyterLab driven by Chromium (``labextension/ui-tests/insert-cells.mjs``), a kernel cell
   opens the ``smol_magic`` comm by hand and sends ``begin_run`` + two ``insert`` messages for its own
   cell id: the two cells appear right below it with their sources, outputs, metadata and mark, and
   keep the mark after a save and a page reload. Then one generated cell is edited by hand and another
   cell re-sends ``begin_run`` + one ``insert``: the unedited old cell is gone, the edited one stays
   (unmarked), the new one is in. Screenshots go to ``tests/artifacts/``.

The browser part reuses tests/browser_helpers.py (Chromium, node, playwright-core, the server, the script runner);
the script reuses tests/browser/lib.mjs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

import smol_magic
from browser_helpers import ARTIFACTS, browser_tools, jupyter_lab, run_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "labextension" / "ui-tests" / "insert-cells.mjs"
EXTENSION = "smol-magic-labextension"
NOTEBOOK = "cells.ipynb"
AGENT_CELL = "agent-cell"

STEP_1 = "x = 20 + 1\nprint('x is', x)"
STEP_1_OUTPUTS = [{"output_type": "stream", "name": "stdout", "text": "x is 21\n"}]
STEP_2 = "x * 2"
STEP_2_OUTPUTS = [
    {"output_type": "display_data", "data": {"text/html": "<b>bold words</b>", "text/plain": "bold words"},
     "metadata": {}},
    {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {}, "execution_count": None},
]
STEP_1_RUN_2 = "y = x + 1"


def insert(step: int, source: str, outputs: list, run_id: str = "r1") -> dict:
    return {"type": "insert", "agent_cell_id": "CELL", "run_id": run_id, "step": step, "source": source,
            "outputs": outputs, "metadata": {"model": "hand-made"}}


def sends(comm: str, messages: list[dict]) -> str:
    lines = []
    for msg in messages:
        code = repr(msg).replace("'CELL'", "cell_id")  # the id the kernel read from the request
        lines.append(f"{comm}.send({code})")
    return "\n".join(lines)


def write_notebook(path: Path) -> None:
    agent = (
        "from comm import create_comm\n\n"
        "cell_id = get_ipython().kernel.get_parent()['metadata']['cellId']\n"
        "replies = []\n"
        "c = create_comm(target_name='smol_magic', data={'version': 1})\n"
        "c.on_msg(lambda msg: replies.append(msg['content']['data']))\n"
        "c.send({'type': 'begin_run', 'agent_cell_id': cell_id, 'run_id': 'r1'})\n"
        + sends("c", [insert(1, STEP_1, STEP_1_OUTPUTS), insert(2, STEP_2, STEP_2_OUTPUTS)])
        + "\nprint('agent cell id:', cell_id)"
    )
    rerun = (
        "# rerun (the page was reloaded: a new comm)\n"
        "replies2 = []\n"
        "c2 = create_comm(target_name='smol_magic', data={'version': 1})\n"
        "c2.on_msg(lambda msg: replies2.append(msg['content']['data']))\n"
        "c2.send({'type': 'begin_run', 'agent_cell_id': cell_id, 'run_id': 'r2'})\n"
        + sends("c2", [insert(1, STEP_1_RUN_2, [], run_id="r2")])
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(agent, id=AGENT_CELL),
        nbformat.v4.new_code_cell("# check 1\nimport json\nprint(json.dumps({'cell_id': cell_id, 'replies': replies}))"),
        nbformat.v4.new_code_cell(rerun),
        nbformat.v4.new_code_cell("# check 2\nprint(json.dumps(replies2))"),
    ]
    nbformat.write(nb, path)


# How to start each frontend (the module ``python -m`` runs), and the URL path that opens a notebook in it.
FRONTENDS = {
    "jupyterlab": ("jupyterlab", "lab/tree/"),
    "notebook7": ("notebook", "notebooks/"),
}


def test_labextension_is_installed_and_enabled():
    done = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                          capture_output=True, text=True, timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # drop the colours
    assert done.returncode == 0, listing
    line = next((ln.strip() for ln in listing.splitlines() if ln.strip().startswith(EXTENSION + " ")), None)
    assert line is not None, f"{EXTENSION} is not installed (pip install -e . builds it):\n{listing}"
    assert line.split()[1] == f"v{smol_magic.__version__}", line
    assert " enabled " in f" {line} " and " OK" in line, line
    assert "(python, smol-magic)" in line, line
    assert smol_magic._jupyter_labextension_paths() == [{"src": "labextension", "dest": EXTENSION}]


def generated(cells: list[dict]) -> list[dict]:
    return [c for c in cells if "smol_magic" in c["metadata"]]


def check_generated(cell: dict, *, step: int, source: str, outputs: list, run_id: str) -> None:
    assert cell["type"] == "code"
    assert cell["source"] == source
    assert cell["outputs"] == outputs
    assert cell["execution_count"] is None
    assert cell["metadata"]["smol_magic"] == {"model": "hand-made", "agent_cell": AGENT_CELL, "run_id": run_id,
                                              "step": step, "source": source}
    assert cell["metadata"]["tags"] == ["smol-magic"]
    assert cell["marked"], "the generated cell has no jp-smol-magic-generated class"
    assert cell["badge"] == f'"agent · step {step}"', cell["badge"]


def without_time(replies: list[dict]) -> list[dict]:
    """The replies, with each ``begun``'s ``at`` (the browser's time of the removal) checked and left out."""
    out = []
    for reply in replies:
        if reply.get("type") == "begun":
            reply = dict(reply)
            at = datetime.fromisoformat(reply.pop("at"))
            assert abs((datetime.now(timezone.utc) - at).total_seconds()) < 600, at
        out.append(reply)
    return out


def printed_json(cell: dict):
    return json.loads(cell["outputText"].strip().splitlines()[-1])


@pytest.mark.parametrize("frontend", ["jupyterlab", "notebook7"])
def test_kernel_comm_inserts_cells(tmp_path, frontend):
    if frontend == "notebook7":
        pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install notebook)")
    node = browser_tools()
    report_path = tmp_path / "report.json"
    with jupyter_lab(tmp_path, NOTEBOOK, write_notebook, server=FRONTENDS[frontend][0]) as lab:
        # The script gives up by itself after 100 s.
        out = run_script(node, SCRIPT, lab, timeout=130, artifacts=ARTIFACTS / frontend, report=report_path,
                         OPEN_PATH=FRONTENDS[frontend][1])
        saved = nbformat.read(lab["root"] / NOTEBOOK, as_version=4)
    print(out)
    report = json.loads(report_path.read_text())
    problems = report["problems"]
    if frontend != "jupyterlab":  # judge only what is ours: Notebook 7 logs errors of its own
        problems = [p for p in problems if "smol" in p.lower()]
    assert problems == [], problems

    # Run 1: two cells right below the agent cell, in step order, before the cells that were there.
    cells = report["phases"]["inserted"]
    assert [c["source"].splitlines()[0] for c in cells] == [
        "from comm import create_comm", STEP_1.splitlines()[0], STEP_2, "# check 1",
        "# rerun (the page was reloaded: a new comm)", "# check 2"]
    assert cells[0]["id"] == AGENT_CELL and not cells[0]["marked"]
    check_generated(cells[1], step=1, source=STEP_1, outputs=STEP_1_OUTPUTS, run_id="r1")
    check_generated(cells[2], step=2, source=STEP_2, outputs=STEP_2_OUTPUTS, run_id="r1")
    assert "x is 21" in cells[1]["outputText"]
    assert "bold words" in cells[2]["outputText"] and "42" in cells[2]["outputText"]
    assert not any(c["marked"] for c in cells[3:])
    seen = printed_json(cells[3])
    assert seen["cell_id"] == AGENT_CELL  # JupyterLab sends the cell id with the execute_request
    assert without_time(seen["replies"]) == [
        {"type": "hello", "version": 1, "frontend": frontend},
        {"type": "begun", "run_id": "r1", "agent_cell_id": AGENT_CELL, "removed": 0, "kept": 0, "removed_ids": []},
        {"type": "inserted", "step": 1, "cell_id": cells[1]["id"]},
        {"type": "inserted", "step": 2, "cell_id": cells[2]["id"]},
    ]

    # The saved file has them as ordinary code cells with our metadata; reopened, they are marked again.
    on_disk = [c for c in saved.cells if "smol_magic" in c.metadata]
    assert [(c.source, c.execution_count, c.metadata["smol_magic"]["step"]) for c in on_disk] == [
        (STEP_1, None, 1), (STEP_2, None, 2)]
    assert on_disk[0].outputs == STEP_1_OUTPUTS
    reloaded = report["phases"]["reloaded"]
    assert [c["id"] for c in generated(reloaded)] == [cells[1]["id"], cells[2]["id"]]
    assert [c["marked"] for c in reloaded] == [c["marked"] for c in cells]

    # Run 2: the unedited old cell is gone, the edited one is kept without mark, the new one is in.
    cells = report["phases"]["rerun"]
    edited = STEP_2 + "\n# edited by hand"
    assert [c["source"].splitlines()[0] for c in cells] == [
        "from comm import create_comm", STEP_1_RUN_2, STEP_2, "# check 1",
        "# rerun (the page was reloaded: a new comm)", "# check 2"]
    check_generated(cells[1], step=1, source=STEP_1_RUN_2, outputs=[], run_id="r2")
    assert cells[2]["source"] == edited
    assert cells[2]["id"] == report["phases"]["inserted"][2]["id"]
    assert "smol_magic" not in cells[2]["metadata"] and "smol-magic" not in cells[2]["metadata"].get("tags", [])
    assert not cells[2]["marked"] and cells[2]["badge"] in ("none", "normal")
    assert cells[2]["outputs"] == STEP_2_OUTPUTS  # kept as it was
    assert without_time(printed_json(cells[5])) == [
        {"type": "hello", "version": 1, "frontend": frontend},
        {"type": "begun", "run_id": "r2", "agent_cell_id": AGENT_CELL, "removed": 1, "kept": 1,
         "removed_ids": [report["phases"]["inserted"][1]["id"]]},
        {"type": "inserted", "step": 1, "cell_id": cells[1]["id"]},
    ]
