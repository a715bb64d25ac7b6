"""The agent's actions as notebook cells: the kernel side of the labextension protocol, over real comms.

The test plays the frontend: it answers the ``smol_magic`` comm with ``hello``
(as the extension does) and records what the kernel asks it to insert. Without
an answer, the run completes and says once that it fell back.
"""

from __future__ import annotations

import queue
import time
from datetime import datetime, timezone

import pytest

from kernel_helpers import collect, evaluate, run, send_comm, start_kernel, stop_kernel

MODEL = '''from smol_magic import ScriptedModel
m = ScriptedModel([
    "Thought: one.\\n```python\\nfirst = 1\\nprint('first', first)\\n```",
    "```python\\nimport os\\n```",
    "```python\\nfinal_answer(first + 1)\\n```",
])'''


@pytest.fixture
def kernel():
    km, kc = start_kernel()
    yield kc
    stop_kernel(km, kc)


def execute_in_cell(kc, code: str, cell_id: str) -> str:
    """An execute_request carrying the cell's id, as JupyterLab sends it."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def play_frontend(kc, msg_id: str, answer: bool = True, timeout: float = 30, printed: list | None = None,
                  removed: list[str] = ()) -> list[dict]:
    """Read the cell's iopub messages; answer the smol_magic comm like the extension; return what it sent.

    ``begin_run`` is answered with ``begun``, saying that the cells ``removed`` were removed just now.
    """
    received, comm_id = [], None
    printed = [] if printed is None else printed
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and content.get("target_name") == "smol_magic":
            comm_id = content["comm_id"]
            if answer:
                send_comm(kc, comm_id, {"type": "hello", "version": 1, "frontend": "test"})
        elif msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id:
            received.append(content["data"])
            if answer and content["data"].get("type") == "begin_run":
                send_comm(kc, comm_id, {
                    "type": "begun", "run_id": content["data"]["run_id"], "agent_cell_id": content["data"]["agent_cell_id"],
                    "removed": len(removed), "kept": 0, "removed_ids": list(removed),
                    "at": datetime.now(timezone.utc).isoformat()})
        elif msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            printed.append(content["text"])
        elif msg["msg_type"] == "error" and msg["parent_header"].get("msg_id") == msg_id:
            printed.append(f"{content['ename']}: {content['evalue']}")
        elif (msg["msg_type"] == "status" and content["execution_state"] == "idle"
              and msg["parent_header"].get("msg_id") == msg_id):
            return received
    raise TimeoutError("the cell did not finish")


def test_each_action_that_ran_is_sent_as_a_cell_below_the_agent_cell(kernel):
    run(kernel, MODEL)
    msg_id = execute_in_cell(kernel, "%%agent -m m -o out --approve never\ncount", "cell-agent-1")
    sent = play_frontend(kernel, msg_id)
    assert sent[0] == {"type": "begin_run", "agent_cell_id": "cell-agent-1", "run_id": "run-1"}
    inserts = [m for m in sent if m["type"] == "insert"]
    # the refused `import os` did not run, so it is not a cell
    assert [m["source"] for m in inserts] == ["first = 1\nprint('first', first)", "final_answer(first + 1)"]
    assert all(m["agent_cell_id"] == "cell-agent-1" for m in inserts)
    assert inserts[0]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "first 1\n"}]
    meta = inserts[0]["metadata"]
    # the same metadata.smol_magic schema as an exported notebook's cell, plus the run and the model
    assert {k: meta[k] for k in ("run_id", "step", "model", "approval", "approved_by_person", "edited")} == {
        "run_id": "run-1", "step": 1, "model": "scripted", "approval": "auto", "approved_by_person": False,
        "edited": False}
    assert meta["verdict"] == {"decision": "allow", "reasons": []} and meta["token_usage"]["input_tokens"] > 0
    assert inserts[1]["outputs"][0]["data"]["text/plain"] == "2"  # the final answer, as the cell shows it re-run
    assert evaluate(kernel, "out") == 2


def test_cells_end_sends_them_after_the_run_and_off_sends_none(kernel):
    run(kernel, MODEL)
    sent = play_frontend(kernel, execute_in_cell(kernel, "%%agent -m m --cells end --approve never\nt", "c1"))
    assert [m["step"] for m in sent if m["type"] == "insert"] == [1, 3]
    run(kernel, MODEL)
    sent = play_frontend(kernel, execute_in_cell(kernel, "%%agent -m m --cells off --reset\nt", "c1"))
    assert not [m for m in sent if m["type"] == "insert"]


def test_agent_cells_inserts_the_last_run_after_the_fact(kernel):
    run(kernel, MODEL)
    play_frontend(kernel, execute_in_cell(kernel, "%%agent -m m --cells off\nt", "agent-cell"))
    printed: list[str] = []
    sent = play_frontend(kernel, execute_in_cell(kernel, "%agent cells", "other-cell"), printed=printed)
    assert "inserted the cells of run 1" in "".join(printed), printed
    assert sent[0] == {"type": "begin_run", "agent_cell_id": "agent-cell", "run_id": "run-1"}
    assert [m["step"] for m in sent if m["type"] == "insert"] == [1, 3]


def test_without_an_extension_the_run_completes_and_says_so_once(kernel):
    run(kernel, MODEL)
    started = time.monotonic()
    msg_id = execute_in_cell(kernel, "%%agent -m m -o out --approve never\nt", "lonely-cell")
    printed: list[str] = []
    play_frontend(kernel, msg_id, answer=False, printed=printed)
    assert time.monotonic() - started < 6
    assert "no notebook extension answered" in "".join(printed)
    assert evaluate(kernel, "out") == 2
    run(kernel, MODEL)
    started = time.monotonic()
    second = run(kernel, "%%agent -m m -o out2 --reset --approve never\nt")
    assert second.status == "ok" and "no notebook extension" not in second.stdout
    assert time.monotonic() - started < 2  # no second wait for a frontend that is not there
    assert evaluate(kernel, "out2") == 2


def test_queued_runs_of_removed_cells_are_no_ops_and_later_runs_are_not(kernel):
    """Run All again: the previous run's cells are queued behind the agent cell, which removes them."""
    run(kernel, MODEL)
    agent = execute_in_cell(kernel, "%%agent -m m -o out --approve never\ncount", "agent-cell")
    # Queued before the agent cell's run removed them, as Run All sends them (the old step 3 and step 1).
    stale_answer = execute_in_cell(kernel, "final_answer(first + 1)", "old-step-3")
    stale_print = execute_in_cell(kernel, "print('old step 1 ran again')", "old-step-1")
    user = execute_in_cell(kernel, "print('user cell sees', out)", "user-cell")
    play_frontend(kernel, agent, removed=["old-step-3", "old-step-1"])
    for msg_id in (stale_answer, stale_print):
        result = collect(kernel, msg_id)
        assert result.status == "ok" and result.outputs == [], result.outputs
    after = collect(kernel, user)
    assert after.status == "ok" and after.stdout == "user cell sees 2\n"
    # Sent after the removal (a person ran it on purpose): it runs; final_answer(x) shows x.
    by_hand = collect(kernel, execute_in_cell(kernel, "final_answer(first + 40)", "old-step-3"))
    assert by_hand.status == "ok" and by_hand.text.strip() == "41", by_hand.text
    # The notebook's final_answer is not among the variables the model is told about.
    assert evaluate(kernel, "'final_answer' in get_ipython().user_ns_hidden") is True


ISOLATED_MODEL = '''from smol_magic import ScriptedModel
m = ScriptedModel([
    "```python\\nimport os\\nmade_there = 41\\nprint('pid', os.getpid())\\n```",
    "```python\\nfinal_answer(made_there + 1)\\n```",
])'''


def test_an_isolated_runs_cells_run_again_in_the_isolated_kernel_not_in_the_notebooks(kernel):
    run(kernel, ISOLATED_MODEL)
    sent = play_frontend(kernel, execute_in_cell(kernel, "%%agent -m m -o out --executor isolated --approve never\n"
                                                         "t", "iso-agent"), timeout=60)
    inserts = [m for m in sent if m["type"] == "insert"]
    assert [m["source"].splitlines()[0] for m in inserts] == ["%%executor isolated"] * 2
    assert evaluate(kernel, "out") == 42
    # The user runs the first inserted cell again: it runs in the child, on the child's variables.
    printed: list[str] = []
    play_frontend(kernel, execute_in_cell(kernel, inserts[0]["source"].replace("41", "7"), "iso-step-1"),
                  printed=printed, timeout=60)
    child_pid = int("".join(printed).split("pid ")[1].split()[0])
    assert child_pid != evaluate(kernel, "__import__('os').getpid()")
    assert evaluate(kernel, "'made_there' in globals()") is False  # the notebook's namespace is untouched
    printed = []
    play_frontend(kernel, execute_in_cell(kernel, "%%executor isolated\nprint(made_there * 2)", "iso-check"),
                  printed=printed, timeout=60)
    assert "14" in "".join(printed)
    printed = []
    play_frontend(kernel, execute_in_cell(kernel, "%%executor elsewhere\n1", "bad"), printed=printed)
    assert "use %%executor isolated or gateway" in "".join(printed)
    run(kernel, "%agent executor stop")
