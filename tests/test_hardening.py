"""Issue 12, §1 and §5 in an IPython shell: stops that hold, true words, and no silent acceptance.

Each bad input is one clear line that says what to do, and loses nothing. Stops that need a real
kernel (Interrupt, a hung model server) are in tests/test_stop_kernel.py.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from smol_magic import ScriptedModel
from smol_magic.core.execution import LocalPythonExecutor

from test_magic import fence

# -- §1: actions that swallow the stop -----------------------------------------------------------------------

SWALLOWERS = {
    "issue-example": "result = None\nwhile result is None:\n    try:\n        result = df.loc[99, 'a']\n"
                     "    except:\n        continue",
    "nested-functions": "def inner():\n    while True:\n        try:\n            sum(range(100))\n"
                        "        except BaseException:\n            pass\n"
                        "while True:\n    try:\n        inner()\n    except:\n        pass",
    "no-calls": "while True:\n    try:\n        x = 1 / 0\n    except:\n        pass",
    "outer-try": "try:\n    while True:\n        try:\n            x = 1 / 0\n        except:\n            pass\n"
                 "except:\n    pass\nwhile True:\n    try:\n        y = 2\n    except BaseException as e:\n        pass",
    "keeps-the-exception": "errors = []\nwhile True:\n    try:\n        sum(range(100))\n"
                           "    except BaseException as e:\n        errors.append(e)",
    "handler-loops": "try:\n    while True:\n        n = 1\nexcept:\n    while True:\n        n = 2",
}


@pytest.mark.parametrize("code", SWALLOWERS.values(), ids=SWALLOWERS.keys())
def test_the_timeout_stops_an_action_whatever_it_catches(code):
    executor = LocalPythonExecutor({"df": pd.DataFrame({"a": [1, 2]})})
    started = time.monotonic()
    result = executor.execute(code, timeout=0.5)
    assert time.monotonic() - started < 10, "it ends"
    assert result.timed_out and "0.5 s time limit" in result.error
    after = executor.execute("total = int(df.a.sum())")  # the executor and the namespace still work
    assert after.error is None and executor.namespace["total"] == 3


def test_an_action_stopped_under_the_magic_is_told_to_the_model_and_the_run_goes_on(ip):
    ip.user_ns["df"] = df = pd.DataFrame({"a": [1, 2]})
    ip.user_ns["m"] = m = ScriptedModel([fence(SWALLOWERS["issue-example"]), fence("final_answer('next')")])
    ip.run_cell("%%agent -m m --approve never --timeout 1 -o out\nfind row 99")
    assert ip.user_ns["out"] == "next"
    assert "1 s time limit" in m.requests[1][-1]["content"]
    assert ip.user_ns["df"] is df


def test_an_action_raising_keyboardinterrupt_itself_is_not_called_an_interrupt(ip):
    ip.user_ns["m"] = m = ScriptedModel([fence("raise KeyboardInterrupt"), fence("final_answer('went on')")])
    ip.run_cell("%%agent -m m -o out\ntask")
    told = m.requests[1][-1]["content"]
    assert "raised KeyboardInterrupt itself" in told and "interrupted by the user" not in told
    assert ip.user_ns["out"] == "went on"  # no one pressed Interrupt: the run goes on


def test_an_action_calling_sys_exit_is_told_what_happened(ip, capsys):
    ip.user_ns["m"] = m = ScriptedModel([fence("raise SystemExit(3)"), fence("final_answer('still here')")])
    ip.run_cell("%%agent -m m -o out\ntask")
    told = m.requests[1][-1]["content"]
    assert "the action called sys.exit(3)" in told and "keeps running" in told
    assert "To exit: use" not in told + capsys.readouterr().err
    assert ip.user_ns["out"] == "still here"


# -- §1: time limits are checked ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "1e12", "0", "soon"])
@pytest.mark.parametrize("flag", ["--timeout", "--model-timeout"])
def test_bad_time_limits_are_one_line(ip, capsys, flag, value):
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    result = ip.run_cell(f"%%agent -m m {flag} {value}\ntask")
    err = capsys.readouterr().err
    assert not result.success
    assert f"UsageError: {flag} must be a positive number of seconds, not" in err, err
    assert "Traceback" not in err and "ValueError" not in err and "OverflowError" not in err
    assert m.requests == []


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "1e12"])
@pytest.mark.parametrize("name", ["timeout", "model_timeout"])
def test_bad_time_limit_settings_are_refused(ip, capsys, caplog, name, value):
    magics = ip.magics_manager.registry["AgentMagics"]
    before = getattr(magics, name)
    ip.run_cell(f"%config AgentMagics.{name} = {value}")
    captured = capsys.readouterr()
    assert f"AgentMagics.{name} must be a positive number of seconds" in captured.err + captured.out + caplog.text
    assert getattr(magics, name) == before


def test_model_timeout_applies_to_a_model_named_by_id_and_to_the_users_model_only_when_given(ip, monkeypatch):
    import smol_magic.jupyter.magic as magic

    made = []

    def fake_spec(spec):  # the model class itself is tested over HTTP in test_models; here: which timeout it gets
        made.append(ScriptedModel([fence("final_answer(1)")], model_id=spec))
        return made[-1]

    monkeypatch.setattr(magic, "model_from_spec", fake_spec)
    ip.run_cell("%%agent -m openai/x\ntask")
    assert made[-1].timeout == 120.0  # AgentMagics.model_timeout's default
    ip.run_cell("%config AgentMagics.model_timeout = 7")
    ip.run_cell("%%agent -m openai/x\ntask")
    assert made[-1].timeout == 7
    ip.run_cell("%%agent -m openai/x --model-timeout 3\ntask")
    assert made[-1].timeout == 3

    mine = ScriptedModel([fence("final_answer(1)")] * 2)
    mine.timeout = 42
    ip.user_ns["mine"] = mine
    ip.run_cell("%%agent -m mine\ntask")
    assert mine.timeout == 42  # the setting does not override what the user chose
    seen = []
    mine.generate = _recording(mine.generate, lambda: seen.append(mine.timeout))
    ip.run_cell("%%agent -m mine --model-timeout 2\ntask")
    assert seen == [2] and mine.timeout == 42  # the flag holds for the run, then the user's value is back


def _recording(generate, note):
    async def wrapped(*args, **kwargs):
        note()
        return await generate(*args, **kwargs)
    return wrapped


# -- §5: silent acceptance -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell, message", [
    ("%%agent -m m --protect dff\ntask", "--protect: no variable named 'dff' (did you mean 'df'?)"),
    ("%%agent -m m --imports os\ntask", "--imports: os can never be imported by the agent, whoever approves"),
    ("%%agent -m m --imports json,subprocess\ntask", "--imports: subprocess can never be imported"),
    ('%%agent -m "" \ntask', "-m/--model is empty: give a litellm id"),
    ("%%agent -m m --record /proc/nope/x.jsonl\ntask", "--record /proc/nope/x.jsonl: cannot write there"),
], ids=["protect-typo", "imports-os", "imports-subprocess", "empty-model", "record-nowhere"])
def test_silent_acceptance_is_now_one_clear_line(ip, capsys, cell, message):
    ip.user_ns["df"] = df = pd.DataFrame({"a": [1]})
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    result = ip.run_cell(cell)
    err = capsys.readouterr().err
    assert not result.success
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert m.requests == [] and ip.user_ns["df"] is df


@pytest.mark.parametrize("content, message", [
    (b"", "is empty, not a smol-magic recording: make one with %%agent --record"),
    (b"\n\n", "is empty, not a smol-magic recording"),
    (b"\xff\xfe\x00garbage\x89PNG", "is not a smol-magic recording (it is not text)"),
    (b"{not json\n", "is not a smol-magic recording (its lines are not JSON)"),
], ids=["empty", "blank-lines", "binary", "not-json"])
def test_bad_replay_files_are_one_clear_line(ip, capsys, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    result = ip.run_cell(f"%%agent --replay {path}\ntask")
    err = capsys.readouterr().err
    assert not result.success
    assert message in err, err
    for internal in ("IndexError", "UnicodeDecodeError", "JSONDecodeError", "Traceback"):
        assert internal not in err


def test_replay_of_a_fresh_recording_in_a_continued_conversation_suggests_reset(ip, capsys, tmp_path):
    path = tmp_path / "run.jsonl"
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")] * 3)
    ip.run_cell("%%agent -m m\nfirst task")
    ip.run_cell(f"%%agent -m m --reset --record {path}\nrecorded task")
    ip.run_cell("%%agent -m m\nsomething in between")
    capsys.readouterr()
    result = ip.run_cell(f"%%agent --replay {path}\nrecorded task")
    err = capsys.readouterr().err
    assert not result.success
    assert "Add --reset" in err and "re-record" not in err, err
    ip.run_cell(f"%%agent --replay {path} --reset -o out\nrecorded task")
    assert ip.user_ns["out"] == 1


def test_the_first_run_in_a_kernel_says_it_starts_a_new_conversation(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")] * 3)
    ip.run_cell("%%agent -m m\nfirst")
    assert "starting a new conversation: this kernel has no earlier agent run" in capsys.readouterr().out
    ip.run_cell("%%agent -m m\nsecond")
    assert "new conversation" not in capsys.readouterr().out  # it continues, and says nothing
    ip.magics_manager.registry["AgentMagics"].current = None  # what a restart leaves: no agent
    ip.magics_manager.registry["AgentMagics"]._notices.clear()
    ip.run_cell("%%agent -m m --reset\nthird")
    assert "new conversation" not in capsys.readouterr().out  # asked for: nothing to say


def test_interrupt_during_a_timed_out_action_ends_the_run_not_just_the_step():
    # The action swallows the timeout; the user then presses Interrupt (here: the action raises SIGINT, so the
    # order is certain). The stop escalates: the result says interrupted, and the agent loop ends the run.
    code = ("import signal\ntry:\n    while True:\n        n = 1\nexcept BaseException:\n"
            "    signal.raise_signal(signal.SIGINT)\n    while True:\n        n = 2")
    result = LocalPythonExecutor().execute(code, timeout=0.3)
    assert result.interrupted and not result.timed_out
    assert result.error == "KeyboardInterrupt: interrupted by the user"


def test_a_stopped_actions_cleanup_runs_and_a_handler_that_carries_on_is_cut():
    executor = LocalPythonExecutor()
    result = executor.execute("try:\n    while True:\n        sum(range(10))\nfinally:\n    cleaned = True", 0.3)
    assert result.timed_out and executor.namespace.get("cleaned") is True  # finally ran: no half-done cleanup
    result = executor.execute("try:\n    while True:\n        sum(range(10))\nexcept BaseException:\n"
                              "    caught = True\n    while True:\n        n = 2", 0.3)
    assert result.timed_out and executor.namespace.get("caught") is True
    assert result.duration < 10, "it ends"
