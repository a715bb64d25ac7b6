"""Approval in a real kernel: the Run / Edit / Skip / Stop / Run all card, clicked over real comm messages.

Each test drives ``%%agent`` in the installed ipykernel through jupyter_client
and clicks the card's buttons with the message a JupyterLab widget manager
sends (``comm_msg`` ``{"method": "custom", "content": {"event": "click"}}``),
types with ``{"method": "update", "state": {"value": ...}}``, and asserts
what a person would notice.

While the agent cell waits for a click, the shell channel is busy: no other
cell can run. So the scripted actions call ``mark(name)``, a function defined
in the kernel that writes ``time.time()`` to a file in the test's tmp dir: the
test sees from outside whether (and when) an action ran. The first statement
of an action is its ``mark``; how long a click takes to reach the action is a
figure printed by ``bench/ui.py``, not a test assertion.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from kernel_helpers import WIDGET_VIEW, LiveCell, evaluate, html_text, interrupt, ok, py, run, scripted

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc, own_kernel

HEADER_TOOLTIP = "End the run after this step"
MAGICS = "get_ipython().magics_manager.registry['AgentMagics']"


def define_mark(kc, folder: Path) -> None:
    ok(kc, "import os as _os, time as _time\n"
           "def mark(name):\n"
           f"    with open(_os.path.join({str(folder)!r}, name), 'w') as f:\n"
           "        f.write(repr(_time.time()))\n")


def stamp(folder: Path, name: str, timeout: float = 0.0) -> float | None:
    """When the action marked ``name`` started (wall clock), waiting up to ``timeout`` for it."""
    path = folder / name
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            text = path.read_text()
            if text:
                return float(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def assert_prompt(started: float | None, sent: float) -> None:
    """The action started, after the click was sent (not before: it waited for the click)."""
    assert started is not None, "the action did not run after the click"
    assert started >= sent, "the action ran before the click"


def assert_trace_replaced_widget(result, state: str) -> None:
    """The live widget is gone from the outputs; the static trace in its place says how the run ended."""
    assert not any(WIDGET_VIEW in o.get("data", {}) for o in result.outputs), result.outputs
    assert f"■ {state}" in result.trace, result.trace


def assert_clean_end(result) -> None:
    """The cell ended normally: no error box, no traceback, nothing on stderr."""
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    assert not any(m["msg_type"] == "error" for m in result.iopub), result.text
    assert "Traceback" not in result.text and not result.stderr, result.text + result.stderr


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def cell(kernel, tmp_path):
    """Start an agent cell in the shared kernel; a test that fails mid-wait does not wedge the next one."""
    km, kc = kernel
    ok(kc, "%reset -f")  # variables of earlier tests (res, ...) must not pass for this test's
    define_mark(kc, tmp_path)
    started: list[LiveCell] = []

    def start(code: str) -> LiveCell:
        started.append(LiveCell(kc, code))
        return started[-1]

    yield start
    for live in started:
        if not live.done:
            km.interrupt_kernel()
            live.finish(timeout=10)


# -- nothing runs before Run -----------------------------------------------------------


def test_nothing_runs_before_run_then_the_run_continues(kc, cell, tmp_path):
    ok(kc, scripted("m", py("mark('step1')\nmade = 41", "make it"), py("mark('step2')\nfinal_answer(made + 1)")))

    live = cell("%%agent -m m -o res --reset --approve every\nmake a number")
    first = live.wait_for_card()
    shown = live.watch.widget_text()
    assert "made = 41" in shown and "Waiting for you" in shown, shown  # the card shows the code it would run
    for label in ("Edit", "Skip", "Stop", "Run all"):
        assert live.watch.enabled_button(label), f"no {label!r} button on the card"
    live.drain(0.3)
    assert stamp(tmp_path, "step1") is None, "the action ran before anyone clicked Run"

    sent = live.click(first)
    assert_prompt(stamp(tmp_path, "step1", timeout=5), sent)

    # The run continues: the next action gets its own card, and waits in turn.
    second = live.wait_for_card()
    assert second != first
    assert live.watch.widgets[first]["state"].get("disabled") or live.watch.widgets[first]["closed"]
    live.drain(0.2)
    assert stamp(tmp_path, "step2") is None
    live.click(second)
    result = live.finish()

    assert_clean_end(result)
    assert stamp(tmp_path, "step2") is not None
    assert evaluate(kc, "(made, res)") == (41, 42)
    assert evaluate(kc, "len(m.requests)") == 2
    told = evaluate(kc, "m.requests[1][-1]['content']")
    assert "made" in told and "41" in told, told  # the model saw what the step did


def test_a_stale_click_on_an_earlier_card_does_not_approve_the_next_action(kc, cell, tmp_path):
    # A double click on Run, or a click from a frontend that has not yet greyed the old card out, reaches the
    # kernel after the next card is up. It belongs to the old card: the next action must still wait.
    ok(kc, scripted("m", py("mark('first')\nfirst = 1"), py("mark('second')\nfinal_answer(first + 1)")))

    live = cell("%%agent -m m -o res --reset --approve every\ntwo steps")
    old = live.wait_for_card()
    live.click(old)
    new = live.wait_for_card()
    assert stamp(tmp_path, "first", timeout=2) is not None
    live.click(old)  # the late second click of a double click
    live.drain(0.3)

    assert stamp(tmp_path, "second") is None, "the next action ran on a click meant for the previous card"
    assert live.watch.enabled_button("Run") == new, "the next card no longer waits for its own click"
    live.click(new)
    assert_clean_end(live.finish())
    assert evaluate(kc, "res") == 2


# -- Skip with a reason --------------------------------------------------------------------


def test_skip_with_a_reason_never_runs_and_tells_the_model(kc, cell, tmp_path):
    ok(kc, scripted("m", py("mark('skipped')\nskipped_var = 1", "risky"), py("final_answer('after skip')")))

    live = cell("%%agent -m m -o res --reset --approve every\ndo the risky thing")
    skip = live.wait_for_card("Skip")
    reasons = [c for c, s in live.watch.models("TextModel") if s.get("placeholder") == "reason to skip (optional)"]
    assert reasons, "no reason box on the card"
    live.set_value(reasons[-1], "not on the production data")
    live.click(skip)
    run_next = live.wait_for_card()  # the model's next step, after the skip
    live.click(run_next)
    result = live.finish()

    assert_clean_end(result)
    assert stamp(tmp_path, "skipped", timeout=0.2) is None, "a skipped action ran"
    assert evaluate(kc, "'skipped_var' in globals()") is False
    assert evaluate(kc, "res") == "after skip"
    told = evaluate(kc, "m.requests[1][-1]")
    assert told["role"] == "user"
    assert "skipped" in told["content"] and "not on the production data" in told["content"], told["content"]
    assert "skipped by you" in html_text(result.trace_html)  # the static trace says so too
    assert evaluate(kc, f"[str(s.approval) for s in {MAGICS}.current.memory.steps if hasattr(s, 'approval')]") == [
        "skip", "run"]


# -- Edit -----------------------------------------------------------------------------------


def test_edit_runs_the_edited_code_and_tells_the_model(kc, cell, tmp_path):
    proposed = "mark('proposed')\nedited = 'by the model'"
    mine = "mark('edited')\nedited = 'by the person'"
    ok(kc, scripted("m", py(proposed, "propose"), py("final_answer(edited)")))

    live = cell("%%agent -m m -o res --reset --approve every\nset edited")
    run_button = live.wait_for_card()
    editors = live.watch.models("TextareaModel")
    assert editors, "no code editor on the card"
    editor_id, editor = editors[-1]
    assert editor.get("value") == proposed  # the editor starts from the model's code ...
    layout = live.watch.widgets[editor["layout"].removeprefix("IPY_MODEL_")]["state"]
    assert layout.get("display") == "none"  # ... and is hidden until Edit
    assert "smol-magic-edit" in editor.get("_dom_classes", []), "the labextension cannot find the editor to upgrade"
    assert live.watch.widgets[run_button]["state"]["description"] == "Run"

    live.click(live.watch.enabled_button("Edit"))
    live.wait_until(lambda: layout.get("display") != "none", what="the editor to open")
    live.wait_until(lambda: live.watch.widgets[run_button]["state"]["description"] == "Run edited code",
                    what="the Run button to say it runs the edited code")
    live.set_value(editor_id, mine)
    sent = live.click(run_button)
    assert_prompt(stamp(tmp_path, "edited", timeout=5), sent)
    live.click(live.wait_for_card())
    result = live.finish()

    assert_clean_end(result)
    assert stamp(tmp_path, "proposed") is None, "the model's code ran instead of the edit"
    assert evaluate(kc, "(edited, res)") == ("by the person", "by the person")
    step = f"{MAGICS}.current.memory.steps[1]"
    assert evaluate(kc, f"({step}.proposed_code, {step}.code, str({step}.approval))") == (proposed, mine, "edit")
    told = evaluate(kc, "m.requests[1][-1]['content']")
    assert "edited your code" in told and mine in told, told
    assert mine in evaluate(kc, "list(In)") and proposed not in evaluate(kc, "list(In)")  # history has the edit
    assert "edited by you" in html_text(result.trace_html)


# -- Stop: the card's button and the header's ----------------------------------------------


@pytest.mark.parametrize("where", ["card", "header"])
def test_stop_while_waiting_ends_the_run_cleanly_and_keeps_memory(kc, cell, tmp_path, where):
    ok(kc, scripted("m", py("mark('never')\nstopped_var = 1", "about to act"), py("final_answer('no')")))

    live = cell("%%agent -m m -o res --reset --approve every\nFIRST-TASK: act")
    live.wait_for_card()
    stops = live.watch.buttons("Stop")
    header = [c for c, s in stops if HEADER_TOOLTIP in (s.get("tooltip") or "")]
    card = [c for c, s in stops if HEADER_TOOLTIP not in (s.get("tooltip") or "")]
    assert len(header) == 1 and len(card) == 1, stops
    live.click((card if where == "card" else header)[0])
    result = live.finish(timeout=5)

    assert_clean_end(result)
    assert result.elapsed < 5
    assert_trace_replaced_widget(result, "stopped")
    assert evaluate(kc, f"str({MAGICS}.current.runs[-1].state)") == "stopped"
    assert stamp(tmp_path, "never", timeout=0.2) is None
    assert evaluate(kc, "'stopped_var' in globals() or 'res' in globals()") is False
    assert evaluate(kc, "len(m.requests)") == 1  # the model was not asked again
    # The memory is kept: the next %%agent continues the conversation.
    steps = evaluate(kc, f"[type(s).__name__ for s in {MAGICS}.current.memory.steps]")
    assert steps == ["TaskStep", "ActionStep"]
    ok(kc, scripted("m2", py("final_answer('continued')")))
    ok(kc, "%%agent -m m2 -o res --approve never\nSECOND-TASK")
    assert evaluate(kc, "res") == "continued"
    contents = [m["content"] for m in evaluate(kc, "m2.requests[0]")]
    assert any("FIRST-TASK: act" in c for c in contents)
    assert any("stopped the run" in c for c in contents)


# -- Run all ---------------------------------------------------------------------------------


def test_run_all_approves_the_rest_of_this_run_only(kc, cell, tmp_path):
    ok(kc, scripted("m", py("mark('a')\nfirst = 1"), py("mark('b')\nsecond = first + 1"),
                    py("mark('c')\nfinal_answer(second + 1)")))

    live = cell("%%agent -m m -o res --reset --approve every\ncount to three")
    sent = live.click(live.wait_for_card("Run all"))
    assert_prompt(stamp(tmp_path, "a", timeout=5), sent)
    result = live.finish()

    assert_clean_end(result)
    assert all(stamp(tmp_path, name) is not None for name in "abc")
    assert evaluate(kc, "res") == 3
    runs = live.watch.ever_opened("ButtonModel", "Run")
    assert len(runs) == 1, f"{len(runs)} Run buttons: later actions waited for approval"
    assert not live.watch.enabled_button("Run")
    # "Run all" was for that run: the next run asks again.
    ok(kc, scripted("m2", py("mark('d')\nfinal_answer(4)")))
    again = cell("%%agent -m m2 --approve every\nonce more")
    asked = again.wait_for_card()
    again.drain(0.2)
    assert stamp(tmp_path, "d") is None, "Run all leaked into the next run"
    again.click(asked)
    assert_clean_end(again.finish())


# -- the default (risky) with allowed actions: nothing waits ---------------------------------


def test_default_risky_mode_runs_allowed_actions_without_a_click(kc, cell, tmp_path):
    assert evaluate(kc, f"{MAGICS}.approve") == "risky"
    ok(kc, scripted("m", py("mark('one')\nx1 = 1"), py("mark('two')\nfinal_answer(x1 + 1)")))

    live = cell("%%agent -m m -o res --reset\nsafe work")
    result = live.finish(timeout=10)

    assert_clean_end(result)
    assert evaluate(kc, "res") == 2
    assert stamp(tmp_path, "one") and stamp(tmp_path, "two")
    assert live.watch.ever_opened("ButtonModel", "Run") == []  # no approval card appeared
    assert live.watch.ever_opened("ButtonModel", "Stop")  # the live trace did (its header's Stop)


# -- Interrupt -------------------------------------------------------------------------------


def test_interrupt_while_waiting_for_a_click(own_kernel, tmp_path):
    km, kc = own_kernel
    define_mark(kc, tmp_path)
    ok(kc, "keep = [1, 2]\n" + scripted("m", py("mark('never')\nwaited = 1"), py("final_answer(0)")))

    live = LiveCell(kc, "%%agent -m m -o res --approve every\nwait for me")
    live.wait_for_card()
    result = interrupt(km, lambda: live.finish(timeout=5), within=1.0)

    assert stamp(tmp_path, "never", timeout=0.2) is None, "the action ran after the interrupt"
    assert_trace_replaced_widget(result, "interrupted")  # no dead Run button left in the notebook
    assert evaluate(kc, "'waited' in globals() or 'res' in globals()") is False
    assert evaluate(kc, "keep") == [1, 2]
    assert ok(kc, "print(sum(keep))").stdout.strip() == "3"
    ok(kc, scripted("m2", py("final_answer(len(keep))")))
    ok(kc, "%%agent -m m2 -o res --approve never\ncount")
    assert evaluate(kc, "res") == 2


def test_interrupt_while_an_approved_action_runs(own_kernel, tmp_path):
    km, kc = own_kernel
    define_mark(kc, tmp_path)
    ok(kc, "keep = 'here'\n" + scripted("m", py("n = 0\nwhile True:\n    n += 1\n    if n == 1000:\n        mark('spin')"), py("final_answer(0)")))

    live = LiveCell(kc, "%%agent -m m -o res --approve every\nspin")
    sent = live.click(live.wait_for_card())
    assert_prompt(stamp(tmp_path, "spin", timeout=5), sent)  # the busy action is running: interrupt it
    result = interrupt(km, lambda: live.finish(timeout=5), within=2.0)

    assert_trace_replaced_widget(result, "interrupted")
    assert evaluate(kc, "n > 0") is True
    assert evaluate(kc, "'res' in globals()") is False
    assert evaluate(kc, "len(m.requests)") == 1
    assert ok(kc, "print(keep)").stdout.strip() == "here"


# -- the static trace -------------------------------------------------------------------------


def test_the_widget_is_replaced_by_a_static_trace(kc, cell, tmp_path):
    step1 = "mark('s1')\ntotal = sum(range(10))\nprint('total is', total)"
    step2 = "final_answer(total * 2)"
    ok(kc, scripted("m", py(step1, "add up"), py(step2, "double")))

    result = cell("%%agent -m m -o res --reset --approve never\nadd and double").finish()

    assert_clean_end(result)
    assert evaluate(kc, "res") == 90
    displays = [o for o in result.outputs if o["output_type"] == "display_data"]
    assert len(displays) == 1, result.outputs  # one trace: the widget view was replaced, not added to
    data = displays[0]["data"]
    assert WIDGET_VIEW not in data
    assert "smol-magic-trace" in data["text/html"]
    readable = html_text(data["text/html"])
    plain = data["text/plain"]
    for line in step1.splitlines() + step2.splitlines():
        assert line in readable, line
        assert f"│ {line}" in plain, line
    assert "total is 45" in readable and "total is 45" in plain
    assert "90" in plain and "■ done" in plain
    assert "<script" not in data["text/html"].lower()


def test_headless_notebook_saves_the_trace_as_html_and_text(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext smol_magic"),
        nbformat.v4.new_code_cell(scripted("m", py("squares = [i * i for i in range(5)]\nprint(squares)", "square"),
                                           py("final_answer(sum(squares))"))),
        nbformat.v4.new_code_cell("%%agent -m m -o res --approve never\nsum of squares"),
        nbformat.v4.new_code_cell("print('res =', res)"),
    ]
    client = NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)

    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    outputs = saved.cells[2].outputs
    traces = [o for o in outputs if "smol-magic-trace" in o.get("data", {}).get("text/html", "")]
    assert len(traces) == 1, outputs
    html_part, plain = traces[0]["data"]["text/html"], traces[0]["data"]["text/plain"]
    assert "squares = [i * i for i in range(5)]" in html_text(html_part)
    assert "│ squares = [i * i for i in range(5)]" in plain and "■ done" in plain
    assert "[0, 1, 4, 9, 16]" in plain and "30" in plain
    for output in outputs:  # nothing only a live widget manager could show
        assert WIDGET_VIEW not in output.get("data", {}), output
        assert output.get("output_type") != "error", output
    assert saved.cells[3].outputs[0]["text"] == "res = 30\n"


def test_a_headless_run_does_not_wait_for_a_click_nobody_can_give(kc, tmp_path):
    """nbclient, papermill and nbconvert send no cell id: an approval would only wait for their timeout.

    So the run behaves as --approve never: what the guard allows runs, what it asks about is refused.
    """
    target = tmp_path / "written.txt"
    ok(kc, scripted("m", py(f"open({str(target)!r}, 'w').write('x')"), py("final_answer('went on')")))
    started = time.monotonic()
    result = run(kc, "%%agent -m m -o res --reset --approve every\nno one is watching", timeout=20)
    assert result.status == "ok", result.text
    assert time.monotonic() - started < 10
    assert "no notebook frontend sent this cell" in result.text
    assert not target.exists()  # the write needed a person: refused
    assert evaluate(kc, "res") == "went on"
