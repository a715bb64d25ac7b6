"""The trace in JupyterLab's dark (and light) theme, in a real JupyterLab and Chromium: readable, short,
not repeated.

``tests/browser/theme.mjs`` runs a three-step ``%%agent --approve every`` notebook in "JupyterLab Dark"
(and "JupyterLab Light"),
edits and approves the steps, takes screenshots (tests/artifacts/theme-dark-*.png, theme-light-*.png) and measures the WCAG
contrast of the code (every token, and the names between them) and of the headers against their
rendered background, in the live trace, in the static trace, and in the static trace's HTML on a bare
page without JupyterLab's variables (as GitHub shows it), in a light and a dark colour scheme.
This file asserts what those measurements and the page show.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from browser_helpers import BROWSER_DIR, browser_tools, jupyter_lab, run_script

SCRIPT = BROWSER_DIR / "theme.mjs"
NOTEBOOK = "theme.ipynb"
AA = 4.5  # WCAG AA, normal text

STEP_1 = ("# count the words of a title\ndef count(text):\n    return len(text.split())\n"
          "words = count('a b c')\nprint('words:', words, True)")
STEP_2 = "squares = [n * n for n in range(words)]\nprint('squared:', squares)"
STEP_3 = "final_answer(f'{words} words, squares {squares}')"
REPLIES = [f"Thought: count first.\n```python\n{STEP_1}\n```", f"```python\n{STEP_2}\n```",
           f"```python\n{STEP_3}\n```"]
TASK = ("For {topic}: count the words in a short title, then square each number from zero up to that "
        "count, and report both results together in one sentence")
AFTER_CELL = "print('after', result)"
EXPECT = {"afterCell": AFTER_CELL, "after": "after 3 words, squares [0, 1, 4]"}


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext smol_magic"),
        nbformat.v4.new_code_cell(f"from smol_magic import ScriptedModel\n\nm = ScriptedModel({REPLIES!r})\n"
                                  "topic = 'the quarterly sales of every region we have'"),
        nbformat.v4.new_code_cell(f"%%agent -m m --approve every -o result\n{TASK}"),
        nbformat.v4.new_code_cell(AFTER_CELL),
    ]
    nbformat.write(nb, path)


def unreadable(measured: list[dict]) -> list[dict]:
    return [m for m in measured if m["ratio"] < AA]


@pytest.mark.parametrize("theme", ["JupyterLab Dark", "JupyterLab Light"])
def test_trace_reads_well_in_the_theme_and_is_short(tmp_path, theme):
    node = browser_tools()
    report_path = tmp_path / "report.json"
    settings = {"@jupyterlab/apputils-extension/themes": {"theme": theme}}
    with jupyter_lab(tmp_path, NOTEBOOK, write_notebook, extra_settings=settings) as lab:
        out = run_script(node, SCRIPT, lab, timeout=130, report=report_path, EXPECT=json.dumps(EXPECT),
                         SHOTS=theme.split()[-1].lower())
    print(out)
    report = json.loads(report_path.read_text())
    seen, contrast = report["seen"], report["contrast"]
    assert seen["theme"] == {"name": theme, "light": str(theme.endswith("Light")).lower()}, seen["theme"]

    # Contrast: code and headers, live, static in JupyterLab, and the static HTML on bare pages.
    lines = []
    for group in ("liveCode", "liveHeaders", "editorCode", "staticCode", "staticHeaders", "bareLightCode", "bareDarkCode"):
        measured = contrast[group]
        assert measured, f"nothing measured in {group}: the trace's code or headers were not found"
        worst = min(measured, key=lambda m: m["ratio"])
        lines.append(f"{group}: {len(measured)} elements, lowest {worst['ratio']:.2f}:1 "
                     f"({worst['text']!r} {worst['colour']} on {worst['background']})")
    print("contrast (WCAG AA needs 4.5:1)\n  " + "\n  ".join(lines))
    for group, measured in contrast.items():
        bad = unreadable(measured)
        assert not bad, f"{group}: text below {AA}:1 in {theme}:\n" + "\n".join(
            f"  {m['ratio']:.2f}:1 {m['text']!r} {m['colour']} on {m['background']}" for m in bad)

    # The header: the task as typed ({topic} not expanded), cut at a word, whole in the tooltip.
    for where in ("liveTask", "staticTask"):
        task = seen[where]
        shown, full = task["text"], task["title"]
        assert full == TASK, f"{where}: the header's full task is {full!r}"
        assert shown.startswith("For {topic}:") and shown.endswith("…"), f"{where}: header shows {shown!r}"
        kept = shown.removesuffix("…")
        assert TASK.startswith(kept) and not TASK[len(kept)].isalnum(), f"{where}: cut mid-word: {shown!r}"
        assert len(kept) > 60, f"{where}: cut too short: {shown!r}"

    # Edit mode: a monospace editor the extension can upgrade, and a button that says what it does.
    editor = seen["editor"]
    assert editor["value"] == STEP_1
    assert editor["marked"], "the edit box has no smol-magic-edit class: the labextension cannot upgrade it"
    assert editor["upgraded"] and editor["shown"].strip() == STEP_1.strip(), editor  # CodeMirror shows the code
    assert editor["highlighted"] > 0, "the editor does not highlight Python"
    def norm(font: str) -> str:
        return font.replace('"', "'").replace(" ", "")

    assert editor["codeFont"] and norm(editor["font"]) == norm(editor["codeFont"]), editor  # JupyterLab's code font
    assert seen["runLabel"] == "Run edited code"

    # Finished steps are one line each, the newest open; the static trace is short.
    steps = seen["static"]["steps"]
    assert [s["open"] for s in steps] == [False, False, True], steps
    assert all(s["summaryHeight"] < 2 * s["lineHeight"] for s in steps), steps
    assert steps[0]["summary"].startswith("Step 1 · ") and steps[2]["summary"].startswith("Step 3 · ")

    # Outputs are in the inserted cells, and the trace (every step opened) refers to them instead of repeating them.
    text = seen["staticOpen"]
    assert "words: 3 True" not in text, "the static trace repeats step 1's output that its inserted cell shows"
    assert "squared: [0, 1, 4]" not in text, "the static trace repeats step 2's output that its inserted cell shows"
    for step in (1, 2):
        assert f"outputs: in the cell below, marked “agent · step {step}”" in text, text
    inserted = [c for c in seen["cells"] if c["generated"]]
    assert [c["source"] for c in inserted] == [STEP_1, STEP_2, STEP_3], [c["source"] for c in inserted]
    assert "words: 3 True" in inserted[0]["outputText"]
    assert "squared: [0, 1, 4]" in inserted[1]["outputText"]
