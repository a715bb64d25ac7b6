"""``RemoteExecutor``: the ``Executor`` protocol over a kernel in another process (or on another machine).

The agent's code runs in a child kernel through the Jupyter messaging protocol:
an ``execute_request`` on the shell channel, its outputs read from iopub
(``stream``, ``display_data``, ``execute_result``, ``error``, then ``status:
idle``), the reply on shell. A small helper (``child.py``, sent as code when
the kernel starts, so the kernel needs nothing of smol-magic) reports after
each action what names it created, rebound or deleted, with a summary of each
for the model's prompt, and packs variables for the trip back.

Where the kernel lives is a ``KernelLink``: ``isolated.IsolatedKernel`` (a child
process on this machine) and the gateway's link (a kernel started through a
Jupyter Kernel/Enterprise Gateway). A link must provide:

``name``                    "isolated", "gateway": the words of messages ("the isolated kernel died: ...")
``local_files``             True if the kernel shares this machine's files (data then goes through a file
                            in ``scratch()`` that the kernel memory-maps); False: inline, in the code sent
``start()``                 start the kernel, or connect to it; afterwards ``client`` works.
                            Raises ``KernelUnavailable`` with a sentence saying why and what to do
``client``                  a jupyter_client-style blocking client: ``execute(code, silent=, store_history=,
                            user_expressions=, allow_stdin=) -> msg_id``, ``get_iopub_msg(timeout=)``,
                            ``get_shell_msg(timeout=)``, ``get_stdin_msg(timeout=)`` (``queue.Empty`` when
                            nothing came), ``input(text)``
``alive() -> bool``         the kernel is still there (cheap: called ~10 times a second while an action runs)
``death() -> str``          why it is not: "out of memory (limit 2 GB)", "exited with code 1",
                            "the connection to the gateway was lost"
``interrupt()``             SIGINT the running action (``interrupt_request`` for a remote kernel)
``restart()``               a fresh kernel (its state is lost); the executor bootstraps it again
``shutdown()``              end the kernel; ``start()`` may be called again later
``pid() -> int | None``     the kernel's process id, when known (the child helper reports it too)
``describe() -> str``       one line for ``%agent executor status``
``scratch() -> str|None``   a folder both sides read and write (``local_files`` only)
``memory_limit``            bytes or None: said in the out-of-memory message
``setup_code() -> str``     code run once in each fresh kernel before the helper (limits, working folder)

The loop's data protection and undo are not applied inside the kernel: what is
there is a copy, and damage stays there. ``namespace`` is a local mirror of
the kernel's variables (stand-ins, ``RemoteValue``) so the prompt summary, the
guard and the "Variables changed" lines work unchanged.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import sys
import threading
import time
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

from ... import guard
from ...context import namespace as ns_summary
from ...core.execution import CappedText, ExecutionResult, ToolBindings, interruptible
from ...core.names import used_names
from ...core.outputs import cell_outputs, output_text
from . import child, transfer

INTERRUPT_GRACE = 3.0  # seconds an interrupted action has to stop before the kernel is restarted
POLL = 0.05  # seconds between looks at the kernel's health (and at tool calls) while an action runs
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class KernelUnavailable(RuntimeError):
    """The kernel cannot be started or reached; the message says why and what to do."""


class KernelLink(Protocol):
    name: str
    local_files: bool
    client: Any
    memory_limit: int | None

    def start(self) -> None: ...
    def alive(self) -> bool: ...
    def death(self) -> str: ...
    def interrupt(self) -> None: ...
    def restart(self) -> None: ...
    def shutdown(self) -> None: ...
    def pid(self) -> int | None: ...
    def describe(self) -> str: ...
    def scratch(self) -> str | None: ...
    def setup_code(self) -> str: ...


class RemoteValue:
    """A variable of the kernel, seen from here: its name, type and the kernel's summary of it.

    ``namespace.describe`` knows it (registered below), so the prompt shows the
    kernel's own summary (a DataFrame's columns and sample rows), not this object.
    """

    __slots__ = ("name", "type_name", "text", "ident", "__weakref__")

    def __init__(self, name: str, type_name: str, text: str, ident: int):
        self.name, self.type_name, self.text, self.ident = name, type_name, text, ident

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.name!r} in the remote kernel>"


@ns_summary.describe.register(RemoteValue)
def _describe_remote(value: RemoteValue) -> str:
    return value.text


@dataclass
class Inputs:
    """What was sent into the kernel for this session: sent again after a restart."""

    packets: dict[str, transfer.Packet] = field(default_factory=dict)


class RemoteExecutor:
    """Runs actions in a kernel reached through a ``KernelLink``; see the module docstring."""

    contained = True  # what the kernel holds is a copy: the loop's data protection does not apply inside it

    def __init__(self, link: KernelLink):
        self.link = link
        self.namespace: dict[str, Any] = {}
        self._tools = ToolBindings(self.namespace)
        self.started = False
        self.kernel_pid: int | None = None
        self.lost: str | None = None  # why the last kernel ended, until the next action has been told
        self.sent: dict[str, Any] = {}  # name -> the object sent, re-sent after a restart
        self.actions = 0

    # -- the Executor protocol --------------------------------------------------------------

    def send_tools(self, tools: dict[str, Any]) -> None:
        """Functions become stubs in the kernel that call them here; data (``additional_args``) is sent in."""
        self._tools.send(tools)
        data = {name: value for name, value in tools.items() if not callable(value)}
        if data:
            self.send_variables(data)
        if self.started and self.link.alive():
            self._call(child.tools_code(self._tool_names()))

    def restore(self) -> None:
        self._tools.restore()

    def hidden(self) -> Mapping[str, Any]:
        return self._tools.tools

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        result = ExecutionResult()
        start = time.perf_counter()
        notes: list[str] = []
        try:
            fresh = self.ensure()
        except KernelUnavailable as exc:
            result.error = str(exc)
            result.duration = time.perf_counter() - start
            return result
        if fresh and self.lost:
            notes.append(f"[{self.lost} This action runs in a fresh {self.link.name} kernel: the variables made there "
                         f"before are gone{'; those sent in were sent again' if self.sent else ''}.]")
            self.lost = None
        self.actions += 1
        run = _Run(self.link, timeout)
        run.go(code, self, expressions={"report": child.report_expression(sorted(used_names(code)))})
        result.duration = time.perf_counter() - start
        result.timed_out, result.interrupted = run.timed_out, run.interrupted
        report = run.report
        if run.died is not None:
            self.started = False
            self.lost = f"The {self.link.name} kernel died: {run.died}."
            result.error = (f"{self.lost} The notebook's kernel and its variables are untouched; the next action "
                            f"starts a fresh {self.link.name} kernel, without the variables made in this one.")
            self._forget_all()
        elif run.timed_out or run.interrupted:
            if not run.stopped:
                notes.append(f"[The {self.link.name} kernel did not stop within {INTERRUPT_GRACE:g} s of the "
                             f"interrupt, so it was restarted: the variables made in it are gone.{self._renew()}]")
            what = (f"ActionTimeout: the action ran past its {timeout:g} s time limit" if run.timed_out
                    else "KeyboardInterrupt: interrupted by the user")
            result.error = what
        elif run.error is not None:
            result.error = run.error
        if report is None and run.died is None and self.started:
            report = self._report()  # an error or the final answer: the kernel still says what changed
        if report is not None:
            self._apply(report, result)
        if run.ename == "MemoryError" and self.link.memory_limit and run.died is None:
            # A process at its RLIMIT_AS may fail anywhere next (its own threads cannot allocate): a fresh one.
            limit = transfer.size_text(self.link.memory_limit)
            failed = self._renew()
            result.changes = {"created": [], "rebound": [], "deleted": []}
            result.error = (f"{result.error or 'MemoryError'}\nThe action went past the {self.link.name} kernel's "
                            f"memory limit ({limit}); the kernel was restarted, so the variables made in it are gone"
                            f"{' (those sent in were sent again)' if self.sent else ''}. Work on less data at a time."
                            f"{failed}")
        stdout = run.stdout
        if notes:
            head = CappedText()
            head.write("\n".join(notes) + "\n")
            head.write(stdout.getvalue())
            stdout = head
        result.outputs = guard.sanitize_outputs(cell_outputs(stdout.getvalue(), run.stderr.getvalue(), run.displays))
        result.output = output_text(result.outputs)
        return result

    # -- the kernel's life ---------------------------------------------------------------------

    def ensure(self) -> bool:
        """Start (and bootstrap) the kernel if it is not running; True when it is a fresh one."""
        if self.started and self.link.alive():
            return False
        if self.started:  # it died between actions
            self.lost = self.lost or f"The {self.link.name} kernel died: {self.link.death()}."
            self.started = False
            self._forget_all()
            self.link.restart()
        else:
            self.link.start()
        self._bootstrap()
        return True

    def _bootstrap(self) -> None:
        reply = self._call(child.bootstrap_code(describe_with_smol_magic=self.link.local_files,
                                                scratch=self.link.scratch(), setup=self.link.setup_code(),
                                                tools=self._tool_names()))
        self.kernel_pid = reply.get("pid")
        self.started = True
        self.namespace_reset()
        if self.sent:
            self.send_variables(dict(self.sent))

    def _restart(self) -> None:
        self.started = False
        self._forget_all()
        self.link.restart()
        self._bootstrap()

    def _renew(self) -> str:
        """Restart the kernel after an action left it unusable; "" or a sentence saying it failed."""
        try:
            self._restart()
        except KernelUnavailable as exc:
            self.started = False
            return f" Starting a fresh one failed: {exc}; the next action tries again."
        return ""

    def restart(self) -> None:
        """``%agent executor restart``: a fresh kernel now (the variables sent in are sent again)."""
        if not self.started:
            self.link.start()
            self._bootstrap()
            return
        self._restart()

    def stop(self) -> None:
        """``%agent executor stop``: end the kernel; the next action starts a new one."""
        self.started = False
        self.sent.clear()
        self._forget_all()
        self.link.shutdown()

    def _forget_all(self) -> None:
        """Empty the mirror (the tools bound in it stay)."""
        for name in [n for n in self.namespace if n not in self._tools.tools]:
            del self.namespace[name]

    def namespace_reset(self) -> None:
        """The mirror, from the kernel's full listing of its variables."""
        self._forget_all()
        report = self._report(full=True)
        if report is not None:
            self._apply(report, ExecutionResult())

    # -- data in and out ----------------------------------------------------------------------

    def send_variables(self, values: dict[str, Any], max_bytes: int | None = None) -> list[transfer.Packet]:
        """Put these variables into the kernel (copies); raises ``transfer.TransferError`` naming what cannot go.

        Every variable is packed (and its size known) before any is sent: over ``max_bytes`` in all, nothing is.
        """
        self.ensure()
        # A link whose kernel is elsewhere may stage packets in a local folder and deliver them its own way
        # (the gateway: binary websocket frames); otherwise they travel inline, in the code sent.
        folder = self.link.scratch() if self.link.local_files else getattr(self.link, "staging", lambda: None)()
        packets = [transfer.pack(name, value, folder) for name, value in values.items()]
        try:
            total = sum(p.nbytes for p in packets)
            if max_bytes is not None and total > max_bytes:
                raise transfer.TransferError(
                    f"sending {', '.join(p.describe() for p in packets)} ({transfer.size_text(total)} in all) would "
                    f"pass the transfer limit of {transfer.size_text(max_bytes)}; send less (--vars) or raise "
                    "--max-transfer")
            deliver = getattr(self.link, "deliver", None)
            messages = deliver(packets) if deliver is not None else [p.message() for p in packets]
            reply = self._call(child.receive_code(messages))
            failed = reply.get("failed") or {}
            if failed:
                raise transfer.TransferError("; ".join(f"{name} could not be rebuilt in the {self.link.name} kernel: "
                                                       f"{why}" for name, why in failed.items()))
        finally:
            for p in packets:
                p.discard()
        self.sent.update(values)
        self._apply(reply.get("report") or {}, ExecutionResult())
        return packets

    def fetch(self, name: str) -> Any:
        """A variable of the kernel, brought here as a new object; ``transfer.TransferError`` if it cannot come."""
        if not self.started or not self.link.alive():
            raise transfer.TransferError(f"{name}: the {self.link.name} kernel is not running")
        # A link whose kernel is elsewhere may have big values packed into a file there, and bring it its own way.
        reply = self._call(getattr(self.link, "fetch_code", child.pack_code)(name))
        if reply.get("error"):
            raise transfer.TransferError(f"{name} cannot be brought back from the {self.link.name} kernel: "
                                         f"{reply['error']}")
        packet = reply["packet"]
        retrieve = getattr(self.link, "retrieve", None)
        return transfer.unpack(retrieve(packet) if retrieve is not None and packet.get("path") else packet)

    def value_of(self, name: str, limit: int) -> Any:
        """What a tool call left in ``name``, for the observation: the kernel's string itself, or an object
        whose repr is the kernel's repr (cut to ``limit``); nothing is transferred but that text."""
        reply = self._call(child.value_text_code(name, limit))
        text = str(reply.get("text", ""))
        return text if reply.get("str") else child.Raw(text)

    # -- one request, its reply ---------------------------------------------------------------

    def _call(self, code: str) -> dict[str, Any]:
        """Run helper code silently; it ends by setting ``__smol__.out`` (JSON), which comes back."""
        run = _Run(self.link, timeout=60.0)
        run.go(code, self, silent=True, expressions={"out": child.TAKE})
        if run.interrupted:
            raise KeyboardInterrupt
        if run.died is not None:
            self.started = False
            raise KernelUnavailable(f"the {self.link.name} kernel died: {run.died}")
        if run.error is not None:
            raise KernelUnavailable(f"the {self.link.name} kernel failed to run smol-magic's helper: {run.error}")
        return run.expressions.get("out") or {}

    def _report(self, full: bool = False) -> dict[str, Any] | None:
        try:
            return self._call(child.report_code(full))
        except KernelUnavailable:
            return None

    def _apply(self, report: dict[str, Any], result: ExecutionResult) -> None:
        """The kernel's report: the mirror updated, the changes and the final answer in ``result``."""
        self.kernel_pid = report.get("pid", self.kernel_pid)
        changes = report.get("changes") or {}
        for name in changes.get("deleted", []):
            self.namespace.pop(name, None)
        for name, (type_name, text, ident, module) in (report.get("vars") or {}).items():
            old = self.namespace.get(name)
            here = sys.modules.get(module) if module and self.link.local_files else None
            if here is not None:  # the same module here: the guard knows what its functions do
                self.namespace[name] = here
            elif isinstance(old, RemoteValue) and old.ident == ident:
                old.type_name, old.text = type_name, text  # same object, perhaps changed in place
            else:
                self.namespace[name] = RemoteValue(name, type_name, text, ident)
        result.changes = {k: list(changes.get(k, [])) for k in ("created", "rebound", "deleted")}
        answer = report.get("answer")
        if answer is not None:
            result.is_final_answer = True
            try:
                result.final_answer = transfer.unpack(answer)
            except transfer.TransferError as exc:
                result.final_answer = answer.get("text", "")
                result.error = f"The final answer could not be brought back as an object ({exc}); its text is kept."

    def _tool_names(self) -> list[str]:
        return [n for n, v in self._tools.tools.items() if n.isidentifier() and callable(v)]

    def call_tool(self, request: dict[str, Any]) -> str:
        """A tool call from the kernel (through ``input()``): run here, answered as JSON."""
        name = request.get("tool")
        tool = self._tools.tools.get(name)
        if tool is None:
            return json.dumps({"error": f"there is no tool {name!r}"})
        try:
            args = transfer.unpack(request["args"])
            with interruptible():  # a long tool (a managed agent) stops at the user's Interrupt
                value = tool(*args[0], **args[1])
            return json.dumps({"value": transfer.pack(f"{name}()", value, self.link.scratch()
                                                      if self.link.local_files else None).message()})
        except BaseException as exc:  # noqa: BLE001 - the tool's failure is the action's observation
            if isinstance(exc, KeyboardInterrupt):
                raise
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"})

    @property
    def prompt_note(self) -> str:
        """Told to the model with the variables: where its code runs, and what exists there."""
        return (f"Your code runs in the {self.link.name} kernel, a separate Python process, not in the notebook: "
                "the variables listed above are the ones that exist there (copies of the notebook's, where they were "
                "sent in); the notebook's other variables do not. Relative file paths are from that kernel's working "
                "folder. Give your result with final_answer(...).")

    def status(self) -> str:
        """One line for ``%agent executor status``."""
        if not self.started or not self.link.alive():
            return f"{self.link.name}: not running (starts on the next action){'; ' + self.lost if self.lost else ''}"
        variables = [n for n, v in self.namespace.items() if isinstance(v, RemoteValue)]
        shown = ", ".join(variables[:12]) + (", ..." if len(variables) > 12 else "")
        return (f"{self.link.name}: running · pid {self.kernel_pid} · {self.link.describe()} · "
                f"{self.actions} action{'' if self.actions == 1 else 's'}"
                f" · variables: {shown or '(none)'}")


class _Run:
    """One execute request, followed to its end: outputs, the reply, and what went wrong."""

    def __init__(self, link: KernelLink, timeout: float | None):
        self.link, self.timeout = link, timeout
        self.stdout, self.stderr = CappedText(), CappedText()
        self.displays: list[tuple[dict, dict]] = []
        self.error: str | None = None
        self.ename: str | None = None
        self.report: dict[str, Any] | None = None
        self.expressions: dict[str, Any] = {}
        self.died: str | None = None
        self.timed_out = self.interrupted = False
        self.stopped = True  # after a timeout or an interrupt: whether the kernel went idle in time

    def go(self, code: str, executor: RemoteExecutor, expressions: dict[str, str], silent: bool = False) -> None:
        """Send the request and follow it to its end. The user's Interrupt (SIGINT) only sets a flag here,
        read between messages: raised anywhere, it could leave the kernel running an action no one follows."""
        with _interrupt_flag() as pressed:
            self._follow(code, executor, expressions, silent, pressed)

    def _follow(self, code: str, executor: RemoteExecutor, expressions: dict[str, str], silent: bool,
                pressed: threading.Event) -> None:
        client = self.link.client
        # store_history=False: the kernel's own history numbering costs ~5 ms an action, and nobody reads it
        msg_id = client.execute(code, silent=silent, store_history=False, user_expressions=expressions,
                                allow_stdin=True)
        deadline = time.monotonic() + self.timeout if self.timeout else None
        stop_by: float | None = None  # after an interrupt: when to give up waiting for idle
        idle = False
        while not idle:
            now = time.monotonic()
            if stop_by is None and (pressed.is_set() or (deadline is not None and now >= deadline)):
                if pressed.is_set():  # the user pressed Interrupt: pass it on to the kernel
                    self.interrupted = True
                else:
                    self.timed_out = True
                self.link.interrupt()
                stop_by = now + INTERRUPT_GRACE
            if stop_by is not None and now >= stop_by:
                self.stopped = False
                return
            wait = POLL if deadline is None or stop_by is not None else max(0.0, min(POLL, deadline - now))
            msg = self._receive(client.get_iopub_msg, wait, msg_id,
                                quiet=lambda: self._answer_stdin(client, executor, pressed))
            if self.died is not None:
                return
            if msg is not None:
                idle = self._feed(msg)
        self._read_reply(client, msg_id)

    def _receive(self, get: Callable[..., dict[str, Any]], timeout: float, msg_id: str,
                 quiet: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """The next message ``get`` gives that answers ``msg_id``, or None: one answering another request,
        or none within ``timeout`` (then ``quiet`` runs, and ``died`` is set if the kernel is gone)."""
        try:
            msg = get(timeout=timeout)
        except queue.Empty:
            if quiet is not None:
                quiet()
            if not self.link.alive():
                self.died = self.link.death()
            return None
        return msg if msg.get("parent_header", {}).get("msg_id") == msg_id else None

    def _answer_stdin(self, client: Any, executor: RemoteExecutor, pressed: threading.Event) -> None:
        """A tool call from the kernel arrives as an ``input_request`` whose prompt is the call, as JSON."""
        try:
            msg = client.get_stdin_msg(timeout=0)
        except (queue.Empty, AttributeError):
            return
        if msg.get("msg_type") != "input_request":
            return
        prompt = msg["content"].get("prompt", "")
        if prompt.startswith(child.TOOL_MARK):
            try:
                answer = executor.call_tool(json.loads(prompt[len(child.TOOL_MARK):]))
            except KeyboardInterrupt:
                pressed.set()
                answer = json.dumps({"error": "KeyboardInterrupt: interrupted by the user"})
            client.input(answer)
        else:  # input() in agent code: nobody will type an answer
            client.input("")
            self.stderr.write("[smol-magic: the action called input(); it was given an empty answer]\n")

    def _feed(self, msg: dict[str, Any]) -> bool:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (self.stdout if content.get("name") == "stdout" else self.stderr).write(content.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            self.displays.append((dict(content.get("data") or {}), dict(content.get("metadata") or {})))
        elif kind == "error":
            if content.get("ename") != child.FINAL_ANSWER:
                self.error, self.ename = _plain_traceback(content), content.get("ename")
        elif kind == "status" and content.get("execution_state") == "idle":
            return True
        return False

    def _read_reply(self, client: Any, msg_id: str) -> None:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            msg = self._receive(client.get_shell_msg, 1, msg_id)
            if self.died is not None:
                return
            if msg is None:
                continue
            content = msg["content"]
            for key, value in (content.get("user_expressions") or {}).items():
                if value.get("status") == "ok":
                    text = value.get("data", {}).get("text/plain", "null")
                    parsed = json.loads(text)
                    self.expressions[key] = parsed
            self.report = self.expressions.get("report")
            if content.get("status") == "error" and self.error is None and \
                    content.get("ename") != child.FINAL_ANSWER:
                self.error, self.ename = _plain_traceback(content), content.get("ename")
            return


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """While a request is followed, SIGINT sets an event instead of raising (on the main thread)."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, old)


def _plain_traceback(content: dict[str, Any]) -> str:
    """The kernel's traceback as plain text (no colours), as the model reads it."""
    lines = [_ANSI.sub("", line) for line in content.get("traceback") or []]
    text = "\n".join(line.rstrip("\n") for line in lines if line.strip() and not set(line.strip()) <= {"-"})
    if not text:
        text = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
    return text + "\n"
