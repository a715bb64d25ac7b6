"""``%%agent`` and ``%agent``: flags, configuration, and one agent per notebook.

A cell starting with ``%%agent`` is rewritten into an awaited coroutine (``async_cell``) that calls
``AgentMagics.run_async``; the subcommands (``%agent show``, ``%agent export`` ...) are in ``commands/``.
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import os
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, observe, validate

from .. import guard
from ..context import namespace
from ..core import costs
from ..core.agents import CodeAgent
from ..core.approval import APPROVE_MODES, ApproveMode, ModeApprover
from ..core.blocking import run_blocking
from ..core.compaction import DEFAULT_COMPACT_AT
from ..core.events import Renderer, Tee
from ..core.memory import RunResult, RunState
from ..core.interop import as_model
from ..core.mcp_client import APPROVAL_MODES as MCP_APPROVAL_MODES
from ..core.mcp_client import MCPError, MCPServers, MCPTool, ServerSpec, identifier, server_spec
from ..core.model_spec import SPEC_HELP, model_from_spec
from ..core.models import BaseModel, Model, ModelError
from ..core.prompts import Rules
from ..core import telemetry
from ..core.stopping import check_timeout
from ..core.tool_calling import ToolCallingAgent
from ..core.tools import Tool
from ..export.replay import RecordingModel, ReplayModel
from ..safety import undo
from ..store import DEFAULT as STORE_DEFAULT
from ..store import ENV as STORE_ENV
from ..ui.text import TextRenderer
from . import commands, history, stale_cells, stored
from .async_cell import rewrite_agent_cell
from .cells import CellsRenderer, CellWriter
from .kernel_executor import KernelExecutor
from .preload import preload_litellm, warm_up
from .remote import cell as remote_cell
from .remote import session as remote
from .remote.gateway import Secret

MINIMUM = {"max_steps": 1, "max_observation_chars": 100, "namespace_budget": 0, "max_tokens": 0}  # validated settings
RULES_FILE = "AGENTS.md"  # project rules, as people write them for coding agents
MAX_RULES_CHARS = 50_000
AGENT_TYPES = {"code": CodeAgent, "tools": ToolCallingAgent}  # --agent / AgentMagics.agent_type


@magics_class
class AgentMagics(Magics):
    """Runs a code-writing LLM agent on this notebook's live variables."""

    model = Unicode(
        help="Model: a litellm id (openai/gpt-4o-mini), hf:org/model, openai-server:MODEL@URL, "
        "transformers:PATH, or the name of a variable holding a Model. Defaults to $SMOL_MAGIC_MODEL.",
    ).tag(config=True)
    max_steps = Integer(20, help="Most actions per run.").tag(config=True)
    approve = Enum(
        [str(mode) for mode in APPROVE_MODES], str(ApproveMode.RISKY), help="Which actions wait for a person's click."
    ).tag(config=True)
    timeout = Float(60.0, help="Seconds an action may run before it is stopped.").tag(config=True)
    model_timeout = Float(
        120.0, help="Seconds one model reply may take, retries included, before the run ends with an error. "
        "Applies to models named by id; a Model object keeps its own timeout unless --model-timeout is given.",
    ).tag(config=True)
    authorized_imports = List(Unicode(), help="Modules the agent may import, besides the defaults.").tag(
        config=True
    )
    max_observation_chars = Integer(10_000, help="Longest observation sent back to the model.").tag(config=True)
    namespace_budget = Integer(
        namespace.DEFAULT_BUDGET_TOKENS,
        help="Tokens (estimated as characters / 4) the prompt's summary of the notebook's variables may use.",
    ).tag(config=True)
    agent_type = Enum(list(AGENT_TYPES), "code",
                      help="Which agent a %%agent cell runs: 'code' (writes Python) or 'tools' (calls the Tool "
                      "objects among the notebook's variables, with JSON arguments).").tag(config=True)
    budget = Float(0.0, help="Most US dollars a run may spend on model calls, managed agents' included, priced from "
                   "litellm's cost map; the run stops before the call that would pass it. 0: no budget.").tag(config=True)
    max_tokens = Integer(0, help="Most tokens (in and out) a run's model calls may use, managed agents' included; "
                         "the run stops before the call that would pass it. 0: no cap.").tag(config=True)
    ui = Enum(["auto", "widgets", "text"], "auto",
              help="How runs are shown: widgets in a kernel, text in a terminal (auto), or forced.").tag(config=True)

    store = Unicode(
        help="The run store, a SQLite file that keeps every run, step by step (%agent runs, %%agent --resume). "
        "Relative paths are from the kernel's working directory (the notebook's folder); the default falls back "
        "to Jupyter's data dir when that folder is read-only. \"\" turns it off. Defaults to $SMOL_MAGIC_STORE, "
        f"else {STORE_DEFAULT}.",
    ).tag(config=True)

    @default("model")
    def _model_default(self) -> str:
        return os.environ.get("SMOL_MAGIC_MODEL", "")

    @default("store")
    def _store_default(self) -> str:
        return os.environ.get(STORE_ENV, STORE_DEFAULT)

    allow = List(Unicode(), help="Capabilities granted to every run: " + ", ".join(guard.CAPABILITIES)).tag(config=True)
    protect = List(Unicode(), help="Variables the agent may not change without a person's click.").tag(config=True)
    cells = Enum(["live", "end", "off"], "live",
                 help="Insert the agent's actions as notebook cells: as they run, at the end, or not.").tag(config=True)
    rules = Unicode(
        "", help="A file of project rules added to the system prompt. Empty: AGENTS.md in the notebook's folder "
        "(the kernel's working directory), if there is one.",
    ).tag(config=True)

    mcp_servers = Dict(
        help="MCP servers a %%agent --mcp NAME cell may use, in the mcpServers shape of Claude Desktop, Cursor and "
        "VS Code: {'fs': {'command': 'npx', 'args': [...], 'env': {...}}, 'web': {'url': 'http://...', "
        "'transport': 'streamable-http' | 'sse'}}. Each starts on first use and runs until %agent mcp close.",
    ).tag(config=True)
    mcp_approval = Enum(
        list(MCP_APPROVAL_MODES), "risky",
        help="Which MCP tool calls wait for a person: every call, risky ones (tools not annotated read-only, or "
        "annotated destructive or open-world), or never.",
    ).tag(config=True)
    mcp_timeout = Float(60.0, help="Seconds one MCP tool call may take.").tag(config=True)
    compact_at = Float(
        DEFAULT_COMPACT_AT,
        help="Share of the model's context window past which older steps are compacted in what is sent (their "
        "observations summarised, their code kept; the trace keeps everything). 0: never compact.",
    ).tag(config=True)
    context_window = Integer(
        0, help="The model's context window, in tokens. 0: litellm's model info, for the models it knows; give it "
        "for a model it does not (a local server, a ScriptedModel), or nothing is compacted.",
    ).tag(config=True)

    executor = Enum(list(remote.EXECUTORS), "live",
                    help="Where a %%agent run's actions run: live (this kernel's namespace), isolated (a child kernel "
                    "on this machine: only --vars are sent in, --out-vars come back) or gateway (a remote kernel).",
                    ).tag(config=True)
    isolated_memory = Unicode("", help="Memory limit of the isolated kernel (--memory), e.g. 2GB; empty: none. "
                              "Enforced with RLIMIT_AS on Linux and macOS.").tag(config=True)
    isolated_env = List(Unicode(), help="Environment variables the isolated kernel gets although they look like "
                        "secrets (*KEY*, *TOKEN*, *SECRET*, *PASSWORD*), which are otherwise dropped.").tag(config=True)
    isolated_policy = Dict(
        default_value=remote.DEFAULT_ISOLATED_POLICY,
        help="How the guard is relaxed for --executor isolated, where damage stays in a child process: "
        "{'allow': [capabilities granted], 'imports': [modules allowed, even forbidden ones such as os]}.",
    ).tag(config=True)

    gateway_url = Unicode(
        help="The Jupyter Kernel Gateway or Enterprise Gateway where --executor gateway starts its kernel, e.g. "
        "http://host:8888. Defaults to $JUPYTER_GATEWAY_URL.").tag(config=True)
    gateway_token = Unicode(
        help="The gateway's auth token, sent in an Authorization header and never shown. Defaults to "
        "$JUPYTER_GATEWAY_AUTH_TOKEN (better: it stays out of the notebook).").tag(config=True)
    max_transfer = Unicode("100MB", help="--executor gateway: the most data one run sends into the remote kernel "
                           "(--max-transfer), e.g. 1GB; 0: no limit.").tag(config=True)

    @validate("gateway_token")
    def _hidden_token(self, proposal: Any) -> str:
        return Secret(proposal["value"])

    @validate("isolated_policy")
    def _isolated_policy(self, proposal: Any) -> dict[str, Any]:
        try:
            return remote.check_policy(dict(proposal["value"]))
        except ValueError as exc:
            raise TraitError(f"AgentMagics.isolated_policy: {exc}") from None

    @validate("compact_at")
    def _share_of_window(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 <= value <= 1:
            raise TraitError(f"AgentMagics.compact_at is a share of the context window, from 0 (never compact) to 1, "
                             f"not {value}: %config AgentMagics.compact_at = {DEFAULT_COMPACT_AT}")
        return value

    @validate("context_window")
    def _window(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"AgentMagics.context_window is a number of tokens (0: from the model), not "
                             f"{proposal['value']}: %config AgentMagics.context_window = 128000")
        return proposal["value"]

    otel = Bool(
        None, allow_none=True,
        help="OpenTelemetry traces of runs (a span per run, step, model call, tool call and approval), sent by "
        "OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318): True, False, or None to trace "
        'only when that variable is set. Needs pip install "smol-magic[otel]".',
    ).tag(config=True)

    @observe("otel")
    def _otel_changed(self, change: Any) -> None:
        on = change["new"]
        if on is None:
            telemetry.reset()
        elif on:
            telemetry.instrument()
        else:
            telemetry.uninstrument()

    @observe("model")
    def _model_changed(self, change: Any) -> None:
        preload_litellm(change["new"])  # %config AgentMagics.model = "anthropic/...": litellm loads meanwhile

    @validate("mcp_servers")
    def _mcp_entries(self, proposal: Any) -> dict[str, Any]:
        value = dict(proposal["value"])
        if set(value) == {"mcpServers"}:  # the whole file, pasted
            value = dict(value["mcpServers"])
        for name, params in value.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise TraitError(f"AgentMagics.mcp_servers: the server name {name!r} must be a plain name "
                                 "(letters, digits, _), as used in --mcp NAME")
            try:
                server_spec(name, params)
            except ValueError as exc:
                raise TraitError(f"AgentMagics.mcp_servers: {exc}") from None
        return value

    @validate(*MINIMUM)
    def _at_least(self, proposal: Any) -> int:
        trait, value = proposal["trait"], proposal["value"]
        if value < MINIMUM[trait.name]:
            raise TraitError(f"AgentMagics.{trait.name} must be at least {MINIMUM[trait.name]}, not {value}: "
                             f"%config AgentMagics.{trait.name} = {trait.default_value}")
        return value

    @validate("timeout", "model_timeout")
    def _seconds(self, proposal: Any) -> float:
        name = proposal["trait"].name
        try:
            return check_timeout(proposal["value"], f"AgentMagics.{name}")
        except ValueError as exc:
            raise TraitError(f"{exc}: %config AgentMagics.{name} = {proposal['trait'].default_value:g}") from None

    @validate("budget")
    def _dollars(self, proposal: Any) -> float:
        try:
            return costs.check_budget(proposal["value"], "AgentMagics.budget") or 0.0
        except ValueError:
            raise TraitError(f"AgentMagics.budget must be a positive amount in US dollars, not {proposal['value']!r}: "
                             "%config AgentMagics.budget = 0.05 (0 for no budget)") from None

    @validate("rules")
    def _rules_path(self, proposal: Any) -> str:
        value = proposal["value"].strip()
        if "\n" in value or "\0" in value:
            raise TraitError("AgentMagics.rules is the path of a rules file (e.g. \"AGENTS.md\"), not the rules "
                             "themselves; write them in a file, or %config AgentMagics.rules = \"\" for AGENTS.md")
        return value

    @validate("allow")
    def _known_capabilities(self, proposal: Any) -> list[str]:
        unknown = [c for c in proposal["value"] if c not in guard.CAPABILITIES]
        if unknown:
            raise TraitError(f"AgentMagics.allow: unknown capability {', '.join(map(repr, unknown))}; "
                             f"use some of {', '.join(guard.CAPABILITIES)}")
        return proposal["value"]

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self.current: CodeAgent | None = None
        self.writer = CellWriter(shell)
        self.run_cells: list[str | None] = []  # per run: the id of the %%agent cell that ran it
        self._notices: set[str] = set()
        self.mcp_added: dict[str, Any] = {}  # servers added with %agent mcp add
        self._mcp = MCPServers()
        atexit.register(self._mcp.close)  # the servers' processes end with the kernel
        self.stores = stored.Stores()
        self.stored_ids: dict[int, int] = {}  # id() of a run of this kernel -> its id in the store
        self.conversation_tail: int | None = None  # the stored run whose steps end the agent's memory
        self.executors = remote.Executors()  # the isolated (and gateway) kernels, kept for the session
        self.remote_runs: dict[int, str] = {}  # id(RunResult) -> the remote executor its actions ran in
        self.warming: threading.Thread | None = None  # %load_ext's warm-up imports, until the first run
        self.history_hold = history.CellHold(self.shell)  # IPython's history writes wait for a %%agent cell's end
        self._parsed: dict[str, argparse.Namespace] = {}  # %%agent lines parsed (see _parse)
        atexit.register(self.executors.stop_all)

    @magic_arguments()
    @argument("-m", "--model", help="litellm id, hf:org/model, openai-server:MODEL@URL, transformers:PATH, "
              "or a variable holding a Model")
    @argument("--agent", choices=list(AGENT_TYPES),
              help="code: the agent writes Python; tools: it calls the notebook's Tool objects "
              "(default: AgentMagics.agent_type)")
    @argument("--max-steps", type=int, help="most actions in this run (default: AgentMagics.max_steps)")
    @argument("--approve", choices=[str(mode) for mode in APPROVE_MODES], help="which actions wait for a click")
    @argument("-o", "--out", metavar="VAR", help="store the final answer in this variable")
    @argument("--reset", action="store_true", help="start a new conversation instead of continuing")
    @argument("--timeout", help="seconds an action may run (default: AgentMagics.timeout, 60)")
    @argument("--model-timeout", metavar="S",
              help="seconds one model reply may take, retries included (default: AgentMagics.model_timeout, 120)")
    @argument("--imports", help="comma-separated extra modules the agent may import")
    @argument("--allow", metavar="CAPS",
              help="grant capabilities for this cell: " + ", ".join(guard.CAPABILITIES))
    @argument("--protect", metavar="NAMES", help="comma-separated variables the agent may not change without a click")
    @argument("--no-guard", action="store_true",
              help="turn the guard off for this cell: nothing is checked (the trace shows it in red)")
    @argument("--cells", choices=["live", "end", "off"],
              help="insert each action as a notebook cell below this one: as it runs (live, default), at the end, or not")
    @argument("--with", dest="with_agents", metavar="AGENTS",
              help="comma-separated variables holding agents (with a name and a description) this run may call, "
              "as managed agents, for this cell only")
    @argument("--mcp", metavar="NAMES", help="comma-separated MCP servers whose tools this run may call "
              "(AgentMagics.mcp_servers, %%agent mcp add)")
    @argument("--budget", metavar="USD", help="most US dollars this run's model calls may cost (litellm's cost "
              "map); it stops before the call that would pass it (default: AgentMagics.budget)")
    @argument("--max-tokens", metavar="N", help="most tokens (in and out) this run's model calls may use "
              "(default: AgentMagics.max_tokens)")
    @argument("--record", metavar="FILE", help="save every model reply (with its request) to FILE")
    @argument("--replay", metavar="FILE|N",
              help="answer from FILE (made with --record), or from stored run N (%%agent runs), instead of the "
              "model; stops if the run diverges")
    @argument("--resume", nargs="?", type=int, const=0, metavar="N",
              help="continue the conversation of stored run N (default: this notebook's last stored run), "
              "e.g. after a kernel restart")
    @argument("--no-store", action="store_true", help="do not keep this run in the run store")
    @argument("--executor", help="where actions run: live (this kernel), isolated (a child kernel), gateway "
              "(default: AgentMagics.executor)")
    @argument("--memory", metavar="SIZE", help="isolated: the child kernel's memory limit, e.g. 2GB")
    @argument("--vars", metavar="NAMES", help="isolated/gateway: variables sent into the kernel (also those the "
              "task names as {var})")
    @argument("--out-vars", metavar="NAMES", help="isolated/gateway: variables brought back into the notebook")
    @argument("--max-transfer", metavar="SIZE", help="gateway: the most data sent into the kernel for this run, "
              "e.g. 500MB (default: AgentMagics.max_transfer, 100MB)")
    @argument("--workdir", metavar="WHERE", help="isolated: scratch (a temp folder, default), ro or rw (the "
              "notebook's folder, read-only or read-write)")
    @line_cell_magic
    def agent(self, line: str, cell: str | None = None) -> None:
        """Run a code-writing agent on this notebook's variables.

        %%agent [flags]
        <the task, in plain words>

        The model writes Python; each action runs in this kernel's namespace
        (after a static guard), its output comes back to the model, and the
        variables it creates stay in the notebook. The next %%agent cell
        continues the conversation unless --reset. With --agent tools the model
        calls the Tool objects among the notebook's variables instead, with
        JSON arguments; each call is shown, checked and run as the code it
        amounts to, ``result = tool(arg=...)``.

        The guard is a policy that stops what a careless or confused model
        might do; it is not a sandbox against a determined attacker. For
        untrusted inputs, run the kernel in an isolated container or VM.
        """
        if cell is None:
            return self._subcommand(line)
        run_blocking(self.run_async(line, cell, interactive=False))  # nothing returned: a cell would show it

    @cell_magic("executor")
    def executor_cell(self, line: str, cell: str) -> None:
        """Run this cell in the isolated (or gateway) kernel of this session's agent runs.

        %%executor isolated
        <code>

        The cells an --executor isolated or gateway run inserts start with it: run again, they run where the
        agent ran them, on the variables made there.
        """
        remote_cell.run_cell(self, line, cell)

    def _help(self) -> None:
        """What ``%%agent?`` shows, for who types ``--help`` as for a shell command."""
        print(textwrap.dedent(self.agent.__doc__ or "").strip().removeprefix("::").strip())

    def _subcommand(self, line: str) -> None:
        """``%agent <subcommand> ...``: each subcommand parses its own flags (see ``commands``)."""
        if line.split() in (["-h"], ["--help"]):
            return self._help()
        command, args = commands.parse(line)
        command.run(self, args)

    async def cells_async(self, line: str) -> None:
        """``%agent cells`` as a cell of its own: it can wait for the extension's hello."""
        command, args = commands.parse(line)
        if command is commands.cells and self._cell_id() is not None and self.writer.available is not False:
            await self.writer.connect()
        command.run(self, args)

    def _parse(self, line: str) -> Any:
        """The flags of a %%agent line. A notebook runs the same lines again and again, and argparse with
        shlex takes ~0.3 ms: parsed lines are kept (a copy is returned: callers may change it)."""
        known = self._parsed.get(line)
        if known is not None:
            return argparse.Namespace(**vars(known))
        try:
            args = parse_argstring(self.agent, line)
        except UsageError as exc:
            text = str(exc)
            extra = text.partition("unrecognized arguments: ")[2]
            if extra and not any(word.startswith("-") for word in extra.split()):
                text = f"unexpected text on the %%agent line: {extra!r}; put the task in the cell body"
            raise UsageError(f"{text} (see %%agent? for the flags)") from None
        if len(self._parsed) >= 256:
            self._parsed.clear()
        self._parsed[line] = argparse.Namespace(**vars(args))
        return args

    async def run_async(self, line: str, cell: str, interactive: bool = True,
                        ui: tuple[Renderer, ModeApprover] | None = None) -> RunResult | None:
        """The body of a ``%%agent`` cell; ``interactive`` when it runs as an async cell that can await clicks.

        ``ui``: the trace and approver to use instead of a new trace under the cell (a run started from
        outside, shown inside the ``%agent serve`` trace)."""
        if self.warming is not None:
            # The first run waits for %load_ext's warm-up imports to end: the trace's own imports racing them in
            # another thread can fail (pygments.lexers loads its lexers lazily, not thread-safely).
            self.warming.join(timeout=10)
            self.warming = None
        if {"-h", "--help"} & set(line.split()):
            return self._help()
        args = self._parse(line)
        task = typed = cell.strip()
        if not task:
            raise UsageError("write the task in the cell, below the %%agent line")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, got {args.out!r}")
        if args.max_steps is not None and args.max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        for flag in ("timeout", "model_timeout"):
            if getattr(args, flag) is not None:
                try:
                    setattr(args, flag, check_timeout(getattr(args, flag), "--" + flag.replace("_", "-")))
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
        limits = self._limits(args)
        remote.options(self, args)  # bad executor flags stop here, before anything runs
        rules = self.read_rules()  # before anything changes: a missing rules file stops here
        task, unknown = namespace.interpolate(task, self.shell.user_ns)
        for name in unknown:
            print(f"smol-magic: warning: {{{name}}} is not a variable of this notebook; it is left as written "
                  "(write {{ for a literal brace)", file=sys.stderr)
        if args.resume is not None and args.reset:
            raise UsageError("--resume continues a stored conversation and --reset starts a new one: use one of them")
        store = self.stores.get(self.store)
        resumed = self._resumed(args.resume) if args.resume is not None else None
        if args.replay and args.replay.strip().isdigit():
            model = stored.replay_model(self.stores.required(self.store), int(args.replay))
        elif args.replay:
            try:
                model = ReplayModel(args.replay)
            except ModelError as exc:
                raise UsageError(str(exc)) from None
        else:
            model = self._resolve_model(args.model)
        bound = self._bound_model(model, args)
        if args.record:
            try:
                model = RecordingModel(model, args.record)
            except OSError as exc:
                raise UsageError(f"--record {args.record}: cannot write there ({exc.strerror or exc}); "
                                 "give a path in a folder you can write to") from None
        team = self._managed_agents(args.with_agents)
        self._check_priced(model, limits[0], args)
        agent = self._prepare_agent(model, args)
        agent.budget, agent.max_tokens = limits if not args.replay else (None, limits[1])  # a replay costs nothing
        mcp_tools = self._mcp_tools(_names(args.mcp), agent.tools)
        agent.rules = rules
        cell_id = self._cell_id()
        trace, agent.approver = ui or self._ui(args.approve or self.approve, interactive, cell_id)
        trace.typed_task = typed  # the header shows the task as typed, not its {var} expansion
        cells = await self._cells_renderer(args.cells or self.cells, cell_id, interactive)
        if cells is not None:  # the trace refers to inserted cells instead of repeating their outputs
            self.writer.on_inserted = getattr(trace, "cell_inserted", None)
        if resumed is not None:
            agent.memory.steps = list(resumed.steps)
            self.conversation_tail, args.reset = resumed.number, False
            print(resumed.notice())
        else:
            self._say_new_conversation(agent, args)
        saving = None if store is None or args.no_store else stored.writer(
            store, self.shell, self.conversation_tail, args.agent or self.agent_type)
        agent.renderer = Tee(*(r for r in (trace, cells, saving) if r is not None)) if cells or saving else trace
        executing = remote.begin(self, agent, args, typed)  # the kernel, the variables sent in
        self.run_cells.append(cell_id)
        before, tools_before = list(agent.managed_agents.values()), dict(agent.tools)
        try:
            agent.managed_agents = before + team  # for this cell only
            agent.tools = {**agent.tools, **{t.name: t for t in mcp_tools}}  # this cell's MCP tools
            with stored.told(agent, resumed.model_note() if resumed else ""):
                result = await self._run(agent, task, args, settle=cells is not None)
        finally:
            executing.end()
            agent.managed_agents = before
            agent.tools = tools_before
            bound()
            self.conversation_tail = saving.run_id if saving is not None else None  # what the memory ends with
            if agent.runs and self.conversation_tail is not None:
                self.stored_ids[id(agent.runs[-1])] = self.conversation_tail
        if result.state == RunState.FAILED:
            raise UsageError(f"the agent run failed: {result.error}")
        executing.bring_back()
        if args.out and result.state in (RunState.DONE, RunState.MAX_STEPS):
            # -o is part of the run: undo removes (or puts back) what it bound
            result.undo.setdefault(args.out, self.shell.user_ns.get(args.out, undo.UNBOUND))
            self.shell.user_ns[args.out] = result.output
        return result

    async def _run(self, agent: CodeAgent, task: str, args: Any, settle: bool = False) -> RunResult:
        async for _ in agent.stream_steps(task, reset=args.reset, max_steps=args.max_steps or self.max_steps):
            if settle:  # the step's cell, if sent, is answered before the next step (and the trace knows)
                await self.writer.settle()
        return agent.runs[-1]

    def _limits(self, args: Any) -> tuple[float | None, int | None]:
        """This run's budget (US dollars) and token cap: the flags, else AgentMagics.budget / max_tokens."""
        limits = []
        for flag, value, check, default in (("--budget", args.budget, costs.check_budget, self.budget),
                                            ("--max-tokens", args.max_tokens, costs.check_max_tokens, self.max_tokens)):
            if value is None:
                limits.append(default or None)
                continue
            try:
                limit = check(value, flag)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if limit is None:
                what = "no budget" if flag == "--budget" else "no cap"
                example = "--budget 0.05" if flag == "--budget" else "--max-tokens 20000"
                raise UsageError(f"{flag} 0 would mean {what}: give a positive amount, e.g. {example}, or leave "
                                 f"the flag out for AgentMagics.{flag[2:].replace('-', '_')}")
            limits.append(limit)
        return limits[0], limits[1]

    def _check_priced(self, model: Any, budget: float | None, args: Any) -> None:
        """A budget needs the model's price: say so before the run rather than stop at its first call."""
        model_id = getattr(model, "model_id", None)
        if budget and not args.replay and costs.prices(model_id) is None:
            where = "--budget" if args.budget is not None else "AgentMagics.budget"
            raise UsageError(f"{where} {costs.format_cost(budget)} cannot be checked: the price of {model_id!r} is not "
                             "in litellm's cost map. Bound the run with --max-tokens N instead (or %config "
                             "AgentMagics.budget = 0), or register the price with litellm.register_model")

    def _ui(self, mode: str, interactive: bool, cell_id: str | None = None) -> tuple[Renderer, ModeApprover]:
        """A fresh trace and approver per run: widgets in a kernel, text and a prompt in a terminal.

        Notebook frontends (JupyterLab, Notebook 7, VS Code) send the cell's id with each
        execution; headless runners (nbclient, papermill, nbconvert) do not, and nobody
        could click there: an approval would only wait for the runner's timeout.
        """
        in_kernel = getattr(self.shell, "kernel", None) is not None
        if self.ui == "widgets" or (self.ui == "auto" and in_kernel):
            from .widgets import WidgetTrace, clicks_reach_kernel

            trace = WidgetTrace(approve_mode=mode)
            if mode == ApproveMode.NEVER:
                return trace, ModeApprover(mode)
            if not clicks_reach_kernel(self.shell):
                why = ("old-kernel", "this kernel cannot receive clicks while a cell runs (ipykernel older than "
                       "7.4), so nothing waits for approval: running as --approve never. Upgrade ipykernel for "
                       "the approval buttons.")
            elif not interactive:
                why = ("sync", "run_cell_magic cannot wait for clicks; running as --approve never. Use a %%agent "
                       "cell for approval buttons.")
            elif in_kernel and cell_id is None:
                why = ("headless", "no notebook frontend sent this cell (a headless run?), so nothing can wait for "
                       "a click: running as --approve never; actions the guard asks about are refused.")
            else:
                return trace, ModeApprover(mode, trace)
            self._notice(why[0], f"smol-magic: {why[1]}")
            return trace, ModeApprover(mode)
        from .terminal import TerminalApprover

        person = TerminalApprover(mode) if sys.stdin is not None and sys.stdin.isatty() else None
        if mode != ApproveMode.NEVER and person is None:
            self._notice("no-tty", "smol-magic: no one can be asked for approval here (no terminal): running as "
                         "--approve never; actions the guard asks about are refused.")
        return TextRenderer(show_error=False), ModeApprover(mode, person)  # the UsageError says it

    def _cell_id(self) -> str | None:
        """The executing %%agent cell's id, which JupyterLab sends with each execute_request."""
        kernel = getattr(self.shell, "kernel", None)
        try:
            return kernel.get_parent().get("metadata", {}).get("cellId") if kernel else None
        except Exception:
            return None

    async def _cells_renderer(self, mode: str, cell_id: str | None, interactive: bool) -> Renderer | None:
        """The agent's actions as real cells below its %%agent cell, through the labextension."""
        from .widgets import clicks_reach_kernel

        if mode == "off" or cell_id is None or not interactive or not clicks_reach_kernel(self.shell):
            return None
        if not await self.writer.connect():
            self._notice("no-extension", "smol-magic: no notebook extension answered, so actions are not inserted "
                         "as cells here; they are in the trace and in %agent export.")
            return None
        self.writer.begin_run(cell_id, f"run-{len(self.run_cells) + 1}")
        await stale_cells.await_begun(self.shell, self.writer)  # queued runs of the removed cells become no-ops
        return CellsRenderer(self.writer, live=mode == "live")

    def _notice(self, key: str, text: str) -> None:
        if key not in self._notices:
            self._notices.add(key)
            print(text)

    def _bound_model(self, model: Any, args: Any) -> Any:
        """Bound the model's replies for this run; returns what puts a user's own Model back as it was.

        A model named by id gets --model-timeout or AgentMagics.model_timeout; a Model object the
        user made keeps its own timeout unless --model-timeout is given.
        """
        own = not getattr(model, "_smol_magic_made", False)  # a Model object the user made and named
        seconds = args.model_timeout if (own or args.model_timeout is not None) else self.model_timeout
        if args.replay or seconds is None or not isinstance(model, BaseModel):
            return lambda: None
        before = model.__dict__.get("timeout", _MISSING)
        model.timeout = seconds

        def put_back() -> None:
            if before is _MISSING:
                model.__dict__.pop("timeout", None)
            else:
                model.timeout = before

        return put_back if own else (lambda: None)

    def _say_new_conversation(self, agent: CodeAgent, args: Any) -> None:
        """Without --reset a cell continues the conversation; with no earlier run in this kernel (a new
        notebook, or after a restart) there is none to continue: say so, once, rather than pretend."""
        if args.reset or len(agent.runs) > 0:
            return
        how = ("%%agent --resume continues the last stored one; %agent runs lists them" if self.store.strip()
               else "re-run the earlier %%agent cells to continue theirs")
        self._notice("new-conversation", "smol-magic: starting a new conversation: this kernel has no earlier "
                     f"agent run. After a kernel restart, {how}.")

    def _resumed(self, number: int) -> "stored.Resumed":
        """--resume [N]: stored run N's conversation (0: this notebook's last run), checked before anything runs."""
        store = self.stores.required(self.store)
        return stored.resume(store, number or stored.last_number(store, self.shell), self.shell.user_ns)

    def _resolve_model(self, spec: str | None) -> Any:
        if spec is not None and not spec.strip().strip("'\""):
            raise UsageError(f"-m/--model is empty: give {SPEC_HELP}, or the name of a variable holding a Model")
        spec = (spec or self.model or "").strip()
        if not spec:
            raise UsageError(
                "no model configured: use %%agent -m openai/gpt-4o-mini, "
                '%config AgentMagics.model = "openai/gpt-4o-mini", or set SMOL_MAGIC_MODEL'
            )
        if spec.isidentifier():
            if spec not in self.shell.user_ns:
                raise UsageError(
                    f"unknown model {spec!r}: there is no variable of that name. Give {SPEC_HELP}, "
                    "or the name of a variable holding a Model"
                )
            value = as_model(self.shell.user_ns[spec])  # a smolagents model too
            if not isinstance(value, Model):
                raise UsageError(
                    f"{spec!r} is a {type(value).__name__}, not a Model (e.g. ScriptedModel, LiteLLMModel)"
                )
            return value
        try:
            model = model_from_spec(spec)
        except ValueError as exc:
            raise UsageError(f"-m/--model {exc}") from None
        model._smol_magic_made = True  # made here from an id: AgentMagics.model_timeout applies
        return model

    def _prepare_agent(self, model: Any, args: Any) -> CodeAgent:
        """The notebook's one agent: kept across cells so the conversation continues."""
        self._check_protected(_names(args.protect))
        imports = list(self.authorized_imports) + _names(args.imports)
        never = [name for name in imports if guard.module_forbidden(name)]
        if never:
            raise UsageError(f"--imports: {', '.join(never)} can never be imported by the agent, whoever approves "
                             "(the guard forbids it: it reaches the system, the process or the kernel); "
                             "remove it from --imports")
        try:
            policy = guard.Policy(authorized_imports=guard.DEFAULT_AUTHORIZED_IMPORTS + imports,
                                  allow=set(self.allow) | set(_names(args.allow)), enabled=not args.no_guard)
        except ValueError as exc:
            raise UsageError(f"--allow: {exc}") from None
        kind = AGENT_TYPES[args.agent or self.agent_type]
        if self.current is None:
            self.current = kind(model=model, executor=KernelExecutor(self.shell))
        elif type(self.current) is not kind:  # the conversation, its runs and undo carry over to the other kind
            old, self.current = self.current, kind(model=model, executor=self.current.executor)
            self.current.memory, self.current.runs, self.current.agent_made = old.memory, old.runs, old.agent_made
        agent = self.current
        if isinstance(agent, ToolCallingAgent):
            agent.tools = {"final_answer": agent.tools["final_answer"], **self._notebook_tools()}
        agent.model = model
        agent.policy = policy
        agent.protected = set(self.protect) | set(_names(args.protect))
        agent.timeout = args.timeout or self.timeout
        agent.max_observation_chars = self.max_observation_chars
        agent.namespace_budget = self.namespace_budget
        agent.compact_at, agent.context_window = self.compact_at or None, self.context_window or None
        return agent

    def rules_file(self) -> tuple[Path | None, bool]:
        """The project rules file for this notebook, and whether it was named (AgentMagics.rules) or found.

        Named: relative to the kernel's working directory (the notebook's folder). Not named:
        ``AGENTS.md`` there, or None.
        """
        if self.rules:
            path = Path(self.rules).expanduser()
            return (path if path.is_absolute() else Path.cwd() / path), True
        found = Path.cwd() / RULES_FILE
        return (found if found.is_file() else None), False

    def read_rules(self) -> Rules | None:
        """The rules for the system prompt, read afresh for each run; a named file that is not there is an error."""
        path, named = self.rules_file()
        if path is None:
            return None
        fix = '; fix the path, or %config AgentMagics.rules = "" to use AGENTS.md from the notebook\'s folder'
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"AgentMagics.rules names {str(path)!r}, which does not exist{fix}") from None
        except IsADirectoryError:
            raise UsageError(f"AgentMagics.rules names {str(path)!r}, a folder, not a file{fix}") from None
        except UnicodeDecodeError:
            raise UsageError(f"the rules file {str(path)!r} is not UTF-8 text") from None
        except OSError as exc:
            raise UsageError(f"cannot read the rules file {str(path)!r} ({exc.strerror or exc})") from None
        if len(text) > MAX_RULES_CHARS:
            raise UsageError(f"the rules file {str(path)!r} has {len(text):,} characters; it is sent with every "
                             f"request, so keep it under {MAX_RULES_CHARS:,}")
        return Rules.of(Rules(text, str(path)))

    def mcp_registry(self) -> MCPServers:
        """The notebook's MCP servers (AgentMagics.mcp_servers and %agent mcp add), connections kept."""
        self._mcp.configure({**self.mcp_servers, **self.mcp_added})
        return self._mcp

    def add_mcp_server(self, name: str, params: dict[str, Any]) -> ServerSpec:
        """``%agent mcp add``: a server for this kernel's session (``ValueError`` if malformed)."""
        if not name.isidentifier():
            raise ValueError(f"the server name {name!r} must be a plain name (letters, digits, _), as used in "
                             "--mcp NAME")
        spec = server_spec(name, params)
        self.mcp_added[name] = params
        self.mcp_registry()
        return spec

    def _mcp_tools(self, names: list[str], existing: dict[str, Tool]) -> list[MCPTool]:
        """--mcp: the tools of these servers, started if need be; a name the agent has already gets the server's."""
        if not names:
            return []
        try:
            tools = self.mcp_registry().tools(names, timeout=self.mcp_timeout, approval=self.mcp_approval)
        except MCPError as exc:
            raise UsageError(f"--mcp: {exc}") from None
        for t in tools:
            if t.name in existing:
                t.name = identifier(f"{t.server}_{t.tool_name}")
        return tools

    def _notebook_tools(self) -> dict[str, Tool]:
        """The ``Tool`` objects among the notebook's variables: what ``--agent tools`` may call."""
        found = {}
        for value in namespace.user_variables(self.shell.user_ns, self.shell.user_ns_hidden).values():
            if isinstance(value, Tool) and value.name != "final_answer":
                found[value.name] = value
        return found

    def _managed_agents(self, text: str | None) -> list[Any]:
        """--with: the agents in these variables, checked as a manager would check them."""
        from ..core.managed import check_managed, is_agent

        team = []
        for name in _names(text):
            value = self.shell.user_ns.get(name, _MISSING)
            if value is _MISSING:
                raise UsageError(f"--with: there is no variable {name!r}; give variables holding agents, e.g. "
                                 f"{name} = CodeAgent(model=..., name={name!r}, description='...')")
            if not is_agent(value):
                raise UsageError(f"--with: {name!r} is a {type(value).__name__}, not an agent (CodeAgent, "
                                 "ToolCallingAgent)")
            team.append(value)
        current = self.current
        existing = [m.agent for m in current.managed_agents.values()] if current is not None else []
        try:
            check_managed(existing + team, current.tools if current is not None else {"final_answer": None}, current)
        except ValueError as exc:
            raise UsageError(f"--with: {exc}") from None
        return team

    def _check_protected(self, names: list[str]) -> None:
        """--protect of a name that is not a variable protects nothing: refuse it, naming close matches."""
        ns = self.shell.user_ns
        missing = [name for name in names if name not in ns]
        if not missing:
            return
        variables = [name for name in namespace.user_variables(ns, self.shell.user_ns_hidden)]
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, variables, n=3)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        raise UsageError(f"--protect: no variable named {', '.join(hints)}; only existing variables can be "
                         "protected")


# %%agent? lists the subcommands too, each with its own flags.
AgentMagics.agent.__doc__ = (AgentMagics.agent.__doc__ or "") + "\n\nSubcommands:\n" + textwrap.indent(
    commands.listing(), "  ")


_MISSING = object()


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def load_ipython_extension(shell: Any) -> None:
    magics = AgentMagics(shell=shell)
    shell.register_magics(magics)
    if rewrite_agent_cell not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(rewrite_agent_cell)
    stale_cells.install(shell)
    magics.history_hold.install()
    magics.warming = threading.Thread(target=warm_up, name="smol-magic warm-up", daemon=True)
    magics.warming.start()
    preload_litellm(magics.model)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext smol_magic``: ``%%agent`` and ``%%executor`` are gone, as the hooks are."""
    if rewrite_agent_cell in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(rewrite_agent_cell)
    stale_cells.uninstall(shell)
    magics = shell.magics_manager.registry.pop("AgentMagics", None)
    if magics is not None:
        magics.history_hold.uninstall()
        for kind, names in magics.magics.items():
            table = shell.magics_manager.magics[kind]
            for name in names:
                if getattr(table.get(name), "__self__", None) is magics:
                    del table[name]
