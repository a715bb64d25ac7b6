"""Run All again, and again, and Restart & Run All: the agent's cells appear once and nothing else breaks.

Issue 10, point 3: Run All sends every cell's execute_request at once. On a second Run All the
cells the first run generated are queued behind the ``%%agent`` cell; the extension removes them
when the agent cell re-runs, and they must not then run as ordinary code (their ``final_answer``
used to raise, the error landed in a removed cell and ipykernel aborted the user's later cells).

``node tests/browser/runall.mjs`` (real JupyterLab, Chromium) runs all cells three times, then
Restart & Run All, recording every execute_request the page sends and every output and reply the
kernel sends back; then runs the generated ``final_answer(...)`` cell by hand; then types into the
CodeMirror editor the extension puts in place of a ``smol-magic-edit`` textarea. This test checks:

- after each: exactly the three cells of the newest run below the agent cell, and every user cell
  after them ran (after the agent cell) and shows its output;
- the previous run's cells were queued (requests were sent for them) and produced no output and
  no error: they did not run as ordinary code;
- ``final_answer(n)`` run by hand shows ``n``;
- the "agent · step N" badge covers no code line and reads well (contrast >= 4.5:1), in JupyterLab
  Light and JupyterLab Dark;
- the editor shows the textarea's code with Python highlighting, and what is typed reaches the kernel.
"""

from __future__ import annotations

import json
import re

import nbformat

from browser_helpers import BROWSER_DIR, browser_tools, jupyter_lab, run_script

SCRIPT = BROWSER_DIR / "runall.mjs"
NOTEBOOK = "run-all.ipynb"
STEPS = [
    "print('step 1: counting', len(words), 'words')",
    "print('step 2: longest is', max(words, key=len))",
    "final_answer(len(words))",
]
REPLIES = [f"Thought: step {i}.\n```python\n{code}\n```" for i, code in enumerate(STEPS, 1)]
CELLS = [
    ("load-cell", "%load_ext smol_magic"),
    ("model-cell", f"from smol_magic import ScriptedModel\n\nwords = ['alpha', 'beta', 'gamma']\n"
                   f"m = ScriptedModel({REPLIES!r})"),
    ("agent-cell", "%%agent -m m --approve never -o answer\nCount the words, then give the count."),
    ("user-1", "print('user 1 sees', answer)"),
    ("user-2", "print('user 2 done with', len(words), 'words')"),
    ("edit-cell", "import ipywidgets as w\n\nbox = w.Textarea(value='n = 3\\nprint(n)', "
                  "_dom_classes=['smol-magic-edit'])\nbox"),
    ("edit-value", "print(repr(box.value))"),
]
USER_CELLS = ["user-1", "user-2", "edit-cell", "edit-value"]
USER_OUTPUT = {"user-1": "user 1 sees 3\n", "user-2": "user 2 done with 3 words\n"}
PHASES = {"runAll1": "run-1", "runAll2": "run-2", "runAll3": "run-3", "restartRunAll": "run-1"}


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in CELLS]
    nbformat.write(nb, path)


def luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"[\d.]+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def check_phase(report: dict, phase: str, previous_generated: list[str]) -> list[str]:
    cells = report["phases"][phase]
    ids = [c["id"] for c in cells]
    generated = [c for c in cells if "smol_magic" in c["metadata"]]
    # The agent's cells appear once: the three of the newest run, right below the agent cell.
    assert [c["source"] for c in generated] == STEPS, (phase, [c["source"] for c in cells])
    assert all(c["metadata"]["smol_magic"]["run_id"] == PHASES[phase] for c in generated), phase
    assert ids == ["load-cell", "model-cell", "agent-cell", *(c["id"] for c in generated), *USER_CELLS], (phase, ids)
    assert all(c["execution_count"] is None and c["marked"] for c in generated), phase
    # Every user cell after them ran, after the agent cell, and shows its output.
    by_id = {c["id"]: c for c in cells}
    agent = by_id["agent-cell"]
    assert agent["execution_count"] is not None
    for cell_id in USER_CELLS:
        cell = by_id[cell_id]
        assert cell["execution_count"] is not None and cell["execution_count"] > agent["execution_count"], (phase, cell)
        assert not any(o["output_type"] == "error" for o in cell["outputs"]), (phase, cell["outputs"])
    for cell_id, text in USER_OUTPUT.items():
        assert by_id[cell_id]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": text}], (phase, cell_id)
    assert "n = 3" in by_id["edit-value"]["outputText"]
    # No previous agent cell ran as ordinary code: Run All did queue them, and they printed nothing, raised nothing.
    queued = [r for r in report["requests"] if r["phase"] == phase and r["cellId"] in previous_generated]
    assert sorted(r["cellId"] for r in queued) == sorted(previous_generated), (
        f"{phase}: Run All did not send the previous run's cells (so this test would prove nothing): {queued}")
    for request in queued:
        assert report["outputsByRequest"].get(request["id"], []) == [], (
            f"{phase}: the removed cell {request['code']!r} ran as ordinary code: "
            f"{report['outputsByRequest'][request['id']]}")
        assert report["replies"].get(request["id"]) == "ok", (phase, request, report["replies"].get(request["id"]))
    return [c["id"] for c in generated]


def test_run_all_three_times_and_restart_run_all(tmp_path):
    node = browser_tools()
    report_path = tmp_path / "report.json"
    expect = {"agentCell": "agent-cell", "userCells": USER_CELLS[:2], "lastUser": USER_OUTPUT["user-2"].strip(),
              "editCell": "edit-cell", "editValueCell": "edit-value"}
    with jupyter_lab(tmp_path, NOTEBOOK, write_notebook) as lab:
        out = run_script(node, SCRIPT, lab, timeout=200, report=report_path, EXPECT=json.dumps(expect))
    print(out)
    report = json.loads(report_path.read_text())
    ours = [p for p in report["console"] if "smol" in p.lower()]
    assert ours == [], "the browser console reported errors about smol-magic:\n" + "\n".join(ours)

    previous: list[str] = []
    for phase in PHASES:
        previous = check_phase(report, phase, previous)

    # A generated cell the user runs by hand on purpose still works: final_answer(n) shows n.
    hand = next(c for c in report["phases"]["byHand"] if c["id"] == report["byHandCell"])
    assert hand["source"] == "final_answer(len(words))"
    assert hand["execution_count"] is not None
    assert [o["output_type"] for o in hand["outputs"]] == ["execute_result"], hand["outputs"]
    assert hand["outputs"][0]["data"]["text/plain"] == "3"
    assert "3" in hand["outputText"]

    # The badge sits where it covers no code, and is readable.
    assert len(report["badges"]) == len(report["badgesDark"]) == 3
    assert report["badges"][0]["background"] != report["badgesDark"][0]["background"], "the badge ignores the theme"
    for badge in report["badges"] + report["badgesDark"]:
        box = badge["box"]
        assert box["bottom"] > box["top"] and box["right"] > box["left"], badge
        for line in badge["lines"]:
            overlaps = not (box["bottom"] <= line["top"] or line["bottom"] <= box["top"]
                            or box["right"] <= line["left"] or line["right"] <= box["left"])
            assert not overlaps, f"the badge {box} covers the code line {line}"
        assert contrast(badge["color"], badge["background"]) >= 4.5, badge

    # Edit mode: a CodeMirror editor with Python highlighting replaces the textarea; typing reaches the kernel.
    editor = report["editor"]
    assert editor["textareaHidden"], editor
    assert "n = 3" in editor["text"] and "print(n)" in editor["text"], editor
    assert editor["tokenSpans"] >= 2, f"no syntax highlighting in the editor: {editor}"
    value = next(c for c in report["phases"]["edit"] if c["id"] == "edit-value")
    assert value["outputText"].strip() == repr("n = 3\nprint(n)\nsquare = n * n"), value["outputText"]
