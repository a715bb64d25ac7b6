"""``%%agent`` in a real kernel: the installed ipykernel, driven over ZMQ by jupyter_client.

What a notebook user notices: the agent's variables are real objects in the
namespace, its code is in ``In``, the conversation continues across cells,
Interrupt and timeouts stop a run at once without hurting the kernel, and a
mistyped ``%%agent`` line is a one-line error.

In a kernel the trace is a live widget while the run goes on, then a static
display (``text/html`` + ``text/plain``) that replaces it: tests read the trace
from the cell's outputs as a notebook keeps them (``CellResult.trace``), and
watch the live widget's text while the run is under way (``wait_for_output``).

One kernel is shared by the tests that leave it in a clean state; tests that
interrupt or time out code get a kernel of their own, so a regression that
wedges a kernel fails one test, not the whole file.
"""

from __future__ import annotations

import time

import pytest
from kernel_helpers import (
    collect, evaluate, interrupt, ok, py, run, scripted, send, started_marker, wait_for_file, wait_for_output,
)

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc, own_kernel


# -- 1. variables, -o, In --------------------------------------------------------------


def test_agent_variables_are_real_objects_and_code_is_in_history(kc):
    step1 = "import pandas as pd\nsales = pd.DataFrame({'region': ['n', 's', 'e'], 'rev': [10, 30, 20]})\ntop = sales.loc[sales.rev.idxmax(), 'region']\nprint(top)"
    step2 = "share = round(float(sales.rev.max() / sales.rev.sum()), 2)\nprint(share)"
    step3 = "final_answer(f'{top}: {share}')"
    ok(kc, scripted("m1", py(step1, "build the table"), py(step2, "compute the share"), py(step3, "done")))

    result = ok(kc, "%%agent -m m1 -o best --reset\nWhich region sells most, and what share?")

    assert "s: 0.5" in result.trace  # the trace (the static display that replaced the widget) shows the answer
    # A later, ordinary cell sees the agent's objects themselves, not reprs or copies.
    assert evaluate(kc, "type(sales).__name__") == "DataFrame"
    assert evaluate(kc, "type(sales).__module__.split('.')[0]") == "pandas"
    assert evaluate(kc, "sales.rev.tolist()") == [10, 30, 20]
    assert evaluate(kc, "(top, share)") == ("s", 0.5)
    assert evaluate(kc, "best") == "s: 0.5"
    later = ok(kc, "print(type(sales).__name__, sales.shape, best)")
    assert later.stdout.strip() == "DataFrame (3, 2) s: 0.5"
    # The agent's code actions are notebook history, in order, right after the %%agent cell.
    history = evaluate(kc, "list(In)")
    agent_cell = max(i for i, c in enumerate(history) if "Which region sells most" in c)
    assert history[agent_cell + 1 : agent_cell + 4] == [step1, step2, step3]


# -- 2. conversation continues; --reset starts afresh ---------------------------------


def test_second_agent_cell_continues_the_conversation_and_reset_starts_afresh(kc):
    ok(kc, scripted("c1", py("alpha = 1", "first"), py("final_answer(alpha)")))
    ok(kc, "%%agent -m c1 --reset\nFIRST-TASK: make alpha")
    ok(kc, scripted("c2", py("final_answer(alpha + 1)")))
    ok(kc, "%%agent -m c2 -o second\nSECOND-TASK: add one")

    assert evaluate(kc, "second") == 2
    first_request = evaluate(kc, "c2.requests[0]")
    contents = [m["content"] for m in first_request]
    assert [m["role"] for m in first_request].count("system") == 1
    assert any("FIRST-TASK: make alpha" in c for c in contents), "the earlier task is not in the conversation"
    assert py("alpha = 1", "first") in contents, "the earlier reply is not in the conversation"
    assert any(c.startswith("Observation:") for c in contents), "the earlier observations are missing"
    assert "SECOND-TASK: add one" in first_request[-1]["content"]
    assert evaluate(kc, "len(c2.requests[0])") > evaluate(kc, "len(c1.requests[0])")

    ok(kc, scripted("c3", py("final_answer(3)")))
    ok(kc, "%%agent -m c3 -o third --reset\nTHIRD-TASK: fresh start")
    assert evaluate(kc, "third") == 3
    fresh = evaluate(kc, "c3.requests[0]")
    assert [m["role"] for m in fresh] == ["system", "user"]
    assert "THIRD-TASK: fresh start" in fresh[-1]["content"]
    assert not any("FIRST-TASK" in m["content"] or "SECOND-TASK" in m["content"] for m in fresh)


# -- 3. Interrupt during a busy action ----------------------------------------------


def test_interrupt_during_busy_action_stops_the_run_and_keeps_the_kernel(own_kernel, tmp_path):
    km, kc = own_kernel
    ok(kc, "keep = {'a': [1, 2, 3]}")
    marker = started_marker(kc, tmp_path)
    ok(kc, scripted("spin", py("n = 0\nstarted()\nwhile True:\n    n += 1", "spin"),
                    py("final_answer('should not run')")))

    msg_id = send(kc, "%%agent -m spin -o res\nspin forever")
    seen = wait_for_output(kc, msg_id, "while True")  # the live trace shows the action
    wait_for_file(marker)  # the action is running
    interrupt(km, lambda: collect(kc, msg_id, timeout=10, prior=seen), within=2.0)

    # The run ended: the model was not asked for another step, and no answer was stored.
    assert evaluate(kc, "len(spin.requests)") == 1
    assert evaluate(kc, "'res' in globals()") is False
    # The kernel is alive, the namespace intact, and the busy action really ran (n is bound before started():
    # the interrupt may land at the very next line, e.g. while %load_ext's warm-up thread holds the GIL).
    assert evaluate(kc, "keep") == {"a": [1, 2, 3]}
    assert evaluate(kc, "n >= 0") is True
    assert ok(kc, "print(sum(keep['a']))").stdout.strip() == "6"
    # The agent still works afterwards.
    ok(kc, scripted("after", py("final_answer(len(keep))")))
    ok(kc, "%%agent -m after -o res\ncount keys")
    assert evaluate(kc, "res") == 1


# -- 4. --timeout ----------------------------------------------------------------------


def test_timeout_stops_a_busy_action_and_the_run_continues(own_kernel):
    km, kc = own_kernel
    ok(kc, "keep = 'still here'")
    ok(kc, scripted("slowm", py("import time\nwhile True:\n    time.sleep(0.01)", "loop"), py("final_answer('recovered')")))

    started = time.monotonic()
    result = run(kc, "%%agent -m slowm -o res --timeout 1\nloop", timeout=15)
    elapsed = time.monotonic() - started

    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    assert 0.9 < elapsed < 5.0, f"the run took {elapsed:.2f} s with a 1 s action limit"
    assert evaluate(kc, "res") == "recovered"
    assert evaluate(kc, "len(slowm.requests)") == 2
    told = evaluate(kc, "slowm.requests[1][-1]")
    assert told["role"] == "user"
    assert "time limit" in told["content"] and "1 s" in told["content"], told["content"]
    # The kernel is usable, and no alarm is left armed to kill a later cell.
    assert evaluate(kc, "keep") == "still here"
    later = run(kc, "import time\ntime.sleep(1.5)\nprint('slept')", timeout=10)
    assert later.status == "ok" and later.stdout.strip() == "slept", later.text


# -- 5. Interrupt while the model thinks -------------------------------------------------

SLOW_MODEL = """\
import asyncio
from smol_magic.core.models import BaseModel, ModelResponse

class SlowModel(BaseModel):
    model_id = "slow-thinker"

    async def generate(self, messages, stop_sequences=None):
        started()
        await asyncio.sleep(30)
        return ModelResponse("```python\\nfinal_answer('too late')\\n```")

thinker = SlowModel()
keep = [4, 5, 6]
"""


def test_interrupt_while_the_model_thinks_ends_the_cell_at_once(own_kernel, tmp_path):
    km, kc = own_kernel
    marker = started_marker(kc, tmp_path)
    ok(kc, SLOW_MODEL)

    msg_id = send(kc, "%%agent -m thinker -o res\nthink hard")
    seen = wait_for_output(kc, msg_id, "slow-thinker")  # the live trace is up
    wait_for_file(marker)  # the model is being asked
    try:
        result = interrupt(km, lambda: collect(kc, msg_id, timeout=4, prior=seen), within=2.0)
    except TimeoutError:
        pytest.fail("the %%agent cell was still busy 4 s after Interrupt while the model was thinking")

    assert evaluate(kc, "keep") == [4, 5, 6]
    assert evaluate(kc, "'res' in globals()") is False
    assert ok(kc, "print(sum(keep))").stdout.strip() == "15"
    # The trace must not claim the model replied without code: it never replied at all.
    assert "no code in the reply" not in result.text, result.text
    assert "no code in the reply" not in result.watch.widget_text(include_closed=True)


# -- 6. bad input: one-line UsageError, nothing lost ------------------------------------


@pytest.mark.parametrize(
    "cell, message",
    [
        ("%%agent -m good --bogus\ndo it", "unrecognized arguments: --bogus"),
        ("%%agent\ndo it", "no model configured"),
        ("%%agent -m no_such_model\ndo it", "unknown model 'no_such_model'"),
        ("%%agent -m survivor\ndo it", "'survivor' is a int, not a Model"),
        ("%%agent -m good\n   \n", "write the task in the cell"),
    ],
    ids=["unknown-flag", "no-model", "unknown-model-variable", "not-a-model", "empty-task"],
)
def test_bad_input_is_a_one_line_usage_error_and_keeps_variables(kc, cell, message):
    assert evaluate(kc, "__import__('os').environ.get('SMOL_MAGIC_MODEL')") is None
    ok(kc, "survivor = 41 + 1\n" + scripted("good", py("final_answer(1)")))

    result = run(kc, cell)

    assert result.status == "error"
    assert result.ename == "UsageError", (result.ename, result.evalue)
    assert message in result.evalue
    error_lines = result.stderr.strip().splitlines()
    assert error_lines == [f"UsageError: {result.evalue}"], result.stderr
    assert "Traceback" not in result.text and not result.reply.get("traceback")
    assert not any(m["msg_type"] == "error" for m in result.iopub)  # no traceback box either
    assert evaluate(kc, "good.requests") == []  # the model was never called
    assert evaluate(kc, "survivor") == 42
    assert ok(kc, "print(survivor * 2)").stdout.strip() == "84"


# -- 7. the synchronous path: run_cell_magic from an ordinary cell ------------------------


def test_run_cell_magic_from_an_ordinary_cell(kc):
    ok(kc, scripted("sm", py("gamma = [i * i for i in range(4)]"), py("final_answer(sum(gamma))")))

    result = ok(kc, "get_ipython().run_cell_magic('agent', '-m sm -o out --reset', 'sum some squares')\nprint('out is', out)")

    assert "out is 14" in result.stdout
    assert evaluate(kc, "(out, gamma)") == (14, [0, 1, 4, 9])
    assert evaluate(kc, "len(sm.requests)") == 2
    assert "gamma = [i * i for i in range(4)]" in evaluate(kc, "list(In)")


def test_run_cell_magic_prints_no_stray_traceback(kc):
    # A race in the sync path: about half the calls print "Exception ignored ... Event loop is closed".
    code = scripted("rm", py("final_answer(1)")) + (
        "\nfor i in range(10):\n"
        "    rm.requests.clear()\n"
        "    get_ipython().run_cell_magic('agent', '-m rm -o out --reset', 'one')\n"
        "print('calls done', out)"
    )
    result = ok(kc, code)

    assert "calls done 1" in result.stdout
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


# -- 8. a reply without code, then a good one ---------------------------------------------


def test_reply_without_code_becomes_an_observation_and_the_run_recovers(kc):
    ok(kc, scripted("g", "I don't know.", py("final_answer('answer after all')", "ok, code")))

    result = ok(kc, "%%agent -m g -o fixed --reset\nfind it")

    assert evaluate(kc, "fixed") == "answer after all"
    assert evaluate(kc, "len(g.requests)") == 2
    told = evaluate(kc, "g.requests[1][-1]")
    assert told["role"] == "user"
    assert "no Python code" in told["content"] and "```python" in told["content"], told["content"]
    assert evaluate(kc, "g.requests[1][-2]") == {"role": "assistant", "content": "I don't know."}
    assert "answer after all" in result.trace


def test_the_actions_reach_the_history_database_when_the_run_ends(kc):
    """A run holds IPython's history writes until it ends (one write, not one per action): then each
    action is in the history database, as a typed cell is, and the history setting is as it was."""
    ok(kc, scripted("h1", py("hist_a = 41", "first"), py("hist_b = hist_a + 1\nfinal_answer(hist_b)", "done")))
    ok(kc, "%%agent -m h1 -o hist_out --reset\nCount on.")
    assert evaluate(kc, "get_ipython().history_manager.db_cache_size") == 0
    query = ("[s for (s,) in get_ipython().history_manager.db.execute("
             "'SELECT source FROM history WHERE session = ?', (get_ipython().history_manager.session_number,))]")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # IPython's thread writes it: wait for the rows, not for a set time
        stored = evaluate(kc, query)
        if "hist_a = 41" in stored:
            break
    assert "hist_a = 41" in stored and "hist_b = hist_a + 1\nfinal_answer(hist_b)" in stored
    raw = evaluate(kc, query.replace("SELECT source ", "SELECT source_raw "))
    assert "%%agent -m h1 -o hist_out --reset\nCount on." in raw  # the cell itself, held from its start


def test_a_failed_agent_cell_ends_its_history_hold(kc):
    """The hold starts before IPython stores the %%agent cell; a cell that stops at its flags ends it too,
    and the next typed cell reaches the history database as it did before the extension was loaded."""
    failed = run(kc, "%%agent --max-steps 0\nCount on.")
    assert failed.status == "error" and "--max-steps must be at least 1" in failed.text
    assert evaluate(kc, "get_ipython().history_manager.db_cache_size") == 0
    ok(kc, "hist_typed = 'after the failed cell'")
    query = ("[s for (s,) in get_ipython().history_manager.db.execute("
             "'SELECT source FROM history WHERE session = ?', (get_ipython().history_manager.session_number,))]")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = evaluate(kc, query)
        if "hist_typed = 'after the failed cell'" in stored:
            break
    assert "hist_typed = 'after the failed cell'" in stored
    assert "%%agent --max-steps 0\nCount on." in evaluate(kc, query.replace("SELECT source ", "SELECT source_raw "))
