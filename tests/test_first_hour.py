"""What a new user meets in the first hour: messages that say what to do, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_server import OpenAIServer


def test_missing_api_key_is_said_once_and_names_the_variable(ip, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as srv:
        srv.push_reply("must not be reached")
        ip.user_ns["url"] = srv.base_url
        ip.run_cell("from smol_magic import LiteLLMModel\nm = LiteLLMModel('openai/gpt-4o-mini', api_base=url)")
        result = ip.run_cell("%%agent -m m\nsay hi")
        requests = list(srv.requests)
    captured = capsys.readouterr()
    seen = captured.out + captured.err
    assert not result.success
    assert seen.count("set OPENAI_API_KEY") == 1, seen
    assert requests == []


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ipynb")), ids=lambda p: p.name)
def test_each_example_survives_run_all_twice_in_one_kernel(path):
    """Run All, then Run All again without a restart: no cell may fail the second time."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError, naming the cell


def test_ci_runs_readmes_commands_in_a_fresh_venv():
    """README's two commands are what a new user types; CI must run the same, in a venv of its own."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    blocks = [block.split("```", 1)[0].strip() for block in readme.split("```bash\n")[1:3]]
    demo, tests = blocks
    assert demo == 'pip install -e ".[demo]" && python -m smol_magic demo'
    assert tests.startswith('pip install -e ".[test]" && python -m pytest')
    ci = (root / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
    assert ci.index('python3 -m venv "$venv"') < ci.index('source "$venv/bin/activate"') < ci.index(tests)


def test_terminal_ipython_waits_for_the_task_lines_of_a_cell_magic(tmp_path):
    """Typed at IPython's prompt, `%%agent -m m` + Enter waits for the task, ended by a blank line."""
    import subprocess
    import sys

    reply = "Thought: count.\\n```python\\nfinal_answer(42)\\n```"
    typed = "\n".join([
        "%load_ext smol_magic",
        "from smol_magic import ScriptedModel",
        f'm = ScriptedModel(["{reply}"])',
        "%%agent -m m -o out --approve never",
        "Count the words",
        "of this two-line task.",
        "",
        "",  # --simple-prompt ends any cell magic (%%capture too) at the second blank line
        'print("answer:", out, "| both lines sent:", "two-line task" in m.requests[0][-1]["content"])',
        "",
    ])
    done = subprocess.run([sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "--colors=NoColor"],
                          input=typed, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "UsageError" not in done.stdout + done.stderr, done.stdout
    assert "answer: 42 | both lines sent: True" in done.stdout, done.stdout


def test_kernel_is_complete_request_treats_agent_cells_like_cell_magics(ip):
    check = ip.input_transformer_manager.check_complete
    assert check("%%agent -m m\n")[0] == "incomplete"
    assert check("%%agent -m m\nsummarise {df}\n")[0] == "incomplete"
    assert check("%%agent -m m\nsummarise {df}\n\n")[0] == "complete"


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def test_status_names_the_model_the_last_run_used(ip, capsys):
    from smol_magic import ScriptedModel

    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")], model_id="scripted-demo")
    ip.run_cell("%%agent -m m\ntask")
    capsys.readouterr()
    ip.run_line_magic("agent", "status")
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("model: (none configured), last run: scripted-demo · approve: risky"), first


def test_undo_takes_back_the_out_variable_too(ip, capsys):
    from smol_magic import ScriptedModel

    ip.user_ns["m"] = ScriptedModel([fence("final_answer(41 + 1)")])
    ip.user_ns["kept"] = "the user's"
    ip.run_cell("%%agent -m m -o n\ntask")
    assert ip.user_ns["n"] == 42
    capsys.readouterr()
    ip.run_line_magic("agent", "undo")
    assert capsys.readouterr().out.strip() == "smol-magic: undid run 1 · removed: n"
    assert "n" not in ip.user_ns and ip.user_ns["kept"] == "the user's"


def test_undo_puts_back_an_out_variable_that_existed(ip, capsys):
    from smol_magic import ScriptedModel

    ip.user_ns["m"] = ScriptedModel([fence("final_answer('new')")])
    ip.user_ns["answer"] = "old"
    ip.run_cell("%%agent -m m -o answer\ntask")
    assert ip.user_ns["answer"] == "new"
    ip.run_line_magic("agent", "undo")
    assert ip.user_ns["answer"] == "old"
