"""The live kernel as an MCP server (``%agent serve``): outside agents work here under the notebook's guard.

Streamable HTTP at ``http://127.0.0.1:PORT/mcp``, served by uvicorn on a background thread, behind
a bearer token. A request arrives on that thread; everything it does runs on the kernel's own event
loop, on the main thread, as the notebook's agent runs: ``run_code`` is one agent action of a
serving session (guard, approval card, execution, undo record, live trace under the cell that
started serving), so what an outside agent does is judged and shown as the built-in agent's is.
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations

from .. import guard
from ..context import namespace
from ..core.agents import AgentStopped, CodeAgent
from ..core.approval import Action, Approver, Decision
from ..core.memory import RAN, ActionStep, RunResult, Timing
from ..core.models import BaseModel
from ..safety import redact

START_SECONDS = 10.0  # how long the server may take to start listening
APPROVAL_SECONDS = 300.0  # how long an outside agent's action waits for a click before it is refused
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
INSTRUCTIONS = (
    "A live Jupyter notebook. list_variables and describe_variable tell you what exists (summaries, not data); "
    "run_code runs Python in the notebook's namespace behind its guard: risky code waits for the person at the "
    "notebook to approve it, and forbidden code never runs. Each result says what happened."
)


class OutsideClient(BaseModel):
    """The 'model' of a serving session: its actions come from an MCP client, not from a model."""

    model_id = "mcp client"

    async def generate_stream(self, messages: Any, stop_sequences: Any = None, **kwargs: Any):  # pragma: no cover
        raise RuntimeError("a serving session's actions come from its MCP client; nothing asks it for a reply")
        yield


class TimedApprover:
    """Waits for the person for at most ``seconds``; then the action is refused, with the reason."""

    def __init__(self, inner: Approver, seconds: float, on_timeout: Callable[[], None]):
        self.inner, self.seconds, self.on_timeout = inner, seconds, on_timeout

    async def approve(self, step: ActionStep) -> Decision:
        try:
            return await asyncio.wait_for(self.inner.approve(step), self.seconds)
        except asyncio.TimeoutError:
            self.on_timeout()
            return Decision(Action.SKIP, refused=True,
                            reason=f"no one at the notebook answered its approval card within {self.seconds:g} s")


class BearerToken:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer <token>`` gets 401 and reaches nothing."""

    def __init__(self, app: Any, token: str, is_open: Callable[[], bool] = lambda: True):
        self.app, self.expected, self.is_open = app, f"Bearer {token}".encode(), is_open

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self.is_open():  # stopped: shutting down, new requests reach nothing
            from starlette.responses import JSONResponse

            await JSONResponse({"error": "the notebook stopped serving"}, status_code=503)(scope, receive, send)
            return
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                from starlette.responses import JSONResponse

                response = JSONResponse({"error": "unauthorized: send the header 'Authorization: Bearer <token>' "
                                                  "with the token %agent serve printed"},
                                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class Serving:
    """One serving session: its server thread, its agent (sharing the notebook agent's state) and its trace."""

    magics: Any
    loop: asyncio.AbstractEventLoop
    port: int
    token: str
    protect: set[str] = field(default_factory=set)
    approval_seconds: float = APPROVAL_SECONDS
    approve_mode: str = "risky"
    agent: CodeAgent | None = None
    run: RunResult | None = None
    trace: Any = None
    _server: Any = None
    _thread: threading.Thread | None = None
    _lock: asyncio.Lock | None = None
    cell_id: str | None = None  # the %agent serve cell: the trace is under it, the actions' cells below it
    writer: Any = None  # the session's own cell writer (a %%agent run meanwhile has the notebook's)
    _cells_asked: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    # -- starting and stopping --------------------------------------------------

    def start(self, sock: socket.socket, mode: str, cell_id: str | None) -> None:
        """Make the session's agent and trace (shown under this cell), then serve on ``sock``."""
        import uvicorn

        from .kernel_executor import KernelExecutor

        # Requests wait for the kernel's loop, which this cell holds: none is handled before the session is ready.
        self._lock = asyncio.Lock()
        app = BearerToken(build_app(self), self.token, lambda: self.run is None or self.run.timing.end_time is None)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                     timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="smol-magic-mcp", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError("the MCP server did not start; see the kernel's log (the terminal running "
                                   "Jupyter)")
            time.sleep(0.01)
        magics = self.magics
        if magics.current is None:  # no %%agent run yet: the notebook's agent starts here, with its runs and undo
            magics.current = CodeAgent(model=OutsideClient(), executor=KernelExecutor(magics.shell))
        notebook = magics.current
        self.agent = CodeAgent(model=OutsideClient(), executor=notebook.executor)
        self.run = RunResult(task=f"actions of outside agents through MCP at {self.url}", model_id="mcp client",
                             started_at=datetime.now().isoformat(timespec="seconds"),
                             variables_before=self.agent._variables(), timing=Timing(time.time()))
        self.agent.runs.append(self.run)
        notebook.runs.append(self.run)  # %agent undo / status / export see it as a run of this notebook
        magics.run_cells.append(cell_id)
        self.cell_id = cell_id
        self.approve_mode = mode
        trace, approver = magics._ui(mode, True, cell_id)
        trace.typed_task = f"MCP server at {self.url}: outside agents' actions"
        if hasattr(trace, "stop_button"):  # the trace's Stop ends serving
            trace.stop_button.tooltip = "Stop serving: end the MCP server"
            trace.stop = self.stop
        self.trace = trace
        self.agent.renderer = trace
        self.agent.approver = TimedApprover(approver, self.approval_seconds, self._close_card)
        trace.run_started(self.agent, self.run.task)
        atexit.register(self._at_exit)

    def stop(self) -> None:
        """End the server and close the trace; a request waiting for a click is refused; the run stays for undo."""
        if self._server is not None:
            self._server.should_exit = True
        pending = getattr(self.trace, "pending", None)  # a card still waiting: its caller is told, not left hanging
        if pending is not None and not pending.done():
            pending.set_result(Decision(Action.SKIP, refused=True, reason="the notebook stopped serving"))
        # No join: requests in flight finish on the kernel's loop, which must turn for that (uvicorn waits 2 s).
        if self.run is not None and self.run.timing.end_time is None:
            self.run.timing.end_time = time.time()
            if self.trace is not None:
                self.trace.run_finished(self.run)
        if getattr(self.magics, "serving", None) is self:
            self.magics.serving = None
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        """The kernel ends: the server goes with it (no trace to update any more)."""
        if self._server is not None:
            self._server.should_exit = True

    def _close_card(self, trace: Any = None) -> None:
        close = getattr(trace or self.trace, "_close_approval", None)
        if close is not None:
            close(f"No answer within {self.approval_seconds:g} s: the outside agent was told it was refused.")

    # -- what the tools do, on the kernel's loop -----------------------------------

    async def on_kernel(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``fn()`` on the kernel's event loop (main thread), from the server's thread."""
        future = asyncio.run_coroutine_threadsafe(fn(), self.loop)
        return await asyncio.wrap_future(future)

    def _sync(self) -> CodeAgent:
        """The serving agent judges as the notebook's agent does now: its variables, names it made and
        protected names; the policy of the notebook's settings (never a cell's --no-guard)."""
        magics, agent = self.magics, self.agent
        notebook = magics.current or agent
        agent.executor = notebook.executor
        agent.agent_made = notebook.agent_made
        imports = guard.DEFAULT_AUTHORIZED_IMPORTS + [m for m in magics.authorized_imports
                                                      if not guard.module_forbidden(m)]
        agent.policy = guard.Policy(authorized_imports=imports, allow=set(magics.allow), enabled=True)
        agent.protected = set(magics.protect) | set(getattr(notebook, "protected", ())) | self.protect
        agent.timeout = magics.timeout
        agent.max_observation_chars = magics.max_observation_chars
        return agent

    async def variables(self) -> str:
        agent = self._sync()
        agent._find_secrets()
        ns, hidden = agent.executor.namespace, agent.executor.hidden()
        text = namespace.summarize(ns, hidden, self.magics.namespace_budget)
        return redact.redact_secrets(text or "The notebook has no variables yet.")

    async def describe(self, name: str) -> str:
        agent = self._sync()
        agent._find_secrets()
        ns, hidden = agent.executor.namespace, agent.executor.hidden()
        variables = namespace.user_variables(ns, hidden)
        if name not in variables:
            close = [n for n in variables if n.lower() == name.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"There is no variable {name!r} in the notebook{hint}. list_variables names them."
        return redact.redact_secrets(namespace.named_description(name, variables[name]))

    async def run_code(self, code: str) -> ActionStep:
        """One action of the session: judged, approved, run and observed as a model's action is."""
        async with self._lock:
            agent, run = self._sync(), self.run
            if run.timing.end_time is not None:
                raise Refusal("the notebook stopped serving")
            self._check_idle()
            agent._find_secrets()
            agent._skipped_blocks, agent._stop_requested = 0, False
            number = len(run.action_steps) + 1
            step = ActionStep(step_number=number, start_time=time.time())
            await self._connect_cells()
            agent.renderer.step_started(number)
            try:
                await agent.run_action(step, code)
            except AgentStopped:
                step.observation = "The person at the notebook clicked Stop: this code did not run."
            except KeyboardInterrupt:  # Interrupt while the code ran: the kernel lives on
                step.error = step.error or "interrupted by the user"
                step.observation = (step.observation + "\n" if step.observation else "") + \
                    "The person at the notebook interrupted this code."
            finally:
                agent._keep(run, step)
            if self.writer is not None:
                await self.writer.settle()  # the trace knows the step's cell before the answer goes out
            return step

    async def _connect_cells(self) -> None:
        """Once, at the first action: actions that run become cells below the serving cell, as an agent's steps
        do, through the labextension (a writer of the session's own; no extension: the trace alone)."""
        from ..core.events import Tee
        from .cells import CellsRenderer, CellWriter

        if self._cells_asked:
            return
        self._cells_asked = True
        if self.magics.cells == "off" or self.cell_id is None or not hasattr(self.trace, "cell_inserted"):
            return
        writer = CellWriter(self.magics.shell)
        if not await writer.connect():
            return
        number = self.magics.current.runs.index(self.run) + 1 if self.run in self.magics.current.runs else 1
        writer.begin_run(self.cell_id, f"run-{number}")
        writer.on_inserted = self.trace.cell_inserted
        cells = CellsRenderer(writer, live=True)
        cells.model_id = self.run.model_id
        self.writer, self.agent.renderer = writer, Tee(self.trace, cells)


    def _check_idle(self) -> None:
        """An outside action never interleaves with a run of the notebook's own agent."""
        notebook = self.magics.current
        if notebook is not None and any(r.timing.end_time is None for r in notebook.runs if r is not self.run):
            raise Refusal("the notebook's agent is running a task right now; try again when it has finished")

    async def run_agent(self, task: str) -> str:
        """A %%agent run of the notebook's agent, started from outside: its trace is a card of the serving trace."""
        from ..core.approval import ModeApprover

        async with self._lock:
            self._check_idle()
            magics, trace = self.magics, self.trace
            person = getattr(getattr(self.agent.approver, "inner", None), "person", None) is not None
            if not hasattr(trace, "managed_run"):
                nested = trace
            else:
                trace._new_card(f"Agent run from outside · {task[:60]}")
                nested = trace.managed_run("agent", task)
            approver = TimedApprover(ModeApprover(self.approve_mode, nested if person else None),
                                     self.approval_seconds, lambda: self._close_card(nested))
            try:
                result = await magics.run_async("--cells off", task, ui=(nested, approver))
            except Exception as exc:  # noqa: BLE001 - a usage error (no model ...) is the outside agent's answer
                raise Refusal(f"the run did not start: {exc}") from None
            number = len(magics.current.runs)
            if len(magics.run_cells) == number:  # its cell is the serving cell (%agent cells puts its cells there)
                magics.run_cells[-1] = self.cell_id
            answer = namespace.headline(result.output) if result.output is not None else "(none)"
            return redact.redact_secrets(
                f"Run {number} of this notebook: {result.state} after {len(result.action_steps)} steps. "
                f"Final answer: {answer}\n(get_run({number}) shows its steps)")

    def _pick(self, number: int) -> tuple[int, RunResult]:
        runs = self.magics.current.runs if self.magics.current is not None else []
        if not runs:
            raise Refusal("this notebook has no agent runs yet")
        number = number or len(runs)
        if not 1 <= number <= len(runs):
            raise Refusal(f"there is no run {number}: this notebook has runs 1 to {len(runs)}")
        return number, runs[number - 1]

    async def runs_text(self) -> str:
        runs = self.magics.current.runs if self.magics.current is not None else []
        lines = [f"run {n}: {r.state if r.timing.end_time is not None else 'running'} · "
                 f"{len(r.action_steps)} steps · {r.model_id} · {r.task[:80]!r}" for n, r in enumerate(runs, 1)]
        return redact.redact_secrets("\n".join(lines) or "This notebook has no agent runs yet.")

    async def run_text(self, number: int) -> str:
        """A run's steps: each action's code, how it was decided, and its observation."""
        number, run = self._pick(number)
        lines = [f"Run {number} · {run.state} · {run.model_id} · task: {run.task}"]
        for step in run.action_steps:
            lines.append(f"\n## step {step.step_number} · {step.approval or 'not decided'}")
            if step.code:
                lines.append("```python\n" + step.code + "\n```")
            lines.append(step.observation or step.error or "")
        if run.output is not None:
            lines.append(f"\nFinal answer: {namespace.headline(run.output)}")
        return redact.redact_secrets("\n".join(lines))

    async def export(self, number: int, path: str) -> str:
        """Write a run as a notebook (.ipynb) or script (.py) in the notebook's folder; never over a file."""
        from pathlib import Path

        number, _ = self._pick(number)
        if not path.endswith((".ipynb", ".py")):
            raise Refusal("the path must end in .ipynb (a notebook) or .py (a script)")
        folder = Path.cwd().resolve()
        target = (folder / path).resolve()
        if folder not in target.parents:
            raise Refusal(f"the path must be inside the notebook's folder ({folder}), e.g. 'run.ipynb'")
        if target.exists():
            raise Refusal(f"{target.name} exists already; choose a new name (nothing is overwritten)")
        written = self.magics.current.to_notebook(str(target), run=number - 1)
        return f"Exported run {number} to {written}"


class Refusal(ToolError):
    """What a tool refuses, in words for the outside agent (an error result, not a crash)."""


def named_result(step: ActionStep) -> Any:
    """The tool result of an action: the observation as text, and the images it displayed."""
    content: list[Any] = [TextContent(text=step.observation or step.error or "(nothing happened)")]
    for output in step.outputs:
        data = output.get("data") or {}
        for mime in IMAGE_TYPES:
            if mime in data:
                image = data[mime]
                image = "".join(image) if isinstance(image, list) else str(image)
                content.append(ImageContent(data=image.replace("\n", ""), mime_type=mime))
                break
    ran = step.approval in RAN
    return CallToolResult(content=content, is_error=not ran or bool(step.error))


def build_app(serving: Serving) -> Any:
    """The MCP server's ASGI app: its tools call into the kernel's loop."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("smol-magic notebook", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def list_variables() -> str:
        """The notebook's variables, each summarised (DataFrame schemas and sizes, not the data)."""
        return await serving.on_kernel(serving.variables)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def describe_variable(name: str) -> str:
        """One variable in more detail: all its columns, index, nulls and a few sample rows."""
        return await serving.on_kernel(lambda: serving.describe(name))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def run_code(code: str) -> CallToolResult:
        """Run Python in the notebook's live namespace, as the notebook's own agent's actions run.

        The guard judges the code first: allowed code runs; risky code (changing the user's data,
        files, network...) waits for the person at the notebook to approve it; forbidden code never
        runs. The result is what the code printed and displayed, its error if any, and which
        variables changed; if it did not run, why.
        """
        step = await serving.on_kernel(lambda: serving.run_code(code))
        return named_result(step)

    @server.tool()
    async def run_agent(task: str) -> str:
        """Give a task to the notebook's own agent (as a %%agent cell would): it works step by step in front of
        the person at the notebook, under the same guard and approval, and its final answer comes back."""
        return await serving.on_kernel(lambda: serving.run_agent(task))

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def get_run(n: int = 0) -> str:
        """Run ``n`` of the notebook's agent (1 = first, 0 = the last): each step's code, decision and result."""
        return await serving.on_kernel(lambda: serving.run_text(n))

    @server.tool()
    async def export_run(n: int, path: str) -> str:
        """Write run ``n`` as a notebook (PATH.ipynb) or script (PATH.py) that re-executes, in the notebook's
        folder (an existing file is never overwritten)."""
        return await serving.on_kernel(lambda: serving.export(n, path))

    @server.resource("notebook://variables", mime_type="text/plain")
    async def variables_resource() -> str:
        """The notebook's variables, summarised."""
        return await serving.on_kernel(serving.variables)

    @server.resource("notebook://variables/{name}", mime_type="text/plain")
    async def variable_resource(name: str) -> str:
        """One variable, described."""
        return await serving.on_kernel(lambda: serving.describe(name))

    @server.resource("notebook://runs", mime_type="text/plain")
    async def runs_resource() -> str:
        """The agent runs of this notebook, one line each."""
        return await serving.on_kernel(serving.runs_text)

    @server.resource("notebook://runs/{n}", mime_type="text/plain")
    async def run_resource(n: str) -> str:
        """One run's steps."""
        return await serving.on_kernel(lambda: serving.run_text(int(n)))

    @server.prompt()
    def analyse_dataframe(name: str) -> str:
        """Analyse a DataFrame of the notebook."""
        return (f"Analyse the DataFrame `{name}` in the live notebook. First call describe_variable(name={name!r}) "
                "to see its columns, types, nulls and sample rows. Then use run_code for each step: summary "
                "statistics, the relationships that matter, and a plot or two (matplotlib; they come back as "
                f"images). Work on a copy (e.g. {name}_2 = {name}.copy()) rather than changing `{name}` itself: "
                "changing the user's data waits for their approval. End with a short written summary of what "
                "you found.")

    return server.streamable_http_app(stateless_http=True, json_response=True, host="127.0.0.1")


def free_socket(port: int | None) -> socket.socket:
    """A listening socket on 127.0.0.1 (a free port when ``port`` is None); OSError if the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port or 0))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def new_token() -> str:
    return secrets.token_urlsafe(32)



def endpoint() -> dict[str, str]:
    """This kernel's MCP endpoint, for the stdio bridge: the running session's, or a new one (headless: what
    the guard asks about is then refused, as no one can click; start ``%agent serve`` in the notebook first
    for approval cards)."""
    from IPython import get_ipython
    from IPython.utils.capture import capture_output

    shell = get_ipython()
    if "AgentMagics" not in shell.magics_manager.registry:
        shell.run_line_magic("load_ext", "smol_magic")
    magics = shell.magics_manager.registry["AgentMagics"]
    if getattr(magics, "serving", None) is None:
        with capture_output():  # the token is handed to the bridge only
            shell.run_line_magic("agent", "serve")
    return {"url": magics.serving.url, "token": magics.serving.token}
