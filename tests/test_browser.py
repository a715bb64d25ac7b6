"""The live trace in a real JupyterLab, driven by a real Chromium (playwright-core).

Starts ``jupyter lab`` on 127.0.0.1 with a notebook that runs ``%%agent --approve every``
with a ``ScriptedModel``, then ``node tests/browser/trace.mjs`` opens it, runs all cells,
clicks the approval card's *Run* button for both steps and checks the static trace and
the cell after it. Screenshots go to ``tests/artifacts/``.

Needs Debian's Chromium at /usr/bin/chromium (or $SMOL_MAGIC_CHROMIUM) and Node >= 20;
``.ci/run`` installs them. A missing browser is a failure, not a skip. The server, the tools
and the script runner are tests/browser_helpers.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from browser_helpers import BROWSER_DIR, browser_tools, jupyter_lab, run_script

SCRIPT = BROWSER_DIR / "trace.mjs"
NOTEBOOK = "trace.ipynb"

# What the scripted model says; the browser script looks for these strings.
STEP_1 = "answer_table = {'a': 1}\nprint('table built:', sorted(answer_table))"
STEP_2 = "final_answer('forty-two from the table')"
AFTER_CELL = "print('after', result)"
REPLIES = [
    f"Thought: I build the table first.\n```python\n{STEP_1}\n```",
    f"Thought: Now I answer.\n```python\n{STEP_2}\n```",
]
EXPECT = {
    "step1Code": STEP_1.splitlines()[0],
    "step1Output": "table built: ['a']",
    "step2Code": STEP_2,
    "finalAnswer": "forty-two from the table",
    "afterCell": AFTER_CELL,
    "after": "after forty-two from the table",
}


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext smol_magic"),
        nbformat.v4.new_code_cell(f"from smol_magic import ScriptedModel\n\nm = ScriptedModel({REPLIES!r})"),
        nbformat.v4.new_code_cell("%%agent -m m --approve every -o result\n"
                                  "Build a small table, then answer from it."),
        nbformat.v4.new_code_cell(AFTER_CELL),
    ]
    nbformat.write(nb, path)


def test_trace_approve_in_jupyterlab(tmp_path):
    """Run All, click Run on both approval cards, then the static trace and the next cell's output are there."""
    node = browser_tools()
    with jupyter_lab(tmp_path, NOTEBOOK, write_notebook) as lab:
        out = run_script(node, SCRIPT, lab, timeout=120, EXPECT=json.dumps(EXPECT))  # it gives up after 90 s
    print(out)
