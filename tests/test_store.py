"""The run store in an IPython shell and in plain Python: what is kept, where, and what the commands say."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from smol_magic import CodeAgent, ScriptedModel
from smol_magic.safety import redact
from smol_magic.store import SCHEMA_VERSION, RunStore, StoreError, StoreWriter, queries, resolve
from smol_magic.store.connection import connect
from smol_magic.store.location import DEFAULT

SECRET = "sk-live-Hq3Vz8Ln2Rw6Tb1Kx5Pc9Mf4Jd7Gs0Ya"


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def agent_cell(ip, line: str, task: str):
    result = ip.run_cell(f"%%agent {line}\n{task}")
    assert result.success, result.error_in_exec
    return result


def rows(path: Path, sql: str, *params):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def test_each_run_is_kept_with_its_steps_and_the_listing_says_so(ip, own_store, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("x = 41\nprint(x)"), fence("final_answer(x + 1)")])
    agent_cell(ip, "-m m", "Count to forty-two, please, slowly and carefully.")
    (run_id, state, steps, task, answer, created), = rows(
        own_store, "SELECT id, state, steps, task, answer, variables_created FROM runs")
    assert (run_id, state, steps, answer, json.loads(created)) == (1, "done", 2, "42", ["x"])
    assert [r for r in rows(own_store, "SELECT kind, step_number FROM steps ORDER BY position")] == [
        ("task", None), ("action", 1), ("action", 2), ("final_answer", None)]
    capsys.readouterr()
    ip.run_line_magic("agent", "runs")
    out = capsys.readouterr().out
    assert "Count to forty-two, please, slowly and…" in out  # its first words
    assert "1 stored run of this notebook" in out and str(own_store) in out


def test_runs_of_other_notebooks_forget_and_all_notebooks(ip, own_store, capsys):
    for notebook, task in [("a.ipynb", "task of a"), ("b.ipynb", "first of b"), ("b.ipynb", "second of b")]:
        ip.user_ns["__session__"] = notebook
        ip.user_ns["m"] = ScriptedModel([fence(f"final_answer({task!r})")])
        agent_cell(ip, "-m m --reset", task)
    capsys.readouterr()
    ip.run_line_magic("agent", "runs")
    out = capsys.readouterr().out
    assert "first of b" in out and "second of b" in out and "task of a" not in out
    ip.run_line_magic("agent", "runs --all-notebooks --limit 2")
    out = capsys.readouterr().out
    assert "the newest 2 of 3 stored runs of all notebooks (--limit N for more)" in out
    assert "task of a" not in out  # the newest two
    ip.run_line_magic("agent", "forget 2")
    assert "forgot run 2: 1 run, 3 steps" in capsys.readouterr().out
    assert not ip.run_cell("%agent forget 2").success
    assert "no stored run 2; nothing was deleted" in capsys.readouterr().err
    ip.run_line_magic("agent", "forget --all")  # this notebook's: b
    assert "forgot 1 run of this notebook" in capsys.readouterr().out
    assert [r[0] for r in rows(own_store, "SELECT task FROM runs")] == ["task of a"]
    ip.run_line_magic("agent", "forget --all --all-notebooks")
    assert rows(own_store, "SELECT COUNT(*) FROM runs") == [(0,)]
    assert rows(own_store, "SELECT COUNT(*) FROM steps") == [(0,)]
    assert rows(own_store, "SELECT COUNT(*) FROM messages") == [(0,)]  # no run refers to them any more


def test_no_store_flag_and_store_off(ip, own_store, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")])
    agent_cell(ip, "-m m --no-store", "not kept")
    assert not own_store.exists()  # not even made
    ip.run_line_magic("config", 'AgentMagics.store = ""')
    agent_cell(ip, "-m m", "not kept either")
    assert not own_store.exists()
    capsys.readouterr()
    assert not ip.run_cell("%agent runs").success
    assert "the run store is off" in capsys.readouterr().err
    assert not ip.run_cell("%%agent -m m --resume\nmore").success
    assert "the run store is off" in capsys.readouterr().err


def test_a_store_that_cannot_be_written_warns_once_and_the_runs_complete(ip, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ip.run_line_magic("config", f'AgentMagics.store = "{blocker / "runs.sqlite"}"')
    ip.user_ns["m"] = ScriptedModel([fence("x = 1\nprint(x)"), fence("final_answer(x)"), fence("final_answer(2)")])
    agent_cell(ip, "-m m -o first", "one")
    agent_cell(ip, "-m m -o second", "two")
    assert (ip.user_ns["first"], ip.user_ns["second"]) == (1, 2)
    err = capsys.readouterr().err
    assert err.count("runs cannot be saved to") == 1
    assert "%config AgentMagics.store" in err


def test_a_file_that_is_not_a_store_warns(ip, tmp_path, capsys):
    garbage = tmp_path / "runs.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    ip.run_line_magic("config", f'AgentMagics.store = "{garbage}"')
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")])
    agent_cell(ip, "-m m -o out", "one")
    assert ip.user_ns["out"] == 1
    assert "runs cannot be saved to" in capsys.readouterr().err
    assert garbage.read_bytes() == b"this is not a database" * 100  # left as it was


def test_replay_a_stored_run(ip, own_store, capsys):
    ip.user_ns["sales"] = [3, 9, 4]
    ip.user_ns["m"] = ScriptedModel([fence("best = max(sales)\nprint(best)"), fence("final_answer(best)")])
    agent_cell(ip, "-m m", "Which is the best?")
    del ip.user_ns["best"]  # as in a fresh kernel re-running the notebook from the top
    agent_cell(ip, "--replay 1 --reset -o again", "Which is the best?")  # no model: the stored replies
    assert ip.user_ns["again"] == 9
    assert rows(own_store, "SELECT model_id, state FROM runs WHERE id = 2") == [("replay:scripted", "done")]
    capsys.readouterr()
    assert not ip.run_cell("%%agent --replay 1 --reset\nSomething else?").success
    assert "replay diverged at reply 1 of stored run 1" in capsys.readouterr().err
    assert not ip.run_cell("%%agent --replay 9 --reset\nWhich is the best?").success
    assert "there is no stored run 9" in capsys.readouterr().err


def test_replaying_a_run_that_continued_a_conversation_says_how(ip, own_store, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")])
    agent_cell(ip, "-m m", "first")
    agent_cell(ip, "-m m", "second")  # continues run 1's conversation
    ip.magics_manager.registry["AgentMagics"].current = None  # as after a restart
    capsys.readouterr()
    assert not ip.run_cell("%%agent --replay 2 --reset\nsecond").success
    assert "stored run 2 continued the conversation of run 1: add --resume 1" in capsys.readouterr().err
    agent_cell(ip, "--resume 1 --replay 2 -o out", "second")
    assert ip.user_ns["out"] == 2


def test_reading_an_empty_store_says_so_and_makes_nothing(ip, own_store, capsys):
    ip.run_line_magic("agent", "runs")
    assert f"no stored runs of this notebook in {own_store}" in capsys.readouterr().out
    for line in ("show 1", "forget 1", f"export {own_store.parent / 'x.ipynb'} --stored 1"):
        assert not ip.run_cell(f"%agent {line}").success
        assert f"no run has been stored in {own_store} yet" in capsys.readouterr().err
    assert not own_store.parent.joinpath("x.ipynb").exists() and not own_store.exists()


def test_resume_errors_are_clear(ip, own_store, capsys):
    ip.user_ns["__session__"] = "other.ipynb"
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)"), fence("final_answer(1)")])
    agent_cell(ip, "-m m", "a run of another notebook")
    ip.user_ns["__session__"] = "this.ipynb"
    capsys.readouterr()
    for line, message in [("-m m --resume", "no stored run of this.ipynb yet"),
                          ("-m m --resume 4", "there is no stored run 4"),
                          ("-m m --resume --reset", "--resume continues a stored conversation and --reset")]:
        assert not ip.run_cell(f"%%agent {line}\ntask").success
        assert message in capsys.readouterr().err
    assert len(ip.user_ns["m"].requests) == 1  # nothing more ran


def test_a_new_conversation_mentions_resume(ip, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("final_answer(1)")])
    agent_cell(ip, "-m m", "one")
    assert ("starting a new conversation: this kernel has no earlier agent run. After a kernel restart, "
            "%%agent --resume continues the last stored one") in capsys.readouterr().out


def test_no_secret_is_ever_written(ip, own_store, monkeypatch):
    monkeypatch.setattr(redact, "_REGISTERED", set(), raising=False)
    monkeypatch.setattr(redact, "_CACHE", {}, raising=False)
    ip.user_ns["token"] = SECRET
    ip.user_ns["m"] = ScriptedModel([fence("print('the token is', token)"), fence("n = int(token)"),
                                     fence("final_answer(token)")])
    agent_cell(ip, "-m m -o answer", "Use `token` to log in.")
    assert ip.user_ns["answer"] == SECRET
    kept = b"".join(p.read_bytes() for p in own_store.parent.iterdir())
    assert b"[redacted secret]" in kept or b"redacted" in kept
    windows = {SECRET[i:i + 8].encode() for i in range(len(SECRET) - 7)}
    assert not [w for w in windows if w in kept]


def test_messages_are_stored_once_so_the_store_grows_linearly(tmp_path):
    """Each step's input repeats the conversation; the store holds each message once."""
    sizes = {}
    for steps in (30, 60):
        store = RunStore(tmp_path / f"{steps}.sqlite")
        replies = [fence(f"v{i} = '{'x' * 400}' * 2\nprint(len(v{i}))") for i in range(1, steps)]
        agent = CodeAgent(model=ScriptedModel(replies + [fence("final_answer('end')")]),
                          renderer=StoreWriter(store))
        agent.run("many steps", max_steps=steps)
        stored = queries.load_run(store, 1)
        assert [s.model_input_messages for s in stored.result.action_steps] == \
            [s.model_input_messages for s in agent.runs[-1].action_steps]  # rebuilt exactly
        conn = store.connection()
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        assert messages <= 2 * steps + 2  # system, task, then a reply and an observation per step
        sizes[steps] = conn.execute("SELECT SUM(LENGTH(data) + LENGTH(COALESCE(inputs, ''))) FROM steps").fetchone()[0] \
            + conn.execute("SELECT SUM(LENGTH(body)) FROM messages").fetchone()[0]
    assert sizes[60] < 2.3 * sizes[30], sizes  # linear (quadratic would be about 4x)


def test_default_location_falls_back_when_the_folder_cannot_be_written(tmp_path):
    blocker = tmp_path / "notebooks"
    blocker.write_text("a file where the notebook's folder would be")
    assert resolve(DEFAULT, tmp_path, tmp_path / "data") == tmp_path / ".smol_magic" / "runs.sqlite"
    assert resolve(DEFAULT, blocker, tmp_path / "data") == tmp_path / "data" / "runs.sqlite"
    assert resolve("mine.sqlite", blocker, tmp_path / "data") == blocker / "mine.sqlite"  # named: stays
    assert resolve("", tmp_path) is None


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    connect(path).execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="written by a newer smol-magic"):
        connect(path)


def test_a_tool_calling_run_resumes_and_replays_with_its_native_calls(ip, own_store):
    from smol_magic import ChatMessageToolCall, ModelResponse, tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        return a + b

    ip.user_ns["add"] = add
    ip.user_ns["m"] = ScriptedModel([
        ModelResponse("", tool_calls=[ChatMessageToolCall("c1", "add", '{"a": 1, "b": 2}')]),
        ModelResponse("", tool_calls=[ChatMessageToolCall("c2", "final_answer", '{"answer": "3"}')])])
    agent_cell(ip, "--agent tools -m m", "Add 1 and 2.")
    ip.magics_manager.registry["AgentMagics"].current = None  # as after a restart
    ip.user_ns["m2"] = ScriptedModel([ModelResponse("", tool_calls=[ChatMessageToolCall("c3", "final_answer",
                                                                                           '{"answer": "4"}')])])
    agent_cell(ip, "--agent tools -m m2 --resume -o resumed", "Now add one more.")
    sent = ip.user_ns["m2"].requests[0]
    assert sent[:-1] == ip.user_ns["m"].requests[-1] + [  # as if the kernel had never restarted
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "final_answer", "arguments": '{"answer": "3"}'}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "Final answer: str = '3'"}]
    assert sent[-1]["role"] == "user" and "New task:\nNow add one more." in sent[-1]["content"]
    ip.magics_manager.registry["AgentMagics"].current = None
    agent_cell(ip, "--agent tools --replay 1 -o replayed", "Add 1 and 2.")
    assert (ip.user_ns["resumed"], ip.user_ns["replayed"]) == ("4", "3")


def test_the_cost_is_kept_and_listed(ip, own_store, capsys):
    ip.user_ns["m"] = ScriptedModel([fence("x = 1\nprint(x)"), fence("final_answer(x)")],
                                    model_id="openai/gpt-4o-mini")  # priced from litellm's cost map
    agent_cell(ip, "-m m", "A priced run.")
    result = ip.magics_manager.registry["AgentMagics"].current.runs[-1]
    step_costs = [c for (c,) in rows(own_store, "SELECT cost FROM steps WHERE kind = 'action' ORDER BY position")]
    assert len(step_costs) == 2 and all(c > 0 for c in step_costs)
    (cost,), = rows(own_store, "SELECT cost FROM runs")
    assert cost == pytest.approx(result.token_usage.cost) and cost == pytest.approx(sum(step_costs))
    capsys.readouterr()
    ip.run_line_magic("agent", "runs")
    assert f"${cost:.4f}" in capsys.readouterr().out
    assert queries.load_run(RunStore(own_store), 1).result.token_usage.cost == pytest.approx(cost)


def test_a_run_in_a_big_notebook_stores_only_the_variables_its_code_names(ip, own_store, tmp_path):
    """A notebook of thousands of variables: the stored run keeps those its code reads (what the export
    needs), not every name, and the stored run exports to the same notebook as the live one."""
    for i in range(3000):
        ip.user_ns[f"v_{i}"] = i
    ip.user_ns["sales"] = [3, 9, 4]
    ip.user_ns["m"] = ScriptedModel([fence("best = max(sales)\nprint(best, v_7)"), fence("final_answer(best)")])
    agent_cell(ip, "-m m", "Which is the best?")
    (before, read, size), = rows(own_store, "SELECT variables_before, variables_read, length(variables_before) "
                                            "FROM runs")
    assert json.loads(before) == ["sales", "v_7"] and json.loads(read) == ["sales", "v_7"]
    assert size < 100
    ip.run_line_magic("agent", f"export {tmp_path / 'live.ipynb'}")
    ip.run_line_magic("agent", f"export {tmp_path / 'stored.ipynb'} --stored 1")
    live, kept = (json.loads((tmp_path / n).read_text())["cells"] for n in ("live.ipynb", "stored.ipynb"))
    assert [c["source"] for c in live] == [c["source"] for c in kept]
    assert any("sales" in "".join(c["source"]) for c in kept)


def test_a_step_written_on_a_later_try_keeps_the_variables_its_code_named(tmp_path, monkeypatch):
    """A step whose commit failed (an I/O error at COMMIT: the disk full) is written with the next one,
    and the run's stored variables are those its code named, as if no write had failed."""
    import sqlite3

    from smol_magic import LocalPythonExecutor
    from smol_magic.store import connection, writer

    failures = ["disk I/O error"]  # the commit of the first action step fails once

    class FailingOnce(connection.transaction):
        def __exit__(self, kind: object, *rest: object) -> None:
            if kind is None and failures and self.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 2:
                self.conn.execute("ROLLBACK")
                raise sqlite3.OperationalError(failures.pop())
            super().__exit__(kind, *rest)

    monkeypatch.setattr(writer, "transaction", FailingOnce)
    path = tmp_path / "runs.sqlite"
    warnings: list[str] = []
    store = RunStore(path, warn=warnings.append)
    agent = CodeAgent(model=ScriptedModel([fence("best = max(sales)"), fence("print(best)"),
                                           fence("final_answer(best)")]),
                      executor=LocalPythonExecutor({"sales": [3, 9, 4]}), renderer=StoreWriter(store))
    assert agent.run("Which is the best?") == 9
    assert not failures and len(warnings) == 1  # the failure happened and was said once
    (before, steps), = rows(path, "SELECT variables_before, steps FROM runs")
    assert json.loads(before) == ["sales"] and steps == 3
