"""What the trace shows, in a real kernel over real comms: the task as typed, and inserted cells referred to.

The test plays JupyterLab: it sends each ``%%agent`` cell with a cell id, and, where the labextension
would, answers the ``smol_magic`` comm (``hello``, then ``inserted`` or ``error`` per cell). It reads
the live widgets and the static trace from the cell's iopub messages, as a frontend renders them.
"""

from __future__ import annotations

import html
import json
import re

from kernel_helpers import LiveCell, evaluate, html_text, ok, py, scripted

pytest_plugins = ["kernel_fixtures"]  # kernel (shared by this module), kc

# What a person reads with a step open, before opening its "observation" and "what the model saw".
_INNER = re.compile(r"<details><summary[^>]*>(observation sent to the model|what the model saw)</summary>.*?</details>"
                    r"|<style>.*?</style>", re.S)


def visible(markup: str) -> str:
    return html_text(_INNER.sub("", markup))


class Extension:
    """The labextension's side of the ``smol_magic`` comm: hello, then a reply per inserted cell.

    Used as a ``wait_until`` predicate: each call answers what has arrived; true once the cell is idle.
    """

    def __init__(self, live: LiveCell, refuse: tuple[int, ...] = ()):
        self.live, self.refuse = live, refuse
        self.read = 0
        self.inserts: list[dict] = []

    def __call__(self) -> bool:
        messages = self.live.watch.messages
        for msg in messages[self.read:]:
            content = msg["content"]
            if msg["msg_type"] == "comm_open" and content.get("target_name") == "smol_magic":
                self.live._send(content["comm_id"], {"type": "hello", "version": 1, "frontend": "test"})
            elif msg["msg_type"] == "comm_msg" and content["data"].get("type") == "insert":
                step = content["data"]["step"]
                self.inserts.append(content["data"])
                reply = ({"type": "error", "step": step, "message": "the notebook is read-only"} if step in self.refuse
                         else {"type": "inserted", "step": step, "cell_id": f"inserted-{step}"})
                self.live._send(content["comm_id"], reply)
        self.read = len(messages)
        return self.live.watch.idle


def run_with_extension(kc, code: str, refuse: tuple[int, ...] = ()):
    live = LiveCell(kc, code)
    extension = Extension(live, refuse)
    live.wait_until(extension, timeout=30, what="the run to end")
    return live, live.finish(), extension


def test_inserted_cells_hold_the_outputs_and_the_trace_refers_to_them(kc):
    ok(kc, "%reset -f")
    ok(kc, scripted("m",
                    py("first = 1\nprint('printed by', 'step one')\n{'rich': 'shown' + ' by step one'}", "one"),
                    py("print('printed by', 'step two')"),
                    py("final_answer(first)")))
    # Step 2's cell cannot be inserted (the extension answers with an error): its outputs stay in the trace.
    live, result, extension = run_with_extension(kc, "%%agent -m m -o res --reset\nthree steps", refuse=(2,))
    assert result.status == "ok", result.text
    assert [i["step"] for i in extension.inserts] == [1, 2, 3]

    shown = visible(result.trace_html)
    assert "outputs: in the cell below, marked “agent · step 1”" in shown, shown
    assert "printed by step one" not in shown and "shown by step one" not in shown, shown
    assert "printed by step two" in shown and "step 2”" not in shown, shown

    # The live card of step 1, as it stood before the static trace replaced it: the same reference, and its
    # rich output (an Output widget) taken out of the card.
    cards = [(c, w["state"]) for c, w in live.watch.widgets.items() if w["state"].get("_model_name") == "HTMLModel"
             and "first = 1" in visible(w["state"].get("value") or "")]
    assert len(cards) == 1, [s.get("value", "")[:80] for _, s in cards]
    html_id, card = cards[0]
    assert "outputs: in the cell below, marked “agent · step 1”" in visible(card["value"])
    assert "printed by step one" not in visible(card["value"])
    [body] = [s for _, s in live.watch.models("VBoxModel") if f"IPY_MODEL_{html_id}" in s.get("children", [])]
    kinds = [live.watch.widgets[c.removeprefix("IPY_MODEL_")]["state"].get("_model_name") for c in body["children"]]
    assert "OutputModel" not in kinds, kinds


def test_the_header_shows_the_task_as_typed_cut_at_a_word(kc):
    ok(kc, "%reset -f")
    ok(kc, scripted("m", py("final_answer(region)")))
    ok(kc, "region = 'the north-western region of the company, with all of its many subsidiaries and offices'")
    task = ("Tell me which {region} had the largest revenue growth over the last four quarters, and explain "
            "why in two sentences")
    live = LiveCell(kc, f"%%agent -m m -o res --reset\n{task}")
    result = live.finish()
    assert result.status == "ok", result.text

    def header(markup: str) -> tuple[str, str]:
        found = re.search(r'class="smol-magic-task" title="([^"]*)">([^<]*)<', markup)
        assert found, markup[:500]
        return html.unescape(found.group(1)), html.unescape(found.group(2))

    live_headers = [s["value"] for _, s in live.watch.models("HTMLModel") if "smol-magic-task" in s.get("value", "")]
    for where, markup in (("live", live_headers[-1]), ("static", result.trace_html)):
        full, shown = header(markup)
        assert full == task, f"{where}: {full!r}"
        assert shown.startswith("Tell me which {region} had") and shown.endswith("…"), f"{where}: {shown!r}"
        kept = shown.removesuffix("…")
        assert task.startswith(kept) and not task[len(kept)].isalnum(), f"{where}: cut mid-word: {shown!r}"
    assert "full task" in html_text(result.trace_html)  # the static trace can show it all
    first_line = result.trace.splitlines()[0]
    assert first_line.startswith("▶ agent · scripted · Tell me which {region} had"), first_line
    kept = first_line.split(" · ", 2)[2].removesuffix("…")
    assert task.startswith(kept) and not task[len(kept)].isalnum(), f"text trace cut mid-word: {first_line!r}"
    assert "north-western" not in first_line


TOKEN = "tok9Vq3Lm8Xz2Rb7Wn4Kc1Pd6Hf5Gs0Jt8Yu3Ea7Io2"


def test_a_token_reaches_neither_the_trace_nor_the_widgets_nor_the_record(kc, tmp_path):
    """What the kernel sends the frontend (live widgets, the saved trace) and the --record file: no part of it."""
    ok(kc, "%reset -f")
    ok(kc, f"token = {TOKEN!r}")
    ok(kc, scripted("m", py("print('token:', token[:20]); print(token[20:])"), py("n = int(token)"),
                    py("final_answer(token)")))
    record = tmp_path / "run.jsonl"
    live = LiveCell(kc, f"%%agent -m m -o answer --reset --cells off --record {record}\nLog in with `token`.")
    result = live.finish()
    assert result.status == "ok", result.text
    sent = json.dumps([m["content"] for m in result.iopub]) + record.read_text()
    windows = {TOKEN[i:i + 8] for i in range(len(TOKEN) - 7)}
    assert not [w for w in windows if w in sent]
    assert "[redacted secret]" in result.trace_html and "invalid literal for int()" in result.trace_html
    assert evaluate(kc, "answer == token")  # the user's own answer is the real value


def test_a_2mb_reply_does_not_flood_the_frontend(kc):
    """Streamed, shown in the card, in "what the model saw", in the saved trace: each time in part."""
    ok(kc, "%reset -f")
    thought = "Thought: " + "".join(f"line {i} of a very long thought\n" for i in range(70_000))
    ok(kc, "from smol_magic.core.models import ScriptedModel\n"
           f"m = ScriptedModel(['Thought: ' + ''.join(f'line {{i}} of a very long thought\\n' for i in range(70_000))"
           f" + {py('x = 1')!r}, {py('final_answer(x)')!r}])")
    live = LiveCell(kc, "%%agent -m m --reset --cells off\nthink hard")
    result = live.finish()
    assert result.status == "ok", result.text
    traffic = sum(len(json.dumps(m["content"])) for m in result.iopub)
    assert traffic < 1_000_000, f"{traffic:,} bytes sent to the frontend for a {len(thought):,}-character reply"
    assert len(result.trace_html) < 250_000
    assert "characters not shown here; the whole text: %agent memory" in result.trace_html


def test_a_1mb_task_does_not_flood_the_frontend(kc):
    """The header (tooltip and "full task"), "what the model saw" and the saved trace show the task in part."""
    ok(kc, "%reset -f")
    ok(kc, scripted("m", py("final_answer('short')")))
    task = "Summarise these notes:\n" + "".join(f"note {i}: revenue went up\n" for i in range(45_000))
    live = LiveCell(kc, f"%%agent -m m --reset --cells off\n{task}")
    result = live.finish()
    assert result.status == "ok", result.text
    ours = [m for m in result.iopub if m["msg_type"] != "execute_input"]  # the kernel echoes the cell itself
    traffic = sum(len(json.dumps(m["content"])) for m in ours)
    assert traffic < 1_000_000, f"{traffic:,} bytes sent to the frontend for a {len(task):,}-character task"
    assert len(result.trace_html) < 250_000
    assert "characters not shown here; the whole text: %agent memory" in result.trace_html
    assert "note 44999" in result.trace_html  # head and tail


def test_an_answer_whose_repr_raises_is_shown_stored_and_exported(kc, tmp_path):
    """A user's class with a broken ``__repr__`` as the final answer: the run ends done and says so in one line,
    with no traceback in the cell and no false "runs cannot be saved"; the record and the export keep it."""
    ok(kc, "%reset -f")
    ok(kc, scripted("m", py("class Bad:\n    def __repr__(self):\n        raise RuntimeError('boom')\n"
                            "final_answer(Bad())")))
    result = LiveCell(kc, "%%agent -m m -o answer --reset --cells off\nmake a Bad").finish()
    assert result.status == "ok", result.text
    assert not [o for o in result.outputs if o["output_type"] == "error"], result.text
    assert "cannot be saved" not in result.text and "RuntimeError: boom" not in result.text
    assert "<Bad: repr failed: RuntimeError>" in visible(result.trace_html)
    assert evaluate(kc, "type(answer).__name__") == "Bad"  # the user's own answer is the real object
    runs = ok(kc, "%agent runs").text
    assert [line for line in runs.splitlines() if "make a Bad" in line and "done" in line], runs
    assert "repr failed" in ok(kc, "%agent memory").text
    ok(kc, f"%agent export {tmp_path / 'bad.ipynb'}")
    assert "<Bad: repr failed: RuntimeError>" in (tmp_path / "bad.ipynb").read_text()
