"""Drive a real ipykernel through jupyter_client: start, run a cell, read its outputs.

Used by tests/test_kernel.py. Everything here talks to the kernel over ZMQ
exactly as JupyterLab does; nothing reaches into the kernel process.
"""

from __future__ import annotations

import ast
import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import start_new_kernel


@dataclass
class CellResult:
    status: str  # the shell reply's status: ok | error | aborted
    text: str  # stream output + text/plain of execute_result / display_data + error lines
    ename: str | None  # the error name (from an iopub error message, else from the reply)
    evalue: str | None = None
    stdout: str = ""
    stderr: str = ""
    reply: dict[str, Any] = field(default_factory=dict)
    iopub: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0  # from sending the request to the shell reply

    def __iter__(self):  # status, text, ename = run(...)
        return iter((self.status, self.text, self.ename))


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


def send(kc, code: str, **kwargs: Any) -> str:
    """Send an execute_request without waiting; returns its msg_id."""
    return kc.execute(code, **kwargs)


def _iopub_for(kc, msg_id: str, deadline: float, what: str):
    """Yield the iopub messages whose parent is ``msg_id`` until ``deadline``."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out waiting for {what}")
        try:
            msg = kc.get_iopub_msg(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            yield msg


def wait_for_output(kc, msg_id: str, needle: str, timeout: float = 15) -> list[dict[str, Any]]:
    """Read the cell's iopub messages until a stream output contains ``needle``.

    Returns the messages read, to hand to ``collect(prior=...)`` so none is lost.
    """
    seen: list[dict[str, Any]] = []
    text = ""
    for msg in _iopub_for(kc, msg_id, time.monotonic() + timeout, f"{needle!r} in the output"):
        seen.append(msg)
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
            if needle in text:
                return seen
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            raise AssertionError(f"the cell ended before printing {needle!r}; output: {text!r}")


def collect(
    kc, msg_id: str, timeout: float = 30, started: float | None = None, prior: list[dict[str, Any]] = ()
) -> CellResult:
    """Gather the iopub messages of ``msg_id`` until the kernel is idle, then its shell reply."""
    started = time.monotonic() if started is None else started
    deadline = started + timeout
    iopub: list[dict[str, Any]] = []
    stdout, stderr, texts = [], [], []
    ename = evalue = None

    def messages():
        yield from prior
        yield from _iopub_for(kc, msg_id, deadline, f"the cell to finish (output so far: {''.join(texts)!r})")

    for msg in messages():
        iopub.append(msg)
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (stdout if content["name"] == "stdout" else stderr).append(content["text"])
            texts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            texts.append(content["data"].get("text/plain", "") + "\n")
        elif kind == "error":
            ename, evalue = content["ename"], content["evalue"]
            texts.append(f"{ename}: {evalue}\n")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no shell reply for the cell")
        try:
            reply = kc.get_shell_msg(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            break
    elapsed = time.monotonic() - started
    content = reply["content"]
    if ename is None and content.get("status") == "error":
        ename, evalue = content.get("ename"), content.get("evalue")
    return CellResult(
        status=content["status"], text="".join(texts), ename=ename, evalue=evalue,
        stdout="".join(stdout), stderr="".join(stderr), reply=content, iopub=iopub, elapsed=elapsed,
    )


def run(kc, code: str, timeout: float = 30, **kwargs: Any) -> CellResult:
    """Execute one cell and wait for it: (status, outputs_text, error_ename) and more."""
    started = time.monotonic()
    return collect(kc, send(kc, code, **kwargs), timeout=timeout, started=started)


def evaluate(kc, expr: str, timeout: float = 15) -> Any:
    """The value of ``expr`` in the kernel (a Python literal), read via user_expressions.

    Silent: it neither adds to ``In`` nor changes the execution count.
    """
    result = run(kc, "", timeout=timeout, silent=True, store_history=False, user_expressions={"v": expr})
    value = result.reply["user_expressions"]["v"]
    if value["status"] != "ok":
        raise AssertionError(f"{expr!r} failed in the kernel: {value.get('ename')}: {value.get('evalue')}")
    return ast.literal_eval(value["data"]["text/plain"])
