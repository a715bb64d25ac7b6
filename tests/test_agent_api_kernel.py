"""Project rules in a real kernel: AGENTS.md in the notebook's folder, or the file AgentMagics.rules names,
reaches the model's system prompt, is shown in "what the model saw", and %agent status says which file is in use.

The kernel's working directory is the notebook's folder (JupyterLab starts a notebook's kernel there);
each test moves it to a folder of its own.
"""

from __future__ import annotations

import re

from kernel_helpers import evaluate, html_text, ok, py, run, scripted

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc

MAGICS = "get_ipython().magics_manager.registry['AgentMagics']"
_MODEL_VIEW = re.compile(r"<details><summary[^>]*>what the model saw</summary>(.*?)</details>", re.S)


def model_view(result) -> str:
    """The text of the trace's "what the model saw" sections."""
    return "\n".join(html_text(section) for section in _MODEL_VIEW.findall(result.trace_html))


def in_folder(kc, folder) -> None:
    ok(kc, f"import os\nos.chdir({str(folder)!r})\n%config AgentMagics.rules = ''")


def status(kc) -> str:
    return ok(kc, "%agent status").text


def test_agents_md_in_the_notebook_folder_is_used_shown_and_redacted(kc, tmp_path):
    secret = "sk-proj-AgentsMdKey0123456789abcdefXYZ"
    (tmp_path / "AGENTS.md").write_text(
        "# Rules for this project\nAlways report money in euros.\n"
        f"The warehouse API key is {secret}; never print it.\n")
    in_folder(kc, tmp_path)
    assert f"rules: {tmp_path / 'AGENTS.md'} (found in this folder), in the system prompt" in status(kc)
    ok(kc, scripted("m", py("final_answer('42 EUR')")))
    result = run(kc, "%%agent -m m --reset\nHow much did we make?", timeout=60)
    assert result.status == "ok", (result.ename, result.evalue, result.text)
    system = evaluate(kc, "m.requests[0][0]['content']")
    heading = f"Project rules (from {tmp_path / 'AGENTS.md'}); follow them:"
    assert f"{heading}\n# Rules for this project\nAlways report money in euros." in system
    seen = model_view(result)
    assert heading in seen and "Always report money in euros." in seen  # the trace's model-input view
    for text in (system, result.trace_html, result.text):
        assert secret[3:20] not in text
    assert "[redacted secret]" in system


def test_the_rules_are_read_afresh_for_each_run(kc, tmp_path):
    rules = tmp_path / "AGENTS.md"
    rules.write_text("Use metric units.\n")
    in_folder(kc, tmp_path)
    ok(kc, scripted("m", py("final_answer(1)"), py("final_answer(2)")))
    assert run(kc, "%%agent -m m --reset\nfirst", timeout=60).status == "ok"
    rules.write_text("Use imperial units.\n")
    assert run(kc, "%%agent -m m\nsecond", timeout=60).status == "ok"
    assert "Use metric units." in evaluate(kc, "m.requests[0][0]['content']")
    assert "Use imperial units." in evaluate(kc, "m.requests[1][0]['content']")


def test_a_named_rules_file_replaces_agents_md(kc, tmp_path):
    (tmp_path / "AGENTS.md").write_text("Rules for coding agents, not for this notebook.\n")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "data-rules.md").write_text("Round every result to 2 decimals.\n")
    in_folder(kc, tmp_path)
    ok(kc, "%config AgentMagics.rules = 'team/data-rules.md'")
    named = tmp_path / "team" / "data-rules.md"
    assert f"rules: {named} (AgentMagics.rules), in the system prompt" in status(kc)
    ok(kc, scripted("m", py("final_answer(1.23)")))
    result = run(kc, "%%agent -m m --reset\nround it", timeout=60)
    assert result.status == "ok", (result.ename, result.evalue)
    system = evaluate(kc, "m.requests[0][0]['content']")
    assert f"Project rules (from {named}); follow them:\nRound every result to 2 decimals." in system
    assert "Rules for coding agents" not in system


def test_a_missing_named_rules_file_is_a_clear_error_before_the_model_is_asked(kc, tmp_path):
    in_folder(kc, tmp_path)
    ok(kc, "%config AgentMagics.rules = 'RULES.md'")
    missing = tmp_path / "RULES.md"
    assert f"rules: {missing} (AgentMagics.rules) is MISSING" in status(kc)
    ok(kc, scripted("m", py("final_answer(1)")))
    result = run(kc, "%%agent -m m --reset\nanything", timeout=60)
    assert result.ename == "UsageError"
    assert result.evalue == (f"AgentMagics.rules names {str(missing)!r}, which does not exist; fix the path, or "
                             "%config AgentMagics.rules = \"\" to use AGENTS.md from the notebook's folder")
    assert evaluate(kc, "len(m.requests)") == 0
    ok(kc, "%config AgentMagics.rules = ''")


def test_no_rules_file_and_a_bad_setting(kc, tmp_path):
    in_folder(kc, tmp_path)
    assert "rules: none (no AGENTS.md in this folder" in status(kc)
    ok(kc, scripted("m", py("final_answer(1)")))
    assert run(kc, "%%agent -m m --reset\nanything", timeout=60).status == "ok"
    assert "Project rules" not in evaluate(kc, "m.requests[0][0]['content']")
    result = run(kc, "%config AgentMagics.rules = 'Always use euros.\\nNever print keys.'")
    # %config shows the setting's error as an error line (IPython logs it) and keeps the old value
    assert 'AgentMagics.rules is the path of a rules file (e.g. "AGENTS.md"), not the rules themselves' in result.stderr
    assert evaluate(kc, f"{MAGICS}.rules") == ""
