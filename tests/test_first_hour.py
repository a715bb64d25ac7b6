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
