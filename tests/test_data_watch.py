"""The user's data changes only with approval, whatever name the code reaches it by (issue 12 §2).

The guard reads code; these routes slip past it (an alias made in an earlier step, a loop
variable, a dict, an unbound method, a lambda, tuple unpacking). The data watch catches
them by effect: the change is put back, the model is told, and undo never claims what it
did not do.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from kernel_helpers import evaluate, ok, py, scripted

from smol_magic import CodeAgent, ScriptedModel
from smol_magic.jupyter.kernel_executor import KernelExecutor
from smol_magic.safety import undo

pytest_plugins = ["kernel_fixtures"]  # kc: a real kernel, shared by this module

ROUTES = {
    "alias made in an earlier step": ["d = df", "d.loc[0, 'a'] = 999"],
    "loop variable": ["for f in [df]: f['x'] = 0"],
    "dict of frames": ["frames = {'d': df}; frames['d'].loc[0, 'a'] = 999"],
    "unbound method": ["pd.DataFrame.drop(df, columns=['b'], inplace=True)"],
    "lambda": ["(lambda f: f.drop(columns=['b'], inplace=True))(df)"],
    "tuple unpacking": ["(a, b) = (df, 1); a['x'] = 0"],
}


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def original() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2], "b": [3, 4]})


@pytest.fixture
def df(ip):
    ip.user_ns["pd"] = pd
    ip.user_ns["df"] = frame = original()
    return frame


def agent_run(ip, steps: list[str], flags: str = "--approve never") -> ScriptedModel:
    ip.user_ns["m"] = model = ScriptedModel([fence(code) for code in steps] + [fence("final_answer('done')")])
    ip.run_cell(f"%%agent -m m {flags}\nwork on df")
    return model


def observation(model: ScriptedModel, step: int) -> str:
    """What the model was told after action ``step`` (1-based)."""
    return model.requests[step][-1]["content"]


def undo_message(ip, capsys) -> str:
    capsys.readouterr()
    ip.run_line_magic("agent", "undo")
    return capsys.readouterr().out


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
def test_a_change_by_another_name_is_put_back_and_the_model_is_told(ip, df, capsys, route):
    steps = ROUTES[route]
    model = agent_run(ip, steps)

    assert ip.user_ns["df"] is df and df.equals(original()), df  # the user's object itself, as it was
    told = observation(model, len(steps))
    assert "Refused" in told and "without their approval" in told and "put back: df" in told
    assert "df_2 = df.copy()" in told  # and what to do instead
    trace = capsys.readouterr().out  # the user sees it in the trace (text: this shell has no kernel)
    assert "changed the user's data without approval; put back: df" in trace

    said = undo_message(ip, capsys)
    assert "restored: df" not in said and "could not restore" not in said  # nothing of df to undo: it never changed
    assert ip.user_ns["df"] is df and df.equals(original())


def test_an_approved_change_by_another_name_is_kept_and_undo_restores_it(ip, df, capsys):
    model = agent_run(ip, ROUTES["alias made in an earlier step"], "--approve never --allow mutate_data")

    assert df.loc[0, "a"] == 999  # approved: kept, as before
    assert "changed df: DataFrame" in observation(model, 2)
    said = undo_message(ip, capsys)
    assert "restored: df" in said and "removed: d" in said
    assert ip.user_ns["df"] is df and df.equals(original())  # restored in place: every alias sees it


def test_a_person_approving_run_all_approves_changes_by_another_name(ip, df):
    from smol_magic.core.approval import Action, Decision, ModeApprover

    class Person:  # clicks "Run all" on the first card
        async def approve(self, step):
            return Decision(Action.RUN, by_person=True, run_all=True)

    ip.user_ns["m"] = model = ScriptedModel([fence("d = df"), fence("d.loc[0, 'a'] = 999"), fence("final_answer(1)")])
    agent = CodeAgent(model=model, executor=KernelExecutor(ip), approver=ModeApprover("every", Person()))
    agent.run("work on df")
    assert df.loc[0, "a"] == 999 and "Refused" not in observation(model, 2)


def test_protect_needs_a_person_even_when_mutate_data_is_granted(ip, df):
    model = agent_run(ip, ROUTES["lambda"], "--approve never --allow mutate_data --protect df")
    assert df.equals(original()) and "put back: df" in observation(model, 1)


def test_data_inside_containers_views_and_lists_is_watched_where_it_lives(ip, capsys):
    ip.user_ns["frames"] = frames = {"sales": original()}
    ip.user_ns["arr"] = arr = np.arange(5)
    ip.user_ns["view"] = view = arr[1:]  # a view: the data is arr's
    ip.user_ns["names"] = names = ["x", "y"]
    model = agent_run(ip, [
        "s = frames['sales']\nv = view\nn = names",
        "s['c'] = 0\nv[0] = 99\nn.append('z')",
    ])
    told = observation(model, 2)
    assert frames["sales"].equals(original()) and list(frames["sales"].columns) == ["a", "b"]
    assert arr.tolist() == [0, 1, 2, 3, 4] and view[0] == 1 and names == ["x", "y"]
    assert "frames['sales']" in told and "names" in told and "reached through 's'" in told


def test_a_function_that_changes_user_data_through_its_globals_is_caught(ip, df):
    model = agent_run(ip, ["def table():\n    return df", "table().loc[0, 'a'] = 7"])
    assert df.equals(original()) and "put back: df" in observation(model, 2)


def test_over_the_undo_cap_the_text_trace_warns_before_it_runs_and_undo_says_what_it_could_not_restore(ip, capsys):
    """A frame over the undo cap (injected: 1,000 bytes instead of 512 MB) changed with --allow mutate_data."""
    ip.user_ns["big"] = big = pd.DataFrame({"a": np.arange(1000), "b": 1.0})
    model = ScriptedModel([fence("big['a'] = 0"), fence("final_answer(1)")])
    magics = ip.magics_manager.registry["AgentMagics"]
    magics.current = CodeAgent(model=model, executor=KernelExecutor(ip))
    magics.current.can_undo = functools.partial(undo.can_undo, max_bytes=1000)
    ip.user_ns["m"] = model
    capsys.readouterr()
    ip.run_cell("%%agent -m m --approve never --allow mutate_data\nzero it")
    trace = capsys.readouterr().out
    warning = trace.index("⚠ undo cannot restore what this step changes")
    assert warning < trace.index("observation")  # before it runs
    assert "too big to copy" in trace[warning:]
    assert (big["a"] == 0).all()  # approved: it ran

    said = undo_message(ip, capsys)
    assert "changed no variables" not in said
    assert "undo could not restore" in said and "big" in said and "stays changed" in said
    assert (big["a"] == 0).all()


def test_over_the_undo_cap_an_approved_change_by_another_name_is_reported_by_undo(ip, capsys):
    ip.user_ns["big"] = big = pd.DataFrame({"a": np.arange(1000), "b": 1.0})
    model = ScriptedModel([fence("b2 = big"), fence("b2['b'] = 5.0"), fence("final_answer(1)")])
    magics = ip.magics_manager.registry["AgentMagics"]
    magics.current = CodeAgent(model=model, executor=KernelExecutor(ip))
    magics.current.can_undo = functools.partial(undo.can_undo, max_bytes=1000)
    ip.user_ns["m"] = model
    ip.run_cell("%%agent -m m --approve never --allow mutate_data\nchange it")
    said = undo_message(ip, capsys)
    assert "removed: b2" in said and "undo could not restore" in said and "big (it is too big to copy" in said
    assert (big["b"] == 5.0).all()


def test_the_html_trace_warns_too(ip):
    from smol_magic.core.memory import Verdict
    from smol_magic.ui.html import verdict_html

    verdict = Verdict("allow", ["line 1: changes the user's variable 'big' in place; undo cannot restore it "
                                "(it is too big to copy). Allowed: 'mutate_data' is granted."])
    assert "smol-magic-undo-warning" in verdict_html(verdict) and "⚠" in verdict_html(verdict)


# -- in a real kernel, as JupyterLab runs it ----------------------------------------------------


def test_in_a_real_kernel_an_alias_change_is_put_back_and_undo_stays_truthful(kc):
    ok(kc, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    ok(kc, scripted("m", py("d = df"), py("d.loc[0, 'a'] = 999"), py("final_answer('done')")))
    result = ok(kc, "%%agent -m m --approve never --reset\nchange df")
    assert evaluate(kc, "df['a'].tolist()") == [1, 2]
    assert "changed the user's data without approval; put back: df" in result.trace
    assert "put back: df" in evaluate(kc, "m.requests[2][-1]['content']")
    said = ok(kc, "%agent undo").stdout
    assert "removed: d" in said and "restored: df" not in said
    assert evaluate(kc, "df['a'].tolist()") == [1, 2]


def test_in_a_real_kernel_every_rendering_warns_before_an_over_cap_change(kc):
    """The widget card (live), the static HTML trace and its text/plain, then undo's message."""
    ok(kc, "import functools, numpy as np, pandas as pd\nfrom smol_magic.safety import undo\n"
           "big = pd.DataFrame({'a': np.arange(1000), 'b': 1.0})\n"
           "get_ipython().magics_manager.registry['AgentMagics'].current.can_undo = "
           "functools.partial(undo.can_undo, max_bytes=1000)")
    ok(kc, scripted("m", py("big['a'] = 0"), py("final_answer('done')")))
    result = ok(kc, "%%agent -m m --approve never --allow mutate_data\nzero big")
    assert evaluate(kc, "int(big['a'].sum())") == 0  # approved: it ran
    widgets = " ".join(str(w["state"].get("value", "")) for w in result.watch.widgets.values())
    assert "smol-magic-undo-warning" in widgets  # the live card, before the step ran
    assert "smol-magic-undo-warning" in result.trace_html
    assert "⚠ undo cannot restore what this step changes" in result.trace  # text/plain: terminals, saved files
    said = ok(kc, "%agent undo").stdout
    assert "changed no variables" not in said and "undo could not restore" in said and "big" in said


def test_in_plain_python_too():
    """The check is in the agent loop, not in Jupyter: a CodeAgent on a plain dict namespace."""
    from smol_magic.core.execution import LocalPythonExecutor

    frame = original()
    model = ScriptedModel([fence("d = df"), fence("d['x'] = 0"), fence("final_answer(1)")])
    agent = CodeAgent(model=model, executor=LocalPythonExecutor({"df": frame}))
    agent.run("work on df")
    assert frame.equals(original()) and "put back: df" in observation(model, 2)


def test_data_held_by_an_object_of_the_notebooks_own_class_is_watched(ip):
    ip.run_cell("import pandas as pd\nclass Project:\n    pass\nproject = Project()\n"
                "project.data = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    frame = ip.user_ns["project"].data
    model = agent_run(ip, ["t = project.data", "t['x'] = 0"])
    assert frame.equals(original()) and "put back: project.data" in observation(model, 2)
