"""Drive a real ipykernel through jupyter_client: start, run a cell, read its outputs, click its widgets.

Used by tests/test_kernel.py, tests/test_approval_kernel.py (through tests/kernel_fixtures.py)
and bench/ui.py.
Everything here talks to the kernel over ZMQ exactly as JupyterLab does;
nothing reaches into the kernel process.

A cell's outputs are rebuilt from iopub the way a notebook frontend does:
``display_data`` appends an output, ``update_display_data`` replaces the data
of the outputs with the same display_id, ``clear_output`` clears. Widgets are
tracked from ``comm_open`` / ``comm_msg`` (update, echo_update) / ``comm_close``.
So a test reads what a user would see: during a run, the live widget trace;
after it, the static trace that replaced it.
"""

from __future__ import annotations

import ast
import contextlib
import html
import os
import queue
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from jupyter_client.manager import start_new_kernel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_TAG = re.compile(r"<[^>]+>")


def html_text(markup: str) -> str:
    """The text a person reads in an HTML fragment: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", markup))


def output_text(output: dict[str, Any]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        return output["text"]
    if kind == "error":
        return f"{output['ename']}: {output['evalue']}\n"
    return output.get("data", {}).get("text/plain", "") + "\n"


class CellWatch:
    """Everything one cell showed, rebuilt from its iopub messages in order.

    ``parents`` holds the execute_request's msg_id plus those of the widget
    messages sent for this cell (a click's handler publishes under the click).
    """

    def __init__(self, msg_id: str):
        self.msg_id = msg_id
        self.parents = {msg_id}
        self.messages: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.widgets: dict[str, dict[str, Any]] = {}  # comm_id -> {"state", "closed", "opened_at"}
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ename: str | None = None
        self.evalue: str | None = None
        self.idle = False
        self._clear_pending = False

    def belongs(self, msg: dict[str, Any]) -> bool:
        return msg.get("parent_header", {}).get("msg_id") in self.parents

    def feed(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("stream", "display_data", "execute_result", "error") and self._clear_pending:
            self.outputs.clear()
            self._clear_pending = False
        if kind == "stream":
            (self.stdout if content["name"] == "stdout" else self.stderr).append(content["text"])
            last = self.outputs[-1] if self.outputs else None
            if last is not None and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["text"] += content["text"]
            else:
                self.outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
        elif kind in ("display_data", "execute_result"):
            self.outputs.append({
                "output_type": kind, "data": dict(content["data"]), "metadata": dict(content.get("metadata") or {}),
                "display_id": (content.get("transient") or {}).get("display_id"),
            })
        elif kind == "update_display_data":
            display_id = (content.get("transient") or {}).get("display_id")
            for output in self.outputs:
                if display_id is not None and output.get("display_id") == display_id:
                    output["data"] = dict(content["data"])
                    output["metadata"] = dict(content.get("metadata") or {})
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
        elif kind == "error":
            self.ename, self.evalue = content["ename"], content["evalue"]
            self.outputs.append({"output_type": "error", "ename": content["ename"], "evalue": content["evalue"],
                                 "traceback": content.get("traceback", [])})
        elif kind == "comm_open":
            state = dict((content.get("data") or {}).get("state") or {})
            self.widgets[content["comm_id"]] = {"state": state, "closed": False, "opened_at": time.monotonic()}
        elif kind == "comm_msg":
            data = content.get("data") or {}
            widget = self.widgets.get(content["comm_id"])
            if widget is not None and data.get("method") in ("update", "echo_update"):
                widget["state"].update(data.get("state") or {})
        elif kind == "comm_close":
            widget = self.widgets.get(content["comm_id"])
            if widget is not None:
                widget["closed"] = True
        elif kind == "status" and content["execution_state"] == "idle" and \
                msg.get("parent_header", {}).get("msg_id") == self.msg_id:
            self.idle = True

    # -- what a person sees ---------------------------------------------------

    @property
    def text(self) -> str:
        """The text of the cell's outputs as they stand now (after display updates)."""
        return "".join(output_text(o) for o in self.outputs)

    def widget_text(self, include_closed: bool = False) -> str:
        """The words on the live widgets (those still open, unless ``include_closed``): HTML, titles, labels."""
        parts = []
        for widget in self.widgets.values():
            if widget["closed"] and not include_closed:
                continue
            state = widget["state"]
            model = state.get("_model_name", "")
            if model == "HTMLModel":
                parts.append(html_text(state.get("value") or ""))
            elif model == "AccordionModel":
                parts.extend(state.get("titles") or ())
            elif model == "ButtonModel":
                parts.append(state.get("description") or "")
        return "\n".join(parts)

    def shown(self) -> str:
        return self.text + "\n" + self.widget_text()

    def buttons(self, description: str) -> list[tuple[str, dict[str, Any]]]:
        """Open buttons with this label, oldest first: (comm_id, state)."""
        return [
            (comm_id, w["state"]) for comm_id, w in self.widgets.items()
            if not w["closed"] and w["state"].get("_model_name") == "ButtonModel"
            and w["state"].get("description") == description
        ]

    def enabled_button(self, description: str) -> str | None:
        """The newest open, enabled button with this label."""
        found = [comm_id for comm_id, state in self.buttons(description) if not state.get("disabled")]
        return found[-1] if found else None

    def models(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(c, w["state"]) for c, w in self.widgets.items() if w["state"].get("_model_name") == name]

    def ever_opened(self, name: str, description: str | None = None) -> list[dict[str, Any]]:
        """Every widget of this model (and label) the cell ever opened, closed or not."""
        return [w for w in self.widgets.values() if w["state"].get("_model_name") == name
                and (description is None or w["state"].get("description") == description)]


@dataclass
class CellResult:
    status: str  # the shell reply's status: ok | error | aborted
    text: str  # the text of the final outputs: streams, text/plain of results and displays (after updates), errors
    ename: str | None  # the error name (from an iopub error message, else from the reply)
    evalue: str | None = None
    stdout: str = ""
    stderr: str = ""
    reply: dict[str, Any] = field(default_factory=dict)
    iopub: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0  # from sending the request to the shell reply
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the cell's outputs, as a notebook keeps them
    watch: CellWatch | None = None

    def __iter__(self):  # status, text, ename = run(...)
        return iter((self.status, self.text, self.ename))

    def traces(self) -> list[dict[str, Any]]:
        """The static agent traces among the outputs: displays whose HTML is a smol-magic-trace."""
        return [o for o in self.outputs if o["output_type"] == "display_data"
                and "smol-magic-trace" in o["data"].get("text/html", "")]

    @property
    def trace(self) -> str:
        """The text trace of the run(s), as the static display's text/plain keeps it."""
        return "".join(o["data"].get("text/plain", "") for o in self.traces())

    @property
    def trace_html(self) -> str:
        return "".join(o["data"].get("text/html", "") for o in self.traces())


def kernel_env() -> dict[str, str]:
    """The test process's environment, minus anything that would choose a model for the kernel."""
    env = {k: v for k, v in os.environ.items() if k != "SMOL_MAGIC_MODEL"}
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env


def start_kernel(load_extension: bool = True, timeout: float = 60):
    """A fresh python3 kernel (the installed ipykernel), with smol_magic loaded."""
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=timeout, env=kernel_env())
    if load_extension:
        result = run(kc, "%load_ext smol_magic", timeout=30)
        assert result.status == "ok", result.text
    return km, kc


def stop_kernel(km, kc) -> None:
    try:
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)


@contextlib.contextmanager
def running_kernel(load_extension: bool = True, timeout: float = 60):
    """``start_kernel`` for a ``with`` block: (km, kc), stopped at its end."""
    km, kc = start_kernel(load_extension, timeout)
    try:
        yield km, kc
    finally:
        stop_kernel(km, kc)


def send(kc, code: str, cell_id: str | None = None, **kwargs: Any) -> str:
    """Send an execute_request without waiting; returns its msg_id.

    With ``cell_id`` it carries the cell's id in its metadata, as JupyterLab, Notebook 7 and
    VS Code send it: smol-magic then knows a person is at a notebook (headless runners send none).
    """
    if cell_id is None:
        return kc.execute(code, **kwargs)
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True, **kwargs}
    msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def send_comm(kc, comm_id: str, data: dict[str, Any]) -> str:
    """A comm_msg on the shell channel, as a frontend's widget manager sends it; returns its msg_id."""
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def _read(kc, watch: CellWatch, deadline: float, what: str) -> dict[str, Any] | None:
    """Feed the next iopub message of this cell to ``watch``; None if nothing arrived within 0.5 s."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"timed out waiting for {what}; the cell shows: {watch.shown()[-2000:]!r}")
    try:
        msg = kc.get_iopub_msg(timeout=min(remaining, 0.5))
    except queue.Empty:
        return None
    if watch.belongs(msg):
        watch.feed(msg)
        return msg
    return None


def wait_until(kc, watch: CellWatch, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Read the cell's messages until ``predicate()`` is true; fails if the cell ends first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if watch.idle:
            raise AssertionError(f"the cell ended before {what}; it shows: {watch.shown()[-2000:]!r}")
        _read(kc, watch, deadline, what)


def wait_for_output(kc, msg_id: str, needle: str, timeout: float = 15) -> CellWatch:
    """Read the cell's iopub messages until it shows ``needle``: printed, displayed, or on its live widget.

    Returns the watch, to hand to ``collect(prior=...)`` so no message is lost.
    """
    watch = CellWatch(msg_id)
    wait_until(kc, watch, lambda: needle in watch.shown(), timeout, f"{needle!r} in the output")
    return watch


def finish(kc, watch: CellWatch, deadline: float, started: float) -> CellResult:
    """Read until the cell is idle, then its shell reply."""
    while not watch.idle:
        _read(kc, watch, deadline, "the cell to finish")
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no shell reply for the cell")
        try:
            reply = kc.get_shell_msg(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if reply.get("parent_header", {}).get("msg_id") == watch.msg_id:
            break
    elapsed = time.monotonic() - started
    content = reply["content"]
    ename, evalue = watch.ename, watch.evalue
    if ename is None and content.get("status") == "error":
        ename, evalue = content.get("ename"), content.get("evalue")
    return CellResult(
        status=content["status"], text=watch.text, ename=ename, evalue=evalue,
        stdout="".join(watch.stdout), stderr="".join(watch.stderr), reply=content,
        iopub=list(watch.messages), elapsed=elapsed, outputs=watch.outputs, watch=watch,
    )


def collect(kc, msg_id: str, timeout: float = 30, started: float | None = None,
            prior: CellWatch | None = None) -> CellResult:
    """Gather the iopub messages of ``msg_id`` until the kernel is idle, then its shell reply."""
    started = time.monotonic() if started is None else started
    watch = prior if prior is not None else CellWatch(msg_id)
    assert watch.msg_id == msg_id
    return finish(kc, watch, started + timeout, started)


def run(kc, code: str, timeout: float = 30, **kwargs: Any) -> CellResult:
    """Execute one cell and wait for it: (status, outputs_text, error_ename) and more."""
    started = time.monotonic()
    return collect(kc, send(kc, code, **kwargs), timeout=timeout, started=started)


def interrupt(km, finish: Callable[[], CellResult], within: float) -> CellResult:
    """Interrupt the kernel; the cell, which ``finish()`` waits for, must end with a KeyboardInterrupt
    less than ``within`` seconds later. Returns its result."""
    interrupted_at = time.monotonic()
    km.interrupt_kernel()
    result = finish()
    after = time.monotonic() - interrupted_at
    assert after < within, f"the cell took {after:.2f} s to end after the interrupt"
    assert result.status == "error" and result.ename == "KeyboardInterrupt", (result.status, result.ename,
                                                                                result.evalue)
    return result


def ok(kc, code: str, timeout: float = 30) -> CellResult:
    """Run one cell that must succeed."""
    result = run(kc, code, timeout=timeout)
    assert result.status == "ok", f"cell failed: {result.ename}: {result.evalue}\n{result.text}"
    return result


def py(code: str, thought: str = "") -> str:
    """A model reply: an optional thought, then one ```python block."""
    head = f"Thought: {thought}\n" if thought else ""
    return f"{head}```python\n{code}\n```"


def scripted(name: str, *replies: str) -> str:
    """Kernel code binding ``name`` to a ScriptedModel with these raw replies."""
    return f"from smol_magic.core.models import ScriptedModel\n{name} = ScriptedModel({list(replies)!r})"


def started_marker(kc, folder):
    """A function ``started()`` in the kernel that leaves a file: the test waits for it, not for a guess."""
    path = folder / "started"
    ok(kc, f"def started():\n    open({str(path)!r}, 'w').close()")
    return path


def wait_for_file(path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def evaluate(kc, expr: str, timeout: float = 15) -> Any:
    """The value of ``expr`` in the kernel (a Python literal), read via user_expressions.

    Silent: it neither adds to ``In`` nor changes the execution count.
    """
    result = run(kc, "", timeout=timeout, silent=True, store_history=False, user_expressions={"v": expr})
    value = result.reply["user_expressions"]["v"]
    if value["status"] != "ok":
        raise AssertionError(f"{expr!r} failed in the kernel: {value.get('ename')}: {value.get('evalue')}")
    return ast.literal_eval(value["data"]["text/plain"])


class LiveCell:
    """A running cell whose widgets the test clicks, as a person in JupyterLab would."""

    def __init__(self, kc, code: str, **kwargs: Any):
        self.kc = kc
        self.started = time.monotonic()
        self.watch = CellWatch(send(kc, code, cell_id=f"cell-{uuid.uuid4()}", **kwargs))
        self.result: CellResult | None = None
        self.clicked: list[str] = []  # comm ids of the buttons clicked, in order
        self.cards_seen: set[str] = set()  # approval cards (Accordion comm ids) already returned by wait_for_card

    @property
    def done(self) -> bool:
        return self.result is not None

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 15, what: str = "the condition") -> Any:
        return wait_until(self.kc, self.watch, predicate, timeout, what)

    def wait_for_button(self, description: str, timeout: float = 15) -> str:
        """The comm id of the newest enabled button with this label, once it is shown."""
        return self.wait_until(lambda: self.watch.enabled_button(description), timeout,
                               f"an enabled {description!r} button")

    def wait_for_card(self, button: str = "Run", timeout: float = 15) -> str:
        """Wait for a *new* approval card and return the comm id of its ``button``.

        A card is new when the newest step (Accordion) has not been returned before and its title says it
        waits for you; its buttons are the ones opened after it. So an earlier card's button is never
        returned, even when the message disabling it has not arrived yet.
        """
        def ready() -> str | None:
            ids = list(self.watch.widgets)
            cards = [c for c in ids if self.watch.widgets[c]["state"].get("_model_name") == "AccordionModel"]
            if not cards or cards[-1] in self.cards_seen:
                return None
            if not (self.watch.widgets[cards[-1]]["state"].get("titles") or [""])[0].endswith("waiting for you"):
                return None
            mine = [c for c in ids[ids.index(cards[-1]):] if not self.watch.widgets[c]["closed"]
                    and self.watch.widgets[c]["state"].get("_model_name") == "ButtonModel"
                    and self.watch.widgets[c]["state"].get("description") == button
                    and not self.watch.widgets[c]["state"].get("disabled")]
            if not mine:
                return None
            self.cards_seen.add(cards[-1])
            return mine[-1]

        return self.wait_until(ready, timeout, f"a new approval card with a {button!r} button")

    def drain(self, seconds: float) -> None:
        """Keep reading the cell's messages for a while (nothing is expected to happen)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.watch.idle:
            try:
                _read(self.kc, self.watch, deadline, "nothing")
            except TimeoutError:
                return

    def _send(self, comm_id: str, data: dict[str, Any]) -> None:
        msg_id = send_comm(self.kc, comm_id, data)
        self.watch.parents.add(msg_id)  # what the handler publishes belongs to this cell

    def click(self, comm_id: str) -> float:
        """Click a button; returns the wall-clock time the click was sent (``time.time()``)."""
        self.clicked.append(comm_id)
        sent = time.time()
        self._send(comm_id, {"method": "custom", "content": {"event": "click"}})
        return sent

    def set_value(self, comm_id: str, value: Any) -> None:
        """Type into a Text or Textarea: the update a frontend sends when its value changes."""
        self._send(comm_id, {"method": "update", "state": {"value": value}, "buffer_paths": []})

    def finish(self, timeout: float = 30) -> CellResult:
        if self.result is None:
            self.result = finish(self.kc, self.watch, time.monotonic() + timeout, self.started)
        return self.result
