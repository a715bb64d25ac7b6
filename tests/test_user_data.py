"""The user's data survives an agent: protection, grants, the guard switch and undo, through %%agent."""

from __future__ import annotations

import pandas as pd
import pytest

from smol_magic import CodeAgent, ScriptedModel


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


@pytest.fixture
def sales(ip):
    ip.user_ns["sales"] = df = pd.DataFrame({"region": ["a", "b"], "revenue": [1, 2]})
    return df


def observation(model: ScriptedModel, request: int) -> str:
    return model.requests[request][-1]["content"]


def test_changing_the_users_frame_is_refused_without_a_person_and_the_model_is_told_why(ip, sales):
    ip.user_ns["m"] = m = ScriptedModel([fence("sales['revenue'] = 0"), fence("final_answer('gave up')")])
    ip.run_cell("%%agent -m m --approve never\nzero the revenue")
    assert ip.user_ns["sales"]["revenue"].tolist() == [1, 2]
    told = observation(m, 1)
    assert "This code was not run" in told and "'sales'" in told and "mutate_data" in told


def test_agent_made_variables_stay_free_in_later_runs_until_the_user_rebinds_them(ip, sales):
    ip.user_ns["m"] = m = ScriptedModel([
        fence("top = sales.head(1)"), fence("final_answer(1)"),
        fence("top['x'] = 1\ntop = top.head(1)"), fence("final_answer(2)"),
        fence("top['y'] = 2"), fence("final_answer(3)"),
    ])
    ip.run_cell("%%agent -m m --approve never\nfirst")
    ip.run_cell("%%agent -m m --approve never\nsecond")
    assert m.requests and "This code was not run" not in observation(m, 3)  # still the agent's own
    ip.run_cell("top = sales.copy()")  # the user takes it over
    ip.run_cell("%%agent -m m --approve never\nthird")
    assert "This code was not run" in observation(m, 5)
    assert "y" not in ip.user_ns["top"].columns


def test_grants_protect_and_the_guard_switch(ip, sales, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ip.user_ns["m"] = m = ScriptedModel([
        fence("sales.to_csv('out.csv')"), fence("final_answer(1)"),
        fence("threshold = 5"), fence("final_answer(2)"),
        fence("import os\nn = len(os.listdir('.'))"), fence("final_answer(3)"),
    ])
    ip.run_cell("%%agent -m m --approve never --allow write_files\nsave it")
    assert (tmp_path / "out.csv").exists()
    ip.user_ns["threshold"] = 3
    ip.run_cell("%%agent -m m --approve never --protect threshold\nchange it")
    assert ip.user_ns["threshold"] == 3 and "--protect" in observation(m, 3)
    capsys.readouterr()
    ip.run_cell("%%agent -m m --approve never --no-guard\nlist files")
    assert ip.user_ns["n"] >= 1
    assert "guard is off" in capsys.readouterr().out  # the trace says so
    assert not ip.run_cell("%%agent -m m --allow everything\nt").success
    assert "unknown capabilities ['everything']" in capsys.readouterr().err


def test_undo_restores_bindings_and_in_place_changes(ip, sales, capsys):
    ip.user_ns["keep"] = keep = [1, 2]
    ip.user_ns["m"] = ScriptedModel([
        fence("made = 1\nsales['revenue'] = 0\nkeep = 'rebound'"),
        fence("final_answer('done')"),
    ])
    ip.run_cell("%%agent -m m --approve never --allow mutate_data\nmess it up")
    assert ip.user_ns["keep"] == "rebound" and ip.user_ns["sales"]["revenue"].tolist() == [0, 0]
    step = ip.magics_manager.registry["AgentMagics"].current.memory.action_steps[0]
    assert "changed sales: DataFrame 2 x 2" in step.observation  # an in-place change is reported too
    capsys.readouterr()
    ip.run_line_magic("agent", "undo")
    out = capsys.readouterr().out
    assert "undid run 1" in out and "removed: made" in out
    assert "made" not in ip.user_ns
    assert ip.user_ns["keep"] is keep
    assert ip.user_ns["sales"]["revenue"].tolist() == [1, 2]
    ip.run_line_magic("agent", "undo")
    assert "changed no variables (or was already undone)" in capsys.readouterr().out


def test_output_flooding_is_capped_everywhere(ip):
    ip.user_ns["m"] = m = ScriptedModel([fence("print('x' * 100_000_000)\nprint('THE END')"), fence("final_answer(1)")])
    ip.run_cell("%%agent -m m --approve never -o out\nflood")
    assert ip.user_ns["out"] == 1
    step = ip.magics_manager.registry["AgentMagics"].current.memory.action_steps[0]
    shown = "".join(o.get("text", "") for o in step.outputs)
    assert len(shown) < 250_000 and shown.endswith("THE END\n") and "characters not shown" in shown
    assert len(m.requests[1][-1]["content"]) < 12_000  # the observation keeps to its budget


def test_undo_leaves_alone_what_the_run_only_read(ip, sales):
    ip.user_ns["targets"] = {"a": 1}
    ip.user_ns["m"] = ScriptedModel([fence("targets['a'] = 2\nn = len(sales)"), fence("final_answer(n)")])
    ip.run_cell("%%agent -m m --approve never --allow mutate_data\nupdate the target")
    ip.run_cell("sales['r2'] = 0")  # the user's own change after the run
    ip.run_line_magic("agent", "undo")
    assert ip.user_ns["targets"] == {"a": 1}
    assert ip.user_ns["sales"] is sales and "r2" in sales.columns


def test_undo_copies_exactly_what_the_guard_context_says_it_can_restore():
    """Undo and the guard share one predicate (GuardContext.can_undo): no copy of what the guard calls irreversible."""
    from smol_magic import guard
    from smol_magic.safety import undo

    ns = {"kept": [1, 2], "opaque": [3], "mine": [4]}
    context = guard.GuardContext(namespace=ns, can_undo=lambda value: (value != [3], "not copyable"))
    copies = undo.snapshots("kept.append(0)\nopaque.append(0)\nmine.append(0)", ns, {"mine"}, context)
    assert copies == {"kept": [1, 2]} and copies["kept"] is not ns["kept"]
    agent = CodeAgent(model=ScriptedModel([]))
    assert agent.guard_context().can_undo is undo.can_undo
