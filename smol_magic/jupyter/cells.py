"""The cells comm: each action that ran becomes a real notebook cell, through the labextension."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from comm import create_comm

from ..core.events import Renderer
from ..core.memory import ActionStep, MemoryStep, RunResult
from ..core.outputs import json_safe
from ..export.notebook import cell_metadata, cell_outputs
from .remote import cell as remote_cell

POLL = 0.005  # seconds between looks for the extension's answers (a loop wake-up costs microseconds)


class CellWriter:
    """Puts each action that ran into the notebook as a real code cell, through the labextension.

    The kernel opens a ``smol_magic`` comm; the extension answers ``hello``.
    Silence (VS Code, Colab, classic Notebook, headless) means no extension:
    the writer says so once and does nothing after that.
    """

    def __init__(self, shell: Any):
        self.shell = shell
        self.comm: Any = None
        self.available: bool | None = None  # unknown until the first run asks
        self.replies: list[dict[str, Any]] = []
        self.agent_cell_id: str | None = None
        self.run_id = ""
        self.pending: list[dict[str, Any]] = []
        self.unanswered: set[int] = set()  # steps sent this run whose insert the extension has not answered
        self.on_inserted: Callable[[int, str], None] | None = None  # told (step, cell id) per inserted cell

    async def connect(self, timeout: float = 2.0) -> bool:
        """Open a fresh comm for this run and wait for the extension's hello.

        Fresh each run: after a page reload the frontend no longer knows an
        older comm, and what is sent on it would be silently dropped.
        """
        if self.available is False:
            return False
        if self.comm is not None:
            self.comm.close()
            self.comm = None
        hello: list[dict[str, Any]] = []
        closed: list[bool] = []
        self.comm = create_comm(target_name="smol_magic", data={"version": 1})
        self.comm.on_msg(lambda msg: self._on_msg(msg, hello))
        self.comm.on_close(lambda msg: closed.append(True))
        waited = 0.0
        while not hello and not closed and waited < timeout:
            await asyncio.sleep(POLL)  # short: the first model request of the run waits for this answer
            waited += POLL
        self.available = bool(hello)
        if not self.available:
            self.comm = None
        return self.available

    def _on_msg(self, msg: dict[str, Any], hello: list[dict[str, Any]]) -> None:
        data = msg.get("content", {}).get("data", {})
        if data.get("type") == "hello":
            hello.append(data)
            return
        self.replies.append(data)
        step = data.get("step")
        if data.get("type") in ("inserted", "error") and step in self.unanswered:
            self.unanswered.discard(step)
            if data["type"] == "inserted" and self.on_inserted is not None:
                self.on_inserted(step, data.get("cell_id", ""))

    def begin_run(self, agent_cell_id: str | None, run_id: str) -> None:
        self.agent_cell_id, self.run_id, self.pending = agent_cell_id, run_id, []
        self.unanswered, self.on_inserted = set(), None
        if self.comm is not None and agent_cell_id:
            self.comm.send({"type": "begin_run", "agent_cell_id": agent_cell_id, "run_id": run_id})

    def add(self, step: ActionStep, model_id: str, live: bool = True, header: str = "") -> None:
        """Queue a cell for an action that ran; send it now when ``live``. ``header``: a first line
        (``%%executor isolated``) that runs the cell where the action ran."""
        if not step.ran or step.code is None:
            return  # skipped or refused actions do not become cells
        message = {
            "type": "insert", "agent_cell_id": self.agent_cell_id, "run_id": self.run_id,
            "step": step.step_number, "source": header + step.code, "outputs": json_safe(cell_outputs(step)),
            "metadata": cell_metadata(step, run_id=self.run_id, model=model_id),
        }
        self.pending.append(message)
        if live:
            self.flush()

    def flush(self) -> None:
        if self.comm is None or not self.agent_cell_id:
            return
        for message in self.pending:
            self.comm.send(message)
            self.unanswered.add(message["step"])
        self.pending = []

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait (briefly) until the extension has answered every cell sent: the trace then knows which
        steps' outputs are in cells before it is frozen into the static trace."""
        waited = 0.0
        while self.unanswered and self.comm is not None and waited < timeout:
            await asyncio.sleep(0.01)
            waited += 0.01


class CellsRenderer(Renderer):
    """Sends each action that ran to the notebook as a cell: as it finishes, or all at the end."""

    def __init__(self, writer: CellWriter, live: bool):
        self.writer, self.live = writer, live
        self.model_id = ""
        self.header = ""

    def run_started(self, agent: Any, task: str) -> None:
        self.model_id = getattr(agent.model, "model_id", "")
        link = getattr(agent.executor, "link", None)  # a RemoteExecutor's: the kernel the actions run in
        self.header = remote_cell.header(link.name) if link is not None else ""

    def step_finished(self, step: MemoryStep) -> None:
        if isinstance(step, ActionStep):
            self.writer.add(step, self.model_id, live=self.live, header=self.header)

    def run_finished(self, result: RunResult) -> None:
        self.writer.flush()
