"""Runs become notebooks and scripts that re-execute without the agent; record and replay."""

from __future__ import annotations

import subprocess
import sys

import nbclient
import nbformat
import pandas as pd
import pytest
from IPython.core.error import UsageError

from smol_magic import CodeAgent, ModelError, ScriptedModel
from smol_magic.export.replay import RecordingModel, ReplayModel
from smol_magic.core.names import read_names
from smol_magic.export.notebook import setup_sources

SETUP = "import pandas as pd\nsales = pd.DataFrame({'region': ['a', 'b', 'c'], 'revenue': [3, 9, 4]})"


def fence(code: str, thought: str = "Thought: next.") -> str:
    return f"{thought}\n```python\n{code}\n```"


REPLIES = [
    fence("print('rows:', len(sales))", "Thought: count the rows."),
    fence("import os"),
    fence("1 / 0"),
    fence("top = sales.sort_values('revenue').tail(2)\ntop", "Thought: the top two."),
    fence("final_answer(top['region'].iloc[-1])"),
]


def run_agent(replies=REPLIES, model=None) -> CodeAgent:
    agent = CodeAgent(model=model or ScriptedModel(list(replies)))
    exec(SETUP, agent.executor.namespace)
    agent.run("Which region has the highest revenue?")
    return agent


def execute(nb: nbformat.NotebookNode, cwd) -> nbformat.NotebookNode:
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def texts(cell) -> list[str]:
    return [o.get("text") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]


def test_export_structure_and_provenance(tmp_path):
    agent = run_agent()
    path = agent.to_notebook(str(tmp_path / "run.ipynb"))
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    meta = nb.metadata["smol_magic"]
    assert meta["task"] == "Which region has the highest revenue?"
    assert meta["model"] == {"class": "ScriptedModel", "model_id": "scripted"}
    assert meta["state"] == "done" and meta["steps"] == 5 and meta["variables_read"] == ["sales"]
    assert set(meta) >= {"started_at", "duration", "token_usage"}
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and "**Task:** Which region" in cells[0].source
    code = [c for c in cells if c.cell_type == "code"]
    assert "['sales']" in code[0].source  # the requirements cell names what the run read
    assert [c.source for c in code[1:]] == [
        "print('rows:', len(sales))", "top = sales.sort_values('revenue').tail(2)\ntop",
        "final_answer(top['region'].iloc[-1])",
    ]
    assert texts(code[1]) == ["rows: 3\n"]
    assert all(c.execution_count is None for c in code)
    step_meta = code[1].metadata["smol_magic"]
    assert step_meta["step"] == 1 and step_meta["approval"] == "auto" and step_meta["verdict"]["decision"] == "allow"
    assert "smol-magic" in code[1].metadata["tags"]
    notes = [c.source for c in cells if c.cell_type == "markdown"]
    assert any("Step 2 did not run: refused by the guard" in n and "import os" in n for n in notes)
    assert any("Step 3 failed" in n and "ZeroDivisionError" in n for n in notes)
    assert notes[-1] == "**Final answer:** b"


def test_export_re_executes_in_a_fresh_kernel_with_the_same_outputs(tmp_path):
    agent = run_agent()
    nb = nbformat.read(agent.to_notebook(str(tmp_path / "run.ipynb")), as_version=4)
    original = [texts(c) for c in nb.cells if c.cell_type == "code"][1:]
    nb.cells.insert(1, nbformat.v4.new_code_cell(SETUP))  # the user provides the variables
    execute(nb, tmp_path)
    again = [texts(c) for c in nb.cells if c.cell_type == "code"][2:]
    assert again == original


def test_export_without_its_variables_fails_early_and_says_what_to_define(tmp_path):
    agent = run_agent()
    nb = nbformat.read(agent.to_notebook(str(tmp_path / "run.ipynb")), as_version=4)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="define sales first"):
        execute(nb, tmp_path)


def test_export_with_setup_stands_alone(tmp_path):
    agent = run_agent()
    history = [("x = 1", "x = 1"), (SETUP, SETUP), ("y = 2", "y = 2")]
    setup = setup_sources(history, ["sales"], skip=set())
    assert setup == [SETUP]
    nb = nbformat.read(agent.to_notebook(str(tmp_path / "run.ipynb"), with_setup=setup), as_version=4)
    execute(nb, tmp_path)
    assert texts([c for c in nb.cells if c.cell_type == "code"][-1]) == ["'b'"]


def test_py_export_runs_with_python(tmp_path):
    agent = run_agent()
    script = tmp_path / "run.py"
    agent.to_notebook(str(script), with_setup=[SETUP])
    text = script.read_text()
    assert text.startswith("# Agent run: Which region has the highest revenue?")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rows: 3" in result.stdout


def test_read_names_follows_binding_order():
    assert read_names(["a = b + 1", "print(a, c)", "import numpy as np", "np.zeros(d)"]) == ["b", "c", "d"]


def test_setup_follows_what_the_defining_cells_need():
    history = [("import pandas as pd", "import pandas as pd"), ("raw = pd.read_csv('f.csv')", "raw = pd.read_csv('f.csv')"),
               ("agent code", "agent code"), ("sales = raw.dropna()", "sales = raw.dropna()")]
    assert setup_sources(history, ["sales"], skip={"agent code"}) == [
        "import pandas as pd", "raw = pd.read_csv('f.csv')", "sales = raw.dropna()"]


def test_record_then_replay_gives_the_same_run(tmp_path):
    recording = tmp_path / "run.jsonl"
    first = run_agent(model=RecordingModel(ScriptedModel(REPLIES), recording))
    replay = ReplayModel(recording)
    second = run_agent(model=replay)
    assert second.runs[-1].output == first.runs[-1].output == "b"
    assert [s.code for s in second.memory.action_steps] == [s.code for s in first.memory.action_steps]
    assert replay.position == len(REPLIES)


def test_replay_stops_clearly_when_the_run_diverges(tmp_path):
    recording = tmp_path / "run.jsonl"
    run_agent(model=RecordingModel(ScriptedModel(REPLIES), recording))
    agent = CodeAgent(model=ReplayModel(recording))
    exec(SETUP.replace("[3, 9, 4]", "[3, 9, 4, 5]").replace("'c']", "'c', 'd']"), agent.executor.namespace)
    with pytest.raises(ModelError, match=r"replay diverged at reply 1 of run.jsonl: the notebook's variables are not "
                                         r"those it was recorded with \(message \d \(user\) differs: .*restart the kernel"):
        agent.run("Which region has the highest revenue?")
    with pytest.raises(ModelError, match=r"replay diverged at reply 1 of run.jsonl: message \d \(user\) differs: "
                                         r".*The notebook, its data or smol-magic changed"):
        CodeAgent(model=ReplayModel(recording)).run("Which region has the highest revenue? And why?")


def test_replay_past_the_end_and_bad_files(tmp_path):
    recording = tmp_path / "short.jsonl"
    agent = CodeAgent(model=RecordingModel(ScriptedModel([fence("x = 1"), "summary"]), recording), max_steps=1)
    agent.run("t")
    replayed = CodeAgent(model=ReplayModel(recording, check_requests=False), max_steps=3)
    with pytest.raises(ModelError, match="asked for reply 3 but short.jsonl holds 2"):
        replayed.run("t")
    with pytest.raises(ModelError, match="no recording at"):
        ReplayModel(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(ModelError, match="is not a smol-magic recording"):
        ReplayModel(bad)


def test_export_needs_a_run(tmp_path):
    with pytest.raises(ValueError, match="has not run yet"):
        CodeAgent(model=ScriptedModel([])).to_notebook(str(tmp_path / "x.ipynb"))


# -- through the magic ----------------------------------------------------------


def agent_cell(ip, line: str, task: str = "Which region has the highest revenue?"):
    return ip.run_cell(f"%%agent {line}\n{task}")


def test_agent_export_with_setup_from_the_notebook_history(ip, tmp_path, capsys):
    ip.run_cell("import pandas as pd", store_history=True)
    ip.run_cell("raw = pd.DataFrame({'region': ['a', 'b', 'c'], 'revenue': [3, 9, 4]})", store_history=True)
    ip.run_cell("sales = raw.copy()", store_history=True)
    ip.run_cell("unrelated = 1", store_history=True)
    ip.user_ns["m"] = ScriptedModel(list(REPLIES))
    agent_cell(ip, "-m m -o best")
    capsys.readouterr()
    ip.run_line_magic("agent", f"export {tmp_path / 'run.ipynb'} --with-setup")
    assert "exported run 1 (5 steps, with 3 setup cells)" in capsys.readouterr().out
    nb = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    nbformat.validate(nb)  # written as plain JSON (no nbformat import at export): it must still be valid
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sources[:3] == ["import pandas as pd", "raw = pd.DataFrame({'region': ['a', 'b', 'c'], 'revenue': [3, 9, 4]})",
                           "sales = raw.copy()"]
    assert "unrelated" not in "".join(sources)
    execute(nb, tmp_path)  # stands alone in a fresh kernel
    assert texts([c for c in nb.cells if c.cell_type == "code"][-1]) == ["'b'"]


def test_agent_export_py_and_run_numbers(ip, tmp_path, capsys):
    exec(SETUP, ip.user_ns)
    ip.user_ns["m"] = ScriptedModel(list(REPLIES) + [fence("final_answer('second')")])
    agent_cell(ip, "-m m")
    agent_cell(ip, "-m m", "and again?")
    ip.run_line_magic("agent", f"export {tmp_path / 'first.py'} --run 1")
    assert "print('rows:', len(sales))" in (tmp_path / "first.py").read_text()
    ip.run_line_magic("agent", f"export {tmp_path / 'second.ipynb'}")
    assert nbformat.read(tmp_path / "second.ipynb", as_version=4).metadata["smol_magic"]["task"] == "and again?"
    capsys.readouterr()
    for line, message in [(f"export {tmp_path / 'x.ipynb'} --run 3", "--run must be between 1 and 2"),
                          ("export", "usage: %agent export PATH.ipynb|PATH.py"),
                          (f"export {tmp_path / 'x.txt'}", "usage: %agent export")]:
        assert not ip.run_cell(f"%agent {line}").success
        assert message in capsys.readouterr().err


def test_record_and_replay_flags(ip, tmp_path, capsys):
    exec(SETUP, ip.user_ns)
    ip.user_ns["m"] = ScriptedModel(list(REPLIES))
    recording = tmp_path / "quick.jsonl"
    agent_cell(ip, f"-m m -o answer --record {recording}")
    assert ip.user_ns.pop("answer") == "b"
    del ip.user_ns["top"]  # as in a fresh kernel re-running the notebook from the top
    agent_cell(ip, f"--replay {recording} -o answer --reset")
    assert ip.user_ns["answer"] == "b"
    exec(SETUP.replace("9, 4]", "9, 40]"), ip.user_ns)  # the data changed: the run diverges
    capsys.readouterr()
    result = agent_cell(ip, f"--replay {recording} -o third --reset")
    assert not result.success
    err = capsys.readouterr().err
    assert "replay diverged at reply" in err and "re-record with --record" in err and "Traceback" not in err
    assert not ip.run_cell(f"%%agent --replay {tmp_path / 'none.jsonl'}\nt").success
    assert "no recording at" in capsys.readouterr().err


def test_agent_export_to_a_path_it_cannot_write_says_so_shortly(ip, tmp_path, monkeypatch):
    """A folder that does not exist, a folder where the file should be: one line that says what to do, no
    traceback; ``~`` is the home folder, as in a shell."""
    exec(SETUP, ip.user_ns)
    ip.user_ns["m"] = ScriptedModel(list(REPLIES))
    agent_cell(ip, "-m m")
    with pytest.raises(UsageError, match=r"there is no folder .*missing; create it"):
        ip.run_line_magic("agent", f"export {tmp_path / 'missing' / 'run.ipynb'}")
    (tmp_path / "taken.ipynb").mkdir()
    with pytest.raises(UsageError, match=r"cannot export to .*taken.ipynb: Is a directory"):
        ip.run_line_magic("agent", f"export {tmp_path / 'taken.ipynb'}")
    monkeypatch.setenv("HOME", str(tmp_path))
    ip.run_line_magic("agent", "export ~/run.ipynb")
    nbformat.validate(nbformat.read(tmp_path / "run.ipynb", as_version=4))
