"""The example notebooks: committed as CI runs them, offline, and the demo that runs the quickstart.

nbval executes the notebooks themselves and compares their outputs
(``pytest --nbval --nbval-sanitize-with examples/sanitize.cfg examples``); these
tests check what nbval cannot: that the committed notebooks are executed (nbval
skips the comparison for a cell stored without outputs), that each says in its
first cell that its replies were written in advance, that only the ``%%agent``
cells are exempt from the comparison, and that ``python -m smol_magic demo`` works.

After changing an example, re-execute it in place (outputs as CI compares them,
no widget state, no timings)::

    python tests/test_examples.py examples/teaching.ipynb   # or no argument: all of them
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
IGNORE = "nbval-ignore-output"


def test_the_three_examples_are_there():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "teaching.ipynb", "approval_and_safety.ipynb"}
    assert (EXAMPLES / "sanitize.cfg").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_says_no_service_is_called(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert "calls no LLM service" in first.source
    assert "ScriptedModel" in first.source or "ReplayModel" in first.source or "--replay" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, "widget state is random ids: execute with store_widget_state=False"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        first_line = cell.source.splitlines()[0] if cell.source else ""
        assert cell.execution_count is not None, f"not executed (nbval would not compare it): {first_line!r}"
        assert "execution" not in cell.metadata, f"timings stored in the cell metadata: {first_line!r}"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"stored with an error: {first_line!r}"
        assert not [o for o in cell.outputs if o.get("name") == "stderr"], f"stderr in the outputs: {first_line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_agent_cells_skip_the_output_comparison(path):
    """The live trace ends with update_display_data, which nbval does not apply: only those cells are exempt."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        ignored = IGNORE in cell.metadata.get("tags", []) or "NBVAL_IGNORE_OUTPUT" in cell.source
        assert ignored == cell.source.startswith("%%agent"), cell.source.splitlines()[0]
        if cell.source.startswith("%%agent"):
            assert "-m model" in cell.source.splitlines()[0] or "--replay" in cell.source.splitlines()[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.ipynb"
    done = subprocess.run([sys.executable, "-m", "smol_magic", "demo", "-o", str(out)], capture_output=True,
                          text=True, timeout=600, cwd=out.parent)
    return done, out


def test_demo_runs_the_quickstart(demo):
    done, out = demo
    assert done.returncode == 0, done.stderr
    assert "fastest growing region: West" in done.stdout
    assert out.exists() and str(out) in done.stdout


def test_demo_prints_the_run_summary(demo):
    done, _ = demo
    assert "■ done · 3 steps" in done.stdout


def test_demo_shows_no_kernel_warnings(demo):
    done, _ = demo
    assert "WARNING" not in done.stderr and "without encryption" not in done.stdout + done.stderr, done.stderr


def test_demo_says_what_to_install_when_pandas_is_missing(tmp_path):
    blocked = "import sys; sys.modules['pandas'] = None; from smol_magic.__main__ import main; sys.exit(main(['demo']))"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("smol-magic demo: the quickstart needs pandas: pip install 'smol-magic[demo]' "
                                   "(or pip install -e '.[demo]' in a checkout)")
    assert not list(tmp_path.iterdir()), "nothing written"


def execute_in_place(paths: list[Path]) -> None:
    """Re-execute notebooks as they are committed: outputs, no widget state, no timings."""
    import time

    import nbclient

    for path in paths:
        path = path.resolve()
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False,
                                record_timing=False, resources={"metadata": {"path": str(path.parent)}}).execute()
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    execute_in_place([Path(p) for p in sys.argv[1:]] or NOTEBOOKS)
