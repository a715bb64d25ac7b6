"""The agent's actions become real notebook cells: end to end in JupyterLab, driven by Chromium.

The notebook: ``%load_ext smol_magic``; a ``ScriptedModel`` with replies for two runs of three
steps (step 1 prints and makes a pandas DataFrame, step 2 shows a frame as its last expression,
step 3 calls ``final_answer``); a ``%%agent -m m --approve never -o answer`` cell; a user cell that
uses what the agent made. ``node tests/browser/cells.mjs`` opens it, runs all cells, screenshots,
edits generated step 1 by hand, runs the agent cell again, then the user cell again, and reports
every cell (model content and what the page shows) after each phase. This test checks the report
and the saved file:

- Run All: one generated cell per action, right below the agent cell, in step order, before the
  user's cell; each with its code, the outputs its action produced, no execution count, the
  ``smol_magic`` metadata (run_id, step, model, approval...) and tag, and the mark (class + badge);
  the user's cell ran after the agent cell and saw its variables.
- Running the agent cell again replaces its generated cells (3 again, of the new run), keeps the
  one edited by hand as an ordinary cell, and the saved notebook agrees.
- No browser console error mentions smol. Screenshots: tests/artifacts/cells-*.png.

Reuses tests/browser_helpers.py (Chromium, node, playwright-core, the JupyterLab server, the script runner).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat

from browser_helpers import BROWSER_DIR, browser_tools, jupyter_lab, run_script

SCRIPT = BROWSER_DIR / "cells.mjs"
NOTEBOOK = "agent-cells.ipynb"
AGENT_CELL, USER_CELL = "agent-cell", "user-cell"

# Run 1 (Run All) and run 2 (the agent cell run again): three actions each.
RUN_1 = [
    "import pandas as pd\n"
    "table = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'visits': [3, 1, 2]})\n"
    "print('table built with', len(table), 'rows')",
    "table",
    "final_answer('Oslo has the most visits')",
]
RUN_2 = [
    "busy = table[table['visits'] > 1]\nprint('busy cities:', len(busy))",
    "busy",
    "final_answer('two busy cities')",
]
ANSWER_1, ANSWER_2 = "Oslo has the most visits", "two busy cities"
PRINTED_1, PRINTED_2 = "table built with 3 rows\n", "busy cities: 2\n"
USER_SOURCE = "print('rows', len(table), answer)"
EDIT_NOTE = "# my note: keep this cell"
REPLIES = [f"Thought: step {i}.\n```python\n{code}\n```" for i, code in enumerate(RUN_1 + RUN_2, 1)]
SOURCES = ["%load_ext smol_magic", f"from smol_magic import ScriptedModel\n\nm = ScriptedModel({REPLIES!r})",
           "%%agent -m m --approve never -o answer\nBuild a table of city visits, show it, then say which "
           "city has the most.", USER_SOURCE]
EXPECT = {"agentCell": AGENT_CELL, "userCell": USER_CELL, "editNote": EDIT_NOTE,
          "run1User": f"rows 3 {ANSWER_1}", "run2User": f"rows 3 {ANSWER_2}"}


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    ids = ["load-cell", "model-cell", AGENT_CELL, USER_CELL]
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for source, cell_id in zip(SOURCES, ids)]
    nbformat.write(nb, path)


def first_lines(cells: list[dict]) -> list[str]:
    return [c["source"].splitlines()[0] if c["source"] else "" for c in cells]


def text_of(output: dict) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    return output.get("data", {}).get("text/plain", "")


def check_generated(cell: dict, *, step: int, source: str, run_id: str) -> None:
    where = f"generated cell of {run_id} step {step}"
    assert cell["type"] == "code", where
    assert cell["source"] == source, where
    assert cell["execution_count"] is None, f"{where} has an execution count: it was run, not inserted"
    assert cell["prompt"].strip() in ("[ ]:", "[ ]", ""), f"{where}: prompt {cell['prompt']!r}"
    meta = cell["metadata"]["smol_magic"]  # the exported cell's schema, plus where it came from
    assert {k: meta.get(k) for k in ("agent_cell", "run_id", "step", "source", "model", "approval",
                                      "approved_by_person", "edited")} == {
        "agent_cell": AGENT_CELL, "run_id": run_id, "step": step, "source": source, "model": "scripted",
        "approval": "auto", "approved_by_person": False, "edited": False}, where
    assert meta["verdict"] == {"decision": "allow", "reasons": []} and "token_usage" in meta, where
    assert cell["metadata"]["tags"] == ["smol-magic"], where
    assert cell["marked"], f"{where} has no jp-smol-magic-generated class"
    assert cell["badge"] == f'"agent · step {step}"', f"{where}: badge {cell['badge']}"


def check_run(cells: list[dict], run: list[str], run_id: str, printed: str, frame_rows: list[str]) -> None:
    """The three cells of one run: code, outputs (as saved and as shown), metadata, mark."""
    for step, (cell, source) in enumerate(zip(cells, run), 1):
        check_generated(cell, step=step, source=source, run_id=run_id)
    step1, step2, _ = cells
    assert step1["outputs"] == [{"output_type": "stream", "name": "stdout", "text": printed}]
    assert printed.strip() in step1["outputText"]
    # Step 2's last expression: the DataFrame's HTML, rendered as a table in the page.
    [frame] = step2["outputs"]
    assert frame["output_type"] in ("display_data", "execute_result"), frame
    assert "<table" in frame["data"]["text/html"] and all(city in frame["data"]["text/html"] for city in frame_rows)
    assert step2["htmlTables"] == 1, "step 2's DataFrame is not rendered as an HTML table"
    assert all(city in step2["outputText"] for city in frame_rows)


def check_final_answer_shown(cell: dict, answer: str, run_id: str) -> None:
    """Step 3 (``final_answer(...)``): its cell shows the answer, as the exported notebook's cell does."""
    assert any(answer in text_of(o) for o in cell["outputs"]), (
        f"the generated cell of {run_id} step 3 ({cell['source']!r}) does not show the final answer "
        f"{answer!r}; its outputs: {cell['outputs']}")
    assert answer in cell["outputText"]


def test_agent_actions_become_cells_in_jupyterlab(tmp_path):
    node = browser_tools()
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    with jupyter_lab(tmp_path, NOTEBOOK, write_notebook) as lab:
        # The script gives up by itself after 80 s.
        out = run_script(node, SCRIPT, lab, timeout=110, report=report_path, EXPECT=json.dumps(EXPECT))
        saved = nbformat.read(lab["root"] / NOTEBOOK, as_version=4)
    print(out)
    report = json.loads(report_path.read_text())
    print(f"timings: {report['timings']}, script {report['seconds']:.1f} s, "
          f"test {time.monotonic() - started:.1f} s")
    ours = [p for p in report["console"] if "smol" in p.lower()]
    assert ours == [], "the browser console reported errors about smol-magic:\n" + "\n".join(ours)

    # The notebook as it opened: the four cells of the file, nothing marked.
    opened = report["phases"]["opened"]
    assert [c["source"] for c in opened] == SOURCES
    assert not any(c["marked"] for c in opened)

    # --- Run All: three generated cells right below the agent cell, in step order, before the user's cell.
    cells = report["phases"]["inserted"]
    assert first_lines(cells) == [s.splitlines()[0] for s in SOURCES[:3]] + [r.splitlines()[0] for r in RUN_1] + [
        USER_SOURCE], first_lines(cells)
    load, model, agent, *generated, user = cells
    assert [load["id"], model["id"], agent["id"], user["id"]] == ["load-cell", "model-cell", AGENT_CELL, USER_CELL]
    assert not any(c["marked"] or "smol_magic" in c["metadata"] for c in (load, model, agent, user))
    check_run(generated, RUN_1, "run-1", PRINTED_1, ["Oslo", "Lima", "Pune"])
    # The user's cell ran after the agent cell (queued behind it by Run All) and saw its variables.
    assert agent["execution_count"] is not None and user["execution_count"] > agent["execution_count"]
    assert f"rows 3 {ANSWER_1}" in user["outputText"]
    assert user["outputs"] == [{"output_type": "stream", "name": "stdout", "text": f"rows 3 {ANSWER_1}\n"}]

    # --- Step 1 edited by hand, then the agent cell run again: its cells are replaced, not duplicated.
    edited_id = generated[0]["id"]
    edited = next(c for c in report["phases"]["edited"] if c["id"] == edited_id)
    assert edited["source"] == RUN_1[0] + "\n" + EDIT_NOTE, "typing into generated step 1 did not edit it"
    cells = report["phases"]["rerun"]
    assert first_lines(cells) == [s.splitlines()[0] for s in SOURCES[:3]] + [r.splitlines()[0] for r in RUN_2] + [
        RUN_1[0].splitlines()[0], USER_SOURCE], first_lines(cells)
    load, model, agent2, *generated2, kept, user2 = cells
    assert agent2["id"] == AGENT_CELL and user2["id"] == USER_CELL
    assert agent2["execution_count"] > agent["execution_count"]
    assert sum(c["marked"] for c in cells) == 3
    check_run(generated2, RUN_2, "run-2", PRINTED_2, ["Oslo", "Pune"])
    assert "Lima" not in generated2[1]["outputText"]
    old_ids = {c["id"] for c in generated}
    assert not old_ids & {c["id"] for c in generated2}, "a cell of run 1 is still marked as generated"
    # The cell the user edited stays, as an ordinary cell with its old outputs.
    assert kept["id"] == edited_id and kept["source"] == RUN_1[0] + "\n" + EDIT_NOTE
    assert "smol_magic" not in kept["metadata"] and "smol-magic" not in kept["metadata"].get("tags", [])
    assert not kept["marked"] and kept["badge"] in ("none", "normal"), kept["badge"]
    assert kept["outputs"] == generated[0]["outputs"]
    # The user's cell, run again, sees the second run's answer.
    assert user2["outputs"] == [{"output_type": "stream", "name": "stdout", "text": f"rows 3 {ANSWER_2}\n"}]

    # --- The saved file: ordinary code cells with our metadata, in the same order.
    assert [c.source for c in saved.cells] == [c["source"] for c in cells]
    on_disk = [c for c in saved.cells if "smol_magic" in c.metadata]
    assert [(c.source, c.execution_count, c.metadata["smol_magic"]["run_id"], c.metadata["smol_magic"]["step"])
            for c in on_disk] == [(source, None, "run-2", step) for step, source in enumerate(RUN_2, 1)]
    assert all(c.metadata["tags"] == ["smol-magic"] for c in on_disk)
    assert "smol_magic" not in saved.cells[6].metadata

    # Last, so that everything above is checked either way: step 3's cell shows the final answer, as the
    # cell of an exported run does (smol_magic/notebook.py, _action_cells). The cells writer sends none.
    check_final_answer_shown(generated[2], ANSWER_1, "run-1")
    check_final_answer_shown(generated2[2], ANSWER_2, "run-2")
