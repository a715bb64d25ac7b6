"""Secrets never reach the model, a record file, the memory or a saved trace: each route with a canary.

A route is a way a secret value can travel: the variable summary in the prompt, ``{var}`` in the
task, ``print``, an error message, ``final_answer``, a DataFrame that pandas shortens when printed,
a key printed in two halves. For each, the canary's 8-character windows must appear nowhere in
what the model received (``ScriptedModel.requests``), the ``--record`` file, the memory JSON and
the static trace (HTML and text) a notebook saves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from smol_magic import ScriptedModel
from smol_magic.safety import redact
from smol_magic.ui import html as h

# 62 characters, like the OpenAI key of the report; no 8-character run of it occurs in ordinary text.
ENV_CANARY = "sk-proj-Qm7Zt2Wv9Rk4Xp8Lb3Nc6Hd1Fg5Js0Ty7Ue2Ia9Ow4Pz8Kx3Mr6Vb1"
WINDOW = 8  # the promise: no 8 characters of a secret together
USER_CANARY = "tok9Vq3Lm8Xz2Rb7Wn4Kc1Pd6Hf5Gs0Jt8Yu3Ea7Io2"  # a token the user typed: no known prefix


def windows(secret: str) -> set[str]:
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def leaks(secret: str, text: str) -> list[str]:
    """The canary's 8-character windows found in ``text`` (none, when nothing leaked)."""
    return sorted(w for w in windows(secret) if w in text)


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test starts with no secret found in a namespace (they are registered for the process)."""
    monkeypatch.setattr(redact, "_REGISTERED", set(), raising=False)
    monkeypatch.setattr(redact, "_CACHE", {}, raising=False)


def everything_kept(ip, model: ScriptedModel, record=None) -> dict[str, str]:
    """What the model received, the record file, the memory JSON, the static trace (HTML and text)."""
    agent = ip.magics_manager.registry["AgentMagics"].current
    run = agent.runs[-1]
    kept = {
        "requests": json.dumps(model.requests),
        "memory": agent.memory.to_json(),
        "trace html": h.run_html(run.task, run.model_id, run.steps, run.state, run.duration, 0, 0, run.error),
    }
    if record is not None:
        kept["record"] = record.read_text()
        for suffix in (".ipynb", ".py"):  # %agent export
            kept[f"export {suffix}"] = Path(agent.to_notebook(str(record.with_suffix(suffix)))).read_text()
    return kept


def assert_no_leak(secret: str, kept: dict[str, str]) -> None:
    for where, text in kept.items():
        assert not leaks(secret, text), f"{where} holds {leaks(secret, text)[:3]}"


def test_a_token_variable_never_reaches_the_model(ip, tmp_path, capsys):
    """Summary, print, an error message and final_answer: the token stays out of every request and record."""
    ip.user_ns["token"] = USER_CANARY
    record = tmp_path / "run.jsonl"
    ip.user_ns["m"] = model = ScriptedModel([
        fence("print('the token is', token)"),
        fence("n = int(token)"),  # ValueError: invalid literal for int() with base 10: '<the token>'
        fence("final_answer(token)"),
        fence("final_answer('done')"),
    ])
    ip.run_cell(f"%%agent -m m -o answer --record {record}\nUse `token` to log in.")
    ip.run_cell("%%agent -m m\nAgain.")
    assert ip.user_ns["answer"] == USER_CANARY  # the user's own answer is the real value
    kept = everything_kept(ip, model, record)
    kept["text trace"] = capsys.readouterr().out
    assert_no_leak(USER_CANARY, kept)
    first = model.requests[0][-1]["content"]
    assert f"- token: str, {len(USER_CANARY)} characters (looks like a secret: value not shown)" in first
    observations = [m["content"] for m in model.requests[2] if m["role"] == "user"]
    assert "[redacted secret]" in observations[-1] and "invalid literal for int()" in observations[-1]


def test_an_env_key_interpolated_into_the_task_is_redacted(ip, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_CANARY)
    ip.run_cell("import os\napi = os.environ['OPENAI_API_KEY']")
    record = tmp_path / "run.jsonl"
    ip.user_ns["m"] = model = ScriptedModel([fence("final_answer(len(api))")])
    ip.run_cell(f"%%agent -m m --record {record}\nCheck that {{api}} is a valid key.")
    kept = everything_kept(ip, model, record)
    assert_no_leak(ENV_CANARY, kept)
    assert f"`api` (str, {len(ENV_CANARY)} characters (looks like a secret" in model.requests[0][-1]["content"]


def test_a_dataframe_holding_the_key_leaks_no_part_of_it(ip, monkeypatch, tmp_path, capsys):
    """pandas shortens the cell when printing: the shown part is redacted all the same; so is the summary."""
    monkeypatch.setenv("OPENAI_API_KEY", ENV_CANARY)
    ip.user_ns["creds"] = pd.DataFrame({"service": ["openai", "hub"], "secret": [ENV_CANARY, USER_CANARY]})
    record = tmp_path / "run.jsonl"
    ip.user_ns["m"] = model = ScriptedModel([fence("print(creds)"), fence("final_answer(creds)")])
    ip.run_cell(f"%%agent -m m --record {record}\nWhich services have credentials in `creds`?")
    kept = everything_kept(ip, model, record)
    kept["text trace"] = capsys.readouterr().out
    assert ENV_CANARY[:20] in str(ip.user_ns["creds"])  # the printout really holds a shortened part of the key
    for canary in (ENV_CANARY, USER_CANARY):
        assert_no_leak(canary, kept)
    assert "openai" in model.requests[1][-1]["content"]  # the rest of the table is still there


def test_a_key_printed_in_two_halves_is_redacted(ip, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", ENV_CANARY)
    ip.run_cell("import os\nk = os.environ['HF_TOKEN']")
    record = tmp_path / "run.jsonl"
    ip.user_ns["m"] = model = ScriptedModel([
        fence("print(k[:30])\nprint(k[30:])"),
        fence("print(' '.join(k[i:i + 9] for i in range(0, len(k), 9)))"),
        fence("final_answer('done')"),
    ])
    ip.run_cell(f"%%agent -m m --record {record}\nShow the key.")
    assert_no_leak(ENV_CANARY, everything_kept(ip, model, record))


def test_a_credential_made_during_the_run_is_redacted_from_then_on(ip, tmp_path):
    """A token the agent's own step built (not there when the run began) is found after the step."""
    record = tmp_path / "run.jsonl"
    ip.user_ns["parts"] = [USER_CANARY[:20], USER_CANARY[20:]]
    ip.user_ns["m"] = model = ScriptedModel([
        fence("password = ''.join(parts)"),
        fence("print(password)"),
        fence("final_answer('done')"),
    ])
    ip.run_cell(f"%%agent -m m --record {record}\nJoin the parts.")
    assert_no_leak(USER_CANARY, everything_kept(ip, model, record))


@pytest.mark.parametrize("name, value", [
    ("token", USER_CANARY),
    ("x", ENV_CANARY),  # a known prefix, whatever the name
    ("hub", "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123"),
    ("password", "hunter2!x"),
    ("db_pass", "Summer2024Pw"),
    ("anything", "q8ZxR2vN7mK4pL9tB3wH6yJ1cF5dG0sA"),  # long, high entropy, three kinds of character
])
def test_credentials_are_recognised(name, value):
    assert redact.looks_like_secret(name, value)


@pytest.mark.parametrize("name, value", [
    ("region", "the north-western region of the company"),
    ("sort_key", "revenue_total"),  # a "key" that is a column name
    ("path", "/home/user/data/sales_2024_final_v2.csv"),
    ("url", "https://example.com/api/v1/items?page=2"),
    ("digest", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),  # hex: no upper case
    ("uid", "123e4567-e89b-12d3-a456-426614174000"),
    ("token_count", 1234),  # not a string
    ("note", "short"),
])
def test_ordinary_values_are_not_secrets(name, value):
    assert not redact.looks_like_secret(name, value)


def test_ordinary_text_is_left_alone_and_any_8_characters_of_a_secret_are_not():
    secrets = redact.Secrets([ENV_CANARY, USER_CANARY])
    text = "Revenue grew 12% in the north (sk-proj keys); Qm7Zt2W and Lm8Xz2R are 7 characters; the end."
    assert secrets.redact(text) == text
    shown = f"a {ENV_CANARY[5:13]} b {USER_CANARY[-9:]} c {ENV_CANARY[:7]}"  # 8, 9 and 7 characters
    assert secrets.redact(shown) == f"a [redacted secret] b [redacted secret] c {ENV_CANARY[:7]}"


def test_a_long_secret_in_a_long_text_is_found_everywhere():
    secret = "".join(f"{i:04x}Zq" for i in range(2000))  # 12,000 characters
    text = ("lorem ipsum " * 50_000) + secret[5000:5100] + ("dolor " * 50_000) + secret[-30:]
    out = redact.Secrets([secret]).redact(text)
    assert not leaks(secret, out)
    assert out.count("[redacted secret]") == 2


def test_a_variable_holding_an_env_secret_is_summarised_without_its_value(ip, monkeypatch):
    """The key has no known prefix and the name says nothing: it is a secret because the environment says so."""
    plain_key = "qzvkpwltrybmxcjhfgdsaeuo"
    assert not redact.looks_like_secret("conf", plain_key)
    monkeypatch.setenv("SERVICE_TOKEN", plain_key)
    ip.user_ns["conf"] = plain_key
    ip.user_ns["m"] = model = ScriptedModel([fence("final_answer(1)")])
    ip.run_cell("%%agent -m m\nUse {conf}.")
    first = model.requests[0][-1]["content"]
    assert f"`conf` (str, {len(plain_key)} characters (looks like a secret: value not shown))" in first
    assert f"- conf: str, {len(plain_key)} characters (looks like a secret: value not shown)" in first
    assert not leaks(plain_key, json.dumps(model.requests))


def test_a_secret_passed_as_an_additional_arg_is_redacted_in_a_plain_python_run():
    from smol_magic import CodeAgent

    model = ScriptedModel([fence("print(api_key)"), fence("final_answer('done')")])
    agent = CodeAgent(model=model)
    assert agent.run("log in", additional_args={"api_key": USER_CANARY}) == "done"
    assert not leaks(USER_CANARY, json.dumps(model.requests) + agent.memory.to_json())
    assert "- api_key: str, 43 characters (looks like a secret" in model.requests[0][-1]["content"]


def test_variables_rebound_between_runs_are_judged_again():
    """Each run looks at the user's variables again; a string already judged is skipped only while the name
    holds that very object, so a name rebound (or a container filled) to a credential is found."""
    from collections import OrderedDict

    class Settings(dict):
        pass

    ns = {"note": "quarterly revenue by region", "api_key": "not set yet", "cfg": {"region": "west"},
          "ids": [1, 2, 3], "count": 12345, "opts": OrderedDict(), "env": Settings(), "pair": (1, 2),
          "print_it": print, "re": re}
    assert redact.find_secrets(ns) == []
    assert redact.find_secrets(ns) == []  # a second walk skips what the first judged: the same answer
    ns["api_key"] = "Zq8Lm2Rv6Tb1Kx5Pc9Mf"  # rebound: a new object under a credential's name
    ns["cfg"]["token"] = "Hq3Vz8Ln2Rw6Tb1Kx5Pc"  # filled in place
    ns["ids"].append("sk-proj-Vz8Ln2Rw6Tb1Kx5Pc9Mf4Jd")
    ns["count"] = "hf_Rw6Tb1Kx5Pc9Mf4JdVz8Ln2"  # a number's name, rebound to a key
    ns["opts"]["password"] = "correct-horse-9"  # a dict of another kind, filled in place
    ns["env"]["secret"] = "Lm2Rv6Tb1Kx5Pc9M"
    ns["pair"] = (1, "ghp_Tb1Kx5Pc9Mf4JdVz8Ln2Rw6")
    assert sorted(redact.find_secrets(ns)) == sorted([
        "Zq8Lm2Rv6Tb1Kx5Pc9Mf", "Hq3Vz8Ln2Rw6Tb1Kx5Pc", "sk-proj-Vz8Ln2Rw6Tb1Kx5Pc9Mf4Jd", "hf_Rw6Tb1Kx5Pc9Mf4JdVz8Ln2",
        "correct-horse-9", "Lm2Rv6Tb1Kx5Pc9M", "ghp_Tb1Kx5Pc9Mf4JdVz8Ln2Rw6"])


def test_a_credential_among_thousands_of_ordinary_cells_is_found_in_a_column_that_says_nothing():
    """A frame's text columns are read up to 20,000 cells per run: ordinary cells (categories, ids, emails,
    UUIDs) are passed over in bulk, and a key pasted among them is still found, however it is padded, and
    whatever else the column holds (missing values, numbers, a cell with a newline)."""
    import uuid

    n = 5_000
    notes = [f"SKU-{i:08d}" if i % 3 else f"user{i}@example.com" for i in range(n)]
    notes[1234] = "  " + USER_CANARY + "\t"  # no known prefix: found by its look
    notes[10], notes[11], notes[12] = None, float("nan"), 42
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(n)]  # long, no whitespace, but not credential-like
    ids[4000] = "hf_Rw6Tb1Kx5Pc9Mf4JdVz8Ln2"
    ids[4001] = "sk-ant-api03-vz8ln2rw6tb1kx5pc9"  # lower case, like the ids: found by its prefix
    lines = [f"line {i}\nnext" if i == 7 else f"Rq{i:06d}Zx" for i in range(n)]  # a newline: judged cell by cell
    lines[4999] = "sk-proj-Vz8Ln2Rw6Tb1Kx5Pc9Mf4Jd"
    frame = pd.DataFrame({"notes": notes, "ids": ids, "lines": lines, "region": ["West"] * n})
    assert sorted(redact.find_secrets({"orders": frame})) == sorted(
        [USER_CANARY, "hf_Rw6Tb1Kx5Pc9Mf4JdVz8Ln2", "sk-ant-api03-vz8ln2rw6tb1kx5pc9", "sk-proj-Vz8Ln2Rw6Tb1Kx5Pc9Mf4Jd"])
    assert redact.find_secrets({"orders": frame.astype("string")}) == redact.find_secrets({"orders": frame})
